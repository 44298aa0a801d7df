/**
 * The image data routes of the embedded image service: upload (`PUT file`), the interoperable
 * import (`PUT stage`, then `POST import`) and download (`GET file`, from the image's file or its
 * http(s) location), with Glance's status transitions and its answers to data it cannot store.
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Request } from 'express';
import { glanceError } from '../../lib/errors';
import { mediaType } from '../../lib/http/media';
import type { LegacyUse } from '../../lib/ranges/legacy';
import { serveImage, type ImageData } from '../../lib/ranges/serve';
import { dropData, imageOf, noContent, readJson, selfOf, touch, type Handler, type ServiceContext } from './context';
import { isResponse, type SelfAddress } from './location';
import { DataTooLarge, type DataFacts, type ImageRecord } from './store';

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

/** Move an image from `queued` to `to` under the image's lock; Glance's 409 when it is elsewhere. */
function transition(ctx: ServiceContext, id: string, to: string, check: (r: ImageRecord) => void) {
  return ctx.store.exclusive(id, async () => {
    const record = imageOf(ctx, id);
    check(record);
    if (record.status !== 'queued') {
      throw glanceError(409, 'image.transition', `Image status transition from ${record.status} to ${to} is not allowed`);
    }
    return ctx.store.save(touch(record, { status: to }));
  });
}

/** The image's data is now in its blob: record what Glance records, and the file location. */
function activateWithData(ctx: ServiceContext, id: string, facts: DataFacts) {
  const { store } = ctx;
  return store.exclusive(id, async () => {
    const record = imageOf(ctx, id);
    const location = { url: store.blobUrl(id), metadata: {}, id: await store.nextLocationId() };
    await store.save(touch(record, { ...facts, virtual_size: facts.size, os_hash_algo: 'sha512', status: 'active', locations: [...record.locations, location] }));
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
    await transition(ctx, id, 'saving', requireFormats);
    try {
      requireSizeWithinCap(req, maxImageSize);
      await activateWithData(ctx, id, await store.writeData(req, store.blobPath(id), maxImageSize));
    } catch (err) {
      // Cut off, too large, disk full: as Glance, the image waits for data again and no partial
      // data is kept. If the image was deleted meanwhile, its data goes too.
      await store.exclusive(id, async () => {
        const record = store.get(id);
        if (!record) await dropData(ctx, id);
        else if (record.status === 'saving') {
          await dropData(ctx, id);
          await store.save(touch(record, { status: 'queued' }));
        }
      });
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
    await transition(ctx, id, 'uploading', () => undefined);
    try {
      requireSizeWithinCap(req, maxImageSize);
      const facts = await store.writeData(req, store.stagingPath(id), maxImageSize);
      await store.exclusive(id, async () => store.save(touch(imageOf(ctx, id), { size: facts.size })));
    } catch (err) {
      await store.exclusive(id, async () => {
        const record = store.get(id);
        if (record?.status === 'uploading') {
          await rm(store.stagingPath(id), { force: true });
          await store.save(touch(record, { status: 'queued', size: null }));
        }
      });
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
    await store.exclusive(id, async () => {
      const record = imageOf(ctx, id);
      requireFormats(record);
      if (record.status !== 'uploading') throw glanceError(409, 'image.transition', `Image needs to be in 'uploading' status to be imported; it is ${record.status}.`);
      await store.save(touch(record, { status: 'importing' }));
    });
    const staged = createReadStream(store.stagingPath(id));
    try {
      await activateWithData(ctx, id, await store.writeData(staged, store.blobPath(id), maxImageSize));
    } catch (err) {
      // As Glance reverts a failed import: the image is queued again, without the data.
      staged.destroy();
      await store.exclusive(id, async () => {
        const record = store.get(id);
        if (!record) await dropData(ctx, id);
        else if (record.status === 'importing') {
          await dropData(ctx, id);
          await rm(store.stagingPath(id), { force: true });
          await store.save(touch(record, { status: 'queued', size: null }));
        }
      });
      throw storageFailure(err);
    }
    await rm(store.stagingPath(id), { force: true });
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
