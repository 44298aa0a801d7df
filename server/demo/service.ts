/**
 * The embedded image service: a Glance-v2-compatible API over a DiskImageStore, as an Express
 * router. It knows nothing of the suite; the demo mounts the suite in front of it (app.ts).
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { Router, type Request } from 'express';
import { glanceError } from '../../lib/errors';
import { checkOptions, option, type OptionChecks } from '../../lib/options';
import { CONTAINER_FORMATS, DISK_FORMATS } from '../../lib/defaults/formats';
import { resolveFormats, type FormatListOption } from '../../lib/defaults/middleware';
import {
  HYPERVISOR_NAMESPACE,
  METADEF_NAMESPACE_SCHEMA,
  METADEF_PROPERTY_SCHEMA,
  namespaceDocument,
  propertiesDocument,
  propertyDocument,
  type MetadefNamespace,
} from '../../lib/defaults/metadefs';
import { imageSchema, imagesSchema } from '../../lib/defaults/schemas';
import { inspectBody } from '../../lib/http/body';
import { pythonJson } from '../../lib/http/json';
import { mediaType } from '../../lib/http/media';
import { ACCEPT_PATCH, parseImagePatch, patchDraft } from '../../lib/locations/patch';
import type { LegacyUse } from '../../lib/ranges/legacy';
import { FileCache } from '../../lib/ranges/file';
import { serveImage, type ImageData } from '../../lib/ranges/serve';
import { applyCreate, applyPatch, imageView, type ImageRules } from './images';
import { DEFAULT_ALLOWED_LOCATION_HOSTS, isResponse, locationClient, locationPolicy, type SelfAddress } from './location';
import { DataTooLarge, DiskImageStore, timestamp, type DataFacts, type ImageRecord } from './store';

export interface ImageServiceOptions {
  /** The store the service serves. */
  readonly store: DiskImageStore;
  /** Milliseconds to wait for an http:// location to answer. Default 10000. */
  readonly locationTimeout?: number;
  /**
   * Loopback and private addresses that http(s) locations may point at: CIDRs, addresses, host
   * names. Default: loopback. Link-local addresses and the demo itself are never connected to.
   */
  readonly allowedLocationHosts?: readonly string[];
  /** Most bytes of one image's data (Glance's `image_size_cap`). Default 1 TiB. */
  readonly maxImageSize?: number;
  /** Most ranges one download may ask for (multipart/byteranges). Default 1: Glance's 400 for several. */
  readonly maxRanges?: number;
  /** Told of every download that uses the legacy Content-Range request form. */
  readonly onLegacyRange?: (use: LegacyUse) => void;
  /** The disk formats: the whole list, or { add, remove } against Glance's defaults. */
  readonly diskFormats?: FormatListOption;
  /** The container formats: the whole list, or { add, remove } against Glance's defaults. */
  readonly containerFormats?: FormatListOption;
}

const SERVICE_OPTIONS: OptionChecks<ImageServiceOptions> = {
  store: option.object('a DiskImageStore', (v) => typeof v === 'object' && v !== null && typeof (v as { facts?: unknown }).facts === 'function'),
  locationTimeout: option.integer(1, Number.MAX_SAFE_INTEGER, 'milliseconds'),
  allowedLocationHosts: option.object('a list of CIDRs, addresses and host names', (v) => Array.isArray(v) && v.every((h) => typeof h === 'string')),
  maxImageSize: option.integer(1, Number.MAX_SAFE_INTEGER, 'bytes'),
  maxRanges: option.integer(1, 1000, 'ranges'),
  onLegacyRange: option.function('(use) => void'),
  diskFormats: option.formatList,
  containerFormats: option.formatList,
};

/** Glance 25's version list (the API version was not bumped for ranges). */
const VERSIONS = ['v2.15', 'v2.9', 'v2.7', 'v2.6', 'v2.5', 'v2.4', 'v2.3', 'v2.2', 'v2.1', 'v2.0'];

const JSON_LIMIT = 1024 * 1024;

function sendJson(res: ServerResponse, status: number, doc: unknown, headers: Record<string, string> = {}, ascii = true): void {
  const body = pythonJson(doc, ascii);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function noContent(res: ServerResponse): void {
  res.writeHead(204, { 'Content-Length': '0' }).end();
}

const notFound = (id: string) => glanceError(404, 'image.not_found', `No image found with ID ${id}`);

async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = await inspectBody(req, JSON_LIMIT);
  if (body.length === 0) throw glanceError(400, 'request.empty', 'Body expected in request.');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw glanceError(400, 'request.malformed', 'Malformed JSON in request body.');
  }
}

/** Glance's image_size_cap default: 1 TiB. */
export const DEFAULT_MAX_IMAGE_SIZE = 1_099_511_627_776;

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

/** The demo as the request reached it: a location must never lead back there. */
const selfOf = (req: IncomingMessage): SelfAddress => ({ port: req.socket.localPort ?? 0 });

/** The image service's routes around `options.store`. Unknown paths fall through to the next handler. */
export function imageService(options: ImageServiceOptions): Router {
  checkOptions('imageService', options, SERVICE_OPTIONS, ['store']);
  const { store } = options;
  const timeout = options.locationTimeout ?? 10_000;
  const maxImageSize = options.maxImageSize ?? DEFAULT_MAX_IMAGE_SIZE;
  const allowed = options.allowedLocationHosts ?? DEFAULT_ALLOWED_LOCATION_HOSTS;
  const openLocation = locationClient({ policy: locationPolicy(allowed, "imageService: option 'allowedLocationHosts'"), timeout });
  const rules: Omit<ImageRules, 'sizeAt'> = {
    diskFormats: resolveFormats(options.diskFormats, DISK_FORMATS, 'diskFormats', 'imageService'),
    containerFormats: resolveFormats(options.containerFormats, CONTAINER_FORMATS, 'containerFormats', 'imageService'),
  };
  /** The rules for one request: a location is sized as Glance's http store sizes it (HEAD, more than 0 bytes). */
  const rulesFor = (req: IncomingMessage): ImageRules => ({
    ...rules,
    sizeAt: async (url) => {
      const res = await openLocation(url, 'HEAD', selfOf(req));
      if (!isResponse(res)) return null;
      // A HEAD answer has no body, but only reading it to its end frees the connection.
      res.resume();
      const length = Number(res.headers['content-length']);
      return Number.isSafeInteger(length) && length > 0 ? length : null;
    },
  });
  /** Image files stay open between downloads; a file is forgotten when its data goes. */
  const files = new FileCache();
  const dropData = async (id: string) => {
    files.forget(store.blobPath(id));
    await rm(store.blobPath(id), { force: true });
  };
  const router = Router();

  const versions = (req: Request) => {
    const href = `${req.protocol}://${req.get('host') ?? '127.0.0.1'}/v2/`;
    return { versions: VERSIONS.map((id, i) => ({ id, status: i === 0 ? 'CURRENT' : 'SUPPORTED', links: [{ rel: 'self', href }] })) };
  };
  router.get('/', (req, res) => sendJson(res, 300, versions(req)));
  router.get('/versions', (req, res) => sendJson(res, 200, versions(req)));
  router.get('/v2/schemas/image', (_req, res) => sendJson(res, 200, imageSchema(rules)));
  router.get('/v2/schemas/images', (_req, res) => sendJson(res, 200, imagesSchema(rules)));

  // Metadefs: the shipped OS::Compute::Hypervisor namespace, as Glance serves a loaded one.
  const loadedAt = timestamp();
  const namespace = (name: string): MetadefNamespace | null => (name === HYPERVISOR_NAMESPACE.namespace ? HYPERVISOR_NAMESPACE : null);
  const metadefs = (res: ServerResponse, doc: unknown) => sendJson(res, 200, doc, {}, false);
  router.get('/v2/schemas/metadefs/namespace', (_req, res) => metadefs(res, METADEF_NAMESPACE_SCHEMA));
  router.get('/v2/schemas/metadefs/property', (_req, res) => metadefs(res, METADEF_PROPERTY_SCHEMA));
  router.get('/v2/metadefs/namespaces/:ns', (req, res) => {
    const ns = namespace(req.params.ns);
    if (!ns) throw glanceError(404, 'metadef.not_found', `Metadata definition namespace=${req.params.ns} was not found.`);
    metadefs(res, namespaceDocument(ns, loadedAt));
  });
  router.get('/v2/metadefs/namespaces/:ns/properties', (req, res) => {
    const ns = namespace(req.params.ns);
    if (!ns) throw glanceError(404, 'metadef.not_found', `Namespace ${req.params.ns} not found`);
    metadefs(res, propertiesDocument(ns));
  });
  router.get('/v2/metadefs/namespaces/:ns/properties/:name', (req, res) => {
    const ns = namespace(req.params.ns);
    if (!ns) throw glanceError(404, 'metadef.not_found', `Metadata definition namespace=${req.params.ns} was not found.`);
    const doc = propertyDocument(ns, req.params.name);
    if (!doc) throw glanceError(404, 'metadef.not_found', `Could not find property ${req.params.name}`);
    metadefs(res, doc);
  });

  const image = (id: string): ImageRecord => {
    const record = store.get(id);
    if (!record) throw notFound(id);
    return record;
  };
  const touch = (record: ImageRecord, changes: Partial<ImageRecord>): ImageRecord => ({ ...record, ...changes, updated_at: timestamp() });

  router.post('/v2/images', async (req, res) => {
    const record = applyCreate(store.newRecord(), await readJson(req), rulesFor(req));
    if (store.get(record.id)) throw glanceError(409, 'image.exists', `Image with identifier ${record.id} already exists!`);
    await store.save(record);
    sendJson(res, 201, imageView(record), {
      Location: `${req.protocol}://${req.get('host') ?? '127.0.0.1'}/v2/images/${record.id}`,
      'OpenStack-image-import-methods': 'glance-direct',
    });
  });

  router.get('/v2/images', (req, res) => {
    const limit = Math.min(Math.max(Number(req.query['limit'] ?? 25) || 25, 1), 1000);
    const marker = typeof req.query['marker'] === 'string' ? req.query['marker'] : undefined;
    let all = store.list();
    for (const key of ['name', 'status', 'visibility', 'disk_format', 'container_format'] as const) {
      const want = req.query[key];
      if (typeof want === 'string') all = all.filter((r) => r[key] === want);
    }
    let start = 0;
    if (marker !== undefined) {
      start = all.findIndex((r) => r.id === marker) + 1;
      if (start === 0) throw glanceError(400, 'image.marker', `Invalid marker. Image ${marker} could not be found.`);
    }
    const page = all.slice(start, start + limit);
    const query = new URLSearchParams(req.query as Record<string, string>);
    query.delete('marker');
    const first = `/v2/images${query.size ? `?${query}` : ''}`;
    const doc: Record<string, unknown> = { images: page.map(imageView), first, schema: '/v2/schemas/images' };
    const last = page[page.length - 1];
    if (start + limit < all.length && last) {
      query.set('marker', last.id);
      doc['next'] = `/v2/images?${query}`;
    }
    sendJson(res, 200, doc);
  });

  router.get('/v2/images/:id', (req, res) => sendJson(res, 200, imageView(image(req.params.id))));

  router.patch('/v2/images/:id', async (req, res) => {
    const type = mediaType(req);
    if (patchDraft(type) === undefined) {
      throw glanceError(415, 'request.media_type', `The request media type ${type || 'None'} is not supported by this server.`, {
        headers: { 'Accept-Patch': ACCEPT_PATCH },
      });
    }
    const ops = parseImagePatch(await inspectBody(req, JSON_LIMIT), type);
    const id = image(req.params.id).id;
    const { record, dropped } = await store.exclusive(id, async () => {
      const current = image(id);
      const result = await applyPatch(current, ops, rulesFor(req));
      // Like Glance, a patch that changes nothing does not touch the image (nor updated_at).
      if (isDeepStrictEqual(result.record, current)) return { record: current, dropped: [] };
      return { record: await store.save(touch(result.record, {})), dropped: result.dropped };
    });
    // Glance deletes the data at a location that is removed from the image.
    if (dropped.includes(store.blobUrl(id))) await dropData(id);
    sendJson(res, 200, imageView(record));
  });

  router.delete('/v2/images/:id', async (req, res) => {
    const record = store.get(req.params.id);
    if (!record) throw glanceError(404, 'image.not_found', `Failed to find image ${req.params.id} to delete`);
    if (record.protected) throw glanceError(403, 'image.protected', `Image ${record.id} is protected and cannot be deleted.`);
    await store.exclusive(record.id, () => store.delete(record.id));
    files.forget(store.blobPath(record.id));
    noContent(res);
  });

  /** Move an image from `from` to `to` under the image's lock; Glance's 409 when it is elsewhere. */
  const transition = (id: string, to: string, check: (r: ImageRecord) => void) =>
    store.exclusive(id, async () => {
      const record = image(id);
      check(record);
      if (record.status !== 'queued') {
        throw glanceError(409, 'image.transition', `Image status transition from ${record.status} to ${to} is not allowed`);
      }
      return store.save(touch(record, { status: to }));
    });

  /** The image's data is now in its blob: record what Glance records, and the file location. */
  const activateWithData = (id: string, facts: DataFacts) =>
    store.exclusive(id, async () => {
      const record = image(id);
      const location = { url: store.blobUrl(id), metadata: {} };
      await store.save(touch(record, { ...facts, virtual_size: facts.size, os_hash_algo: 'sha512', status: 'active', locations: [...record.locations, location] }));
    });

  const requireOctetStream = (req: Request) => {
    const type = mediaType(req);
    if (type !== 'application/octet-stream') {
      throw glanceError(415, 'request.media_type', `The request media type ${type || 'None'} is not supported by this server.`);
    }
  };
  const requireFormats = (r: ImageRecord) => {
    if (r.disk_format === null || r.container_format === null) {
      throw glanceError(400, 'image.formats', 'Properties disk_format, container_format must be set prior to saving data.');
    }
  };

  /** Refuse, before reading it, a body that says it is longer than an image may be. */
  const requireSizeWithinCap = (req: Request) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isSafeInteger(declared) && declared > maxImageSize) throw new DataTooLarge(maxImageSize);
  };

  router.put('/v2/images/:id/file', async (req, res) => {
    requireOctetStream(req);
    const id = image(req.params.id).id;
    await transition(id, 'saving', requireFormats);
    try {
      requireSizeWithinCap(req);
      await activateWithData(id, await store.writeData(req, store.blobPath(id), maxImageSize));
    } catch (err) {
      // Cut off, too large, disk full: as Glance, the image waits for data again and no partial
      // data is kept. If the image was deleted meanwhile, its data goes too.
      await store.exclusive(id, async () => {
        const record = store.get(id);
        if (!record) await dropData(id);
        else if (record.status === 'saving') {
          await dropData(id);
          await store.save(touch(record, { status: 'queued' }));
        }
      });
      throw storageFailure(err);
    }
    noContent(res);
  });

  router.put('/v2/images/:id/stage', async (req, res) => {
    requireOctetStream(req);
    const id = image(req.params.id).id;
    await transition(id, 'uploading', () => undefined);
    try {
      requireSizeWithinCap(req);
      const facts = await store.writeData(req, store.stagingPath(id), maxImageSize);
      await store.exclusive(id, async () => store.save(touch(image(id), { size: facts.size })));
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
  });

  router.post('/v2/images/:id/import', async (req, res) => {
    const body = (await readJson(req)) as { method?: { name?: unknown } } | null;
    const method = body?.method?.name;
    if (method !== 'glance-direct') throw glanceError(400, 'import.method', `Import method ${pyName(method)} is not supported.`);
    const id = image(req.params.id).id;
    await store.exclusive(id, async () => {
      const record = image(id);
      requireFormats(record);
      if (record.status !== 'uploading') throw glanceError(409, 'image.transition', `Image needs to be in 'uploading' status to be imported; it is ${record.status}.`);
      await store.save(touch(record, { status: 'importing' }));
    });
    const staged = createReadStream(store.stagingPath(id));
    try {
      await activateWithData(id, await store.writeData(staged, store.blobPath(id), maxImageSize));
    } catch (err) {
      // As Glance reverts a failed import: the image is queued again, without the data.
      staged.destroy();
      await store.exclusive(id, async () => {
        const record = store.get(id);
        if (!record) await dropData(id);
        else if (record.status === 'importing') {
          await dropData(id);
          await rm(store.stagingPath(id), { force: true });
          await store.save(touch(record, { status: 'queued', size: null }));
        }
      });
      throw storageFailure(err);
    }
    await rm(store.stagingPath(id), { force: true });
    res.writeHead(202, { 'Content-Length': '0' }).end();
  });

  router.get(
    '/v2/images/:id/file',
    serveImage({
      source: (req) => imageData(image((req as Request).params['id'] as string), selfOf(req)),
      maxRanges: options.maxRanges ?? 1,
      deprecation: { onUse: options.onLegacyRange ?? (() => undefined) },
    }),
  );

  /** Where the data of an image is: its file, or its first http(s) location. */
  const imageData = (record: ImageRecord, self: SelfAddress): ImageData | null => {
    const location = record.locations[0];
    if (!location || record.size === null || record.size === 0) return null;
    const base = { size: record.size, checksum: record.checksum };
    if (location.url === store.blobUrl(record.id)) return files.data(store.blobPath(record.id), record.size, record.checksum);
    return {
      ...base,
      open: async (range) => {
        const res = await openLocation(location.url, 'GET', self, range ? { Range: `bytes=${range.start}-${range.end}` } : {});
        if (!isResponse(res)) throw glanceError(503, 'image.data_unavailable', `Image data of image ${record.id} is not available at its location.`);
        // A server that ignores Range sends the whole image (200): serveImage cuts the slice.
        const sent = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '');
        return { stream: res, offset: res.statusCode === 206 && sent ? Number(sent[1]) : 0 };
      },
    };
  };

  const action = (name: 'deactivate' | 'reactivate', from: string, to: string) =>
    router.post(`/v2/images/:id/actions/${name}`, async (req, res) => {
      const id = image(req.params.id).id;
      await store.exclusive(id, async () => {
        const record = image(id);
        if (record.status === to) return;
        if (record.status !== from) throw glanceError(403, 'image.action', `Not allowed to ${name} image in status '${record.status}'`);
        await store.save(touch(record, { status: to }));
      });
      noContent(res);
    });
  action('deactivate', 'active', 'deactivated');
  action('reactivate', 'deactivated', 'active');

  return router;
}

function pyName(v: unknown): string {
  return typeof v === 'string' ? v : 'None';
}
