/**
 * Image data in a file on disk, as a {@link ImageData} source for serveImage.
 *
 * Open files are kept and shared between downloads (reads are positional, so concurrent ranges
 * of one file do not interfere): a download costs no open/close. A file is closed when it has
 * been idle and more than `maxOpen` are open, or when {@link FileCache.forget} is called for it
 * (its data was replaced or deleted): downloads in flight keep reading what they opened.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { checkArgument, option } from '../options';
import type { ImageData } from './serve';

/**
 * Bytes read at a time. A download whose client stops reading holds what the socket has not taken
 * of its last chunk plus one chunk read ahead: 128 KiB at 64 KiB a chunk. With 1 MiB chunks, 200
 * downloads of a large image that were never read grew the demo's RSS by 300-400 MB (about 2 MiB
 * each); with 64 KiB chunks by 42 MB, each connection's own cost included
 * (test/e2e/demo-hardening-memory.test.ts).
 */
const CHUNK = 64 * 1024;

/**
 * Read buffers, reused once the socket has taken their bytes: a download allocates nothing, so
 * memory stays flat and the garbage collector idle however much data flows.
 */
class BufferPool {
  readonly #free: Buffer[] = [];
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
  }

  give(buffer: Buffer): void {
    if (buffer.length === CHUNK && this.#free.length < this.#max) this.#free.push(buffer);
  }
}

/**
 * Reads bytes `start`..`end` (inclusive) of a shared open file with positional reads. Unlike
 * fs.ReadStream, destroying it never closes the file, which other downloads are reading too.
 */
class FileRange extends Readable {
  readonly #handle: FileHandle;
  readonly #pool: BufferPool;
  #position: number;
  readonly #end: number;

  constructor(handle: FileHandle, pool: BufferPool, start: number, end: number) {
    super({ highWaterMark: CHUNK });
    this.#handle = handle;
    this.#pool = pool;
    this.#position = start;
    this.#end = end;
  }

  override _read(): void {
    const length = Math.min(CHUNK, this.#end - this.#position + 1);
    if (length <= 0) {
      this.push(null);
      return;
    }
    const buffer = this.#pool.take();
    this.#handle.read(buffer, 0, length, this.#position).then(
      ({ bytesRead }) => {
        if (this.destroyed || bytesRead === 0) {
          this.#pool.give(buffer);
          if (!this.destroyed) this.push(null); // the file is shorter than it should be: the reader sees it end short
          return;
        }
        this.#position += bytesRead;
        this.push(bytesRead === CHUNK ? buffer : buffer.subarray(0, bytesRead));
      },
      (err: Error) => {
        this.#pool.give(buffer);
        this.destroy(err);
      },
    );
  }
}

interface Entry {
  readonly handle: Promise<FileHandle>;
  users: number;
  forgotten: boolean;
}

export class FileCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxOpen: number;
  readonly #pool = new BufferPool(64);

  constructor(maxOpen = 128) {
    this.#maxOpen = checkArgument('FileCache', 'maxOpen', maxOpen, option.integer(1, Number.MAX_SAFE_INTEGER, 'open files'));
  }

  /** The data of the file at `path`, whose size (and checksum) the caller knows. */
  data(path: string, size: number, checksum: string | null = null): ImageData {
    return {
      size,
      checksum,
      open: async (range) => {
        const entry = this.#acquire(path);
        let handle: FileHandle;
        try {
          handle = await entry.handle;
        } catch (err) {
          this.#release(path, entry);
          throw err;
        }
        const stream = new FileRange(handle, this.#pool, range?.start ?? 0, range?.end ?? size - 1);
        stream.once('close', () => this.#release(path, entry));
        const pool = this.#pool;
        // Each chunk is a view of one pooled buffer of its own (allocUnsafeSlow, offset 0).
        return { stream, offset: range?.start ?? 0, recycle: (chunk: Buffer) => pool.give(Buffer.from(chunk.buffer, 0, chunk.buffer.byteLength)) };
      },
    };
  }

  /** The file at `path` changed or went away: close it once its readers are done. */
  forget(path: string): void {
    const entry = this.#entries.get(path);
    if (!entry) return;
    this.#entries.delete(path);
    entry.forgotten = true;
    if (entry.users === 0) void close(entry);
  }

  /** Close every idle file. */
  async close(): Promise<void> {
    for (const path of [...this.#entries.keys()]) this.forget(path);
  }

  #acquire(path: string): Entry {
    let entry = this.#entries.get(path);
    if (!entry) {
      entry = { handle: open(path, 'r'), users: 0, forgotten: false };
      entry.handle.catch(() => this.#entries.delete(path));
      this.#entries.set(path, entry);
      this.#trim();
    } else {
      // Most recently used last.
      this.#entries.delete(path);
      this.#entries.set(path, entry);
    }
    entry.users += 1;
    return entry;
  }

  #release(path: string, entry: Entry): void {
    entry.users -= 1;
    if (entry.users > 0) return;
    if (entry.forgotten) void close(entry);
    else if (this.#entries.size > this.#maxOpen) this.forget(path);
  }

  #trim(): void {
    for (const [path, entry] of this.#entries) {
      if (this.#entries.size <= this.#maxOpen) return;
      if (entry.users === 0) this.forget(path);
    }
  }
}

async function close(entry: Entry): Promise<void> {
  try {
    await (await entry.handle).close();
  } catch {
    // It never opened, or is closed already.
  }
}
