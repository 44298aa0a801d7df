/**
 * The library's client for everything it asks of another HTTP server: the image service behind
 * the sidecar (lookups, reads of image data, the health probe) and the demo's http locations.
 * Connection pools, the deadline of an answer, the one retry a stale pooled connection allows, and
 * the mapping of failures to Glance's 502 and 504 live here.
 *
 * Built on node:http's keep-alive agents, which cost the library no dependency. The sidecar's
 * forwarder, the hot path of every request passed through, is the servers' own and runs on
 * undici's `dispatch` (server/sidecar/forward.ts): in the bench (`npm run bench`, suite `small`)
 * it took the sidecar's small pass-through from 0.6 x to 1.1 x a bare node:http proxy. It maps
 * its failures to the same UpstreamFailure and upstreamError as this client.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import { glanceError, type GlanceError } from '../errors';

/** Where an exchange goes: a server, the pool of connections to it, and how its name resolves. */
export interface Target {
  readonly protocol: 'http:' | 'https:';
  readonly hostname: string;
  readonly port: string;
  readonly agent: http.Agent;
  /** Resolve the host name to these addresses only (the demo pins a location's vetted addresses). */
  readonly lookup?: LookupFunction;
  readonly auth?: string;
  /** More options of the request, read by the agent (e.g. what keeps its pooled connections apart). */
  readonly requestOptions?: Readonly<Record<string, unknown>>;
}

/** One request to a target. */
export interface Outgoing {
  readonly method: string;
  /** The path and query, as sent on the request line. */
  readonly path: string;
  /**
   * Headers: a flat `[name, value, ...]` list, sent as it is and in its order (`Host` included:
   * Node adds none to a list), or an object, to which Node adds `Host` and the target's `auth`.
   */
  readonly headers: readonly string[] | http.OutgoingHttpHeaders;
  /** The request body, streamed as it comes; none: the request is ended at once. */
  readonly body?: Readable;
  /**
   * Milliseconds from the moment the request (and its body) has been sent to the moment the answer
   * begins. The target's client's default when not given.
   */
  readonly timeout?: number;
}

/** Why an exchange failed: the server could not be reached (or broke off), or did not answer in time. */
export class UpstreamFailure extends Error {
  constructor(
    readonly kind: 'unreachable' | 'timeout',
    /** The system error's code (`ECONNREFUSED`…), or what happened. */
    readonly detail: string,
    /** The deadline that ran out, in milliseconds (a timeout only). */
    readonly ms = 0,
  ) {
    super(kind === 'timeout' ? `did not answer within ${ms} ms` : `could not be reached (${detail})`);
    this.name = 'UpstreamFailure';
  }
}

/** One request and its answer. */
export interface Exchange {
  /** The answer, once its status and headers have come; rejects with an {@link UpstreamFailure}. */
  readonly answer: Promise<IncomingMessage>;
  /** Whether the whole request, body included, has been handed to the connection. */
  readonly sent: boolean;
  /** Ends the exchange at once: the request (and its answer, if any) is destroyed. */
  abort(): void;
  /** Resolves when the exchange's request has closed (answered and read, or aborted, or failed). */
  readonly closed: Promise<void>;
}

/**
 * Requests waiting for the beginning of their answer, checked by one coarse timer (a tenth of the
 * shortest deadline, at most a second) rather than a timer or socket timeout each: arming and
 * clearing one per forwarded request was a twentieth of a small request's cost.
 */
class Deadlines {
  private readonly waiting = new Map<() => void, number>();
  private timer: NodeJS.Timeout | undefined;
  private tick = 1000;

  add(expire: () => void, ms: number): void {
    this.waiting.set(expire, Date.now() + ms);
    const tick = Math.min(1000, Math.max(5, Math.floor(ms / 10)));
    if (this.timer && tick < this.tick) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    if (!this.timer) {
      this.tick = tick;
      this.timer = setInterval(() => this.sweep(), tick).unref();
    }
  }

  delete(expire: () => void): void {
    this.waiting.delete(expire);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [expire, at] of this.waiting) if (now >= at) expire();
    if (this.waiting.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

const deadlines = new Deadlines();

/**
 * Send `out` to `target`. A request without a body that is a GET or HEAD is sent once more, on a
 * fresh connection, when the pooled connection it went out on turns out to have been closed by the
 * server as it was reused (the request never reached it); nothing else is ever sent twice.
 */
export function exchange(target: Target, out: Outgoing, timeout: number): Exchange {
  const retriable = out.body === undefined && (out.method === 'GET' || out.method === 'HEAD');
  const ms = out.timeout ?? timeout;
  let current!: http.ClientRequest;
  let answered = false;
  let over = false;
  let resolveAnswer!: (answer: IncomingMessage) => void;
  let rejectAnswer!: (err: UpstreamFailure) => void;
  let resolveClosed!: () => void;
  const answer = new Promise<IncomingMessage>((resolve, reject) => {
    resolveAnswer = resolve;
    rejectAnswer = reject;
  });
  // A caller that aborts never reads the answer: its rejection is not an unhandled one.
  answer.catch(() => undefined);
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));

  const fail = (failure: UpstreamFailure) => {
    if (over) return;
    over = true;
    deadlines.delete(expire);
    if (out.body) out.body.unpipe(current);
    current.destroy();
    rejectAnswer(failure);
  };
  const expire = () => {
    if (!answered) fail(new UpstreamFailure('timeout', 'timeout', ms));
  };

  const send = (mayRetry: boolean) => {
    const request = (target.protocol === 'https:' ? https : http).request(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: out.method,
        path: out.path,
        headers: out.headers as string[] | http.OutgoingHttpHeaders,
        agent: target.agent,
        ...(target.lookup ? { lookup: target.lookup } : {}),
        ...(target.auth ? { auth: target.auth } : {}),
        ...target.requestOptions,
      } as http.RequestOptions,
      (res) => {
        answered = true;
        deadlines.delete(expire);
        if (over) {
          res.resume();
          return;
        }
        resolveAnswer(res);
      },
    );
    current = request;
    request.once('close', () => {
      if (current === request) resolveClosed();
    });
    request.on('error', (err: NodeJS.ErrnoException) => {
      if (answered) return; // the answer's own stream reports it ('aborted', 'error')
      if (mayRetry && retriable && !over && request.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        send(false);
        return;
      }
      fail(new UpstreamFailure('unreachable', err.code ?? err.message));
    });
    // The deadline runs from the moment the request, body included, has been sent.
    if (out.body === undefined) {
      request.end();
      if (mayRetry) deadlines.add(expire, ms);
    } else {
      request.once('finish', () => {
        if (!answered && !over) deadlines.add(expire, ms);
      });
      out.body.pipe(request);
    }
  };
  send(true);

  return {
    answer,
    get sent() {
      return current.writableFinished;
    },
    abort() {
      if (!over) {
        over = true;
        deadlines.delete(expire);
        rejectAnswer(new UpstreamFailure('unreachable', 'aborted'));
      }
      if (out.body) out.body.unpipe(current);
      current.destroy();
    },
    closed,
  };
}

/** An answer read whole: for small documents (an image record, a version list). */
export interface ReadAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Why an answer read whole was not: larger than its limit, or broken off. */
export class AnswerUnread extends Error {
  constructor(readonly reason: 'too large' | 'broken off') {
    super(`the answer was ${reason}`);
    this.name = 'AnswerUnread';
  }
}

/**
 * Send `out` and read its answer whole, at most `limit` bytes, all within `ms` milliseconds of the
 * start. Rejects with an {@link UpstreamFailure} or an {@link AnswerUnread}.
 */
export function fetchWhole(target: Target, out: Outgoing, ms: number, limit: number): Promise<ReadAnswer> {
  const sent = exchange(target, { ...out, timeout: ms }, ms);
  return new Promise<ReadAnswer>((resolve, reject) => {
    const timer = setTimeout(() => {
      sent.abort();
      reject(new UpstreamFailure('timeout', 'timeout', ms));
    }, ms);
    const settle = (fn: () => void) => {
      clearTimeout(timer);
      fn();
    };
    sent.answer.then(
      (res) => {
        const chunks: Buffer[] = [];
        let length = 0;
        res.on('data', (c: Buffer) => {
          length += c.length;
          if (length > limit) {
            settle(() => reject(new AnswerUnread('too large')));
            res.destroy();
            return;
          }
          chunks.push(c);
        });
        res.on('aborted', () => settle(() => reject(new AnswerUnread('broken off'))));
        res.on('error', () => settle(() => reject(new AnswerUnread('broken off'))));
        res.on('end', () => settle(() => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })));
      },
      (err: unknown) => settle(() => reject(err)),
    );
  });
}

/** The client of one HTTP server at a base URL (a path prefix is kept). */
export interface UpstreamClient {
  readonly url: URL;
  /** `host[:port]` as a request to it names it in `Host`. */
  readonly host: string;
  readonly origin: string;
  readonly target: Target;
  /** The default deadline of an answer, in milliseconds. */
  readonly timeout: number;
  /** Send a request to `{url}{path}`. */
  send(out: Outgoing): Exchange;
  /** Send a request to `{url}{path}` and read its answer whole (see {@link fetchWhole}). */
  fetch(out: Outgoing, limit: number): Promise<ReadAnswer>;
}

export interface UpstreamClientOptions {
  readonly url: string;
  /** Milliseconds from a request sent to its answer begun. */
  readonly timeout: number;
  /** The connection pool; by default a keep-alive one of the client's own ({@link keepAliveAgent}). */
  readonly agent?: http.Agent | undefined;
}

/** A client of the server at `options.url`. The URL is checked by the factory that takes it. */
export function upstreamClient(options: UpstreamClientOptions): UpstreamClient {
  const url = new URL(options.url);
  const protocol = url.protocol === 'https:' ? 'https:' : 'http:';
  const target: Target = { protocol, hostname: url.hostname, port: url.port, agent: options.agent ?? keepAliveAgent(protocol) };
  const prefix = url.pathname.replace(/\/+$/, '');
  const { timeout } = options;
  return {
    url,
    host: url.host,
    origin: url.origin,
    target,
    timeout,
    send: (out) => exchange(target, { ...out, path: prefix + out.path }, timeout),
    fetch: (out, limit) => fetchWhole(target, { ...out, path: prefix + out.path }, out.timeout ?? timeout, limit),
  };
}

/**
 * A keep-alive connection pool. Idle connections are closed after 4 s, or sooner when the server's
 * `Keep-Alive: timeout=N` says so, so that the pool does not hand out one that the server is closing
 * at that moment (Node's own servers close idle ones after 5 s). No cap on connections (Node's
 * default): a cap lets a few hundred slow requests hold every connection, and then nothing, lookups
 * included, reaches the server.
 */
export function keepAliveAgent(protocol: 'http:' | 'https:'): http.Agent {
  return new (protocol === 'https:' ? https : http).Agent({ keepAlive: true, timeout: 4000 });
}

/** The answer to a client for an upstream failure: 502 when unreachable, 504 when too slow. */
export function upstreamError(failure: UpstreamFailure, service = 'The image service'): GlanceError {
  return failure.kind === 'timeout'
    ? glanceError(504, 'upstream.timeout', `${service} did not answer within ${failure.ms} ms.`)
    : glanceError(502, 'upstream.unreachable', `${service} could not be reached (${failure.detail}).`);
}
