/**
 * Rewriting a JSON answer of the handler that follows, done once, here.
 *
 * The answer is held (up to a limit) instead of being sent; at its end, a 200 JSON body is decoded
 * (gzip, deflate or br), parsed and given to `transform`, and a 404 may be replaced by the suite's
 * own document. A changed document is sent uncompressed with a recomputed `Content-Length` and no
 * ETag. Anything else (another status, a body that is not the expected JSON, a body over the
 * limit, HEAD, 204, 304) goes out exactly as the handler wrote it.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';

export interface JsonRewrite {
  /** The new document for a 200 answer's document, or undefined to leave it untouched. */
  readonly transform: (doc: unknown) => unknown;
  /** The document to answer instead of a 404, if any. */
  readonly instead404?: () => unknown;
  /** How to write a changed document. */
  readonly serialize: (doc: unknown) => string;
  /** Most bytes held; a larger answer passes untouched. Default 4 MiB. */
  readonly limit?: number;
  /** Statuses whose JSON document goes to `transform`. Default [200]. */
  readonly statuses?: readonly number[];
}

type WriteCallback = (err?: Error | null) => void;

function decode(body: Buffer, encoding: string | undefined): Buffer | null {
  switch ((encoding ?? 'identity').trim().toLowerCase()) {
    case 'identity':
    case '':
      return body;
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(body);
    case 'deflate':
      return inflateSync(body);
    case 'br':
      return brotliDecompressSync(body);
    default:
      return null;
  }
}

/** An answer being held: what {@link rewriteJsonAnswer} keeps of one response until its end. */
interface Holding {
  readonly res: ServerResponse;
  readonly rewrite: JsonRewrite;
  readonly limit: number;
  readonly statuses: ReadonlySet<number>;
  /** The response's own methods, put back at the end or when holding is given up. */
  readonly original: { readonly writeHead: ServerResponse['writeHead']; readonly write: ServerResponse['write']; readonly end: ServerResponse['end'] };
  readonly chunks: Buffer[];
  /** Bytes held so far. */
  held: number;
  /** Gave up holding: everything goes straight through. */
  passing: boolean;
}

/** Hold the answer to `req` and rewrite it at its end as `rewrite` says. Call before `next()`. */
export function rewriteJsonAnswer(req: IncomingMessage, res: ServerResponse, rewrite: JsonRewrite): void {
  if (req.method === 'HEAD') return;
  const holding: Holding = {
    res,
    rewrite,
    limit: rewrite.limit ?? 4 * 1024 * 1024,
    statuses: new Set(rewrite.statuses ?? [200]),
    original: { writeHead: res.writeHead, write: res.write, end: res.end },
    chunks: [],
    held: 0,
    passing: false,
  };
  // Status and headers stay on `res` (not sent) until the end.
  res.writeHead = function writeHead(this: ServerResponse, status: number, ...rest: unknown[]) {
    return keepHead(res, status, rest);
  } as ServerResponse['writeHead'];
  res.write = function write(chunk: unknown, encoding?: unknown, callback?: unknown) {
    return holdWrite(holding, chunk, encoding, callback);
  } as ServerResponse['write'];
  res.end = function end(chunk?: unknown, encoding?: unknown, callback?: unknown) {
    return endHeld(holding, chunk, encoding, callback);
  } as ServerResponse['end'];
}

/** Whether an answer of `status` is held: one whose document goes to `transform`, or a 404 to replace. */
function holds(holding: Holding, status: number): boolean {
  return holding.statuses.has(status) || (status === 404 && holding.rewrite.instead404 !== undefined);
}

/** Write with the response's own `write`. */
function rawWrite(holding: Holding, chunk: unknown, cb?: WriteCallback): boolean {
  return (holding.original.write as unknown as (this: ServerResponse, c: unknown, cb?: WriteCallback) => boolean).call(holding.res, chunk, cb);
}

/** Put the response's own methods back. */
function restore(holding: Holding): void {
  const { res, original } = holding;
  res.writeHead = original.writeHead;
  res.write = original.write;
  res.end = original.end;
}

function toBuffer(chunk: unknown, encoding?: BufferEncoding): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk as Uint8Array);
}

/** Stop holding: send what was held as it was, and let the rest through. */
function passThrough(holding: Holding): void {
  holding.passing = true;
  restore(holding);
  for (const chunk of holding.chunks.splice(0)) holding.res.write(chunk);
}

/** `writeHead` while held: the status and headers are set on `res`, not sent. */
function keepHead(res: ServerResponse, status: number, rest: unknown[]): ServerResponse {
  res.statusCode = status;
  const headers = rest.find((r) => typeof r === 'object' && r !== null) as OutgoingHttpHeaders | string[] | undefined;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) res.setHeader(headers[i] as string, headers[i + 1] as string);
  } else if (headers) {
    for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value);
  }
  if (typeof rest[0] === 'string') res.statusMessage = rest[0];
  return res;
}

/** `write` while held: the chunk is kept, unless the status is not held or the limit is passed (then all goes through). */
function holdWrite(holding: Holding, chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
  const { res } = holding;
  const cb = (typeof encoding === 'function' ? encoding : callback) as WriteCallback | undefined;
  const enc = typeof encoding === 'string' ? (encoding as BufferEncoding) : undefined;
  const status = res.statusCode;
  if (holding.passing) return rawWrite(holding, chunk, cb);
  if (!holds(holding, status) || (holding.held += toBuffer(chunk, enc).length) > holding.limit) {
    passThrough(holding);
    return res.write(chunk as Buffer, enc ?? 'utf8', cb);
  }
  holding.chunks.push(toBuffer(chunk, enc));
  if (cb) process.nextTick(cb);
  return true;
}

/** `end` while held: the last chunk written, the response's own methods back, and the answer sent, rewritten or as it was. */
function endHeld(holding: Holding, chunk?: unknown, encoding?: unknown, callback?: unknown): ServerResponse {
  const { res } = holding;
  const cb = [chunk, encoding, callback].find((a) => typeof a === 'function') as (() => void) | undefined;
  const enc = typeof encoding === 'string' ? (encoding as BufferEncoding) : undefined;
  if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') {
    if (!holding.passing) res.write(chunk as Buffer, enc ?? 'utf8');
    else rawWrite(holding, chunk);
  }
  restore(holding);
  if (holding.passing) return res.end(cb);
  if (!holds(holding, res.statusCode)) return res.end(cb); // 204, 304, …: untouched
  return sendHeld(holding, cb);
}

/** Send the held answer: the rewritten document (uncompressed, without ETag), or the body as it was. */
function sendHeld(holding: Holding, cb: (() => void) | undefined): ServerResponse {
  const { res } = holding;
  const body = Buffer.concat(holding.chunks);
  const replaced = finish(res, body, holding.rewrite, holding.statuses);
  if (replaced !== null) {
    res.removeHeader('Content-Encoding');
    res.removeHeader('ETag');
    res.removeHeader('Transfer-Encoding');
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Content-Length', Buffer.byteLength(replaced));
    return res.end(replaced, cb);
  }
  if (!res.hasHeader('Transfer-Encoding')) res.setHeader('Content-Length', body.length);
  return res.end(body, cb);
}

/** The new body, or null to send the original. */
function finish(res: ServerResponse, body: Buffer, rewrite: JsonRewrite, statuses: ReadonlySet<number>): string | null {
  if (res.statusCode === 404 && rewrite.instead404) {
    res.statusCode = 200;
    res.statusMessage = 'OK';
    return rewrite.serialize(rewrite.instead404());
  }
  if (!statuses.has(res.statusCode)) return null;
  const type = String(res.getHeader('Content-Type') ?? '');
  if (!/^application\/([a-z.+-]*\+)?json\b/i.test(type)) return null;
  let doc: unknown;
  try {
    const decoded = decode(body, res.getHeader('Content-Encoding') as string | undefined);
    if (decoded === null) return null;
    doc = JSON.parse(decoded.toString('utf8'));
  } catch {
    return null;
  }
  const changed = rewrite.transform(doc);
  return changed === undefined ? null : rewrite.serialize(changed);
}
