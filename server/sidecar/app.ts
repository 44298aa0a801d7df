/**
 * The sidecar: the whole suite in front of an existing image service, composed of the same
 * middlewares as mount mode, with a streaming forwarder behind them, all asking the image service
 * through one client (lib/upstream/client.ts) and one connection pool.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import { Registry } from 'prom-client';
import { glanceError, glanceErrorHandler, sendGlanceError } from '../../lib/errors';
import { hypervisorMetadefs, imageSchemas } from '../../lib/defaults/documents';
import { imageFormats, type FormatListOption } from '../../lib/defaults/middleware';
import { pythonJson } from '../../lib/http/json';
import { forwardedHeaders } from '../../lib/http/forwarded';
import { pathOf } from '../../lib/http/media';
import { checkOptions, option, type OptionChecks } from '../../lib/options';
import { readRequest, type Route } from '../../lib/request/read';
import { rewriteJsonAnswer } from '../../lib/http/rewrite';
import { httpImageLookup, type ImageFacts, type ImageLookup } from '../../lib/images/lookup';
import { isStore, MemoryStore, type Store } from '../../lib/locations/store';
import { UpstreamFailure, upstreamClient, upstreamError, type UpstreamClient } from '../../lib/upstream/client';
import { locationGuard } from '../../lib/locations/guard';
import { serveImage, type ImageData } from '../../lib/ranges/serve';
import { accessLog, logLegacyRange, logRefusal, requestIdOf, type Logger } from '../observe/logs';
import { both, metricsEndpoint, type EdgeMetrics } from '../observe/metrics';
import type { LegacyUse } from '../../lib/ranges/legacy';
import { countLarge } from '../perf/reclaim';
import { framingRefusal, sidecarForwarder } from './forward';

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
  /**
   * What GET /metrics serves: by default `metrics.registry`. The workers of one sidecar serve their
   * primary's aggregate of all of them (server/cluster.ts).
   */
  readonly servedMetrics?: Registry;
  /** The race registry: by default a MemoryStore of this process's own. */
  readonly store?: Store;
  /**
   * Other sidecars front the same image service (behind one load balancer, say): a warning is
   * logged when the store is local to this process, since the race is then closed only for the
   * requests that pass through it. Default false.
   */
  readonly peers?: boolean;
  /** How long a lease in the race registry lasts unless renewed (locationGuard's `leaseTtl`). Default 30000. */
  readonly leaseTtl?: number;
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
  diskFormats: option.formatList,
  containerFormats: option.formatList,
  onLegacyRange: option.function('(use) => void'),
  legacyUpstream: option.boolean,
  logger: option.object('a pino logger (createLogger)', (v) => typeof v === 'object' && v !== null && typeof (v as { info?: unknown }).info === 'function'),
  metrics: option.object('the metrics of createMetrics', (v) => typeof v === 'object' && v !== null && 'registry' in v),
  servedMetrics: option.object('a prom-client Registry', (v) => v instanceof Registry),
  store: option.object('a Store (acquire, renew, release, local)', isStore),
  peers: option.boolean,
  leaseTtl: option.integer(300, 86_400_000, 'milliseconds'),
};

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * The sidecar in front of `options.upstream`, as a request listener for `http.createServer` (as
 * `glance-edge proxy` serves it) or a handler to mount last in an app of your own: it answers every
 * request. Requests no middleware of the suite touches (see untouchedBySuite) skip the suite and
 * go straight to the forwarder (its `pass`: undici's dispatch, cheaper than a bare node:http
 * proxy); the others go through the suite's middlewares in an Express Router rather than an app.
 * (An app gives each request and answer its own prototypes: the code both ways share, the access
 * log's, the forwarder's and Node's, then met two shapes of each, and pass-through ran 12-20 %
 * slower once writes or downloads had gone through the app.) Both ways write the same access-log
 * line.
 */
export function createSidecar(options: SidecarOptions): (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void {
  checkOptions('createSidecar', options, SIDECAR_OPTIONS, ['upstream']);
  const given = options.store ?? new MemoryStore();
  const store = options.metrics ? options.metrics.observeStore(given) : given;
  if (options.peers && store.local && options.logger) warnLocalStore(options.logger);
  const client = upstreamClient({ url: options.upstream, timeout: options.timeout ?? 60_000 });
  const forwarder = sidecarForwarder({
    upstream: options.upstream,
    timeout: client.timeout,
    ...(options.metrics ? { onAnswer: (seconds: number) => options.metrics?.upstream('forward', seconds) } : {}),
    ...(options.logger ? { requestId: requestIdOf } : {}),
  });
  const suite = suiteRoutes(options, client, store, forwarder.forward) as unknown as Middleware;
  const front = frontMiddlewares(options);
  const dispatch = (req: IncomingMessage, res: ServerResponse) => {
    const fail = (err?: unknown) => sendGlanceError(req, res, err);
    // A request framed ambiguously is refused before anything, a lookup included, goes upstream.
    const refusal = framingRefusal(req);
    if (refusal !== null) fail(refusal);
    else if (untouchedBySuite(req)) forwarder.pass(req, res, fail);
    else {
      // The access line's request id: the forwarder puts it among the upstream's headers; every
      // other answer gets it here, before the suite's middlewares write anything.
      const id = requestIdOf(req);
      if (id !== undefined) res.setHeader('X-Openstack-Request-Id', id);
      // The forwarder ends the routes: nothing falls through but an error.
      suite(req, res, fail);
    }
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

/** The warning of a sidecar told it has peers whose race registry they do not share. */
export function warnLocalStore(logger: Logger): void {
  logger.warn(
    { event: 'store.local' },
    'other sidecars front this image service but the race registry is not shared with them: an upload through one of them does not hold back a location change through this one (give every sidecar the same --store)',
  );
}

/** What every request meets first: request counts, then the access line and its id. */
function frontMiddlewares({ logger, metrics }: SidecarOptions): Middleware[] {
  const front: Middleware[] = [];
  if (metrics) front.push(metrics.requests() as Middleware);
  if (logger) front.push(accessLog(logger, { setHeader: false }) as Middleware);
  return front;
}

/** The suite's middlewares in front of the forwarder, with the sidecar's own endpoints. */
function suiteRoutes(options: SidecarOptions, client: UpstreamClient, store: Store, forwarder: Middleware) {
  const { logger, metrics } = options;
  // Lookups ask at the image as the request spelt it, so the upstream reads them as it reads the request.
  const plainLookup = httpImageLookup({ url: options.upstream, agent: client.target.agent, asRequested: true });
  const lookup = metrics ? metrics.observeLookup(plainLookup) : plainLookup;
  const onRefused = both(logger && logRefusal(logger), metrics?.onRefused);
  metrics?.trackUploads(store);
  const formats = {
    ...(options.diskFormats ? { diskFormats: options.diskFormats } : {}),
    ...(options.containerFormats ? { containerFormats: options.containerFormats } : {}),
  };
  const routes = express.Router();
  if (metrics) routes.get('/metrics', metricsEndpoint(options.servedMetrics ?? metrics.registry));
  routes.get('/healthz', healthz(options.upstream, client, store));
  routes.get(['/', '/versions'], versionLinks(client));
  routes.use(
    locationGuard({
      lookup,
      showMultipleLocations: options.showMultipleLocations ?? true,
      store,
      onRefused,
      ...formats,
      ...(options.leaseTtl === undefined ? {} : { leaseTtl: options.leaseTtl }),
    }),
  );
  routes.use(imageFormats(formats));
  routes.use(imageSchemas(formats));
  routes.use(hypervisorMetadefs());
  routes.use(downloads(options, client, lookup, forwarder));
  routes.use(forwarder);
  routes.use(glanceErrorHandler());
  return routes;
}

/**
 * The sidecar's own state: whether the upstream answers and whether the race registry can be asked
 * (503 when either cannot: location changes and uploads are then refused), and the uploads in flight.
 */
function healthz(upstream: string, client: UpstreamClient, store: Store) {
  return function healthz(_req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    const probe = client.fetch({ method: 'GET', path: '/versions', headers: ['Host', client.host], timeout: 3000 }, 1024 * 1024).then(
      (answer) => ({ reachable: answer.status < 500, status: answer.status as number | null }),
      () => ({ reachable: false, status: null }),
    );
    const registry = (store.ping ? store.ping() : Promise.resolve()).then(
      () => ({ ok: true, local: store.local }),
      (err: unknown) => ({ ok: false, local: store.local, error: err instanceof Error ? err.message : String(err) }),
    );
    void Promise.all([probe, registry]).then(([up, reg]) => {
      const ok = up.reachable && reg.ok;
      const body = JSON.stringify({
        status: ok ? 'ok' : !up.reachable ? 'upstream unreachable' : 'registry unavailable',
        upstream: { url: upstream, reachable: up.reachable, status: up.status, ms: Date.now() - started },
        registry: reg,
        uploadsInFlight: store.uploading?.() ?? null,
      });
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
      res.end(body);
    });
  };
}

/** Version documents name the upstream in their links: they name the sidecar instead. */
function versionLinks(client: UpstreamClient) {
  const origin = client.origin;
  return function versionLinks(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void {
    const own = `${'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http'}://${req.headers.host ?? ''}`;
    const relink = (doc: unknown): unknown => {
      if (Array.isArray(doc)) return doc.map(relink);
      if (typeof doc === 'object' && doc !== null) return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, relink(v)]));
      return typeof doc === 'string' && doc.startsWith(origin) ? own + doc.slice(origin.length) : doc;
    };
    if (req.headers.host) {
      rewriteJsonAnswer(req, res, {
        statuses: [200, 300],
        transform: (doc) => (JSON.stringify(doc).includes(origin) ? relink(doc) : undefined),
        serialize: (d) => pythonJson(d),
      });
    }
    next();
  };
}

/**
 * Glance's answer (400) to a range of an image whose store cannot start reading mid-image (rbd,
 * swift, s3, http): `Getting images randomly from this store is not supported. Offset: o, length: n`.
 */
const NO_RANDOM_ACCESS = 'Getting images randomly from this store is not supported';
/** The most of an upstream's 400 read to find that text in it (Glance's is about 100 bytes). */
const REFUSAL_LIMIT = 64 * 1024;

/** Whether `res`, a 400 to a ranged read of image data, is Glance's refusal of random access. Reads it. */
function refusesRandomAccess(res: IncomingMessage): Promise<boolean> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = (found: boolean) => {
      res.removeAllListeners('data');
      resolve(found);
    };
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length > REFUSAL_LIMIT) {
        res.destroy();
        done(false);
      }
    });
    // The text as it is in each of webob's forms: plain, JSON and HTML leave it as it is.
    res.on('end', () => done(Buffer.concat(chunks).toString('latin1').includes(NO_RANDOM_ACCESS)));
    res.on('error', () => done(false));
    res.on('close', () => done(false));
  });
}

/**
 * Downloads: ranges served here from the upstream's data, whatever the upstream supports. A range
 * is asked of the upstream as a range; when its store cannot start mid-image (Glance's 400
 * NO_RANDOM_ACCESS), the whole image is asked for and serveImage skips to the range (ours). That
 * 400 is not remembered per image: an image's data may move to another store (a location added or
 * removed), and a remembered refusal would then make every range of it read the image from the
 * start, where the 400 costs one short exchange.
 */
function downloads(options: SidecarOptions, client: UpstreamClient, lookup: ImageLookup, forwarder: Middleware) {
  const { logger, metrics } = options;
  const onLegacyRange = both(options.onLegacyRange, logger && logLegacyRange(logger), metrics?.onLegacyRange);

  /** Ask the upstream for the image data (`range` of it, or all), with the caller's own headers. */
  const askUpstream = async (req: IncomingMessage, range?: { start: number; end: number }): Promise<IncomingMessage> => {
    // The caller's identity as a forwarded request carries it; its own range, and no body.
    const headers = forwardedHeaders(req, client.host, notForData);
    if (range) {
      if (options.legacyUpstream) headers.push('Content-Range', `bytes ${range.start}-${range.end}/*`);
      else headers.push('Range', `bytes=${range.start}-${range.end}`);
    }
    const started = process.hrtime.bigint();
    let res: IncomingMessage;
    try {
      res = await client.send({ method: 'GET', path: req.url ?? '/', headers }).answer;
    } catch (err) {
      throw err instanceof UpstreamFailure ? upstreamError(err) : err;
    }
    metrics?.upstream('data', Number(process.hrtime.bigint() - started) / 1e9);
    return res;
  };

  /** Open a byte range of the image data upstream: the range itself, or the whole image when its store has no random access. */
  const openUpstream = async (req: IncomingMessage, range?: { start: number; end: number }): Promise<IncomingMessage> => {
    let res = await askUpstream(req, range);
    if (range && res.statusCode === 400 && (await refusesRandomAccess(res))) res = await askUpstream(req);
    if (res.statusCode === 200 || res.statusCode === 206) {
      countLarge(res, res.headers['content-length']);
      return res;
    }
    res.resume();
    throw glanceError(502, 'upstream.data', `The image service answered ${res.statusCode} when asked for the image data.`);
  };

  const serve = serveImage({
    source: (req): ImageData => {
      const image = facts.get(req) as ImageFacts;
      return {
        size: image.size as number,
        checksum: image.checksum,
        open: async (range) => {
          const res = await openUpstream(req, range);
          // An upstream that ignores Range sends the whole image (200), as does one asked again
          // without it: serveImage skips to the slice and stops reading after it.
          const sent = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '');
          const offset = res.statusCode === 206 ? (sent ? Number(sent[1]) : (range?.start ?? 0)) : 0;
          return { stream: res, offset };
        },
      };
    },
    maxRanges: options.maxRanges ?? 1,
    deprecation: { onUse: onLegacyRange },
  });

  /**
   * An image of zero bytes: Glance answers 200 with no body, and 416 to any range. The upstream is
   * asked for the data first (without the range), so that what it refuses (its download policy,
   * say) reaches the client as it answers it; when it answers 200, serveImage answers as Glance
   * does, HEAD and the `Content-Range` request form included.
   */
  const serveEmpty = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void => {
    askUpstream(req).then((answer) => {
      answer.resume();
      if (answer.statusCode === 200) serve(req, res, next);
      else forwarder(req, res, next);
    }, next);
  };

  return function downloads(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void {
    const reading = readRequest(req);
    if (reading.route !== 'image-file' || (reading.method !== 'GET' && reading.method !== 'HEAD') || reading.imageId === null) {
      next();
      return;
    }
    lookup(reading.imageId, req).then((image) => {
      // Not visible, or no data: the upstream gives its own answer.
      if (!image || image.size === null) {
        forwarder(req, res, next);
        return;
      }
      facts.set(req, image);
      if (image.size === 0) serveEmpty(req, res, next);
      else serve(req, res, next);
    }, next);
  };
}
