/**
 * Glance's image PATCH bodies, parsed and checked as Glance's request deserializer does, with its
 * texts. Pure: bytes and a media type in, operations or a GlanceError out.
 */
import { glanceError, type GlanceError } from '../errors';
import { PythonJsonError, readPythonJson, type PyDict, type PyValue } from '../http/json';
import { PY_WHITESPACE, pyStrip, pyStrOf, pyStrOfJs, toJsValue } from './python';

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

/**
 * A patch Glance's deserializer fails on with an exception of its own, which Glance answers with a
 * bare 500: the suite answers a 400 that says why (ours), and passes none of it on.
 */
export const glanceFails = (why: string) => glanceError(400, 'patch.unreadable', `The patch cannot be read: ${why}.`);

/**
 * Parse a patch body sent with one of {@link PATCH_MEDIA_TYPES}, exactly as Glance's
 * `RequestDeserializer.update` reads it (glance/api/v2/images.py): the body decoded as strict
 * UTF-8 and read by Python's `json` (NaN and Infinity accepted, duplicate keys last-wins), pointers
 * checked and stripped with Python's `str` methods. Throws Glance's 400 or 403, or a 400
 * `patch.unreadable` where Glance's reading raises and Glance answers a bare 500 (a pointer that is
 * not a string, nesting past Python's recursion limit). Values are checked against the image
 * schema only when `options.checkValue` is given, change by change where Glance checks them.
 */
export function parseImagePatch(body: Buffer, mediaType: string, options: ParseOptions = {}): PatchOp[] {
  const draft = patchDraft(mediaType);
  if (draft === undefined) throw new TypeError(`not an image patch media type: ${mediaType}`);
  // JSONRequestDeserializer.has_body: a Content-Length of 0 is no body.
  if (body.length === 0) throw bad('Body expected in request.');
  let doc: PyValue;
  try {
    doc = readPythonJson(body);
  } catch (err) {
    if (err instanceof PythonJsonError && err.reason === 'depth') throw glanceFails('the JSON is nested too deeply');
    throw bad('Malformed JSON in request body.');
  }
  // JSONRequestDeserializer.from_json, then update().
  if (!Array.isArray(doc) && !(doc instanceof Map)) throw bad('Unexpected body type. Expected list/dict.');
  if (!Array.isArray(doc)) throw bad('Request body must be a JSON array of operation objects.');
  return doc.map((change: PyValue) => {
    if (!(change instanceof Map)) throw bad('Operations must be JSON objects.');
    const op = draft === 10 ? operationD10(change) : operationD4(change);
    const pointer = draft === 10 ? pathD10(change) : change.get(op);
    const path = decodePointer(pointer as PyValue);
    validateDepth(op, path);
    if (op !== 'remove' && !change.has('value')) throw bad(`Operation "${op}" requires a member named "value".`);
    validateRoot(path);
    if (op !== 'remove' && options.checkValue) {
      const refusal = options.checkValue(op, path, change.get('value') as PyValue);
      if (refusal) throw refusal;
    }
    return op === 'remove' ? { op, path } : { op, path, value: toJsValue(change.get('value') as PyValue) };
  });
}

export interface ParseOptions {
  /**
   * Glance's check of each add's and replace's value against its image schema
   * (`_validate_change`), run as Glance runs it: after the change is read and its attribute
   * allowed, before the next change is read. Its refusal is thrown.
   */
  readonly checkValue?: (op: 'add' | 'replace', path: readonly string[], value: PyValue) => GlanceError | null;
}

/** The ops of a patch that touch `/locations`. */
export function locationOps(ops: readonly PatchOp[]): PatchOp[] {
  return ops.filter((o) => o.path[0] === 'locations');
}

function operationD10(change: PyDict): PatchOpName {
  const op = change.get('op');
  if (op === undefined || op === null) {
    throw bad(`Unable to find \`op\` in JSON Schema change. It must be one of the following: ${OPERATIONS.join(', ')}.`);
  }
  if (typeof op !== 'string' || !OPERATIONS.includes(op as PatchOpName)) {
    throw bad(`Invalid operation: \`${pyStrOf(op)}\`. It must be one of the following: ${OPERATIONS.join(', ')}.`);
  }
  return op as PatchOpName;
}

function operationD4(change: PyDict): PatchOpName {
  let op: PatchOpName | undefined;
  for (const key of OPERATIONS) {
    if (!change.has(key)) continue;
    if (op !== undefined) throw bad('Operation objects must contain only one member named "add", "remove", or "replace".');
    op = key;
  }
  if (op === undefined) throw bad('Operation objects must contain exactly one member named "add", "remove", or "replace".');
  return op;
}

function pathD10(change: PyDict): PyValue {
  if (!change.has('path')) throw bad("Unable to find 'path' in JSON Schema change");
  return change.get('path') as PyValue;
}

/** `re.search(r'/\s*?/', ...)` with Python's `\s`. */
const ADJACENT_SLASHES = new RegExp(`/[${PY_WHITESPACE}]*/`);

/** Glance's `_validate_json_pointer` and `_decode_json_pointer`. */
function decodePointer(pointer: PyValue): string[] {
  // `pointer.startswith` on anything but a str raises AttributeError: a 500 from Glance, a 400 here.
  if (typeof pointer !== 'string') throw glanceFails('a pointer is not a string');
  if (!pointer.startsWith('/')) throw bad(`Pointer \`${pointer}\` does not start with "/".`);
  if (ADJACENT_SLASHES.test(pointer.slice(1))) throw bad(`Pointer \`${pointer}\` contains adjacent "/".`);
  if (pointer.length > 1 && pointer.endsWith('/')) throw bad(`Pointer \`${pointer}\` end with "/".`);
  if (pyStrip(pointer.slice(1)) === '/') throw bad(`Pointer \`${pointer}\` does not contains valid token.`);
  if (/~[^01]/.test(pointer) || pointer.endsWith('~')) {
    throw bad(`Pointer \`${pointer}\` contains "~" not part of a recognized escape sequence.`);
  }
  return pointer
    .replace(/^\/+/, '')
    .split('/')
    .map((part) => pyStrip(part.replace(/~1/g, '/').replace(/~0/g, '~')));
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

/** Python's `str()` of a JSON value as JSON.parse makes it, as Glance's messages show it. */
export function pyStr(v: unknown): string {
  return pyStrOfJs(v);
}
