/**
 * The demo against the real Glance 25.1, live: the same request to both, the same status, the
 * headers that matter and the same body bytes (the port normalised). What Glance's pipeline answers
 * around its v2 API: the health check, version negotiation, 405 with `Allow`, discovery (`/v2/info`)
 * and the metadefs namespace list.
 */
import { startRealGlance, type RealGlance } from '../helpers/glance';
import { send, type Answer } from '../helpers/http';
import { startDemo, type Demo } from '../helpers/processes';

jest.setTimeout(60_000);

/** The parts of an answer that must be the same: status, the headers that matter, body bytes; the port is normalised. */
function view(answer: Answer, port: number) {
  const norm = (s: string | undefined) => (s === undefined ? undefined : s.split(`127.0.0.1:${port}`).join('127.0.0.1:PORT'));
  const h = answer.headers;
  return {
    status: answer.status,
    contentType: h['content-type'],
    contentLength: h['content-length'],
    allow: h['allow'],
    location: norm(h['location']),
    requestId: typeof h['x-openstack-request-id'] === 'string' && /^req-[0-9a-f-]{36}$/.test(h['x-openstack-request-id']),
    body: norm(answer.body.toString('utf8')),
  };
}

let glance: RealGlance;
let demo: Demo;

beforeAll(async () => {
  [glance, demo] = await Promise.all([startRealGlance(), startDemo()]);
}, 180_000);

afterAll(async () => {
  await demo?.close();
  await glance?.stop();
}, 60_000);

/** The same request to Glance and to the demo: both views. */
async function both(method: string, target: string, headers: Record<string, string> = {}, body?: string) {
  const [g, d] = await Promise.all([send(glance.port, method, target, headers, body), send(demo.port, method, target, headers, body)]);
  return { glance: view(g, glance.port), demo: view(d, demo.port) };
}

const VERSION_IDS = ['v2.15', 'v2.9', 'v2.7', 'v2.6', 'v2.5', 'v2.4', 'v2.3', 'v2.2', 'v2.1', 'v2.0'];
const versionList = VERSION_IDS.map((id, i) => ({ id, status: i === 0 ? 'CURRENT' : 'SUPPORTED', links: [{ rel: 'self', href: 'http://127.0.0.1:PORT/v2/' }] }));

describe('0. versions: which versions Glance routes to the v2 API, and the version list for the rest', () => {
  it('should 302 GET /v2 and /v2.1 to /v2/ with an empty text/plain body, as Glance does', async () => {
    for (const target of ['/v2', '/v2.1', '/v2.15']) {
      const { glance: g, demo: d } = await both('GET', target);
      expect(d).toEqual(g);
      expect(d).toEqual({ status: 302, contentType: 'text/plain; charset=utf8', contentLength: '0', allow: undefined, location: 'http://127.0.0.1:PORT/v2/', requestId: true, body: '' });
    }
  });

  it.each(['/', '/v1/images', '/v3/images', '/v1', '/images', '/v2.8/images', '/v2.16/images', '/v2.17/images', '/V2/images', '/v2.1.0/images'])(
    'should answer GET %s with 300 and the version list, without a request id, as Glance does',
    async (target) => {
      const { glance: g, demo: d } = await both('GET', target);
      expect(d).toEqual(g);
      expect(d.status).toBe(300);
      expect(d.contentType).toBe('application/json');
      expect(d.requestId).toBe(false);
      expect(JSON.parse(d.body ?? '')).toEqual({ versions: versionList });
    },
  );

  it('should answer any method on / with 300 and on /versions with 200 and the list', async () => {
    for (const [method, target, status] of [['DELETE', '/', 300], ['PUT', '/versions', 200], ['GET', '/versions/anything', 200], ['POST', '/v3/images', 300]] as const) {
      const { glance: g, demo: d } = await both(method, target);
      expect(d).toEqual(g);
      expect(d.status).toBe(status);
    }
  });

  it.each(['/v2.0/images', '/v2.1/images', '/v2.5/images', '/v2.9/images', '/v2.15/images', '/v2.7/schemas/image', '/v2.1/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type'])(
    'should serve GET %s as the v2 API does',
    async (target) => {
      const { glance: g, demo: d } = await both('GET', target);
      expect(d.status).toBe(200);
      expect(d.contentType).toBe(g.contentType);
      expect(d.requestId).toBe(true);
      if (target.endsWith('/images')) expect(d.body).toBe(g.body);
      const v2 = await send(demo.port, 'GET', target.replace(/^\/v2\.\d+/, '/v2'));
      expect(d.body).toBe(v2.body.toString('utf8'));
    },
  );

  it('should take the version from Accept: application/vnd.openstack.images-v2 on an unversioned path', async () => {
    const vnd = { Accept: 'application/vnd.openstack.images-v2' };
    const list = await both('GET', '/images', vnd);
    expect(list.demo).toEqual(list.glance);
    expect(list.demo.body).toBe('{"images": [], "first": "/v2/images", "schema": "/v2/schemas/images"}');
    // The versioned path under the media type: Glance reads /v2/v2/images, which is no route.
    const doubled = await both('GET', '/v2/images', vnd);
    expect(doubled.demo).toEqual(doubled.glance);
    expect(doubled.demo.status).toBe(404);
  });

  it('should 404 the spellings Glance does not route: a trailing slash, another case', async () => {
    for (const target of ['/v2/', '/v2/images/', '/v2/IMAGES', '/v2/Schemas/image']) {
      const { glance: g, demo: d } = await both('GET', target, { Accept: 'application/json' });
      expect(d).toEqual(g);
      expect(d.status).toBe(404);
    }
  });
});

describe('0. /healthcheck: oslo.middleware healthcheck in front of Glance', () => {
  it('should answer 200 OK in text, HTML or JSON by Accept, for any method, without a request id', async () => {
    const cases: [string, Record<string, string>, string][] = [
      ['GET', {}, 'text/plain; charset=UTF-8'],
      ['GET', { Accept: '*/*' }, 'text/plain; charset=UTF-8'],
      ['POST', {}, 'text/plain; charset=UTF-8'],
      ['GET', { Accept: 'text/html' }, 'text/html; charset=UTF-8'],
      ['GET', { Accept: 'application/json' }, 'application/json'],
      ['GET', { Accept: 'text/html;q=0.5, application/json' }, 'application/json'],
      ['GET', { Accept: 'image/png' }, 'text/plain; charset=UTF-8'],
    ];
    for (const [method, headers, type] of cases) {
      const { glance: g, demo: d } = await both(method, '/healthcheck', headers);
      expect(d).toEqual(g);
      expect({ status: d.status, type: d.contentType, requestId: d.requestId }).toEqual({ status: 200, type, requestId: false });
    }
    const plain = await both('GET', '/healthcheck?verbose=1');
    expect(plain.demo.body).toBe('OK');
    expect(plain.demo).toEqual(plain.glance);
    const json = await both('GET', '/healthcheck', { Accept: 'application/json' });
    expect(json.demo.body).toBe('{\n    "detailed": false,\n    "reasons": [\n        "OK"\n    ]\n}');
  });

  it('should answer HEAD /healthcheck with 204 and no body', async () => {
    const { glance: g, demo: d } = await both('HEAD', '/healthcheck');
    expect(d).toEqual(g);
    expect(d).toMatchObject({ status: 204, contentLength: '0', body: '' });
  });
});

describe('0. 405: a path Glance routes, asked with a method it does not take there', () => {
  const cases: [string, string, string][] = [
    ['DELETE', '/v2/schemas/image', 'GET'],
    ['POST', '/v2/schemas/images', 'GET'],
    ['PUT', '/v2/images', 'GET, POST'],
    ['DELETE', '/v2/images', 'GET, POST'],
    ['PATCH', '/v2/images', 'GET, POST'],
    ['POST', '/v2/images/0d3c1ec4-0b4c-4c9b-9a39-5dd8f9d1f1a8', 'GET, PATCH, DELETE'],
    ['PUT', '/v2/images/anything', 'GET, PATCH, DELETE'],
    ['POST', '/v2/images/anything/file', 'GET, PUT'],
    ['DELETE', '/v2/images/anything/file', 'GET, PUT'],
    ['GET', '/v2/images/anything/stage', 'PUT'],
    ['GET', '/v2/images/anything/import', 'POST'],
    ['GET', '/v2/images/anything/actions/deactivate', 'POST'],
    ['DELETE', '/v2/images/anything/members', 'GET, POST'],
    ['POST', '/v2/images/anything/members/someone', 'GET, PUT, DELETE'],
    ['POST', '/v2/info/import', 'GET'],
    ['PUT', '/v2/info/stores', 'GET'],
    ['POST', '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type', 'GET, PUT, DELETE'],
    ['PATCH', '/v2/metadefs/namespaces', 'GET, POST'],
    ['GET', '/v2/stores/file/anything', 'DELETE'],
    ['POST', '/v2.1/images/anything', 'GET, PATCH, DELETE'],
  ];
  it.each(cases)('should answer %s %s with 405, Allow: %s and webob\'s text in each form', async (method, target, allow) => {
    for (const accept of [{}, { Accept: 'application/json' }, { Accept: 'text/html' }, { Accept: '*/*' }]) {
      const { glance: g, demo: d } = await both(method, target, accept);
      expect(d).toEqual(g);
      expect({ status: d.status, allow: d.allow, requestId: d.requestId }).toEqual({ status: 405, allow, requestId: true });
    }
    const plain = await send(demo.port, method, target);
    expect(plain.body.toString()).toBe(`405 Method Not Allowed\n\nThe method ${method} is not allowed for this resource. \n\n `);
    const json = await send(demo.port, method, target, { Accept: 'application/json' });
    expect(json.body.toString()).toBe(
      `{"message": "The method ${method} is not allowed for this resource. <br /><br />\\n", "code": "405 Method Not Allowed", "title": "Method Not Allowed"}`,
    );
  });

  it('should answer a HEAD of a path without GET with 405 and no body, as text/html', async () => {
    const { glance: g, demo: d } = await both('HEAD', '/v2/images/anything/import', { Accept: 'application/json' });
    expect(d).toEqual(g);
    expect(d).toMatchObject({ status: 405, allow: 'POST', contentType: 'text/html; charset=UTF-8', contentLength: '0', body: '' });
  });
});

describe('0. discovery: /v2/info', () => {
  it('should list the import methods this site enables (glance-direct)', async () => {
    const { glance: g, demo: d } = await both('GET', '/v2/info/import');
    expect(d).toEqual(g);
    expect(d.body).toBe('{"import-methods": {"description": "Import methods available.", "type": "array", "value": ["glance-direct"]}}');
  });

  it('should answer /v2/info/stores and /v2/info/stores/detail with 404 "Multi backend is not supported at this site."', async () => {
    for (const target of ['/v2/info/stores', '/v2/info/stores/detail']) {
      for (const accept of [{}, { Accept: 'application/json' }, { Accept: 'text/html' }]) {
        const { glance: g, demo: d } = await both('GET', target, accept);
        expect(d).toEqual(g);
        expect(d.status).toBe(404);
      }
      const { demo: d } = await both('GET', target, { Accept: 'application/json' });
      expect(d.body).toBe('{"message": "Multi backend is not supported at this site.<br /><br />\\n\\n\\n", "code": "404 Not Found", "title": "Not Found"}');
    }
  });

  it('should answer /v2/info/usage with an empty usage (no quotas)', async () => {
    const { glance: g, demo: d } = await both('GET', '/v2/info/usage');
    expect(d).toEqual(g);
    expect(d.body).toBe('{"usage": {}}');
  });
});

describe('3. the metadefs namespace list', () => {
  const stamp = (s: string | undefined) => (s ?? '').replace(/"created_at": ?"[^"]+"/g, '"created_at": "T"');

  it('should list OS::Compute::Hypervisor as Glance lists it, with first, schema and next in Glance\'s form', async () => {
    // Glance has Debian's 25 namespaces; the page whose one namespace is OS::Compute::Hypervisor is
    // the one after the namespace before it in Glance's order.
    const all = JSON.parse((await send(glance.port, 'GET', '/v2/metadefs/namespaces?limit=1000')).body.toString()) as { namespaces: { namespace: string }[] };
    const at = all.namespaces.findIndex((n) => n.namespace === 'OS::Compute::Hypervisor');
    expect(at).toBeGreaterThan(0);
    const before = all.namespaces[at - 1]?.namespace ?? '';
    const g = view(await send(glance.port, 'GET', `/v2/metadefs/namespaces?limit=1&marker=${encodeURIComponent(before)}`), glance.port);
    const d = view(await send(demo.port, 'GET', '/v2/metadefs/namespaces?limit=1'), demo.port);
    expect({ ...d, contentLength: undefined, body: stamp(d.body) }).toEqual({ ...g, contentLength: undefined, body: stamp(g.body) });
    expect(JSON.parse(d.body ?? '')).toMatchObject({
      next: '/v2/metadefs/namespaces?limit=1&marker=OS%3A%3ACompute%3A%3AHypervisor',
      schema: '/v2/schemas/metadefs/namespaces',
      first: '/v2/metadefs/namespaces?limit=1',
    });
    // The whole list: every key in Glance's order, no `next` when the page is not full.
    const full = await send(demo.port, 'GET', '/v2/metadefs/namespaces');
    expect(full.status).toBe(200);
    const doc = JSON.parse(full.body.toString()) as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual(['namespaces', 'schema', 'first']);
    expect(doc['first']).toBe('/v2/metadefs/namespaces');
    const hv = JSON.parse(g.body ?? '') as { namespaces: unknown[] };
    expect(stamp(JSON.stringify(doc['namespaces']))).toBe(stamp(JSON.stringify(hv.namespaces)));
  });

  it('should page past the last namespace to an empty page, keeping other parameters in first and next', async () => {
    const target = '/v2/metadefs/namespaces?limit=3&marker=OS::Compute::Hypervisor&x=a%20b*~&sort_dir=asc';
    const d = await send(demo.port, 'GET', target);
    expect(d.status).toBe(200);
    expect(d.body.toString()).toBe('{"namespaces": [], "schema": "/v2/schemas/metadefs/namespaces", "first": "/v2/metadefs/namespaces?limit=3&x=a+b%2A~&sort_dir=asc"}');
    // Glance's `first` for the same parameters (its page is not empty: it has more namespaces).
    const g = JSON.parse((await send(glance.port, 'GET', target)).body.toString()) as { first: string };
    expect(g.first).toBe('/v2/metadefs/namespaces?limit=3&x=a+b%2A~&sort_dir=asc');
  });

  it.each([
    ['limit=0', 200],
    ['limit=-1', 400],
    ['limit=x', 500],
    ['marker=nope', 404],
    ['sort_dir=up', 400],
    ['visibility=shared', 400],
    ['visibility=private', 200],
    ['resource_types=OS::Nothing::Here', 200],
  ])('should answer ?%s as Glance does (%s)', async (query, status) => {
    for (const accept of [{}, { Accept: 'application/json' }]) {
      const { glance: g, demo: d } = await both('GET', `/v2/metadefs/namespaces?${query}`, accept);
      expect(d).toEqual(g);
      expect(d.status).toBe(status);
    }
  });
});
