/**
 * BEHAVIOUR.md §2: the `serveImage` handler and the `legacyContentRange` middleware as a user mounts
 * them, in Express 5, Express 4 and a bare `http.createServer`, against real sockets on 127.0.0.1.
 * Every answer is read as the exact bytes that came over the wire, with a flag telling whether the
 * body ended cleanly or the connection was cut.
 */
import express from 'express';
import { express4 } from '../helpers/http';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync, type ReadStream } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { glanceError, sendGlanceError } from '../../lib/errors';
import type { ByteRange } from '../../lib/ranges/decide';
import { DEFAULT_DEPRECATION_LINK, legacyContentRange, type DeprecationOptions, type LegacyUse } from '../../lib/ranges/legacy';
import { serveImage, type ImageData, type ServeImageOptions } from '../../lib/ranges/serve';


const FIXTURE = Buffer.from('0123456789abcdefghijklmnopqrstuv');
const MD5 = createHash('md5').update(FIXTURE).digest('hex');
const ETAG = `"${MD5}"`;
const IMAGE = '/v2/images/fixture/file';
/** Glance Ocata's release, 2017-02-22T00:00:00Z, in unix seconds. */
const OCATA = '@1487721600';
const WARNING = '299 - "The Content-Range request header is deprecated; send Range: bytes=first-last"';
const DEFAULT_LINK = `<${DEFAULT_DEPRECATION_LINK}>; rel="deprecation"; type="text/html"`;

const plain = (status: string, message: string) => `${status}\n\n${message}\n\n   `;
const plain416 = (message: string) => `416 Request Range Not Satisfiable\n\nThe Range requested is not available.\n\n ${message}  `;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Wait until `check()` holds, for at most `ms`; returns whether it did. */
async function until(check: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Sources

/** Byte `p` of every generated image: the fixture, repeated. */
const pattern = (start: number, end: number): Buffer => {
  const out = Buffer.alloc(end - start + 1);
  for (let i = 0; i < out.length; i++) out[i] = FIXTURE[(start + i) % FIXTURE.length] as number;
  return out;
};

/** A large image made on the fly from position `from`, ending after `length` bytes; counts what it produced. */
class Generated extends Readable {
  produced = 0;
  readonly #from: number;
  readonly #length: number;
  readonly #chunk: number;

  constructor(from: number, length: number, chunk = 64 * 1024) {
    super({ highWaterMark: chunk });
    this.#from = from;
    this.#length = length;
    this.#chunk = chunk;
  }

  override _read(): void {
    const n = Math.min(this.#chunk, this.#length - this.produced);
    if (n <= 0) {
      this.push(null);
      return;
    }
    const start = this.#from + this.produced;
    this.produced += n;
    this.push(pattern(start, start + n - 1));
  }
}

interface Recorded {
  readonly opens: (ByteRange | undefined)[];
  readonly streams: Readable[];
}

/** An ImageData over the fixture that honours ranges and records every `open`. */
function fixtureData(rec: Recorded): ImageData {
  return {
    size: FIXTURE.length,
    checksum: MD5,
    open(range) {
      rec.opens.push(range);
      const start = range?.start ?? 0;
      const stream = Readable.from([FIXTURE.subarray(start, (range?.end ?? FIXTURE.length - 1) + 1)], { objectMode: false });
      rec.streams.push(stream);
      return { stream, offset: start };
    },
  };
}

/**
 * The source option of a small image service: `fixture` (32 bytes), `queued` (no data), `missing`
 * (404), `broken` (an unexpected failure), and whatever `extra` adds.
 */
function imageSource(rec: Recorded, extra: Record<string, () => ImageData> = {}): ServeImageOptions['source'] {
  return (req) => {
    const id = /^\/v2\/images\/([^/?]+)\/file/.exec(req.url ?? '')?.[1] ?? '';
    if (id === 'fixture') return fixtureData(rec);
    if (id === 'queued') return null;
    if (id === 'broken') throw new Error('the disk is on fire');
    const make = extra[id];
    if (make) return Promise.resolve(make());
    throw glanceError(404, 'image.not_found', `No image found with ID ${id}`);
  };
}

const newRecord = (): Recorded => ({ opens: [], streams: [] });

// ---------------------------------------------------------------------------------------------
// Servers: Express 5, Express 4, a bare http.createServer

type Handler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

interface Mount {
  readonly name: string;
  /**
   * Serve `handlers` in a chain: at `GET /v2/images/:id/file` as a route, or under `prefix` for a
   * static folder. Errors that reach `next` are recorded, then rendered with sendGlanceError.
   */
  start(handlers: Handler[], prefix?: string): Promise<Started>;
  /** This flavour's express.static (the bare server uses Express 5's). */
  readonly serveStatic: (root: string) => Handler;
}

interface Started {
  readonly url: string;
  /** Errors that reached `next`. */
  readonly errors: unknown[];
}

const closers: (() => Promise<void>)[] = [];

async function closeAll(): Promise<void> {
  while (closers.length > 0) await closers.pop()?.();
}

async function listen(listener: http.RequestListener): Promise<string> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function expressMount(name: string, factory: typeof express): Mount {
  return {
    name,
    serveStatic: (root) => factory.static(root) as unknown as Handler,
    async start(handlers, prefix) {
      const errors: unknown[] = [];
      const app = factory();
      if (prefix === undefined) app.get('/v2/images/:id/file', ...(handlers as unknown as express.RequestHandler[]));
      else app.use(prefix, ...(handlers as unknown as express.RequestHandler[]));
      app.use((err: unknown, req: express.Request, res: express.Response, _next: express.NextFunction) => {
        errors.push(err);
        sendGlanceError(req, res, err);
      });
      return { url: await listen(app), errors };
    },
  };
}

const bareMount: Mount = {
  name: 'bare http.createServer',
  serveStatic: (root) => express.static(root) as unknown as Handler,
  async start(handlers, prefix) {
    const errors: unknown[] = [];
    const url = await listen((req, res) => {
      if (prefix !== undefined) {
        if (!req.url?.startsWith(`${prefix}/`)) {
          res.writeHead(404, { 'Content-Length': '0' }).end();
          return;
        }
        req.url = req.url.slice(prefix.length);
      }
      const run = (i: number) => {
        const handler = handlers[i];
        if (!handler) {
          res.writeHead(404, { 'Content-Length': '0' }).end();
          return;
        }
        handler(req, res, (err?: unknown) => {
          if (err !== undefined && err !== null) {
            errors.push(err);
            sendGlanceError(req, res, err);
          } else run(i + 1);
        });
      };
      run(0);
    });
    return { url, errors };
  },
};

// ---------------------------------------------------------------------------------------------
// A client that reports exactly what came over the wire

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  /** The body ended cleanly (all of Content-Length, or the last chunk). */
  readonly complete: boolean;
  /** The error the client saw, if the connection failed. */
  readonly error: string | null;
}

const NO_ANSWER = 'no complete answer within 5 s';

/**
 * One request on a fresh connection; with `keepAlive` the connection is meant to stay open after
 * the answer, so a body that falls short of Content-Length is noticed only if the server cuts it.
 */
function fetchRaw(url: string, headers: http.OutgoingHttpHeaders = {}, method = 'GET', keepAlive = false): Promise<Answer> {
  const agent = new http.Agent({ keepAlive, maxSockets: 1 });
  return new Promise<Answer>((resolve) => {
    let status = 0;
    let resHeaders: http.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let complete = false;
    let error: string | null = null;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      agent.destroy();
      resolve({ status, headers: resHeaders, body: Buffer.concat(chunks), complete, error });
    };
    const req = http.request(url, { method, headers, agent }, (res) => {
      status = res.statusCode ?? 0;
      resHeaders = res.headers;
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (err: Error) => {
        error ??= err.message;
      });
      res.on('end', () => {
        complete = res.complete;
        finish();
      });
      res.on('close', () => {
        complete = res.complete;
        finish();
      });
    });
    req.on('error', (err: Error) => {
      error ??= err.message;
      finish();
    });
    const timer = setTimeout(() => {
      error ??= NO_ANSWER;
      finish();
    }, 5000);
    req.end();
  });
}

/** Expect a clean answer whose Content-Length is the body sent. */
function expectClean(res: Answer): void {
  expect(res.error).toBeNull();
  expect(res.complete).toBe(true);
  expect(res.headers['content-length']).toBe(String(res.body.length));
}

/** Expect a connection cut before the promised body was complete. */
function expectCut(res: Answer, promised: number): void {
  expect(res.complete).toBe(false);
  expect(res.error).not.toBeNull();
  expect(res.error).not.toBe(NO_ANSWER); // the server cut it; the client did not have to give up
  expect(res.body.length).toBeLessThan(promised);
}

const boundaryOf = (res: Answer): string => {
  const m = /^multipart\/byteranges; boundary=(.+)$/.exec(res.headers['content-type'] ?? '');
  if (!m?.[1]) throw new Error(`not a multipart/byteranges answer: ${String(res.headers['content-type'])}`);
  return m[1];
};

/** The exact multipart/byteranges body for these ranges of an image (RFC 9110 §14.6). */
function multipartBody(boundary: string, image: Buffer, ranges: [number, number][]): Buffer {
  const parts = ranges.map(([start, end], i) =>
    Buffer.concat([
      Buffer.from(
        `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${start}-${end}/${image.length}\r\n\r\n`,
      ),
      image.subarray(start, end + 1),
    ]),
  );
  return Buffer.concat([...parts, Buffer.from(`\r\n--${boundary}--\r\n`)]);
}

/** How many of this process's descriptors are open on `file`, and how many in all. */
function openFds(file?: string): number {
  const fds = readdirSync('/proc/self/fd');
  if (file === undefined) return fds.length;
  return fds.filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false; // the descriptor of the directory listing itself, already closed
    }
  }).length;
}

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'glance-edge-serve-'));
  writeFileSync(path.join(tmp, 'image.raw'), FIXTURE);
});

afterEach(closeAll);

afterAll(async () => {
  await closeAll();
  rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe.each<Mount>([expressMount('Express 5', express), expressMount('Express 4', express4), bareMount])('2. Image data: GET /v2/images/{id}/file ($name)', (mount) => {
  async function startImage(options: Partial<ServeImageOptions> = {}, extra: Record<string, () => ImageData> = {}, before: Handler[] = []) {
    const rec = newRecord();
    const started = await mount.start([...before, serveImage({ source: imageSource(rec, extra), ...options }) as Handler]);
    return { ...started, rec };
  }

  describe('Range', () => {
    it('should 200 with the whole image, Accept-Ranges, Content-MD5 and the ETag', async () => {
      const { url, rec } = await startImage();
      const res = await fetchRaw(`${url}${IMAGE}`);
      expect(res.status).toBe(200);
      expectClean(res);
      expect(res.body.equals(FIXTURE)).toBe(true);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['accept-ranges']).toBe('bytes');
      expect(res.headers['content-md5']).toBe(MD5);
      expect(res.headers['etag']).toBe(ETAG);
      expect(res.headers['content-range']).toBeUndefined();
      expect(rec.opens).toEqual([undefined]);
    });

    it('should 206 bytes 12-31/32 for bytes=12-32, opening only that range', async () => {
      const { url, rec } = await startImage();
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=12-32' });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.headers['content-range']).toBe('bytes 12-31/32');
      expect(res.headers['accept-ranges']).toBe('bytes');
      expect(res.headers['content-md5']).toBe(MD5);
      expect(res.body.toString()).toBe('cdefghijklmnopqrstuv');
      expect(rec.opens).toEqual([{ start: 12, end: 31 }]);
    });

    it('should 416 with Content-Range bytes */32 for bytes=32- without opening the data', async () => {
      const { url, rec } = await startImage();
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=32-' });
      expect(res.status).toBe(416);
      expectClean(res);
      expect(res.headers['content-range']).toBe('bytes */32');
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.body.toString()).toBe(plain416('Invalid start position in Range header. Start position MUST be in the inclusive range [0, 31].'));
      expect(rec.opens).toEqual([]);
    });

    it('should 206 with exactly the slice when the source ignores the range, and stop reading the source once it is sent', async () => {
      const size = 64 * 1024 * 1024;
      const generated: Generated[] = [];
      const opens: (ByteRange | undefined)[] = [];
      const whole = (): ImageData => ({
        size,
        open(range) {
          opens.push(range);
          const stream = new Generated(0, size); // the whole image, whatever was asked
          generated.push(stream);
          return { stream, offset: 0 };
        },
      });
      const { url } = await startImage({}, { whole });
      const res = await fetchRaw(`${url}/v2/images/whole/file`, { Range: 'bytes=1000005-1000020' });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.headers['content-range']).toBe(`bytes 1000005-1000020/${size}`);
      expect(res.body.toString()).toBe('56789abcdefghijk');
      expect(opens).toEqual([{ start: 1000005, end: 1000020 }]);
      const [stream] = generated;
      expect(generated).toHaveLength(1);
      expect(await until(() => stream?.destroyed === true)).toBe(true);
      const produced = stream?.produced ?? 0;
      // What it took to reach the slice's end, plus a few chunks of read-ahead; never the 64 MiB.
      expect(produced).toBeGreaterThanOrEqual(1000021);
      expect(produced).toBeLessThan(1000021 + 1024 * 1024);
      await sleep(50);
      expect(stream?.produced).toBe(produced);
    });

    it('should 206 multipart with exact slices when the source ignores the ranges, destroying each opened stream', async () => {
      const generated: Generated[] = [];
      const whole = (): ImageData => ({
        size: FIXTURE.length,
        checksum: MD5,
        open() {
          const stream = new Generated(0, FIXTURE.length, 8);
          generated.push(stream);
          return { stream, offset: 0 };
        },
      });
      const { url } = await startImage({ maxRanges: 10 }, { whole });
      const res = await fetchRaw(`${url}/v2/images/whole/file`, { Range: 'bytes=1-2,10-12' });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.body.equals(multipartBody(boundaryOf(res), FIXTURE, [[1, 2], [10, 12]]))).toBe(true);
      expect(generated).toHaveLength(2);
      expect(generated.every((s) => s.destroyed)).toBe(true);
      // Read up to each slice's end (8 and 16 bytes), plus at most one chunk ahead: never the whole image.
      const [first, second] = generated.map((s) => s.produced);
      expect(first).toBeGreaterThanOrEqual(8);
      expect(first).toBeLessThanOrEqual(16);
      expect(second).toBeGreaterThanOrEqual(16);
      expect(second).toBeLessThanOrEqual(24);
    });

    it.each([
      ['one range', 'bytes=1-2'],
      ['several ranges (multipart)', 'bytes=1-2,10-12'],
    ])('should destroy the opened source when the client left while it was being opened: %s', async (_name, range) => {
      let opened: Generated | undefined;
      let leave: () => void = () => undefined;
      const left = new Promise<void>((resolve) => (leave = resolve));
      const slow = (): ImageData => ({
        size: FIXTURE.length,
        open: async () => {
          await left;
          opened = new Generated(0, FIXTURE.length, 8);
          return { stream: opened, offset: 0 };
        },
      });
      const { url } = await startImage({ maxRanges: 10 }, { slow });
      await new Promise<void>((resolve) => {
        const req = http.get(`${url}/v2/images/slow/file`, { agent: false, headers: { Range: range } }, () => undefined);
        req.on('error', () => undefined);
        // Leave once the request is surely in the handler, then let the source open.
        void sleep(100).then(() => {
          req.destroy();
          void sleep(100).then(() => {
            leave();
            resolve();
          });
        });
      });
      expect(await until(() => opened !== undefined)).toBe(true);
      expect(await until(() => opened?.destroyed === true)).toBe(true);
      // Not read beyond what was already buffered when it was opened.
      expect(opened?.produced ?? 0).toBeLessThanOrEqual(16);
    });

    it('should cut the connection of a 200 (never a clean end) when the source ends short', async () => {
      const short = (): ImageData => ({
        size: FIXTURE.length,
        open: () => ({ stream: Readable.from([FIXTURE.subarray(0, 20)], { objectMode: false }), offset: 0 }),
      });
      const { url, errors } = await startImage({}, { short });
      const res = await fetchRaw(`${url}/v2/images/short/file`, {}, 'GET', true);
      expect(res.status).toBe(200);
      expect(res.headers['content-length']).toBe('32');
      expectCut(res, 32);
      expect(res.body.equals(FIXTURE.subarray(0, res.body.length))).toBe(true);
      expect(errors).toEqual([]);
    });

    it('should cut the connection of a 206 (never a clean end) when the source ends before the range does', async () => {
      const short = (): ImageData => ({
        size: FIXTURE.length,
        open: (range) => ({ stream: Readable.from([FIXTURE.subarray(range?.start ?? 0, 20)], { objectMode: false }), offset: range?.start ?? 0 }),
      });
      const { url } = await startImage({}, { short });
      const res = await fetchRaw(`${url}/v2/images/short/file`, { Range: 'bytes=5-29' }, 'GET', true);
      expect(res.status).toBe(206);
      expect(res.headers['content-range']).toBe('bytes 5-29/32');
      expectCut(res, 25);
    });

    it('should cut the connection of a multipart 206 (never a clean end) when the source ends short in a part', async () => {
      const short = (): ImageData => ({
        size: FIXTURE.length,
        open: (range) => ({ stream: Readable.from([FIXTURE.subarray(range?.start ?? 0, 20)], { objectMode: false }), offset: range?.start ?? 0 }),
      });
      const { url } = await startImage({ maxRanges: 10 }, { short });
      const res = await fetchRaw(`${url}/v2/images/short/file`, { Range: 'bytes=0-1,10-29' }, 'GET', true);
      expect(res.status).toBe(206);
      expectCut(res, Number(res.headers['content-length']));
    });

    it('should cut the connection of a 200 when the source fails mid-stream', async () => {
      const failing = (): ImageData => ({
        size: FIXTURE.length,
        open: () => {
          const stream = new Readable({ read() {} });
          stream.push(FIXTURE.subarray(0, 10));
          setTimeout(() => stream.destroy(new Error('read error')), 20);
          return { stream, offset: 0 };
        },
      });
      const { url } = await startImage({}, { failing });
      const res = await fetchRaw(`${url}/v2/images/failing/file`, {}, 'GET', true);
      expect(res.status).toBe(200);
      expectCut(res, 32);
    });

    it('should stop reading (destroy) the source when the client goes away mid-download of a 200', async () => {
      const size = 1024 * 1024 * 1024;
      const generated: Generated[] = [];
      const huge = (): ImageData => ({
        size,
        open: () => {
          const stream = new Generated(0, size);
          generated.push(stream);
          return { stream, offset: 0 };
        },
      });
      const { url } = await startImage({}, { huge });
      await new Promise<void>((resolve, reject) => {
        const req = http.get(`${url}/v2/images/huge/file`, { agent: false }, (res) => {
          expect(res.statusCode).toBe(200);
          expect(res.headers['content-length']).toBe(String(size));
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err: Error) => {
          if (!req.destroyed) reject(err);
        });
      });
      expect(await until(() => generated[0]?.destroyed === true)).toBe(true);
      const produced = generated[0]?.produced ?? 0;
      expect(produced).toBeLessThan(size);
      await sleep(100);
      expect(generated[0]?.produced).toBe(produced);
    });

    it('should destroy a file source and leave no file descriptor open when a slow client goes away mid-download', async () => {
      const file = path.join(tmp, 'big.raw');
      const size = 8 * 1024 * 1024;
      writeFileSync(file, pattern(0, size - 1));
      const streams: ReadStream[] = [];
      const onDisk = (): ImageData => ({
        size,
        open: (range) => {
          const start = range?.start ?? 0;
          const stream = createReadStream(file, { start, end: range?.end ?? size - 1, highWaterMark: 64 * 1024 });
          streams.push(stream);
          return { stream, offset: start };
        },
      });
      const { url } = await startImage({}, { onDisk });
      const before = openFds();
      expect(openFds(file)).toBe(0);

      let received = 0;
      await new Promise<void>((resolve, reject) => {
        const req = http.get(`${url}/v2/images/onDisk/file`, { agent: false, headers: { Range: 'bytes=100-' } }, (res) => {
          expect(res.statusCode).toBe(206);
          expect(res.headers['content-range']).toBe(`bytes 100-${size - 1}/${size}`);
          res.once('data', (chunk: Buffer) => {
            received += chunk.length;
            expect(chunk.equals(pattern(100, 100 + chunk.length - 1))).toBe(true);
            // A slow client: it stops reading, the server waits on it with the file open, then it leaves.
            res.pause();
            void sleep(300).then(() => {
              expect(openFds(file)).toBe(1);
              req.destroy();
              resolve();
            });
          });
        });
        req.on('error', (err: Error) => {
          if (!req.destroyed) reject(err);
        });
      });
      expect(received).toBeGreaterThan(0);
      expect(streams).toHaveLength(1);
      const [stream] = streams;
      expect(await until(() => stream?.closed === true)).toBe(true);
      expect(stream?.destroyed).toBe(true);
      // The client left long before the end: the file was not read to its end.
      expect(stream?.bytesRead).toBeLessThan(size - 100);
      expect(await until(() => openFds(file) === 0 && openFds() <= before)).toBe(true);
      expect(openFds(file)).toBe(0);
      expect(openFds()).toBeLessThanOrEqual(before);
    });
  });

  describe('Range: several ranges (maxRanges: 10, ours)', () => {
    it('should 206 multipart/byteranges with exact boundaries, per-part headers and Content-Length of the body', async () => {
      const { url, rec } = await startImage({ maxRanges: 10 });
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=0-3,10-12,-2' });
      expect(res.status).toBe(206);
      expectClean(res);
      const boundary = boundaryOf(res);
      expect(boundary).toMatch(/^[0-9A-Za-z'()+_,./:=?-]{1,70}$/);
      expect(res.headers['content-range']).toBeUndefined();
      expect(res.headers['accept-ranges']).toBe('bytes');
      expect(res.body.toString('latin1')).toBe(
        `--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-3/32\r\n\r\n0123` +
          `\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 10-12/32\r\n\r\nabc` +
          `\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 30-31/32\r\n\r\nuv` +
          `\r\n--${boundary}--\r\n`,
      );
      expect(rec.opens).toEqual([
        { start: 0, end: 3 },
        { start: 10, end: 12 },
        { start: 30, end: 31 },
      ]);
    });

    it('should 206 multipart with overlapping and adjacent ranges coalesced', async () => {
      const { url, rec } = await startImage({ maxRanges: 10 });
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=0-3,2-5,6-7,20-21,21-22' });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.body.equals(multipartBody(boundaryOf(res), FIXTURE, [[0, 7], [20, 22]]))).toBe(true);
      expect(rec.opens).toEqual([
        { start: 0, end: 7 },
        { start: 20, end: 22 },
      ]);
    });

    it('should 206 a single part (Content-Range bytes 0-7/32) when the ranges coalesce into one', async () => {
      const { url } = await startImage({ maxRanges: 10 });
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=0-3,4-7' });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['content-range']).toBe('bytes 0-7/32');
      expect(res.body.toString()).toBe('01234567');
    });

    it('should 206 multipart with 10 parts at maxRanges 10', async () => {
      const { url } = await startImage({ maxRanges: 10 });
      const ranges = Array.from({ length: 10 }, (_, i): [number, number] => [3 * i, 3 * i]);
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: `bytes=${ranges.map(([s, e]) => `${s}-${e}`).join(',')}` });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.body.equals(multipartBody(boundaryOf(res), FIXTURE, ranges))).toBe(true);
    });

    it('should 400 quickly for a Range header with 1,000 ranges, without opening the data', async () => {
      const { url, rec } = await startImage({ maxRanges: 10 });
      const header = `bytes=${Array.from({ length: 1000 }, (_, i) => `${2 * i}-${2 * i}`).join(',')}`;
      const started = Date.now();
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: header });
      const elapsed = Date.now() - started;
      expect(res.status).toBe(400);
      expectClean(res);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.body.toString()).toBe(plain('400 Bad Request', 'Too many ranges in the Range header: at most 10 are served in one request.'));
      expect(rec.opens).toEqual([]);
      expect(elapsed).toBeLessThan(1000);
    });

    it('should 400 with Glance text for two ranges by default (maxRanges 1)', async () => {
      const { url, rec } = await startImage();
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=0-1,4-5' });
      expect(res.status).toBe(400);
      expectClean(res);
      expect(res.body.toString()).toBe(
        plain('400 Bad Request', 'Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.'),
      );
      expect(rec.opens).toEqual([]);
    });

    it('should answer HEAD of a multipart 206 with the Content-Length the GET body has, and no body', async () => {
      const { url, rec } = await startImage({ maxRanges: 10 });
      const head = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=0-3,10-12' }, 'HEAD');
      expect(head.status).toBe(206);
      expect(head.body.length).toBe(0);
      expect(rec.opens).toEqual([]);
      const get = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=0-3,10-12' });
      expect(head.headers['content-length']).toBe(String(get.body.length));
      expect(boundaryOf(head)).toMatch(/^[0-9a-f]+$/);
    });
  });

  describe('HEAD and If-Range', () => {
    it('should answer HEAD with 200 and the headers of the GET, no body and no open', async () => {
      const { url, rec } = await startImage();
      const res = await fetchRaw(`${url}${IMAGE}`, {}, 'HEAD');
      expect(res.status).toBe(200);
      expect(res.error).toBeNull();
      expect(res.body.length).toBe(0);
      expect(res.headers['content-length']).toBe('32');
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['accept-ranges']).toBe('bytes');
      expect(res.headers['content-md5']).toBe(MD5);
      expect(res.headers['etag']).toBe(ETAG);
      expect(rec.opens).toEqual([]);
    });

    it('should answer HEAD with a Range with 206 and bytes 0-9/32, no body and no open', async () => {
      const { url, rec } = await startImage();
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=0-9' }, 'HEAD');
      expect(res.status).toBe(206);
      expect(res.body.length).toBe(0);
      expect(res.headers['content-length']).toBe('10');
      expect(res.headers['content-range']).toBe('bytes 0-9/32');
      expect(rec.opens).toEqual([]);
    });

    it('should 206 when If-Range is the current strong ETag', async () => {
      const { url } = await startImage();
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=0-9', 'If-Range': ETAG });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.headers['content-range']).toBe('bytes 0-9/32');
      expect(res.body.toString()).toBe('0123456789');
    });

    it.each([
      ['a stale ETag', '"00000000000000000000000000000000"'],
      ['the weak form of the ETag', `W/${ETAG}`],
      ['a date', 'Wed, 22 Feb 2017 00:00:00 GMT'],
    ])('should 200 with the whole image when If-Range is %s', async (_what, ifRange) => {
      const { url, rec } = await startImage();
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=0-9', 'If-Range': ifRange });
      expect(res.status).toBe(200);
      expectClean(res);
      expect(res.headers['content-range']).toBeUndefined();
      expect(res.body.equals(FIXTURE)).toBe(true);
      expect(rec.opens).toEqual([undefined]);
    });
  });

  describe('Other download facts', () => {
    it('should 204 with Content-Length 0 when the source has no data (queued image)', async () => {
      const { url, rec } = await startImage();
      const res = await fetchRaw(`${url}/v2/images/queued/file`, { Range: 'bytes=0-9' });
      expect(res.status).toBe(204);
      expect(res.error).toBeNull();
      expect(res.headers['content-length']).toBe('0');
      expect(res.body.length).toBe(0);
      expect(rec.opens).toEqual([]);
    });

    it('should 404 with Glance text when the source throws a 404 glanceError, which reaches next', async () => {
      const { url, errors } = await startImage();
      const res = await fetchRaw(`${url}/v2/images/nope/file`);
      expect(res.status).toBe(404);
      expectClean(res);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.body.toString()).toBe(plain('404 Not Found', 'No image found with ID nope'));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ status: 404, type: 'image.not_found' });
    });

    it.each([
      ['a 200', {}],
      ['a 206', { Range: 'bytes=5-9' }],
      ['a multipart 206', { Range: 'bytes=0-1,5-9' }],
    ])('should answer the error, not %s, when the data cannot be opened (e.g. the upstream refused it)', async (_name, headers) => {
      const refused = (): ImageData => ({
        size: FIXTURE.length,
        open: () => Promise.reject(glanceError(502, 'upstream.data', 'The image service answered 403 when asked for the image data.')),
      });
      const { url, errors } = await startImage({ maxRanges: 10 }, { refused });
      const res = await fetchRaw(`${url}/v2/images/refused/file`, headers);
      expect(res.status).toBe(502);
      expectClean(res);
      expect(res.body.toString()).toBe(plain('502 Bad Gateway', 'The image service answered 403 when asked for the image data.'));
      expect(errors).toHaveLength(1);
    });

    it('should 500 without details when the source fails unexpectedly, which reaches next', async () => {
      const { url, errors } = await startImage();
      const res = await fetchRaw(`${url}/v2/images/broken/file`);
      expect(res.status).toBe(500);
      expectClean(res);
      expect(res.body.toString()).toBe(plain('500 Internal Server Error', 'The server has either erred or is incapable of performing the requested operation.'));
      expect(errors).toHaveLength(1);
      expect((errors[0] as Error).message).toBe('the disk is on fire');
    });
  });

  describe('The legacy request form', () => {
    it('should 206 bytes 2-5/32 for Content-Range: bytes 2-5/32 with the deprecation headers, telling onUse once', async () => {
      const uses: LegacyUse[] = [];
      const { url } = await startImage({ deprecation: { onUse: (use) => uses.push(use) } });
      const res = await fetchRaw(`${url}${IMAGE}`, { 'Content-Range': 'bytes 2-5/32', 'User-Agent': 'legacy-client/1.0' });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.headers['content-range']).toBe('bytes 2-5/32');
      expect(res.body.toString()).toBe('2345');
      expect(res.headers['deprecation']).toBe(OCATA);
      expect(res.headers['link']).toBe(DEFAULT_LINK);
      expect(res.headers['warning']).toBe(WARNING);
      expect(res.headers['sunset']).toBeUndefined();
      expect(uses).toEqual([{ contentRange: 'bytes 2-5/32', rewrittenTo: 'bytes=2-5', userAgent: 'legacy-client/1.0', method: 'GET', url: IMAGE, req: expect.objectContaining({ url: IMAGE }) }]);
    });

    it('should 416 Invalid Content-Range header for bytes */32, still with the deprecation headers', async () => {
      const uses: LegacyUse[] = [];
      const { url } = await startImage({ deprecation: { onUse: (use) => uses.push(use) } });
      const res = await fetchRaw(`${url}${IMAGE}`, { 'Content-Range': 'bytes */32' });
      expect(res.status).toBe(416);
      expectClean(res);
      expect(res.headers['content-range']).toBe('bytes */32');
      expect(res.body.toString()).toBe(plain416('Invalid Content-Range header.'));
      expect(res.headers['deprecation']).toBe(OCATA);
      expect(res.headers['warning']).toBe(WARNING);
      expect(uses).toHaveLength(1);
    });

    it('should 206 bytes 0-1/32 when Range and Content-Range are both sent (Range wins), with the deprecation headers', async () => {
      const uses: LegacyUse[] = [];
      const { url } = await startImage({ deprecation: { onUse: (use) => uses.push(use) } });
      const res = await fetchRaw(`${url}${IMAGE}`, { Range: 'bytes=0-1', 'Content-Range': 'bytes 2-5/32' });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.headers['content-range']).toBe('bytes 0-1/32');
      expect(res.body.toString()).toBe('01');
      expect(res.headers['deprecation']).toBe(OCATA);
      expect(uses.map((u) => u.rewrittenTo)).toEqual([null]);
    });

    it('should 206 with no deprecation headers when deprecation is false', async () => {
      const { url } = await startImage({ deprecation: false });
      const res = await fetchRaw(`${url}${IMAGE}`, { 'Content-Range': 'bytes 2-5/*' });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.body.toString()).toBe('2345');
      for (const name of ['deprecation', 'link', 'sunset', 'warning']) expect(res.headers[name]).toBeUndefined();
    });

    it('should 206 with Sunset as an HTTP-date, the configured Link and Deprecation date', async () => {
      const deprecation: DeprecationOptions = {
        deprecatedOn: new Date('2024-01-01T00:00:00Z'),
        sunset: new Date('2030-01-01T00:00:00Z'),
        link: 'https://example.test/docs/legacy-ranges',
      };
      const { url } = await startImage({ deprecation });
      const res = await fetchRaw(`${url}${IMAGE}`, { 'Content-Range': 'bytes 2-5/32' });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.body.toString()).toBe('2345');
      expect(res.headers['sunset']).toBe('Tue, 01 Jan 2030 00:00:00 GMT');
      expect(res.headers['link']).toBe('<https://example.test/docs/legacy-ranges>; rel="deprecation"; type="text/html"');
      expect(res.headers['deprecation']).toBe('@1704067200');
      expect(res.headers['warning']).toBe(WARNING);
    });

    it('should 206 with the deprecation signalled and onUse told once when legacyContentRange is mounted before serveImage', async () => {
      const middlewareUses: LegacyUse[] = [];
      const handlerUses: LegacyUse[] = [];
      const { url } = await startImage({ deprecation: { onUse: (use) => handlerUses.push(use) } }, {}, [
        legacyContentRange({ onUse: (use) => middlewareUses.push(use) }) as Handler,
      ]);
      const res = await fetchRaw(`${url}${IMAGE}`, { 'Content-Range': 'bytes 2-5/32', 'User-Agent': 'legacy-client/2.0' });
      expect(res.status).toBe(206);
      expectClean(res);
      expect(res.headers['content-range']).toBe('bytes 2-5/32');
      expect(res.body.toString()).toBe('2345');
      // Exactly one of each: a second signal would repeat Link and Warning (joined with ", ").
      expect(res.headers['deprecation']).toBe(OCATA);
      expect(res.headers['link']).toBe(DEFAULT_LINK);
      expect(res.headers['warning']).toBe(WARNING);
      expect(middlewareUses.length + handlerUses.length).toBe(1);
      expect(middlewareUses).toEqual([{ contentRange: 'bytes 2-5/32', rewrittenTo: 'bytes=2-5', userAgent: 'legacy-client/2.0', method: 'GET', url: IMAGE, req: expect.objectContaining({ url: IMAGE }) }]);
    });

    it('should 416 Invalid stop position in Content-Range header through legacyContentRange and serveImage', async () => {
      const { url } = await startImage({}, {}, [legacyContentRange() as Handler]);
      const res = await fetchRaw(`${url}${IMAGE}`, { 'Content-Range': 'bytes 30-40/*' });
      expect(res.status).toBe(416);
      expectClean(res);
      expect(res.headers['content-range']).toBe('bytes */32');
      expect(res.body.toString()).toBe(
        plain416('Invalid stop position in Content-Range header. The stop position MUST be in the inclusive range [0, 31].'),
      );
      expect(res.headers['deprecation']).toBe(OCATA);
      expect(res.headers['link']).toBe(DEFAULT_LINK);
    });

    describe('legacyContentRange before express.static', () => {
      async function startStatic(options: DeprecationOptions = {}) {
        return mount.start([legacyContentRange(options) as Handler, mount.serveStatic(tmp)], '/static');
      }

      it('should 206 bytes 2-5/32 from express.static for Content-Range: bytes 2-5/*, with the deprecation headers', async () => {
        const uses: LegacyUse[] = [];
        const { url } = await startStatic({ onUse: (use) => uses.push(use) });
        const res = await fetchRaw(`${url}/static/image.raw`, { 'Content-Range': 'bytes 2-5/*', 'User-Agent': 'legacy-client/3.0' });
        expect(res.status).toBe(206);
        expectClean(res);
        expect(res.headers['content-range']).toBe('bytes 2-5/32');
        expect(res.body.toString()).toBe('2345');
        expect(res.headers['deprecation']).toBe(OCATA);
        expect(res.headers['link']).toBe(DEFAULT_LINK);
        expect(res.headers['warning']).toBe(WARNING);
        expect(uses).toHaveLength(1);
        expect(uses[0]).toMatchObject({ contentRange: 'bytes 2-5/*', rewrittenTo: 'bytes=2-5', userAgent: 'legacy-client/3.0', method: 'GET' });
      });

      it('should 206 bytes 0-1/32 from express.static when Range is sent too (Range wins)', async () => {
        const uses: LegacyUse[] = [];
        const { url } = await startStatic({ onUse: (use) => uses.push(use) });
        const res = await fetchRaw(`${url}/static/image.raw`, { Range: 'bytes=0-1', 'Content-Range': 'bytes 2-5/*' });
        expect(res.status).toBe(206);
        expectClean(res);
        expect(res.headers['content-range']).toBe('bytes 0-1/32');
        expect(res.body.toString()).toBe('01');
        expect(res.headers['deprecation']).toBe(OCATA);
        expect(uses.map((u) => u.rewrittenTo)).toEqual([null]);
      });

      it('should 200 with the whole file from express.static and no deprecation headers without Content-Range', async () => {
        const uses: LegacyUse[] = [];
        const { url } = await startStatic({ onUse: (use) => uses.push(use) });
        const res = await fetchRaw(`${url}/static/image.raw`);
        expect(res.status).toBe(200);
        expectClean(res);
        expect(res.body.equals(FIXTURE)).toBe(true);
        expect(res.headers['deprecation']).toBeUndefined();
        expect(res.headers['link']).toBeUndefined();
        expect(uses).toEqual([]);
      });
    });
  });
});

describe('2. Image data: options are checked at construction', () => {
  const source = () => null;

  it.each<[string, unknown, RegExp]>([
    ['options that are not an object', null, /options must be an object/],
    ['an unknown option', { source, maxRange: 2 }, /unknown option 'maxRange'/],
    ['a source that is not a function', { source: 'images' }, /'source' must be a function/],
    ['a missing source', {}, /option 'source' is required \(a function/],
    ['maxRanges 0', { source, maxRanges: 0 }, /'maxRanges'/],
    ['maxRanges 2.5', { source, maxRanges: 2.5 }, /'maxRanges'/],
    ['maxRanges 1001', { source, maxRanges: 1001 }, /'maxRanges'/],
    ['maxRanges "10"', { source, maxRanges: '10' }, /'maxRanges'/],
    ['an unknown deprecation option', { source, deprecation: { sunSet: new Date() } }, /unknown option 'deprecation.sunSet'/],
    ['an invalid sunset date', { source, deprecation: { sunset: new Date('not a date') } }, /'deprecation.sunset' must be a valid Date/],
    ['a sunset given as a string', { source, deprecation: { sunset: '2030-01-01' } }, /'deprecation.sunset' must be a valid Date/],
    ['an invalid deprecatedOn date', { source, deprecation: { deprecatedOn: new Date(Number.NaN) } }, /'deprecation.deprecatedOn' must be a valid Date/],
    ['an onUse that is not a function', { source, deprecation: { onUse: 'log' } }, /'deprecation.onUse' must be a function/],
    ['a link with a blank', { source, deprecation: { link: 'https://example.test/a b' } }, /'deprecation.link' must be a URL/],
  ])('should throw a TypeError from serveImage for %s', (_what, options, message) => {
    expect(() => serveImage(options as ServeImageOptions)).toThrow(TypeError);
    expect(() => serveImage(options as ServeImageOptions)).toThrow(message);
  });

  it.each<[string, unknown, RegExp]>([
    ['an unknown option', { onuse: () => undefined }, /legacyContentRange: unknown option 'onuse'/],
    ['an invalid sunset date', { sunset: new Date('2030-02-30T99:00:00Z') }, /'sunset' must be a valid Date/],
    ['a deprecatedOn given as a number', { deprecatedOn: 1487721600 }, /'deprecatedOn' must be a valid Date/],
    ['an onUse that is not a function', { onUse: 42 }, /'onUse' must be a function/],
    ['a link that is not a string', { link: 7 }, /'link' must be a URL/],
  ])('should throw a TypeError from legacyContentRange for %s', (_what, options, message) => {
    expect(() => legacyContentRange(options as DeprecationOptions)).toThrow(TypeError);
    expect(() => legacyContentRange(options as DeprecationOptions)).toThrow(message);
  });

  it('should build both with their defaults without throwing', () => {
    expect(typeof serveImage({ source })).toBe('function');
    expect(typeof legacyContentRange()).toBe('function');
  });
});

describe('2. Image data: several requests on one connection', () => {
  it('should answer pipelined range requests in order, each with its own 206', async () => {
    const handler = serveImage({
      source: () => ({ size: FIXTURE.length, open: (r) => ({ stream: Readable.from([r ? FIXTURE.subarray(r.start, r.end + 1) : FIXTURE]), offset: r ? r.start : 0 }) }),
    });
    const server = http.createServer((req, res) => handler(req, res, (err) => sendGlanceError(req, res, err)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const got = await new Promise<string>((resolve, reject) => {
        const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1', () => {
          const get = (range: string) => `GET /img HTTP/1.1\r\nHost: x\r\nRange: ${range}\r\n\r\n`;
          socket.write(get('bytes=0-3') + get('bytes=4-7') + get('bytes=-2').replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
        });
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      const answers = got.split(/(?=HTTP\/1\.1 )/);
      expect(answers.map((a) => a.split('\r\n')[0])).toEqual(['HTTP/1.1 206 Partial Content', 'HTTP/1.1 206 Partial Content', 'HTTP/1.1 206 Partial Content']);
      expect(answers.map((a) => /content-range: (.*)\r\n/i.exec(a)?.[1])).toEqual(['bytes 0-3/32', 'bytes 4-7/32', 'bytes 30-31/32']);
      expect(answers.map((a) => a.slice(a.indexOf('\r\n\r\n') + 4))).toEqual(['0123', '4567', 'uv']);
    } finally {
      server.close();
    }
  });
});
