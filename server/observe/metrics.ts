/**
 * Prometheus metrics of the suite (prom-client): requests by route group and status, location
 * conflicts by op and image status, legacy Content-Range requests by client, upstream latency,
 * uploads in flight, lookup failures. Every label has a bounded set of values.
 *
 * The demo and the sidecar serve them at /metrics; a mount-mode user creates them with
 * createMetrics(), passes the hooks to the middlewares and exposes `metrics.registry` as they like.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { isGlanceError } from '../../lib/errors';
import { checkArgument, checkOptions, option, type OptionChecks } from '../../lib/options';
import { pathOf } from '../../lib/http/media';
import { readRequest, type Route } from '../../lib/request/read';
import { reclaimCollections } from '../perf/reclaim';
import { IMAGE_STATUSES, type ImageLookup } from '../../lib/images/lookup';
import type { Store } from '../../lib/locations/store';
import type { LocationRefusal } from '../../lib/locations/guard';
import type { LegacyUse } from '../../lib/ranges/legacy';
import { defaultMetrics } from './defaults';

export interface MetricsOptions {
  /** Where the metrics are registered. Default: a registry of their own, with Node's default metrics. */
  readonly registry?: Registry;
  /** Prefix of every metric name. Default `glance_edge_`. */
  readonly prefix?: string;
  /** Distinct clients counted by name for legacy Content-Range requests; the rest count as `other`. Default 20. */
  readonly legacyClients?: number;
  /**
   * With the default metrics of a registry of its own, also prom-client's GC histogram
   * (`nodejs_gc_duration_seconds`). Default false: it runs a JS callback at every collection,
   * which cost the sidecar a fifth of its small-request throughput (server/observe/defaults.ts).
   */
  readonly gcMetrics?: boolean;
}

const isRegistry = option.object('a prom-client Registry', (v) => v instanceof Registry);

const METRICS_OPTIONS: OptionChecks<MetricsOptions> = {
  registry: isRegistry,
  prefix: { expected: 'a metric name prefix (letters, digits, _ and :, not starting with a digit) or empty', test: (v) => typeof v === 'string' && /^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$/.test(v) },
  legacyClients: option.integer(0, Number.MAX_SAFE_INTEGER, 'clients'),
  gcMetrics: option.boolean,
};

/** What a request is about, for the `route` label. */
export type RouteGroup = 'versions' | 'healthz' | 'metrics' | 'schemas' | 'metadefs' | 'images' | 'image' | 'image_data' | 'image_upload' | 'image_action' | 'other';

const GROUPS: Readonly<Record<Route, RouteGroup>> = {
  versions: 'versions',
  healthcheck: 'other',
  images: 'images',
  image: 'image',
  'image-file': 'image_data',
  'image-stage': 'image_upload',
  'image-import': 'image_upload',
  'image-locations': 'image_action',
  'image-other': 'other',
  'image-store': 'image_action',
  schemas: 'schemas',
  metadefs: 'metadefs',
  'api-other': 'other',
  other: 'other',
};

/** The route group of a request, from the suite's one reading of it. */
export function routeGroup(req: IncomingMessage): RouteGroup {
  const reading = readRequest(req);
  if (reading.route === 'other' && reading.segments.length === 0) {
    const path = pathOf(req).toLowerCase();
    if (path === '/healthz' || path === '/healthz/') return 'healthz';
    if (path === '/metrics' || path === '/metrics/') return 'metrics';
  }
  if (reading.route === 'image-other' && reading.segments[2]?.toLowerCase() === 'actions') return 'image_action';
  return GROUPS[reading.route];
}

const STATUSES = new Set<string>(IMAGE_STATUSES);
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The product name a User-Agent starts with (`python-glanceclient/4.1 ...` → `python-glanceclient`). */
export function clientName(userAgent: string | undefined): string {
  const m = /^\s*([A-Za-z0-9][A-Za-z0-9._+-]{0,39})/.exec(userAgent ?? '');
  return m ? (m[1] as string).toLowerCase() : 'unknown';
}

export interface EdgeMetrics {
  readonly registry: Registry;
  /** Middleware counting every answer by method, route group and status, when it is over. */
  requests(): (req: IncomingMessage, res: ServerResponse, next: () => void) => void;
  /** A locationGuard `onRefused` hook. */
  readonly onRefused: (refusal: LocationRefusal) => void;
  /** A serveImage / legacyContentRange `onUse` hook. */
  readonly onLegacyRange: (use: LegacyUse) => void;
  /** Time an upstream took to start answering (`lookup`, `forward`, `data`), in seconds. */
  upstream(kind: 'lookup' | 'forward' | 'data', seconds: number): void;
  /** Count a failed lookup by the error's type (e.g. `lookup.failed`, `lookup.unavailable`). */
  lookupFailure(type: string): void;
  /** Report the uploads in flight of `store` (images with an upload through the suite), when it can tell. */
  trackUploads(store: Store): void;
  /** `lookup`, timed and with its failures counted. */
  observeLookup(lookup: ImageLookup): ImageLookup;
  /** `store`, its calls timed and their failures counted, the leases this process holds through it gauged. */
  observeStore(store: Store): Store;
}

/** Create the suite's metrics. */
export function createMetrics(options: MetricsOptions = {}): EdgeMetrics {
  checkOptions('createMetrics', options, METRICS_OPTIONS);
  const own = options.registry === undefined;
  const registry = options.registry ?? new Registry();
  const prefix = options.prefix ?? 'glance_edge_';
  const legacyClients = options.legacyClients ?? 20;
  if (own) defaultMetrics(registry, prefix, options.gcMetrics ?? false);

  // Registered in this order, the order of the exposition.
  const registers = [registry];
  // Answers are counted in a plain map and handed to prom-client at scrape time: a labelled
  // inc() per request (hashing its labels) was a measurable share of a small forwarded request.
  const answered = new Map<string, number>();
  answersCounter(prefix, registers, answered);
  const conflicts = conflictsCounter(prefix, registers);
  const legacy = legacyCounter(prefix, registers, legacyClients);
  const latency = latencyHistogram(prefix, registers);
  // Bound once: observe() with a labels object hashes the labels at every call.
  const byKind = { lookup: latency.labels('lookup'), forward: latency.labels('forward'), data: latency.labels('data') };
  const failures = new Counter({ name: `${prefix}lookup_failures_total`, help: 'Image lookups that failed, by error type (the change was refused).', labelNames: ['type'], registers });
  const stores: Store[] = [];
  uploadsGauge(prefix, registers, stores);
  const registryMetrics = registryInstruments(prefix, registers);
  reclaimCounter(prefix, registers);
  const clients = new Set<string>();

  const metrics: EdgeMetrics = {
    registry,
    requests: () => countAnswers(answered),
    onRefused: (refusal) => countConflict(conflicts, refusal),
    onLegacyRange: (use) => countLegacyRange(legacy, clients, legacyClients, use),
    upstream: (kind, seconds) => byKind[kind].observe(seconds),
    lookupFailure: (type) => failures.inc({ type }),
    trackUploads: (store) => {
      if (!stores.includes(store)) stores.push(store);
    },
    observeLookup: (lookup) => timedLookup(lookup, metrics),
    observeStore: (store) => observedStore(store, registryMetrics),
  };
  return metrics;
}

type Registers = Registry[];

/** `http_requests_total`: the answers counted in `answered` (by `method route status`), handed over at scrape time. */
function answersCounter(prefix: string, registers: Registers, answered: ReadonlyMap<string, number>): void {
  new Counter({
    name: `${prefix}http_requests_total`,
    help: 'Answers by method, route group and status.',
    labelNames: ['method', 'route', 'status'],
    registers,
    collect() {
      this.reset();
      for (const [key, n] of answered) {
        const [method, route, status] = key.split(' ') as [string, string, string];
        this.inc({ method, route, status }, n);
      }
    },
  });
}

/** `location_conflicts_total`: location changes refused with 409. */
function conflictsCounter(prefix: string, registers: Registers) {
  return new Counter({
    name: `${prefix}location_conflicts_total`,
    help: 'Location changes refused with 409, by op and image status.',
    labelNames: ['op', 'image_status'],
    registers,
  });
}

/** `legacy_content_range_requests_total`: downloads with the legacy form, by client. */
function legacyCounter(prefix: string, registers: Registers, legacyClients: number) {
  return new Counter({
    name: `${prefix}legacy_content_range_requests_total`,
    help: `Downloads using the deprecated Content-Range request header, by client (User-Agent product; beyond ${legacyClients} distinct clients: other).`,
    labelNames: ['client'],
    registers,
  });
}

/** `upstream_latency_seconds`: how long the upstream took to start answering, by kind. */
function latencyHistogram(prefix: string, registers: Registers) {
  return new Histogram({
    name: `${prefix}upstream_latency_seconds`,
    help: 'Time the upstream image service took to start answering: lookup, forwarded request, image data.',
    labelNames: ['kind'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
}

interface RegistryInstruments {
  readonly seconds: Histogram<'op'>;
  readonly errors: Counter<'op'>;
  readonly held: Gauge<'kind'>;
}

/**
 * `registry_seconds`, `registry_errors_total`, `registry_leases_held`: how long the race
 * registry's calls take, which fail (each failure refused a change or an upload with 503, or cut
 * one), and the leases this process holds.
 */
function registryInstruments(prefix: string, registers: Registers): RegistryInstruments {
  return {
    seconds: new Histogram({
      name: `${prefix}registry_seconds`,
      help: 'Time the race registry took to answer, by call (acquire includes waiting for a turn).',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    errors: new Counter({ name: `${prefix}registry_errors_total`, help: 'Calls to the race registry that failed, by call.', labelNames: ['op'], registers }),
    held: new Gauge({ name: `${prefix}registry_leases_held`, help: 'Leases this process holds in the race registry, by kind.', labelNames: ['kind'], registers }),
  };
}

/** `store` with its calls measured (see registryInstruments). */
function observedStore(store: Store, m: RegistryInstruments): Store {
  const timed = async <T>(op: string, call: () => Promise<T>): Promise<T> => {
    const started = process.hrtime.bigint();
    try {
      return await call();
    } catch (err) {
      m.errors.inc({ op });
      throw err;
    } finally {
      m.seconds.observe({ op }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };
  const held = new Set<string>();
  const observed: Store = {
    local: store.local,
    acquire: async (key, kind, ttl) => {
      const lease = await timed('acquire', () => store.acquire(key, kind, ttl));
      if (lease !== 'uploading') {
        held.add(lease.token);
        m.held.inc({ kind });
      }
      return lease;
    },
    renew: async (lease, ttl) => {
      const renewed = await timed('renew', () => store.renew(lease, ttl));
      if (!renewed && held.delete(lease.token)) m.held.dec({ kind: lease.kind });
      return renewed;
    },
    release: async (lease) => {
      if (held.delete(lease.token)) m.held.dec({ kind: lease.kind });
      await timed('release', () => store.release(lease));
    },
  };
  const { uploading, ping } = store;
  if (uploading) Object.assign(observed, { uploading: () => uploading.call(store) });
  if (ping) Object.assign(observed, { ping: () => ping.call(store) });
  return observed;
}

/** `uploads_in_flight`: what the `stores` tracked tell of their uploads, at scrape time. */
function uploadsGauge(prefix: string, registers: Registers, stores: readonly Store[]): void {
  new Gauge({
    name: `${prefix}uploads_in_flight`,
    help: 'Images with an upload of data in flight through the suite.',
    registers,
    collect() {
      this.set(stores.reduce((n, s) => n + (s.uploading?.() ?? 0), 0));
    },
  });
}

/** `reclaim_collections_total`: the collections reclaimStreamedData ran, at scrape time. */
function reclaimCounter(prefix: string, registers: Registers): void {
  new Counter({
    name: `${prefix}reclaim_collections_total`,
    help: 'Minor garbage collections run to free streamed image data (reclaimStreamedData).',
    registers,
    collect() {
      this.reset();
      this.inc(reclaimCollections());
    },
  });
}

/** The middleware counting each answer in `answered` by method, route group and status, once it is over. */
function countAnswers(answered: Map<string, number>): ReturnType<EdgeMetrics['requests']> {
  return function countRequests(req, res, next) {
    // 'close' comes once per answer, after 'finish' or when the connection was cut.
    res.once('close', () => {
      const key = `${METHODS.has(req.method ?? '') ? (req.method as string) : 'other'} ${routeGroup(req)} ${res.statusCode}`;
      answered.set(key, (answered.get(key) ?? 0) + 1);
    });
    next();
  };
}

/** Count a refusal that is a 409 by its op and image status (a status outside Glance's as `other`). */
function countConflict(conflicts: Counter, refusal: LocationRefusal): void {
  if (refusal.op === undefined) return;
  const status = refusal.imageStatus ?? 'unknown';
  conflicts.inc({ op: refusal.op, image_status: STATUSES.has(status) ? status : 'other' });
}

/** Count a legacy range request by its client: the first `legacyClients` distinct ones by name, the rest as `other`. */
function countLegacyRange(legacy: Counter, clients: Set<string>, legacyClients: number, use: LegacyUse): void {
  let client = clientName(use.userAgent);
  if (!clients.has(client)) {
    if (clients.size < legacyClients) clients.add(client);
    else client = 'other';
  }
  legacy.inc({ client });
}

/** `lookup`, timed as an upstream `lookup` and with its failures counted by type, through `metrics`. */
function timedLookup(lookup: ImageLookup, metrics: EdgeMetrics): ImageLookup {
  return async function observedLookup(id, req) {
    const started = process.hrtime.bigint();
    try {
      return await lookup(id, req);
    } catch (err) {
      metrics.lookupFailure(isGlanceError(err) ? err.type : 'error');
      throw err;
    } finally {
      metrics.upstream('lookup', Number(process.hrtime.bigint() - started) / 1e9);
    }
  };
}

/** The given listeners as one (those given as false or undefined left out): hooks of the options, logs and metrics. */
export function both<T>(...listeners: (((value: T) => void) | false | undefined)[]): (value: T) => void {
  const set = listeners.filter((l): l is (value: T) => void => typeof l === 'function');
  if (set.length === 0) return () => undefined;
  if (set.length === 1) return set[0] as (value: T) => void;
  return (value) => {
    for (const listener of set) listener(value);
  };
}

/** A handler answering `GET /metrics` with the registry in Prometheus' text format. */
export function metricsEndpoint(registry: Registry) {
  checkArgument('metricsEndpoint', 'registry', registry, isRegistry);
  return function metricsEndpoint(_req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void {
    registry.metrics().then((text) => {
      res.writeHead(200, { 'Content-Type': registry.contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
      res.end(text);
    }, next);
  };
}
