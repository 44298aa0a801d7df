/**
 * The image as Glance 25's images controller changes it (glance/api/v2/images.py `update`, the
 * domain Image of glance/domain/__init__.py and the proxies Glance wraps it in), read from the image
 * document a lookup shows: what Glance checks of a patch besides the location rules, where it can be
 * told from outside. Pure.
 *
 * What it cannot tell (whether the service's store takes a location URL, the ids its database gives
 * locations, its quotas, policies and `hashing_algorithm`) is not guessed here: the decision assumes
 * such a check passes, and README.md's "Compatibility with Glance" lists them.
 */
import { glanceError, type GlanceError } from '../errors';
import { glanceFails } from './patch';
import { pyStrOfJs } from './python';

/**
 * Every name `hasattr()` finds on the image object Glance's controller changes (a
 * `glance.notifier.ImageProxy` around the quota and location proxies of the domain Image, without
 * property protections): `dir()` of its class, and the attributes its constructor sets. A remove of
 * one is 403 `Property … may not be removed.`; an add or replace sets it.
 */
export const IMAGE_OBJECT_ATTRIBUTES: ReadonlySet<string> = new Set([
  '__abstractmethods__', '__class__', '__delattr__', '__dict__', '__dir__', '__doc__', '__eq__', '__format__', '__ge__',
  '__getattribute__', '__getstate__', '__gt__', '__hash__', '__init__', '__init_subclass__', '__le__', '__lt__', '__module__',
  '__ne__', '__new__', '__reduce__', '__reduce_ex__', '__repr__', '__setattr__', '__sizeof__', '__str__', '__subclasshook__',
  '__weakref__', '_abc_impl', '_format_image_send', '_format_import_properties', '_get_chunk_data_iterator', 'base', 'checksum',
  'container_format', 'context', 'created_at', 'deactivate', 'delete', 'disk_format', 'extra_properties', 'get_data',
  'get_payload', 'get_super_class', 'helper', 'image_id', 'locations', 'member', 'min_disk', 'min_ram', 'name', 'notifier',
  'os_hash_algo', 'os_hash_value', 'os_hidden', 'owner', 'protected', 'reactivate', 'repo', 'send_notification', 'set_data',
  'size', 'status', 'tags', 'updated_at', 'virtual_size', 'visibility',
]);

/**
 * Names of the image object that Glance cannot set to a string: `setattr` raises (`__class__`,
 * `__dict__`, `__weakref__`), or the proxy loses the image it wraps and the next use of it raises
 * (`base`). Glance answers a bare 500. (The other names of the object take the value, and those
 * that break the image, `image_id` and `extra_properties`, fail only when it is saved, after every op.)
 */
const UNSETTABLE: ReadonlySet<string> = new Set(['__class__', '__dict__', '__weakref__', 'base']);

/** The keys of Glance's image document that are not custom properties (`ResponseSerializer._format_image`). */
const DOCUMENT_KEYS: ReadonlySet<string> = new Set([
  'name', 'disk_format', 'container_format', 'visibility', 'size', 'virtual_size', 'status', 'checksum', 'protected', 'min_ram',
  'min_disk', 'owner', 'os_hidden', 'os_hash_algo', 'os_hash_value', 'id', 'created_at', 'updated_at', 'locations',
  'direct_url', 'tags', 'self', 'file', 'schema', 'stores',
]);

/** Glance's default `hashing_algorithm`, whose digest validation data must carry. */
const HASHING_ALGORITHM = 'sha512';
const DIGEST_BYTES = 64;

export interface ImageLocation {
  readonly url: unknown;
  readonly metadata: unknown;
}

/** The image's state as the controller sees it, changed op by op as Glance applies a patch. */
export interface ImageModel {
  status: string;
  /** Its locations, or null when the document does not list them. */
  locations: ImageLocation[] | null;
  /** The names of its custom properties. */
  readonly properties: Set<string>;
  /** disk_format, container_format, checksum, os_hash_algo, os_hash_value, as they stand. */
  readonly attributes: Map<string, unknown>;
}

const TRACKED = ['disk_format', 'container_format', 'checksum', 'os_hash_algo', 'os_hash_value'] as const;

/** The model of a Glance image document, or null when `doc` is not one. */
export function imageModel(doc: unknown): ImageModel | null {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return null;
  const d = doc as Record<string, unknown>;
  if (typeof d['status'] !== 'string') return null;
  const listed = d['locations'];
  const locations = Array.isArray(listed) && listed.every((l) => typeof l === 'object' && l !== null && !Array.isArray(l)) ? (listed as Record<string, unknown>[]).map((l) => ({ url: l['url'], metadata: l['metadata'] })) : null;
  return {
    status: d['status'],
    locations,
    properties: new Set(Object.keys(d).filter((k) => !DOCUMENT_KEYS.has(k))),
    attributes: new Map(TRACKED.map((k) => [k, d[k] ?? null])),
  };
}

/** Python truthiness of a JSON value. */
export function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object' && v !== null) return Object.keys(v).length > 0;
  if (typeof v === 'number') return v !== 0;
  return Boolean(v);
}

/** Python's `a == b` of two JSON values as JSON.parse makes them (True == 1, dicts without regard to order). */
export function pyEqualJs(a: unknown, b: unknown): boolean {
  const num = (x: unknown) => (typeof x === 'boolean' ? Number(x) : typeof x === 'number' ? x : undefined);
  const x = num(a);
  const y = num(b);
  if (x !== undefined || y !== undefined) return x !== undefined && y !== undefined && x === y;
  if (a === null || typeof a === 'string') return a === b;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => pyEqualJs(v, b[i]));
  if (typeof a === 'object' && typeof b === 'object' && b !== null && !Array.isArray(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && pyEqualJs((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

const stock = { afterStockSentence: true } as const;

/**
 * An op on anything but `/locations`, as `_do_add`, `_do_replace` and `_do_remove` apply it to
 * `model`: Glance's refusal, or null once applied. `draft` is the patch's JSON-patch draft (4 for
 * the v2.0 media type, whose add of an existing property is refused).
 */
export function applyPropertyOp(model: ImageModel, op: 'add' | 'remove' | 'replace', root: string, value: unknown, draft: 4 | 10): GlanceError | null {
  const attribute = IMAGE_OBJECT_ATTRIBUTES.has(root);
  switch (op) {
    case 'remove':
      if (attribute) return glanceError(403, 'image.property', `Property ${root} may not be removed.`, stock);
      if (!model.properties.delete(root)) return glanceError(409, 'image.property', `Property ${root} does not exist.`, stock);
      return null;
    case 'replace':
      if (attribute) return setAttribute(model, root, value);
      if (!model.properties.has(root)) return glanceError(409, 'image.property', `Property ${root} does not exist.`, stock);
      return null;
    case 'add':
      if (draft === 4 && (attribute || model.properties.has(root))) return glanceError(409, 'image.property', `Property ${root} already present.`, stock);
      if (attribute) return setAttribute(model, root, value);
      model.properties.add(root);
      return null;
  }
}

/** `setattr(image, name, value)` for an attribute of the image object: the domain's setters' refusals. */
function setAttribute(model: ImageModel, name: string, value: unknown): GlanceError | null {
  if (UNSETTABLE.has(name)) return glanceFails(`Glance's image object cannot take '${name}'`);
  if (name === 'disk_format' || name === 'container_format') {
    if (model.status !== 'queued' && model.status !== 'importing') {
      return glanceError(403, 'image.property', `Attribute ${name} can be only replaced for a queued image.`);
    }
    model.attributes.set(name, value);
    return null;
  }
  if ((name === 'min_ram' || name === 'min_disk') && truthy(value) && typeof value === 'number' && value < 0) {
    return glanceError(400, 'image.property', `Invalid value '${pyStrOfJs(value)}' for parameter '${name}': Cannot be a negative value`);
  }
  return null;
}

/**
 * `_validate_validation_data(image, locations)`: the `validation_data` the new locations carry,
 * checked against the image (values it has must match; new ones only for a queued image, and well
 * formed for Glance's default hashing algorithm): Glance's 409, or the new values to set once the
 * image becomes active.
 */
export function validationData(model: ImageModel, locations: readonly unknown[]): GlanceError | Map<string, unknown> {
  const conflict = (message: string) => glanceError(409, 'location.validation', message);
  const values = new Map<string, unknown>();
  for (const loc of locations) {
    if (typeof loc !== 'object' || loc === null || !Object.hasOwn(loc, 'validation_data')) continue;
    const data = (loc as Record<string, unknown>)['validation_data'];
    if (typeof data !== 'object' || data === null) continue;
    for (const [k, v] of Object.entries(data)) {
      if (values.has(k) && !pyEqualJs(values.get(k), v)) return conflict(`Conflicting values for ${k}`);
      values.set(k, v);
    }
  }
  const fresh = new Map<string, unknown>();
  for (const [k, v] of values) {
    const current = model.attributes.get(k) ?? null;
    if (pyEqualJs(v, current)) continue;
    if (truthy(current)) return conflict(`${k} is already set with a different value`);
    fresh.set(k, v);
  }
  if (fresh.size === 0) return fresh;
  if (model.status !== 'queued') return conflict(`New value(s) for ${[...fresh.keys()].join(', ')} may only be provided when image status is 'queued'`);
  if (fresh.has('checksum')) {
    const checksum = pyStrOfJs(fresh.get('checksum'));
    const bytes = fromHexLength(checksum);
    if (bytes === null) return conflict(`checksum (${checksum}) is not a valid hexadecimal value`);
    if (bytes !== 16) return conflict(`checksum (${checksum}) is not the correct size for md5 (should be 16 bytes)`);
  }
  const algo = fresh.has('os_hash_algo') ? fresh.get('os_hash_algo') : null;
  if (algo !== HASHING_ALGORITHM) return conflict(`os_hash_algo must be ${HASHING_ALGORITHM}, not ${pyStrOfJs(algo)}`);
  // Glance reads the new hash value unguarded: without one it fails (a 500).
  if (!fresh.has('os_hash_value')) return glanceFails('validation data gives a hash algorithm without a new hash value');
  const hash = pyStrOfJs(fresh.get('os_hash_value'));
  const bytes = fromHexLength(hash);
  if (bytes === null) return conflict(`os_hash_value (${hash}) is not a valid hexadecimal value`);
  if (bytes !== DIGEST_BYTES) return conflict(`os_hash_value (${hash}) is not the correct size for ${HASHING_ALGORITHM} (should be ${DIGEST_BYTES} bytes)`);
  return fresh;
}

const ASCII_SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);
const HEX = /^[0-9a-fA-F]$/;

/** How many bytes Python's `bytearray.fromhex(s)` makes of `s`, or null where it raises ValueError. */
export function fromHexLength(s: string): number | null {
  let n = 0;
  let i = 0;
  while (i < s.length) {
    if (ASCII_SPACE.has(s[i] as string)) {
      i++;
      continue;
    }
    if (!HEX.test(s[i] as string) || i + 1 >= s.length || !HEX.test(s[i + 1] as string)) return null;
    i += 2;
    n++;
  }
  return n;
}

/**
 * glance_store's `check_location_metadata`: every value of a location's metadata, at any depth, is
 * a str, a list or a dict. Glance does not catch its refusal (a 500).
 */
export function storeTakesMetadata(metadata: unknown): boolean {
  if (Array.isArray(metadata)) return metadata.every(storeTakesMetadata);
  if (typeof metadata === 'object' && metadata !== null) return Object.values(metadata).every(storeTakesMetadata);
  return typeof metadata === 'string';
}

/**
 * The domain's check when the image leaves `queued` for `active`: both formats must be set (a
 * ValueError Glance answers with 400), or null.
 */
export function formatsMissing(model: ImageModel): GlanceError | null {
  const missing = ['disk_format', 'container_format'].filter((k) => !truthy(model.attributes.get(k) ?? null));
  if (missing.length === 0) return null;
  const message = missing.length === 1 ? `Property ${missing.join(', ')} must be set prior to saving data.` : `Properties ${missing.join(', ')} must be set prior to saving data.`;
  return glanceError(400, 'image.formats', message);
}
