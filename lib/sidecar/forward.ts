/**
 * Forwarding a request to the upstream image service and its answer back, streamed both ways.
 *
 * Hop-by-hop headers (and those named in `Connection`) are stripped both ways, `X-Forwarded-For`,
 * `-Proto` and `-Host` are added, the request body goes upstream byte for byte (the bytes a
 * middleware of the suite inspected are replayed on the request stream), and a `Location` that
 * points at the upstream is rewritten to the sidecar's own address. An upstream that refuses or
 * cannot be reached is a 502, one that does not answer in time a 504; an upstream that dies in the
 * middle of an answer cuts the client's connection; a client that goes away aborts the upstream
 * request.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { glanceError } from '../errors';

export interface ForwardOptions {
  /** Base URL of the upstream image service (a path prefix is kept). */
  readonly upstream: string;
  /** Milliseconds to wait for the upstream's answer to begin. Default 60000. */
  readonly timeout?: number;
  /** Connection pool to the upstream; by default a keep-alive agent of its own. */
  readonly agent?: http.Agent;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection']);

/** `headers` without hop-by-hop headers and those `Connection` names. */
export function endToEnd(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const named = new Set(
    String(headers['connection'] ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}

export type NextFunction = (err?: unknown) => void;

/** A handler that forwards every request it gets to the upstream. Mount it last, before the error handler. */
export function forward(options: ForwardOptions) {
  let base: URL;
  try {
    base = new URL(options.upstream);
  } catch {
    throw new TypeError(`forward: option 'upstream' must be an absolute http(s) URL, got ${JSON.stringify(options.upstream)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError("forward: option 'upstream' must be an http(s) URL");
  const timeout = options.timeout ?? 60_000;
  if (!Number.isInteger(timeout) || timeout <= 0) throw new TypeError("forward: option 'timeout' must be a positive integer of milliseconds");
  const transport = base.protocol === 'https:' ? https : http;
  const agent = options.agent ?? new transport.Agent({ keepAlive: true, maxSockets: 256 });
  const prefix = base.pathname.replace(/\/+$/, '');
  const upstreamOrigin = base.origin;

  return function forward(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    const headers = endToEnd(req.headers);
    const client = req.socket.remoteAddress ?? '';
    const prior = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = prior ? `${String(prior)}, ${client}` : client;
    headers['x-forwarded-proto'] = 'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http';
    if (req.headers.host) headers['x-forwarded-host'] = req.headers.host;
    headers['host'] = base.host;
    let answered = false;

    const upstream = transport.request(
      { protocol: base.protocol, hostname: base.hostname, port: base.port, method: req.method, path: `${prefix}${req.url ?? '/'}`, headers, agent, timeout },
      (answer) => {
        answered = true;
        upstream.setTimeout(0);
        const out = endToEnd(answer.headers);
        const location = answer.headers.location;
        if (location?.startsWith(upstreamOrigin) && req.headers.host) {
          out['location'] = `${headers['x-forwarded-proto'] as string}://${req.headers.host}${location.slice(upstreamOrigin.length)}`;
        }
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
        answer.pipe(res);
        // The upstream died mid-answer: the client must not take a truncated body for a whole one.
        answer.on('aborted', () => res.destroy());
        answer.on('error', () => res.destroy());
      },
    );
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      upstream.destroy();
      if (answered || res.headersSent) res.destroy();
      else next(err);
    };
    upstream.on('timeout', () => {
      if (!answered) fail(glanceError(504, 'upstream.timeout', `The image service did not answer within ${timeout} ms.`));
    });
    // The client went away (its answer closed unfinished): stop the upstream request too. (Not
    // req.destroyed: a request whose body has been read is destroyed in any case.)
    let clientGone = false;
    res.on('close', () => {
      if (res.writableFinished) return;
      clientGone = true;
      upstream.destroy();
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (clientGone) return; // nobody left to answer
      fail(glanceError(502, 'upstream.unreachable', `The image service could not be reached (${err.code ?? err.message}).`));
    });
    req.pipe(upstream);
  };
}
