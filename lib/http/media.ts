import type { IncomingMessage } from 'node:http';

/**
 * The request's media type without parameters (`charset` and the like), as webob's
 * `request.content_type` gives it: not lower-cased, since Glance compares it exactly.
 */
export function mediaType(req: IncomingMessage): string {
  const value = req.headers['content-type'];
  if (!value) return '';
  const semi = value.indexOf(';');
  return (semi === -1 ? value : value.slice(0, semi)).trim();
}

/** The path of `req.url` without its query string. */
export function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** A request header as one string (repeated headers joined as HTTP allows), or undefined. */
export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}
