/**
 * The race registry of one sidecar's workers (`glance-edge proxy --workers N`), kept by the
 * primary process: each worker's {@link WorkerStore} asks the primary's store over the cluster's
 * IPC channel, and {@link serveWorkerStores} answers with the primary's own store (a MemoryStore,
 * or whatever the sidecar was given). Workers then see one another's uploads and changes as the
 * requests of one process do.
 *
 * Fail closed: a question the primary does not answer within the timeout, or a channel that is
 * gone (the primary died), rejects, and the guard answers 503.
 */
import type { Worker } from 'node:cluster';
import type { Lease, LeaseKind, Store } from '../../lib/locations/store';

const TAG = 'glance-edge:store';

type Operation = 'acquire' | 'renew' | 'release' | 'uploading';

interface Question {
  readonly tag: typeof TAG;
  readonly id: number;
  readonly op: Operation;
  readonly args: readonly unknown[];
}

interface Answer {
  readonly tag: typeof TAG;
  readonly id: number;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: string;
}

const isQuestion = (m: unknown): m is Question => typeof m === 'object' && m !== null && (m as Question).tag === TAG && typeof (m as Question).op === 'string';
const isAnswer = (m: unknown): m is Answer => typeof m === 'object' && m !== null && (m as Answer).tag === TAG && typeof (m as Answer).ok === 'boolean';

/**
 * In the primary: answer `worker`'s questions with `store`. A lease a worker held when it died
 * runs out after its TTL, as any holder's that dies.
 */
export function serveWorkerStores(store: Store, worker: Worker): void {
  worker.on('message', (message: unknown) => {
    if (!isQuestion(message)) return;
    const reply = (answer: Omit<Answer, 'tag' | 'id'>) => {
      // A worker going away (its channel closing as the answer is sent) no longer waits for it: with
      // a callback the failed send is told there, not raised as the primary's uncaught 'error'.
      if (worker.isConnected()) worker.send({ tag: TAG, id: message.id, ...answer }, () => undefined);
    };
    ask(store, message).then(
      (value) => reply({ ok: true, value }),
      (err: unknown) => reply({ ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
  });
}

function ask(store: Store, { op, args }: Question): Promise<unknown> {
  switch (op) {
    case 'acquire':
      return store.acquire(args[0] as string, args[1] as LeaseKind, args[2] as number);
    case 'renew':
      return store.renew(args[0] as Lease, args[1] as number);
    case 'release':
      return store.release(args[0] as Lease);
    case 'uploading':
      return Promise.resolve(store.uploading?.() ?? null);
    default:
      return Promise.reject(new Error(`unknown store operation ${String(op)}`));
  }
}

export interface WorkerStoreOptions {
  /** Milliseconds to wait for the primary's answer, except for an acquire, which may wait its turn. Default 2000. */
  readonly timeout?: number;
}

/** In a worker: the store the primary keeps. */
export class WorkerStore implements Store {
  /** Shared by the workers of this sidecar only: other sidecars do not see it. */
  readonly local = true;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #timeout: number;
  #next = 0;
  #uploading: number | null = null;

  constructor(options: WorkerStoreOptions = {}) {
    if (typeof process.send !== 'function') throw new TypeError('WorkerStore: this process has no IPC channel to a primary (run it as a cluster worker)');
    this.#timeout = options.timeout ?? 2000;
    process.on('message', (message: unknown) => {
      if (!isAnswer(message)) return;
      const waiting = this.#pending.get(message.id);
      if (waiting === undefined) return;
      this.#pending.delete(message.id);
      clearTimeout(waiting.timer);
      if (message.ok) waiting.resolve(message.value);
      else waiting.reject(new Error(`the registry failed: ${message.error ?? 'unknown error'}`));
    });
    // The primary is gone: nothing it held can be trusted any more.
    process.on('disconnect', () => {
      for (const [id, waiting] of this.#pending) {
        this.#pending.delete(id);
        clearTimeout(waiting.timer);
        waiting.reject(new Error('the registry (the primary process) is gone'));
      }
    });
  }

  async acquire(key: string, kind: LeaseKind, ttl: number): Promise<Lease | 'uploading'> {
    // An acquire may wait for the change before it, whose lease lasts `ttl` at most.
    return (await this.#ask('acquire', [key, kind, ttl], ttl + this.#timeout)) as Lease | 'uploading';
  }

  async renew(lease: Lease, ttl: number): Promise<boolean> {
    return (await this.#ask('renew', [lease, ttl], this.#timeout)) as boolean;
  }

  async release(lease: Lease): Promise<void> {
    await this.#ask('release', [lease], this.#timeout);
  }

  /** Images with an upload in flight across the workers, as last heard from the primary (refreshed on each call). */
  uploading(): number {
    this.#ask('uploading', [], this.#timeout).then(
      (n) => (this.#uploading = typeof n === 'number' ? n : null),
      () => undefined,
    );
    return this.#uploading ?? 0;
  }

  async ping(): Promise<void> {
    await this.#ask('uploading', [], this.#timeout);
  }

  #ask(op: Operation, args: readonly unknown[], ms: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (!process.connected || typeof process.send !== 'function') {
        reject(new Error('the registry (the primary process) is gone'));
        return;
      }
      const id = (this.#next = (this.#next + 1) % Number.MAX_SAFE_INTEGER);
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`the registry did not answer within ${ms} ms`));
      }, ms).unref();
      this.#pending.set(id, { resolve, reject, timer });
      const question: Question = { tag: TAG, id, op, args };
      process.send(question, undefined, undefined, (err: Error | null) => {
        if (err === null) return;
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(new Error(`the registry could not be asked: ${err.message}`));
      });
    });
  }
}
