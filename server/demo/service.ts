/**
 * The embedded image service: a Glance-v2-compatible API over a DiskImageStore, as an Express
 * router. It knows nothing of the suite; the demo mounts the suite in front of it (app.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { Router } from 'express';
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
import { mediaType } from '../../lib/http/media';
import { ACCEPT_PATCH, parseImagePatch, patchDraft } from '../../lib/locations/patch';
import type { LegacyUse } from '../../lib/ranges/legacy';
import { FileCache } from '../../lib/ranges/file';
import { dropData, imageOf, JSON_LIMIT, noContent, readJson, rulesFor, sendJson, touch, type Handler, type ServiceContext } from './context';
import { downloadData, importStaged, stageData, uploadData } from './data';
import { applyCreate, applyPatch, imageView, type ImageRules } from './images';
import { DEFAULT_ALLOWED_LOCATION_HOSTS, locationClient, locationPolicy } from './location';
import { addMember, deleteMember, listMembers, MEMBER_SCHEMA, MEMBERS_SCHEMA, showMember, updateMember } from './members';
import { healthcheck, methodNotAllowed, negotiateVersion, sendWebobError } from './routing';
import { timestamp, type DiskImageStore } from './store';

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

/** Glance's image_size_cap default: 1 TiB. */
export const DEFAULT_MAX_IMAGE_SIZE = 1_099_511_627_776;

/**
 * The image service's routes around `options.store`, behind Glance's health check and version
 * negotiation (every path outside `/v2` is answered here). Unknown paths under `/v2/` fall through
 * to the next handler; a known one asked with a method Glance does not take there is 405.
 */
export function imageService(options: ImageServiceOptions): Router {
  return imageServiceParts(options).router;
}

/** A route handler, as Express calls it. */
type RouteHandler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * The image service's router, and the handler of its download route (`GET /v2/images/:id/file`)
 * for a caller that has routed a request there itself (it reads the id from `req.params.id`, as
 * the router leaves it).
 */
export function imageServiceParts(options: ImageServiceOptions): { readonly router: Router; readonly download: RouteHandler } {
  checkOptions('imageService', options, SERVICE_OPTIONS, ['store']);
  const ctx = serviceContext(options);
  const download = downloadData(ctx, options);
  // Glance's Routes match paths as they are spelt: `/v2/IMAGES` and `/v2/images/` are not routes.
  const router = Router({ caseSensitive: true, strict: true });
  router.use(healthcheck);
  router.use(negotiateVersion);
  schemaRoutes(router, ctx.rules);
  metadefRoutes(router);
  infoRoutes(router);
  router.post('/v2/images', createImage(ctx));
  router.get('/v2/images', listImages(ctx));
  router.get('/v2/images/:id', showImage(ctx));
  router.patch('/v2/images/:id', updateImage(ctx));
  router.delete('/v2/images/:id', deleteImage(ctx));
  router.put('/v2/images/:id/file', uploadData(ctx));
  router.put('/v2/images/:id/stage', stageData(ctx));
  router.post('/v2/images/:id/import', importStaged(ctx));
  router.get('/v2/images/:id/file', download);
  router.post('/v2/images/:id/actions/deactivate', imageAction(ctx, 'deactivate', 'active', 'deactivated'));
  router.post('/v2/images/:id/actions/reactivate', imageAction(ctx, 'reactivate', 'deactivated', 'active'));
  router.get('/v2/images/:id/members', listMembers(ctx));
  router.post('/v2/images/:id/members', addMember(ctx));
  router.get('/v2/images/:id/members/:member', showMember(ctx));
  router.put('/v2/images/:id/members/:member', updateMember(ctx));
  router.delete('/v2/images/:id/members/:member', deleteMember(ctx));
  router.use(methodNotAllowed);
  return { router, download };
}

/** What the routes share, from the (checked) options. */
function serviceContext(options: ImageServiceOptions): ServiceContext {
  const timeout = options.locationTimeout ?? 10_000;
  const allowed = options.allowedLocationHosts ?? DEFAULT_ALLOWED_LOCATION_HOSTS;
  const rules: Omit<ImageRules, 'sizeAt'> = {
    diskFormats: resolveFormats(options.diskFormats, DISK_FORMATS, 'diskFormats', 'imageService'),
    containerFormats: resolveFormats(options.containerFormats, CONTAINER_FORMATS, 'containerFormats', 'imageService'),
  };
  // Image files stay open between downloads: one another process changed (or deleted) is opened again.
  const files = new FileCache();
  options.store.onChange((id) => files.forget(options.store.blobPath(id)));
  return {
    store: options.store,
    rules,
    maxImageSize: options.maxImageSize ?? DEFAULT_MAX_IMAGE_SIZE,
    openLocation: locationClient({ policy: locationPolicy(allowed, "imageService: option 'allowedLocationHosts'"), timeout }),
    files,
  };
}

/** The image schemas, with the configured formats. */
function schemaRoutes(router: Router, rules: Omit<ImageRules, 'sizeAt'>): void {
  router.get('/v2/schemas/image', (_req, res) => sendJson(res, 200, imageSchema(rules)));
  router.get('/v2/schemas/images', (_req, res) => sendJson(res, 200, imagesSchema(rules)));
  router.get('/v2/schemas/member', (_req, res) => sendJson(res, 200, MEMBER_SCHEMA));
  router.get('/v2/schemas/members', (_req, res) => sendJson(res, 200, MEMBERS_SCHEMA));
}

/** Metadefs: the shipped OS::Compute::Hypervisor namespace, as Glance serves a loaded one. */
function metadefRoutes(router: Router): void {
  const loadedAt = timestamp();
  const namespace = (name: string): MetadefNamespace | null => (name === HYPERVISOR_NAMESPACE.namespace ? HYPERVISOR_NAMESPACE : null);
  const metadefs = (res: ServerResponse, doc: unknown) => sendJson(res, 200, doc, {}, false);
  router.get('/v2/schemas/metadefs/namespace', (_req, res) => metadefs(res, METADEF_NAMESPACE_SCHEMA));
  router.get('/v2/schemas/metadefs/property', (_req, res) => metadefs(res, METADEF_PROPERTY_SCHEMA));
  router.get('/v2/metadefs/namespaces', (req, res) => metadefs(res, namespacesDocument(req.url, [HYPERVISOR_NAMESPACE], loadedAt)));
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
}

/** Python's `urllib.parse.urlencode` of one pair (`quote_plus`: only `_.-~` and alphanumerics stay). */
const pyEncode = (k: string, v: string) => [k, v].map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/%20/g, '+')).join('=');

/**
 * `GET /v2/metadefs/namespaces`: a page of the namespaces (newest first, 25 by default, at most
 * 1000), filtered by `visibility` and `resource_types`, with Glance's `first`, `schema` and `next`
 * (there whenever the page is full, as Glance's is) and Glance's answers to a bad query.
 */
function namespacesDocument(url: string, all: readonly MetadefNamespace[], createdAt: string): Record<string, unknown> {
  const q = url.indexOf('?');
  // webob's params as Glance reads them (`dict(request.params)`): first place, last value.
  const params = new Map<string, string>();
  for (const [k, v] of new URLSearchParams(q === -1 ? '' : url.slice(q + 1))) params.set(k, v);
  const rawLimit = params.get('limit');
  let limit = 25;
  if (rawLimit !== undefined) {
    if (!/^\s*[+-]?\d+(_\d+)*\s*$/.test(rawLimit)) throw glanceError(500, 'internal', 'The server has either erred or is incapable of performing the requested operation.');
    limit = Math.min(1000, Number(rawLimit.replace(/_/g, '')));
  }
  const sortDir = params.get('sort_dir') ?? 'desc';
  if (sortDir !== 'asc' && sortDir !== 'desc') throw glanceError(400, 'metadef.sort_dir', `Invalid sort direction: ${sortDir}`);
  const visibility = params.get('visibility');
  if (visibility && visibility !== 'public' && visibility !== 'private') throw glanceError(400, 'metadef.visibility', `Invalid visibility value: ${visibility}`);
  if (limit < 0) throw glanceError(400, 'metadef.limit', 'limit param must be positive');
  let list = all.filter((ns) => !visibility || ns.visibility === visibility);
  const types = params.get('resource_types');
  if (types) {
    const wanted = types.split(',').map((t) => t.trim());
    list = list.filter((ns) => (ns.resource_type_associations ?? []).some((r) => wanted.includes(r.name)));
  }
  const marker = params.get('marker');
  if (marker !== undefined && marker !== '') {
    const at = all.findIndex((ns) => ns.namespace === marker);
    if (at === -1) throw glanceError(404, 'metadef.not_found', `Metadata definition namespace=${marker} was not found.`);
    list = list.slice(list.indexOf(all[at] as MetadefNamespace) + 1);
  }
  // A namespace in the list comes without its properties.
  const page = list.slice(0, limit).map((ns) => {
    const doc = namespaceDocument(ns, createdAt);
    delete doc['properties'];
    return doc;
  });
  params.delete('marker');
  const query = [...params].map(([k, v]) => pyEncode(k, v)).join('&');
  const doc: Record<string, unknown> = { namespaces: page };
  const last = list[page.length - 1];
  if (page.length !== 0 && page.length === limit && last) doc['next'] = `/v2/metadefs/namespaces?${[query, pyEncode('marker', last.namespace)].filter(Boolean).join('&')}`;
  doc['schema'] = '/v2/schemas/metadefs/namespaces';
  doc['first'] = `/v2/metadefs/namespaces${query ? `?${query}` : ''}`;
  return doc;
}

/** Discovery: the import methods this site enables, and Glance's answers where it has one store and no quotas. */
function infoRoutes(router: Router): void {
  router.get('/v2/info/import', (_req, res) =>
    sendJson(res, 200, { 'import-methods': { description: 'Import methods available.', type: 'array', value: ['glance-direct'] } }),
  );
  router.get(['/v2/info/stores', '/v2/info/stores/detail'], () => {
    throw glanceError(404, 'info.stores', 'Multi backend is not supported at this site.');
  });
  router.get('/v2/info/usage', (_req, res) => sendJson(res, 200, { usage: {} }));
}

/** `POST /v2/images`: a new queued image. */
function createImage(ctx: ServiceContext): Handler {
  const { store } = ctx;
  return async (req, res) => {
    const record = applyCreate(store.newRecord(), await readJson(req), rulesFor(ctx, req));
    // Under the image's lock: of two creations of one id (in any process), the second is the 409.
    await store.exclusive(record.id, async () => {
      if (store.get(record.id)) throw glanceError(409, 'image.exists', `Image with identifier ${record.id} already exists!`);
      await store.save(record);
    });
    sendJson(res, 201, imageView(record), {
      Location: `${req.protocol}://${req.get('host') ?? '127.0.0.1'}/v2/images/${record.id}`,
      'OpenStack-image-import-methods': 'glance-direct',
    });
  };
}

/** `GET /v2/images`: a page of the images, filtered by the query, with Glance's `first` and `next` links. */
function listImages(ctx: ServiceContext): Handler {
  return (req, res) => {
    const limit = Math.min(Math.max(Number(req.query['limit'] ?? 25) || 25, 1), 1000);
    const marker = typeof req.query['marker'] === 'string' ? req.query['marker'] : undefined;
    let all = ctx.store.list();
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
  };
}

/** `GET /v2/images/{id}`. */
function showImage(ctx: ServiceContext): Handler {
  return (req, res) => sendJson(res, 200, imageView(imageOf(ctx, req.params.id)));
}

/** `PATCH /v2/images/{id}`: a JSON patch in one of Glance's media types, applied under the image's lock. */
function updateImage(ctx: ServiceContext): Handler {
  const { store } = ctx;
  return async (req, res) => {
    const type = mediaType(req);
    if (patchDraft(type) === undefined) {
      // webob's 415 names the Content-Type as sent; eventlet makes a missing one `text/plain`.
      const sent = req.headers['content-type'] ?? 'text/plain';
      const text = (t: string) => `The request media type ${t} is not supported by this server.\n<br /><br />\n`;
      sendWebobError(req, res, 415, 'Unsupported Media Type', text, sent, { 'Accept-Patch': ACCEPT_PATCH });
      return;
    }
    const ops = parseImagePatch(await inspectBody(req, JSON_LIMIT), type);
    const id = imageOf(ctx, req.params.id).id;
    const { record, dropped } = await store.exclusive(id, async () => {
      const current = imageOf(ctx, id);
      const result = await applyPatch(current, ops, rulesFor(ctx, req));
      // Like Glance, a patch that changes nothing does not touch the image (nor updated_at).
      if (isDeepStrictEqual(result.record, current)) return { record: current, dropped: [] };
      return { record: await store.save(touch(result.record, {})), dropped: result.dropped };
    });
    // Glance deletes the data at a location that is removed from the image.
    if (dropped.includes(store.blobUrl(id))) await dropData(ctx, id);
    sendJson(res, 200, imageView(record));
  };
}

/** `DELETE /v2/images/{id}`, unless the image is protected. */
function deleteImage(ctx: ServiceContext): Handler {
  const { store } = ctx;
  return async (req, res) => {
    const record = store.get(req.params.id);
    if (!record) throw glanceError(404, 'image.not_found', `Failed to find image ${req.params.id} to delete`);
    if (record.protected) throw glanceError(403, 'image.protected', `Image ${record.id} is protected and cannot be deleted.`);
    await store.exclusive(record.id, () => store.delete(record.id));
    ctx.files.forget(store.blobPath(record.id));
    noContent(res);
  };
}

/** `POST /v2/images/{id}/actions/{name}`: from status `from` to `to` (already `to`: nothing to do). */
function imageAction(ctx: ServiceContext, name: 'deactivate' | 'reactivate', from: string, to: string): Handler {
  const { store } = ctx;
  return async (req, res) => {
    const id = imageOf(ctx, req.params.id).id;
    await store.exclusive(id, async () => {
      const record = imageOf(ctx, id);
      if (record.status === to) return;
      if (record.status !== from) throw glanceError(403, 'image.action', `Not allowed to ${name} image in status '${record.status}'`);
      await store.save(touch(record, { status: to }));
    });
    noContent(res);
  };
}
