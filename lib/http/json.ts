/**
 * JSON as Glance (Python's `json.dumps`) writes it: `", "` and `": "` separators, non-ASCII
 * escaped (images, errors) or not (`ascii` false: metadefs). A client that compares bytes sees the
 * demo and Glance alike.
 */
export function pythonJson(value: unknown, ascii = true): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return ascii ? JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (Array.isArray(value)) return `[${value.map((v) => pythonJson(v, ascii)).join(', ')}]`;
      return `{${Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${pythonJson(k, ascii)}: ${pythonJson(v, ascii)}`)
        .join(', ')}}`;
    default:
      return 'null';
  }
}

/** Glance's timestamp form: `2026-11-25T06:51:37Z`. */
export function glanceTimestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
