/**
 * The demo server: the embedded image service (service.ts) on disk, with the suite mounted in front
 * of it exactly as a user mounts it in front of their own image service.
 */
import { randomUUID } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
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
import { imageService } from './service';
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

/** Build the demo app around `options.store`. */
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
  if (metrics) app.use(metrics.requests());
  // Every answer carries an X-Openstack-Request-Id, as Glance's do (the access log's id, if logged).
  if (logger) app.use(accessLog(logger));
  else {
    app.use(function requestId(_req: Request, res: Response, next: NextFunction) {
      res.setHeader('X-Openstack-Request-Id', `req-${randomUUID()}`);
      next();
    });
  }
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
  app.use(
    locationGuard({
      lookup,
      showMultipleLocations: options.showMultipleLocations ?? true,
      store: registry,
      onRefused,
      // The demo answers 415 to a patch in any other media type, as Glance does.
      patchMediaTypes: 'glance',
      // Values are checked against the image schema of the demo's own formats.
      diskFormats,
      containerFormats,
    }),
  );
  app.use(imageFormats({ diskFormats, containerFormats }));

  const onLegacyRange = both(options.onLegacyRange, logger && logLegacyRange(logger), metrics?.onLegacyRange);
  app.use(
    imageService({
      store,
      diskFormats,
      containerFormats,
      ...(options.locationTimeout === undefined ? {} : { locationTimeout: options.locationTimeout }),
      ...(options.allowedLocationHosts === undefined ? {} : { allowedLocationHosts: options.allowedLocationHosts }),
      ...(options.maxImageSize === undefined ? {} : { maxImageSize: options.maxImageSize }),
      ...(options.maxRanges === undefined ? {} : { maxRanges: options.maxRanges }),
      onLegacyRange,
    }),
  );
  app.use(() => {
    throw glanceError(404, 'route.not_found', `The resource could not be found.`);
  });
  app.use(glanceErrorHandler());
  return app;
}
