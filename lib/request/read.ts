/**
 * The one reading of a request: what it asks of the image API (route, image id, version, method,
 * media type), decided once and shared by every middleware, the sidecar's shortcut, the race
 * registry and the metrics. Nothing else in the suite matches paths.
 *
 * The reading is the union of how the services behind the suite route a request:
 *
 * - Glance (eventlet, its version negotiation, paste's urlmap, Routes): the path is percent-decoded
 *   as a whole, any run of slashes counts as one, the version segment is `v2` or `v2.N`, or the
 *   version comes from `Accept: application/vnd.openstack.images-v2[.N]` on an unversioned path,
 *   and a `_method` query parameter overrides the method;
 * - Express and routers like it: literals compared without regard to case, a trailing slash
 *   allowed, the fragment and the scheme and host of an absolute target dropped, each segment
 *   decoded on its own.
 *
 * Where those readings agree, the request is read once for all of them. Where they cannot agree
 * (an encoded slash or NUL, a fragment, an absolute target, a method override that disagrees with
 * the method, a repeated Content-Type or Authorization), the reading says why in `ambiguous`, and
 * a request that could change something is refused rather than passed on unjudged.
 */
import type { IncomingMessage } from 'node:http';

/** What a request asks of the image API. */
export type Route =
  /** `GET /` or `/versions`: the version documents. */
  | 'versions'
  /** `/healthcheck`. */
  | 'healthcheck'
  /** `/v2/images`: the list, and creating an image. */
  | 'images'
  /** `/v2/images/{id}`: the image record (show, update, delete). */
  | 'image'
  /** `/v2/images/{id}/file`: image data. */
  | 'image-file'
  /** `/v2/images/{id}/stage`. */
  | 'image-stage'
  /** `/v2/images/{id}/import`. */
  | 'image-import'
  /** `/v2/images/{id}/locations` (Glance 2024.2, API v2.17). */
  | 'image-locations'
  /** Any other call under `/v2/images/{id}/` (members, tags, actions, tasks). */
  | 'image-other'
  /** `/v2/stores/{store}/{id}`: deleting an image's data from one store (a location). */
  | 'image-store'
  /** `/v2/schemas/...`. */
  | 'schemas'
  /** `/v2/metadefs/...`. */
  | 'metadefs'
  /** Anything else under `/v2/` (tasks, info, cache, ...). */
  | 'api-other'
  /** Not the image API at all (an unknown version, another path). */
  | 'other';

/** Routes under `/v2/images/{id}` that carry an image id. */
export const IMAGE_ROUTES: ReadonlySet<Route> = new Set(['image', 'image-file', 'image-stage', 'image-import', 'image-locations', 'image-other', 'image-store']);

export interface RequestReading {
  /** The method the service acts on: the request's, or the one its `_method` override names. */
  readonly method: string;
  readonly route: Route;
  /** The image id as the service reads it (decoded), on an image route; otherwise null. */
  readonly imageId: string | null;
  /** The segments after the version, decoded (`['schemas', 'image']`, `['metadefs', 'namespaces', ns]`). */
  readonly segments: readonly string[];
  /** The API version asked for (`v2`, `v2.1`, ...), or null. */
  readonly version: string | null;
  /**
   * The raw target of the image record this request names (`/v2.1/images/{id}` as the client spelt
   * it, without the query and what follows the id, with its trailing slash if it has one), on an
   * image route: where a lookup asks the service about the image, so that the service reads the
   * lookup as it reads the request.
   */
  readonly recordTarget: string | null;
  /**
   * The request's query without its `_method` parameters, raw ('' when none): a lookup at
   * {@link recordTarget} carries it, since a service may read the caller's identity there too.
   */
  readonly lookupQuery: string;
  /** Headers the lookup needs to be routed as the request is (the versioning `Accept`). */
  readonly routingHeaders: readonly [string, string][];
  /** Literals matched only without regard to case (Glance and case-sensitive routers would not route it). */
  readonly caseFolded: boolean;
  /** The path ends in a slash (strict routers and Glance would not route it). */
  readonly trailingSlash: boolean;
  /** Why the services behind the suite may read this request differently, or null. */
  readonly ambiguous: string | null;
  /** The media type of the body: lower-cased, without parameters; '' when none was sent. */
  readonly mediaType: string;
  /** The media type as sent, without parameters (webob's `content_type`, which Glance compares exactly). */
  readonly mediaTypeAsSent: string;
  /** Whether the request could change something: its method or any override is not GET, HEAD or OPTIONS. */
  readonly mayChange: boolean;
}

/** The versioning media type prefix of Glance's version negotiation. */
const VND = 'application/vnd.openstack.images-';
const VERSION = /^v2(?:\.\d+)?$/i;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Headers some frameworks (method-override, Rails, Symfony) take as the method of a POST. */
const METHOD_OVERRIDE_HEADERS = new Set(['x-http-method-override', 'x-http-method', 'x-method-override']);
/** Headers whose repetition leaves a request ambiguous: services keep the first, the last, or both. */
const SINGLE_HEADERS = new Set(['content-type', 'content-encoding', 'authorization', 'x-auth-token', 'x-storage-token', 'content-length', 'transfer-encoding', 'host']);
/** Media types of a form body, from which Routes takes a POST's `_method`. */
const FORM_TYPES = new Set(['application/x-www-form-urlencoded', 'multipart/form-data']);

const cache = new WeakMap<IncomingMessage, RequestReading>();

/** The reading of `req`, made once and kept for every middleware that asks. */
export function readRequest(req: IncomingMessage): RequestReading {
  let reading = cache.get(req);
  if (reading === undefined) {
    reading = readTarget(req.method ?? 'GET', req.url ?? '/', req.rawHeaders ?? flatHeaders(req.headers));
    cache.set(req, reading);
  }
  return reading;
}

/**
 * Read a request from its method, raw request target and raw headers (Node's flat
 * `[name, value, ...]` list). Pure.
 */
export function readTarget(method: string, target: string, rawHeaders: readonly string[]): RequestReading {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const spelt = new Map<string, string>();
  const accepts: string[] = [];
  let contentType = '';
  const overrides: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const lower = (rawHeaders[i] as string).toLowerCase();
    // eventlet reads `X_Auth_Token` as `X-Auth-Token` and joins them: two spellings are one header there.
    const name = lower.replace(/_/g, '-');
    const value = rawHeaders[i + 1] as string;
    const spelling = spelt.get(name);
    if (spelling !== undefined && spelling !== lower) problems.push(`the request spells the ${name} header two ways`);
    spelt.set(name, lower);
    if (SINGLE_HEADERS.has(name)) {
      const before = seen.get(name);
      if (before !== undefined && before !== value) problems.push(`the request has more than one ${name} header`);
      seen.set(name, value);
    }
    if (name === 'accept') accepts.push(value);
    else if (name === 'content-type' && contentType === '') contentType = value;
    else if (METHOD_OVERRIDE_HEADERS.has(name)) overrides.push(value);
  }
  const semi = contentType.indexOf(';');
  const mediaTypeAsSent = (semi === -1 ? contentType : contentType.slice(0, semi)).trim();
  const mediaType = mediaTypeAsSent.toLowerCase();
  if (method.toUpperCase() === 'POST' && FORM_TYPES.has(mediaType)) problems.push('a form body may name another method');
  // Some readers decode a body by its coding or charset (Express's body parsers do), others read its bytes.
  const coding = seen.get('content-encoding');
  if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') problems.push('the body has a content coding');
  // Every `charset=` anywhere in the header counts (parsers differ on quoted and repeated parameters).
  const charsets = [...contentType.matchAll(/charset\s*=\s*"?([^";\s,]*)/gi)].map((m) => (m[1] ?? '').toLowerCase());
  if (charsets.length > 1) problems.push('the body names its charset more than once');
  else if (charsets.length === 1 && charsets[0] !== 'utf-8' && charsets[0] !== 'utf8') problems.push('the body has a charset other than UTF-8');

  // The target: the query apart; an absolute target's scheme and host and a fragment dropped by
  // some routers, kept by Glance's server.
  const q = target.indexOf('?');
  let path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q + 1);
  if (!path.startsWith('/')) {
    problems.push('the request target is not a path');
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(path);
    path = m ? path.slice(m[0].length) || '/' : `/${path}`;
  }
  const hash = path.indexOf('#');
  if (hash !== -1) {
    problems.push('the request target has a fragment');
    path = path.slice(0, hash);
  }
  for (const value of queryValues(query, '_method')) overrides.push(value);

  // The method the service acts on.
  const upper = method.toUpperCase();
  let effective = upper;
  const named = new Set(overrides.map((o) => o.toUpperCase()).filter((o) => o !== ''));
  if (named.size > 1 || (named.size === 1 && !named.has(upper))) {
    problems.push('the request names another method than its own');
    const only = [...named][0];
    if (named.size === 1 && only !== undefined) effective = only;
  }
  const mayChange = !SAFE_METHODS.has(upper) || [...named].some((m) => !SAFE_METHODS.has(m));

  // Segments: each decoded on its own (Express); the whole path decoded, then split (Glance). An
  // encoded slash, backslash or NUL makes them differ.
  const raw = path.split('/');
  const segments: string[] = [];
  /** Where each segment ends in `path`, and its raw spelling. */
  const rawEnds: number[] = [];
  const rawParts: string[] = [];
  let offset = 0;
  for (const part of raw) {
    offset += part.length + 1;
    if (part === '') continue;
    const decoded = decodeSegment(part);
    if (decoded === null) problems.push('the path has an invalid percent-escape');
    else if (/[/\\\0]/.test(decoded) || part.includes('\\')) problems.push('the path has an encoded slash, a backslash or a NUL');
    else if (decoded === '.' || decoded === '..') problems.push('the path has a dot segment');
    segments.push(decoded ?? part);
    rawEnds.push(offset - 1);
    rawParts.push(part);
  }
  const trailingSlash = path.length > 1 && path.endsWith('/');
  let caseFolded = false;
  const is = (segment: string | undefined, literal: string): boolean => {
    if (segment === undefined || segment.toLowerCase() !== literal) return false;
    if (segment !== literal) caseFolded = true;
    return true;
  };

  // The version: in the path, or (on an unversioned path) in Accept.
  const versioning = acceptVersion(accepts);
  let version: string | null = null;
  let rest: string[];
  let restAt: number;
  const routingHeaders: [string, string][] = [];
  // Glance's version negotiation reads a versioning Accept whatever the path: a lookup carries it too.
  if (versioning !== null) for (const accept of accepts) routingHeaders.push(['Accept', accept]);
  const first = segments[0];
  if (first !== undefined && VERSION.test(first)) {
    version = first.toLowerCase();
    if (version !== first) caseFolded = true;
    rest = segments.slice(1);
    restAt = 1;
  } else if (versioning !== null && first !== 'versions') {
    version = versioning;
    rest = segments;
    restAt = 0;
  } else {
    rest = [];
    restAt = 0;
  }

  let route: Route = 'other';
  let imageId: string | null = null;
  let recordTarget: string | null = null;
  if (version === null) {
    if (segments.length === 0 || (segments.length === 1 && is(first, 'versions'))) route = 'versions';
    else if (segments.length === 1 && is(first, 'healthcheck')) route = 'healthcheck';
  } else if (is(rest[0], 'images')) {
    if (rest.length === 1) route = 'images';
    else {
      imageId = rest[1] as string;
      // As spelt, up to the id; with the request's trailing slash, which a strict service does not route.
      const end = rawEnds[restAt + 1] as number;
      recordTarget = `${path.slice(0, end)}${trailingSlash ? '/' : ''}`;
      if (rest.length === 2) route = 'image';
      else if (rest.length === 3 && is(rest[2], 'file')) route = 'image-file';
      else if (rest.length === 3 && is(rest[2], 'stage')) route = 'image-stage';
      else if (rest.length === 3 && is(rest[2], 'import')) route = 'image-import';
      else if (rest.length === 3 && is(rest[2], 'locations')) route = 'image-locations';
      else route = 'image-other';
    }
  } else if (is(rest[0], 'stores') && rest.length === 3) {
    // DELETE /v2/stores/{store}/{id}; the image record is at /v2/images/{id} in the same spelling.
    route = 'image-store';
    imageId = rest[2] as string;
    const idEnd = rawEnds[restAt + 2] as number;
    const idStart = idEnd - (rawParts[restAt + 2] as string).length;
    const versionEnd = restAt > 0 ? (rawEnds[0] as number) : 0;
    recordTarget = `${path.slice(0, versionEnd)}/images/${path.slice(idStart, idEnd)}${trailingSlash ? '/' : ''}`;
  } else if (is(rest[0], 'schemas')) route = 'schemas';
  else if (is(rest[0], 'metadefs')) route = 'metadefs';
  else route = 'api-other';

  return {
    method: effective,
    route,
    imageId,
    segments: rest,
    version,
    recordTarget,
    lookupQuery: withoutMethod(query),
    routingHeaders,
    caseFolded,
    trailingSlash,
    ambiguous: problems.length > 0 ? problems.join('; ') : null,
    mediaType,
    mediaTypeAsSent,
    mayChange,
  };
}

/**
 * The version an `Accept` header selects, as Glance's version negotiation reads `str(req.accept)`:
 * webob rebuilds the header without empty items and `q=1`, and Glance takes what follows the
 * versioning media type's prefix. Read here from the first item, whatever its case or parameters
 * (a reading that may route more than Glance does, never less).
 */
function acceptVersion(accepts: readonly string[]): string | null {
  if (accepts.length === 0) return null;
  const first = accepts
    .join(',')
    .split(',')
    .map((item) => item.split(';')[0]?.trim() ?? '')
    .find((item) => item !== '');
  if (first === undefined || !first.toLowerCase().startsWith(VND)) return null;
  const version = first.slice(VND.length);
  return VERSION.test(version) ? version.toLowerCase() : null;
}

/** Node's header object as a flat list, for a request made without raw headers. */
function flatHeaders(headers: IncomingMessage['headers']): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.push(name, v);
  }
  return out;
}

/** A path segment percent-decoded as UTF-8, or null when an escape is not valid. */
function decodeSegment(part: string): string | null {
  if (!part.includes('%')) return part;
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}

/**
 * Every value of query parameter `name`, as `&`-separated pairs are read by webob, Node and qs
 * (`+` as a space, escapes decoded; a name spelt with escapes counts too).
 */
function queryValues(query: string, name: string): string[] {
  if (query === '' || (!query.includes('_') && !query.includes('%'))) return [];
  const values: string[] = [];
  // webob splits on `;` as well as `&`.
  for (const pair of query.split(/[&;]/)) {
    const eq = pair.indexOf('=');
    const key = decodeQuery(eq === -1 ? pair : pair.slice(0, eq));
    if (key === name || key.toLowerCase() === name) values.push(eq === -1 ? '' : decodeQuery(pair.slice(eq + 1)));
  }
  return values;
}

/** `query` as it came, or, when it has `_method` parameters, without them. */
function withoutMethod(query: string): string {
  const pairs = query.split(/[&;]/);
  const kept = pairs.filter((pair) => pair !== '' && decodeQuery(pair.split('=')[0] ?? '').toLowerCase() !== '_method');
  return kept.length === pairs.length ? query : kept.join('&');
}

function decodeQuery(s: string): string {
  const plus = s.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus;
  }
}
