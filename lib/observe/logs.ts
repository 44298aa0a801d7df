/**
 * Structured JSON logs (pino): one access line per request (pino-http) with the request id taken
 * from or added as `X-Openstack-Request-Id`, one warn line per use of the legacy Content-Range
 * request header, one line per refused location change. Credentials are never logged: no request
 * header is, apart from the User-Agent.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import pino, { type DestinationStream, type Logger } from 'pino';
import { pinoHttp } from 'pino-http';
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

/** The request's answer, as the access line reports it. */
function answerFacts(res: ServerResponse): Record<string, unknown> {
  const length = Number(res.getHeader('content-length'));
  const answered = res.getHeader('x-openstack-request-id');
  const own = ids.get(res.req);
  return {
    statusCode: res.statusCode,
    ...(Number.isSafeInteger(length) ? { bytes: length } : {}),
    ...(typeof answered === 'string' && answered !== own ? { upstreamRequestId: answered } : {}),
  };
}

/**
 * Access lines by pino-http, one per request when its answer is over (finished or cut):
 * `req` (id, method, url, client address and User-Agent), `res` (status, bytes), `responseTime`
 * in ms, `msg` "request completed", "request aborted" (at warn) or "request errored" (5xx, at
 * error). The request id is also set on the answer as `X-Openstack-Request-Id`; an upstream's own
 * id, when the sidecar forwards its answer, replaces it there and is logged as
 * `res.upstreamRequestId`. `req.log` is the request's child logger.
 *
 * The serializers are pino-http's shape cut to those fields, and not wrapped: the standard ones
 * log every header of the request, credentials included.
 */
export function accessLog(logger: Logger): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  return pinoHttp({
    logger,
    genReqId: (req, res) => {
      const id = requestId(req);
      ids.set(req, id);
      res.setHeader('X-Openstack-Request-Id', id);
      return id;
    },
    wrapSerializers: false,
    serializers: {
      req: (req: IncomingMessage) => ({ id: req.id, method: req.method, url: req.url, remoteAddress: req.socket.remoteAddress, userAgent: req.headers['user-agent'] }),
      res: answerFacts,
    },
    customLogLevel: (req, res, err) => (err !== undefined || res.statusCode >= 500 ? 'error' : req.readableAborted || !res.writableEnded ? 'warn' : 'info'),
    // pino-http makes up an Error for a 5xx answer: the status already says it all.
    customErrorObject: (_req, res, err, line: Record<string, unknown>) => (res.err === undefined && err.message === `failed with status code ${res.statusCode}` ? { res: line['res'], responseTime: line['responseTime'] } : line),
  });
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
