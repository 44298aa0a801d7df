/**
 * prom-client's default metrics (process CPU, memory, file descriptors, event-loop lag, handles,
 * heap spaces, Node's version) without its garbage-collection histogram, unless asked for.
 *
 * That histogram is fed by a PerformanceObserver: a JS callback for every collection, which is
 * thousands a second under load (a minor collection per 25-40 small requests). It cost the
 * sidecar a fifth of its small pass-through throughput (18,000 against 23,000 req/s) and, because
 * the entries outlive the collection that made them, a major collection every half second.
 */
import { collectDefaultMetrics, type Registry } from 'prom-client';

type Collector = (registry: Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void;

/** The collectors of prom-client's default metrics but `gc`, each required by name (prom-client has no export map for them). */
function collectors(): Collector[] {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const all: Record<string, () => Collector> = {
    processCpuTotal: () => require('prom-client/lib/metrics/processCpuTotal'),
    processStartTime: () => require('prom-client/lib/metrics/processStartTime'),
    osMemoryHeap: () => require('prom-client/lib/metrics/osMemoryHeap'),
    processOpenFileDescriptors: () => require('prom-client/lib/metrics/processOpenFileDescriptors'),
    processMaxFileDescriptors: () => require('prom-client/lib/metrics/processMaxFileDescriptors'),
    eventLoopLag: () => require('prom-client/lib/metrics/eventLoopLag'),
    processResources: () => require('prom-client/lib/metrics/processResources'),
    processHandles: () => require('prom-client/lib/metrics/processHandles'),
    processRequests: () => require('prom-client/lib/metrics/processRequests'),
    heapSizeAndUsed: () => require('prom-client/lib/metrics/heapSizeAndUsed'),
    heapSpacesSizeAndUsed: () => require('prom-client/lib/metrics/heapSpacesSizeAndUsed'),
    version: () => require('prom-client/lib/metrics/version'),
  };
  /* eslint-enable @typescript-eslint/no-require-imports */
  // The ones this prom-client collects by default (processResources only where Node has it).
  return collectDefaultMetrics.metricsList.filter((name) => name !== 'gc').map((name) => {
    const load = all[name];
    if (!load) throw new Error(`createMetrics: prom-client has a default metric '${name}' unknown here; use { gcMetrics: true }`);
    return load();
  });
}

/** Register prom-client's default metrics in `registry`, the GC histogram only if `gc`. */
export function defaultMetrics(registry: Registry, prefix: string, gc: boolean): void {
  if (gc) {
    collectDefaultMetrics({ register: registry, prefix });
    return;
  }
  for (const collect of collectors()) collect(registry, { prefix, eventLoopMonitoringPrecision: 10 });
}
