/**
 * Reading a small request body to inspect it, then handing it on untouched.
 *
 * The guard must see a patch before the backing handler does, yet that handler (the user's own
 * route, a body parser, the demo, a proxy) must still read the client's bytes as if nobody had.
 * {@link inspectBody} reads the body with a size limit, records the exact bytes on
 * `req.glanceEdge.body`, and puts them back at the head of the request stream, so whatever comes
 * next reads the same bytes, in the same way, from the same `req`.
 */
import type { IncomingMessage } from 'node:http';
import { glanceError } from '../errors';

/** Request-scoped data the suite leaves on `req`. */
export interface GlanceEdgeRequestData {
  /** The request body exactly as the client sent it, when a middleware of the suite inspected it. */
  body?: Buffer;
  /** The legacy `Content-Range` request header of a download, as the client sent it. */
  legacyContentRange?: string;
  /** The `Range` header a legacyContentRange middleware wrote from the legacy form. */
  rangeFromLegacy?: string;
  /**
   * Settles when the request's exchange with an upstream service is over (its answer read, or the
   * connection closed), when a forwarder sends it on: the service may still be at work on a request
   * whose client has gone.
   */
  upstream?: Promise<void>;
}

/** A request that may carry the suite's data. */
export type EdgeRequest = IncomingMessage & { glanceEdge?: GlanceEdgeRequestData };

/** The suite's data on `req`, created on first use. */
export function edgeData(req: IncomingMessage): GlanceEdgeRequestData {
  const r = req as EdgeRequest;
  r.glanceEdge ??= {};
  return r.glanceEdge;
}

/**
 * Read the whole body of `req` (at most `limit` bytes), then make the stream yield the same bytes
 * again. A body over the limit rejects with a 413 and is not read further: the connection is
 * marked to close so the rest is never waited for.
 */
export function inspectBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const known = edgeData(req).body;
  if (known) return Promise.resolve(known);
  if (req.readableEnded) {
    return Promise.reject(
      glanceError(500, 'body.consumed', 'The request body was read before glance-edge could inspect it: mount glance-edge before body parsers.'),
    );
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge(limit));

  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const cleanup = () => {
      req.removeListener('readable', onReadable);
      req.removeListener('error', onError);
      req.removeListener('aborted', onAborted);
      req.removeListener('close', onAborted);
      req.removeListener('end', onEnd);
    };
    const finish = (putBack: boolean) => {
      cleanup();
      const body = Buffer.concat(chunks, length);
      edgeData(req).body = body;
      if (putBack && body.length > 0) req.unshift(body);
      resolve(body);
    };
    // An empty body that had already ended ends the stream as soon as it is listened to.
    const onEnd = () => finish(false);
    const onError = (err: Error) => {
      cleanup();
      reject(glanceError(400, 'request.aborted', `Request body could not be read: ${err.message}`));
    };
    const onAborted = () => {
      if (req.complete) return;
      cleanup();
      reject(glanceError(400, 'request.aborted', 'The client closed the request before its body was sent.'));
    };
    function onReadable() {
      // read(n) with n = what is buffered never triggers 'end', so the bytes can be put back.
      while (req.readableLength > 0) {
        const chunk = req.read(req.readableLength) as Buffer | string | null;
        if (chunk === null) break;
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        length += buf.length;
        if (length > limit) {
          cleanup();
          reject(tooLarge(limit));
          return;
        }
        chunks.push(buf);
      }
      if (req.complete) finish(true);
    }
    req.on('readable', onReadable);
    req.on('error', onError);
    req.on('aborted', onAborted);
    req.on('close', onAborted);
    req.on('end', onEnd);
  });
}

function tooLarge(limit: number) {
  return glanceError(413, 'request.too_large', `The request body is larger than ${limit} bytes.`, {
    headers: { Connection: 'close' },
  });
}
