/**
 * Which bytes of an image a download gets: the `Range` header (and the legacy `Content-Range`
 * request form) against the image size, as Glance 25 decides it, with RFC 9110's fixes where
 * Glance is wrong. Pure: headers and a size in, a decision out.
 *
 * A single range is parsed with webob's own grammar (`bytes *= *(\d*) *- *(\d*)`, any case,
 * trailing text ignored), because that is what Glance's clients have been sending for years; a
 * multi-range header, served only when multipart answers are enabled, goes through range-parser.
 */
import parseRange from 'range-parser';
import { glanceError, type GlanceError } from '../errors';

/** An inclusive byte range. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export type RangeDecision =
  | { readonly kind: 'whole' }
  | { readonly kind: 'partial'; readonly ranges: readonly ByteRange[] }
  | { readonly kind: 'error'; readonly error: GlanceError };

export interface RangeRequest {
  /** The `Range` header, if any. It wins over `contentRange` whenever present, even when invalid. */
  readonly range?: string | undefined;
  /** The legacy `Content-Range` request header, if any. */
  readonly contentRange?: string | undefined;
  /** The `If-Range` header, if any. */
  readonly ifRange?: string | undefined;
  /** Size of the image in bytes. */
  readonly size: number;
  /** The image's strong ETag (quoted), if known: `If-Range` matches only this. */
  readonly etag?: string | null | undefined;
  /** How many ranges one multipart answer may carry; 0 (the default) refuses multiple ranges as Glance does. */
  readonly maxRanges?: number;
}

const WHOLE: RangeDecision = { kind: 'whole' };
const RANGE = /^bytes *= *(\d*) *- *(\d*)/i;
const LEGACY = /^bytes (?:(\d+)-(\d+)|[*])\/(?:(\d+)|[*])/;

/** A 416 as Glance words it, with the `Content-Range: bytes *\/size` RFC 9110 asks for. */
export function unsatisfiable(message: string, size: number): GlanceError {
  return glanceError(416, 'range.not_satisfiable', message, { afterStockSentence: true, headers: { 'Content-Range': `bytes */${size}` } });
}

const fail = (error: GlanceError): RangeDecision => ({ kind: 'error', error });
const partial = (start: number, end: number): RangeDecision => ({ kind: 'partial', ranges: [{ start, end }] });

/** The bytes to send for this request. */
export function decideRange(request: RangeRequest): RangeDecision {
  const { range, contentRange, size } = request;
  if (range === undefined && contentRange === undefined) return WHOLE;
  if (request.ifRange !== undefined && !ifRangeMatches(request.ifRange, request.etag)) return WHOLE;
  if (range !== undefined) return decideRangeHeader(range, size, request.maxRanges ?? 0);
  return decideLegacy(contentRange as string, size);
}

/** `If-Range` holds only for the current strong ETag (RFC 9110 §13.1.5); a date or a weak tag never does. */
function ifRangeMatches(ifRange: string, etag: string | null | undefined): boolean {
  const value = ifRange.trim();
  return typeof etag === 'string' && !etag.startsWith('W/') && value === etag;
}

function decideRangeHeader(header: string, size: number, maxRanges: number): RangeDecision {
  if (header.includes(',')) {
    if (maxRanges <= 1) {
      return fail(
        glanceError(400, 'range.multiple', 'Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.'),
      );
    }
    return decideMultiple(header, size, maxRanges);
  }
  const m = RANGE.exec(header);
  const invalid = () => fail(unsatisfiable('Invalid Range header.', size));
  if (!m) return invalid();
  const [, first = '', last = ''] = m;
  // Compared as exact integers, as Glance (Python) does: digits past 2^53 must not round.
  const total = BigInt(size);
  if (first === '') {
    // A suffix: the last N bytes, or the whole image when N is larger. `bytes=-0` asks for no
    // byte at all, which RFC 9110 calls unsatisfiable (Glance sends the whole image).
    if (last === '') return invalid();
    // An image of no bytes has no last bytes either: Glance's 416 for its start position, which is
    // Glance's answer to `bytes=-0` there too (to `bytes=-N` it sends a 206 `bytes 0--1/0`).
    if (total === 0n) return fail(startError('Range', size));
    const n = BigInt(last);
    if (n === 0n) return invalid();
    return n < total ? partial(size - Number(n), size - 1) : partial(0, size - 1);
  }
  const start = BigInt(first);
  const end = last === '' ? null : BigInt(last);
  if (end !== null && start > end) return invalid();
  if (start >= total) return fail(startError('Range', size));
  return partial(Number(start), end === null || end >= total ? size - 1 : Number(end));
}

function startError(header: string, size: number): GlanceError {
  return unsatisfiable(`Invalid start position in ${header} header. Start position MUST be in the inclusive range [0, ${size - 1}].`, size);
}

function decideLegacy(header: string, size: number): RangeDecision {
  const invalid = () => fail(unsatisfiable('Invalid Content-Range header.', size));
  const m = LEGACY.exec(header);
  // `bytes */32` names no bytes: Glance fails with a 500 on it; it is simply invalid here.
  if (!m || m[1] === undefined || m[2] === undefined) return invalid();
  const start = BigInt(m[1]);
  const stop = BigInt(m[2]) + 1n; // exclusive, as webob counts
  const length = m[3] === undefined ? null : BigInt(m[3]);
  const total = BigInt(size);
  // webob's rules for a valid Content-Range, including the stated length when there is one.
  if (start >= stop) return invalid();
  if (length !== null && (stop > length || start >= length)) return invalid();
  if (stop > total && (length === null || start < total)) {
    return fail(unsatisfiable(`Invalid stop position in Content-Range header. The stop position MUST be in the inclusive range [0, ${size - 1}].`, size));
  }
  if (start >= total) return fail(startError('Content-Range', size));
  return partial(Number(start), Number(stop) - 1);
}

/** The result of range-parser, its raw codes wrapped once. */
export type ParsedRanges = { readonly ranges: ByteRange[] } | 'malformed' | 'unsatisfiable';

/**
 * Parse a multi-range header with range-parser: overlapping and adjacent ranges are combined, a
 * suffix longer than the image means the whole image (range-parser would drop it), and only the
 * `bytes` unit (in any case, with blanks around it) is accepted.
 */
export function parseByteRanges(header: string, size: number): ParsedRanges {
  const eq = header.indexOf('=');
  if (eq === -1 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return 'malformed';
  const specs = header
    .slice(eq + 1)
    .split(',')
    .map((spec) => {
      const suffix = /^\s*-\s*(\d+)\s*$/.exec(spec);
      return suffix && Number(suffix[1]) > size ? '0-' : spec;
    });
  const parsed = parseRange(size, `bytes=${specs.join(',')}`, { combine: true });
  if (parsed === -2) return 'malformed';
  if (parsed === -1) return 'unsatisfiable';
  if (parsed.type !== 'bytes') return 'malformed';
  return { ranges: parsed.map(({ start, end }) => ({ start, end })) };
}

/**
 * The refusal of a `Range` header that asks for more than `maxRanges` ranges (when several are
 * served at all), found by counting commas: it needs neither the image nor any parsing, so a header
 * with thousands of ranges costs nothing.
 */
export function tooManyRanges(header: string | undefined, maxRanges: number): GlanceError | null {
  if (header === undefined || maxRanges <= 1) return null;
  let commas = 0;
  for (let i = header.indexOf(','); i !== -1; i = header.indexOf(',', i + 1)) {
    if (++commas >= maxRanges) {
      return glanceError(400, 'range.too_many', `Too many ranges in the Range header: at most ${maxRanges} are served in one request.`);
    }
  }
  return null;
}

function decideMultiple(header: string, size: number, maxRanges: number): RangeDecision {
  const tooMany = tooManyRanges(header, maxRanges);
  if (tooMany) return fail(tooMany);
  const parsed = parseByteRanges(header, size);
  if (parsed === 'malformed') return fail(unsatisfiable('Invalid Range header.', size));
  if (parsed === 'unsatisfiable') return fail(startError('Range', size));
  return { kind: 'partial', ranges: parsed.ranges };
}

/** Parse a legacy `Content-Range` request header into the `Range` header it stands for, if it is one. */
export function legacyToRange(header: string): string | null {
  const m = LEGACY.exec(header);
  if (!m || m[1] === undefined || m[2] === undefined || BigInt(m[1]) > BigInt(m[2])) return null;
  return `bytes=${BigInt(m[1])}-${BigInt(m[2])}`;
}
