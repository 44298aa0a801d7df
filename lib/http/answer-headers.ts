/**
 * The headers of an answer written as a flat list by writeHead(status, [name, value, ...]) with
 * nothing set before: Node then sends them as they are, its cheapest path, and keeps no copy, so
 * getHeader cannot see them. Whoever writes an answer so notes the list here, for the access log.
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
  if (flat === undefined) return undefined;
  for (let i = 0; i < flat.length; i += 2) if ((flat[i] as string).toLowerCase() === name) return flat[i + 1];
  return undefined;
}
