/**
 * What Glance 25's WSGI pipeline answers before and after its v2 router, for the embedded image
 * service: the health check (oslo.middleware's), version negotiation (which versions route to the
 * v2 API, which get the 300 version list, the 302 of `/v2`) and the 405 of a known path asked with
 * a method its routes do not take (Routes' reject resource, with `Allow`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { escapeHtml, negotiateErrorForm } from '../../lib/errors';
import { pythonJson } from '../../lib/http/json';
import { lingerBeforeClosing } from '../../lib/http/linger';

/** The versions Glance 25 routes to the v2 API with this site's options (no image cache, one store). */
export const ROUTED_VERSIONS: ReadonlySet<string> = new Set(['v2', 'v2.0', 'v2.1', 'v2.2', 'v2.3', 'v2.4', 'v2.5', 'v2.6', 'v2.7', 'v2.9', 'v2.15']);

/** Glance 25's version list (the API version was not bumped for ranges). */
const VERSIONS = ['v2.15', 'v2.9', 'v2.7', 'v2.6', 'v2.5', 'v2.4', 'v2.3', 'v2.2', 'v2.1', 'v2.0'];

/** The media type prefix of version negotiation by `Accept`. */
const VND = 'application/vnd.openstack.images-';

/** Marks a request whose version has been negotiated, so that a second pass leaves it alone. */
const NEGOTIATED = Symbol('glance-edge.demo.negotiated');

const hostUrl = (req: Request) => `${req.protocol}://${req.get('host') ?? '127.0.0.1'}`;

/** Glance's version document, its links naming the host the request named. */
export function versionsDocument(req: Request): unknown {
  const href = `${hostUrl(req)}/v2/`;
  return { versions: VERSIONS.map((id, i) => ({ id, status: i === 0 ? 'CURRENT' : 'SUPPORTED', links: [{ rel: 'self', href }] })) };
}

/** The version list, as Glance's versions app sends it: no request id (it answers before the API). */
function sendVersions(req: Request, res: Response, status: number): void {
  const body = pythonJson(versionsDocument(req));
  res.removeHeader('X-Openstack-Request-Id');
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Glance's version negotiation, for any method: `/versions[/...]` is 200 and the list; the version
 * comes from `Accept: application/vnd.openstack.images-vX` or else from the first path segment; a
 * version Glance routes makes the path `/v2...` (exactly `/v2`: 302 to `/v2/`), any other (none,
 * `v1`, `v3`, `v2.16`, `V2`, `images`) is 300 and the list.
 */
export function negotiateVersion(req: Request, res: Response, next: NextFunction): void {
  const marked = req as unknown as Record<symbol, boolean>;
  if (marked[NEGOTIATED]) return next();
  const q = req.url.indexOf('?');
  const path = q === -1 ? req.url : req.url.slice(0, q);
  const query = q === -1 ? '' : req.url.slice(q);
  const trimmed = path.replace(/^\/+/, '');
  const slash = trimmed.indexOf('/');
  const first = slash === -1 ? trimmed : trimmed.slice(0, slash);
  if (first === 'versions') return sendVersions(req, res, 200);
  const accept = req.headers.accept ?? '';
  let version: string;
  let rest: string;
  if (accept.startsWith(VND)) {
    version = accept.slice(VND.length);
    rest = path;
  } else {
    version = first;
    rest = slash === -1 ? '' : trimmed.slice(slash);
  }
  if (!ROUTED_VERSIONS.has(version)) return sendVersions(req, res, 300);
  if (rest === '') {
    // paste's urlmap: the API's root without its slash.
    res.writeHead(302, { 'Content-Type': 'text/plain; charset=utf8', Location: `${hostUrl(req)}/v2/`, 'Content-Length': '0' });
    res.end();
    return;
  }
  marked[NEGOTIATED] = true;
  req.url = `/v2${rest}${query}`;
  next();
}

const HEALTH_HTML =
  '<HTML>\n<HEAD><TITLE>Healthcheck Status</TITLE></HEAD>\n<BODY>\n\n<H2>Result of 1 checks:</H2>\n' +
  '<TABLE bgcolor="#ffffff" border="1">\n<TBODY>\n<TR>\n\n<TH>\nReason\n</TH>\n</TR>\n<TR>\n\n    <TD>OK</TD>\n\n</TR>\n</TBODY>\n</TABLE>\n<HR></HR>\n\n</BODY>\n</HTML>';
const HEALTH_JSON = '{\n    "detailed": false,\n    "reasons": [\n        "OK"\n    ]\n}';
const HEALTH_FORMS: readonly (readonly [string, string])[] = [
  ['text/plain', 'OK'],
  ['text/html', HEALTH_HTML],
  ['application/json', HEALTH_JSON],
];

/** webob's `acceptable_offers`: the offers by quality (ties in offer order); an unreadable header accepts all. */
function acceptableOffers(accept: string | undefined, offers: readonly string[]): string[] {
  if (accept === undefined) return [...offers];
  const ranges: { type: string; sub: string; q: number }[] = [];
  for (const part of accept.split(',')) {
    if (part.trim() === '') continue;
    const [range = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const m = /^([!#$%&'*+.^_`|~0-9a-z-]+)\/([!#$%&'*+.^_`|~0-9a-z-]+)$/.exec(range);
    if (!m) return [...offers];
    let q = 1;
    for (const p of params) {
      const [k, v = ''] = p.split('=').map((s) => s.trim());
      if (k === 'q') {
        if (!/^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/.test(v)) return [...offers];
        q = Number(v);
      }
    }
    ranges.push({ type: m[1] as string, sub: m[2] as string, q });
  }
  const scored = offers.map((offer, i) => {
    const [type, sub] = offer.split('/');
    let best = -1;
    let q = 0;
    for (const r of ranges) {
      const spec = r.type === type && r.sub === sub ? 2 : r.type === type && r.sub === '*' ? 1 : r.type === '*' && r.sub === '*' ? 0 : -1;
      if (spec > best) [best, q] = [spec, r.q];
    }
    return { offer, q: best === -1 ? 0 : q, i };
  });
  return scored
    .filter((s) => s.q > 0)
    .sort((a, b) => b.q - a.q || a.i - b.i)
    .map((s) => s.offer);
}

/** `/v2/images/{id}/file` spelt as the router matches it with nothing to rewrite or decode. */
const DATA_PATH = /^\/v2\/images\/([^/?#%]+)\/file(?:\?|$)/;

/**
 * The image id of a download the service's router would route to `GET /v2/images/:id/file` as
 * it is, or null: GET or HEAD, the version given by the path (no `Accept` version, which
 * negotiateVersion would read first), the path exactly so (any other spelling, `/v2.1/...`,
 * `//`, an encoded character, an absolute URL, goes through the router and negotiation).
 */
export function plainDownloadId(req: IncomingMessage): string | null {
  if (req.method !== 'GET' && req.method !== 'HEAD') return null;
  if ((req.headers.accept ?? '').startsWith(VND)) return null;
  const m = DATA_PATH.exec(req.url ?? '');
  return m ? (m[1] as string) : null;
}

/**
 * `/healthcheck`, any method, as oslo.middleware's healthcheck answers it in front of Glance:
 * `OK` in text, HTML or JSON by `Accept`; a HEAD gets 204. No request id: it answers before the API.
 */
export function healthcheck(req: Request, res: Response, next: NextFunction): void {
  if (req.path !== '/healthcheck') return next();
  res.removeHeader('X-Openstack-Request-Id');
  if (req.method === 'HEAD') {
    res.writeHead(204, { 'Content-Length': '0' });
    res.end();
    return;
  }
  const type = acceptableOffers(req.headers.accept, ['text/plain', 'text/html', 'application/json'])[0] ?? 'text/plain';
  const body = (HEALTH_FORMS.find(([t]) => t === type) ?? HEALTH_FORMS[0])?.[1] ?? 'OK';
  res.writeHead(200, { 'Content-Type': type === 'application/json' ? type : `${type}; charset=UTF-8`, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Glance 25's v2 routes (as Routes matches them: `{x}` is one segment) and the methods each takes. */
const GLANCE_ROUTES: readonly (readonly [RegExp, string])[] = [
  ...['image', 'images', 'member', 'members', 'task', 'tasks'].map((s) => [new RegExp(`^/schemas/${s}$`), 'GET'] as const),
  ...['namespace', 'namespaces', 'resource_type', 'resource_types', 'property', 'properties', 'object', 'objects', 'tag', 'tags'].map(
    (s) => [new RegExp(`^/schemas/metadefs/${s}$`), 'GET'] as const,
  ),
  [/^\/metadefs\/resource_types$/, 'GET'],
  [/^\/metadefs\/namespaces\/[^/]+\/resource_types$/, 'GET, POST'],
  [/^\/metadefs\/namespaces\/[^/]+\/resource_types\/[^/]+$/, 'DELETE'],
  [/^\/metadefs\/namespaces$/, 'GET, POST'],
  [/^\/metadefs\/namespaces\/[^/]+$/, 'GET, PUT, DELETE'],
  [/^\/metadefs\/namespaces\/[^/]+\/(properties|objects|tags)$/, 'GET, POST, DELETE'],
  [/^\/metadefs\/namespaces\/[^/]+\/(properties|objects)\/[^/]+$/, 'GET, PUT, DELETE'],
  [/^\/metadefs\/namespaces\/[^/]+\/tags\/[^/]+$/, 'GET, POST, PUT, DELETE'],
  [/^\/images$/, 'GET, POST'],
  [/^\/images\/[^/]+$/, 'GET, PATCH, DELETE'],
  [/^\/images\/[^/]+\/import$/, 'POST'],
  [/^\/stores\/[^/]+\/[^/]+$/, 'DELETE'],
  [/^\/images\/[^/]+\/actions\/(deactivate|reactivate)$/, 'POST'],
  [/^\/images\/[^/]+\/file$/, 'GET, PUT'],
  [/^\/images\/[^/]+\/stage$/, 'PUT'],
  [/^\/images\/[^/]+\/tags\/[^/]+$/, 'PUT, DELETE'],
  [/^\/images\/[^/]+\/members$/, 'GET, POST'],
  [/^\/images\/[^/]+\/members\/[^/]+$/, 'GET, PUT, DELETE'],
  [/^\/tasks$/, 'GET, POST'],
  [/^\/tasks\/[^/]+$/, 'GET, DELETE'],
  [/^\/info\/(import|stores|stores\/detail)$/, 'GET'],
  [/^\/cache$/, 'GET, DELETE'],
  [/^\/cache\/[^/]+$/, 'DELETE, PUT'],
];

/** The methods Glance's route for `path` (under `/v2`) takes, or null when it has none there. */
export function allowedMethods(path: string): string | null {
  if (!path.startsWith('/v2/')) return null;
  const rest = path.slice(3);
  for (const [pattern, allow] of GLANCE_ROUTES) if (pattern.test(rest)) return allow;
  return null;
}

/**
 * A path Glance routes, asked with a method it does not take there: 405 with `Allow` and webob's
 * text (its own template, not the stock one: `The method X is not allowed for this resource. `), in
 * the form `Accept` chooses. A HEAD gets the headers only, as `text/html`.
 */
export function methodNotAllowed(req: Request, res: Response, next: NextFunction): void {
  const allow = allowedMethods(req.path);
  if (allow === null || allow.split(', ').includes(req.method)) return next();
  sendMethodNotAllowed(req, res, allow);
}

function sendMethodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
  sendWebobError(req, res, 405, 'Method Not Allowed', (method) => `The method ${method} is not allowed for this resource. <br /><br />\n`, req.method ?? '', { Allow: allow });
}

/** webob's `strip_tags`, of its plain-text form. */
const stripTags = (s: string) =>
  s
    .replace(/\n/g, ' ')
    .replace(/\r/g, '')
    .replace(/<br.*?>/gis, '\n')
    .replace(/<!--|-->/g, '')
    .replace(/<.*?>/gs, '');

/**
 * An error of webob's own template for its status (405, 415: not the stock sentence and detail),
 * `template` given the request's `value` (escaped in the HTML form, as webob escapes it), in the
 * form `Accept` chooses; a HEAD gets the headers only, as `text/html`. A request whose body has not
 * been read is answered and the connection closed, as for every error of the suite.
 */
export function sendWebobError(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  title: string,
  template: (value: string) => string,
  value: string,
  headers: Record<string, string> = {},
): void {
  const line = `${status} ${title}`;
  let type = 'text/html; charset=UTF-8';
  let body = '';
  if (req.method !== 'HEAD') {
    switch (negotiateErrorForm(req.headers.accept)) {
      case 'json':
        type = 'application/json';
        body = `{"message": ${pythonJson(template(value))}, "code": ${pythonJson(line)}, "title": ${pythonJson(title)}}`;
        break;
      case 'html':
        body = `<html>\n <head>\n  <title>${line}</title>\n </head>\n <body>\n  <h1>${line}</h1>\n  ${template(escapeHtml(value))}\n </body>\n</html>`;
        break;
      default:
        type = 'text/plain; charset=UTF-8';
        body = `${line}\n\n${stripTags(template(value))}`;
    }
  }
  // (A request without a body may not be `complete` yet when it is answered at once: it keeps its connection.)
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (hasBody && !req.complete) {
    res.setHeader('Connection', 'close');
    lingerBeforeClosing(req);
  }
  res.statusCode = status;
  res.statusMessage = title;
  for (const [name, v] of Object.entries(headers)) res.setHeader(name, v);
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
