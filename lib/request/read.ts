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
  const draft = newDraft();
  readHeaders(rawHeaders, draft);
  const semi = draft.contentType.indexOf(';');
  const mediaTypeAsSent = (semi === -1 ? draft.contentType : draft.contentType.slice(0, semi)).trim();
  const mediaType = mediaTypeAsSent.toLowerCase();
  judgeBody(method, mediaType, draft);

  const q = target.indexOf('?');
  const query = q === -1 ? '' : target.slice(q + 1);
  draft.path = targetPath(q === -1 ? target : target.slice(0, q), draft.problems);
  for (const value of queryValues(query, '_method')) draft.overrides.push(value);

  // The method the service acts on.
  const upper = method.toUpperCase();
  const named = new Set(draft.overrides.map((o) => o.toUpperCase()).filter((o) => o !== ''));
  const effective = effectiveMethod(upper, named, draft.problems);
  const mayChange = !SAFE_METHODS.has(upper) || [...named].some((m) => !SAFE_METHODS.has(m));

  readSegments(draft);
  const trailingSlash = draft.path.length > 1 && draft.path.endsWith('/');
  const versioning = acceptVersion(draft.accepts);
  const routingHeaders = routingHeadersOf(versioning, draft.accepts);
  readVersion(draft, versioning);
  readRoute(draft, trailingSlash);

  return {
    method: effective,
    route: draft.route,
    imageId: draft.imageId,
    segments: draft.rest,
    version: draft.version,
    recordTarget: draft.recordTarget,
    lookupQuery: withoutMethod(query),
    routingHeaders,
    caseFolded: draft.caseFolded,
    trailingSlash,
    ambiguous: draft.problems.length > 0 ? draft.problems.join('; ') : null,
    mediaType,
    mediaTypeAsSent,
    mayChange,
  };
}

/** A reading in the making: what the steps of {@link readTarget} find, each in turn. */
interface Draft {
  /** Why the services behind the suite may read the request differently, in the order found. */
  readonly problems: string[];
  /** The value of each header of {@link SINGLE_HEADERS}, as last sent. */
  readonly seen: Map<string, string>;
  /** The values of every `Accept` header. */
  readonly accepts: string[];
  /** The methods the request names besides its own: override headers, then `_method` parameters. */
  readonly overrides: string[];
  /** The first `Content-Type` header, raw ('' when none). */
  contentType: string;
  /** The path of the target: without its query, the scheme and host of an absolute target, a fragment. */
  path: string;
  /** The non-empty segments of {@link path}, decoded (each as it came when it cannot be). */
  readonly segments: string[];
  /** Where each segment ends in {@link path}. */
  readonly rawEnds: number[];
  /** Each segment's raw spelling. */
  readonly rawParts: string[];
  /** A literal was matched only without regard to case. */
  caseFolded: boolean;
  /** The API version asked for, or null. */
  version: string | null;
  /** The segments after the version. */
  rest: string[];
  /** Where {@link rest} starts in {@link segments}. */
  restAt: number;
  route: Route;
  imageId: string | null;
  recordTarget: string | null;
}

/** The placeholder of {@link Draft.rest} until {@link readVersion} sets it. */
const NOT_YET: string[] = [];

/** A reading not yet begun. */
function newDraft(): Draft {
  return {
    problems: [],
    seen: new Map(),
    accepts: [],
    overrides: [],
    contentType: '',
    path: '',
    segments: [],
    rawEnds: [],
    rawParts: [],
    caseFolded: false,
    version: null,
    rest: NOT_YET,
    restAt: 0,
    route: 'other',
    imageId: null,
    recordTarget: null,
  };
}

/**
 * The headers: a header spelt two ways, or a single header sent with two values, is a problem;
 * the single headers' values, the `Accept` values, the first `Content-Type` and the method
 * override headers are kept in `draft`.
 */
function readHeaders(rawHeaders: readonly string[], draft: Draft): void {
  const { problems, seen, accepts, overrides } = draft;
  const spelt = new Map<string, string>();
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
    else if (name === 'content-type' && draft.contentType === '') draft.contentType = value;
    else if (METHOD_OVERRIDE_HEADERS.has(name)) overrides.push(value);
  }
}

/**
 * The body: a problem when readers may read it differently (a form that may name another method,
 * a content coding, a charset other than UTF-8 or named more than once).
 */
function judgeBody(method: string, mediaType: string, draft: Draft): void {
  const { problems, contentType } = draft;
  if (method.toUpperCase() === 'POST' && FORM_TYPES.has(mediaType)) problems.push('a form body may name another method');
  // Some readers decode a body by its coding or charset (Express's body parsers do), others read its bytes.
  const coding = draft.seen.get('content-encoding');
  if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') problems.push('the body has a content coding');
  // Every `charset=` anywhere in the header counts (parsers differ on quoted and repeated parameters).
  const charsets = [...contentType.matchAll(/charset\s*=\s*"?([^";\s,]*)/gi)].map((m) => (m[1] ?? '').toLowerCase());
  if (charsets.length > 1) problems.push('the body names its charset more than once');
  else if (charsets.length === 1 && charsets[0] !== 'utf-8' && charsets[0] !== 'utf8') problems.push('the body has a charset other than UTF-8');
}

/**
 * The path of a target without its query: an absolute target's scheme and host and a fragment
 * dropped, as some routers drop them (Glance's server keeps them, hence a problem each).
 */
function targetPath(beforeQuery: string, problems: string[]): string {
  let path = beforeQuery;
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
  return path;
}

/**
 * The method the service acts on: the request's (`upper`), or the one method its overrides name
 * (`named`); overrides that name another method, or several, are a problem.
 */
function effectiveMethod(upper: string, named: ReadonlySet<string>, problems: string[]): string {
  let effective = upper;
  if (named.size > 1 || (named.size === 1 && !named.has(upper))) {
    problems.push('the request names another method than its own');
    const only = [...named][0];
    if (named.size === 1 && only !== undefined) effective = only;
  }
  return effective;
}

/**
 * The segments of the path: each decoded on its own (Express); the whole path decoded, then split
 * (Glance). An encoded slash, backslash or NUL makes them differ, as does a dot segment or an
 * invalid escape: a problem each.
 */
function readSegments(draft: Draft): void {
  const { path, problems, segments, rawEnds, rawParts } = draft;
  let offset = 0;
  for (const part of path.split('/')) {
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
}

/** The version: in the path, or (on an unversioned path other than `versions`) the one `Accept` selects. */
function readVersion(draft: Draft, versioning: string | null): void {
  const { segments } = draft;
  const first = segments[0];
  if (first !== undefined && VERSION.test(first)) {
    draft.version = first.toLowerCase();
    if (draft.version !== first) draft.caseFolded = true;
    draft.rest = segments.slice(1);
    draft.restAt = 1;
  } else if (versioning !== null && first !== 'versions') {
    draft.version = versioning;
    draft.rest = segments;
    draft.restAt = 0;
  } else {
    draft.rest = [];
    draft.restAt = 0;
  }
}

/**
 * The headers a lookup needs to be routed as the request is: Glance's version negotiation reads a
 * versioning Accept whatever the path, so a lookup carries it too.
 */
function routingHeadersOf(versioning: string | null, accepts: readonly string[]): [string, string][] {
  const routingHeaders: [string, string][] = [];
  if (versioning !== null) for (const accept of accepts) routingHeaders.push(['Accept', accept]);
  return routingHeaders;
}

/** Whether `segment` is `literal`, whatever its case (noted in `draft` when the case differs). */
function is(draft: Draft, segment: string | undefined, literal: string): boolean {
  if (segment === undefined || segment.toLowerCase() !== literal) return false;
  if (segment !== literal) draft.caseFolded = true;
  return true;
}

/** The route, from the version and the segments after it. */
function readRoute(draft: Draft, trailingSlash: boolean): void {
  const { segments, rest } = draft;
  if (draft.version === null) {
    const first = segments[0];
    if (segments.length === 0 || (segments.length === 1 && is(draft, first, 'versions'))) draft.route = 'versions';
    else if (segments.length === 1 && is(draft, first, 'healthcheck')) draft.route = 'healthcheck';
  } else if (is(draft, rest[0], 'images')) readImageRoute(draft, trailingSlash);
  else if (is(draft, rest[0], 'stores') && rest.length === 3) readStoreRoute(draft, trailingSlash);
  else if (is(draft, rest[0], 'schemas')) draft.route = 'schemas';
  else if (is(draft, rest[0], 'metadefs')) draft.route = 'metadefs';
  else draft.route = 'api-other';
}

/** `/images` and what is under `/images/{id}`: the route, the image id and the record's target. */
function readImageRoute(draft: Draft, trailingSlash: boolean): void {
  const { rest } = draft;
  if (rest.length === 1) {
    draft.route = 'images';
    return;
  }
  draft.imageId = rest[1] as string;
  // As spelt, up to the id; with the request's trailing slash, which a strict service does not route.
  const end = draft.rawEnds[draft.restAt + 1] as number;
  draft.recordTarget = `${draft.path.slice(0, end)}${trailingSlash ? '/' : ''}`;
  if (rest.length === 2) draft.route = 'image';
  else if (rest.length === 3 && is(draft, rest[2], 'file')) draft.route = 'image-file';
  else if (rest.length === 3 && is(draft, rest[2], 'stage')) draft.route = 'image-stage';
  else if (rest.length === 3 && is(draft, rest[2], 'import')) draft.route = 'image-import';
  else if (rest.length === 3 && is(draft, rest[2], 'locations')) draft.route = 'image-locations';
  else draft.route = 'image-other';
}

/** `/stores/{store}/{id}` (DELETE: removing a location); the image record is at `/images/{id}` in the same spelling. */
function readStoreRoute(draft: Draft, trailingSlash: boolean): void {
  const { rest, restAt, rawEnds, path } = draft;
  draft.route = 'image-store';
  draft.imageId = rest[2] as string;
  const idEnd = rawEnds[restAt + 2] as number;
  const idStart = idEnd - (draft.rawParts[restAt + 2] as string).length;
  const versionEnd = restAt > 0 ? (rawEnds[0] as number) : 0;
  draft.recordTarget = `${path.slice(0, versionEnd)}/images/${path.slice(idStart, idEnd)}${trailingSlash ? '/' : ''}`;
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
