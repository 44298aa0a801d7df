/**
 * Forwarding a request to the upstream image service and its answer back, streamed both ways.
 *
 * Hop-by-hop headers (and those named in `Connection`) are stripped both ways, `X-Forwarded-For`,
 * `-Proto` and `-Host` are added, the request body goes upstream byte for byte (the bytes a
 * middleware of the suite inspected are replayed on the request stream) and framed as the client
 * framed it, whatever the method (see requestFraming), and a `Location` that
 * points at the upstream is rewritten to the sidecar's own address. The exchange runs on undici's
 * `dispatch` (see forward). An upstream that refuses or
 * cannot be reached is a 502, one that does not answer in time a 504; an upstream that dies in the
 * middle of an answer cuts the client's connection; a client that goes away aborts the upstream
 * request.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Client, Pool, type Dispatcher } from 'undici';
import { glanceError, type GlanceError } from '../../lib/errors';
import { flatHeader, noteFlatHeaders } from '../observe/answer-headers';
import { edgeData } from '../../lib/http/body';
import { connectionNamed, forwardedHeaders, hopByHop } from '../../lib/http/forwarded';
import { lingerBeforeClosing } from '../../lib/http/linger';
import { spent, worthCounting } from '../perf/reclaim';
import { checkOptions, option, type OptionChecks } from '../../lib/options';
import { UpstreamFailure, upstreamError } from '../../lib/upstream/client';

export interface ForwardOptions {
  /** Base URL of the upstream image service (a path prefix is kept). */
  readonly upstream: string;
  /** Milliseconds to wait for the upstream's answer to begin. Default 60000. */
  readonly timeout?: number;
  /** Connection pool to the upstream (an undici Pool or Agent); by default a Pool of its own. */
  readonly pool?: Dispatcher;
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
  pool: option.object('an undici Dispatcher (Pool, Agent)', (v) => typeof v === 'object' && v !== null && typeof (v as { dispatch?: unknown }).dispatch === 'function'),
  onAnswer: option.function('(seconds) => void'),
  requestId: option.function('(req) => string | undefined'),
};

/** What every forwarded request of one forwarder shares. */
interface Forwarder {
  readonly pool: Dispatcher;
  /** The upstream's path prefix (none: ''), put before each request's own path. */
  readonly prefix: string;
  /** `host[:port]` of the upstream, as its `Host`. */
  readonly host: string;
  readonly origin: string;
  readonly timeout: number;
  readonly onAnswer: ((seconds: number) => void) | undefined;
  readonly requestId: ((req: IncomingMessage) => string | undefined) | undefined;
}

/**
 * The connection pool of a forwarder: keep-alive connections, as many as requests need (a cap lets
 * a few hundred slow requests hold every connection), idle ones closed after 4 s or sooner when the
 * upstream's `Keep-Alive: timeout=N` says so. No deadline for the body of an answer: a client that
 * waits on a stalled one is cut by the server's idle timeout, which aborts the exchange.
 */
export function forwardPool(upstream: string): Dispatcher {
  return new Pool(new URL(upstream).origin, { connections: null, keepAliveTimeout: 4000, bodyTimeout: 0 });
}

/**
 * A handler that forwards every request it gets to the upstream. Mount it last, before the error
 * handler. Built on undici's `dispatch`: per request, one handler object, the raw header lists of
 * both sides, and no stream between the upstream's socket and the client's answer.
 */
export function forward(options: ForwardOptions) {
  return sidecarForwarder(options).forward;
}

/**
 * The sidecar's forwarder: `forward` for requests that went through the suite, and `pass` for the
 * GET and HEAD requests no middleware of the suite touches, whose framing the caller has checked
 * (framingRefusal) and which the race registry never waits for.
 */
export function sidecarForwarder(options: ForwardOptions) {
  checkOptions('forward', options, FORWARD_OPTIONS, ['upstream']);
  const to = forwarder(options);
  return {
    forward(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
      const refusal = framingRefusal(req);
      if (refusal !== null) next(refusal);
      else relay(to, req, res, next, requestFraming(req.headers, req.rawHeaders) as RequestFraming, true);
    },
    pass(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
      relay(to, req, res, next, requestFraming(req.headers, req.rawHeaders) as RequestFraming, false);
    },
  };
}

function forwarder(options: ForwardOptions): Forwarder {
  const url = new URL(options.upstream);
  return {
    pool: options.pool ?? forwardPool(options.upstream),
    prefix: url.pathname.replace(/\/+$/, ''),
    host: url.host,
    origin: url.origin,
    timeout: options.timeout ?? 60_000,
    onAnswer: options.onAnswer,
    requestId: options.requestId,
  };
}

/**
 * One forwarded exchange: undici's handler of its upstream request, which writes the answer to the
 * client as it comes. The upstream's socket is paused while the client's answer is full, and
 * resumed when it drains.
 */
class Relay implements Dispatcher.DispatchHandler {
  private abortUpstream: ((reason?: Error) => void) | null = null;
  private resumeUpstream: (() => void) | null = null;
  /** The answer's head came from the upstream. */
  private answered = false;
  /** The whole request, body included, went to the upstream. */
  sent = false;
  /** The exchange is over: answered in full, failed, or aborted. */
  private over = false;
  /** The client went away before its answer was written. */
  private clientGone = false;
  /** Count the answer's chunks for reclaiming. */
  private large = false;
  private retried = false;
  private readonly started: bigint;
  private readonly onDrain = () => this.resumeUpstream?.();
  private closedResolve: (() => void) | null = null;

  constructor(
    private readonly to: Forwarder,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly next: NextFunction,
    private readonly request: Dispatcher.DispatchOptions,
    /** A GET or HEAD without a body: sent once more when its connection breaks before any answer. */
    private readonly retriable: boolean,
  ) {
    this.started = to.onAnswer ? process.hrtime.bigint() : 0n;
  }

  /** Resolves when the exchange is over (edgeData(req).upstream). */
  closed(): Promise<void> {
    return this.over ? Promise.resolve() : new Promise((resolve) => (this.closedResolve = resolve));
  }

  start(): void {
    this.to.pool.dispatch(this.request, this);
  }

  /**
   * The client went away (its answer closed unfinished): the upstream request stops too, unless its
   * body had all been sent, when the service is at work on it (an upload being written): its answer
   * is then awaited (within the timeout) and dropped, so that the exchange, which the race registry
   * waits for, ends when the service is done. (An exchange whose answer was written is over by
   * then: its 'close' changes nothing.)
   */
  onClientClose(): void {
    if (this.over) return;
    this.clientGone = true;
    if (this.request.body != null && !this.answered && this.sent) return;
    this.abort();
  }

  abort(): void {
    this.abortUpstream?.(new UpstreamAborted());
    this.finish();
  }

  private finish(): void {
    if (this.over) return;
    this.over = true;
    this.res.removeListener('drain', this.onDrain);
    this.closedResolve?.();
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.over) abort(new UpstreamAborted());
  }

  onRequestSent(): void {
    this.sent = true;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // an interim answer: the final one follows
    this.answered = true;
    this.resumeUpstream = resume;
    if (this.clientGone || this.over) return true; // read and dropped
    const { to, req, res } = this;
    if (to.onAnswer) to.onAnswer(Number(process.hrtime.bigint() - this.started) / 1e9);
    const headers = clientHeaders(rawHeaders, req, to);
    if (this.request.body != null && !this.sent) {
      // The upstream answers before it has the whole body (a refused upload, say), and undici
      // stops sending it: the client's connection closes after the answer, with what still comes
      // read and dropped for a while (a lingering close), so the client gets the answer rather
      // than a reset, and nothing it sends after that body is read as a request.
      headers.push('Connection', 'close');
      lingerBeforeClosing(req);
    }
    this.large = worthCounting(flatHeader(headers, 'content-length'));
    res.writeHead(statusCode, statusText, headers);
    noteFlatHeaders(res, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.clientGone || this.over) return true;
    if (this.large) spent(chunk.length);
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.onDrain);
    return false;
  }

  onComplete(): void {
    if (!this.clientGone && !this.over) this.res.end();
    this.finish();
  }

  onError(err: Error): void {
    if (this.over) return;
    if (!this.answered && this.retriable && !this.retried && !this.clientGone && isBrokenConnection(err)) {
      // A pooled connection the upstream closed as it was reused: the request never reached it.
      // Asked again on a connection of its own (another pooled one may be closing too), closed
      // once its answer is read.
      this.retried = true;
      this.abortUpstream = null;
      const fresh = new Client(this.to.origin, { pipelining: 1, bodyTimeout: 0 });
      fresh.dispatch(this.request, this);
      void fresh.close().catch(() => undefined);
      return;
    }
    this.finish();
    if (this.clientGone) return; // nobody left to answer
    // The upstream died mid-answer: the client must not take a truncated body for a whole one.
    if (this.answered || this.res.headersSent) this.res.destroy();
    else if ((err as NodeJS.ErrnoException).code === 'UND_ERR_INVALID_ARG') this.next(glanceError(400, 'request.invalid', `The request cannot be forwarded: ${err.message}.`));
    else this.next(upstreamError(failureOf(err, this.to.timeout)));
  }
}

/** Our own abort of an exchange (the client went away). */
class UpstreamAborted extends Error {
  constructor() {
    super('aborted');
    this.name = 'UpstreamAborted';
  }
}

const BROKEN = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
const isBrokenConnection = (err: Error) => BROKEN.has((err as NodeJS.ErrnoException).code ?? '');

/** What an undici error says of the upstream: unreachable (and why), or too slow. */
function failureOf(err: Error, ms: number): UpstreamFailure {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new UpstreamFailure('timeout', 'timeout', ms);
  if (code === 'UND_ERR_SOCKET') return new UpstreamFailure('unreachable', ((err as { cause?: NodeJS.ErrnoException }).cause?.code ?? 'ECONNRESET'));
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new UpstreamFailure('unreachable', 'ETIMEDOUT');
  return new UpstreamFailure('unreachable', code.startsWith('UND_ERR') || code === '' ? err.message : code);
}

/**
 * Send `req` upstream and its answer back. `track`: edgeData(req).upstream settles when the
 * exchange is over (the race registry waits for it).
 */
function relay(to: Forwarder, req: IncomingMessage, res: ServerResponse, next: NextFunction, framing: RequestFraming, track: boolean): void {
  // No body: none is sent (upstreamHeaders says `Content-Length: 0` for a method that usually has one).
  const bodiless = framing === 'none';
  const method = req.method as string;
  const request: Dispatcher.DispatchOptions = {
    origin: to.origin,
    method,
    path: to.prefix + (req.url ?? '/'),
    headers: upstreamHeaders(req, to.host, framing),
    // The body as the client's chunks, read from `req` as they come, never ending or destroying it:
    // undici frames it by the Content-Length given, or chunked. (Given `req` itself, undici would
    // frame a body already all read by its length, and destroy the client's request, connection
    // and all, when the upstream fails mid-upload: the client would get no 502.)
    body: bodiless ? null : (bodyOf(req) as unknown as Readable),
    headersTimeout: to.timeout,
    bodyTimeout: 0,
    // undici closes the connection after a HEAD (for servers that send a body anyway); an image
    // service does not, and a HEAD without a body keeps its connection as a GET does. (One with a
    // body does not: after it, as after a GET with one, nothing more goes on that connection, so
    // an upstream that would not read that body cannot take it for the next request.)
    ...(method === 'HEAD' && bodiless ? { reset: false } : {}),
  };
  const relay = new Relay(to, req, res, next, request, bodiless && (method === 'GET' || method === 'HEAD'));
  if (track) edgeData(req).upstream = relay.closed();
  res.on('close', () => relay.onClientClose());
  relay.start();
}

/**
 * The chunks of `req`'s body as they come, counted as spent for reclaiming when it is not small
 * (none: chunked, counted). Read through an iterator, so that nothing else ('data' listeners) may
 * take chunks from the stream, which is neither ended nor destroyed when the upstream stops
 * reading it.
 */
async function* bodyOf(req: IncomingMessage): AsyncGenerator<Buffer> {
  const count = worthCounting(req.headers['content-length']);
  try {
    for await (const chunk of req.iterator({ destroyOnReturn: false })) {
      if (count) spent((chunk as Buffer).length);
      yield chunk as Buffer;
    }
  } finally {
    // undici stopped reading before the end (the upstream answered early, or failed): the rest is
    // read and dropped, so that the client, still sending, gets its answer, and the connection
    // goes on after the body (or closes, lingering, when the answer says so). Once the iterator
    // has let go of the stream: its 'readable' listener would keep it from flowing.
    if (!req.complete) setImmediate(() => req.resume());
  }
}

/** Hop-by-hop in a request and more: `Expect` is this hop's (Node's server has answered 100 Continue). */
const NOT_FORWARDED = (lower: string) => lower === 'content-length' || lower === 'expect';

/**
 * The request's headers for the upstream, as a flat [name, value, ...] list in the client's
 * order and spelling: end-to-end ones only, Host the upstream's, X-Forwarded-* added, and the
 * body's framing written by the sidecar: the client's `Content-Length`, or chunked (undici chunks
 * a body of unknown length). Neither is left out because `Connection` names it: framing is this
 * hop's to write, so the naming means nothing here.
 */
function upstreamHeaders(req: IncomingMessage, host: string, framing: RequestFraming): string[] {
  const out = forwardedHeaders(req, host, NOT_FORWARDED);
  if (framing === 'length') out.push('Content-Length', req.headers['content-length'] as string);
  // Node would send an empty chunked body for a method that usually has one: say none instead.
  else if (framing === 'none' && !BODILESS_BY_DEFAULT.has(req.method as string)) out.push('Content-Length', '0');
  return out;
}

/**
 * The upstream's answer headers for the client: end-to-end ones, a Location to the upstream made
 * the sidecar's, the request id added when the upstream sent none.
 */
function clientHeaders(raw: Buffer[], req: IncomingMessage, to: Forwarder): string[] {
  // The names every `Connection` line lists are hop-by-hop too.
  let connection: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as Buffer;
    if (name.length === 10 && name.toString('latin1').toLowerCase() === 'connection') {
      const value = (raw[i + 1] as Buffer).toString('latin1');
      connection = connection === undefined ? value : `${connection},${value}`;
    }
  }
  const named = connectionNamed(connection);
  const out: string[] = [];
  let identified = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as Buffer).toString('latin1');
    const lower = name.toLowerCase();
    if (hopByHop(lower, named)) continue;
    let value = (raw[i + 1] as Buffer).toString('latin1');
    if (lower === 'location' && value.startsWith(to.origin) && req.headers.host) {
      const proto = 'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http';
      value = `${proto}://${req.headers.host}${value.slice(to.origin.length)}`;
    } else if (lower === 'x-openstack-request-id') identified = true;
    out.push(name, value);
  }
  if (!identified && to.requestId) {
    const id = to.requestId(req);
    if (id !== undefined) out.push('X-Openstack-Request-Id', id);
  }
  return out;
}
