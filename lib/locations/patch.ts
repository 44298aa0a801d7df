/**
 * Glance's image PATCH bodies, parsed and checked as Glance's request deserializer does, with its
 * texts. Pure: bytes and a media type in, operations or a GlanceError out.
 */
import { glanceError } from '../errors';

/** Glance's two patch media types and the JSON-patch draft each speaks. */
export const PATCH_MEDIA_TYPES: Readonly<Record<string, 4 | 10>> = {
  'application/openstack-images-v2.0-json-patch': 4,
  'application/openstack-images-v2.1-json-patch': 10,
};

/** The JSON-patch draft of a patch media type, or undefined if `mediaType` is not one (compared exactly, as webob does). */
export function patchDraft(mediaType: string): 4 | 10 | undefined {
  return Object.hasOwn(PATCH_MEDIA_TYPES, mediaType) ? PATCH_MEDIA_TYPES[mediaType] : undefined;
}

export const ACCEPT_PATCH = Object.keys(PATCH_MEDIA_TYPES).sort().join(', ');

export type PatchOpName = 'add' | 'remove' | 'replace';
const OPERATIONS: readonly PatchOpName[] = ['add', 'remove', 'replace'];

export interface PatchOp {
  readonly op: PatchOpName;
  /** The decoded JSON pointer, e.g. `['locations', '0']`. */
  readonly path: readonly string[];
  /** Present for add and replace. */
  readonly value?: unknown;
}

/** How deep a pointer may go, by root and op; every other root takes exactly one level. */
const DEPTH: Readonly<Record<string, Partial<Record<PatchOpName, number>>>> = {
  locations: { add: 2, remove: 2, replace: 1 },
};

/** Glance's read-only image attributes. */
export const READ_ONLY_ATTRIBUTES: ReadonlySet<string> = new Set(['created_at', 'updated_at', 'status', 'checksum', 'size', 'virtual_size', 'direct_url', 'self', 'file', 'schema', 'id', 'os_hash_algo', 'os_hash_value']);
const RESERVED = new Set(['location', 'deleted', 'deleted_at']);

const bad = (message: string) => glanceError(400, 'patch.invalid', message);

/** Parse a patch body sent with one of {@link PATCH_MEDIA_TYPES}. Throws Glance's 400 (or 403) on a bad one. */
export function parseImagePatch(body: Buffer, mediaType: string): PatchOp[] {
  const draft = patchDraft(mediaType);
  if (draft === undefined) throw new TypeError(`not an image patch media type: ${mediaType}`);
  if (body.length === 0) throw bad('Body expected in request.');
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw bad('Malformed JSON in request body.');
  }
  if (!Array.isArray(doc)) throw bad('Request body must be a JSON array of operation objects.');
  return doc.map((raw: unknown) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('Operations must be JSON objects.');
    const change = raw as Record<string, unknown>;
    const op = draft === 10 ? operationD10(change) : operationD4(change);
    const pointer = draft === 10 ? pathD10(change) : change[op];
    const path = decodePointer(pointer);
    validateDepth(op, path);
    if (op !== 'remove' && !Object.hasOwn(change, 'value')) throw bad(`Operation "${op}" requires a member named "value".`);
    validateRoot(path);
    return op === 'remove' ? { op, path } : { op, path, value: change['value'] };
  });
}

/** The ops of a patch that touch `/locations`. */
export function locationOps(ops: readonly PatchOp[]): PatchOp[] {
  return ops.filter((o) => o.path[0] === 'locations');
}

function operationD10(change: Record<string, unknown>): PatchOpName {
  const op = change['op'];
  if (op === undefined || op === null) {
    throw bad(`Unable to find \`op\` in JSON Schema change. It must be one of the following: ${OPERATIONS.join(', ')}.`);
  }
  if (!OPERATIONS.includes(op as PatchOpName)) {
    throw bad(`Invalid operation: \`${pyStr(op)}\`. It must be one of the following: ${OPERATIONS.join(', ')}.`);
  }
  return op as PatchOpName;
}

function operationD4(change: Record<string, unknown>): PatchOpName {
  let op: PatchOpName | undefined;
  for (const key of OPERATIONS) {
    if (!Object.hasOwn(change, key)) continue;
    if (op !== undefined) throw bad('Operation objects must contain only one member named "add", "remove", or "replace".');
    op = key;
  }
  if (op === undefined) throw bad('Operation objects must contain exactly one member named "add", "remove", or "replace".');
  return op;
}

function pathD10(change: Record<string, unknown>): unknown {
  if (!Object.hasOwn(change, 'path')) throw bad("Unable to find 'path' in JSON Schema change");
  return change['path'];
}

function decodePointer(pointer: unknown): string[] {
  if (typeof pointer !== 'string') throw bad(`Pointer \`${pyStr(pointer)}\` does not start with "/".`);
  if (!pointer.startsWith('/')) throw bad(`Pointer \`${pointer}\` does not start with "/".`);
  if (/\/\s*?\//.test(pointer.slice(1))) throw bad(`Pointer \`${pointer}\` contains adjacent "/".`);
  if (pointer.length > 1 && pointer.endsWith('/')) throw bad(`Pointer \`${pointer}\` end with "/".`);
  if (pointer.slice(1).trim() === '/') throw bad(`Pointer \`${pointer}\` does not contains valid token.`);
  if (/~[^01]/.test(pointer) || pointer.endsWith('~')) {
    throw bad(`Pointer \`${pointer}\` contains "~" not part of a recognized escape sequence.`);
  }
  return pointer
    .replace(/^\/+/, '')
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~').trim());
}

function validateDepth(op: PatchOpName, path: readonly string[]): void {
  const root = path[0] ?? '';
  const limits = Object.hasOwn(DEPTH, root) ? DEPTH[root] : undefined;
  if (path.length !== (limits?.[op] ?? 1)) throw bad(`Invalid JSON pointer for this resource: '/${path.join('/')}'`);
}

/** Glance's prefix of attributes it keeps for itself. */
export const RESERVED_NAMESPACE = 'os_glance';

function validateRoot(path: readonly string[]): void {
  checkAttribute(path[0] ?? '');
}

/** Glance's 403 for writing a read-only or reserved attribute. `id` may be given when an image is created. */
export function checkAttribute(name: string, creating = false): void {
  if (READ_ONLY_ATTRIBUTES.has(name) && !(creating && name === 'id')) throw glanceError(403, 'patch.read_only', `Attribute '${name}' is read-only.`);
  if (RESERVED.has(name) || name.startsWith(RESERVED_NAMESPACE)) throw glanceError(403, 'patch.reserved', `Attribute '${name}' is reserved.`);
}

/** Python's `str()` of a JSON value, as Glance's messages show it. */
export function pyStr(v: unknown): string {
  return typeof v === 'string' ? v : pyRepr(v);
}

function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  return `{${Object.entries(v as object)
    .map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`)
    .join(', ')}}`;
}
