/**
 * reclaimStreamedData: a minor collection after every `every` bytes of streamed image data. The
 * counting, with V8's `gc` stood in for; that the library's serveImage never counts (collecting is
 * the servers' workaround, not the middlewares'); and, in the processes of the glance-edge command, the collections as their
 * /metrics report them (reclaim_collections_total) while 128 MiB go up and down through the
 * sidecar and up into the demo.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import express from 'express';
import request from 'supertest';
import { startOldGlance, type OldGlance } from '../fixtures/old-glance';
import { startCli, type RunningProcess } from '../helpers/processes';

const MiB = 1024 * 1024;
type Reclaim = typeof import('../../server/perf/reclaim');

/** The reclaim module afresh (its state is process-wide), with `gc` stood in for by a mock. */
function fresh(): { reclaim: Reclaim; gc: jest.Mock; serveImage: typeof import('../../lib/ranges/serve').serveImage } {
  const gc = jest.fn();
  (globalThis as { gc?: unknown }).gc = gc;
  let reclaim!: Reclaim;
  let serveImage!: typeof import('../../lib/ranges/serve').serveImage;
  jest.isolateModules(() => {
    reclaim = jest.requireActual('../../server/perf/reclaim');
    ({ serveImage } = jest.requireActual('../../lib/ranges/serve'));
  });
  return { reclaim, gc, serveImage };
}

afterEach(() => {
  delete (globalThis as { gc?: unknown }).gc;
});

describe('counting', () => {
  it('should collect nothing until enabled, then once per `every` bytes, as a minor collection', () => {
    const { reclaim, gc } = fresh();
    reclaim.spent(64 * MiB);
    expect(reclaim.reclaiming()).toBe(false);
    expect(gc).not.toHaveBeenCalled();
    reclaim.reclaimStreamedData({ every: MiB });
    expect(reclaim.reclaiming()).toBe(true);
    reclaim.spent(MiB - 1);
    expect(gc).not.toHaveBeenCalled();
    reclaim.spent(1);
    expect(gc).toHaveBeenCalledTimes(1);
    expect(gc).toHaveBeenCalledWith({ type: 'minor' });
    expect(reclaim.reclaimCollections()).toBe(1);
    for (let i = 0; i < 16; i++) reclaim.spent(64 * 1024);
    expect(gc).toHaveBeenCalledTimes(2);
  });

  it("should count a forwarded stream's chunks unless its Content-Length says it is small", () => {
    const { reclaim, gc } = fresh();
    reclaim.reclaimStreamedData({ every: MiB });
    const emitting = (contentLength: string | undefined) => {
      const stream = new PassThrough();
      reclaim.countLarge(stream, contentLength);
      for (let i = 0; i < 16; i++) stream.emit('data', Buffer.alloc(64 * 1024));
    };
    emitting('1000');
    expect(gc).not.toHaveBeenCalled();
    emitting(String(MiB));
    expect(gc).toHaveBeenCalledTimes(1);
    emitting(undefined); // chunked
    expect(gc).toHaveBeenCalledTimes(2);
  });

  it('should default to 4 MiB and refuse an interval under 64 KiB', () => {
    const { reclaim, gc } = fresh();
    expect(() => reclaim.reclaimStreamedData({ every: 1000 })).toThrow(TypeError);
    expect(() => reclaim.reclaimStreamedData({ every: 1.5 * MiB + 0.5 })).toThrow(TypeError);
    expect(reclaim.reclaiming()).toBe(false);
    reclaim.reclaimStreamedData();
    reclaim.spent(4 * MiB - 1);
    expect(gc).not.toHaveBeenCalled();
    reclaim.spent(1);
    expect(gc).toHaveBeenCalledTimes(1);
  });

  it("should fetch V8's gc itself when the process was not started with --expose-gc", () => {
    delete (globalThis as { gc?: unknown }).gc;
    let reclaim!: Reclaim;
    jest.isolateModules(() => {
      reclaim = jest.requireActual('../../server/perf/reclaim');
    });
    reclaim.reclaimStreamedData({ every: 64 * 1024 });
    expect(reclaim.reclaiming()).toBe(true);
    expect(() => reclaim.spent(MiB)).not.toThrow();
  });
});

describe('serveImage', () => {
  const chunks = () => Array.from({ length: 32 }, (_, i) => Buffer.alloc(256 * 1024, i));
  const size = 32 * 256 * 1024;

  it("should not count a source's chunks: the library leaves collecting to the servers", async () => {
    const { reclaim, gc, serveImage } = fresh();
    reclaim.reclaimStreamedData({ every: MiB });
    const app = express().get('/file', serveImage({ source: () => ({ size, open: () => ({ stream: Readable.from(chunks()), offset: 0 }) }) }));
    const res = await request(app).get('/file').buffer(true);
    expect(res.status).toBe(200);
    expect(Buffer.compare(res.body as Buffer, Buffer.concat(chunks()))).toBe(0);
    expect(gc).not.toHaveBeenCalled();
  });

  it('should not count the chunks of a source that recycles them', async () => {
    const { reclaim, gc, serveImage } = fresh();
    reclaim.reclaimStreamedData({ every: MiB });
    const recycled: Buffer[] = [];
    const app = express().get(
      '/file',
      serveImage({ source: () => ({ size, open: () => ({ stream: Readable.from(chunks()), offset: 0, recycle: (c: Buffer) => recycled.push(c) }) }) }),
    );
    const res = await request(app).get('/file').buffer(true);
    expect(res.status).toBe(200);
    expect((res.body as Buffer).length).toBe(size);
    // A chunk is handed back when its write completes, which may come just after the client has
    // read the whole answer: wait for the last one a little.
    for (let i = 0; i < 100 && recycled.length < 32; i++) await new Promise((r) => setTimeout(r, 10));
    expect(recycled).toHaveLength(32);
    expect(gc).not.toHaveBeenCalled();
  });
});

describe('the glance-edge command', () => {
  const SIZE = 128 * MiB;
  const data = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i += 4096) data.writeUInt32BE(i, i);
  const sha = createHash('sha256').update(data).digest('hex');
  let old: OldGlance;
  let sidecar: RunningProcess;
  let demo: RunningProcess;
  const demoData = mkdtempSync(path.join(tmpdir(), 'reclaim-demo-'));

  beforeAll(async () => {
    old = await startOldGlance();
    [sidecar, demo] = await Promise.all([
      startCli(['proxy', '--upstream', old.url, '--port', '0', '--host', '127.0.0.1']),
      startCli(['demo', '--data', demoData, '--port', '0', '--host', '127.0.0.1']),
    ]);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([sidecar?.stop(), demo?.stop()]);
    await old?.close();
    rmSync(demoData, { recursive: true, force: true });
  });

  /** The collections reclaiming has run in the process, from its /metrics. */
  async function reclaimed(base: string): Promise<number> {
    const text = await fetch(`${base}/metrics`).then((r) => r.text());
    const m = /^glance_edge_reclaim_collections_total (\d+)$/m.exec(text);
    expect(m).not.toBeNull();
    return Number(m?.[1]);
  }

  /** A request streaming `body` up, or the answer down, hashed; the whole answer's status and sha256. */
  function stream(base: string, method: string, path: string, body?: Buffer): Promise<{ status: number; sha: string; bytes: number }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = body ? { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' } : {};
      const req = http.request(`${base}${path}`, { method, headers }, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          hash.update(c);
          bytes += c.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, sha: hash.digest('hex'), bytes }));
        res.on('error', reject);
      });
      req.on('error', reject);
      if (body) Readable.from((function* () {
        for (let i = 0; i < body.length; i += MiB) yield body.subarray(i, i + MiB);
      })()).pipe(req);
      else req.end();
    });
  }

  async function created(base: string): Promise<string> {
    const res = await fetch(`${base}/v2/images`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'big', disk_format: 'raw', container_format: 'bare' }) });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  // 128 MiB at one collection per 4 MiB: at least 31 (some bytes may have been counted before).
  it('should collect at least once per 4 MiB of a 128 MiB upload and download through the sidecar', async () => {
    const id = await created(sidecar.url);
    const before = await reclaimed(sidecar.url);
    const up = await stream(sidecar.url, 'PUT', `/v2/images/${id}/file`, data);
    expect(up.status).toBe(204);
    expect(old.store.get(id)?.size).toBe(SIZE);
    const afterUp = await reclaimed(sidecar.url);
    expect(afterUp - before).toBeGreaterThanOrEqual(31);
    const down = await stream(sidecar.url, 'GET', `/v2/images/${id}/file`);
    expect(down).toEqual({ status: 200, sha, bytes: SIZE });
    expect((await reclaimed(sidecar.url)) - afterUp).toBeGreaterThanOrEqual(31);
  }, 60_000);

  it('should collect at least once per 4 MiB of a 128 MiB upload into the demo', async () => {
    const id = await created(demo.url);
    const before = await reclaimed(demo.url);
    const up = await stream(demo.url, 'PUT', `/v2/images/${id}/file`, data);
    expect(up.status).toBe(204);
    expect((await reclaimed(demo.url)) - before).toBeGreaterThanOrEqual(31);
    const down = await stream(demo.url, 'GET', `/v2/images/${id}/file`);
    expect(down).toEqual({ status: 200, sha, bytes: SIZE });
  }, 60_000);
});
