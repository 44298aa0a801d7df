/**
 * The image data routes of the embedded image service: upload (`PUT file`), the interoperable
 * import (`PUT stage`, then `POST import`) and download (`GET file`, from the image's file or its
 * http(s) location), with Glance's status transitions and its answers to data it cannot store.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Request } from 'express';
import { glanceError } from '../../lib/errors';
import { mediaType } from '../../lib/http/media';
import type { LegacyUse } from '../../lib/ranges/legacy';
import { serveImage, type ImageData } from '../../lib/ranges/serve';
import { dropData, imageOf, noContent, readJson, selfOf, touch, type Handler, type ServiceContext } from './context';
import { isResponse, type SelfAddress } from './location';
import { DataTooLarge, type ImageRecord, type ReceivedData } from './store';

/** The disk full errors Glance's filesystem store answers as StorageFull. */
const DISK_FULL = new Set(['ENOSPC', 'EFBIG']);

/** Glance's answer to image data it could not store, or `err` itself when Glance has none. */
function storageFailure(err: unknown): unknown {
  if (err instanceof DataTooLarge) return glanceError(413, 'image.too_large', 'The incoming image is too large: The provided image is too large.');
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && DISK_FULL.has(code)) {
    return glanceError(413, 'image.storage_full', 'Image storage media is full: There is not enough disk space on the image storage media.');
  }
  return err;
}

/**
 * Move an image from `queued` to `to` under the image's lock, with a new token of the write that
 * begins (the record's `writing`); Glance's 409 when it is elsewhere. Resolves with the token.
 */
async function transition(ctx: ServiceContext, id: string, to: string, check: (r: ImageRecord) => void): Promise<string> {
  const writing = randomUUID();
  await ctx.store.exclusive(id, async () => {
    const record = imageOf(ctx, id);
    check(record);
    if (record.status !== 'queued') {
      throw glanceError(409, 'image.transition', `Image status transition from ${record.status} to ${to} is not allowed`);
    }
    await ctx.store.save(touch(record, { status: to, writing }));
  });
  return writing;
}

/** `record` without the token of a write that has ended. */
function settled(record: ImageRecord): ImageRecord {
  const rest = { ...record };
  delete rest.writing;
  return rest;
}

/**
 * The image `id` as the write `writing` left it, under the image's lock: Glance's 410 when the
 * image was deleted meanwhile (and made again under its id, or not).
 */
function stillWriting(ctx: ServiceContext, id: string, writing: string): ImageRecord {
  const record = ctx.store.get(id);
  if (!record || record.writing !== writing) {
    throw glanceError(410, 'image.gone', `Image ${id} could not be found after upload. The image may have been deleted during the upload.`);
  }
  return record;
}

/**
 * The image's data is `received`, if the write `writing` is still the image's: record what Glance
 * records, and the file location; and remove the files `done` (an import's staged data) meanwhile.
 */
function activateWithData(ctx: ServiceContext, id: string, writing: string, received: ReceivedData, done: readonly string[] = []) {
  const { store } = ctx;
  return store.exclusive(id, async () => {
    const record = stillWriting(ctx, id, writing);
    await received.keepAs(store.blobPath(id));
    for (const file of done) await rm(file, { force: true });
    ctx.files.forget(store.blobPath(id));
    const { facts } = received;
    const location = { url: store.blobUrl(id), metadata: {}, id: await store.nextLocationId() };
    await store.save(touch(settled(record), { ...facts, virtual_size: facts.size, os_hash_algo: 'sha512', status: 'active', locations: [...record.locations, location] }));
  });
}

/**
 * The write `writing` failed: its data goes, and if it is still the image's write, the image is
 * `queued` again (with `changes`) and whatever of its data was kept goes too.
 */
async function revert(ctx: ServiceContext, id: string, writing: string, received: ReceivedData | undefined, changes: Partial<ImageRecord>, kept: readonly string[]) {
  await received?.discard();
  await ctx.store.exclusive(id, async () => {
    const record = ctx.store.get(id);
    if (record?.writing !== writing) return;
    for (const file of kept) {
      if (file === ctx.store.blobPath(id)) await dropData(ctx, id);
      else await rm(file, { force: true });
    }
    await ctx.store.save(touch(settled(record), { status: 'queued', ...changes }));
  });
}

function requireOctetStream(req: Request<{ id: string }>): void {
  const type = mediaType(req);
  if (type !== 'application/octet-stream') {
    throw glanceError(415, 'request.media_type', `The request media type ${type || 'None'} is not supported by this server.`);
  }
}

function requireFormats(r: ImageRecord): void {
  if (r.disk_format === null || r.container_format === null) {
    throw glanceError(400, 'image.formats', 'Properties disk_format, container_format must be set prior to saving data.');
  }
}

/** Refuse, before reading it, a body that says it is longer than an image may be. */
function requireSizeWithinCap(req: Request<{ id: string }>, maxImageSize: number): void {
  const declared = Number(req.headers['content-length']);
  if (Number.isSafeInteger(declared) && declared > maxImageSize) throw new DataTooLarge(maxImageSize);
}

/** `PUT /v2/images/{id}/file`: the image's data, straight into its file. */
export function uploadData(ctx: ServiceContext): Handler {
  const { store, maxImageSize } = ctx;
  return async (req, res) => {
    requireOctetStream(req);
    const id = imageOf(ctx, req.params.id).id;
    const writing = await transition(ctx, id, 'saving', requireFormats);
    let received: ReceivedData | undefined;
    try {
      requireSizeWithinCap(req, maxImageSize);
      received = await store.receiveData(req, maxImageSize);
      await activateWithData(ctx, id, writing, received);
    } catch (err) {
      // Cut off, too large, disk full, the image deleted meanwhile: as Glance, the image (if this
      // upload is still its) waits for data again, and no partial data is kept.
      await revert(ctx, id, writing, received, {}, [store.blobPath(id)]);
      throw storageFailure(err);
    }
    noContent(res);
  };
}

/** `PUT /v2/images/{id}/stage`: the data of an import, in the staging area. */
export function stageData(ctx: ServiceContext): Handler {
  const { store, maxImageSize } = ctx;
  return async (req, res) => {
    requireOctetStream(req);
    const id = imageOf(ctx, req.params.id).id;
    const writing = await transition(ctx, id, 'uploading', () => undefined);
    let received: ReceivedData | undefined;
    try {
      requireSizeWithinCap(req, maxImageSize);
      received = await store.receiveData(req, maxImageSize);
      const staged = received;
      await store.exclusive(id, async () => {
        const record = stillWriting(ctx, id, writing);
        await staged.keepAs(store.stagingPath(id));
        // Staged: the write is over, an import may begin.
        await store.save(touch(settled(record), { size: staged.facts.size }));
      });
    } catch (err) {
      await revert(ctx, id, writing, received, { size: null }, [store.stagingPath(id)]);
      throw storageFailure(err);
    }
    noContent(res);
  };
}

/** `POST /v2/images/{id}/import` by `glance-direct`: the staged data becomes the image's. */
export function importStaged(ctx: ServiceContext): Handler {
  const { store, maxImageSize } = ctx;
  return async (req, res) => {
    const body = (await readJson(req)) as { method?: { name?: unknown } } | null;
    const method = body?.method?.name;
    if (method !== 'glance-direct') throw glanceError(400, 'import.method', `Import method ${pyName(method)} is not supported.`);
    const id = imageOf(ctx, req.params.id).id;
    const writing = randomUUID();
    await store.exclusive(id, async () => {
      const record = imageOf(ctx, id);
      requireFormats(record);
      if (record.status !== 'uploading') throw glanceError(409, 'image.transition', `Image needs to be in 'uploading' status to be imported; it is ${record.status}.`);
      if (record.writing !== undefined) throw glanceError(409, 'image.staging', `The data of image ${id} is still being staged.`);
      await store.save(touch(record, { status: 'importing', writing }));
    });
    const staged = createReadStream(store.stagingPath(id));
    let received: ReceivedData | undefined;
    try {
      received = await store.receiveData(staged, maxImageSize);
      await activateWithData(ctx, id, writing, received, [store.stagingPath(id)]);
    } catch (err) {
      // As Glance reverts a failed import: the image is queued again, without the data.
      staged.destroy();
      await revert(ctx, id, writing, received, { size: null }, [store.blobPath(id), store.stagingPath(id)]);
      throw storageFailure(err);
    }
    res.writeHead(202, { 'Content-Length': '0' }).end();
  };
}

export interface DownloadOptions {
  readonly maxRanges?: number;
  readonly onLegacyRange?: (use: LegacyUse) => void;
}

/** `GET /v2/images/{id}/file`: the image's data, with ranges (serveImage). */
export function downloadData(ctx: ServiceContext, options: DownloadOptions) {
  return serveImage({
    source: (req) => imageData(ctx, imageOf(ctx, (req as Request).params['id'] as string), selfOf(req)),
    maxRanges: options.maxRanges ?? 1,
    deprecation: { onUse: options.onLegacyRange ?? (() => undefined) },
  });
}

/** Where the data of an image is: its file, or its first http(s) location. */
function imageData(ctx: ServiceContext, record: ImageRecord, self: SelfAddress): ImageData | null {
  const { store, files } = ctx;
  const location = record.locations[0];
  // An image of zero bytes is data too: 200 with no body, and Glance's 416 to any range.
  if (!location || record.size === null) return null;
  const base = { size: record.size, checksum: record.checksum };
  if (location.url === store.blobUrl(record.id)) return files.data(store.blobPath(record.id), record.size, record.checksum);
  return {
    ...base,
    open: async (range) => {
      const res = await ctx.openLocation(location.url, 'GET', self, range ? { Range: `bytes=${range.start}-${range.end}` } : {});
      if (!isResponse(res)) throw glanceError(503, 'image.data_unavailable', `Image data of image ${record.id} is not available at its location.`);
      // A server that ignores Range sends the whole image (200): serveImage cuts the slice.
      const sent = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '');
      return { stream: res, offset: res.statusCode === 206 && sent ? Number(sent[1]) : 0 };
    },
  };
}

function pyName(v: unknown): string {
  return typeof v === 'string' ? v : 'None';
}
