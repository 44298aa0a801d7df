/**
 * BEHAVIOUR.md §5: readTarget reads a request as Glance reads it, checked against Glance's own
 * code (test/helpers/glance_reading.py: eventlet.wsgi, Glance's version negotiation, paste's
 * urlmap and the v2 Routes mapper with its `_method` override, under Debian's python3-glance 25.1).
 *
 * The rule: whenever Glance routes a request to a controller, readTarget either says the request is
 * `ambiguous` (and `mayChange` when the method Glance acts with is not GET, HEAD or OPTIONS), or
 * reads the same effective method, the same route, and on an image route the same decoded image
 * id. readTarget may route more than Glance (a lenient reading), never less. On routes without an
 * image the same holds for the route. Cases named "disagreement" are requests readTarget reads
 * otherwise than Glance today; they fail until lib/request/read.ts reads them as Glance does.
 *
 * The property draws requests from a grammar biased to where readings part: version segments
 * (v2, v2.N, V2, v3, 2, escaped), slash runs and dot segments, escapes of any character (a slash,
 * a percent sign, NUL, UTF-8), literals in other cases, trailing slashes, fragments, queries with
 * `_method` spelt, escaped, repeated and separated by `&` or `;`, and versioning Accept headers
 * (blanks, case, lists, parameters, repeated). It keeps one example of each kind of disagreement
 * and fails with all of them.
 *
 *   SEED  fast-check seed of the property test (default: test/helpers/seed.ts; printed)
 */
import fc from 'fast-check';
import { IMAGE_ROUTES, readTarget, type RequestReading, type Route } from '../../lib/request/read';
import { testSeed } from '../helpers/seed';
import { isRefused, startGlanceReader, type GlanceReader, type GlanceReading, type Refused } from '../helpers/glance-reading';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
const ID = 'c0ffee00-1111-2222-3333-444455556666';
const VND = 'application/vnd.openstack.images-';

/** readTarget's Route for the v2 mapper's route path Glance matched. */
function routeOf(routePath: string): Route {
  if (routePath === '/images') return 'images';
  if (routePath === '/images/{image_id}') return 'image';
  if (routePath === '/images/{image_id}/file') return 'image-file';
  if (routePath === '/images/{image_id}/stage') return 'image-stage';
  if (routePath === '/images/{image_id}/import') return 'image-import';
  if (routePath === '/images/{image_id}/locations') return 'image-locations';
  // DELETE /v2/stores/{store_id}/{image_id} acts on an image outside /images.
  if (routePath === '/stores/{store_id}/{image_id}') return 'image-store';
  // Members, tags, actions, tasks.
  if (routePath.includes('{image_id}')) return 'image-other';
  if (routePath.startsWith('/schemas')) return 'schemas';
  if (routePath.startsWith('/metadefs')) return 'metadefs';
  return 'api-other';
}

/** Glance's reading in one line: `PATCH update /images/{image_id} "ID"`, or its status. */
function summary(g: GlanceReading | Refused): string {
  if (isRefused(g)) return `refused: ${g.statusLine}`;
  if (!g.routed) return String(g.status);
  const id = g.image_id === null || g.image_id === undefined ? '' : ` ${JSON.stringify(g.image_id)}`;
  return `${g.method ?? ''} ${g.action ?? ''} ${g.route ?? ''}${id}`;
}

/** readTarget's reading in one line, for messages. */
function told(r: RequestReading): string {
  const id = r.imageId === null ? '' : ` ${JSON.stringify(r.imageId)}`;
  return `${r.method} ${r.route}${id}${r.ambiguous === null ? '' : ` ambiguous (${r.ambiguous})`}${r.mayChange ? ' mayChange' : ''}`;
}

/** Where readTarget breaks the rule for this request, or null. */
function violation(g: GlanceReading | Refused, r: RequestReading): string | null {
  if (isRefused(g) || !g.routed) return null;
  const method = g.method ?? '';
  if (r.ambiguous !== null) return SAFE.has(method) || r.mayChange ? null : `ambiguous, but not mayChange although Glance acts with ${method}`;
  const expected = routeOf(g.route ?? '');
  const wrong: string[] = [];
  if (r.method !== method) wrong.push(`method ${r.method}, Glance ${method}`);
  if (r.route !== expected) wrong.push(`route ${r.route}, Glance ${expected}`);
  // Routes matches the latin-1 PATH_INFO, so a UTF-8 id reaches Glance's controller as its bytes read
  // as latin-1; lookups send the id percent-encoded as UTF-8 again, which Glance reads the same way.
  const sameId = r.imageId === g.image_id || (r.imageId !== null && Buffer.from(r.imageId, 'utf8').toString('latin1') === g.image_id);
  if (IMAGE_ROUTES.has(expected) && !sameId) wrong.push(`image id ${JSON.stringify(r.imageId)}, Glance ${JSON.stringify(g.image_id)}`);
  return wrong.length === 0 ? null : wrong.join('; ');
}

function rawHeaders(headers: readonly (readonly [string, string])[], body?: string): string[] {
  const raw = ['Host', '127.0.0.1', ...headers.flat()];
  if (body !== undefined) raw.push('Content-Length', String(Buffer.byteLength(body)));
  return raw;
}

let glance: GlanceReader;
beforeAll(async () => {
  glance = await startGlanceReader();
});
afterAll(async () => {
  await glance?.stop();
});

interface Case {
  readonly method: string;
  readonly target: string;
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: string;
  /** What Glance makes of it (summary()). */
  readonly glance: string;
  /** Why the case is here. */
  readonly note: string;
}

const accept = (v: string): [string, string][] => [['Accept', v]];

const CASES: readonly Case[] = [
  // Versions in the path
  { method: 'GET', target: `/v2/images/${ID}`, glance: `GET show /images/{image_id} "${ID}"`, note: 'the plain spelling' },
  { method: 'PATCH', target: `/v2.0/images/${ID}`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'v2.0' },
  { method: 'PATCH', target: `/v2.1/images/${ID}`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'v2.1' },
  { method: 'DELETE', target: `/v2.9/images/${ID}`, glance: `DELETE delete /images/{image_id} "${ID}"`, note: 'v2.9' },
  { method: 'PATCH', target: `/v2.15/images/${ID}`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'v2.15' },
  { method: 'PATCH', target: `/v2.8/images/${ID}`, glance: '300', note: 'v2.8 only with enabled_backends' },
  { method: 'PATCH', target: `/v2.99/images/${ID}`, glance: '300', note: 'an unknown minor version gets the version documents' },
  { method: 'PATCH', target: `/v2//images/${ID}`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'urlmap merges slash runs' },
  { method: 'PATCH', target: `//v2/images/${ID}`, glance: `PATCH update /images/{image_id} "${ID}"`, note: "python's http.server drops the leading slash run" },
  { method: 'PATCH', target: `/v2/images//${ID}`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'a slash run before the id' },
  { method: 'PUT', target: `/v2/images/${ID}//file`, glance: `PUT upload /images/{image_id}/file "${ID}"`, note: 'a slash run before file' },
  { method: 'PATCH', target: `/V2/images/${ID}`, glance: '300', note: 'V2 is not a version to Glance' },
  { method: 'PATCH', target: `/v3/images/${ID}`, glance: '300', note: 'v3' },
  { method: 'PATCH', target: `/2/images/${ID}`, glance: '300', note: 'a bare 2' },
  // Versions in Accept
  { method: 'PATCH', target: `/images/${ID}`, headers: accept(`${VND}v2`), glance: `PATCH update /images/{image_id} "${ID}"`, note: 'media-type versioning' },
  { method: 'PATCH', target: `/images/${ID}`, headers: accept(`${VND}v2.1`), glance: `PATCH update /images/{image_id} "${ID}"`, note: 'media-type versioning, v2.1' },
  { method: 'PATCH', target: `/images/${ID}`, headers: accept(`  ${VND}v2 `), glance: `PATCH update /images/{image_id} "${ID}"`, note: 'blanks around Accept' },
  { method: 'PATCH', target: `/images/${ID}`, headers: accept(`${VND}v2, text/html`), glance: '300', note: 'a list in Accept' },
  { method: 'PATCH', target: `/v2/images/${ID}`, headers: accept(`${VND}v2`), glance: '404', note: 'Accept wins over the path: /v2/v2/images/ID' },
  { method: 'PATCH', target: `/images/${ID}`, headers: accept(`${VND}v2;q=1`), glance: `PATCH update /images/{image_id} "${ID}"`, note: 'webob drops q from the Accept Glance compares' },
  { method: 'PATCH', target: `/images/${ID}`, headers: accept(`${VND}v2,`), glance: `PATCH update /images/{image_id} "${ID}"`, note: 'webob drops an empty list element from Accept' },
  { method: 'DELETE', target: `/images/${ID}`, headers: accept(`, ,${VND}v2.1 ,`), glance: `DELETE delete /images/{image_id} "${ID}"`, note: 'empty list elements around the version' },
  { method: 'PATCH', target: `/images/${ID}`, headers: [['Accept', `${VND}v2`], ['Accept', '']], glance: `PATCH update /images/{image_id} "${ID}"`, note: 'eventlet joins repeated headers with commas' },
  // Escapes
  { method: 'PATCH', target: `/v2/%69mages/${ID}`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'an escaped literal' },
  { method: 'PATCH', target: `/v2%2Fimages/${ID}`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'an encoded slash after the version' },
  { method: 'GET', target: `/v2/images/${ID}%2Ffile`, glance: `GET download /images/{image_id}/file "${ID}"`, note: 'an encoded slash before file' },
  { method: 'PUT', target: `/v2/images/${ID}%2Ffile`, glance: `PUT upload /images/{image_id}/file "${ID}"`, note: 'an encoded slash: upload' },
  { method: 'PATCH', target: `/v2/images/%2F${ID}`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'an encoded slash before the id' },
  { method: 'PATCH', target: `/v2/images/${ID.replace('c', '%63')}`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'an escaped id character' },
  { method: 'PATCH', target: '/v2/images/a%20b', glance: 'PATCH update /images/{image_id} "a b"', note: 'a space in the id' },
  { method: 'PATCH', target: '/v2/images/a%00b', glance: 'PATCH update /images/{image_id} "a\\u0000b"', note: 'a NUL in the id' },
  { method: 'PATCH', target: '/v2/images/a%25b', glance: 'PATCH update /images/{image_id} "a%b"', note: 'an escaped percent sign' },
  { method: 'PATCH', target: '/v2/images/a%zzb', glance: 'PATCH update /images/{image_id} "a%zzb"', note: 'an invalid escape stays as it is' },
  { method: 'PATCH', target: `/v2/images/${ID.toUpperCase()}`, glance: `PATCH update /images/{image_id} "${ID.toUpperCase()}"`, note: 'an upper-case id' },
  { method: 'PATCH', target: '/v2/images/%C3%A9', glance: 'PATCH update /images/{image_id} "\u00c3\u00a9"', note: 'Routes matches the latin-1 PATH_INFO, so a UTF-8 id reaches the controller as mojibake' },
  { method: 'PATCH', target: '/v2/images/%E2%82%AC%F0%9F%98%80', glance: 'PATCH update /images/{image_id} "\u00e2\u0082\u00ac\u00f0\u009f\u0098\u0080"', note: 'the same with three- and four-byte characters' },
  { method: 'PATCH', target: '/v2/images/%FF', glance: '500', note: 'invalid UTF-8: webob fails' },
  { method: 'PATCH', target: `/v2/images/./${ID}`, glance: '404', note: 'a dot segment is not resolved' },
  { method: 'PUT', target: `/v2/images/${ID}/./file`, glance: '404', note: 'a dot segment before file' },
  { method: 'PUT', target: '/v2/images/./file', glance: 'PUT upload /images/{image_id}/file "."', note: 'a dot segment as the id' },
  // Case, trailing slash, fragment, absolute form
  { method: 'PATCH', target: `/v2/IMAGES/${ID}`, glance: '404', note: 'Routes compares literals with case' },
  { method: 'PUT', target: `/v2/images/${ID}/FILE`, glance: '404', note: 'file in capitals' },
  { method: 'PATCH', target: `/v2/images/${ID}/`, glance: '404', note: 'a trailing slash' },
  { method: 'GET', target: `/v2/images/${ID}#x`, glance: `GET show /images/{image_id} "${ID}#x"`, note: 'eventlet keeps a fragment in the path' },
  { method: 'PATCH', target: `/v2/images/${ID}#x`, glance: `PATCH update /images/{image_id} "${ID}#x"`, note: 'a fragment on a change' },
  { method: 'PUT', target: `/v2/images/${ID}#/file`, glance: `PUT upload /images/{image_id}/file "${ID}#"`, note: 'a fragment holding a slash' },
  { method: 'PATCH', target: `http://h/v2/images/${ID}`, glance: '300', note: 'the absolute form: PATH_INFO starts with http:' },
  // The _method override
  { method: 'POST', target: `/v2/images/${ID}?_method=PATCH`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'POST overridden' },
  { method: 'GET', target: `/v2/images/${ID}?_method=PATCH`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'GET overridden' },
  { method: 'GET', target: `/v2/images/${ID}?_method=patch`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'the override is upper-cased' },
  { method: 'GET', target: `/v2/images/${ID}?%5Fmethod=PATCH`, glance: `GET show /images/{image_id} "${ID}"`, note: "Routes looks for '_method' in the raw query" },
  { method: 'GET', target: `/v2/images/${ID}?x=_method&%5Fmethod=DELETE`, glance: `DELETE delete /images/{image_id} "${ID}"`, note: "an escaped name counts once '_method' is in the query" },
  { method: 'GET', target: `/v2/images/${ID}?_method=GET&_method=DELETE`, glance: `DELETE delete /images/{image_id} "${ID}"`, note: 'webob takes the last value' },
  { method: 'PATCH', target: `/v2/images/${ID}?_method=`, glance: `PATCH update /images/{image_id} "${ID}"`, note: 'an empty override does nothing' },
  { method: 'GET', target: `/v2/images/${ID}?x=1;_method=PATCH`, glance: `PATCH update /images/{image_id} "${ID}"`, note: "webob splits the query on ';' as well as '&'" },
  { method: 'PATCH', target: `/v2/images/${ID}?x=1;_method=DELETE`, glance: `DELETE delete /images/{image_id} "${ID}"`, note: "a PATCH Glance reads as DELETE after a ';'" },
  { method: 'GET', target: `/v2/images/${ID}?_method=PATCH&x=%FF`, glance: `GET show /images/{image_id} "${ID}"`, note: 'a query that is not UTF-8 cancels the override' },
  { method: 'GET', target: `/v2/images/${ID}/file?_method=PUT`, glance: `PUT upload /images/{image_id}/file "${ID}"`, note: 'an upload by GET' },
  { method: 'GET', target: `/v2/images/${ID}?_method=PATCH#x`, glance: `PATCH#X reject /images/{image_id} "${ID}"`, note: 'a fragment after the query stays in the override' },
  {
    method: 'POST',
    target: `/v2/images/${ID}`,
    headers: [['Content-Type', 'application/x-www-form-urlencoded']],
    body: '_method=DELETE',
    glance: `DELETE delete /images/{image_id} "${ID}"`,
    note: 'Routes takes _method from a form body (the action then refuses a body, 400)',
  },
  {
    method: 'POST',
    target: `/v2/images/${ID}/file`,
    headers: [['Content-Type', 'multipart/form-data; boundary=b']],
    body: '--b\r\nContent-Disposition: form-data; name="_method"\r\n\r\nPUT\r\n--b--\r\n',
    glance: `PUT upload /images/{image_id}/file "${ID}"`,
    note: 'a multipart form body overrides too (upload then wants application/octet-stream, 415)',
  },
  // Image routes
  { method: 'PUT', target: `/v2/images/${ID}/file`, glance: `PUT upload /images/{image_id}/file "${ID}"`, note: 'upload' },
  { method: 'GET', target: `/v2/images/${ID}/file`, glance: `GET download /images/{image_id}/file "${ID}"`, note: 'download' },
  { method: 'PUT', target: `/v2/images/${ID}/stage`, glance: `PUT stage /images/{image_id}/stage "${ID}"`, note: 'stage' },
  { method: 'POST', target: `/v2/images/${ID}/import`, glance: `POST import_image /images/{image_id}/import "${ID}"`, note: 'import' },
  { method: 'POST', target: `/v2/images/${ID}/locations`, glance: '404', note: 'no locations API in 25.1' },
  { method: 'POST', target: `/v2/images/${ID}/members`, glance: `POST create /images/{image_id}/members "${ID}"`, note: 'members' },
  { method: 'PUT', target: `/v2/images/${ID}/tags/t`, glance: `PUT update /images/{image_id}/tags/{tag_value} "${ID}"`, note: 'a tag' },
  { method: 'POST', target: `/v2/images/${ID}/actions/deactivate`, glance: `POST deactivate /images/{image_id}/actions/deactivate "${ID}"`, note: 'deactivate' },
  { method: 'HEAD', target: `/v2/images/${ID}`, glance: `HEAD reject /images/{image_id} "${ID}"`, note: 'HEAD is refused (405)' },
  { method: 'DELETE', target: `/v2/stores/s/${ID}`, glance: `DELETE delete_from_store /stores/{store_id}/{image_id} "${ID}"`, note: 'deleting an image from a store names the image outside /images' },
  // Other routes
  { method: 'GET', target: '/v2/images', glance: 'GET index /images', note: 'the list' },
  { method: 'POST', target: '/v2.1/images', glance: 'POST create /images', note: 'creating an image' },
  { method: 'GET', target: '/v2/schemas/image', glance: 'GET image /schemas/image', note: 'a schema' },
  { method: 'GET', target: '/v2/metadefs/namespaces/X', glance: 'GET show /metadefs/namespaces/{namespace}', note: 'a metadef namespace' },
  { method: 'PUT', target: '/v2/metadefs/namespaces/X', glance: 'PUT update /metadefs/namespaces/{namespace}', note: 'a metadef change' },
  { method: 'GET', target: '/v2/tasks', glance: 'GET index /tasks', note: 'tasks' },
];

describe('5. Reading a request as the service behind it does: readTarget against Glance 25.1', () => {
  it.each(CASES)('should read $method $target as Glance does ($note)', async ({ method, target, headers = [], body, glance: expected }) => {
    const g = await glance.read(method, target, headers, body);
    expect(summary(g)).toBe(expected);
    const r = readTarget(method, target, rawHeaders(headers, body));
    expect({ violation: violation(g, r), readTarget: told(r) }).toEqual({ violation: null, readTarget: told(r) });
  });

  it.each([
    ['/', 300, 'versions'],
    ['/versions', 200, 'versions'],
    ['/healthcheck', 200, 'healthcheck'],
  ] as const)('should read GET %s as the route Glance answers %i from (%s)', async (target, status, route) => {
    const g = await glance.read('GET', target);
    expect(summary(g)).toBe(String(status));
    expect(readTarget('GET', target, rawHeaders([])).route).toBe(route);
  });

  // keystonemiddleware's auth_token validates X-Auth-Token, else X-Storage-Token, from the environ
  // eventlet built: a header spelt with underscores lands on the same key, and repeated headers are
  // joined with commas. readTarget counts a repeated token header as ambiguous.
  it.each([
    [[['X-Auth-Token', 'a']], 'a', false],
    [[['X_Auth_Token', 'a']], 'a', false],
    [[['X-Storage-Token', 's']], 's', false],
    [[['X-Storage-Token', 's'], ['X-Auth-Token', 'a']], 'a', false],
    [[['X-Auth-Token', 'a'], ['X-Auth-Token', 'b']], 'a,b', true],
    [[['X-Auth-Token', 'a'], ['X_Auth_Token', 'b']], 'a,b', true],
    [[['x_storage_token', 's'], ['X-Storage-Token', 't']], 's,t', true],
  ] as const)('should see the token keystonemiddleware reads in %j (%s)', async (headers, token, repeated) => {
    const g = await glance.read('PATCH', `/v2/images/${ID}`, headers);
    expect(isRefused(g) ? g : g.token).toBe(token);
    const r = readTarget('PATCH', `/v2/images/${ID}`, rawHeaders(headers));
    expect(r.ambiguous !== null).toBe(repeated);
  });
});

// ---------------------------------------------------------------------------------------------
// The property

const SEED = testSeed('SEED');
const RUNS = 3000;

/** `s` with its UTF-8 bytes percent-encoded, hex in upper or lower case. */
function pct(s: string, lower: boolean): string {
  const hex = [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  return lower ? hex : hex.toUpperCase();
}

/** Characters that cannot go raw in a path segment of a request line. */
const MUST_ENCODE = /[^\x21-\x7e]|[/?#%]/u;

/** A literal or an id spelt as a client might: mostly as is, sometimes in another case or with escapes. */
function spelt(word: string, caseChanges = true): fc.Arbitrary<string> {
  const variants = fc
    .record({
      form: caseChanges ? fc.constantFrom('as', 'upper', 'capital') : fc.constant('as'),
      escaped: fc.array(fc.nat(Math.max(0, [...word].length - 1)), { maxLength: 2 }),
      lower: fc.boolean(),
    })
    .map(({ form, escaped, lower }) => {
      const w = form === 'upper' ? word.toUpperCase() : form === 'capital' ? word.charAt(0).toUpperCase() + word.slice(1) : word;
      return [...w].map((c, i) => (escaped.includes(i) || MUST_ENCODE.test(c) ? pct(c, lower) : c)).join('');
    });
  const plain = [...word].map((c) => (MUST_ENCODE.test(c) ? pct(c, false) : c)).join('');
  return fc.oneof({ weight: 8, arbitrary: fc.constant(plain) }, { weight: 1, arbitrary: variants });
}

const versionSegment = fc.oneof(
  { weight: 5, arbitrary: fc.constant('v2') },
  { weight: 3, arbitrary: fc.nat(20).map((n) => `v2.${n}`) },
  { weight: 2, arbitrary: fc.constantFrom('V2', 'v3', '2', 'v2.1.1', 'v02', 'V2.1', 'v2.', '%762', 'v2%2E1') },
  { weight: 4, arbitrary: fc.constant(null) },
);
const imageId = fc.constantFrom(ID, ID.toUpperCase(), 'abc', 'a b', 'é', '€😀', 'x/y', '/x', 'x%y', 'a\0b', '.', '..', 'a#b', 'a?b', 'a+b', 'a;b', 'file', 'a%zz').chain((id) =>
  id === 'a%zz' ? fc.constant(id) : spelt(id, false),
);
const imageTail = fc.constantFrom('', 'file', 'stage', 'import', 'locations', 'members', 'members/m', 'tags/t', 'actions/deactivate', 'tasks');
const otherPath = fc.constantFrom('images', 'schemas/image', 'schemas/images', 'metadefs/namespaces/X', 'tasks', 'info/import', `stores/s/${ID}`);
const separator = fc.oneof({ weight: 24, arbitrary: fc.constant('/') }, { weight: 1, arbitrary: fc.constantFrom('//', '///', '/./', '/%2F', '/%2f/', '/../') });

/** The segments after the version: literals spelt variously, an id, a tail. */
const apiSegments: fc.Arbitrary<string[]> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(spelt('images'), imageId, imageTail).chain(([images, id, tail]) => fc.tuple(fc.constant([images, id]), ...tail.split('/').filter((s) => s !== '').map((s) => spelt(s))).map(([head, ...rest]) => [...head, ...rest])) },
  { weight: 1, arbitrary: otherPath.chain((p) => fc.tuple(...p.split('/').map((s) => spelt(s)))) },
);

const path = fc
  .record({
    lead: fc.oneof({ weight: 8, arbitrary: fc.constant('/') }, { weight: 1, arbitrary: fc.constantFrom('//', 'http://h/', '/./') }),
    version: versionSegment,
    segments: fc.oneof({ weight: 12, arbitrary: apiSegments }, { weight: 1, arbitrary: fc.constantFrom<string[]>([], ['versions'], ['healthcheck']) }),
    separators: fc.array(separator, { minLength: 6, maxLength: 6 }),
    trailing: fc.oneof({ weight: 8, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('/', '//') }),
  })
  .map(({ lead, version, segments, separators, trailing }) => {
    const all = version === null ? segments : [version, ...segments];
    return { path: lead + all.map((s, i) => (i === 0 ? s : (separators[i] ?? '/') + s)).join('') + trailing, versioned: version !== null };
  });

const methodValue = fc.constantFrom('PATCH', 'patch', 'PUT', 'DELETE', 'GET', 'POST', '', '%20PATCH', '+PATCH', '%50ATCH', 'PATCH%00', 'Delete', 'PATCH%23');
const methodName = fc.oneof({ weight: 6, arbitrary: fc.constant('_method') }, { weight: 1, arbitrary: fc.constantFrom('%5Fmethod', '%5fmethod', '_METHOD', '_%6Dethod', '_method%20', 'x') });
const pair = fc.oneof({ weight: 3, arbitrary: fc.tuple(methodName, methodValue).map(([n, v]) => `${n}=${v}`) }, { weight: 1, arbitrary: fc.constantFrom('x=1', '_method', 'x=_method', 'a_method=PATCH') });
const query = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  { weight: 2, arbitrary: fc.tuple(fc.array(pair, { minLength: 1, maxLength: 3 }), fc.constantFrom('&', '&', '&', ';', '&&')).map(([pairs, sep]) => `?${pairs.join(sep)}`) },
);
const fragment = fc.oneof({ weight: 8, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('#x', '#/file', '#?_method=PATCH', '#') });

const acceptValue = fc.oneof({ weight: 1, arbitrary: fc.constantFrom(`${VND}v2`, `${VND}v2.1`) }, { weight: 2, arbitrary: fc.constantFrom(
  `${VND}v2.15`,
  `${VND}v2.99`,
  `${VND}V2`,
  ` ${VND}v2 `,
  `Application/Vnd.OpenStack.Images-v2`,
  `${VND}v2, text/html`,
  `text/html, ${VND}v2`,
  `${VND}v2,`,
  `${VND}v2 ,`,
  `, ,${VND}v2`,
  `${VND}v2;q=1`,
  `${VND}v2.1;q=0.5, */*`,
  `${VND}v2 ; q=1`,
  'application/json',
  '',
) });
/** Accept headers: often on an unversioned path, where Glance reads the version from them, seldom on a versioned one. */
const acceptHeaders = (versioned: boolean): fc.Arbitrary<string[]> =>
  fc.oneof({ weight: versioned ? 8 : 1, arbitrary: fc.constant<string[]>([]) }, { weight: versioned ? 1 : 4, arbitrary: fc.array(acceptValue, { minLength: 1, maxLength: 2 }) });

const request = path.chain(({ path: p, versioned }) =>
  fc.record({
    method: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('GET', 'PUT', 'PATCH', 'POST', 'DELETE') }, { weight: 1, arbitrary: fc.constant('HEAD') }),
    path: fc.constant(p),
    fragmentFirst: fc.boolean(),
    query,
    fragment,
    accept: acceptHeaders(versioned),
  }),
);

describe('5. Reading a request as the service behind it does: the property', () => {
  it(`should never route less than Glance for ${RUNS} generated requests (SEED=${SEED})`, async () => {
    const started = Date.now();
    const found = new Map<string, string>();
    let routed = 0;
    let refused = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async ({ method, path: p, fragmentFirst, query: q, fragment: f, accept: values }) => {
        const target = fragmentFirst ? p + f + q : p + q + f;
        // Only what a request line can carry: printable ASCII without blanks (non-ASCII goes
        // percent-encoded, as clients send it; Node's parser and python's http.server both refuse
        // or split on the rest).
        if (!/^[\x21-\x7e]+$/.test(target)) return;
        const headers = values.map((v): [string, string] => ['Accept', v]);
        const g = await glance.read(method, target, headers);
        if (isRefused(g)) {
          refused += 1;
          return;
        }
        if (g.routed) routed += 1;
        else statuses.set(g.status ?? 0, (statuses.get(g.status ?? 0) ?? 0) + 1);
        let why: string | null;
        let r: RequestReading | null = null;
        try {
          r = readTarget(method, target, rawHeaders(headers));
          why = violation(g, r);
        } catch (e) {
          why = `readTarget threw ${String(e)}`;
        }
        if (why === null) return;
        // One example per kind of disagreement, the shortest.
        const kind = why.replace(/"[^"]*"/g, '…');
        const example = `${method} ${target} ${JSON.stringify(headers)}: Glance ${summary(g)}; readTarget ${r === null ? '-' : told(r)}: ${why}`;
        const before = found.get(kind);
        if (before === undefined || example.length < before.length) found.set(kind, example);
      }),
      { numRuns: RUNS, seed: SEED },
    );
    console.log(`reading.test.ts property: ${RUNS} runs, ${routed} routed by Glance, ${refused} refused by eventlet, not routed: ${JSON.stringify(Object.fromEntries(statuses))}, ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect([...found.values()]).toEqual([]);
  }, 60000);
});
