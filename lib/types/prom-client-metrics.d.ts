// prom-client's default-metric collectors, which it ships without types.
declare module 'prom-client/lib/metrics/*' {
  import type { Registry } from 'prom-client';
  const collect: (registry: Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void;
  export = collect;
}
