/**
 * BEHAVIOUR.md §2 fuzzed on the wire: Range, legacy Content-Range and If-Range headers (the grammar
 * of model.ts, plus pathological ones: numbers of thousands of digits, up to 1001 comma-separated
 * ranges, non-ASCII bytes, empty and blank values, repeated headers) sent as real HTTP requests
 * over keep-alive connections, and every answer checked against the reference model of model.ts:
 * status, Content-Range, Content-Length, the deprecation signal and the exact bytes. No answer may
 * be a 5xx, and every server must still answer afterwards.
 *
 * Most cases go to serveImage in a bare node:http server, with in-memory images of 1 byte to
 * 300 kB whose source sometimes ignores the range and yields odd chunk sizes; a share goes to the
 * demo (the built CLI, as a user runs it), with Glance's one range and with `--max-ranges 1000`,
 * on images uploaded to it (from 1 byte to 2.5 MB, read from disk in 1 MiB buffers) and on one
 * at an http:// location whose server ignores Range.
 *
 *   FUZZ_RUNS    cases (default 10000; FUZZ_RUNS=100000 for a long run)
 *   FUZZ_SEED    fast-check seed (default: test/helpers/seed.ts; printed)
 *   FUZZ_REPORT  a file to write `runs seed seconds cases/s`, then the cases by kind, to
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { sendGlanceError } from '../../lib/errors';
import { serveImage } from '../../lib/ranges/serve';
import { envInt } from '../helpers/env';
import { testSeed } from '../helpers/seed';
import { startBlobServer, startDemo, type BlobServer, type Demo } from '../helpers/processes';
import {
  CATEGORIES,
  category,
  expectReply,
  ifRangeValue,
  imageSize,
  legacyHeader,
  memorySource,
  model,
  ows,
  rangeHeader,
  type Ask,
  type MemoryImage,
  type Reply,
} from './model';

const RUNS = envInt('FUZZ_RUNS', 10_000);
const SEED = testSeed('FUZZ_SEED');
/** Out of 100 cases, how many go through the demo process. */
const DEMO_PERCENT = 20;

// ---------------------------------------------------------------------------------------------
// Images: slices of one fixed pseudo-random pool, so that every run of a seed sees the same bytes.

const POOL = (() => {
  const pool = Buffer.alloc(3 * 1024 * 1024);
  let x = 0x9e3779b9;
  for (let i = 0; i < pool.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    pool.writeInt32LE(x | 0, i);
  }
  return pool;
})();

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

interface DemoImage {
  readonly bytes: Buffer;
  readonly checksum: string;
}

/** Uploaded to each demo (the last one at an http:// location instead). */
const DEMO_IMAGES: DemoImage[] = [1, 32, 4097, 65_537, 300_001, 2_500_000, 5_001].map((size, i) => {
  const bytes = POOL.subarray(i * 1000, i * 1000 + size);
  return { bytes, checksum: md5(bytes) };
});

// ---------------------------------------------------------------------------------------------
// The headers: what is sent (a value, or several for a repeated header), drawn per image size.

type Sent = string | string[];
type Headers = Record<string, Sent>;

/** What the server sees: each value stripped of its blanks, repeated ones joined by `, `. */
const seen = (v: Sent) => (Array.isArray(v) ? v.map(ows).join(', ') : ows(v));

const digitString = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });

/** A number of 17 to 4000 digits: all nines, a small value behind many zeros, or any digits. */
const longNumber = (size: number) =>
  fc.oneof(
    fc.integer({ min: 17, max: 4000 }).map((n) => '9'.repeat(n)),
    fc.tuple(fc.integer({ min: 16, max: 4000 }), fc.nat(size + 2)).map(([zeros, n]) => `${'0'.repeat(zeros)}${n}`),
    digitString(17, 400),
  );

const smallNumber = (size: number) => fc.nat(size + 2).map(String);
const eitherNumber = (size: number) => fc.oneof(longNumber(size), smallNumber(size));

const longRange = (size: number) =>
  fc.oneof(
    fc.tuple(longNumber(size), eitherNumber(size)).map(([a, b]) => `bytes=${a}-${b}`),
    fc.tuple(smallNumber(size), longNumber(size)).map(([a, b]) => `bytes=${a}-${b}`),
    longNumber(size).map((a) => `bytes=${a}-`),
    longNumber(size).map((a) => `bytes=-${a}`),
    fc.tuple(longNumber(size), eitherNumber(size)).map(([a, b]) => `bytes=${a}-${b},0-0`),
  );

const longLegacy = (size: number) =>
  fc.oneof(
    fc.tuple(longNumber(size), eitherNumber(size), fc.oneof(fc.constant('*'), eitherNumber(size))).map(([a, b, l]) => `bytes ${a}-${b}/${l}`),
    fc.tuple(smallNumber(size), longNumber(size), fc.oneof(fc.constant('*'), eitherNumber(size))).map(([a, b, l]) => `bytes ${a}-${b}/${l}`),
    fc.tuple(smallNumber(size), smallNumber(size), longNumber(size)).map(([a, b, l]) => `bytes ${a}-${b}/${l}`),
  );

/** One of up to 1001 ranges: short numbers, so that 1001 of them stay below Node's 16 KiB of headers. */
const shortSpec = (size: number) => {
  const at = fc.nat(Math.min(size + 2, 99_999));
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(at, fc.nat(6)).map(([a, k]) => `${a}-${a + k}`) },
    { weight: 1, arbitrary: at.map((a) => `${a}-`) },
    { weight: 1, arbitrary: at.map((a) => `-${a}`) },
    { weight: 1, arbitrary: fc.tuple(at, at).map(([a, b]) => ` ${a} - ${b} `) },
    { weight: 1, arbitrary: fc.constantFrom('', '-', 'x', '1-x', '--1') },
  );
};

const manyRanges = (size: number) =>
  fc
    .tuple(
      fc.oneof(fc.integer({ min: 2, max: 1001 }), fc.constantFrom(999, 1000, 1001)),
      fc.constantFrom('bytes=', 'BYTES =', 'items='),
    )
    .chain(([n, unit]) => fc.array(shortSpec(size), { minLength: n, maxLength: n }).map((specs) => `${unit}${specs.join(',')}`));

const LATIN1_HIGH = fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c));
/** Non-ASCII text as it travels: latin-1 bytes, or UTF-8 bytes (which a server reads as latin-1). */
const nonAsciiText = fc.oneof(
  fc.string({ unit: LATIN1_HIGH, minLength: 1, maxLength: 6 }),
  fc
    .array(fc.oneof(fc.integer({ min: 0x80, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0x10ffff })), { minLength: 1, maxLength: 4 })
    .map((cps) => Buffer.from(String.fromCodePoint(...cps), 'utf8').toString('latin1')),
  fc.constantFrom('\u00a0', '\u0085', '\u00bd', '\u00b2', '\u00ff'),
);
/** A header with non-ASCII text put in: at its start, at its end (where a careless trim would eat it), or anywhere. */
const withNonAscii = (header: fc.Arbitrary<string>) =>
  fc
    .tuple(header, fc.oneof(nonAsciiText, fc.constant('\u00a0')), fc.oneof(fc.constant(0), fc.constant(-1), fc.nat()))
    .map(([h, text, at]) => {
      const i = at === -1 ? h.length : at % (h.length + 1);
      return `${h.slice(0, i)}${text}${h.slice(i)}`;
    });

const BLANKS = fc.constantFrom('', '', ' ', '\t', '   ', ' \t \t ');

type Kind = 'grammar' | 'long numbers' | 'many ranges' | 'non-ASCII' | 'empty or blank' | 'repeated';

const labelled = (kind: Kind, value: fc.Arbitrary<Sent>) => value.map((v) => ({ kind, value: v }));

const drawnRange = (size: number) =>
  fc.oneof(
    { weight: 14, arbitrary: labelled('grammar', rangeHeader(size)) },
    { weight: 2, arbitrary: labelled('long numbers', longRange(size)) },
    { weight: 1, arbitrary: labelled('many ranges', manyRanges(size)) },
    { weight: 2, arbitrary: labelled('non-ASCII', withNonAscii(rangeHeader(size))) },
    { weight: 1, arbitrary: labelled('empty or blank', BLANKS) },
    { weight: 1, arbitrary: labelled('repeated', fc.array(rangeHeader(size), { minLength: 2, maxLength: 3 })) },
  );

const drawnLegacy = (size: number) =>
  fc.oneof(
    { weight: 14, arbitrary: labelled('grammar', legacyHeader(size)) },
    { weight: 2, arbitrary: labelled('long numbers', longLegacy(size)) },
    { weight: 2, arbitrary: labelled('non-ASCII', withNonAscii(legacyHeader(size))) },
    { weight: 1, arbitrary: labelled('empty or blank', BLANKS) },
    { weight: 1, arbitrary: labelled('repeated', fc.array(legacyHeader(size), { minLength: 2, maxLength: 3 })) },
  );

/** If-Range, drawn before the image's ETag is known. */
type IfRange =
  | { kind: 'none' | 'current' | 'stale' | 'weak' | 'date' | 'padded' | 'nbsp' | 'upper' | 'unquoted' | 'repeated' }
  | { kind: 'blank' | 'junk'; text: string };

const drawnIfRange: fc.Arbitrary<IfRange> = fc.oneof(
  { weight: 20, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 4, arbitrary: fc.constant({ kind: 'current' as const }) },
  { weight: 3, arbitrary: fc.constantFrom(...(['stale', 'weak', 'date', 'padded', 'nbsp', 'upper', 'unquoted', 'repeated'] as const).map((kind) => ({ kind }))) },
  { weight: 1, arbitrary: BLANKS.map((text) => ({ kind: 'blank' as const, text })) },
  { weight: 1, arbitrary: fc.oneof(nonAsciiText, fc.string({ maxLength: 40 })).map((text) => ({ kind: 'junk' as const, text })) },
);

function ifRangeSent(drawn: IfRange, etag: string): Sent | undefined {
  switch (drawn.kind) {
    case 'none':
    case 'current':
    case 'stale':
    case 'weak':
    case 'date':
      return ifRangeValue(drawn.kind, etag);
    case 'padded':
      return ` \t${etag}\t `;
    case 'nbsp':
      return `${etag}\u00a0`;
    case 'upper':
      return etag.toUpperCase();
    case 'unquoted':
      return etag.slice(1, -1);
    case 'repeated':
      return [etag, etag];
    default:
      return drawn.text;
  }
}

/**
 * What Range and Content-Range may carry together. Node refuses a request whose header block
 * reaches 16 KiB (`http.maxHeaderSize`) with a bare 431 of its own, before any handler runs
 * (security.test.ts holds servers to that); this fuzz is about the answers that reach one, so it
 * keeps what it sends of the two below that, with room for the request line and the other
 * headers. Alone, each stays below it (1001 short ranges take some 10 kB, three numbers of 4000
 * digits 12 kB); together, a draw in 100,000 or so goes past it, and fails as Node's 431.
 */
const HEADER_BUDGET = 15_000;
const sentLength = (v: Sent) => (Array.isArray(v) ? v.reduce((n, s) => n + s.length, 0) : v.length);

const drawnRequest = (size: number, maxRanges: fc.Arbitrary<number>) =>
  fc
    .record({
      which: fc.constantFrom('range', 'range', 'range', 'range', 'legacy', 'legacy', 'legacy', 'both', 'neither'),
      range: drawnRange(size),
      contentRange: drawnLegacy(size),
      ifRange: drawnIfRange,
      maxRanges,
      method: fc.constantFrom('GET', 'GET', 'GET', 'GET', 'GET', 'HEAD'),
    })
    .filter((r) => (r.which === 'range' || r.which === 'both' ? sentLength(r.range.value) : 0) + (r.which === 'legacy' || r.which === 'both' ? sentLength(r.contentRange.value) : 0) <= HEADER_BUDGET);

const BARE_MAX_RANGES = [1, 2, 3, 5, 10, 1000];

/** A case for serveImage in the bare server: an in-memory image and how its source behaves. */
const bareCase = fc
  .oneof(
    { weight: 12, arbitrary: imageSize },
    { weight: 1, arbitrary: fc.integer({ min: 5001, max: 300_000 }) },
    { weight: 1, arbitrary: fc.constantFrom(65_535, 65_536, 65_537, 16_384, 16_385) },
  )
  .chain((size) =>
    fc.record({
      target: fc.constant<'bare'>('bare'),
      size: fc.constant(size),
      offset: fc.nat(POOL.length - size),
      ignoresRange: fc.boolean(),
      chunk: size <= 5000 ? fc.oneof(fc.constant(size), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 1024 })) : fc.oneof(fc.constant(size), fc.integer({ min: 1024, max: 65_536 })),
      request: drawnRequest(size, fc.constantFrom(...BARE_MAX_RANGES)),
    }),
  );

/** A case for the demo: one of its images, with Glance's one range or with up to 1000. */
const demoCase = fc.nat(DEMO_IMAGES.length - 1).chain((image) =>
  fc.record({
    target: fc.constant<'demo'>('demo'),
    image: fc.constant(image),
    request: drawnRequest((DEMO_IMAGES[image] as DemoImage).bytes.length, fc.constantFrom(1, 1000)),
  }),
);

const fuzzCase = fc.oneof({ weight: 100 - DEMO_PERCENT, arbitrary: bareCase }, { weight: DEMO_PERCENT, arbitrary: demoCase });

// ---------------------------------------------------------------------------------------------
// The servers

type Current = MemoryImage;

let current: Current | null = null;
let bare: http.Server;
let barePort: number;
let demos: Map<number, Demo>;
let blobs: BlobServer;

const source = memorySource(() => current as Current);

const handlers = new Map(BARE_MAX_RANGES.map((n) => [n, serveImage({ source, maxRanges: n })]));

const agents = new Map<string, http.Agent>();
function agentFor(base: string): http.Agent {
  let agent = agents.get(base);
  if (!agent) agents.set(base, (agent = new http.Agent({ keepAlive: true, maxSockets: 1 })));
  return agent;
}

function fetchRaw(base: string, method: string, path: string, headers: Headers): Promise<Reply> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, method, path, headers, agent: agentFor(base), timeout: 20_000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error(`${method} ${base}${path}: the answer was cut off`)));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${base}${path}: no answer within 20 s`)));
    req.on('error', reject);
    req.end();
  });
}

async function send(base: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Reply> {
  const res = await fetch(`${base}${path}`, { method, headers, ...(body ? { body } : {}) });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: Buffer.from(await res.arrayBuffer()) };
}

async function createImage(base: string): Promise<string> {
  const res = await send(base, 'POST', '/v2/images', { 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ name: 'fuzz', disk_format: 'raw', container_format: 'bare' })));
  expect(res.status).toBe(201);
  return (JSON.parse(res.body.toString()) as { id: string }).id;
}

/** Put the images into a demo; their ids there, in order. */
async function fill(demo: Demo): Promise<string[]> {
  const ids: string[] = [];
  for (const [i, image] of DEMO_IMAGES.entries()) {
    const id = await createImage(demo.url);
    if (i === DEMO_IMAGES.length - 1) {
      const url = blobs.put(`${id}.raw`, image.bytes);
      const body = JSON.stringify([{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }]);
      const res = await send(demo.url, 'PATCH', `/v2/images/${id}`, { 'content-type': 'application/openstack-images-v2.1-json-patch' }, Buffer.from(body));
      expect(res.status).toBe(200);
      ids.push(id);
      continue;
    }
    const put = await send(demo.url, 'PUT', `/v2/images/${id}/file`, { 'content-type': 'application/octet-stream' }, image.bytes);
    expect(put.status).toBe(204);
    const shown = JSON.parse((await send(demo.url, 'GET', `/v2/images/${id}`, {})).body.toString()) as Record<string, unknown>;
    expect(shown).toMatchObject({ status: 'active', size: image.bytes.length, checksum: image.checksum });
    ids.push(id);
  }
  return ids;
}

beforeAll(async () => {
  bare = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const handler = handlers.get(Number(req.url?.slice(1)));
    if (!handler) {
      res.writeHead(404).end();
      return;
    }
    handler(req, res, (err) => sendGlanceError(req, res, err ?? new Error('no error')));
  });
  await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
  barePort = (bare.address() as AddressInfo).port;
  const [one, many, blobServer] = await Promise.all([startDemo(), startDemo(['--max-ranges', '1000']), startBlobServer()]);
  demos = new Map([
    [1, one],
    [1000, many],
  ]);
  blobs = blobServer;
}, 30_000);

afterAll(async () => {
  for (const agent of agents.values()) agent.destroy();
  await Promise.all([
    new Promise<void>((resolve) => {
      if (!bare) return resolve();
      bare.closeAllConnections();
      bare.close(() => resolve());
    }),
    ...[...(demos?.values() ?? [])].map((d) => d.close()),
    blobs?.close(),
  ]);
});

// ---------------------------------------------------------------------------------------------
// The fuzz

describe('2. Image data: Range and legacy Content-Range fuzzed against the reference model', () => {
  it(
    `should answer ${RUNS} random and pathological download requests exactly as the model, never 5xx, through serveImage and the demo`,
    async () => {
      // Each demo holds the images under its own ids.
      const ids = new Map<number, string[]>();
      for (const [max, demo] of demos) ids.set(max, await fill(demo));
      // The image at a location: what the demo knows of it (no checksum, so no ETag nor Content-MD5).
      const located = DEMO_IMAGES[DEMO_IMAGES.length - 1] as DemoImage;
      const locatedChecksum = new Map<number, string | null>();
      for (const [max, demo] of demos) {
        const id = (ids.get(max) as string[])[DEMO_IMAGES.length - 1] as string;
        const shown = JSON.parse((await send(demo.url, 'GET', `/v2/images/${id}`, {})).body.toString()) as { checksum: string | null; size: number };
        expect(shown.size).toBe(located.bytes.length);
        locatedChecksum.set(max, shown.checksum);
      }

      const categories = new Set<string>();
      const kinds = new Map<string, number>();
      const count = (key: string) => kinds.set(key, (kinds.get(key) ?? 0) + 1);
      const started = process.hrtime.bigint();

      await fc.assert(
        fc.asyncProperty(fuzzCase, async (c) => {
          const drawn = c.request;
          let base: string;
          let path: string;
          let image: Buffer;
          let checksum: string | null;
          if (c.target === 'bare') {
            image = POOL.subarray(c.offset, c.offset + c.size);
            checksum = md5(image);
            current = { image, checksum, ignoresRange: c.ignoresRange, chunk: c.chunk };
            base = `http://127.0.0.1:${barePort}`;
            path = `/${drawn.maxRanges}`;
          } else {
            const demo = demos.get(drawn.maxRanges) as Demo;
            const shown = DEMO_IMAGES[c.image] as DemoImage;
            image = shown.bytes;
            const located = c.image === DEMO_IMAGES.length - 1;
            checksum = located ? (locatedChecksum.get(drawn.maxRanges) ?? null) : shown.checksum;
            base = demo.url;
            path = `/v2/images/${(ids.get(drawn.maxRanges) as string[])[c.image]}/file`;
          }
          const etag = checksum === null ? null : `"${checksum}"`;

          const headers: Headers = { accept: 'text/plain' };
          // No ETag: no If-Range can match (NUL cannot be sent in a header).
          const asked: Ask = { size: image.length, etag: etag ?? '\u0000', maxRanges: drawn.maxRanges };
          if (drawn.which === 'range' || drawn.which === 'both') {
            headers['range'] = drawn.range.value;
            asked.range = seen(drawn.range.value);
            count(`Range: ${drawn.range.kind}`);
          }
          if (drawn.which === 'legacy' || drawn.which === 'both') {
            headers['content-range'] = drawn.contentRange.value;
            asked.contentRange = seen(drawn.contentRange.value);
            count(`Content-Range: ${drawn.contentRange.kind}`);
          }
          const ifRange = ifRangeSent(drawn.ifRange, etag ?? '"none"');
          if (ifRange !== undefined) {
            headers['if-range'] = ifRange;
            asked.ifRange = seen(ifRange);
            count(`If-Range: ${drawn.ifRange.kind}`);
          }
          count(c.target === 'bare' ? 'bare serveImage' : `demo --max-ranges ${drawn.maxRanges}`);

          const reply = await fetchRaw(base, drawn.method, path, headers).catch((err: Error) => {
            throw new Error(`${drawn.method} ${base}${path}: no answer, the connection was cut (${err.message})`);
          });
          if (reply.status >= 500) throw new Error(`${reply.status} from ${base}${path}: ${reply.body.toString('latin1').slice(0, 300)}`);
          const expected = model(asked);
          categories.add(category(expected));
          expectReply(reply, expected, { image, checksum, etag, method: drawn.method, legacy: 'content-range' in headers });
        }),
        { numRuns: RUNS, seed: SEED },
      );

      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const report = process.env['FUZZ_REPORT'];
      if (report) {
        const lines = [...kinds].sort(([a], [b]) => a.localeCompare(b)).map(([kind, n]) => `${String(n).padStart(8)}  ${kind}`);
        writeFileSync(report, `${RUNS} ${SEED} ${seconds.toFixed(2)} ${(RUNS / seconds).toFixed(0)}\n${lines.join('\n')}\n`);
      }

      // Every server still answers, whole images, byte for byte.
      current = { image: POOL.subarray(0, 1000), checksum: md5(POOL.subarray(0, 1000)), ignoresRange: false, chunk: 100 };
      const after = await fetchRaw(`http://127.0.0.1:${barePort}`, 'GET', '/1', {});
      expect(after.status).toBe(200);
      expect(after.body.equals(POOL.subarray(0, 1000))).toBe(true);
      for (const [max, demo] of demos) {
        expect(demo.child.exitCode).toBeNull();
        for (const [i, shown] of DEMO_IMAGES.entries()) {
          const whole = await fetchRaw(demo.url, 'GET', `/v2/images/${(ids.get(max) as string[])[i]}/file`, {});
          expect(whole.status).toBe(200);
          expect(whole.body.equals(shown.bytes)).toBe(true);
        }
      }

      // The cases reach every answer of the contract and every kind of header, on both paths (so
      // the property can fail on each). A short run (FUZZ_RUNS below 2000) is not held to this.
      if (RUNS >= 2000) {
        expect([...categories].sort()).toEqual(CATEGORIES);
        for (const kind of ['grammar', 'long numbers', 'non-ASCII', 'empty or blank', 'repeated']) {
          expect(kinds.get(`Range: ${kind}`)).toBeGreaterThan(0);
          expect(kinds.get(`Content-Range: ${kind}`)).toBeGreaterThan(0);
        }
        expect(kinds.get('Range: many ranges')).toBeGreaterThan(0);
        for (const kind of ['current', 'stale', 'weak', 'date', 'padded', 'nbsp', 'upper', 'unquoted', 'repeated', 'blank', 'junk']) {
          expect(kinds.get(`If-Range: ${kind}`)).toBeGreaterThan(0);
        }
        expect(kinds.get('bare serveImage')).toBeGreaterThan(RUNS / 2);
        expect(kinds.get('demo --max-ranges 1')).toBeGreaterThan(RUNS / 50);
        expect(kinds.get('demo --max-ranges 1000')).toBeGreaterThan(RUNS / 50);
      }
    },
    Math.max(90_000, RUNS * 10),
  );
});
