/**
 * One process on every core: `glance-edge proxy --workers N` (and `demo --workers N`) runs N worker
 * processes (node:cluster) that share the listening port, and a primary that keeps what they share.
 *
 * - The race registry: without a shared store (Redis) the primary keeps it (a MemoryStore) and
 *   the workers ask it over IPC (server/stores/cluster.ts); with one, each worker uses it directly.
 * - The demo's image records: the primary keeps them (server/stores/records.ts).
 * - Metrics: GET /metrics, whichever worker answers it, serves the primary's aggregate of every
 *   worker's registry (prom-client's AggregatorRegistry), so a scrape sees the whole sidecar.
 * - Life: a worker that dies is replaced, whether or not it had begun to listen (a crash loop, more
 *   than 10 in a minute, stops the process); one of the first workers that dies before it listened
 *   stops it with its error (its port taken, say: every other would fail alike). SIGTERM and
 *   SIGINT stop every worker gracefully. When the primary dies its workers stop taking requests and
 *   exit, so a supervisor sees one failure, never workers running with a lost registry.
 */
import cluster, { type Worker } from 'node:cluster';
import type http from 'node:http';
import { AggregatorRegistry, type PrometheusContentType, type Registry } from 'prom-client';
import { MemoryStore, type Store } from '../lib/locations/store';
import type { Logger } from './observe/logs';
import { serveWorkerStores, WorkerStore } from './stores/cluster';

const READY = 'glance-edge:ready';
const METRICS = 'glance-edge:metrics';

interface Ready {
  readonly tag: typeof READY;
  readonly port: number;
}
interface MetricsQuestion {
  readonly tag: typeof METRICS;
  readonly id: number;
}
interface MetricsAnswer {
  readonly tag: typeof METRICS;
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

const tagged = <T extends { tag: string }>(m: unknown, tag: string): m is T => typeof m === 'object' && m !== null && (m as T).tag === tag;

export interface PrimaryOptions {
  /** The command the workers run, as the log lines name it. */
  readonly command: 'proxy' | 'demo';
  readonly workers: number;
  /** What else the primary keeps for each worker (the demo's records). */
  readonly serve?: (worker: Worker) => void;
  /** A store shared beyond this sidecar (Redis): the workers use it and the primary keeps none. */
  readonly shared: boolean;
  readonly logger: Logger;
  /** How the listening address is shown once every worker listens. */
  readonly host: string;
  readonly extra: Record<string, unknown>;
}

/** In the primary: start the workers and keep them. Resolves once every worker listens. */
export function runPrimary(options: PrimaryOptions): Promise<void> {
  const { workers, logger } = options;
  const registry = options.shared ? null : new MemoryStore();
  const aggregator = new AggregatorRegistry();
  const ready = new Set<number>();
  const restarts: number[] = [];
  let stopping = false;
  let listening = false;

  return new Promise((resolve, reject) => {
    const start = (): Worker => {
      const worker = cluster.fork();
      let listened = false;
      if (registry !== null) serveWorkerStores(registry, worker);
      options.serve?.(worker);
      worker.on('message', (message: unknown) => {
        if (tagged<Ready>(message, READY)) {
          listened = true;
          ready.add(worker.id);
          if (!listening && ready.size === workers) {
            listening = true;
            const shownHost = options.host.includes(':') ? `[${options.host}]` : options.host;
            logger.info({ ...options.extra, port: message.port, workers }, `glance-edge ${options.command} listening on http://${shownHost}:${message.port}`);
            logger.flush();
            resolve();
          }
        } else if (tagged<MetricsQuestion>(message, METRICS)) {
          const answer = (a: Omit<MetricsAnswer, 'tag' | 'id'>) => {
            // (A worker going away: the failed send is told to the callback, not raised in the primary.)
            if (worker.isConnected()) worker.send({ tag: METRICS, id: message.id, ...a }, () => undefined);
          };
          aggregator.clusterMetrics().then(
            (text) => answer({ text }),
            (err: unknown) => answer({ error: err instanceof Error ? err.message : String(err) }),
          );
        }
      });
      // A message that could not reach a worker going away (its channel closed under a send): the
      // worker's exit, below, is what counts; the primary goes on.
      worker.on('error', (err: Error) => logger.warn({ event: 'worker.channel', pid: worker.process.pid, error: err.message }, 'a message could not reach a worker'));
      worker.on('exit', (code, signal) => {
        ready.delete(worker.id);
        if (stopping) {
          if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
          return;
        }
        if (!listened && !listening) {
          // One of the first workers never listened (its port taken, say): another would fail the same way.
          stopAll();
          reject(new Error(`a worker exited before it listened (${signal ?? `exit status ${code}`}); its error is above`));
          return;
        }
        const now = Date.now();
        restarts.push(now);
        while (restarts.length > 0 && (restarts[0] as number) < now - 60_000) restarts.shift();
        if (restarts.length > 10) {
          logger.error({ event: 'worker.crash-loop' }, 'more than 10 workers died within a minute: stopping');
          logger.flush();
          stopAll();
          process.exit(1);
        }
        logger.warn({ event: 'worker.replaced', pid: worker.process.pid, code, signal }, 'a worker died; starting another');
        start();
      });
      return worker;
    };

    const stopAll = () => {
      stopping = true;
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    };
    const stop = () => {
      logger.info(`glance-edge ${options.command} stopping: every worker stops taking connections and finishes its requests (10 s at most)`);
      logger.flush();
      stopAll();
      setTimeout(() => process.exit(0), 12_000).unref();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    for (let i = 0; i < workers; i++) start();
  });
}

/** In a worker: the store it asks (the primary's, unless it was given a shared one). */
export function workerStore(shared: Store | undefined, timeout: number): Store {
  return shared ?? new WorkerStore({ timeout });
}

/** In a worker: a registry whose metrics are the primary's aggregate of every worker's `own`. */
export function workerMetrics(own: Registry, timeout = 5000): Registry {
  AggregatorRegistry.setRegistries([own]);
  let next = 0;
  const pending = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  process.on('message', (message: unknown) => {
    if (!tagged<MetricsAnswer>(message, METRICS)) return;
    const waiting = pending.get(message.id);
    if (waiting === undefined) return;
    pending.delete(message.id);
    if (message.text !== undefined) waiting.resolve(message.text);
    else waiting.reject(new Error(message.error ?? 'no metrics'));
  });
  // Constructing an AggregatorRegistry makes this worker answer the primary's requests for `own`.
  class PrimaryMetrics extends AggregatorRegistry<PrometheusContentType> {
    override metrics(): Promise<string> {
      return new Promise((resolve, reject) => {
        if (!process.connected || typeof process.send !== 'function') {
          reject(new Error('the primary process is gone'));
          return;
        }
        const id = (next = (next + 1) % Number.MAX_SAFE_INTEGER);
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`the primary did not send the metrics within ${timeout} ms`));
        }, timeout).unref();
        pending.set(id, {
          resolve: (text) => {
            clearTimeout(timer);
            resolve(text);
          },
          reject: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        });
        process.send({ tag: METRICS, id } satisfies MetricsQuestion, undefined, undefined, (err: Error | null) => {
          if (err === null) return;
          pending.delete(id);
          clearTimeout(timer);
          reject(new Error(`the primary could not be asked: ${err.message}`));
        });
      });
    }
  }
  return new PrimaryMetrics();
}

/**
 * In a worker, once its server listens: tell the primary, and stop when the primary is gone (stop
 * taking connections, let requests in flight end, exit with status 1 within `graceMs`).
 */
export function workerListening(server: http.Server, logger: Logger, graceMs = 10_000): void {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.send?.({ tag: READY, port } satisfies Ready);
  process.once('disconnect', () => {
    logger.error({ event: 'primary.gone' }, 'the primary process is gone: this worker stops taking requests and exits');
    logger.flush();
    server.close(() => process.exit(1));
    setInterval(() => server.closeIdleConnections(), 50).unref();
    setTimeout(() => process.exit(1), graceMs).unref();
  });
}

export const isWorker = (): boolean => cluster.isWorker;
