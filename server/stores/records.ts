/**
 * The demo's image records across its workers (`glance-edge demo --workers N`): the primary opens
 * the store and keeps them, each worker reads a copy and asks the primary for every change over
 * the cluster's IPC channel.
 *
 * - A change (a save, a delete) is written by the primary, then passed on to every worker that has
 *   its copy, and answered only once each has applied it: a client told "done" by one worker finds
 *   the change in whichever worker its next request reaches. A worker that has not applied a change
 *   within {@link APPLY_MS} is killed (and replaced with a fresh copy), never left serving old records.
 * - The lock of an image (one change of an image at a time) is the primary's, given in the order
 *   asked; the locks of a worker that dies are given back.
 * - Location ids come from the primary's one counter, as from Glance's one table.
 * - A worker holding an image's lock while others wait for it is asked every {@link PROBE_MS}
 *   whether it still runs; one that has not answered within {@link APPLY_MS} (stopped, its event
 *   loop stuck) is killed, and its locks are given back.
 *
 * Fail closed: a worker whose primary is gone has its pending questions rejected (the request is
 * a 500), and stops (server/cluster.ts).
 */
import type { Worker } from 'node:cluster';
import type { DiskImageStore, ImageRecord, RecordChange, RecordKeeper } from '../demo/store';

const TAG = 'glance-edge:records';
/** Milliseconds a worker has to apply a change, or to answer whether it runs, before it is killed. */
const APPLY_MS = 10_000;
/** How often a worker holding a lock others wait for is asked whether it runs. */
const PROBE_MS = 2_500;

type Operation = 'subscribe' | 'lock' | 'unlock' | 'save' | 'delete' | 'nextLocationId';

interface Question {
  readonly tag: typeof TAG;
  readonly id: number;
  readonly op: Operation;
  readonly arg?: unknown;
}
interface Answer {
  readonly tag: typeof TAG;
  readonly id: number;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: string;
}
/** A change, to apply and acknowledge. */
interface Applied {
  readonly tag: typeof TAG;
  readonly seq: number;
  readonly change: RecordChange;
}
interface Ack {
  readonly tag: typeof TAG;
  readonly ack: number;
}
/** Whether the worker runs: answered with a {@link Pong} of the same number. */
interface Ping {
  readonly tag: typeof TAG;
  readonly ping: number;
}
interface Pong {
  readonly tag: typeof TAG;
  readonly pong: number;
}

const ours = (m: unknown): m is Record<string, unknown> => typeof m === 'object' && m !== null && (m as { tag?: unknown }).tag === TAG;

interface Holder {
  readonly worker: number;
  readonly grant: () => void;
}

/** In the primary: the keeper of `store`'s records for every worker it is given. */
export class RecordHub {
  readonly #store: DiskImageStore;
  /** Workers with a copy of the records, by cluster id. */
  readonly #copies = new Map<number, Worker>();
  /** Per image: the holder of its lock first, then those waiting, in order. */
  readonly #locks = new Map<string, Holder[]>();
  /** Changes passed on and not yet applied everywhere: the workers still to apply each. */
  readonly #unapplied = new Map<number, { waiting: Set<number>; done: () => void }>();
  /** Every worker served, by cluster id, while it runs. */
  readonly #workers = new Map<number, Worker>();
  /** Workers asked whether they run, and not answered yet: since when. */
  readonly #probed = new Map<number, { ping: number; since: number }>();
  #probes: NodeJS.Timeout | null = null;
  #seq = 0;

  constructor(store: DiskImageStore) {
    this.#store = store;
  }

  /** Answer `worker`'s questions; forget it (its copy, its locks) when it exits. */
  serve(worker: Worker): void {
    this.#workers.set(worker.id, worker);
    worker.on('message', (message: unknown) => {
      if (!ours(message)) return;
      // A message read after the worker's exit (still in the channel): it holds nothing any more.
      if (!this.#workers.has(worker.id)) return;
      if (typeof message['ack'] === 'number') {
        this.#applied(message['ack'], worker.id);
        return;
      }
      if (typeof message['pong'] === 'number') {
        if (this.#probed.get(worker.id)?.ping === message['pong']) this.#probed.delete(worker.id);
        return;
      }
      const question = message as unknown as Question;
      const reply = (answer: Omit<Answer, 'tag' | 'id'>) => {
        if (worker.isConnected()) worker.send({ tag: TAG, id: question.id, ...answer } satisfies Answer, () => undefined);
      };
      if (question.op === 'subscribe') {
        // The copy and the worker's place among those passed every change, in one step: no change
        // can be sent to it before its copy, nor be left out of both.
        this.#copies.set(worker.id, worker);
        reply({ ok: true, value: this.#store.records() });
        return;
      }
      this.#answer(worker, question, reply).then(
        (value) => {
          if (value !== PENDING) reply({ ok: true, value });
        },
        (err: unknown) => reply({ ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
    });
    worker.on('exit', () => this.#gone(worker.id));
  }

  async #answer(worker: Worker, { op, arg }: Question, reply: (answer: Omit<Answer, 'tag' | 'id'>) => void): Promise<unknown> {
    const store = this.#store;
    switch (op) {
      case 'lock':
        this.#lock(String(arg), worker.id, () => reply({ ok: true }));
        return PENDING;
      case 'unlock':
        this.#unlock(String(arg), worker.id);
        return null;
      case 'save': {
        const record = arg as ImageRecord;
        await store.save(record);
        await this.#passOn({ id: record.id, record });
        return null;
      }
      case 'delete':
        await store.delete(String(arg));
        await this.#passOn({ id: String(arg), record: null });
        return null;
      case 'nextLocationId':
        return store.nextLocationId();
      default:
        throw new Error(`unknown records operation ${String(op)}`);
    }
  }

  #lock(id: string, worker: number, grant: () => void): void {
    const queue = this.#locks.get(id);
    if (queue === undefined) {
      this.#locks.set(id, [{ worker, grant }]);
      grant();
    } else {
      queue.push({ worker, grant });
      this.#probeHolders();
    }
  }

  /**
   * While some change waits for a lock, ask each holder of a lock others wait for whether it runs,
   * every PROBE_MS; kill one that has not answered within APPLY_MS. Stops once no one waits.
   */
  #probeHolders(): void {
    if (this.#probes !== null) return;
    const round = () => {
      const now = Date.now();
      const holders = new Set<number>();
      for (const queue of this.#locks.values()) if (queue.length > 1 && queue[0] !== undefined) holders.add(queue[0].worker);
      for (const id of [...this.#probed.keys()]) if (!holders.has(id)) this.#probed.delete(id);
      if (holders.size === 0) {
        if (this.#probes !== null) clearInterval(this.#probes);
        this.#probes = null;
        return;
      }
      for (const id of holders) {
        const worker = this.#workers.get(id);
        if (worker === undefined) continue;
        const probed = this.#probed.get(id);
        if (probed === undefined) {
          const ping = ++this.#seq;
          this.#probed.set(id, { ping, since: now });
          if (worker.isConnected()) worker.send({ tag: TAG, ping } satisfies Ping, () => undefined);
        } else if (now - probed.since >= APPLY_MS) {
          // It holds a lock others wait for and does not answer: it goes, and its locks with it.
          worker.process.kill('SIGKILL');
        }
      }
    };
    this.#probes = setInterval(round, PROBE_MS);
    this.#probes.unref();
    round();
  }

  #unlock(id: string, worker: number): void {
    const queue = this.#locks.get(id);
    if (queue === undefined || queue[0]?.worker !== worker) return;
    queue.shift();
    this.#next(id, queue);
  }

  #next(id: string, queue: Holder[]): void {
    const head = queue[0];
    if (head === undefined) this.#locks.delete(id);
    else head.grant();
  }

  /** Pass `change` on to every copy; resolves once each has applied it (or is gone). */
  #passOn(change: RecordChange): Promise<void> {
    const seq = ++this.#seq;
    const waiting = new Set<number>();
    for (const [id, worker] of this.#copies) {
      if (!worker.isConnected()) continue;
      waiting.add(id);
      worker.send({ tag: TAG, seq, change } satisfies Applied, () => undefined);
    }
    if (waiting.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // A worker that does not apply changes must not serve old records: it goes, and is replaced.
        for (const id of waiting) this.#copies.get(id)?.process.kill('SIGKILL');
      }, APPLY_MS);
      timer.unref();
      this.#unapplied.set(seq, {
        waiting,
        done: () => {
          clearTimeout(timer);
          this.#unapplied.delete(seq);
          resolve();
        },
      });
    });
  }

  #applied(seq: number, worker: number): void {
    const entry = this.#unapplied.get(seq);
    if (entry === undefined) return;
    entry.waiting.delete(worker);
    if (entry.waiting.size === 0) entry.done();
  }

  #gone(worker: number): void {
    this.#workers.delete(worker);
    this.#probed.delete(worker);
    this.#copies.delete(worker);
    for (const seq of [...this.#unapplied.keys()]) this.#applied(seq, worker);
    for (const [id, queue] of [...this.#locks]) {
      const held = queue[0]?.worker === worker;
      const rest = queue.filter((h) => h.worker !== worker);
      if (rest.length === queue.length) continue;
      if (rest.length === 0) this.#locks.delete(id);
      else {
        this.#locks.set(id, rest);
        if (held) this.#next(id, rest);
      }
    }
  }
}

/** An answer sent later (a lock, once given). */
const PENDING = Symbol('pending');

/** In a worker: the primary's records, as {@link DiskImageStore.replica} uses them. */
export class WorkerRecords implements RecordKeeper {
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; first?: (v: unknown) => void }>();
  #next = 0;
  #apply: ((change: RecordChange) => void) | null = null;

  constructor() {
    if (typeof process.send !== 'function') throw new TypeError('WorkerRecords: this process has no IPC channel to a primary (run it as a cluster worker)');
    process.on('message', (message: unknown) => {
      if (!ours(message)) return;
      if (typeof message['seq'] === 'number') {
        this.#apply?.((message as unknown as Applied).change);
        process.send?.({ tag: TAG, ack: message['seq'] } satisfies Ack, undefined, undefined, () => undefined);
        return;
      }
      if (typeof message['ping'] === 'number') {
        process.send?.({ tag: TAG, pong: message['ping'] } satisfies Pong, undefined, undefined, () => undefined);
        return;
      }
      const answer = message as unknown as Answer;
      const waiting = this.#pending.get(answer.id);
      if (waiting === undefined) return;
      this.#pending.delete(answer.id);
      if (answer.ok) {
        // Here, not in a promise's continuation: the messages after this one (changes) are handled
        // only after it.
        waiting.first?.(answer.value);
        waiting.resolve(answer.value);
      } else waiting.reject(new Error(`the image records (the primary process) failed: ${answer.error ?? 'unknown error'}`));
    });
    process.on('disconnect', () => {
      for (const [id, waiting] of this.#pending) {
        this.#pending.delete(id);
        waiting.reject(new Error('the image records (the primary process) are gone'));
      }
    });
  }

  async subscribe(load: (records: ImageRecord[]) => void, apply: (change: RecordChange) => void): Promise<void> {
    // The records are loaded as their message is handled, and every change after them in the
    // channel is applied after: a change in the same read as the records is not lost under them.
    await this.#ask('subscribe', undefined, (records) => {
      load(records as ImageRecord[]);
      this.#apply = apply;
    });
  }

  async lock(id: string): Promise<() => Promise<void>> {
    await this.#ask('lock', id);
    return async () => {
      await this.#ask('unlock', id);
    };
  }

  async save(record: ImageRecord): Promise<void> {
    await this.#ask('save', record);
  }

  async delete(id: string): Promise<void> {
    await this.#ask('delete', id);
  }

  async nextLocationId(): Promise<number> {
    return (await this.#ask('nextLocationId')) as number;
  }

  /** Ask the primary; `first`, given the answer as its message is handled, before anything else. */
  #ask(op: Operation, arg?: unknown, first?: (value: unknown) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (!process.connected || typeof process.send !== 'function') {
        reject(new Error('the image records (the primary process) are gone'));
        return;
      }
      const id = (this.#next = (this.#next + 1) % Number.MAX_SAFE_INTEGER);
      this.#pending.set(id, { resolve, reject, ...(first === undefined ? {} : { first }) });
      process.send({ tag: TAG, id, op, ...(arg === undefined ? {} : { arg }) } satisfies Question, undefined, undefined, (err: Error | null) => {
        if (err === null) return;
        this.#pending.delete(id);
        reject(new Error(`the image records could not be asked: ${err.message}`));
      });
    });
  }
}
