/**
 * Prompt reclaiming of the memory of streamed image data.
 *
 * Each chunk of data read from a socket is a buffer outside V8's heap (64 KiB, and the HTTP
 * parser's copy of the body bytes in it). V8 frees such a buffer at its next young-generation
 * collection, and it schedules those by the JS objects allocated, not by the bytes they hold: at
 * a gigabyte a second, 30-50 MB of spent chunks piled up between collections, and glibc gave the
 * freed memory back to the kernel only to fault it in again, page by page, for the next chunks.
 * The sidecar streaming a 1 GiB image peaked at 105-110 MB RSS and ran at 360-750 MB/s; with a
 * minor collection (a scavenge, well under a millisecond with the command's 1 MiB semi-space)
 * every 4 MiB of streamed data, it peaks at 70-75 MB and runs at 1,150-1,350 MB/s.
 *
 * Off unless a process asks for it with reclaimStreamedData() (as the glance-edge command does):
 * it needs V8's `gc` function, which that call exposes. The library's middlewares never count:
 * this is the servers' measured workaround (bench/, the sidecar's and demo's streaming runs), kept
 * out of what a user mounts. Downloads the demo serves from disk reuse their buffers (FileCache's
 * `recycle`) and leave nothing to reclaim.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { checkOptions, option, type OptionChecks } from '../../lib/options';

type Collect = (options: { type: 'minor' }) => void;

let collect: Collect | null = null;
let every = 4 * 1024 * 1024;
let pending = 0;
let collections = 0;

export interface ReclaimOptions {
  /** Bytes of streamed data between two minor collections. Default 4 MiB. */
  readonly every?: number;
}

const RECLAIM_OPTIONS: OptionChecks<ReclaimOptions> = { every: option.integer(64 * 1024, Number.MAX_SAFE_INTEGER, 'bytes') };

/**
 * From now on, run a minor garbage collection after every `every` bytes of image data streamed
 * through the servers (the sidecar's forwarded answers and request bodies, the demo's uploads),
 * process-wide. Exposes V8's `gc` to do so, as `node --expose-gc` would.
 */
export function reclaimStreamedData(options: ReclaimOptions = {}): void {
  checkOptions('reclaimStreamedData', options, RECLAIM_OPTIONS);
  every = options.every ?? 4 * 1024 * 1024;
  if (collect) return;
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') collect = exposed as Collect;
  else {
    // The flag makes V8 install `gc` in contexts created from now on: one is made to fetch it.
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as Collect;
  }
}

/** Whether reclaimStreamedData() is on: streams need counting only then. */
export function reclaiming(): boolean {
  return collect !== null;
}

/** Count `bytes` of streamed data whose buffers are now spent; collect once enough have gathered. */
export function spent(bytes: number): void {
  if (collect === null) return;
  pending += bytes;
  if (pending >= every) {
    pending = 0;
    collections += 1;
    collect({ type: 'minor' });
  }
}

/** How many collections reclaiming has run in this process (a metric: `reclaim_collections_total`). */
export function reclaimCollections(): number {
  return collections;
}

/** A 'data' listener that counts each chunk as spent. */
function countSpent(chunk: Buffer): void {
  spent(chunk.length);
}

/** Bodies shorter than this are not worth counting. */
const SMALL = 64 * 1024;

/**
 * Whether the chunks of a body with this `Content-Length` are to be counted as spent: reclaiming
 * is on, and the length does not say the body is small (none: chunked, count it).
 */
export function worthCounting(contentLength: string | undefined): boolean {
  return collect !== null && !(Number(contentLength) < SMALL);
}

/** Count the chunks of `stream` (an answer or request body read from a socket) as spent when worthCounting. */
export function countLarge(stream: NodeJS.ReadableStream, contentLength: string | undefined): void {
  if (worthCounting(contentLength)) stream.on('data', countSpent);
}
