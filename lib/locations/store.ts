/**
 * The race registry behind a seam: where the suite keeps which images have an upload in flight and
 * which have a location change being judged. {@link MemoryStore} keeps it in the process; a store
 * shared between processes (several sidecars, the workers of one) implements the same interface.
 *
 * The semantics, whatever the store:
 * - an `upload` lease of an image is taken at once (several may be held), then waits until no
 *   `change` lease of the image is held;
 * - a `change` lease is refused (`'uploading'`) while any upload lease of the image is held, and
 *   otherwise taken once no other change lease of it is held (changes of one image are judged one
 *   after the other); an upload that registers while the change waits refuses it too;
 * - every lease lasts `ttl` milliseconds unless renewed: a holder that dies frees its image after
 *   the TTL; a lease is released only by its own token, and never extended for another holder.
 * A store that cannot answer rejects: the guard then refuses the change or upload (fail closed).
 */
import { randomUUID } from 'node:crypto';

/** What a lease guards: an upload of image data, or a location change being judged and forwarded. */
export type LeaseKind = 'upload' | 'change';

/** A lease held on an image's key. */
export interface Lease {
  readonly key: string;
  readonly kind: LeaseKind;
  /** The holder's token: only it releases or renews the lease. */
  readonly token: string;
}

/** A race registry. Methods are async so that a store may live in another process. */
export interface Store {
  /**
   * Whether the state is kept from other sidecars (it lives in this process, or in this sidecar's
   * primary process). A sidecar told it has peers warns when its store is local: the race is then
   * closed only for the requests that pass through it.
   */
  readonly local: boolean;
  /** Take a lease of `kind` on `key` for `ttl` ms, waiting as described above; `'uploading'` refuses a change. */
  acquire(key: string, kind: LeaseKind, ttl: number): Promise<Lease | 'uploading'>;
  /** Extend a lease this holder still holds by `ttl` ms; false when it has run out (or was never held). */
  renew(lease: Lease, ttl: number): Promise<boolean>;
  /** Give a lease back (nothing happens when it has run out). */
  release(lease: Lease): Promise<void>;
  /** Keys with an upload lease held, for metrics and health; undefined when the store cannot tell cheaply. */
  uploading?(): number;
  /** Resolves when the store can be asked now, rejects saying why not (for a health check). */
  ping?(): Promise<void>;
}

interface Held {
  readonly lease: Lease;
  timer: NodeJS.Timeout | undefined;
}

interface Waiting {
  readonly lease: Lease;
  readonly ttl: number;
  readonly resolve: () => void;
}

interface Entry {
  readonly uploads: Map<string, Held>;
  /** The change lease held (or handed to the next change, which has yet to resume). */
  change: Held | null;
  /** Changes waiting for their turn, in order. */
  readonly queue: Waiting[];
  /** Uploads waiting until no change is held or waiting. */
  readonly waitingUploads: Waiting[];
}

/** The race registry within one process: the default. */
export class MemoryStore implements Store {
  readonly local = true;
  readonly #entries = new Map<string, Entry>();

  uploading(): number {
    let n = 0;
    for (const entry of this.#entries.values()) if (entry.uploads.size > 0) n += 1;
    return n;
  }

  async acquire(key: string, kind: LeaseKind, ttl: number): Promise<Lease | 'uploading'> {
    const entry = this.#entry(key);
    const lease: Lease = { key, kind, token: randomUUID() };
    if (kind === 'upload') {
      // Counted at once, so that changes are refused from now on; its time runs once it may go on.
      const held: Held = { lease, timer: undefined };
      entry.uploads.set(lease.token, held);
      if (entry.change !== null || entry.queue.length > 0) await new Promise<void>((resolve) => entry.waitingUploads.push({ lease, ttl, resolve }));
      if (entry.uploads.get(lease.token) === held) held.timer = this.#expiry(lease, ttl);
      return lease;
    }
    if (entry.uploads.size > 0) return 'uploading';
    if (entry.change !== null || entry.queue.length > 0) {
      // The change before hands this one its turn (entry.change set to it) before it resumes.
      await new Promise<void>((resolve) => entry.queue.push({ lease, ttl, resolve }));
    } else {
      entry.change = { lease, timer: this.#expiry(lease, ttl) };
    }
    if (entry.uploads.size > 0) {
      this.#drop(lease);
      return 'uploading';
    }
    return lease;
  }

  async renew(lease: Lease, ttl: number): Promise<boolean> {
    const held = this.#find(lease);
    if (held === undefined) return false;
    clearTimeout(held.timer);
    held.timer = this.#expiry(lease, ttl);
    return true;
  }

  async release(lease: Lease): Promise<void> {
    this.#drop(lease);
  }

  #entry(key: string): Entry {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = { uploads: new Map(), change: null, queue: [], waitingUploads: [] };
      this.#entries.set(key, entry);
    }
    return entry;
  }

  #expiry(lease: Lease, ttl: number): NodeJS.Timeout {
    return setTimeout(() => this.#drop(lease), ttl).unref();
  }

  #find(lease: Lease): Held | undefined {
    const entry = this.#entries.get(lease.key);
    if (entry === undefined) return undefined;
    if (lease.kind === 'upload') return entry.uploads.get(lease.token);
    return entry.change?.lease.token === lease.token ? entry.change : undefined;
  }

  #drop(lease: Lease): void {
    const entry = this.#entries.get(lease.key);
    const held = this.#find(lease);
    if (entry === undefined || held === undefined) return;
    clearTimeout(held.timer);
    if (lease.kind === 'upload') entry.uploads.delete(lease.token);
    else {
      entry.change = null;
      // The turn passes to the next change waiting, or, when none waits, to the uploads waiting.
      const next = entry.queue.shift();
      if (next !== undefined) {
        entry.change = { lease: next.lease, timer: this.#expiry(next.lease, next.ttl) };
        next.resolve();
      } else {
        for (const upload of entry.waitingUploads.splice(0)) upload.resolve();
      }
    }
    if (entry.uploads.size === 0 && entry.change === null && entry.queue.length === 0 && entry.waitingUploads.length === 0) this.#entries.delete(lease.key);
  }
}

/** Whether `value` has the shape of a {@link Store}. */
export function isStore(value: unknown): value is Store {
  if (typeof value !== 'object' || value === null) return false;
  const s = value as Partial<Store>;
  return typeof s.acquire === 'function' && typeof s.renew === 'function' && typeof s.release === 'function' && typeof s.local === 'boolean';
}
