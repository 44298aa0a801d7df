/**
 * The demo against the real Glance 25.1, live, on images: the same requests to both (in the same
 * order, so that Glance's location row ids and the demo's agree), the same status, the headers that
 * matter and the same body bytes (image ids, dates and ports normalised). The 415 of a patch without
 * a Content-Type, the 204s, location URLs Glance's http store refuses and its texts, and the v2.17
 * locations API, which Glance 25 (Zed) does not route.
 */
import { startRealGlance, type RealGlance } from '../helpers/glance';
import { FIXTURE, startBlobServer, startDemo, type BlobServer, type Demo } from '../helpers/processes';
import { send, type Answer } from '../helpers/http';

jest.setTimeout(60_000);

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const STAMP = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/g;

function view(answer: Answer, port: number) {
  const h = answer.headers;
  return {
    status: answer.status,
    contentType: h['content-type'],
    acceptPatch: h['accept-patch'],
    requestId: typeof h['x-openstack-request-id'] === 'string',
    body: answer.body.toString('utf8').split(`127.0.0.1:${port}`).join('127.0.0.1:PORT').replace(UUID, 'ID').replace(STAMP, 'T'),
  };
}

let glance: RealGlance;
let demo: Demo;
let blobs: BlobServer;

beforeAll(async () => {
  [glance, demo, blobs] = await Promise.all([startRealGlance(), startDemo(), startBlobServer()]);
}, 180_000);

afterAll(async () => {
  await demo?.close();
  await glance?.stop();
  await blobs?.close();
}, 60_000);

/** A queued image on each, created alike. */
async function createBoth(): Promise<{ g: string; d: string }> {
  const body = JSON.stringify({ name: 'compared', disk_format: 'raw', container_format: 'bare' });
  const [g, d] = await Promise.all([glance.port, demo.port].map((port) => send(port, 'POST', '/v2/images', { 'Content-Type': 'application/json' }, body)));
  expect([g?.status, d?.status]).toEqual([201, 201]);
  return { g: (JSON.parse(String(g?.body)) as { id: string }).id, d: (JSON.parse(String(d?.body)) as { id: string }).id };
}

/** The same request about each one's image (`{id}` in the target). */
async function both(ids: { g: string; d: string }, method: string, target: string, headers: Record<string, string> = {}, body?: string | Buffer) {
  const g = await send(glance.port, method, target.replace('{id}', ids.g), headers, body);
  const d = await send(demo.port, method, target.replace('{id}', ids.d), headers, body);
  return { glance: view(g, glance.port), demo: view(d, demo.port) };
}

const PATCH_TYPE = { 'Content-Type': 'application/openstack-images-v2.1-json-patch' };
const addLocation = (url: string, metadata: Record<string, unknown> = {}) => JSON.stringify([{ op: 'add', path: '/locations/-', value: { url, metadata } }]);

describe('1. a PATCH in a media type Glance does not read: 415 naming the type as sent', () => {
  it.each([
    ['no Content-Type', undefined, 'text/plain'],
    ['application/json', 'application/json', 'application/json'],
    ['a type with parameters', 'application/json; charset=utf-8', 'application/json; charset=utf-8'],
    ['a patch type in another case', 'APPLICATION/openstack-images-v2.1-json-patch', 'APPLICATION/openstack-images-v2.1-json-patch'],
    ['a type with markup', 'a<b>&c', 'a<b>&c'],
  ])('should answer %s with 415, Accept-Patch and webob\'s text in each form', async (_name, type, named) => {
    const ids = await createBoth();
    for (const accept of [{}, { Accept: 'application/json' }, { Accept: 'text/html' }]) {
      const headers: Record<string, string> = { ...accept, ...(type === undefined ? {} : { 'Content-Type': type }) };
      const { glance: g, demo: d } = await both(ids, 'PATCH', '/v2/images/{id}', headers, '[]');
      expect(d).toEqual(g);
      expect(d).toMatchObject({ status: 415, acceptPatch: 'application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch' });
    }
    const plain = await send(demo.port, 'PATCH', `/v2/images/${ids.d}`, type === undefined ? {} : { 'Content-Type': type }, '[]');
    expect(plain.body.toString()).toBe(`415 Unsupported Media Type\n\nThe request media type ${named.replace(/<.*?>/g, '')} is not supported by this server. \n\n `);
  });
});

describe('2. the 204s carry webob\'s default Content-Type', () => {
  it('should answer upload, stage, deactivate, reactivate and delete with 204, text/html; charset=UTF-8 and no body', async () => {
    const ids = await createBoth();
    const octets = { 'Content-Type': 'application/octet-stream' };
    for (const [method, target, body] of [
      ['PUT', '/v2/images/{id}/file', FIXTURE],
      ['POST', '/v2/images/{id}/actions/deactivate', undefined],
      ['POST', '/v2/images/{id}/actions/reactivate', undefined],
      ['DELETE', '/v2/images/{id}', undefined],
    ] as const) {
      const { glance: g, demo: d } = await both(ids, method, target, body ? octets : {}, body);
      expect({ method, ...d }).toEqual({ method, ...g });
      expect(d).toMatchObject({ status: 204, contentType: 'text/html; charset=UTF-8', body: '' });
    }
    const staged = await createBoth();
    const { glance: g, demo: d } = await both(staged, 'PUT', '/v2/images/{id}/stage', octets, FIXTURE);
    expect(d).toEqual(g);
    expect(d).toMatchObject({ status: 204, contentType: 'text/html; charset=UTF-8', body: '' });
  });
});

describe('1. locations Glance\'s http store refuses, with Glance\'s texts', () => {
  it.each([
    ['empty', ''],
    ['not a URL', 'not a url'],
    ['another scheme', 'ftp://127.0.0.1/x'],
    ['a private address', 'http://10.0.0.1/x'],
  ])('should refuse %s (%s) with Glance\'s 400', async (_name, url) => {
    const ids = await createBoth();
    for (const accept of [{}, { Accept: 'application/json' }]) {
      const { glance: g, demo: d } = await both(ids, 'PATCH', '/v2/images/{id}', { ...PATCH_TYPE, ...accept }, addLocation(url));
      expect(d).toEqual(g);
      expect(d.status).toBe(400);
    }
    const image = await both(ids, 'GET', '/v2/images/{id}');
    expect(image.demo).toEqual(image.glance);
    expect(JSON.parse(image.demo.body)).toMatchObject({ status: 'queued', locations: [] });
  });

  // Where Glance's http store cannot parse the URL, it answers in its own words; the demo answers
  // `Invalid location` (README: Compatibility with Glance).
  it.each([
    ['http://', 'The Store URI was malformed.'],
    ['https://', 'The Store URI was malformed.'],
    ['http:///x', 'The Store URI was malformed.'],
    ['http://127.0.0.1:abc/x', 'The Store URI was malformed.'],
    ['http://user@127.0.0.1:1/x', 'The Store URI was malformed.'],
    ['http://:80/x', "Invalid URL 'http://:80/x': No host supplied"],
  ])('should refuse %s with 400 Invalid location, where Glance says %s', async (url, glanceText) => {
    const ids = await createBoth();
    const { glance: g, demo: d } = await both(ids, 'PATCH', '/v2/images/{id}', PATCH_TYPE, addLocation(url));
    expect(d).toEqual({ ...g, body: '400 Bad Request\n\nInvalid location\n\n   ' });
    expect(g.body).toBe(`400 Bad Request\n\n${glanceText}\n\n   `);
  });

  // Where Glance's http store has to connect (a name that does not resolve, nothing listening),
  // Glance 25 answers `Invalid location` or, from one request to the next, `The Store URI was
  // malformed.`: the demo always answers the first.
  it.each(['http://no-such-host.invalid/x', 'http://[::1]:1/x', 'http://127.0.0.1:1/x'])('should refuse %s with 400 Invalid location', async (url) => {
    const ids = await createBoth();
    const d = await send(demo.port, 'PATCH', `/v2/images/${ids.d}`, PATCH_TYPE, addLocation(url));
    expect(view(d, demo.port)).toEqual({ status: 400, contentType: 'text/plain; charset=UTF-8', acceptPatch: undefined, requestId: true, body: '400 Bad Request\n\nInvalid location\n\n   ' });
    const g = await send(glance.port, 'PATCH', `/v2/images/${ids.g}`, PATCH_TYPE, addLocation(url));
    expect(g.status).toBe(400);
    expect(['Invalid location', 'The Store URI was malformed.']).toContain(g.body.toString().split('\n')[2]);
  });

  it('should answer a duplicate URL and a replace of a non-empty list as Glance does, listing each location with its id and status', async () => {
    const ids = await createBoth();
    const url = blobs.put('compared-blob', FIXTURE);
    const added = await both(ids, 'PATCH', '/v2/images/{id}', PATCH_TYPE, addLocation(url));
    expect(added.demo).toEqual(added.glance);
    expect(JSON.parse(added.demo.body)).toMatchObject({ status: 'active', size: 32, locations: [{ url, metadata: {} }] });

    const dup = await both(ids, 'PATCH', '/v2/images/{id}', PATCH_TYPE, addLocation(url));
    expect(dup.demo).toEqual(dup.glance);
    expect(dup.demo.body).toBe(`400 Bad Request\n\nThe location ${url} already exists\n\n   `);

    const other = blobs.put('compared-other', FIXTURE);
    const replace = JSON.stringify([{ op: 'replace', path: '/locations', value: [{ url: other, metadata: {} }] }]);
    const refused = await both(ids, 'PATCH', '/v2/images/{id}', PATCH_TYPE, replace);
    expect(refused.demo).toEqual(refused.glance);
    expect(refused.demo.status).toBe(400);
    // The same ids on both: the requests that made locations were the same, in the same order.
    expect(refused.demo.body).toMatch(new RegExp(`^400 Bad Request\\n\\nOriginal locations is not empty: \\[\\{'id': \\d+, 'url': '${url.replace(/[.]/g, '\\.')}', 'metadata': \\{\\}, 'status': 'active'\\}\\]\\n\\n   $`));
  });
});

describe('1. the locations API of Glance 2024.2 (v2.17): not routed by Glance 25 (Zed)', () => {
  it.each([
    ['GET', '/v2/images/{id}/locations', undefined],
    ['POST', '/v2/images/{id}/locations', JSON.stringify({ url: 'http://127.0.0.1:1/x' })],
    ['GET', '/v2.17/images/{id}/locations', undefined],
  ])('should answer %s %s as Glance 25 does', async (method, target, body) => {
    const ids = await createBoth();
    for (const accept of [{}, { Accept: 'application/json' }, { Accept: 'text/html' }]) {
      const headers = { ...accept, ...(body ? { 'Content-Type': 'application/json' } : {}) };
      const { glance: g, demo: d } = await both(ids, method, target, headers, body);
      expect(d).toEqual(g);
      expect(d.status).toBe(target.startsWith('/v2.17') ? 300 : 404);
    }
    const plain = await send(demo.port, method, target.replace('{id}', ids.d), body ? { 'Content-Type': 'application/json' } : {}, body);
    expect(plain.body.toString()).toMatch(target.startsWith('/v2.17') ? /^\{"versions": \[\{"id": "v2\.15", "status": "CURRENT"/ : /^404 Not Found\n\nThe resource could not be found\.\n\n {3}$/);
  });
});

describe('1. a patch Glance stops at an earlier op than the location op §1 refuses', () => {
  it.each([
    ['a v2.0 add of an attribute already there', 'application/openstack-images-v2.0-json-patch', [{ add: '/name', value: 'x' }, { remove: '/locations/0' }]],
    ['a remove of a property that does not exist', 'application/openstack-images-v2.1-json-patch', [{ op: 'remove', path: '/nope' }, { op: 'remove', path: '/locations/0' }]],
    ['a remove of an attribute', 'application/openstack-images-v2.1-json-patch', [{ op: 'remove', path: '/name' }, { op: 'remove', path: '/locations/0' }]],
  ])('should answer %s with Glance\'s answer for that op, in each form, and change nothing', async (_name, type, ops) => {
    const ids = await createBoth();
    for (const accept of [{}, { Accept: 'application/json' }, { Accept: 'text/html' }]) {
      const { glance: g, demo: d } = await both(ids, 'PATCH', '/v2/images/{id}', { 'Content-Type': type, ...accept }, JSON.stringify(ops));
      expect(d).toEqual(g);
      expect([403, 409]).toContain(d.status);
      expect(d.body).not.toContain("It's not allowed to remove locations");
    }
    const after = await both(ids, 'GET', '/v2/images/{id}');
    expect(after.demo).toEqual(after.glance);
  });
});
