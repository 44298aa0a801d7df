/**
 * BEHAVIOUR.md §2.4 (ours): the sidecar (the built CLI, a real process) in front of an image
 * service whose store cannot start reading mid-image. Like Glance on an rbd, swift, s3 or http
 * store, the stand-in here answers every ranged read of image data (`Range`, or the legacy
 * `Content-Range` request form) with Glance's 400 `Getting images randomly from this store is not
 * supported. Offset: …, length: …`, and the whole image without one. The sidecar asks again for the
 * whole image and serves the 206 anyway: exactly the slice, the image service's answer stopped once
 * the slice is sent, and a slow way to the first byte of the range that does not trip the client's
 * idle timeout. Offsets and lengths are drawn from a printed seed (RANGES_NO_RANDOM_SEED).
 */
import { createHash, randomUUID } from 'node:crypto';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { startCli, type RunningProcess } from '../helpers/processes';
import { testSeed } from '../helpers/seed';

const NO_RANDOM = 'Getting images randomly from this store is not supported.';
const DEPRECATION = '@1487721600';
const WARNING = '299 - "The Content-Range request header is deprecated; send Range: bytes=first-last"';
const CHUNK = 64 * 1024;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `size` bytes drawn from `random`. */
function bytesOf(size: number, random: () => number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i + 4 <= size; i += 4) out.writeUInt32LE(Math.floor(random() * 4294967296), i);
  for (let i = size - (size % 4); i < size; i++) out[i] = Math.floor(random() * 256);
  return out;
}

/** One read of image data as the stand-in saw it. */
interface DataRead {
  readonly image: string;
  readonly range: string | undefined;
  readonly contentRange: string | undefined;
  readonly accept: string | undefined;
  status: number;
  /** Bytes of image data written to the sidecar. */
  written: number;
  /** Whether all of it was written and the answer ended. */
  finished: boolean;
  /** Whether the answer's connection has closed or it ended. */
  closed: boolean;
}

interface Image {
  readonly id: string;
  readonly data: Buffer;
  readonly checksum: string;
  /** Send the bytes before `slowUntil` over `slowMs` (trickled), the rest at once. */
  readonly slowUntil?: number;
  readonly slowMs?: number;
  /** A 400 with another text to a ranged read. */
  readonly otherRefusal?: boolean;
}

/** Glance's 400 in the form the request's Accept asks for (plain or JSON; both carry the text). */
function refusal(req: IncomingMessage, res: ServerResponse, message: string): void {
  const json = (req.headers.accept ?? '').includes('application/json');
  const body = json
    ? JSON.stringify({ message: `${message}<br /><br />\n\n\n`, code: '400 Bad Request', title: 'Bad Request' }).replaceAll('":', '": ').replaceAll('",', '", ')
    : `400 Bad Request\n\n${message}\n\n   `;
  res.writeHead(400, { 'Content-Length': Buffer.byteLength(body), 'Content-Type': json ? 'application/json' : 'text/plain; charset=UTF-8' }).end(body);
}

interface StandIn {
  readonly url: string;
  readonly reads: DataRead[];
  close(): Promise<void>;
}

/** An image service with a store without random access, holding `images`. */
function startStandIn(images: readonly Image[]): Promise<StandIn> {
  const byId = new Map(images.map((i) => [i.id, i]));
  const reads: DataRead[] = [];
  const server = http.createServer((req, res) => {
    const m = /^\/v2\/images\/([^/]+)(\/file)?$/.exec(req.url ?? '');
    const image = m ? byId.get(m[1] as string) : undefined;
    if (!m || !image || req.method !== 'GET') {
      res.writeHead(404, { 'Content-Length': 0 }).end();
      return;
    }
    if (!m[2]) {
      const doc = JSON.stringify({ id: image.id, status: 'active', size: image.data.length, checksum: image.checksum, locations: [{ url: 'rbd://x', metadata: {} }] });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(doc) }).end(doc);
      return;
    }
    const read: DataRead = {
      image: image.id,
      range: req.headers.range,
      contentRange: req.headers['content-range'],
      accept: req.headers.accept,
      status: 0,
      written: 0,
      finished: false,
      closed: false,
    };
    reads.push(read);
    res.on('close', () => {
      read.closed = true;
    });
    if (read.range !== undefined || read.contentRange !== undefined) {
      read.status = 400;
      // The sidecar asks for `bytes=first-last` (or `bytes first-last/*`): Glance's offset and length.
      const [, first, last] = /(\d+)-(\d+)/.exec(read.range ?? read.contentRange ?? '') ?? [];
      const message = image.otherRefusal ? 'Something else is wrong with this request.' : `${NO_RANDOM} Offset: ${first}, length: ${Number(last) - Number(first) + 1}`;
      refusal(req, res, message);
      return;
    }
    read.status = 200;
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': image.data.length, 'Content-MD5': image.checksum });
    void send(image, res, read);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({
        url: `http://127.0.0.1:${port}`,
        reads,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Write the image to `res` in chunks, as fast as it is taken (or trickled up to `slowUntil`), counting what was written. */
async function send(image: Image, res: ServerResponse, read: DataRead): Promise<void> {
  const { data } = image;
  let at = 0;
  const slowUntil = image.slowUntil ?? 0;
  const steps = 30;
  while (at < data.length && !res.destroyed) {
    let piece: Buffer;
    if (at < slowUntil) {
      piece = data.subarray(at, Math.min(slowUntil, at + Math.ceil(slowUntil / steps)));
      await new Promise((r) => setTimeout(r, (image.slowMs ?? 0) / steps));
    } else {
      piece = data.subarray(at, Math.min(data.length, at + CHUNK));
    }
    if (res.destroyed) break;
    at += piece.length;
    read.written += piece.length;
    if (!res.write(piece)) {
      await new Promise<void>((resolve) => {
        const go = () => {
          res.off('drain', go);
          res.off('close', go);
          resolve();
        };
        res.on('drain', go);
        res.on('close', go);
      });
    }
  }
  if (!res.destroyed) {
    res.end();
    read.finished = true;
  }
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request with exactly these headers (node:http, no connection reuse), and the whole answer. */
function request(base: string, method: string, path: string, headers: Record<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method, headers: { accept: 'text/plain', ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

const random = mulberry32(testSeed('RANGES_NO_RANDOM_SEED'));
const image = (size: number, extra: Partial<Image> = {}): Image => {
  const data = bytesOf(size, random);
  return { id: randomUUID(), data, checksum: md5(data), ...extra };
};

/** Exact slices are checked on this one; early stops on `big`; the idle timeout on `slow`. */
const small = image(4 * 1024 * 1024 + Math.floor(random() * 65536));
const big = image(48 * 1024 * 1024);
const slowStart = 256 * 1024 + Math.floor(random() * 256 * 1024);
const slow = image(1024 * 1024, { slowUntil: slowStart, slowMs: 3000 });
const other = image(4096, { otherRefusal: true });

let standIn: StandIn;
let sidecar: RunningProcess;
let patient: RunningProcess;

beforeAll(async () => {
  standIn = await startStandIn([small, big, slow, other]);
  [sidecar, patient] = await Promise.all([
    startCli(['proxy', '--upstream', standIn.url, '--port', '0', '--host', '127.0.0.1']),
    // A short idle timeout: the upstream takes twice as long to reach the range.
    startCli(['proxy', '--upstream', standIn.url, '--port', '0', '--host', '127.0.0.1', '--timeout', '1000', '--idle-timeout', '1500']),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([sidecar?.stop(), patient?.stop()]);
  await standIn?.close();
});

/** The stand-in's reads of `id` since `from`. */
const readsOf = (id: string, from: number) => standIn.reads.slice(from).filter((r) => r.image === id);

/** A 206 of exactly `first`..`last` of `img`, with the headers of any other range. */
function expectSlice(reply: Reply, img: Image, first: number, last: number): void {
  expect(reply.status).toBe(206);
  expect(reply.headers['content-type']).toBe('application/octet-stream');
  expect(reply.headers['content-range']).toBe(`bytes ${first}-${last}/${img.data.length}`);
  expect(reply.headers['content-length']).toBe(String(last - first + 1));
  expect(reply.headers['accept-ranges']).toBe('bytes');
  expect(reply.headers['content-md5']).toBe(img.checksum);
  expect(reply.headers['etag']).toBe(`"${img.checksum}"`);
  expect(reply.body.length).toBe(last - first + 1);
  expect(reply.body.equals(img.data.subarray(first, last + 1))).toBe(true);
}

describe('2. Image data: a store without random access, through the sidecar (ours)', () => {
  const size = small.data.length;
  const ranges: [number, number][] = Array.from({ length: 12 }, () => {
    const first = Math.floor(random() * size);
    const last = Math.min(size - 1, first + Math.floor(random() * 300_000));
    return [first, last];
  });

  it.each(ranges)('should 206 bytes %i-%i, byte for byte, asking again for the whole image after the 400', async (first, last) => {
    const from = standIn.reads.length;
    const reply = await request(sidecar.url, 'GET', `/v2/images/${small.id}/file`, { range: `bytes=${first}-${last}` });
    expectSlice(reply, small, first, last);
    const reads = readsOf(small.id, from);
    expect(reads.map((r) => [r.range, r.status])).toEqual([
      [`bytes=${first}-${last}`, 400],
      [undefined, 200],
    ]);
  });

  it.each([1, 2, Math.floor(random() * size) + 1, size - 1])('should 206 the suffix bytes=-%i', async (n) => {
    const reply = await request(sidecar.url, 'GET', `/v2/images/${small.id}/file`, { range: `bytes=-${n}` });
    expectSlice(reply, small, size - n, size - 1);
  });

  it('should 206 the whole image for a suffix longer than it, and an open end', async () => {
    expectSlice(await request(sidecar.url, 'GET', `/v2/images/${small.id}/file`, { range: `bytes=-${size + 5}` }), small, 0, size - 1);
    const start = Math.floor(random() * size);
    expectSlice(await request(sidecar.url, 'GET', `/v2/images/${small.id}/file`, { range: `bytes=${start}-` }), small, start, size - 1);
  });

  it('should serve the legacy Content-Range request form the same way, with the deprecation headers', async () => {
    const first = Math.floor(random() * (size - 100));
    const last = first + Math.floor(random() * 99);
    const from = standIn.reads.length;
    const reply = await request(sidecar.url, 'GET', `/v2/images/${small.id}/file`, { 'content-range': `bytes ${first}-${last}/*` });
    expectSlice(reply, small, first, last);
    expect(reply.headers['deprecation']).toBe(DEPRECATION);
    expect(reply.headers['warning']).toBe(WARNING);
    // The upstream is asked with Range (it is not a pre-Ocata one), then without.
    expect(readsOf(small.id, from).map((r) => [r.range, r.contentRange, r.status])).toEqual([
      [`bytes=${first}-${last}`, undefined, 400],
      [undefined, undefined, 200],
    ]);
  });

  it('should find the refusal in a JSON error body too', async () => {
    const from = standIn.reads.length;
    const reply = await request(sidecar.url, 'GET', `/v2/images/${small.id}/file`, { range: 'bytes=10-19', accept: 'application/json' });
    expectSlice(reply, small, 10, 19);
    expect(readsOf(small.id, from).map((r) => [r.accept, r.status])).toEqual([
      ['application/json', 400],
      ['application/json', 200],
    ]);
  });

  it('should answer HEAD with the headers of the GET and no body, reading no image data', async () => {
    const from = standIn.reads.length;
    const reply = await request(sidecar.url, 'HEAD', `/v2/images/${small.id}/file`, { range: 'bytes=100-199' });
    expect(reply.status).toBe(206);
    expect(reply.headers['content-range']).toBe(`bytes 100-199/${size}`);
    expect(reply.headers['content-length']).toBe('100');
    expect(reply.headers['content-md5']).toBe(small.checksum);
    expect(reply.body.length).toBe(0);
    const legacy = await request(sidecar.url, 'HEAD', `/v2/images/${small.id}/file`, { 'content-range': 'bytes 5-9/*' });
    expect(legacy.status).toBe(206);
    expect(legacy.headers['content-range']).toBe(`bytes 5-9/${size}`);
    expect(legacy.headers['content-length']).toBe('5');
    expect(legacy.headers['deprecation']).toBe(DEPRECATION);
    expect(legacy.body.length).toBe(0);
    expect(readsOf(small.id, from)).toEqual([]);
  });

  it('should stop reading the image service once the slice is sent', async () => {
    const first = Math.floor(random() * 1024 * 1024);
    const last = first + Math.floor(random() * 1024 * 1024);
    const from = standIn.reads.length;
    const reply = await request(sidecar.url, 'GET', `/v2/images/${big.id}/file`, { range: `bytes=${first}-${last}` });
    expectSlice(reply, big, first, last);
    const [refused, whole] = readsOf(big.id, from);
    expect(refused?.status).toBe(400);
    expect(whole?.status).toBe(200);
    await until('the whole-image read to close', () => whole?.closed === true);
    // Cut off: of 48 MiB, what reached the range's end plus what sockets buffer on the way.
    expect(whole?.finished).toBe(false);
    expect(whole?.written).toBeLessThan(last + 1 + 24 * 1024 * 1024);
    process.stdout.write(`bytes ${first}-${last} of ${big.data.length}: the image service wrote ${whole?.written} before the sidecar closed its answer\n`);
  });

  it('should keep the client connection alive while a slow image service reaches the range', async () => {
    const first = slowStart + Math.floor(random() * 1000);
    const last = first + 4095;
    const from = standIn.reads.length;
    const started = Date.now();
    const reply = await request(patient.url, 'GET', `/v2/images/${slow.id}/file`, { range: `bytes=${first}-${last}` });
    const took = Date.now() - started;
    expectSlice(reply, slow, first, last);
    // Twice the idle timeout (1500 ms) went by before the first byte of the range.
    expect(took).toBeGreaterThanOrEqual(2900);
    expect(readsOf(slow.id, from).map((r) => r.status)).toEqual([400, 200]);
  }, 20_000);

  it('should 502 a 400 that is not the refusal of random access', async () => {
    const reply = await request(sidecar.url, 'GET', `/v2/images/${other.id}/file`, { range: 'bytes=0-9' });
    expect(reply.status).toBe(502);
    expect(reply.body.toString()).toBe('502 Bad Gateway\n\nThe image service answered 400 when asked for the image data.\n\n   ');
  });
});
