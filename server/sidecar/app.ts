/**
 * The sidecar: the whole suite in front of an existing image service, composed of the same
 * middlewares as mount mode, with a streaming forwarder behind them.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import express, { type Express } from 'express';
import { glanceError, glanceErrorHandler, isGlanceError, sendGlanceError } from '../../lib/errors';
import { hypervisorMetadefs, imageSchemas } from '../../lib/defaults/documents';
import { imageFormats, type FormatListOption } from '../../lib/defaults/middleware';
import { pythonJson } from '../../lib/http/json';
import { forwardedHeaders } from '../../lib/http/forwarded';
import { pathOf } from '../../lib/http/media';
import { checkOptions, option, type OptionChecks } from '../../lib/options';
import { readRequest, type Route } from '../../lib/request/read';
import { rewriteJsonAnswer } from '../../lib/http/rewrite';
import { httpImageLookup, type ImageFacts } from '../../lib/images/lookup';
import { MemoryStore } from '../../lib/locations/store';
import { locationGuard } from '../../lib/locations/guard';
import { serveImage, type ImageData } from '../../lib/ranges/serve';
import { accessLog, logLegacyRange, logRefusal, requestIdOf, type Logger } from '../observe/logs';
import { both, metricsEndpoint, type EdgeMetrics } from '../observe/metrics';
import type { LegacyUse } from '../../lib/ranges/legacy';
import { forward, framingRefusal, isStaleConnection, upstreamAgent } from './forward';

export interface SidecarOptions {
  /** Base URL of the upstream image service. */
  readonly upstream: string;
  /** Milliseconds to wait for the upstream to begin answering. Default 60000. */
  readonly timeout?: number;
  readonly showMultipleLocations?: boolean;
  readonly maxRanges?: number;
  readonly diskFormats?: FormatListOption;
  readonly containerFormats?: FormatListOption;
  readonly onLegacyRange?: (use: LegacyUse) => void;
  /**
   * The upstream understands only the legacy request form (pre-Ocata Glance): ranges are asked of
   * it with a `Content-Range` request header instead of `Range`. Default false.
   */
  readonly legacyUpstream?: boolean;
  /** Structured logs: one access line per request, a warn line per legacy header, a line per refused change. */
  readonly logger?: Logger;
  /** Prometheus metrics, also served at GET /metrics. */
  readonly metrics?: EdgeMetrics;
}

const facts = new WeakMap<IncomingMessage, ImageFacts>();

/** Request headers a read of the image data does not carry: the range is its own, and it has no body. */
const DATA_OWN = new Set(['range', 'content-range', 'if-range', 'accept-encoding', 'content-length', 'content-type', 'expect']);
const notForData = (lower: string) => DATA_OWN.has(lower);

/** Routes of the image API whose answers a middleware of the suite answers or changes. */
const SUITE_ROUTES: ReadonlySet<Route> = new Set(['versions', 'schemas', 'metadefs', 'image-file']);
const SIDECAR_PATHS = new Set(['/healthz', '/healthz/', '/metrics', '/metrics/']);

/**
 * Whether no middleware of the suite has anything to do with `req`, by the suite's one reading of
 * it: a request that cannot change anything, on a route the suite neither answers nor changes.
 * Every other request (every write, so every location change and upload) goes through the suite.
 */
export function untouchedBySuite(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const reading = readRequest(req);
  return !reading.mayChange && reading.ambiguous === null && !SUITE_ROUTES.has(reading.route) && !SIDECAR_PATHS.has(pathOf(req).toLowerCase());
}

const SIDECAR_OPTIONS: OptionChecks<SidecarOptions> = {
  upstream: option.url,
  timeout: option.integer(1, 2_147_483_647, 'milliseconds'),
  showMultipleLocations: option.boolean,
  maxRanges: option.integer(1, 1000, 'ranges'),
  diskFormats: option.any('a list of formats, or { add, remove }'),
  containerFormats: option.any('a list of formats, or { add, remove }'),
  onLegacyRange: option.function('(use) => void'),
  legacyUpstream: option.boolean,
  logger: option.object('a pino logger (createLogger)', (v) => typeof v === 'object' && v !== null && typeof (v as { info?: unknown }).info === 'function'),
  metrics: option.object('the metrics of createMetrics', (v) => typeof v === 'object' && v !== null && 'registry' in v),
};

/** Build the sidecar app in front of `options.upstream`. */
export function createSidecarApp(options: SidecarOptions): Express {
  const { routes, front } = sidecarParts(options, true);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  for (const middleware of front) app.use(middleware);
  app.use(routes);
  return app;
}

/**
 * The sidecar as a request listener for `http.createServer`, as `glance-edge proxy` serves it:
 * the same middlewares as createSidecarApp, but requests no middleware of the suite touches (see
 * untouchedBySuite) skip them and go straight to the forwarder, which then costs what a bare
 * node:http proxy costs; the others go through an Express Router rather than an app. (An app gives
 * each request and answer its own prototypes: the code both ways share, pino-http's, the
 * forwarder's and Node's, then met two shapes of each, and pass-through ran 12-20 % slower once
 * writes or downloads had gone through the app.) Both ways write the same access-log line.
 */
export function createSidecarHandler(options: SidecarOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { routes, forwarder, front } = sidecarParts(options, false);
  const fail = (req: IncomingMessage, res: ServerResponse) => (err?: unknown) => sendGlanceError(req, res, err);
  const suite = routes as unknown as (req: IncomingMessage, res: ServerResponse, done: (err?: unknown) => void) => void;
  // The access line's request id: the forwarder puts it among the upstream's headers; every other
  // answer gets it set here, before the suite's middlewares write anything.
  const dispatch = (req: IncomingMessage, res: ServerResponse) => {
    // A request framed ambiguously is refused before anything, a lookup included, goes upstream.
    const refusal = framingRefusal(req);
    if (refusal !== null) {
      sendGlanceError(req, res, refusal);
      return;
    }
    if (untouchedBySuite(req)) {
      forwarder(req, res, fail(req, res));
      return;
    }
    const id = requestIdOf(req);
    if (id !== undefined) res.setHeader('X-Openstack-Request-Id', id);
    // The forwarder ends the routes: nothing falls through but an error.
    suite(req, res, fail(req, res));
  };
  return function sidecar(req: IncomingMessage, res: ServerResponse): void {
    let i = 0;
    const step = (): void => {
      const middleware = front[i++];
      if (middleware) middleware(req, res, step);
      else dispatch(req, res);
    };
    step();
  };
}

type Middleware = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

function sidecarParts(options: SidecarOptions, frontInApp: boolean) {
  checkOptions(frontInApp ? 'createSidecarApp' : 'createSidecarHandler', options, SIDECAR_OPTIONS, ['upstream']);
  const base = new URL(options.upstream);
  const transport = base.protocol === 'https:' ? https : http;
  const agent = upstreamAgent(transport);
  const timeout = options.timeout ?? 60_000;
  const { logger, metrics } = options;
  // Lookups ask at the image as the request spelt it, so the upstream reads them as it reads the request.
  const plainLookup = httpImageLookup({ url: options.upstream, agent, asRequested: true });
  const lookup = metrics ? metrics.observeLookup(plainLookup) : plainLookup;
  const forwarder = forward({
    upstream: options.upstream,
    timeout,
    agent,
    ...(metrics ? { onAnswer: (seconds: number) => metrics.upstream('forward', seconds) } : {}),
    ...(logger && !frontInApp ? { requestId: requestIdOf } : {}),
  });
  // What every request meets first, both ways in: request counts, then the access line and its id
  // (set on the answer by accessLog in the app, by dispatch and the forwarder in the handler).
  const front: Middleware[] = [];
  if (metrics) front.push(metrics.requests());
  if (logger) front.push(accessLog(logger, { setHeader: frontInApp }) as Middleware);
  const onLegacyRange = both(options.onLegacyRange, logger && logLegacyRange(logger), metrics?.onLegacyRange);
  const onRefused = both(logger && logRefusal(logger), metrics?.onRefused);
  const prefix = base.pathname.replace(/\/+$/, '');

  /** Open a byte range of the image data upstream, with the caller's own headers. */
  const openUpstream = (req: IncomingMessage, range?: { start: number; end: number }, mayRetry = true): Promise<IncomingMessage> =>
    new Promise<IncomingMessage>((resolve, reject) => {
      // The caller's identity as a forwarded request carries it; its own range, and no body.
      const headers = forwardedHeaders(req, base.host, notForData);
      if (range) {
        if (options.legacyUpstream) headers.push('Content-Range', `bytes ${range.start}-${range.end}/*`);
        else headers.push('Range', `bytes=${range.start}-${range.end}`);
      }
      const started = process.hrtime.bigint();
      let answered = false;
      const upstream = transport.request(
        { protocol: base.protocol, hostname: base.hostname, port: base.port, method: 'GET', path: `${prefix}${req.url ?? '/'}`, headers, agent, timeout },
        (res) => {
          answered = true;
          upstream.setTimeout(0);
          metrics?.upstream('data', Number(process.hrtime.bigint() - started) / 1e9);
          if (res.statusCode === 200 || res.statusCode === 206) resolve(res);
          else {
            res.resume();
            reject(glanceError(502, 'upstream.data', `The image service answered ${res.statusCode} when asked for the image data.`));
          }
        },
      );
      upstream.on('timeout', () => upstream.destroy(glanceError(504, 'upstream.timeout', `The image service did not answer within ${timeout} ms.`)));
      upstream.on('error', (err: NodeJS.ErrnoException) => {
        // A pooled connection the upstream closed as it was reused: once more on a fresh one.
        if (mayRetry && !answered && isStaleConnection(upstream, err)) openUpstream(req, range, false).then(resolve, reject);
        else reject(isGlanceError(err) ? err : glanceError(502, 'upstream.unreachable', `The image service could not be reached (${err.code ?? err.message}).`));
      });
      upstream.end();
    });

  const serve = serveImage({
    source: (req): ImageData => {
      const image = facts.get(req) as ImageFacts;
      return {
        size: image.size as number,
        checksum: image.checksum,
        open: async (range) => {
          const res = await openUpstream(req, range);
          // An upstream that ignores Range sends the whole image (200): serveImage cuts the slice.
          const sent = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '');
          const offset = res.statusCode === 206 ? (sent ? Number(sent[1]) : (range?.start ?? 0)) : 0;
          return { stream: res, offset };
        },
      };
    },
    maxRanges: options.maxRanges ?? 1,
    deprecation: { onUse: onLegacyRange },
  });

  const store = new MemoryStore();
  metrics?.trackUploads(store);
  const routes = express.Router();
  if (metrics) routes.get('/metrics', metricsEndpoint(metrics.registry));

  // The sidecar's own state and whether the upstream answers.
  routes.get('/healthz', (_req, res) => {
    const started = Date.now();
    const probe = transport.request(
      { protocol: base.protocol, hostname: base.hostname, port: base.port, method: 'GET', path: `${prefix}/versions`, agent, timeout: 3000 },
      (answer) => {
        answer.resume();
        report(answer.statusCode !== undefined && answer.statusCode < 500, answer.statusCode ?? null);
      },
    );
    probe.on('timeout', () => probe.destroy(new Error('timeout')));
    probe.on('error', () => report(false, null));
    probe.end();
    let reported = false;
    function report(reachable: boolean, status: number | null) {
      if (reported) return;
      reported = true;
      const body = JSON.stringify({
        status: reachable ? 'ok' : 'upstream unreachable',
        upstream: { url: options.upstream, reachable, status, ms: Date.now() - started },
        uploadsInFlight: store.uploading(),
      });
      res.writeHead(reachable ? 200 : 503, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
      res.end(body);
    }
  });

  // Version documents name the upstream in their links: they name the sidecar instead.
  routes.get(['/', '/versions'], (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => {
    const own = `${'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http'}://${req.headers.host ?? ''}`;
    const relink = (doc: unknown): unknown => {
      if (Array.isArray(doc)) return doc.map(relink);
      if (typeof doc === 'object' && doc !== null) return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, relink(v)]));
      return typeof doc === 'string' && doc.startsWith(base.origin) ? own + doc.slice(base.origin.length) : doc;
    };
    if (req.headers.host) {
      rewriteJsonAnswer(req, res, {
        statuses: [200, 300],
        transform: (doc) => (JSON.stringify(doc).includes(base.origin) ? relink(doc) : undefined),
        serialize: (d) => pythonJson(d),
      });
    }
    next();
  });

  routes.use(locationGuard({ lookup, showMultipleLocations: options.showMultipleLocations ?? true, store, onRefused }));
  const formats = {
    ...(options.diskFormats ? { diskFormats: options.diskFormats } : {}),
    ...(options.containerFormats ? { containerFormats: options.containerFormats } : {}),
  };
  routes.use(imageFormats(formats));
  routes.use(imageSchemas(formats));
  routes.use(hypervisorMetadefs());
  // Downloads: ranges served here from the upstream's data, whatever the upstream supports.
  routes.use(function downloads(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
    const reading = readRequest(req);
    if (reading.route !== 'image-file' || (reading.method !== 'GET' && reading.method !== 'HEAD') || reading.imageId === null) {
      next();
      return;
    }
    lookup(reading.imageId, req).then((image) => {
      // Not visible, or no data: the upstream gives its own answer.
      if (!image || !image.size) {
        forwarder(req, res, next);
        return;
      }
      facts.set(req, image);
      serve(req, res, next);
    }, next);
  });
  routes.use(forwarder);
  routes.use(glanceErrorHandler());
  return { routes, forwarder, front };
}
