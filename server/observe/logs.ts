/**
 * Structured JSON logs (pino): one access line per request with the request id taken
 * from or added as `X-Openstack-Request-Id`, one warn line per use of the legacy Content-Range
 * request header, one line per refused location change. Credentials are never logged: no request
 * header is, apart from the User-Agent.
 */
import { randomUUID } from 'node:crypto';
import { writeSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkArgument, checkOptions, option, type OptionChecks } from '../../lib/options';
import pino, { type DestinationStream, type Logger } from 'pino';
import { answerHeader } from './answer-headers';
import type { LocationRefusal } from '../../lib/locations/guard';
import type { LegacyUse } from '../../lib/ranges/legacy';
import { clientName } from './metrics';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** pino's level. Default `info`. */
  readonly level?: string;
  /** Where lines go. Default stdout, in batches (see createLogger). */
  readonly destination?: DestinationStream;
}

/**
 * A pino destination that copies each line into one fixed buffer and writes the buffer to `fd`
 * when it holds `flushAt` bytes, every 200 ms, when asked (flush) and when the process exits.
 *
 * pino's own batching (SonicBoom with minLength) gathers lines into one growing string, written
 * asynchronously: under load that string outlives a young-generation collection or two and is
 * promoted, and old-space garbage made a major collection every 400 ms. Here a line is garbage as
 * soon as it is copied: the sidecar's small pass-through rate went from about 14,400 to 16,000 req/s.
 * Writes are synchronous, so lines keep their order and a reader that cannot keep up holds the
 * process back rather than losing lines (a full non-blocking pipe is retried every millisecond);
 * a reader that is gone (EPIPE) loses them, and the process goes on.
 */
export function lineBuffer(fd: number, size = 64 * 1024, flushAt = 32 * 1024): DestinationStream & { flush(done?: (err?: Error) => void): void } {
  const buffer = Buffer.allocUnsafe(size);
  let length = 0;
  let broken = false;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const writeAll = (bytes: Buffer) => {
    let at = 0;
    while (at < bytes.length && !broken) {
      try {
        at += writeSync(fd, bytes, at, bytes.length - at);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          Atomics.wait(pause, 0, 0, 1);
          continue;
        }
        // The reader is gone (EPIPE, a closed descriptor): lines are dropped from now on, said
        // once on stderr; serving requests goes on.
        broken = true;
        try {
          writeSync(2, `glance-edge: log lines are no longer written (${code ?? String(err)})\n`);
        } catch {
          // stderr is gone too
        }
      }
    }
  };
  const flush = () => {
    if (length === 0) return;
    const pending = buffer.subarray(0, length);
    length = 0;
    writeAll(pending);
  };
  setInterval(flush, 200).unref();
  process.on('exit', flush);
  return {
    write(line: string) {
      // At most 3 bytes of UTF-8 per UTF-16 unit.
      if (line.length * 3 > size - length) {
        flush();
        if (line.length * 3 > size) {
          writeAll(Buffer.from(line));
          return;
        }
      }
      length += buffer.write(line, length);
      if (length >= flushAt) flush();
    },
    flush(done) {
      try {
        flush();
      } catch (err) {
        if (!done) throw err;
        done(err as Error);
        return;
      }
      done?.();
    },
  };
}

/** A pino logger writing JSON lines with ISO times and level names, by default to stdout through a lineBuffer. */
export function createLogger(options: LoggerOptions = {}): Logger {
  checkOptions('createLogger', options, {
    level: option.oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
    destination: option.object('a pino destination stream', (v) => typeof v === 'object' && v !== null && typeof (v as { write?: unknown }).write === 'function'),
  });
  const destination = options.destination ?? lineBuffer(1);
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: { name: 'glance-edge' },
      timestamp: () => `,"time":"${isoNow()}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  ownFormat.set(logger, destination);
  return logger;
}

/** The destinations of the loggers createLogger made, whose line format accessLog may write itself. */
const ownFormat = new WeakMap<Logger, DestinationStream>();

let isoMs = 0;
let isoText = '';

/** The time as pino's isoTime writes it, made once per millisecond. */
function isoNow(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoText = new Date(now).toISOString();
  }
  return isoText;
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
function answerFacts(res: ServerResponse, id: string): Record<string, unknown> {
  const length = Number(answerHeader(res, 'content-length'));
  const answered = answerHeader(res, 'x-openstack-request-id');
  return {
    statusCode: res.statusCode,
    ...(Number.isSafeInteger(length) ? { bytes: length } : {}),
    ...(answered !== undefined && answered !== id ? { upstreamRequestId: answered } : {}),
  };
}

export interface AccessLogOptions {
  /**
   * Set the request id on the answer as `X-Openstack-Request-Id` here. Default true. With false,
   * the handler sets it, finding it with requestIdOf(req): the sidecar's forwarder adds it to the
   * upstream's own headers, since an answer with a header set beforehand takes Node's slower path
   * (each of the upstream's headers is then removed and appended again).
   */
  readonly setHeader?: boolean;
}

const ACCESS_LOG_OPTIONS: OptionChecks<AccessLogOptions> = { setHeader: option.boolean };

/**
 * Access lines, one per request when its answer is over (finished or cut), in pino-http's shape:
 * `req` (id, method, url, client address and User-Agent, as the request came), `res` (status,
 * bytes), `responseTime` in ms, `msg` "request completed", "request aborted" (at warn) or "request
 * errored" (5xx, at error). The request id is also set on the answer as `X-Openstack-Request-Id`;
 * an upstream's own id, when the sidecar forwards its answer, replaces it there and is logged as
 * `res.upstreamRequestId`. Credentials are never logged: no request header is, apart from the
 * User-Agent.
 *
 * Written here rather than by pino-http: per request that made two child loggers (serializing the
 * request up front) and three listeners, which cost the sidecar's small pass-through about 28 us
 * of the 95 it took (bench, suite small); this costs one listener and one line.
 */
export function accessLog(logger: Logger, options: AccessLogOptions = {}): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  checkArgument('accessLog', 'logger', logger, option.logger);
  checkOptions('accessLog', options, ACCESS_LOG_OPTIONS);
  const setHeader = options.setHeader ?? true;
  return function accessLog(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    const id = requestId(req);
    ids.set(req, id);
    if (setHeader) res.setHeader('X-Openstack-Request-Id', id);
    const started = Date.now();
    // As the request came: a router mounted in front may rewrite req.url on the way.
    const { method, url } = req;
    const remoteAddress = req.socket.remoteAddress;
    // 'close' comes once per answer, after 'finish' or when the connection was cut.
    res.once('close', () => {
      const [level, msg] = res.statusCode >= 500 ? ERRORED : req.readableAborted || !res.writableEnded ? ABORTED : COMPLETED;
      if (!logger.isLevelEnabled(level)) return;
      const userAgent = req.headers['user-agent'];
      const responseTime = Date.now() - started;
      const destination = ownFormat.get(logger);
      if (destination !== undefined) {
        destination.write(accessLine(level, msg, id, method, url, remoteAddress, userAgent, res, responseTime));
        return;
      }
      logger[level]({ req: { id, method, url, remoteAddress, userAgent }, res: answerFacts(res, id), responseTime }, msg);
    });
    next();
  };
}

const ERRORED = ['error', 'request errored'] as const;
const ABORTED = ['warn', 'request aborted'] as const;
const COMPLETED = ['info', 'request completed'] as const;

/**
 * The access line as a logger of createLogger writes `logger[level]({ req, res, responseTime }, msg)`,
 * written here in one string: through pino, the line's objects and their separate serializations
 * were the larger part of an access line's cost. (`id` is a token or a uuid, `method` a token.)
 */
function accessLine(
  level: string,
  msg: string,
  id: string,
  method: string | undefined,
  url: string | undefined,
  remoteAddress: string | undefined,
  userAgent: string | undefined,
  res: ServerResponse,
  responseTime: number,
): string {
  const length = Number(answerHeader(res, 'content-length'));
  const answered = answerHeader(res, 'x-openstack-request-id');
  return (
    `{"level":"${level}","time":"${isoNow()}","name":"glance-edge","req":{"id":"${id}"` +
    (method === undefined ? '' : `,"method":${JSON.stringify(method)}`) +
    (url === undefined ? '' : `,"url":${JSON.stringify(url)}`) +
    (remoteAddress === undefined ? '' : `,"remoteAddress":${JSON.stringify(remoteAddress)}`) +
    (userAgent === undefined ? '' : `,"userAgent":${JSON.stringify(userAgent)}`) +
    `},"res":{"statusCode":${res.statusCode}` +
    (Number.isSafeInteger(length) ? `,"bytes":${length}` : '') +
    (answered !== undefined && answered !== id ? `,"upstreamRequestId":${JSON.stringify(answered)}` : '') +
    `},"responseTime":${responseTime},"msg":"${msg}"}\n`
  );
}

/** The id accessLog gave `req`, if it went through it. */
export function requestIdOf(req: IncomingMessage): string | undefined {
  return ids.get(req);
}

/** A serveImage / legacyContentRange `onUse` hook: one warn line per use, with a running count. */
export function logLegacyRange(logger: Logger): (use: LegacyUse) => void {
  let uses = 0;
  return (use) => {
    uses += 1;
    logger.warn(
      { requestId: requestIdOf(use.req), client: clientName(use.userAgent), userAgent: use.userAgent, contentRange: use.contentRange, method: use.method, url: use.url, uses },
      'deprecated Content-Range request header',
    );
  };
}

/** A locationGuard `onRefused` hook: one line per refused location change. */
export function logRefusal(logger: Logger): (refusal: LocationRefusal) => void {
  return (refusal) => {
    logger.info(
      {
        requestId: requestIdOf(refusal.req),
        imageId: refusal.imageId,
        status: refusal.error.status,
        type: refusal.error.type,
        ...(refusal.op === undefined ? {} : { op: refusal.op, imageStatus: refusal.imageStatus }),
      },
      'location change refused',
    );
  };
}
