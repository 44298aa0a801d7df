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
 * Bytes read at a time: a large chunk while few are out, a small one otherwise. Each read and each
 * socket write costs the same whatever its size, so 1 MiB ranges read in 64 KiB chunks were served
 * at 0.55 × the rate of one 1 MiB read (bench/, ranges suite: 953-999 against 1490-1856 req/s). But
 * a download whose client stops reading holds what the socket has not taken of its last chunk plus
 * one chunk read ahead: with 1 MiB chunks for every download, 200 downloads of a large image that
 * were never read grew the demo's RSS by 300-400 MB; with 64 KiB chunks by 42 MB, each connection's
 * own cost included (test/e2e/demo-hardening-memory.test.ts). So at most {@link LARGE_OUT} large
 * chunks are out at once, over all downloads; past that, reads are small until some come back.
 */
const SMALL = 64 * 1024;
const LARGE = 1024 * 1024;
const LARGE_OUT = 16;

/**
 * Read buffers, reused once the socket has taken their bytes: a download allocates nothing, so
 * memory stays flat and the garbage collector idle however much data flows. Large buffers are
 * counted while they are out; one dropped instead of given back (a download cut short) is counted
 * back when it is collected.
 */
class BufferPool {
  readonly #small: Buffer[] = [];
  readonly #large: Buffer[] = [];
  #largeOut = 0;
  readonly #dropped = new FinalizationRegistry<null>(() => {
    this.#largeOut -= 1;
  });

  /** A buffer for a read of `wanted` bytes (it may be shorter). */
  take(wanted: number): Buffer {
    if (wanted > SMALL && this.#largeOut < LARGE_OUT) {
      const buffer = this.#large.pop() ?? Buffer.allocUnsafeSlow(LARGE);
      this.#largeOut += 1;
      this.#dropped.register(buffer.buffer, null, buffer.buffer);
      return buffer;
    }
    return this.#small.pop() ?? Buffer.allocUnsafeSlow(SMALL);
  }

  /** `buffer` (a view of a whole buffer taken here) is free again. */
  give(buffer: Buffer): void {
    const whole = buffer.buffer;
    if (whole.byteLength === LARGE) {
      if (!this.#dropped.unregister(whole)) return; // given back already
      this.#largeOut -= 1;
      if (this.#large.length < LARGE_OUT / 2) this.#large.push(Buffer.from(whole, 0, LARGE));
    } else if (whole.byteLength === SMALL && this.#small.length < 64) {
      this.#small.push(Buffer.from(whole, 0, SMALL));
    }
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
    // No read ahead past one small chunk: a large one waits for the socket to take the last.
    super({ highWaterMark: SMALL });
    this.#handle = handle;
    this.#pool = pool;
    this.#position = start;
    this.#end = end;
  }

  override _read(): void {
    const left = this.#end - this.#position + 1;
    if (left <= 0) {
      this.push(null);
      return;
    }
    const buffer = this.#pool.take(left);
    const length = Math.min(buffer.length, left);
    this.#handle.read(buffer, 0, length, this.#position).then(
      ({ bytesRead }) => {
        if (this.destroyed || bytesRead === 0) {
          this.#pool.give(buffer);
          if (!this.destroyed) this.push(null); // the file is shorter than it should be: the reader sees it end short
          return;
        }
        this.#position += bytesRead;
        this.push(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
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
  readonly #pool = new BufferPool();

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
        return { stream, offset: range?.start ?? 0, recycle: (chunk: Buffer) => pool.give(chunk) };
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
