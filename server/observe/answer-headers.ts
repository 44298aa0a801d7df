/**
 * Headers as flat [name, value, ...] lists. An answer written by writeHead(status, list) with
 * nothing set before goes out on Node's cheapest path, and Node keeps no copy, so getHeader cannot
 * see them: whoever writes an answer so notes the list here, for the access log.
 */
import type { ServerResponse } from 'node:http';

const FLAT = Symbol('glance-edge.flatHeaders');

type Noted = ServerResponse & { [FLAT]?: readonly string[] };

/** Note that `res` was written with the flat header list `headers`. */
export function noteFlatHeaders(res: ServerResponse, headers: readonly string[]): void {
  (res as Noted)[FLAT] = headers;
}

/** The value of the header `name` (lower-case) on the answer: set with setHeader, or in a noted flat list. */
export function answerHeader(res: ServerResponse, name: string): string | undefined {
  const value = res.getHeader(name);
  if (value !== undefined) return Array.isArray(value) ? value.join(', ') : String(value);
  const flat = (res as Noted)[FLAT];
  return flat === undefined ? undefined : flatHeader(flat, name);
}

/**
 * The values of the header `name` (lower-case) in a flat [name, value, ...] list (a message's
 * rawHeaders, or headers written so), joined with commas; undefined without one. Reading a
 * message's rawHeaders so spares building its `headers` object, which an answer passed through
 * otherwise never needs.
 */
export function flatHeader(flat: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < flat.length; i += 2) {
    const key = flat[i] as string;
    if (key.length === name.length && key.toLowerCase() === name) value = value === undefined ? (flat[i + 1] as string) : `${value}, ${flat[i + 1] as string}`;
  }
  return value;
}
