/**
 * Glance's answer to an image whose `disk_format` or `container_format` is not in the configured
 * lists: jsonschema's message about the image schema, word for word. Pure.
 */
import { glanceError, type GlanceError } from '../errors';

export type FormatField = 'disk_format' | 'container_format';

const DESCRIPTIONS: Readonly<Record<FormatField, string>> = {
  disk_format: 'Format of the disk',
  container_format: 'Format of the container',
};

/** Python's repr() of the JSON values these messages show. */
export function pyRepr(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(value);
  if (typeof value === 'string') {
    const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
    const body = value
      .replace(/\\/g, '\\\\')
      .replace(/\n/g, '\\n')
      .replace(/\r/g, '\\r')
      .replace(/\t/g, '\\t');
    return quote + (quote === "'" ? body.replace(/'/g, "\\'") : body) + quote;
  }
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
  const entries = Object.entries(value as Record<string, unknown>);
  return `{${entries.map(([k, v]) => `${pyRepr(k)}: ${pyRepr(v)}`).join(', ')}}`;
}

/** Python 3's pprint.pformat(value, width=72) for dicts, lists and scalars (dict keys sorted). */
export function pformat(value: unknown, indent = 0, allowance = 0, width = 72): string {
  const rep = pyRepr(value);
  if (rep.length <= width - indent - allowance) return rep;
  if (Array.isArray(value)) {
    const inner = indent + 1;
    const items = value.map((v, i) => pformat(v, inner, i === value.length - 1 ? allowance + 1 : 1, width));
    return `[${items.join(`,\n${' '.repeat(inner)}`)}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const inner = indent + 1;
    const keys = Object.keys(value).sort();
    const items = keys.map((k, i) => {
      const key = pyRepr(k);
      return `${key}: ${pformat((value as Record<string, unknown>)[k], inner + key.length + 2, i === keys.length - 1 ? allowance + 1 : 1, width)}`;
    });
    return `{${items.join(`,\n${' '.repeat(inner)}`)}}`;
  }
  return rep;
}

const indented = (text: string) =>
  text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');

/** The 400 Glance answers when `value` is not one of `allowed` for `field`. */
export function formatError(field: FormatField, value: unknown, allowed: readonly string[]): GlanceError {
  const values = [null, ...allowed];
  const schema = { description: DESCRIPTIONS[field], enum: values, type: ['null', 'string'] };
  // jsonschema reports the type first when the value is neither null nor a string.
  const typed = value === null || typeof value === 'string';
  const problem = typed ? `is not one of ${pyRepr(values)}` : "is not of type 'null', 'string'";
  const message =
    `Provided object does not match schema 'image': ${pyRepr(value)} ${problem}\n\n` +
    `Failed validating '${typed ? 'enum' : 'type'}' in schema['properties']['${field}']:\n${indented(pformat(schema))}\n\n` +
    `On instance['${field}']:\n${indented(pformat(value))}`;
  return glanceError(400, 'image.format', message);
}

/** Whether `value` is allowed for a format field with this list (null always is; case matters). */
export function formatAllowed(value: unknown, allowed: readonly string[]): boolean {
  return value === null || (typeof value === 'string' && allowed.includes(value));
}
