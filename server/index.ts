/**
 * glance-edge/server: the servers built from the middlewares (the sidecar, the demo image service)
 * and what they run with (metrics, logs, the forwarder, measured performance settings). It loads
 * Express, pino and prom-client; the middlewares alone are in `glance-edge`.
 */
export { createSidecar } from './sidecar/app';
export type { SidecarOptions } from './sidecar/app';
export { forward } from './sidecar/forward';
export type { ForwardOptions } from './sidecar/forward';
export { createDemoApp } from './demo/app';
export type { DemoOptions } from './demo/app';
export { DiskImageStore } from './demo/store';
export type { ImageLocation, ImageRecord } from './demo/store';
export { both, createMetrics, metricsEndpoint } from './observe/metrics';
export type { EdgeMetrics, MetricsOptions, RouteGroup } from './observe/metrics';
export { accessLog, createLogger, logLegacyRange, logRefusal, requestIdOf } from './observe/logs';
export type { AccessLogOptions, Logger, LoggerOptions } from './observe/logs';
export { reclaimStreamedData } from './perf/reclaim';
export type { ReclaimOptions } from './perf/reclaim';
export { RedisStore } from './stores/redis';
export type { RedisStoreOptions } from './stores/redis';
