/**
 * The demo's image rules: turning a create request or a patch into a new image record, with
 * Glance's answers for bad ones. Pure except for sizing an http:// location (a HEAD request).
 */
import { glanceError } from '../../lib/errors';
import { locationPosition } from '../../lib/locations/decide';
import { formatAllowed, formatError, type FormatField } from '../../lib/defaults/validate';
import { checkAttribute, pyStr, type PatchOp } from '../../lib/locations/patch';
import type { ImageLocation, ImageRecord } from './store';

const BASE = new Set(['name', 'disk_format', 'container_format', 'visibility', 'protected', 'min_ram', 'min_disk', 'owner', 'os_hidden', 'tags', 'id', 'locations']);
const VISIBILITIES = ['public', 'private', 'shared', 'community'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ImageRules {
  readonly diskFormats: readonly string[];
  readonly containerFormats: readonly string[];
  /** Size of the data at an http(s) URL, or null when it is not a location the demo may read, or cannot be read there. */
  readonly sizeAt: (url: string) => Promise<number | null>;
  /** The id of a location added now (Glance's location row id). */
  readonly locationId?: () => Promise<number>;
}

const schemaError = (message: string) => glanceError(400, 'image.invalid', `Provided object does not match schema 'image': ${message}`);

const pyList = (values: readonly (string | null)[]) => `[${values.map((v) => (v === null ? 'None' : `'${v}'`)).join(', ')}]`;
const pyValue = (v: unknown) => (typeof v === 'string' ? `'${v}'` : pyStr(v));

/** Check one top-level property value as Glance's image schema does; returns the value to store. */
export function checkProperty(name: string, value: unknown, rules: ImageRules): unknown {
  const format = (field: FormatField, list: readonly string[]) => {
    if (!formatAllowed(value, list)) throw formatError(field, value, list);
    return value;
  };
  const typed = (ok: boolean, type: string) => {
    if (!ok) throw schemaError(`${pyValue(value)} is not of type '${type}'`);
    return value;
  };
  switch (name) {
    case 'disk_format':
    case 'container_format':
      return format(name, name === 'disk_format' ? rules.diskFormats : rules.containerFormats);
    case 'visibility':
      if (typeof value !== 'string' || !VISIBILITIES.includes(value)) throw schemaError(`${pyValue(value)} is not one of ${pyList(VISIBILITIES)}`);
      return value;
    case 'name':
      if (typeof value === 'string' && value.length > 255) throw schemaError(`${pyValue(value)} is too long`);
      return typed(value === null || typeof value === 'string', 'string');
    case 'owner':
      return typed(value === null || typeof value === 'string', 'string');
    case 'protected':
    case 'os_hidden':
      return typed(typeof value === 'boolean', 'boolean');
    case 'min_ram':
    case 'min_disk':
      return typed(Number.isInteger(value) && (value as number) >= 0, 'integer');
    case 'tags':
      typed(Array.isArray(value) && value.every((t) => typeof t === 'string' && t.length <= 255), 'array');
      return [...new Set(value as string[])];
    case 'id':
      if (typeof value !== 'string' || !UUID.test(value)) throw schemaError(`${pyValue(value)} does not match '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$'`);
      return value.toLowerCase();
    default:
      return typed(typeof value === 'string', 'string');
  }
}

function setProperty(record: ImageRecord, name: string, value: unknown): void {
  if (BASE.has(name)) (record as unknown as Record<string, unknown>)[name] = value;
  else record.extra[name] = value as string;
}

/** Apply the body of `POST /v2/images` to a fresh record. */
export function applyCreate(record: ImageRecord, body: unknown, rules: ImageRules): ImageRecord {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw glanceError(400, 'image.invalid', 'Request body must be a JSON object of image properties.');
  }
  for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
    checkAttribute(name, true);
    if (name === 'locations') {
      throw glanceError(400, 'image.invalid', 'Locations cannot be given when an image is created; add them with PATCH.');
    }
    setProperty(record, name, checkProperty(name, value, rules));
  }
  return record;
}

/** `{ id }` when there is one. */
const pick = (id: number | undefined) => (id === undefined ? {} : { id });

function checkLocation(value: unknown): ImageLocation {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw schemaError(`${pyValue(value)} is not of type 'object'`);
  const v = value as Record<string, unknown>;
  if (typeof v['url'] !== 'string') throw schemaError("'url' is a required property");
  if (v['url'].length > 255) throw schemaError(`${pyValue(v['url'])} is too long`);
  if (typeof v['metadata'] !== 'object' || v['metadata'] === null || Array.isArray(v['metadata'])) {
    throw schemaError("'metadata' is a required property");
  }
  return { url: v['url'], metadata: v['metadata'] as Record<string, unknown> };
}

/** The result of a patch: the new record, and the data locations it let go of. */
export interface PatchResult {
  readonly record: ImageRecord;
  readonly dropped: readonly string[];
}

/**
 * Apply `ops` to a copy of `current`, in order, as Glance's images controller does. The location
 * guard in front has already refused what Glance refuses by status; the checks here keep the store
 * itself consistent whatever reaches it.
 */
export async function applyPatch(current: ImageRecord, ops: readonly PatchOp[], rules: ImageRules): Promise<PatchResult> {
  // A copy through JSON, what records are made of (and stored as): unlike structuredClone, it makes
  // its objects in the caller's realm, so that the no-change check (isDeepStrictEqual, which
  // compares prototypes) holds wherever this module runs, a vm context included.
  const record = JSON.parse(JSON.stringify(current)) as ImageRecord;
  const dropped: string[] = [];
  const sized = async (url: string) => {
    const size = await rules.sizeAt(url);
    if (size === null) throw glanceError(400, 'location.invalid', 'Invalid location');
    return size;
  };
  const withId = async (l: ImageLocation): Promise<ImageLocation> => ({ ...l, ...pick(await rules.locationId?.()) });
  const activate = (size: number) => {
    if (record.status !== 'queued') return;
    if (record.disk_format === null || record.container_format === null) {
      throw glanceError(400, 'image.formats', 'Properties disk_format, container_format must be set prior to saving data.');
    }
    record.status = 'active';
    record.size ??= size;
  };

  for (const change of ops) {
    const [root = '', token] = change.path;
    if (root === 'locations') {
      if (change.op === 'remove') {
        if (record.locations.length === 1) throw glanceError(403, 'location.last', 'Cannot remove last location in the image.', { afterStockSentence: true });
        const pos = locationPosition(token, record.locations.length, false);
        if (pos === null) throw glanceError(400, 'location.position', 'Invalid position for removing a location.');
        dropped.push(...record.locations.splice(pos, 1).map((l) => l.url));
      } else if (change.op === 'add') {
        const location = checkLocation(change.value);
        const pos = locationPosition(token, record.locations.length, true);
        if (pos === null) throw glanceError(400, 'location.position', 'Invalid position for adding a location.');
        if (record.locations.some((l) => l.url === location.url)) {
          throw glanceError(400, 'location.duplicate', `The location ${location.url} already exists`);
        }
        const size = await sized(location.url);
        record.locations.splice(pos, 0, await withId(location));
        activate(size);
      } else {
        if (!Array.isArray(change.value) || change.value.length === 0) {
          throw glanceError(403, 'location.empty', 'Cannot set locations to empty list.', { afterStockSentence: true });
        }
        const wanted = change.value.map(checkLocation);
        const urls = (ls: readonly ImageLocation[]) => ls.map((l) => l.url).sort().join('\n');
        if (record.locations.length > 0 && urls(wanted) !== urls(record.locations)) {
          // Glance lists its location rows: id, url, metadata and status.
          const rows = record.locations.map((l) => ({ ...(l.id === undefined ? {} : { id: l.id }), url: l.url, metadata: l.metadata, status: 'active' }));
          throw glanceError(400, 'location.not_empty', `Original locations is not empty: ${pyStr(rows)}`);
        }
        if (new Set(wanted.map((l) => l.url)).size !== wanted.length) {
          throw glanceError(400, 'location.duplicate', 'The locations contain a duplicate URL.');
        }
        if (record.locations.length === 0) {
          let size = 0;
          for (const l of wanted) size = await sized(l.url);
          const located: ImageLocation[] = [];
          for (const l of wanted) located.push(await withId(l));
          record.locations = located;
          activate(size);
        } else {
          // The same URLs: each keeps its id.
          record.locations = wanted.map((l) => ({ ...l, ...pick(record.locations.find((c) => c.url === l.url)?.id) }));
        }
      }
      continue;
    }
    checkAttribute(root);
    if (change.op === 'remove') {
      if (BASE.has(root)) throw glanceError(403, 'image.property', `Property ${root} may not be removed.`, { afterStockSentence: true });
      if (!Object.hasOwn(record.extra, root)) throw glanceError(409, 'image.property', `Property ${root} does not exist.`, { afterStockSentence: true });
      record.extra = Object.fromEntries(Object.entries(record.extra).filter(([name]) => name !== root));
      continue;
    }
    if (change.op === 'replace' && !BASE.has(root) && !Object.hasOwn(record.extra, root)) {
      throw glanceError(409, 'image.property', `Property ${root} does not exist.`, { afterStockSentence: true });
    }
    setProperty(record, root, checkProperty(root, change.value, rules));
  }
  return { record, dropped: dropped.filter((url) => !record.locations.some((l) => l.url === url)) };
}

/** Glance's image document for `record`, keys in Glance's order. */
export function imageView(record: ImageRecord): Record<string, unknown> {
  const { extra, ...base } = record;
  return {
    ...extra,
    name: base.name,
    disk_format: base.disk_format,
    container_format: base.container_format,
    visibility: base.visibility,
    size: base.size,
    virtual_size: base.virtual_size,
    status: base.status,
    checksum: base.checksum,
    protected: base.protected,
    min_ram: base.min_ram,
    min_disk: base.min_disk,
    owner: base.owner,
    os_hidden: base.os_hidden,
    os_hash_algo: base.os_hash_algo,
    os_hash_value: base.os_hash_value,
    id: base.id,
    created_at: base.created_at,
    updated_at: base.updated_at,
    locations: base.locations.map((l) => ({ url: l.url, metadata: l.metadata })),
    tags: base.tags,
    self: `/v2/images/${base.id}`,
    file: `/v2/images/${base.id}/file`,
    schema: '/v2/schemas/image',
  };
}
