/**
 * Forwarding a request to the upstream image service and its answer back, streamed both ways.
 *
 * Hop-by-hop headers (and those named in `Connection`) are stripped both ways, `X-Forwarded-For`,
 * `-Proto` and `-Host` are added, the request body goes upstream byte for byte (the bytes a
 * middleware of the suite inspected are replayed on the request stream) and framed as the client
 * framed it, whatever the method (see requestFraming), and a `Location` that
 * points at the upstream is rewritten to the sidecar's own address. An upstream that refuses or
 * cannot be reached is a 502, one that does not answer in time a 504; an upstream that dies in the
 * middle of an answer cuts the client's connection; a client that goes away aborts the upstream
 * request.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { glanceError, type GlanceError } from '../../lib/errors';
import { flatHeader, noteFlatHeaders } from '../observe/answer-headers';
import { edgeData } from '../../lib/http/body';
import { connectionNamed, forwardedHeaders, hopByHop } from '../../lib/http/forwarded';
import { countLarge } from '../perf/reclaim';
import { checkOptions, option, type OptionChecks } from '../../lib/options';
import { UpstreamFailure, upstreamClient, upstreamError, type UpstreamClient } from '../../lib/upstream/client';

export interface ForwardOptions {
  /** Base URL of the upstream image service (a path prefix is kept). */
  readonly upstream: string;
  /** Milliseconds to wait for the upstream's answer to begin. Default 60000. */
  readonly timeout?: number;
  /** Connection pool to the upstream; by default a keep-alive agent of its own. */
  readonly agent?: http.Agent;
  /** Told how long (seconds) the upstream took to start each answer, e.g. for a latency histogram. */
  readonly onAnswer?: (seconds: number) => void;
  /**
   * The request's id, sent on the answer as `X-Openstack-Request-Id` when the upstream's answer
   * has none (e.g. accessLog's requestIdOf, with accessLog's `setHeader: false`).
   */
  readonly requestId?: (req: IncomingMessage) => string | undefined;
}


export type NextFunction = (err?: unknown) => void;

/** How a request's body is framed: none, by its `Content-Length`, or `Transfer-Encoding: chunked`. */
export type RequestFraming = 'none' | 'length' | 'chunked';

/** Why a request's framing is refused: a reader behind the sidecar might frame its body otherwise. */
export type FramingFault = 'length-and-chunked' | 'differing-lengths' | 'bad-length' | 'unsupported-coding';

const DIGITS = /^\d+$/;

const isContentLength = (lower: string) => lower === 'content-length';

/** The methods for which Node's client frames nothing unless told (and sends no body unless given one). */
const BODILESS_BY_DEFAULT = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/**
 * Client connections on which a request was refused for its framing. The refusal closes the
 * connection, but Node has by then parsed (and handed on) any request the client wrote after it,
 * read with the framing that was refused: none of those goes upstream.
 */
const refusedConnections = new WeakSet<object>();

/**
 * How the body of a request with these headers is framed, or why that is ambiguous. The sidecar
 * frames the body it forwards itself (the client's `Content-Length`, or chunked), so the upstream
 * reads exactly the body Node read; what it refuses is a request that another reader in front of or
 * behind it might frame otherwise: both framing headers, `Content-Length` lines that differ or that
 * are not a number, and a `Transfer-Encoding` other than exactly `chunked` (a list such as
 * `gzip, chunked`, several lines, another spelling, an empty one). Node's parser refuses most of
 * these before a request exists; this check keeps them out also under a lenient parser
 * (`insecureHTTPParser`) and where Node reads them (`gzip, chunked` and `Chunked` as chunked, an empty
 * one as no body). `headers` is `req.headers`: there Node joins repeated `Transfer-Encoding` lines
 * and keeps only the first `Content-Length`, so the raw lines are read only when one is present.
 */
export function requestFraming(headers: IncomingHttpHeaders, rawHeaders: readonly string[]): RequestFraming | FramingFault {
  const coding = headers['transfer-encoding'];
  const length = headers['content-length'];
  if (coding === undefined && length === undefined) return 'none';
  if (coding !== undefined) {
    if (length !== undefined) return 'length-and-chunked';
    return coding === 'chunked' ? 'chunked' : 'unsupported-coding';
  }
  if (!DIGITS.test(length as string)) return 'bad-length';
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 14 && name.toLowerCase() === 'content-length' && rawHeaders[i + 1] !== length) return 'differing-lengths';
  }
  return 'length';
}


// Refusals of ambiguous framing. The connection is closed after the answer: a client that frames
// a body ambiguously may have meant the rest of its bytes for a reader that frames it otherwise.
const close = { headers: { Connection: 'close' } };
const framingRefusals: Readonly<Record<FramingFault, GlanceError>> = {
  'length-and-chunked': glanceError(400, 'request.framing', 'A request may not carry both Content-Length and Transfer-Encoding.', close),
  'differing-lengths': glanceError(400, 'request.framing', 'The request carries differing Content-Length values.', close),
  'bad-length': glanceError(400, 'request.framing', 'The Content-Length of the request is not a number of bytes.', close),
  'unsupported-coding': glanceError(400, 'request.framing', 'Transfer-Encoding other than chunked is not supported.', close),
};
const afterRefusal = glanceError(400, 'request.framing', 'A request before this one on the connection was refused for its framing.', close);

/**
 * The refusal of a request whose framing is ambiguous, or that came on a connection where one was
 * refused (its answer is never written: the connection closes after the refusal before it); null
 * for a request the forwarder may send on. The sidecar asks this before anything else, so that a
 * refused request does not even cause a lookup upstream.
 */
export function framingRefusal(req: IncomingMessage): GlanceError | null {
  const framing = requestFraming(req.headers, req.rawHeaders);
  if (framing !== 'none' && framing !== 'length' && framing !== 'chunked') {
    refusedConnections.add(req.socket);
    return framingRefusals[framing];
  }
  return refusedConnections.has(req.socket) ? afterRefusal : null;
}

const FORWARD_OPTIONS: OptionChecks<ForwardOptions> = {
  upstream: option.url,
  timeout: option.integer(1, 2_147_483_647, 'milliseconds'),
  agent: option.object('an http.Agent', (v) => v instanceof http.Agent),
  onAnswer: option.function('(seconds) => void'),
  requestId: option.function('(req) => string | undefined'),
};

/** What every forwarded request of one forwarder shares. */
interface Forwarder {
  readonly client: UpstreamClient;
  readonly onAnswer: ((seconds: number) => void) | undefined;
  readonly requestId: ((req: IncomingMessage) => string | undefined) | undefined;
}

/** A handler that forwards every request it gets to the upstream. Mount it last, before the error handler. */
export function forward(options: ForwardOptions) {
  checkOptions('forward', options, FORWARD_OPTIONS, ['upstream']);
  const to: Forwarder = {
    client: upstreamClient({ url: options.upstream, timeout: options.timeout ?? 60_000, agent: options.agent }),
    onAnswer: options.onAnswer,
    requestId: options.requestId,
  };
  return function forward(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    const refusal = framingRefusal(req);
    if (refusal !== null) next(refusal);
    else relay(to, req, res, next, requestFraming(req.headers, req.rawHeaders) as RequestFraming);
  };
}

/**
 * Send `req` upstream and its answer back. The exchange is over (edgeData(req).upstream resolves)
 * when its upstream request closes.
 */
function relay(to: Forwarder, req: IncomingMessage, res: ServerResponse, next: NextFunction, framing: RequestFraming): void {
  // No body: none is sent (upstreamHeaders says `Content-Length: 0` for a method that usually has one).
  const bodiless = framing === 'none';
  const started = to.onAnswer ? process.hrtime.bigint() : 0n;
  const headers = upstreamHeaders(req, to.client.host, framing);
  const sent = to.client.send({ method: req.method as string, path: req.url ?? '/', headers, ...(bodiless ? {} : { body: req }) });
  edgeData(req).upstream = sent.closed;
  if (!bodiless) countLarge(req, req.headers['content-length']);
  let answered = false;
  let clientGone = false;
  sent.answer.then(
    (answer) => {
      answered = true;
      // Nobody to answer: the service's answer is read and dropped, so the exchange ends.
      if (clientGone) answer.resume();
      else answerClient(to, req, res, answer, started);
    },
    (err: unknown) => {
      if (clientGone) return; // nobody left to answer
      if (res.headersSent) res.destroy();
      else next(err instanceof UpstreamFailure ? upstreamError(err) : err);
    },
  );
  // The client went away (its answer closed unfinished): stop the upstream request too, unless
  // its body had all been sent, when the service is at work on it (an upload being written): its
  // answer is then awaited (within the timeout) and dropped, so that the exchange, which the race
  // registry waits for, ends when the service is done. (Not req.destroyed: a request whose body
  // has been read is destroyed in any case.)
  res.on('close', () => {
    if (res.writableFinished) {
      // Answered before the client's body was all sent (a refusal of an upload): the rest is not
      // the service's to wait for. Ending the request here frees its connection and ends the
      // exchange, which the race registry waits for.
      if (!bodiless && !sent.sent) sent.abort();
      return;
    }
    clientGone = true;
    if (!bodiless && !answered && sent.sent) return;
    sent.abort();
  });
}

/** Write the upstream's answer to the client, streamed; an answer broken off cuts the client's connection. */
function answerClient(to: Forwarder, req: IncomingMessage, res: ServerResponse, answer: IncomingMessage, started: bigint): void {
  if (to.onAnswer) to.onAnswer(Number(process.hrtime.bigint() - started) / 1e9);
  const proto = 'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http';
  const headers = clientHeaders(answer, req, proto, to);
  res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers);
  noteFlatHeaders(res, headers);
  countLarge(answer, flatHeader(answer.rawHeaders, 'content-length'));
  answer.pipe(res);
  // The upstream died mid-answer: the client must not take a truncated body for a whole one.
  const cut = () => res.destroy();
  answer.on('aborted', cut);
  answer.on('error', cut);
}

/**
 * The request's headers for the upstream, as a flat [name, value, ...] list in the client's
 * order and spelling: end-to-end ones only, Host the upstream's, X-Forwarded-* added, and the
 * body's framing written by the sidecar: the client's `Content-Length`, or
 * `Transfer-Encoding: chunked` (which makes Node chunk what is written, for any method). Neither
 * is left out because `Connection` names it: framing is this hop's to write, so the naming means
 * nothing here.
 */
function upstreamHeaders(req: IncomingMessage, host: string, framing: RequestFraming): string[] {
  const out = forwardedHeaders(req, host, isContentLength);
  if (framing === 'length') out.push('Content-Length', req.headers['content-length'] as string);
  else if (framing === 'chunked') out.push('Transfer-Encoding', 'chunked');
  // Node would send an empty chunked body for a method that usually has one: say none instead.
  else if (!BODILESS_BY_DEFAULT.has(req.method as string)) out.push('Content-Length', '0');
  return out;
}

/**
 * The upstream's answer headers for the client: end-to-end ones, a Location to the upstream made
 * the sidecar's, the request id added when the upstream sent none.
 */
function clientHeaders(answer: IncomingMessage, req: IncomingMessage, proto: string, to: Forwarder): string[] {
  const raw = answer.rawHeaders;
  const named = connectionNamed(flatHeader(raw, 'connection'));
  const origin = to.client.origin;
  const out: string[] = [];
  let identified = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (hopByHop(lower, named)) continue;
    let value = raw[i + 1] as string;
    if (lower === 'location' && value.startsWith(origin) && req.headers.host) value = `${proto}://${req.headers.host}${value.slice(origin.length)}`;
    else if (lower === 'x-openstack-request-id') identified = true;
    out.push(name, value);
  }
  if (!identified && to.requestId) {
    const id = to.requestId(req);
    if (id !== undefined) out.push('X-Openstack-Request-Id', id);
  }
  return out;
}
