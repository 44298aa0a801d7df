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
  /** Where lines go. Default stdout, written asynchronously (lines that come meanwhile are written together; flushed on exit). */
  readonly destination?: DestinationStream;
}

/** A pino logger writing JSON lines with ISO times and level names. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false });
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

/**
 * pino-http access lines, one per request when its answer is over: method, url, status, bytes,
 * time, client address and User-Agent, and the request id, which is also set on the answer as
 * `X-Openstack-Request-Id` (an upstream's own id, when the sidecar forwards its answer, replaces it
 * on the answer and is logged as `upstreamRequestId`).
 */
export function accessLog(logger: Logger) {
  return pinoHttp({
    logger,
    genReqId: (req: IncomingMessage, res: ServerResponse) => {
      const id = requestId(req);
      res.setHeader('X-Openstack-Request-Id', id);
      return id;
    },
    customAttributeKeys: { reqId: 'requestId', responseTime: 'ms' },
    serializers: {
      req: (req: { method: string; url: string; headers: Record<string, string | undefined>; remoteAddress?: string }) => ({
        method: req.method,
        url: req.url,
        remote: req.remoteAddress,
        userAgent: req.headers['user-agent'],
      }),
      res: (res: { statusCode: number; headers: Record<string, unknown> }) => ({ status: res.statusCode, bytes: Number(res.headers['content-length'] ?? 0) || undefined }),
    },
    customProps: (req: IncomingMessage & { id?: unknown }, res: ServerResponse) => {
      const answered = res.getHeader('x-openstack-request-id');
      return typeof answered === 'string' && answered !== req.id ? { upstreamRequestId: answered } : {};
    },
    customLogLevel: (_req: IncomingMessage, res: ServerResponse, err?: Error) => (err || res.statusCode >= 500 ? 'error' : 'info'),
    customSuccessMessage: () => 'request',
    customErrorMessage: () => 'request failed',
    quietReqLogger: true,
  });
}

/** The id pino-http gave `req`, if it went through accessLog. */
function idOf(req: IncomingMessage): string | undefined {
  const id = (req as IncomingMessage & { id?: unknown }).id;
  return typeof id === 'string' ? id : undefined;
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
