/**
 * BEHAVIOUR.md §2 as a reference model and a header grammar, shared by the property test
 * (property.test.ts) and the fuzz suite (fuzz.test.ts). The model is written from the contract and
 * the answers recorded from Glance 25.1.0, not from the code:
 *
 *   - one range: webob's `^bytes *= *(\d*) *- *(\d*)`, any case, a prefix match;
 *   - several (a comma anywhere): Glance's 400, or with multipart enabled range-parser's reading,
 *     combined, with a suffix longer than the image meaning the whole image;
 *   - the legacy form: webob's `^bytes (?:(\d+)-(\d+)|[*])\/(?:(\d+)|[*])` and its validity rules,
 *     then Glance's stop and start checks.
 *
 * The model counts with BigInt, as Python does. The grammar draws Range and legacy Content-Range
 * headers (valid and invalid: unit in any case, blanks, numbers with leading zeros, suffixes, open
 * ends, garbage, commas, `*`, stated lengths) with numbers below 2^53 (the known float difference
 * past it is pinned in decide.test.ts). `expectReply` states what the wire must carry for an answer
 * of the model: status, Content-Range, Content-Length, the deprecation signal and the exact bytes.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import type { ImageData } from '../../lib/ranges/serve';

// ---------------------------------------------------------------------------------------------
// The reference model

export type Answer =
  | { status: 200 }
  | { status: 206; ranges: [number, number][] }
  | { status: 400 | 416; type: string; message: string };

export interface Ask {
  range?: string;
  contentRange?: string;
  ifRange?: string;
  size: number;
  /** The image's strong ETag, quoted. */
  etag: string;
  /** Several ranges allowed in one answer; 0 or 1: Glance's 400. */
  maxRanges: number;
}

export const MULTIPLE = 'Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.';

export function model(ask: Ask): Answer {
  const size = BigInt(ask.size);
  const last = `${ask.size - 1}`;
  const e416 = (message: string): Answer => ({ status: 416, type: 'range.not_satisfiable', message });
  const badRange = e416('Invalid Range header.');
  const badLegacy = e416('Invalid Content-Range header.');
  const startError = (header: string) => e416(`Invalid start position in ${header} header. Start position MUST be in the inclusive range [0, ${last}].`);
  const stopError = e416(`Invalid stop position in Content-Range header. The stop position MUST be in the inclusive range [0, ${last}].`);
  const bytes = (ranges: [bigint, bigint][]): Answer => ({ status: 206, ranges: ranges.map(([s, e]) => [Number(s), Number(e)]) });

  if (ask.range === undefined && ask.contentRange === undefined) return { status: 200 };
  // If-Range: only the current strong ETag, compared exactly, keeps the range.
  if (ask.ifRange !== undefined && ask.ifRange.trim() !== ask.etag) return { status: 200 };

  if (ask.range !== undefined) {
    const header = ask.range;
    const commas = header.split(',').length - 1;
    if (commas > 0) {
      if (ask.maxRanges <= 1) return { status: 400, type: 'range.multiple', message: MULTIPLE };
      if (commas + 1 > ask.maxRanges) {
        return { status: 400, type: 'range.too_many', message: `Too many ranges in the Range header: at most ${ask.maxRanges} are served in one request.` };
      }
      return several(header);
    }
    const m = /^bytes *= *(\d*) *- *(\d*)/i.exec(header);
    if (!m) return badRange;
    const first = m[1] ?? '';
    const second = m[2] ?? '';
    if (first === '') {
      // webob: Range(-n, None); Glance sends the last n bytes, or all of them when n >= size.
      if (second === '') return badRange; // Glance: 500
      // No bytes, so no last bytes: Glance's start-position 416 (Glance itself sends that for
      // `bytes=-0`, and a 206 `bytes 0--1/0` for `bytes=-n`: ours).
      if (size === 0n) return startError('Range');
      const n = BigInt(second);
      if (n === 0n) return badRange; // ours; Glance: the whole image
      return bytes([[n >= size ? 0n : size - n, size - 1n]]);
    }
    const start = BigInt(first);
    const stop = second === '' ? null : BigInt(second) + 1n; // webob counts the end exclusive
    if (stop !== null && start >= stop) return badRange;
    if (start >= size) return startError('Range');
    return bytes([[start, stop === null || stop > size ? size - 1n : stop - 1n]]);
  }

  const m = /^bytes (?:(\d+)-(\d+)|[*])\/(?:(\d+)|[*])/.exec(ask.contentRange as string);
  if (!m || m[1] === undefined || m[2] === undefined) return badLegacy;
  const start = BigInt(m[1]);
  const stop = BigInt(m[2]) + 1n;
  const length = m[3] === undefined ? null : BigInt(m[3]);
  if (!(start < stop)) return badLegacy;
  if (length !== null && !(stop <= length && start < length)) return badLegacy;
  if (stop > size && length === null) return stopError;
  if (stop > size && start < size) return stopError; // ours; Glance hangs
  if (start >= size) return startError('Content-Range');
  return bytes([[start, stop - 1n]]);

  /** Several ranges, read the way range-parser reads them. */
  function several(header: string): Answer {
    const eq = header.indexOf('=');
    if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return badRange;
    const found: [bigint, bigint][] = [];
    for (const spec of header.slice(eq + 1).split(',')) {
      const dash = spec.indexOf('-');
      if (dash < 0) return badRange;
      const a = spec.slice(0, dash).trim();
      const b = spec.slice(dash + 1).trim();
      if (!/^\d*$/.test(a) || !/^\d*$/.test(b) || (a === '' && b === '')) return badRange;
      if (a === '') {
        const n = BigInt(b);
        if (n > 0n) found.push([n >= size ? 0n : size - n, size - 1n]);
        continue;
      }
      const s = BigInt(a);
      const e = b === '' ? size - 1n : BigInt(b) < size ? BigInt(b) : size - 1n;
      if (s <= e) found.push([s, e]);
    }
    if (found.length === 0) return startError('Range');
    found.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    const merged: [bigint, bigint][] = [];
    for (const [s, e] of found) {
      const top = merged[merged.length - 1];
      if (top && s <= top[1] + 1n) top[1] = e > top[1] ? e : top[1];
      else merged.push([s, e]);
    }
    return bytes(merged);
  }
}

/** Ranges in ascending order: the model does not fix the order of the parts of a multipart answer. */
export const ascending = (ranges: [number, number][]) => [...ranges].sort((x, y) => x[0] - y[0]);

export function normalised(answer: Answer): Answer {
  return answer.status === 206 ? { status: 206, ranges: ascending(answer.ranges) } : answer;
}

// ---------------------------------------------------------------------------------------------
// The grammar

export const SAFE_BIG = 2 ** 52;

/** A position: small, near the image's end, anywhere in it, or far past it. */
export const position = (size: number) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 0, max: size + 2 }) },
    { weight: 3, arbitrary: fc.constantFrom(0, 1, Math.max(size - 2, 0), size - 1, size, size + 1) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 12 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: SAFE_BIG }) },
  );
export const leadingZeros = fc.oneof({ weight: 6, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('0', '00') });
export const digits = (n: number, zeros: string) => `${zeros}${n}`;

export const number = (size: number) => fc.tuple(position(size), leadingZeros).map(([n, zeros]) => digits(n, zeros));

/** A short run from a position: what most clients ask for. */
export const closePair = (size: number) =>
  fc
    .tuple(position(size), fc.integer({ min: 0, max: 6 }), leadingZeros, leadingZeros)
    .map(([a, k, z1, z2]): [string, string] => [digits(a, z1), digits(a + k, z2)]);

/** Two positions: independent, or a short run. */
export const pair = (size: number) => fc.oneof({ weight: 1, arbitrary: fc.tuple(number(size), number(size)) }, { weight: 2, arbitrary: closePair(size) });

export const blank = fc.oneof(
  { weight: 10, arbitrary: fc.constant('') },
  { weight: 2, arbitrary: fc.constant(' ') },
  { weight: 1, arbitrary: fc.constantFrom('  ', '\t') },
);
export const garbage = fc.constantFrom('abc', '+1', '*', 'x', '1.5', '=', '--', ';', 'bytes', ' 3', '-1');

export const unitInAnyCase = fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }).map((up) => [...'bytes'].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(''));
export const unit = fc.oneof(
  { weight: 6, arbitrary: fc.constant('bytes') },
  { weight: 3, arbitrary: unitInAnyCase },
  { weight: 1, arbitrary: fc.constantFrom('items', 'byte', 'bytesx', '', 'none') },
);

/** A spec range-parser accepts: `first-last`, `first-`, `-suffix`, blanks around the dash. */
export const wellFormed = (size: number) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.tuple(pair(size), blank, blank).map(([[a, b], b1, b2]) => `${a}${b1}-${b2}${b}`) },
    { weight: 2, arbitrary: fc.tuple(number(size), blank).map(([a, b1]) => `${a}${b1}-`) },
    { weight: 2, arbitrary: fc.tuple(blank, number(size)).map(([b1, n]) => `-${b1}${n}`) },
  );

export const spec = (size: number) =>
  fc.oneof(
    { weight: 10, arbitrary: wellFormed(size) },
    { weight: 1, arbitrary: fc.constantFrom('-', '', ' ') },
    { weight: 1, arbitrary: garbage },
    { weight: 1, arbitrary: fc.tuple(number(size), number(size), garbage).map(([a, b, g]) => `${a}-${b}${g}`) },
  );

export const specs = (size: number) =>
  fc.oneof(
    { weight: 4, arbitrary: spec(size).map((s) => [s]) },
    {
      weight: 3,
      arbitrary: fc.array(
        fc.tuple(
          blank,
          fc.oneof(
            { weight: 8, arbitrary: closePair(size).map(([a, b]) => `${a}-${b}`) },
            { weight: 4, arbitrary: wellFormed(size) },
            { weight: 1, arbitrary: spec(size) },
          ),
          blank,
        ).map(([x, s, y]) => `${x}${s}${y}`),
        { minLength: 2, maxLength: 5 },
      ),
    },
  );

export const rangeHeader = (size: number) =>
  fc.oneof(
    {
      weight: 12,
      arbitrary: fc
        .tuple(
          fc.oneof({ weight: 12, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom(' ', '\t') }),
          unit,
          blank,
          fc.oneof({ weight: 12, arbitrary: fc.constant('=') }, { weight: 1, arbitrary: fc.constantFrom('', ' ', ':') }),
          blank,
          specs(size),
        )
        .map(([b0, u, b1, eq, b2, list]) => `${b0}${u}${b1}${eq}${b2}${list.join(',')}`),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  );

export const legacyHeader = (size: number) =>
  fc.oneof(
    {
      weight: 12,
      arbitrary: fc
        .tuple(
          fc.oneof({ weight: 12, arbitrary: fc.constant('bytes') }, { weight: 1, arbitrary: fc.constantFrom('BYTES', 'Bytes', 'items', 'bytes ', '') }),
          fc.oneof({ weight: 12, arbitrary: pair(size).map(([a, b]) => `${a}-${b}`) }, { weight: 1, arbitrary: fc.constantFrom('*', '-', '1-', '-1') }),
          fc.oneof(
            { weight: 4, arbitrary: fc.constant('/*') },
            { weight: 2, arbitrary: number(size).map((n) => `/${n}`) },
            { weight: 2, arbitrary: fc.integer({ min: size, max: 2 * size + 2 }).map((n) => `/${n}`) },
            { weight: 1, arbitrary: fc.constantFrom('', '/', '/x') },
          ),
          fc.oneof({ weight: 8, arbitrary: fc.constant('') }, { weight: 1, arbitrary: garbage }),
        )
        .map(([u, r, l, g]) => `${u} ${r}${l}${g}`),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  );

export const stale = '"00000000000000000000000000000000"';
export const ifRangeKind = fc.oneof(
  { weight: 12, arbitrary: fc.constant<'none'>('none') },
  { weight: 2, arbitrary: fc.constant<'current'>('current') },
  { weight: 1, arbitrary: fc.constantFrom<'stale' | 'weak' | 'date'>('stale', 'weak', 'date') },
);

export function ifRangeValue(kind: 'none' | 'current' | 'stale' | 'weak' | 'date', etag: string): string | undefined {
  switch (kind) {
    case 'none':
      return undefined;
    case 'current':
      return etag;
    case 'stale':
      return stale;
    case 'weak':
      return `W/${etag}`;
    default:
      return 'Wed, 21 Oct 2015 07:28:00 GMT';
  }
}

/** A download request: one of Range, Content-Range, both or neither, and maybe If-Range. */
export const request = (size: number) =>
  fc.record({
    which: fc.constantFrom('range', 'range', 'range', 'range', 'legacy', 'legacy', 'legacy', 'both', 'neither'),
    range: rangeHeader(size),
    contentRange: legacyHeader(size),
    ifRange: ifRangeKind,
    maxRanges: fc.constantFrom(1, 2, 3, 5, 10),
  });

export const imageSize = fc.oneof({ weight: 1, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 40 }) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 5000 }) });

export interface Drawn {
  which: string;
  range: string;
  contentRange: string;
  ifRange: 'none' | 'current' | 'stale' | 'weak' | 'date';
  maxRanges: number;
}

export function ask(size: number, etag: string, drawn: Drawn, trim: (s: string) => string = (s) => s): Ask {
  const a: Ask = { size, etag, maxRanges: drawn.maxRanges };
  if (drawn.which === 'range' || drawn.which === 'both') a.range = trim(drawn.range);
  if (drawn.which === 'legacy' || drawn.which === 'both') a.contentRange = trim(drawn.contentRange);
  const ifRange = ifRangeValue(drawn.ifRange, etag);
  if (ifRange !== undefined) a.ifRange = trim(ifRange);
  return a;
}

/** The kind of answer, to check that a grammar reaches every answer of the contract. */
export function category(answer: Answer): string {
  if (answer.status === 200) return '200';
  if (answer.status === 206) return answer.ranges.length === 1 ? '206 one range' : '206 multipart';
  if (answer.status === 400) return `400 ${answer.type}`;
  return `416 ${answer.message.replace(/ (?:Start|The stop) position MUST.*$/, '')}`;
}

/** Every kind of answer of the contract (see {@link category}). */
export const CATEGORIES = [
  '200',
  '206 multipart',
  '206 one range',
  '400 range.multiple',
  '400 range.too_many',
  '416 Invalid Content-Range header.',
  '416 Invalid Range header.',
  '416 Invalid start position in Content-Range header.',
  '416 Invalid start position in Range header.',
  '416 Invalid stop position in Content-Range header.',
].sort();

// ---------------------------------------------------------------------------------------------
// The wire

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** HTTP strips blanks (SP, HTAB) around a field value before anyone sees it. */
export const ows = (s: string) => s.replace(/^[ \t]+|[ \t]+$/g, '');

/** The multipart body the answer must carry, with its parts in the order the answer has them. */
export function multipartBody(image: Buffer, boundary: string, ranges: [number, number][]): Buffer {
  const pieces: Buffer[] = [];
  ranges.forEach(([s, e], i) => {
    pieces.push(Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${s}-${e}/${image.length}\r\n\r\n`, 'latin1'));
    pieces.push(image.subarray(s, e + 1));
  });
  pieces.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1'));
  return Buffer.concat(pieces);
}

/** What was asked for, as far as the answer's bytes depend on it. */
export interface Served {
  readonly image: Buffer;
  /** The image's MD5, hex, if the server knows it (sent as Content-MD5). */
  readonly checksum: string | null;
  /** Its strong ETag, quoted, if it has one. */
  readonly etag: string | null;
  readonly method: string;
  /** The request carried a `Content-Range` header. */
  readonly legacy: boolean;
}

/** Assert that `reply` is exactly the answer `expected` of the model: status, headers that matter, bytes. */
export function expectReply(reply: Reply, expected: Answer, served: Served): void {
  const { image, checksum, etag } = served;
  const head = served.method === 'HEAD';
  const length = Number(reply.headers['content-length']);
  if (!head) expect(length).toBe(reply.body.length);
  else expect(reply.body.length).toBe(0);
  expect(reply.status).toBe(expected.status);
  // The deprecation signal goes on every answer to a request that sent Content-Range.
  expect(reply.headers['deprecation']).toBe(served.legacy ? '@1487721600' : undefined);

  if (expected.status === 200) {
    expect(reply.headers['content-range']).toBeUndefined();
    expect(reply.headers['accept-ranges']).toBe('bytes');
    expect(reply.headers['etag']).toBe(etag ?? undefined);
    expect(length).toBe(image.length);
    if (!head) expect(reply.body.equals(image)).toBe(true);
  } else if (expected.status === 206) {
    expect(reply.headers['accept-ranges']).toBe('bytes');
    expect(reply.headers['content-md5']).toBe(checksum ?? undefined);
    const [only] = expected.ranges;
    if (expected.ranges.length === 1 && only) {
      const [s, e] = only;
      expect(reply.headers['content-type']).toBe('application/octet-stream');
      expect(reply.headers['content-range']).toBe(`bytes ${s}-${e}/${image.length}`);
      expect(length).toBe(e - s + 1);
      if (!head) expect(reply.body.equals(image.subarray(s, e + 1))).toBe(true);
    } else {
      const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(reply.headers['content-type'] ?? '')?.[1];
      expect(boundary).toBeDefined();
      expect(reply.headers['content-range']).toBeUndefined();
      if (!head) {
        // The parts, in the order the answer sends them; as a set they must be the model's.
        const order = [...reply.body.toString('latin1').matchAll(new RegExp(`--${boundary}\\r\\nContent-Type: application/octet-stream\\r\\nContent-Range: bytes (\\d+)-(\\d+)/`, 'g'))].map(
          (m): [number, number] => [Number(m[1]), Number(m[2])],
        );
        expect(ascending(order)).toEqual(ascending(expected.ranges));
        expect(reply.body.equals(multipartBody(image, boundary as string, order))).toBe(true);
      } else {
        expect(length).toBe(multipartBody(image, boundary as string, expected.ranges).length);
      }
    }
  } else {
    expect(reply.headers['content-type']).toBe('text/plain; charset=UTF-8');
    expect(reply.headers['accept-ranges']).toBeUndefined();
    const body =
      expected.status === 416
        ? `416 Request Range Not Satisfiable\n\nThe Range requested is not available.\n\n ${expected.message}  `
        : `400 Bad Request\n\n${expected.message}\n\n   `;
    expect(reply.headers['content-range']).toBe(expected.status === 416 ? `bytes */${image.length}` : undefined);
    expect(length).toBe(Buffer.byteLength(body));
    if (!head) expect(reply.body.toString('latin1')).toBe(body);
  }
}

// ---------------------------------------------------------------------------------------------
// An in-memory image source for serveImage, as the property and fuzz suites use it

export interface MemoryImage {
  image: Buffer;
  checksum: string;
  /** The source ignores the range and sends the whole image from offset 0. */
  ignoresRange: boolean;
  /** The source's stream yields chunks of this many bytes. */
  chunk: number;
}

function chunks(buffer: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buffer.length; i += size) out.push(buffer.subarray(i, i + size));
  return out;
}

/** A serveImage source over whatever image `current()` names at the time of each request. */
export function memorySource(current: () => MemoryImage): () => ImageData {
  return () => {
    const c = current();
    return {
      size: c.image.length,
      checksum: c.checksum,
      open: (range) => {
        if (!range || c.ignoresRange) return { stream: Readable.from(chunks(c.image, c.chunk)), offset: 0 };
        return { stream: Readable.from(chunks(c.image.subarray(range.start, range.end + 1), c.chunk)), offset: range.start };
      },
    };
  };
}
