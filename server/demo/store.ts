/**
 * The demo's embedded image store: image records and image data on disk.
 *
 *   <data>/images/<uuid>.json   one record per image, replaced atomically (write, fsync, rename)
 *   <data>/blobs/<uuid>         image data of an uploaded image
 *   <data>/staging/<uuid>       data staged for import
 *   <data>/tmp/                 uploads in progress; emptied at start
 *
 * Image ids are UUIDs; any other id is simply not found and never becomes a path. An upload cut
 * off by a crash leaves a `saving` record, which the next start puts back to `queued`: an image is
 * never `active` with partial data.
 *
 * One process opens the store ({@link DiskImageStore.open}) and keeps its records. Other processes
 * on the same folder (the demo's workers) open a replica ({@link DiskImageStore.replica}): they read
 * image data and write uploads themselves, read records from a copy of the keeper's, and ask the
 * keeper ({@link RecordKeeper}) for every change, which it makes and passes on to every replica
 * before it answers. A change one process has answered is seen by every other.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { finished, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { glanceTimestamp } from '../../lib/http/json';
import { spent } from '../perf/reclaim';
import type { ImageFacts } from '../../lib/images/lookup';

export interface ImageLocation {
  url: string;
  metadata: Record<string, unknown>;
  /** Glance's location id (its row in `image_locations`): one counter for the whole store. Absent in older records. */
  id?: number;
}

/** A member of a shared image (Glance's image_members row). */
export interface ImageMember {
  /** The project the image is shared with: a string, though Glance keeps any JSON value it is given. */
  member_id: string | number | boolean;
  status: 'pending' | 'accepted' | 'rejected';
  created_at: string;
  updated_at: string;
}

/** An image record as stored: Glance's image document without the computed links. */
export interface ImageRecord {
  id: string;
  name: string | null;
  disk_format: string | null;
  container_format: string | null;
  visibility: string;
  size: number | null;
  virtual_size: number | null;
  status: string;
  checksum: string | null;
  protected: boolean;
  min_ram: number;
  min_disk: number;
  owner: string | null;
  os_hidden: boolean;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  created_at: string;
  updated_at: string;
  locations: ImageLocation[];
  tags: string[];
  /** Additional (user) properties, string-valued. */
  extra: Record<string, string>;
  /** The image's members (absent: none). */
  members?: ImageMember[];
  /**
   * The upload, stage or import writing the image's data now (status saving, uploading or
   * importing): its data is the image's only while this is still its token. Not shown.
   */
  writing?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `id` has the form of an image id. */
export function isImageId(id: string): boolean {
  return UUID.test(id);
}

/** Glance's timestamp form: `2026-11-25T06:51:37Z`. */
export const timestamp = glanceTimestamp;

/** The result of writing image data: what Glance records about it. */
export interface DataFacts {
  size: number;
  checksum: string;
  os_hash_value: string;
}

/** Image data longer than the store takes (the demo's `maxImageSize`, Glance's `image_size_cap`). */
export class DataTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`image data over ${limit} bytes`);
    this.name = 'DataTooLarge';
  }
}

/** A record changed by any process of a shared store: its new form, or null when deleted. */
export interface RecordChange {
  readonly id: string;
  readonly record: ImageRecord | null;
}

/**
 * The process that keeps the records of a store several processes share, as a replica reaches it.
 * Each change is made, and passed on to every replica, before its promise resolves.
 */
export interface RecordKeeper {
  /**
   * Every record, oldest first, given to `load`; from then on `apply` is given every change, in
   * order, never one before `load` has its records.
   */
  subscribe(load: (records: ImageRecord[]) => void, apply: (change: RecordChange) => void): Promise<void>;
  /** Exclusive use of image `id` across the processes; resolves with what gives it back. */
  lock(id: string): Promise<() => Promise<void>>;
  save(record: ImageRecord): Promise<void>;
  delete(id: string): Promise<void>;
  nextLocationId(): Promise<number>;
}

export class DiskImageStore {
  readonly dir: string;
  readonly #images = new Map<string, ImageRecord>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #keeper: RecordKeeper | null;
  readonly #listeners: ((id: string) => void)[] = [];
  #lastLocationId = 0;

  private constructor(dir: string, keeper: RecordKeeper | null) {
    this.dir = path.resolve(dir);
    this.#keeper = keeper;
  }

  /** Open (creating if needed) the store under `dir`, recovering from any interrupted upload. */
  static async open(dir: string): Promise<DiskImageStore> {
    const store = new DiskImageStore(dir, null);
    await store.#load();
    return store;
  }

  /**
   * The store under `dir` as another process keeps it (opened there with {@link open}): records are
   * read from a copy kept current by `keeper`, changes are made by the keeper.
   */
  static async replica(dir: string, keeper: RecordKeeper): Promise<DiskImageStore> {
    const store = new DiskImageStore(dir, keeper);
    await keeper.subscribe(
      (records) => {
        for (const record of records) store.#images.set(record.id, record);
      },
      (change) => store.#apply(change),
    );
    return store;
  }

  /** Tell `listener` the id of each image a change passed on by the keeper touched (a replica's only). */
  onChange(listener: (id: string) => void): void {
    this.#listeners.push(listener);
  }

  #apply({ id, record }: RecordChange): void {
    if (record === null) this.#images.delete(id);
    else this.#images.set(id, record);
    for (const listener of this.#listeners) listener(id);
  }

  async #load(): Promise<void> {
    for (const sub of ['images', 'blobs', 'staging', 'tmp']) await mkdir(path.join(this.dir, sub), { recursive: true });
    await rm(path.join(this.dir, 'tmp'), { recursive: true, force: true });
    await mkdir(path.join(this.dir, 'tmp'));
    const names = await readdir(path.join(this.dir, 'images'));
    const loaded: ImageRecord[] = [];
    for (const name of names) {
      const id = name.replace(/\.json$/, '');
      if (!name.endsWith('.json') || !isImageId(id)) continue;
      const record = JSON.parse(await readFile(path.join(this.dir, 'images', name), 'utf8')) as ImageRecord;
      if (record.status === 'saving') {
        // The upload never finished: the data is not trusted, the image waits for data again.
        await rm(this.blobPath(id), { force: true });
        Object.assign(record, { status: 'queued', size: null, virtual_size: null, checksum: null, os_hash_algo: null, os_hash_value: null });
        delete record.writing;
        record.locations = record.locations.filter((l) => l.url !== this.blobUrl(id));
        await this.#write(record);
      } else if ((record.status === 'uploading' || record.status === 'importing') && record.writing !== undefined) {
        // A stage or an import that never finished: as Glance reverts a failed import, the image
        // waits for data again, without what was staged.
        await rm(this.stagingPath(id), { force: true });
        Object.assign(record, { status: 'queued', size: null });
        delete record.writing;
        await this.#write(record);
      }
      loaded.push(record);
    }
    loaded.sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
    for (const record of loaded) {
      this.#images.set(record.id, record);
      // (A record whose locations are not a list is loaded all the same, and is a 500 when served.)
      if (Array.isArray(record.locations)) for (const l of record.locations) this.#lastLocationId = Math.max(this.#lastLocationId, l.id ?? 0);
    }
  }

  /** The id of a new location, as Glance numbers its location rows: one more than any before. */
  async nextLocationId(): Promise<number> {
    return this.#keeper ? this.#keeper.nextLocationId() : ++this.#lastLocationId;
  }

  /** Path of the data of an uploaded image. */
  blobPath(id: string): string {
    return path.join(this.dir, 'blobs', id);
  }

  /** The `file://` location of an uploaded image's data. */
  blobUrl(id: string): string {
    return pathToFileURL(this.blobPath(id)).href;
  }

  stagingPath(id: string): string {
    return path.join(this.dir, 'staging', id);
  }

  get(id: string): ImageRecord | undefined {
    return isImageId(id) ? this.#images.get(id.toLowerCase()) : undefined;
  }

  /** All images in the order they were first stored (a replica's copy keeps this order). */
  records(): ImageRecord[] {
    return [...this.#images.values()];
  }

  /** All images, newest first (Glance's default sort); within one second, the later created first. */
  list(): ImageRecord[] {
    return [...this.#images.values()].reverse().sort((a, b) => (a.created_at === b.created_at ? 0 : a.created_at < b.created_at ? 1 : -1));
  }

  /** The facts the location guard needs: the in-process lookup of the demo. */
  facts(id: string): ImageFacts | null {
    const r = this.get(id);
    if (!r) return null;
    return { id: r.id, status: r.status, size: r.size, checksum: r.checksum, locations: r.locations.length };
  }

  /** A new queued image. */
  newRecord(id: string = randomUUID()): ImageRecord {
    const now = timestamp();
    return {
      id,
      name: null,
      disk_format: null,
      container_format: null,
      visibility: 'shared',
      size: null,
      virtual_size: null,
      status: 'queued',
      checksum: null,
      protected: false,
      min_ram: 0,
      min_disk: 0,
      owner: null,
      os_hidden: false,
      os_hash_algo: null,
      os_hash_value: null,
      created_at: now,
      updated_at: now,
      locations: [],
      tags: [],
      extra: {},
    };
  }

  /** Run `fn` with exclusive use of image `id` (one change of an image at a time, in every process). */
  async exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    if (this.#keeper) {
      const giveBack = await this.#keeper.lock(id.toLowerCase());
      try {
        return await fn();
      } finally {
        // A keeper that is gone has given every lock back.
        await giveBack().catch(() => undefined);
      }
    }
    const previous = this.#locks.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    }
  }

  /** Store `record` (atomically) and make it current. */
  async save(record: ImageRecord): Promise<ImageRecord> {
    if (this.#keeper) {
      await this.#keeper.save(record);
      return record;
    }
    await this.#write(record);
    this.#images.set(record.id, record);
    return record;
  }

  async delete(id: string): Promise<void> {
    if (this.#keeper) {
      await this.#keeper.delete(id);
      return;
    }
    await rm(path.join(this.dir, 'images', `${id}.json`), { force: true });
    this.#images.delete(id);
    await rm(this.blobPath(id), { force: true });
    await rm(this.stagingPath(id), { force: true });
  }

  async #write(record: ImageRecord): Promise<void> {
    const file = path.join(this.dir, 'images', `${record.id}.json`);
    const tmp = path.join(this.dir, 'tmp', `${record.id}.${randomUUID()}.json`);
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(record));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }

  /**
   * Stream `source` to a temporary file, synced once complete, computing Glance's checksums on the
   * way; the caller then keeps it as an image's data (renamed into place, under the image's lock,
   * once it has checked the image still waits for it) or discards it. Memory does not grow with
   * the data. Data over `limit` bytes fails with DataTooLarge; a full disk with the write's ENOSPC
   * or EFBIG. On any failure nothing of the data is kept. The source is piped, not destroyed: a
   * refused HTTP request stays readable, so that the refusal can still be answered on its connection.
   */
  async receiveData(source: Readable, limit = Number.MAX_SAFE_INTEGER): Promise<ReceivedData> {
    const tmp = path.join(this.dir, 'tmp', `${randomUUID()}.part`);
    const md5 = createHash('md5');
    const sha512 = createHash('sha512');
    let size = 0;
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        spent(chunk.length);
        if (size > limit) {
          done(new DataTooLarge(limit));
          return;
        }
        md5.update(chunk);
        sha512.update(chunk);
        done(null, chunk);
      },
    });
    const written = pipeline(hashing, createWriteStream(tmp, { highWaterMark: 1024 * 1024 }));
    // A source that fails or is cut off before its end fails the write.
    const stopWatching = finished(source, (err) => {
      if (err) hashing.destroy(err);
    });
    source.pipe(hashing);
    try {
      await written;
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      source.unpipe(hashing);
      await rm(tmp, { force: true });
      throw err;
    } finally {
      stopWatching();
    }
    return {
      facts: { size, checksum: md5.digest('hex'), os_hash_value: sha512.digest('hex') },
      keepAs: (target) => rename(tmp, target),
      discard: () => rm(tmp, { force: true }),
    };
  }
}

/** Image data received whole (DiskImageStore.receiveData), not yet any image's. */
export interface ReceivedData {
  readonly facts: DataFacts;
  /** Make it the file at `target` (replacing any). */
  keepAs(target: string): Promise<void>;
  /** Remove it (nothing once kept). */
  discard(): Promise<void>;
}
