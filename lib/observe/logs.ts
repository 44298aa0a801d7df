/**
 * Structured JSON logs (pino): one access line per request with the request id taken
 * from or added as `X-Openstack-Request-Id`, one warn line per use of the legacy Content-Range
 * request header, one line per refused location change. Credentials are never logged: no request
 * header is, apart from the User-Agent.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { LocationRefusal } from '../locations/guard';
import type { LegacyUse } from '../ranges/legacy';
import { clientName } from './metrics';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** pino's level. Default `info`. */
  readonly level?: string;
  /** Where lines go. Default stdout, in batches (see createLogger). */
  readonly destination?: DestinationStream;
}

/**
 * A pino logger writing JSON lines with ISO times and level names. By default to stdout, in
 * batches: lines are written once 8 KiB have gathered, and at the latest every 200 ms; what
 * is pending is written when the process exits. (A write per line, or per event-loop turn, was a
 * tenth of the sidecar's time on small pass-through requests.)
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  let destination = options.destination;
  if (!destination) {
    const stdout = pino.destination({ dest: 1, sync: false, minLength: 8 * 1024 });
    setInterval(() => stdout.flush(), 200).unref();
    destination = stdout;
  }
  return pino(
    {
      level: options.level ?? 'info',
      base: { name: 'glance-edge' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A request id a client may hand us: Glance's `req-<uuid>` or a similar short token. */
const GIVEN_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** The request's id: the client's `X-Openstack-Request-Id` if it is a sane token, else a new `req-<uuid>`. */
export function requestId(req: IncomingMessage): string {
  const given = req.headers['x-openstack-request-id'];
  return typeof given === 'string' && GIVEN_ID.test(given) ? given : `req-${randomUUID()}`;
}

/** The request id accessLog gave a request. */
const ids = new WeakMap<IncomingMessage, string>();

/**
 * Access lines, one per request when its answer is over (finished or cut): method, url, client
 * address and User-Agent, status, bytes, time, and the request id, which is also set on the answer
 * as `X-Openstack-Request-Id` (an upstream's own id, when the sidecar forwards its answer, replaces
 * it on the answer and is logged as `upstreamRequestId`). The line is written by pino directly, in
 * the shape pino-http gives it: pino-http makes a child logger and runs its serializers for every
 * request, which cost the sidecar a third of its throughput on small pass-through requests.
 */
export function accessLog(logger: Logger) {
  return function accessLog(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    const started = process.hrtime.bigint();
    const id = requestId(req);
    ids.set(req, id);
    res.setHeader('X-Openstack-Request-Id', id);
    // 'close' comes once per answer, after 'finish' or when the connection was cut.
    res.once('close', () => {
      const answered = res.getHeader('x-openstack-request-id');
      const length = Number(res.getHeader('content-length'));
      const line = {
        requestId: id,
        ...(typeof answered === 'string' && answered !== id ? { upstreamRequestId: answered } : {}),
        req: { method: req.method, url: req.url, remote: req.socket.remoteAddress, userAgent: req.headers['user-agent'] },
        res: { status: res.statusCode, ...(Number.isSafeInteger(length) ? { bytes: length } : {}) },
        ms: Number((process.hrtime.bigint() - started) / 1000n) / 1000,
      };
      if (!res.writableFinished) logger.warn({ ...line, aborted: true }, 'request aborted');
      else if (res.statusCode >= 500) logger.error(line, 'request');
      else logger.info(line, 'request');
    });
    next();
  };
}

/** The id accessLog gave `req`, if it went through it. */
function idOf(req: IncomingMessage): string | undefined {
  return ids.get(req);
}

/** A serveImage / legacyContentRange `onUse` hook: one warn line per use, with a running count. */
export function logLegacyRange(logger: Logger): (use: LegacyUse) => void {
  let uses = 0;
  return (use) => {
    uses += 1;
    logger.warn(
      { requestId: idOf(use.req), client: clientName(use.userAgent), userAgent: use.userAgent, contentRange: use.contentRange, method: use.method, url: use.url, uses },
      'deprecated Content-Range request header',
    );
  };
}

/** A locationGuard `onRefused` hook: one line per refused location change. */
export function logRefusal(logger: Logger): (refusal: LocationRefusal) => void {
  return (refusal) => {
    logger.info(
      {
        requestId: idOf(refusal.req),
        imageId: refusal.imageId,
        status: refusal.error.status,
        type: refusal.error.type,
        ...(refusal.op === undefined ? {} : { op: refusal.op, imageStatus: refusal.imageStatus }),
      },
      'location change refused',
    );
  };
}
