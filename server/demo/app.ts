/**
 * The demo server: the embedded image service (service.ts) on disk, with the suite mounted in front
 * of it exactly as a user mounts it in front of their own image service.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express } from 'express';
import { Registry } from 'prom-client';
import { glanceError, glanceErrorHandler } from '../../lib/errors';
import { checkOptions, option, type OptionChecks } from '../../lib/options';
import { CONTAINER_FORMATS, DISK_FORMATS } from '../../lib/defaults/formats';
import { imageFormats, resolveFormats, type FormatListOption } from '../../lib/defaults/middleware';
import { isStore, MemoryStore, type Store } from '../../lib/locations/store';
import { locationGuard } from '../../lib/locations/guard';
import type { LegacyUse } from '../../lib/ranges/legacy';
import { accessLog, logLegacyRange, logRefusal, type Logger } from '../observe/logs';
import { both, metricsEndpoint, type EdgeMetrics } from '../observe/metrics';
import { locationPolicy } from './location';
import { imageView } from './images';
import { plainDownloadId } from './routing';
import { imageServiceParts } from './service';
import type { DiskImageStore } from './store';

export interface DemoOptions {
  /** The store the demo serves. */
  readonly store: DiskImageStore;
  /** Glance's `show_multiple_locations`. Default true. */
  readonly showMultipleLocations?: boolean;
  /** Milliseconds to wait for an http:// location to answer. Default 10000. */
  readonly locationTimeout?: number;
  /**
   * Loopback and private addresses that http(s) locations may point at: CIDRs, addresses, host
   * names. Default: loopback. Link-local addresses and the demo itself are never connected to.
   */
  readonly allowedLocationHosts?: readonly string[];
  /** Most bytes of one image's data (Glance's `image_size_cap`). Default 1 TiB. */
  readonly maxImageSize?: number;
  /** Most ranges one download may ask for (multipart/byteranges). Default 1: Glance's 400 for several. */
  readonly maxRanges?: number;
  /** Told of every download that uses the legacy Content-Range request form. */
  readonly onLegacyRange?: (use: LegacyUse) => void;
  /** The disk formats: the whole list, or { add, remove } against Glance's defaults. */
  readonly diskFormats?: FormatListOption;
  /** The container formats: the whole list, or { add, remove } against Glance's defaults. */
  readonly containerFormats?: FormatListOption;
  /** Structured logs: one access line per request, a warn line per legacy header, a line per refused change. */
  readonly logger?: Logger;
  /** Prometheus metrics, also served at GET /metrics. */
  readonly metrics?: EdgeMetrics;
  /** What GET /metrics serves, when not `metrics`' own registry (a worker's: every worker's aggregate). */
  readonly servedMetrics?: Registry;
  /** The race registry of the location guard: by default a MemoryStore of this process's own. */
  readonly registry?: Store;
}

const DEMO_OPTIONS: OptionChecks<DemoOptions> = {
  store: option.object('a DiskImageStore', (v) => typeof v === 'object' && v !== null && typeof (v as { facts?: unknown }).facts === 'function'),
  showMultipleLocations: option.boolean,
  locationTimeout: option.integer(1, 2_147_483_647, 'milliseconds'),
  allowedLocationHosts: option.object('a list of CIDRs, addresses and host names', (v) => Array.isArray(v) && v.every((h) => typeof h === 'string')),
  maxImageSize: option.integer(1, Number.MAX_SAFE_INTEGER, 'bytes'),
  maxRanges: option.integer(1, 1000, 'ranges'),
  onLegacyRange: option.function('(use) => void'),
  diskFormats: option.formatList,
  containerFormats: option.formatList,
  logger: option.logger,
  metrics: option.object('the metrics of createMetrics', (v) => typeof v === 'object' && v !== null && 'registry' in v),
  servedMetrics: option.object('a prom-client Registry', (v) => v instanceof Registry),
  registry: option.object('a Store (acquire, renew, release, local)', isStore),
};

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => unknown;

/**
 * Build the demo app around `options.store`: an Express app. A download spelt as the service's
 * router matches it with nothing to rewrite (routing.ts, plainDownloadId) goes through the same
 * middlewares, in the same order, straight to the download route's handler, without Express's
 * routing around them: under load of 1 MiB ranges Express's own work cost the demo a fifth of its
 * rate (bench, ranges). Every other request, and every other spelling of that one, is the app's.
 */
export function createDemoApp(options: DemoOptions): Express {
  checkOptions('createDemoApp', options, DEMO_OPTIONS, ['store']);
  const { store } = options;
  const diskFormats = resolveFormats(options.diskFormats, DISK_FORMATS, 'diskFormats', 'createDemoApp');
  const containerFormats = resolveFormats(options.containerFormats, CONTAINER_FORMATS, 'containerFormats', 'createDemoApp');
  // Each entry is judged here, so that a bad one names this factory (the image service builds the policy).
  if (options.allowedLocationHosts) locationPolicy(options.allowedLocationHosts, "createDemoApp: option 'allowedLocationHosts'");
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  const { logger, metrics } = options;
  // The middlewares before the routes, in order (a download takes them all, see above).
  const before: Middleware[] = [];
  if (metrics) before.push(metrics.requests());
  // Every answer carries an X-Openstack-Request-Id, as Glance's do (the access log's id, if logged).
  if (logger) before.push(accessLog(logger));
  else {
    before.push(function requestId(_req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
      res.setHeader('X-Openstack-Request-Id', `req-${randomUUID()}`);
      next();
    });
  }
  for (const middleware of before) app.use(middleware as express.RequestHandler);
  if (metrics) app.get('/metrics', metricsEndpoint(options.servedMetrics ?? metrics.registry));

  // The suite, mounted as any user mounts it: the lookup is the store itself, with the image's
  // document, so that the guard answers a patch Glance would fail at an earlier op as Glance does.
  const registry = options.registry ?? new MemoryStore();
  const lookup = async (id: string) => {
    const facts = store.facts(id);
    const record = store.get(id);
    return facts && record ? { ...facts, document: imageView(record) } : facts;
  };
  metrics?.trackUploads(registry);
  const onRefused = both(logger && logRefusal(logger), metrics?.onRefused);
  const guard = locationGuard({
      lookup,
      showMultipleLocations: options.showMultipleLocations ?? true,
      store: registry,
      onRefused,
      // The demo answers 415 to a patch in any other media type, as Glance does.
      patchMediaTypes: 'glance',
      // Values are checked against the image schema of the demo's own formats.
      diskFormats,
      containerFormats,
  });
  const formats = imageFormats({ diskFormats, containerFormats });
  app.use(guard, formats);

  const onLegacyRange = both(options.onLegacyRange, logger && logLegacyRange(logger), metrics?.onLegacyRange);
  const service = imageServiceParts({
      store,
      diskFormats,
      containerFormats,
      ...(options.locationTimeout === undefined ? {} : { locationTimeout: options.locationTimeout }),
      ...(options.allowedLocationHosts === undefined ? {} : { allowedLocationHosts: options.allowedLocationHosts }),
      ...(options.maxImageSize === undefined ? {} : { maxImageSize: options.maxImageSize }),
      ...(options.maxRanges === undefined ? {} : { maxRanges: options.maxRanges }),
      onLegacyRange,
  });
  app.use(service.router);
  app.use(() => {
    throw glanceError(404, 'route.not_found', `The resource could not be found.`);
  });
  const errors = glanceErrorHandler();
  app.use(errors);

  const downloadLane: Middleware[] = [...before, guard, formats, service.download];
  const demo = function demo(req: IncomingMessage, res: ServerResponse): void {
    const id = plainDownloadId(req);
    if (id === null) {
      app(req, res);
      return;
    }
    // As the router leaves them for the route's handler.
    (req as IncomingMessage & { params: Record<string, string> }).params = { id };
    runLane(downloadLane, req, res, (err) => {
      // Answered once what came with the request on its connection has been read, as through the
      // router: an error answer to a request whose body has all arrived keeps the connection.
      setImmediate(() => errors(err ?? glanceError(404, 'route.not_found', 'The resource could not be found.'), req, res, () => undefined));
    });
  };
  // The rest of the app's interface (app.listen, app.set, ...) stays the app's.
  return Object.setPrototypeOf(demo, app) as Express;
}

/**
 * Run `middlewares` in order on a request, as Express runs a route's stack: each calls `next()`
 * for the next one, `next(err)` (or throws, or returns a promise that rejects) for `done(err)`.
 * `done()` with no error: every middleware passed the request on.
 */
function runLane(middlewares: readonly Middleware[], req: IncomingMessage, res: ServerResponse, done: (err?: unknown) => void): void {
  let i = 0;
  let finished = false;
  const end = (err?: unknown) => {
    if (finished) return;
    finished = true;
    done(err);
  };
  const next = (err?: unknown): void => {
    if (finished) return;
    if (err !== undefined && err !== null) return end(err);
    const middleware = middlewares[i++];
    if (middleware === undefined) return end();
    try {
      const result = middleware(req, res, next);
      if (result instanceof Promise) result.catch(end);
    } catch (thrown) {
      end(thrown);
    }
  };
  next();
}
