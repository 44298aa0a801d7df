/**
 * What the contract expects of each probe, and the verdict on what the service answered: pure
 * functions, answers in, verdicts out. The expectations come from the library's own decisions
 * (`decideLocationPatch`, `decideRange`) and texts, so the check holds a service to exactly the
 * contract the suite implements.
 */
import { glanceError, type GlanceError } from '../../lib/errors';
import { HYPERVISOR_NAMESPACE, VZ_DESCRIPTION } from '../../lib/defaults/metadefs';
import { decideLocationPatch, type LocationImage } from '../../lib/locations/decide';
import type { PatchOp } from '../../lib/locations/patch';
import { decideRange, type ByteRange, type RangeDecision, type RangeRequest } from '../../lib/ranges/decide';
import { deprecationSignal } from '../../lib/ranges/legacy';
import type { Judged } from './rows';

/** An answer as the check read it: at most a limit of its body (`complete` says whether all of it). */
export interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  readonly complete: boolean;
}

export function header(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The answer's body as JSON, or undefined. */
export function json(answer: Answer): unknown {
  try {
    return JSON.parse(answer.body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', '#x27': "'", '#39': "'" };

/** webob's stock first sentence for a status (Glance puts it before some of its texts). */
function stockSentence(status: number): string {
  return status >= 400 && status < 600 ? glanceError(status, 'check.stock', '', { afterStockSentence: true }).explanation : '';
}

/**
 * The message of an error answer in any of webob's three forms (JSON, HTML, plain text), on one
 * line, without the status line and without webob's stock sentence before Glance's own.
 */
export function answerText(answer: Answer): string {
  let text = answer.body.toString('utf8');
  const doc = /json/i.test(header(answer, 'content-type') ?? '') ? json(answer) : undefined;
  if (typeof doc === 'object' && doc !== null && typeof (doc as { message?: unknown }).message === 'string') text = (doc as { message: string }).message;
  text = text
    .replace(/<title>[\s\S]*?<\/title>|<h1>[\s\S]*?<\/h1>/gi, ' ')
    .replace(/^\d{3} [^\n]*\n\n/, '')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(amp|lt|gt|quot|#x27|#39);/g, (_m, e: string) => ENTITIES[e] ?? '')
    .replace(/\s+/g, ' ')
    .trim();
  const stock = stockSentence(answer.status);
  if (stock !== '' && text.startsWith(stock) && text !== stock) text = text.slice(stock.length).trim();
  return text;
}

/** `401 text`, `409 text`… on one line, at most 200 characters. */
export function statusAndText(answer: Answer): string {
  const text = answerText(answer);
  const line = text === '' ? `${answer.status}` : `${answer.status} ${text}`;
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

function errorText(error: GlanceError): string {
  return `${error.status} ${error.message}`;
}

const ok = (seen: string, expected?: string): Judged => ({ result: 'ok', seen, ...(expected === undefined ? {} : { expected }) });
const missing = (seen: string, expected?: string): Judged => ({ result: 'missing', seen, ...(expected === undefined ? {} : { expected }) });
const differs = (seen: string, expected?: string): Judged => ({ result: 'differs', seen, ...(expected === undefined ? {} : { expected }) });
export const couldNotTest = (why: string, seen = ''): Judged => ({ result: 'could not test', seen, why });

// ---------------------------------------------------------------------------------------------
// 1. Location changes

/** A location op as a patch carries it. */
export function locationOp(op: PatchOp['op'], position?: string, value?: unknown): PatchOp {
  return { op, path: position === undefined ? ['locations'] : ['locations', position], ...(value === undefined ? {} : { value }) };
}

/** The JSON patch body (Glance's v2.1 media type) of one op. */
export function patchBody(op: PatchOp): string {
  return JSON.stringify([{ op: op.op, path: `/${op.path.join('/')}`, ...(op.value === undefined ? {} : { value: op.value }) }]);
}

/** The contract's answer to `op` on `image`: Glance's refusal, or null when it is allowed. */
export function expectedLocationAnswer(op: PatchOp, image: LocationImage, visible: boolean): GlanceError | null {
  return decideLocationPatch([op], image, { showMultipleLocations: visible });
}

/** Glance's own 403 texts about locations (not a policy's refusal of the caller). */
const LOCATION_403 = new Set(
  [
    expectedLocationAnswer(locationOp('replace', undefined, []), { status: 'active', locations: 1 }, true),
    expectedLocationAnswer(locationOp('remove', '0'), { status: 'active', locations: 1 }, true),
    ...(['remove', 'add', 'replace'] as const).map((op) => expectedLocationAnswer(locationOp(op, op === 'replace' ? undefined : '0', [{}]), { status: 'active', locations: 2 }, false)),
  ].map((e) => e?.message ?? ''),
);

/** An answer that refuses the caller rather than the change: 401, or a 403 that is none of Glance's location texts. */
function refusesCaller(answer: Answer): boolean {
  if (answer.status === 401) return true;
  if (answer.status !== 403) return false;
  const text = answerText(answer);
  return ![...LOCATION_403].some((t) => t !== '' && text.includes(t));
}

/** A change the contract refuses: `expected` is Glance's answer. */
export function judgeRefusal(expected: GlanceError, answer: Answer): Judged {
  const seen = statusAndText(answer);
  const want = errorText(expected);
  if (answer.status === expected.status && answerText(answer).includes(expected.message)) return ok(seen, want);
  if (answer.status >= 200 && answer.status < 300) return missing(`${answer.status}: the change was made`, want);
  if (refusesCaller(answer)) return couldNotTest(`the identity given may not change locations (${seen})`, seen);
  return differs(seen, want);
}

/** The locations of an image document, or undefined when it lists none. */
export function locationsOf(doc: unknown): { url: string; metadata: unknown }[] | undefined {
  const list = typeof doc === 'object' && doc !== null ? (doc as { locations?: unknown }).locations : undefined;
  if (!Array.isArray(list)) return undefined;
  return list.map((l: unknown) => ({ url: String((l as { url?: unknown }).url), metadata: (l as { metadata?: unknown }).metadata }));
}

export function statusOf(doc: unknown): string | undefined {
  const status = typeof doc === 'object' && doc !== null ? (doc as { status?: unknown }).status : undefined;
  return typeof status === 'string' ? status : undefined;
}

/**
 * A change the contract allows: a 2xx whose image shows `urls` as its locations (and `status`).
 * The service's refusal of the check's own location (`firstUse`: it is the first time the service
 * is given one) is a row that could not be tested, not a difference.
 */
export function judgeAllowed(answer: Answer, urls: readonly string[], firstUse: boolean): Judged {
  const seen = statusAndText(answer);
  if (answer.status >= 200 && answer.status < 300) {
    const doc = json(answer);
    const locations = locationsOf(doc);
    const status = statusOf(doc);
    const described = `${answer.status}, ${status ?? 'no status'}, ${locations === undefined ? 'no locations listed' : `${locations.length} location${locations.length === 1 ? '' : 's'}`}`;
    if (locations === undefined) return ok(`${answer.status} (the answer lists no locations)`);
    const same = locations.length === urls.length && locations.every((l, i) => l.url === urls[i]);
    return same && status === 'active' ? ok(described) : differs(`${described}: ${locations.map((l) => l.url).join(', ')}`);
  }
  if (answer.status === 409) return differs(`${seen}: refused for the image's status`);
  if (refusesCaller(answer)) return couldNotTest(`the identity given may not change locations (${seen})`, seen);
  if (firstUse && answer.status === 400) {
    return couldNotTest(`the service refused the check's own location (${seen}): it needs an http store that reaches the check's data server (--serve-on)`, seen);
  }
  return differs(seen);
}

// ---------------------------------------------------------------------------------------------
// 2. Image data

/** What the check knows of an image's bytes: all of them, or its first and last bytes. */
export interface Reference {
  readonly size: number;
  /** Bytes `start` to `end` inclusive, or undefined when the check has not seen them. */
  bytes(start: number, end: number): Buffer | undefined;
}

/** A reference over the bytes read from the start of the image and, when known, from its end. */
export function reference(size: number, head: Buffer, tail?: { start: number; bytes: Buffer }): Reference {
  return {
    size,
    bytes(start, end) {
      if (end < head.length) return head.subarray(start, end + 1);
      if (tail && start >= tail.start && end - tail.start < tail.bytes.length) return tail.bytes.subarray(start - tail.start, end - tail.start + 1);
      return undefined;
    },
  };
}

/** The range probes of an image of `size` bytes (3 or more): for 32 bytes, the contract's own examples. */
export function rangeProbes(size: number) {
  const end = Math.min(9, size - 2);
  const suffix = Math.min(5, size - 1);
  const from = Math.max(1, size - 20);
  const several = size >= 6 ? 'bytes=0-1,4-5' : 'bytes=0-0,2-2';
  return {
    single: `bytes=0-${end}`,
    suffix: `bytes=-${suffix}`,
    clamped: `bytes=${from}-${size}`,
    unsatisfiable: `bytes=${size}-`,
    zeroSuffix: 'bytes=-0',
    several,
    legacy: `bytes ${from}-${size - 2}/${size}`,
    /** The bytes from here to the end cover every probe's bytes past the first 10. */
    tailFrom: from,
  };
}

/** The contract's answer to a download request: the library's own decision. */
export function expectedRange(request: RangeRequest): RangeDecision {
  return decideRange(request);
}

function printable(bytes: Buffer): string {
  const text = bytes.toString('latin1');
  return bytes.length <= 40 && /^[\x20-\x7e]*$/.test(text) ? JSON.stringify(text) : `${bytes.length} bytes`;
}

function describeExpected(decision: RangeDecision, size: number, ref: Reference): string {
  switch (decision.kind) {
    case 'whole':
      return `200, all ${size} bytes`;
    case 'partial': {
      const [r] = decision.ranges as [ByteRange];
      const bytes = ref.bytes(r.start, r.end);
      return `206 Content-Range: bytes ${r.start}-${r.end}/${size}${bytes ? `, ${printable(bytes)}` : `, ${r.end - r.start + 1} bytes`}`;
    }
    case 'error':
      return errorText(decision.error);
  }
}

/** What a download answer was, on one line. */
export function describeDownload(answer: Answer): string {
  if (answer.status === 200) return `200, ${header(answer, 'content-length') ?? 'unknown'} bytes${answer.complete ? '' : ' (read in part)'}`;
  if (answer.status === 206) {
    const cr = header(answer, 'content-range');
    return `206 ${cr === undefined ? 'without Content-Range' : `Content-Range: ${cr}`}, ${answer.complete ? printable(answer.body) : `${header(answer, 'content-length') ?? '?'} bytes`}`;
  }
  return statusAndText(answer);
}

/** Whether a 200 is the whole image: its length, and the bytes the check knows. */
function isWhole(answer: Answer, ref: Reference): boolean {
  const length = header(answer, 'content-length');
  if (length !== undefined && Number(length) !== ref.size) return false;
  if (answer.complete && answer.body.length !== ref.size) return false;
  const known = ref.bytes(0, Math.min(ref.size, answer.body.length) - 1);
  return answer.body.length === 0 || known === undefined || known.equals(answer.body.subarray(0, known.length));
}

/**
 * A single-range or whole-image download against the contract's decision. A service that ignores
 * the range (200, the whole image, where a 206 or a 416 is due) lacks it; any other answer differs.
 */
export function judgeDownload(decision: RangeDecision, answer: Answer, ref: Reference): Judged {
  const expected = describeExpected(decision, ref.size, ref);
  const seen = describeDownload(answer);
  switch (decision.kind) {
    case 'whole':
      return answer.status === 200 && isWhole(answer, ref) ? ok(seen, expected) : differs(seen, expected);
    case 'partial': {
      const [r] = decision.ranges as [ByteRange];
      if (answer.status === 200 && isWhole(answer, ref)) return missing(`${seen}: the range ignored`, expected);
      const bytes = ref.bytes(r.start, r.end);
      const good =
        answer.status === 206 &&
        header(answer, 'content-range') === `bytes ${r.start}-${r.end}/${ref.size}` &&
        answer.complete &&
        answer.body.length === r.end - r.start + 1 &&
        (bytes === undefined || bytes.equals(answer.body));
      return good ? ok(seen, expected) : differs(seen, expected);
    }
    case 'error': {
      if (answer.status === 200 && isWhole(answer, ref)) return missing(`${seen}: the range ignored`, expected);
      const good = answer.status === decision.error.status && answerText(answer).includes(decision.error.message);
      return good ? ok(seen, expected) : differs(seen, expected);
    }
  }
}

/** The recommended `Content-Range: bytes *\/N` on a 416. */
export function judgeUnsatisfiableHeader(decision: RangeDecision, answer: Answer): Judged {
  const want = decision.kind === 'error' ? decision.error.headers?.['Content-Range'] : undefined;
  if (want === undefined) throw new Error('no Content-Range in the decision');
  const expected = `Content-Range: ${want}`;
  if (answer.status !== 416) return couldNotTest(`the service answered ${answer.status}, not 416`, describeDownload(answer));
  const cr = header(answer, 'content-range');
  if (cr === undefined) return missing('416 without Content-Range', expected);
  return cr === want ? ok(`416 Content-Range: ${cr}`, expected) : differs(`416 Content-Range: ${cr}`, expected);
}

/** The parts of a `multipart/byteranges` answer: each one's Content-Range and bytes. */
export function multipartParts(answer: Answer): { range: string | undefined; bytes: Buffer }[] | undefined {
  const m = /^multipart\/byteranges;\s*boundary="?([^";]+)"?/i.exec(header(answer, 'content-type') ?? '');
  if (!m) return undefined;
  const delimiter = Buffer.from(`--${m[1] as string}`);
  const parts: { range: string | undefined; bytes: Buffer }[] = [];
  let at = answer.body.indexOf(delimiter);
  while (at !== -1) {
    const start = at + delimiter.length;
    if (answer.body.subarray(start, start + 2).toString() === '--') break;
    const next = answer.body.indexOf(delimiter, start);
    if (next === -1) return undefined;
    const part = answer.body.subarray(start, next);
    const split = part.indexOf('\r\n\r\n');
    if (split === -1) return undefined;
    const head = part.subarray(0, split).toString('latin1');
    // The part's bytes end before the CRLF that precedes the next delimiter.
    const bytes = part.subarray(split + 4, part.length - 2);
    parts.push({ range: /content-range:\s*([^\r\n]+)/i.exec(head)?.[1]?.trim(), bytes });
    at = next;
  }
  return parts;
}

/** Several ranges: Glance's 400, or (the suite with `maxRanges` above 1) one multipart answer. */
export function judgeSeveral(header_: string, answer: Answer, ref: Reference): Judged {
  const refusal = expectedRange({ range: header_, size: ref.size });
  const served = expectedRange({ range: header_, size: ref.size, maxRanges: 2 });
  const expected = `${refusal.kind === 'error' ? errorText(refusal.error) : ''} (or 206 multipart/byteranges)`;
  if (answer.status === 200 && isWhole(answer, ref)) return missing(`${describeDownload(answer)}: the ranges ignored`, expected);
  if (refusal.kind === 'error' && answer.status === refusal.error.status && answerText(answer).includes(refusal.error.message)) return ok(statusAndText(answer), expected);
  const parts = answer.status === 206 ? multipartParts(answer) : undefined;
  if (parts && served.kind === 'partial') {
    const good =
      answer.complete &&
      parts.length === served.ranges.length &&
      served.ranges.every((r, i) => {
        const part = parts[i];
        const bytes = ref.bytes(r.start, r.end);
        return part !== undefined && part.range === `bytes ${r.start}-${r.end}/${ref.size}` && (bytes === undefined || bytes.equals(part.bytes));
      });
    const seen = `206 multipart/byteranges: ${parts.map((p) => p.range ?? '?').join(', ')}`;
    return good ? ok(seen, expected) : differs(seen, expected);
  }
  return differs(answer.status === 206 ? describeDownload(answer) : statusAndText(answer), expected);
}

/** One If-Range request: the validator sent and the answer to it with a range. */
export interface IfRangeTry {
  readonly ifRange: string;
  readonly range: string;
  readonly answer: Answer;
}

/** If-Range, compared strongly: each try against the library's decision for the ETag the service gave. */
export function judgeIfRange(etag: string | undefined, tries: readonly IfRangeTry[], ref: Reference): Judged {
  const judged = tries.map((t) => {
    const decision = expectedRange({ range: t.range, ifRange: t.ifRange, size: ref.size, etag: etag ?? null });
    return { t, verdict: judgeDownload(decision, t.answer, ref), ignored: decision.kind === 'whole' && t.answer.status === 206 };
  });
  const failed = judged.filter((j) => j.verdict.result !== 'ok');
  const result: Judged['result'] = failed.length === 0 ? 'ok' : failed.every((j) => j.ignored) ? 'missing' : 'differs';
  const label = (ifRange: string) => (ifRange === etag ? 'the ETag' : ifRange.startsWith('W/') ? 'weak' : 'stale');
  const lines = judged.map((j) => `${label(j.t.ifRange)} → ${j.t.answer.status}`);
  const expected = etag === undefined ? 'an ETag on image data; If-Range stale or weak: 200, the whole image' : 'If-Range the ETag: 206; stale or weak: 200, the whole image';
  const seen = `${etag === undefined ? 'no ETag' : `ETag ${etag}`}; If-Range ${lines.join(', ')}`;
  if (etag === undefined && result === 'ok') return missing(`${seen}: no ETag, so no If-Range can match`, expected);
  return { result, seen, expected };
}

/** `Accept-Ranges: bytes` on a 200 and a 206 of image data. */
export function judgeAcceptRanges(answers: readonly Answer[]): Judged {
  const values = answers.map((a) => `${a.status}: ${header(a, 'accept-ranges') ?? 'none'}`);
  const seen = `Accept-Ranges on ${values.join(', ')}`;
  const served = answers.filter((a) => a.status === 200 || a.status === 206);
  if (served.length === 0) return couldNotTest('no 200 or 206 of image data to look at', seen);
  if (served.every((a) => header(a, 'accept-ranges') === 'bytes')) return ok(seen);
  if (served.every((a) => header(a, 'accept-ranges') === undefined)) return missing(seen);
  return differs(seen);
}

/** The deprecation signal on an answer to the legacy form, as `legacyContentRange` gives it. */
export function judgeDeprecation(answer: Answer): Judged {
  const warning = deprecationSignal({}).headers.find(([name]) => name === 'Warning')?.[1] ?? '';
  const deprecation = header(answer, 'deprecation');
  const link = header(answer, 'link');
  const warn = header(answer, 'warning');
  const linked = /rel="?deprecation"?/.test(link ?? '');
  const present = [
    deprecation !== undefined && `Deprecation: ${deprecation}`,
    link !== undefined && (linked ? 'Link rel="deprecation"' : `Link: ${link}`),
    warn !== undefined && (warn === warning ? 'Warning 299' : `Warning: ${warn}`),
  ].filter((s) => s !== false);
  const seen = present.length === 0 ? `${answer.status} without any deprecation header` : `${answer.status}, ${present.join(', ')}`;
  if (present.length === 0) return missing(seen);
  const good = /^@-?\d+$/.test(deprecation ?? '') && linked && warn === warning;
  return good ? ok(seen) : differs(seen);
}

// ---------------------------------------------------------------------------------------------
// 3. Formats and metadefs

/** `ploop` in `disk_format`'s enum of `GET /v2/schemas/image`. */
export function judgeSchema(answer: Answer): Judged {
  if (answer.status === 401 || answer.status === 403) return couldNotTest(`the schema was refused (${statusAndText(answer)})`);
  const doc = json(answer) as { properties?: { disk_format?: { enum?: unknown } } } | undefined;
  const list = doc?.properties?.disk_format?.enum;
  if (answer.status !== 200 || !Array.isArray(list)) return answer.status === 404 ? missing('404: no image schema') : differs(`${statusAndText(answer)}: no disk_format enum`);
  const seen = `disk_format: ${list.map((v) => (v === null ? 'null' : String(v))).join(', ')}`;
  return list.includes('ploop') ? ok(seen) : missing(seen);
}

/** `POST /v2/images` with disk_format ploop. */
export function judgePloopCreate(answer: Answer): Judged {
  const seen = statusAndText(answer);
  if (answer.status === 201) return ok(`201, ${statusOf(json(answer)) ?? 'no status'}`);
  if (answer.status === 400 && answerText(answer).includes('ploop')) return missing(seen);
  if (answer.status === 401 || answer.status === 403) return couldNotTest(`the identity given may not create images (${seen})`, seen);
  return differs(seen);
}

/** `vz` in `hypervisor_type` of OS::Compute::Hypervisor, with its line in the description. */
export function judgeVz(answer: Answer): Judged {
  const expected = `'vz' in the enum (${HYPERVISOR_NAMESPACE.properties?.['hypervisor_type']?.enum?.join(', ') ?? ''}), and the VZ line in the description`;
  if (answer.status === 401 || answer.status === 403) return couldNotTest(`the metadefs were refused (${statusAndText(answer)})`);
  if (answer.status === 404) return missing(`404: no OS::Compute::Hypervisor namespace (${answerText(answer)})`, expected);
  const doc = json(answer) as { enum?: unknown; description?: unknown } | undefined;
  if (answer.status !== 200 || !Array.isArray(doc?.enum)) return differs(`${statusAndText(answer)}: no enum`, expected);
  const seen = `hypervisor_type: ${doc.enum.map(String).join(', ')}`;
  if (!doc.enum.includes('vz')) return missing(seen, expected);
  return typeof doc.description === 'string' && doc.description.includes(VZ_DESCRIPTION) ? ok(seen, expected) : differs(`${seen}; the description has no VZ line`, expected);
}
