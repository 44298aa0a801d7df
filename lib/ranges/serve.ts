/**
 * Serving image data with ranges from any source that knows the image size and can open a byte
 * range: a file, a store of your own, an HTTP location or upstream.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { edgeData, type GlanceEdgeRequestData } from '../http/body';
import { headerValue } from '../http/media';
import { decideRange, tooManyRanges, type ByteRange, type RangeDecision } from './decide';
import { checkOptions, option, type OptionChecks } from '../options';
import { DEPRECATION_OPTIONS, deprecationSignal, signalLegacy, type DeprecationOptions, type NextFunction } from './legacy';

/** The bytes a source opened: a stream that starts at `offset` of the image. */
export interface OpenedData {
  readonly stream: Readable;
  /**
   * Where in the image the stream starts. A source that could not honour the range (an HTTP
   * server that ignores `Range`) returns the whole image with offset 0: the slice is cut here.
   */
  readonly offset: number;
  /** Called with each chunk of `stream` once its bytes have been handed to the socket, to reuse its memory. */
  readonly recycle?: (chunk: Buffer) => void;
}

/** An image's data, as a source offers it. */
export interface ImageData {
  /** Size of the image in bytes. */
  readonly size: number;
  /** MD5 of the whole image (Glance's `checksum`): sent as `Content-MD5`, and the ETag when no `etag` is given. */
  readonly checksum?: string | null;
  /** Strong ETag (quoted); default `"<checksum>"`. */
  readonly etag?: string | null;
  /** Open the bytes `range` (inclusive), or the whole image when `range` is undefined. */
  open(range?: ByteRange): OpenedData | Promise<OpenedData>;
}

export interface ServeImageOptions {
  /**
   * The data of the image `req` asks for: an {@link ImageData}, null when the image has no data
   * (answered 204, as Glance answers for a queued image), or throw (e.g. a 404 GlanceError).
   */
  readonly source: (req: IncomingMessage) => Promise<ImageData | null> | ImageData | null;
  /** Most ranges one request may ask for, served as `multipart/byteranges`. Default 1: Glance's 400 for several. */
  readonly maxRanges?: number;
  /** Deprecation signal for the legacy `Content-Range` request form; `false` to honour it silently as Glance does. */
  readonly deprecation?: DeprecationOptions | false;
}

/** How the legacy `Content-Range` request form is signalled: its headers and hook. */
type DeprecationSignal = ReturnType<typeof deprecationSignal>;

const OPTIONS: OptionChecks<ServeImageOptions> = {
  source: option.function('(req) => ImageData | null'),
  maxRanges: option.integer(1, 1000, 'ranges'),
  deprecation: {
    expected: 'false or deprecation options { deprecatedOn, sunset, link, onUse }',
    test: (v) => v === false || (typeof v === 'object' && v !== null && !Array.isArray(v)),
    keys: DEPRECATION_OPTIONS,
  },
};

/** The source opened for `range` (or the whole image), checked to start at or before it. */
async function openAt(data: ImageData, range: ByteRange | undefined): Promise<OpenedData> {
  const opened = await data.open(range);
  if (opened.offset > (range?.start ?? 0)) {
    opened.stream.destroy();
    throw new Error(`image source opened at ${opened.offset}, after the asked start ${range?.start ?? 0}`);
  }
  return opened;
}

/**
 * Stream exactly `range` of the image to `res` from the `opened` source, whatever it sends: the
 * bytes before the range are skipped and the source is no longer read (it is destroyed) once the
 * range is sent, so a source that ignores ranges costs only what it takes to reach the slice's end.
 * A source that ends short or fails rejects (the caller then cuts the connection, never ending a
 * truncated body cleanly); a client that goes away destroys the source. Ends `res` when `end`.
 */
async function sendRange(data: ImageData, range: ByteRange | undefined, res: ServerResponse, end: boolean, opened: OpenedData): Promise<void> {
  const start = range?.start ?? 0;
  let left = range ? range.end - range.start + 1 : data.size;
  const { stream, offset, recycle } = opened;
  let skip = start - offset;
  const keepAwake = skip > 0 ? idleKeeper(res.req.socket) : undefined;
  // The client may have gone while the source was being opened. (Not `res.socket`: an answer
  // queued behind another on a keep-alive or pipelined connection has none yet.)
  if (res.destroyed || res.req.socket.destroyed) {
    stream.destroy();
    throw new Error('the client went away');
  }
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      stream.removeListener('data', onData);
      res.removeListener('close', onClose);
      res.removeListener('drain', onDrain);
      stream.destroy();
      if (err) {
        reject(err);
        return;
      }
      // Not waiting for 'finish': it never comes if the client leaves during the last flush.
      if (end) res.end();
      resolve();
    };
    const onClose = () => settle(new Error('the client went away'));
    const onDrain = () => stream.resume();
    const onData = (chunk: Buffer) => {
      let piece = chunk;
      if (skip > 0) {
        const skipped = Math.min(skip, piece.length);
        skip -= skipped;
        piece = piece.subarray(skipped);
      }
      if (piece.length > left) piece = piece.subarray(0, left);
      if (piece.length === 0) {
        recycle?.(chunk);
        // Bytes before the range: progress the client cannot see, since nothing is written.
        keepAwake?.();
        return;
      }
      left -= piece.length;
      const more = res.write(piece, recycle && (() => recycle(chunk)));
      if (left === 0) settle();
      else if (!more) stream.pause();
    };
    stream.on('data', onData);
    stream.on('end', () => settle(left > 0 ? new Error(`image data ended ${left} bytes short`) : undefined));
    stream.on('error', (err: Error) => settle(err));
    res.on('close', onClose);
    res.on('drain', onDrain);
  });
}

/**
 * Re-arms the client connection's idle timer (`server.timeout`, the CLI's `--idle-timeout`) while
 * the bytes before a range are read and dropped: a range far into an image held by a source that
 * cannot start mid-image (the whole image read from the start) may take longer than the timeout
 * before its first byte, and nothing may be written to the client before it. Re-armed at most
 * every quarter of the timeout (and at most every second), so a skip costs a timer per
 * many chunks, not per chunk.
 */
function idleKeeper(socket: Socket): () => void {
  let last = Date.now();
  return () => {
    const ms = socket.timeout;
    if (!ms || socket.destroyed) return;
    const now = Date.now();
    if (now - last < Math.min(1000, ms / 4)) return;
    last = now;
    socket.setTimeout(ms);
  };
}

/** The byte length of a multipart/byteranges body, known before it is written. */
function multipartPlan(ranges: readonly ByteRange[], size: number) {
  const boundary = randomBytes(12).toString('hex');
  const heads = ranges.map(
    (r, i) => `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`,
  );
  const tail = `\r\n--${boundary}--\r\n`;
  const length = heads.reduce((n, h) => n + Buffer.byteLength(h), 0) + ranges.reduce((n, r) => n + r.end - r.start + 1, 0) + tail.length;
  return { boundary, heads, tail, length };
}

function write(res: ServerResponse, text: string): Promise<void> {
  return new Promise((resolve, reject) => res.write(text, (err) => (err ? reject(err) : resolve())));
}

/**
 * A handler that serves image data with ranges: 200 with the whole image, 206 with
 * `Content-Range` for one range, `multipart/byteranges` for several (when enabled), Glance's 416
 * (with `Content-Range: bytes *\/size`) and 400 texts, `Accept-Ranges: bytes`, `Content-MD5` and an
 * ETag from the checksum, strong `If-Range`, HEAD, and the legacy `Content-Range` request form.
 * `Content-Length` is always the bytes sent; the source is destroyed when the client goes away.
 */
export function serveImage(options: ServeImageOptions) {
  checkOptions('serveImage', options, OPTIONS, ['source']);
  const maxRanges = options.maxRanges ?? 1;
  const signal = options.deprecation === false ? null : deprecationSignal(options.deprecation ?? {});
  const { source } = options;

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const edge = edgeData(req);
    const legacy = legacyForm(req, res, edge, signal);
    // Refused before the image is even looked up, unless an If-Range may make the Range moot.
    const tooMany = req.headers['if-range'] === undefined ? tooManyRanges(req.headers.range, maxRanges) : null;
    if (tooMany) throw tooMany;
    const data = await source(req);
    if (data === null) {
      res.writeHead(204, { 'Content-Length': '0' }).end();
      return;
    }
    const etag = data.etag ?? (data.checksum ? `"${data.checksum}"` : null);
    const decision = judgeRange(req, edge, legacy, data, etag, maxRanges);
    if (decision.kind === 'error') throw decision.error;

    res.setHeader('Accept-Ranges', 'bytes');
    if (data.checksum) res.setHeader('Content-MD5', data.checksum);
    if (etag) res.setHeader('ETag', etag);
    const head = req.method === 'HEAD';

    // The source is opened before the status line goes out, so that a source that cannot be opened
    // is an error answer (e.g. the upstream's 502) rather than a cut connection.
    if (decision.kind === 'whole') await sendWhole(data, res, head);
    else await sendRanges(data, decision.ranges, res, head);
  }

  return function serveImage(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    serve(req, res).catch((err: unknown) => {
      if (res.headersSent) res.destroy();
      else next(err);
    });
  };
}

/**
 * The legacy form, as the client sent it (a legacyContentRange middleware may have rewritten it
 * already). Signalled first, so that every answer to it, errors included, carries the signal.
 */
function legacyForm(req: IncomingMessage, res: ServerResponse, edge: GlanceEdgeRequestData, signal: DeprecationSignal | null): string | undefined {
  let legacy = edge.legacyContentRange;
  if (legacy === undefined && req.headers['content-range'] !== undefined) {
    legacy = req.headers['content-range'];
    if (signal) signalLegacy(req, res, signal);
  }
  return legacy;
}

/** What to send of an image of `data.size` bytes, from the request's Range, If-Range and legacy form. */
function judgeRange(req: IncomingMessage, edge: GlanceEdgeRequestData, legacy: string | undefined, data: ImageData, etag: string | null, maxRanges: number): RangeDecision {
  // A Range that a legacyContentRange middleware wrote is not the client's: judge the legacy form.
  const rewritten = edge.rangeFromLegacy !== undefined && req.headers.range === edge.rangeFromLegacy;
  return decideRange({
    range: rewritten ? undefined : req.headers.range,
    contentRange: legacy,
    ifRange: headerValue(req, 'if-range'),
    size: data.size,
    etag,
    maxRanges,
  });
}

/** 200 with the whole image (no body on HEAD or for an empty image: the source is not opened). */
async function sendWhole(data: ImageData, res: ServerResponse, head: boolean): Promise<void> {
  const opened = head || data.size === 0 ? undefined : await openAt(data, undefined);
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(data.size) });
  if (opened) await sendRange(data, undefined, res, true, opened);
  else res.end();
}

/** 206 with the `ranges` asked: one with `Content-Range`, several as `multipart/byteranges`. */
async function sendRanges(data: ImageData, ranges: readonly ByteRange[], res: ServerResponse, head: boolean): Promise<void> {
  const [first] = ranges;
  const opened = head || !first ? undefined : await openAt(data, first);
  if (ranges.length === 1 && first) {
    res.writeHead(206, {
      'Content-Type': 'application/octet-stream',
      'Content-Range': `bytes ${first.start}-${first.end}/${data.size}`,
      'Content-Length': String(first.end - first.start + 1),
    });
    if (opened) await sendRange(data, first, res, true, opened);
    else res.end();
    return;
  }
  await sendMultipart(data, ranges, res, opened);
}

/**
 * 206 `multipart/byteranges` with each of `ranges` as a part, the first read from `opened` (absent
 * on HEAD: the head only), each further one from the source opened again.
 */
async function sendMultipart(data: ImageData, ranges: readonly ByteRange[], res: ServerResponse, opened: OpenedData | undefined): Promise<void> {
  const plan = multipartPlan(ranges, data.size);
  res.writeHead(206, { 'Content-Type': `multipart/byteranges; boundary=${plan.boundary}`, 'Content-Length': String(plan.length) });
  if (!opened) {
    res.end();
    return;
  }
  try {
    for (const [i, range] of ranges.entries()) {
      await write(res, plan.heads[i] as string);
      await sendRange(data, range, res, false, i === 0 ? opened : await openAt(data, range));
    }
  } catch (err) {
    // The first part's head may fail (the client left while the source was opened) before
    // sendRange takes the source over; a source already spent is destroyed again harmlessly.
    opened.stream.destroy();
    throw err;
  }
  res.end(plan.tail);
}
