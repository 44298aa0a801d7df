/**
 * Glance's check of a patch's values against its image schema, with its texts. Pure.
 *
 * Glance's deserializer (`RequestDeserializer._validate_change`) checks the value of every add and
 * replace, change by change, before its controller judges anything: `{root: value}` for a path of
 * one token, `{root: [value]}` for a path into an array property (`/locations/-`). Its schema runs
 * `jsonschema.validate` (jsonschema 4.10.3, the 2020-12 draft, `best_match`), and Glance answers
 * 400 `Provided object does not match schema 'image': ` and `str()` of the error: its message, the
 * failing keyword and subschema, the instance, each as `pprint.pformat(width=72)` shows it.
 *
 * Only the keywords of Glance's image schema are known here (type, enum, minLength, maxLength,
 * pattern, items, properties, required, additionalProperties); a schema with another keyword that
 * validates is refused when the checker is made.
 */
import { glanceError, type GlanceError } from '../errors';
import type { PyValue } from '../http/json';
import { imageSchema, type FormatLists } from '../defaults/schemas';
import { glanceFails, locationOps, parseImagePatch, type PatchOp } from './patch';
import { pyCompareStr, pyLen, pyPformat, pyRepr, pyStrRepr } from './python';

type Schema = Map<string, PyValue>;
type Index = string | number;

/** One `jsonschema.ValidationError`: where it arose, in the instance and in the schema. */
export interface SchemaError {
  readonly message: string;
  /** The failing keyword (`type`, `required`...). */
  readonly validator: string;
  /** The (sub)schema holding the keyword. */
  readonly schema: Schema;
  /** The (sub)instance that failed. */
  readonly instance: PyValue;
  /** Its path in the instance (`relative_path`). */
  readonly path: Index[];
  /** The keyword's path in the schema (`relative_schema_path`), the keyword last. */
  readonly schemaPath: Index[];
}

/** Keywords that say something but validate nothing (jsonschema has no validator for them). */
const ANNOTATIONS = new Set(['name', 'description', 'readOnly', 'writeOnly', 'is_base', 'links', 'title', 'default', 'examples', '$comment']);
const KEYWORDS = new Set(['type', 'enum', 'minLength', 'maxLength', 'pattern', 'items', 'properties', 'required', 'additionalProperties']);

/** A JSON value (a schema document) as Python's `json.loads` makes it: objects as dicts, integral numbers as ints. */
function toPy(v: unknown): PyValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.map(toPy);
  return new Map(Object.entries(v as object).map(([k, x]) => [k, toPy(x)]));
}

function checkKeywords(schema: PyValue, where: string): void {
  if (!(schema instanceof Map)) throw new TypeError(`${where} is not a schema object`);
  for (const [k, v] of schema) {
    if (!KEYWORDS.has(k) && !ANNOTATIONS.has(k)) throw new TypeError(`${where}: the keyword '${k}' is not known to the suite's schema check`);
    if (k === 'items' || (k === 'additionalProperties' && v instanceof Map)) checkKeywords(v, `${where}.${k}`);
    if (k === 'properties' && v instanceof Map) for (const [p, sub] of v) checkKeywords(sub, `${where}.properties.${p}`);
  }
}

/** jsonschema's type checker of the 2020-12 draft (an integral float is an integer; a bool is no number). */
function isType(v: PyValue, type: PyValue): boolean {
  switch (type) {
    case 'null':
      return v === null;
    case 'boolean':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return v instanceof Map;
    case 'number':
      return typeof v === 'number' || typeof v === 'bigint';
    case 'integer':
      return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v));
    default:
      throw new TypeError(`unknown type ${String(type)}`);
  }
}

const asList = (v: PyValue): PyValue[] => (Array.isArray(v) ? v : [v]);

/** Python's `a == b` of two JSON values (True == 1, 1 == 1.0, dicts without regard to order). */
function pyEquals(a: PyValue, b: PyValue): boolean {
  const num = (x: PyValue) => (typeof x === 'boolean' ? Number(x) : typeof x === 'bigint' || typeof x === 'number' ? x : undefined);
  const x = num(a);
  const y = num(b);
  if (x !== undefined || y !== undefined) {
    if (x === undefined || y === undefined) return false;
    // Python compares an int and a float by value, as == does a bigint and a number.
    return x == y;
  }
  if (a === null || typeof a === 'string') return a === b;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => pyEquals(v, b[i] as PyValue));
  if (a instanceof Map) return b instanceof Map && a.size === b.size && [...a].every(([k, v]) => b.has(k) && pyEquals(v, b.get(k) as PyValue));
  return false;
}

/** jsonschema's `enum`: `instance in enums`, except that True and False are not 1 and 0. */
function inEnum(v: PyValue, enums: PyValue[]): boolean {
  const zeroOrOne = pyEquals(v, 0n) || pyEquals(v, 1n);
  // unbool(): True and False equal only themselves; 0 and 1 (and 0.0, 1.0) no bool.
  if (zeroOrOne) return enums.some((e) => (typeof v === 'boolean' ? e === v : typeof e !== 'boolean' && pyEquals(v, e)));
  return enums.some((e) => pyEquals(v, e));
}

/** `re.search(pattern, s)` for the patterns of a schema: Python's `$` also matches before a final newline. */
const patterns = new Map<string, RegExp>();
function pySearch(pattern: string, s: string): boolean {
  let re = patterns.get(pattern);
  if (re === undefined) {
    if (/\\[AZzbBdDsSwW]|\(\?[^:=!]|\\[0-9]/.test(pattern)) throw new TypeError(`the pattern ${pattern} is not read alike by Python and JavaScript`);
    re = new RegExp(pattern.replace(/(?<!\\)\$/g, '(?=\\n?$)'));
    patterns.set(pattern, re);
  }
  return re.test(s);
}

/** jsonschema's `iter_errors`: every error of `instance` under `schema`, in its order (the schema's keywords in order). */
function* iterErrors(schema: Schema, instance: PyValue): Generator<SchemaError> {
  for (const [k, value] of schema) {
    for (const e of keywordErrors(k, value, schema, instance)) {
      yield 'validator' in e ? { ...e, schemaPath: [k, ...e.schemaPath] } : { message: e.message, validator: k, schema, instance, path: [], schemaPath: [k] };
    }
  }
}

type Raised = SchemaError | { message: string };

function* descend(schema: Schema, instance: PyValue, path: Index, schemaPath?: Index): Generator<SchemaError> {
  for (const e of iterErrors(schema, instance)) {
    yield { ...e, path: [path, ...e.path], schemaPath: schemaPath === undefined ? e.schemaPath : [schemaPath, ...e.schemaPath] };
  }
}

function* keywordErrors(k: string, value: PyValue, schema: Schema, instance: PyValue): Generator<Raised> {
  switch (k) {
    case 'type': {
      const types = asList(value);
      if (!types.some((t) => isType(instance, t))) yield { message: `${pyRepr(instance)} is not of type ${types.map((t) => pyStrRepr(t as string)).join(', ')}` };
      return;
    }
    case 'enum':
      if (!inEnum(instance, asList(value))) yield { message: `${pyRepr(instance)} is not one of ${pyRepr(value)}` };
      return;
    case 'maxLength':
      if (typeof instance === 'string' && pyLen(instance) > Number(value)) yield { message: `${pyRepr(instance)} is too long` };
      return;
    case 'minLength':
      if (typeof instance === 'string' && pyLen(instance) < Number(value)) yield { message: `${pyRepr(instance)} is too short` };
      return;
    case 'pattern':
      if (typeof instance === 'string' && !pySearch(value as string, instance)) yield { message: `${pyRepr(instance)} does not match ${pyRepr(value)}` };
      return;
    case 'items':
      if (Array.isArray(instance)) for (let i = 0; i < instance.length; i++) yield* descend(value as Schema, instance[i] as PyValue, i);
      return;
    case 'properties':
      if (instance instanceof Map) for (const [p, sub] of value as Schema) if (instance.has(p)) yield* descend(sub as Schema, instance.get(p) as PyValue, p, p);
      return;
    case 'required':
      if (instance instanceof Map) for (const p of value as string[]) if (!instance.has(p)) yield { message: `${pyStrRepr(p)} is a required property` };
      return;
    case 'additionalProperties': {
      if (!(instance instanceof Map)) return;
      const properties = schema.get('properties');
      const extras = [...instance.keys()].filter((p) => !(properties instanceof Map && properties.has(p)));
      if (value instanceof Map) {
        for (const extra of extras) yield* descend(value, instance.get(extra) as PyValue, extra);
      } else if (value === false && extras.length > 0) {
        const names = [...extras].sort(pyCompareStr).map(pyStrRepr).join(', ');
        yield { message: `Additional properties are not allowed (${names} ${extras.length === 1 ? 'was' : 'were'} unexpected)` };
      }
      return;
    }
    default:
      return;
  }
}

/** `ValidationError._matches_type()`: the failing instance is of its subschema's type. */
function matchesType(e: SchemaError): boolean {
  const type = e.schema.get('type');
  return type !== undefined && asList(type).some((t) => isType(e.instance, t));
}

/** jsonschema's `best_match` with its `relevance`: the shallowest error, one whose instance is not of its subschema's type first, the first of equals. */
export function bestMatch(errors: Iterable<SchemaError>): SchemaError | undefined {
  let best: SchemaError | undefined;
  let bestKey: [number, number] = [0, 0];
  for (const e of errors) {
    const key: [number, number] = [-e.path.length, matchesType(e) ? 0 : 1];
    if (best === undefined || key[0] > bestKey[0] || (key[0] === bestKey[0] && key[1] > bestKey[1])) {
      best = e;
      bestKey = key;
    }
  }
  return best;
}

/** jsonschema's `_utils.format_as_index`. */
const formatAsIndex = (container: string, indices: Index[]) =>
  indices.length === 0 ? container : `${container}[${indices.map((i) => (typeof i === 'number' ? String(i) : pyStrRepr(i))).join('][')}]`;

/** `textwrap.indent` by four spaces (lines Python's `strip()` leaves empty are left alone). */
const indent4 = (text: string) =>
  text
    .split('\n')
    .map((line) => (line.trim() === '' ? line : `    ${line}`))
    .join('\n');

/** jsonschema 4.10.3's `str(ValidationError)`. */
export function validationErrorText(e: SchemaError): string {
  return (
    `${e.message}\n\nFailed validating ${pyStrRepr(e.validator)} in ${formatAsIndex('schema', e.schemaPath.slice(0, -1))}:\n${indent4(pyPformat(e.schema, 72))}\n\n` +
    `On ${formatAsIndex('instance', e.path)}:\n${indent4(pyPformat(e.instance, 72))}`
  );
}

/** How deep a value nests (a scalar 0). */
function nesting(v: PyValue): number {
  let deepest = 0;
  const stack: [PyValue, number][] = [[v, 0]];
  while (stack.length > 0) {
    const [x, d] = stack.pop() as [PyValue, number];
    if (Array.isArray(x) || x instanceof Map) {
      deepest = Math.max(deepest, d + 1);
      for (const y of Array.isArray(x) ? x : x.values()) stack.push([y, d + 1]);
    }
  }
  return deepest;
}

/**
 * Past this nesting, Glance's `pprint` of the value may run out of Python's stack (its recursion
 * limit of 1000, less what the server's own calls take): Glance then answers a bare 500 where it
 * would show the value. The suite refuses such values with a 400 of its own.
 */
export const PRINTABLE_NESTING = 100;

/** A checker of image values against one image schema: {@link checkImageValue}'s answer, or null when the value is valid. */
export interface ImageValueCheck {
  (op: 'add' | 'replace', path: readonly string[], value: PyValue): GlanceError | null;
}

/**
 * The check Glance's deserializer makes of one add or replace (`_validate_change`, after the
 * read-only and reserved checks): Glance's 400 with its text, or null. `formats` are the disk and
 * container formats of the Glance in question (Glance's defaults when not given).
 */
export function imageValueCheck(formats: FormatLists = {}): ImageValueCheck {
  const schema = toPy(imageSchema(formats)) as Schema;
  checkKeywords(schema, 'image');
  const properties = schema.get('properties') as Schema;
  return (_op, path, value) => {
    const root = path[0] ?? '';
    let partial: Schema;
    if (path.length === 1) partial = new Map([[root, value]]);
    else if (properties.has(root) && (properties.get(root) as Schema).get('type') === 'array') partial = new Map([[root, [value]]]);
    else return null;
    const error = bestMatch(iterErrors(schema, partial));
    if (error === undefined) return null;
    if (Math.max(nesting(error.instance), nesting(error.schema)) > PRINTABLE_NESTING) return glanceFails('the value is nested too deeply to be shown');
    return glanceError(400, 'patch.schema', `Provided object does not match schema 'image': ${validationErrorText(error)}`);
  };
}

let defaultCheck: ImageValueCheck | undefined;

/** {@link imageValueCheck} for Glance's default formats. */
export function checkImageValue(op: 'add' | 'replace', path: readonly string[], value: PyValue): GlanceError | null {
  return (defaultCheck ??= imageValueCheck())(op, path, value);
}

/**
 * The location ops of a patch the guard judges, read and checked as Glance's deserializer reads
 * and checks it (`parseImagePatch` with {@link imageValueCheck}'s check, change by change): throws
 * Glance's answer to a patch it cannot read, and to one whose values its image schema refuses when
 * the patch has location ops (or cannot be read further: it is refused either way); a patch
 * without location ops is left to the service (none returned).
 */
export function readLocationPatch(body: Buffer, mediaType: string, check: ImageValueCheck = checkImageValue): PatchOp[] {
  return locationOps(readJudgedPatch(body, mediaType, check));
}

/**
 * {@link readLocationPatch}, with every op of the patch when it has location ops (the decision
 * follows Glance through the others too), and none when it has none.
 */
export function readJudgedPatch(body: Buffer, mediaType: string, check: ImageValueCheck = checkImageValue): PatchOp[] {
  let refused: GlanceError | undefined;
  const checkValue: ImageValueCheck = (op, path, value) => {
    const refusal = check(op, path, value);
    if (refusal) refused = refusal;
    return refusal;
  };
  let ops: PatchOp[];
  try {
    ops = parseImagePatch(body, mediaType, { checkValue });
  } catch (err) {
    if (refused === undefined || err !== refused) throw err;
    let all: PatchOp[];
    try {
      all = parseImagePatch(body, mediaType);
    } catch {
      throw err;
    }
    if (locationOps(all).length === 0) return [];
    throw err;
  }
  return locationOps(ops).length > 0 ? ops : [];
}
