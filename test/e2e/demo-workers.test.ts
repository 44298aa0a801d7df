/**
 * `glance-edge demo --workers 2`: two worker processes share the demo's port; the primary keeps the
 * image records (server/stores/records.ts) and the race registry. Whatever worker a request
 * reaches, it must see every change another worker has answered, take an image's lock against
 * the other's changes, and never serve data from a file another worker replaced.
 *
 * Every request goes on a connection of its own whose worker is known (test/helpers/workers.ts),
 * so that each test says which worker answered what.
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { send } from '../helpers/http';
import { startBlobServer, startCli, type BlobServer, type RunningProcess } from '../helpers/processes';
import { rawRequest, V21, type RawAnswer } from '../fixtures/glance-upstream';
import { ask, childrenOf, connectionsTo, running, waitFor, type Conn } from '../helpers/workers';

let dataDir: string;
let demo: RunningProcess;
let blobs: BlobServer;
/** The two workers, as /proc shows them; a test that replaces one updates it. */
let workers: number[];

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'glance-edge-demo-workers-'));
  blobs = await startBlobServer();
  demo = await startCli(['demo', '--port', '0', '--host', '127.0.0.1', '--data', dataDir, '--workers', '2']);
  await waitFor('two workers', () => childrenOf(demo.child.pid as number).length === 2);
  workers = childrenOf(demo.child.pid as number);
}, 40_000);

afterAll(async () => {
  await demo?.stop();
  await blobs?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Every connection a test opened (one it did not use is closed before the demo stops). */
const opened: Conn[] = [];

/** `n` connections to each worker, as [first worker's, second worker's]. */
async function pairs(n: number): Promise<[Conn[], Conn[]]> {
  const byWorker = await connectionsTo(demo.port, workers, n);
  for (const list of byWorker.values()) opened.push(...list);
  return [byWorker.get(workers[0] as number) as Conn[], byWorker.get(workers[1] as number) as Conn[]];
}

/** Deterministic image data: `size` bytes named by `name`. */
function dataOf(name: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0, block = 0; i < size; block++) {
    i += createHash('sha256').update(`${name}:${block}`).digest().copy(out, i);
  }
  return out;
}

const JSON_TYPE: [string, string] = ['Content-Type', 'application/json'];
const create = (id: string, extra: Record<string, unknown> = {}) =>
  rawRequest('POST', '/v2/images', [JSON_TYPE], JSON.stringify({ id, name: `image ${id.slice(0, 8)}`, disk_format: 'raw', container_format: 'bare', ...extra }));
const show = (id: string) => rawRequest('GET', `/v2/images/${id}`, []);
const patch = (id: string, ops: unknown[]) => rawRequest('PATCH', `/v2/images/${id}`, [['Content-Type', V21]], JSON.stringify(ops));
const upload = (id: string, data: Buffer) => rawRequest('PUT', `/v2/images/${id}/file`, [['Content-Type', 'application/octet-stream']], data);
const download = (id: string, range?: string) => rawRequest('GET', `/v2/images/${id}/file`, range === undefined ? [] : [['Range', range]]);
const remove = (id: string) => rawRequest('DELETE', `/v2/images/${id}`, []);

const doc = (answer: RawAnswer) => JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;

function expectStatus(answer: RawAnswer, status: number, what: string): void {
  if (answer.status !== status) throw new Error(`${what}: expected ${status}, got ${answer.status} ${answer.body.toString('utf8').slice(0, 300)}`);
}

describe('demo --workers 2', () => {
  it('runs a primary and two workers that both answer on the one port', async () => {
    expect(workers).toHaveLength(2);
    expect(workers.every(running)).toBe(true);
    const [a, b] = await pairs(1);
    for (const conn of [a[0], b[0]] as Conn[]) {
      const answer = await ask(conn, rawRequest('GET', '/v2/schemas/image', []));
      expectStatus(answer, 200, `schema from worker ${conn.worker}`);
      expect(answer.headers['x-openstack-request-id']).toMatch(/^req-[0-9a-f-]{36}$/);
      expect(JSON.stringify(doc(answer))).toContain('ploop');
    }
    expect(demo.output()).toMatch(/"workers":2,"msg":"glance-edge demo listening on http:\/\/127\.0\.0\.1:\d+"/);
  });

  it('shows a change answered by one worker in the next answer of the other, every time', async () => {
    const rounds = 8;
    const [a, b] = await pairs(rounds * 2);
    for (let i = 0; i < rounds; i++) {
      const [writer, reader] = i % 2 === 0 ? [a, b] : [b, a];
      const id = randomUUID();
      const created = await ask(writer[2 * i] as Conn, create(id));
      expectStatus(created, 201, `create through worker ${writer[2 * i]?.worker}`);
      const seen = await ask(reader[2 * i] as Conn, show(id));
      expectStatus(seen, 200, `show through the other worker ${reader[2 * i]?.worker}`);
      expect(doc(seen)).toEqual(doc(created));
      const renamed = await ask(reader[2 * i + 1] as Conn, patch(id, [{ op: 'replace', path: '/name', value: `renamed ${i}` }]));
      expectStatus(renamed, 200, 'rename through the other worker');
      const again = await ask(writer[2 * i + 1] as Conn, show(id));
      expectStatus(again, 200, 'show through the first worker');
      expect(doc(again)).toEqual(doc(renamed));
      expect(doc(again)['name']).toBe(`renamed ${i}`);
    }
  });

  it('serves through one worker the data uploaded through the other, and never data of a file that was replaced', async () => {
    const [a, b] = await pairs(8);
    const id = randomUUID();
    const first = dataOf(`first ${id}`, 300_000);
    expectStatus(await ask(a[0] as Conn, create(id)), 201, 'create');
    expectStatus(await ask(a[1] as Conn, upload(id, first)), 204, 'upload through the first worker');
    // The second worker opens the file (and keeps it open for the next downloads).
    const whole = await ask(b[0] as Conn, download(id));
    expectStatus(whole, 200, 'download through the second worker');
    expect(whole.headers['content-length']).toBe(String(first.length));
    expect(whole.headers['content-md5']).toBe(createHash('md5').update(first).digest('hex'));
    expect(whole.body.equals(first)).toBe(true);
    const part = await ask(b[1] as Conn, download(id, 'bytes=1000-1999'));
    expectStatus(part, 206, 'range through the second worker');
    expect(part.headers['content-range']).toBe(`bytes 1000-1999/${first.length}`);
    expect(part.body.equals(first.subarray(1000, 2000))).toBe(true);

    // Deleted through the first worker: gone for the second. Made again under the same id with
    // other data, through the first: the second serves the new data, not its open file's.
    expectStatus(await ask(a[2] as Conn, remove(id)), 204, 'delete through the first worker');
    expectStatus(await ask(b[2] as Conn, show(id)), 404, 'show of the deleted image through the second worker');
    expectStatus(await ask(b[3] as Conn, download(id)), 404, 'download of the deleted image through the second worker');
    const second = dataOf(`second ${id}`, 200_000);
    expectStatus(await ask(a[3] as Conn, create(id)), 201, 'create again through the first worker');
    expectStatus(await ask(a[4] as Conn, upload(id, second)), 204, 'upload of other data through the first worker');
    const after = await ask(b[4] as Conn, download(id));
    expectStatus(after, 200, 'download of the new data through the second worker');
    expect(after.headers['content-length']).toBe(String(second.length));
    expect(after.body.equals(second)).toBe(true);
    const partAfter = await ask(b[5] as Conn, download(id, 'bytes=1000-1999'));
    expectStatus(partAfter, 206, 'range of the new data through the second worker');
    expect(partAfter.body.equals(second.subarray(1000, 2000))).toBe(true);
  });

  it('gives an image to one change at a time across the workers: no concurrent change is lost', async () => {
    const changes = 24;
    const [a, b] = await pairs(changes / 2 + 1);
    const id = randomUUID();
    expectStatus(await ask(a[0] as Conn, create(id)), 201, 'create');
    const urls = Array.from({ length: changes }, (_, k) => blobs.put(`lock-${id}-${k}`, Buffer.from(`location ${k} of ${id}`)));
    // Half add a property, half a location, alternately through each worker, all at once.
    const sent = Array.from({ length: changes }, (_, k) => {
      const conn = (k % 2 === 0 ? a : b)[1 + Math.floor(k / 2)] as Conn;
      const op = k % 4 < 2 ? { op: 'add', path: `/prop_${k}`, value: `value ${k}` } : { op: 'add', path: '/locations/-', value: { url: urls[k], metadata: {} } };
      return ask(conn, patch(id, [op]));
    });
    const answers = await Promise.all(sent);
    for (const [k, answer] of answers.entries()) expectStatus(answer, 200, `change ${k}`);
    const [c] = (await pairs(1))[1];
    const image = doc(await ask(c as Conn, show(id)));
    for (const k of Array.from({ length: changes }, (_, n) => n).filter((n) => n % 4 < 2)) expect(image[`prop_${k}`]).toBe(`value ${k}`);
    const locations = image['locations'] as { url: string }[];
    const added = Array.from({ length: changes }, (_, k) => k).filter((k) => k % 4 >= 2).map((k) => urls[k]);
    expect(locations.map((l) => l.url).sort()).toEqual([...added].sort());
    expect(image['status']).toBe('active');
  });

  it('numbers locations from one counter whatever worker adds them', async () => {
    const [a, b] = await pairs(4);
    const id = randomUUID();
    expectStatus(await ask(a[0] as Conn, create(id)), 201, 'create');
    const url = (k: number) => blobs.put(`ids-${id}-${k}`, Buffer.from(`data ${k}`));
    expectStatus(await ask(a[1] as Conn, patch(id, [{ op: 'add', path: '/locations/-', value: { url: url(0), metadata: {} } }])), 200, 'first location');
    expectStatus(await ask(b[0] as Conn, patch(id, [{ op: 'add', path: '/locations/-', value: { url: url(1), metadata: {} } }])), 200, 'second location');
    // Glance's answer to a replace by other URLs lists its location rows, ids included.
    const refused = await ask(b[1] as Conn, patch(id, [{ op: 'replace', path: '/locations', value: [{ url: url(2), metadata: {} }] }]));
    expectStatus(refused, 400, 'replace by other URLs');
    const ids = [...refused.body.toString('utf8').matchAll(/'id': (\d+)/g)].map((m) => Number(m[1]));
    expect(ids).toHaveLength(2);
    expect(ids[1]).toBeGreaterThan(ids[0] as number);
  });

  it('answers one of two creations of one id through the two workers with 409', async () => {
    const tries = 6;
    const [a, b] = await pairs(tries);
    for (let i = 0; i < tries; i++) {
      const id = randomUUID();
      const answers = await Promise.all([ask(a[i] as Conn, create(id, { name: 'from a' })), ask(b[i] as Conn, create(id, { name: 'from b' }))]);
      const statuses = answers.map((x) => x.status).sort();
      expect(statuses).toEqual([201, 409]);
      const conflict = answers.find((x) => x.status === 409) as RawAnswer;
      expect(conflict.body.toString('utf8')).toContain(`Image with identifier ${id} already exists!`);
    }
  });

  it('refuses through one worker a location change of an image whose upload the other is writing', async () => {
    const [a, b] = await pairs(3);
    const id = randomUUID();
    const url = blobs.put(`saving-${id}`, Buffer.from('elsewhere'));
    expectStatus(await ask(a[0] as Conn, create(id)), 201, 'create');
    const data = dataOf(`saving ${id}`, 1 << 20);
    // The upload's head and half its body through the first worker; the rest waits.
    const head = upload(id, data);
    const cut = head.length - data.length / 2;
    const uploader = a[1] as Conn;
    uploader.socket.write(head.subarray(0, cut));
    await waitFor('the image to be saving', async () => {
      const [probe] = (await pairs(1))[1];
      return doc(await ask(probe as Conn, show(id)))['status'] === 'saving';
    });
    const refused = await ask(b[0] as Conn, patch(id, [{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }]));
    expectStatus(refused, 409, 'a location added during the upload');
    expect(refused.body.toString('utf8')).toContain('saving');
    uploader.socket.write(head.subarray(cut));
    expectStatus(await uploader.answer, 204, 'the upload, finished');
    const image = doc(await ask(b[1] as Conn, show(id)));
    expect(image['status']).toBe('active');
    expect(image['size']).toBe(data.length);
    expect((image['locations'] as unknown[]).length).toBe(1);
  });

  it('refuses with 410 an upload that ends after its image was deleted, and keeps the data of the image made again', async () => {
    const [a, b] = await pairs(6);
    for (const [k, again] of [true, false].entries()) {
      // Each connection answers one request: this round's are a[3k..] and b[3k..].
      const [a0, a1, b0, b1, b2] = [a[3 * k], a[3 * k + 1], b[3 * k], b[3 * k + 1], b[3 * k + 2]] as Conn[];
      const id = randomUUID();
      expectStatus(await ask(a0 as Conn, create(id)), 201, 'create');
      const stale = dataOf(`stale ${id}`, 64 * 1024);
      const head = upload(id, stale);
      const cut = head.length - 1000;
      const uploader = a1 as Conn;
      uploader.socket.write(head.subarray(0, cut));
      await waitFor('the image to be saving', async () => JSON.parse((await send(demo.port, 'GET', `/v2/images/${id}`)).body.toString('utf8')).status === 'saving');
      expectStatus(await ask(b0 as Conn, remove(id)), 204, 'delete during the upload');
      expectStatus(await ask(b1 as Conn, create(id)), 201, 'made again under its id');
      const fresh = dataOf(`fresh ${id}`, 10_000);
      if (again) expectStatus(await ask(b2 as Conn, upload(id, fresh)), 204, 'upload of the new image');
      uploader.socket.write(head.subarray(cut));
      const late = await uploader.answer;
      expectStatus(late, 410, 'the upload that outlived its image');
      expect(late.body.toString('utf8')).toContain(`Image ${id} could not be found after upload. The image may have been deleted during the upload.`);
      const [x, y] = await pairs(1);
      for (const conn of [x[0], y[0]] as Conn[]) {
        const image = doc(await ask(conn, show(id)));
        if (again) {
          expect(image).toMatchObject({ status: 'active', size: fresh.length, checksum: createHash('md5').update(fresh).digest('hex') });
          expect(image['locations'] as unknown[]).toHaveLength(1);
        } else expect(image).toMatchObject({ status: 'queued', size: null, checksum: null, locations: [] });
      }
      if (again) {
        const [d] = (await pairs(1))[0];
        expect((await ask(d as Conn, download(id))).body.equals(fresh)).toBe(true);
      }
    }
  });

  it('sees every answered creation in every worker, workers killed and replaced meanwhile', async () => {
    const primary = demo.child.pid as number;
    const answered: string[] = [];
    let stop = false;
    // A connection the primary was handing to a worker as it was killed is never answered (node:cluster's
    // round robin; a bare cluster of http servers shows the same): such a creation is given up after 5 s.
    const post = (body: string) =>
      new Promise<number | null>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port: demo.port, method: 'POST', path: '/v2/images', headers: { 'Content-Type': 'application/json' }, agent: false, timeout: 5000 }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? null));
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(null));
        req.end(body);
      });
    const loop = async () => {
      while (!stop) {
        const id = randomUUID();
        if ((await post(JSON.stringify({ id, name: 'churn', disk_format: 'raw', container_format: 'bare' }))) === 201) answered.push(id);
      }
    };
    const loops = [loop(), loop(), loop()];
    for (let k = 0; k < 4; k++) {
      await new Promise((r) => setTimeout(r, 700));
      const victim = childrenOf(primary)[k % 2];
      if (victim !== undefined) process.kill(victim, 'SIGKILL');
    }
    stop = true;
    await Promise.all(loops);
    await waitFor('two workers', () => childrenOf(primary).length === 2);
    workers = childrenOf(primary);
    expect(answered.length).toBeGreaterThan(50);
    // (pairs below waits until both serve.)
    const listed = async (conns: Conn[]) => {
      const ids = new Set<string>();
      let target: string | undefined = '/v2/images?limit=1000';
      for (const conn of conns) {
        if (target === undefined) {
          conn.socket.destroy();
          continue;
        }
        const page = doc(await ask(conn, rawRequest('GET', target, [])));
        for (const image of page['images'] as { id: string }[]) ids.add(image.id);
        target = page['next'] as string | undefined;
      }
      return ids;
    };
    const pages = Math.ceil((answered.length + 100) / 1000) + 8;
    const [a, b] = await pairs(pages);
    for (const [name, conns] of [['first', a], ['second', b]] as const) {
      const ids = await listed(conns);
      const missing = answered.filter((id) => !ids.has(id));
      expect({ worker: name, missing }).toEqual({ worker: name, missing: [] });
    }
  }, 40_000);

  it("kills a worker that holds an image's lock others wait for and no longer answers, and gives the lock on", async () => {
    const primary = demo.child.pid as number;
    // A location whose HEAD is never answered: the change that sizes it holds the image's lock.
    const silent = net.createServer(() => undefined).listen(0, '127.0.0.1');
    await new Promise((r) => silent.once('listening', r));
    try {
      const [a, b] = await pairs(2);
      const id = randomUUID();
      expectStatus(await ask(a[0] as Conn, create(id)), 201, 'create');
      const holder = a[1] as Conn;
      holder.socket.write(patch(id, [{ op: 'add', path: '/locations/-', value: { url: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/never`, metadata: {} } }]));
      await new Promise((r) => setTimeout(r, 300));
      process.kill(holder.worker, 'SIGSTOP');
      const started = Date.now();
      const renamed = await ask(b[0] as Conn, patch(id, [{ op: 'replace', path: '/name', value: 'after the stop' }]));
      expectStatus(renamed, 200, "a change waiting for the stopped worker's lock");
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(doc(renamed)['name']).toBe('after the stop');
      await waitFor('the stopped worker to be replaced', () => childrenOf(primary).length === 2 && !childrenOf(primary).includes(holder.worker));
      workers = childrenOf(primary);
      // Both serve (the new one listens) before the next test kills one.
      await pairs(1);
    } finally {
      silent.close();
    }
  }, 40_000);

  it('replaces a replacement that dies before it listens, and goes on serving', async () => {
    const primary = demo.child.pid as number;
    // (Each worker serves: the one left listens while the other is replaced.)
    const [victim] = workers as [number];
    process.kill(victim, 'SIGKILL');
    let replacement: number | undefined;
    await waitFor('a replacement', () => {
      replacement = childrenOf(primary).find((pid) => !workers.includes(pid));
      return replacement !== undefined;
    }, 5_000);
    process.kill(replacement as number, 'SIGKILL');
    await waitFor('two workers again', () => {
      const now = childrenOf(primary);
      return now.length === 2 && !now.includes(victim) && !now.includes(replacement as number);
    });
    expect(running(primary)).toBe(true);
    workers = childrenOf(primary);
    const [a, b] = await pairs(1);
    for (const conn of [a[0], b[0]] as Conn[]) expectStatus(await ask(conn, rawRequest('GET', '/v2/images?limit=1', [])), 200, `list through worker ${conn.worker}`);
  });

  it('replaces a killed worker with one that starts from the records as they are', async () => {
    const primary = demo.child.pid as number;
    const [a] = await pairs(2);
    const id = randomUUID();
    expectStatus(await ask(a[0] as Conn, create(id)), 201, 'create');
    expectStatus(await ask(a[1] as Conn, patch(id, [{ op: 'add', path: '/kept', value: 'before the kill' }])), 200, 'property');
    const [victim, survivor] = [workers[1] as number, workers[0] as number];
    process.kill(victim, 'SIGKILL');
    await waitFor('a new worker', () => childrenOf(primary).length === 2 && !childrenOf(primary).includes(victim));
    workers = childrenOf(primary);
    const fresh = workers.find((w) => w !== survivor) as number;
    const conn = (await pairs(1)).flat().find((c) => c.worker === fresh) as Conn;
    const seen = await ask(conn, show(id));
    expectStatus(seen, 200, 'show through the new worker');
    expect(doc(seen)['kept']).toBe('before the kill');
    expect(demo.output()).toContain('"event":"worker.replaced"');
  });

  it('keeps every change on disk: the demo started again on the folder serves the same images', async () => {
    const [a, b] = await pairs(2);
    const id = randomUUID();
    const data = dataOf(`kept ${id}`, 50_000);
    expectStatus(await ask(a[0] as Conn, create(id)), 201, 'create');
    expectStatus(await ask(b[0] as Conn, upload(id, data)), 204, 'upload');
    const before = doc(await ask(a[1] as Conn, show(id)));
    for (const conn of opened) conn.socket.destroy();
    await demo.stop();
    const single = await startCli(['demo', '--port', '0', '--host', '127.0.0.1', '--data', dataDir]);
    try {
      const after = await send(single.port, 'GET', `/v2/images/${id}`);
      expect(after.status).toBe(200);
      expect(JSON.parse(after.body.toString('utf8'))).toEqual(before);
      const file = await send(single.port, 'GET', `/v2/images/${id}/file`);
      expect(file.status).toBe(200);
      expect(file.body.equals(data)).toBe(true);
    } finally {
      await single.stop();
    }
  });
});
