/**
 * Attacks on the demo server (`glance-edge demo`, the built CLI) over raw sockets: every spelling
 * of a location change of a deactivated image, and of one while an upload runs. The image record,
 * read back after each attack, shows whether anything reached the store.
 */
import { createHash } from 'node:crypto';
import { FIXTURE, startBlobServer, startDemo, type BlobServer, type Demo } from '../helpers/processes';
import { locationAttacks, OWNER, rawRequest, sendRaw, trickle, V21 } from '../fixtures/glance-upstream';

jest.setTimeout(60_000);

let demo: Demo;
let blobs: BlobServer;
let urls: string[];
const AUTH: [string, string][] = [['X-Auth-Token', OWNER]];

beforeAll(async () => {
  blobs = await startBlobServer();
  urls = [blobs.put('a', FIXTURE), blobs.put('b', FIXTURE)];
  demo = await startDemo();
}, 30_000);

afterAll(async () => {
  await demo?.close();
  await blobs?.close();
});

interface Record {
  id: string;
  status: string;
  locations: { url: string }[];
  checksum: string | null;
}

async function json(method: string, p: string, body?: unknown, type = 'application/json'): Promise<{ status: number; doc: Record }> {
  const answer = await sendRaw(demo.port, rawRequest(method, p, [['Accept', 'application/json'], ...(body === undefined ? [] : [['Content-Type', type] as [string, string]])], body === undefined ? undefined : JSON.stringify(body)));
  return { status: answer.status, doc: (answer.body.length > 0 ? JSON.parse(answer.body.toString()) : {}) as Record };
}

async function queued(): Promise<string> {
  const created = await json('POST', '/v2/images', { name: 'attack', disk_format: 'raw', container_format: 'bare' });
  expect(created.status).toBe(201);
  return created.doc.id;
}

/** An image with two locations, deactivated: no location may be removed, replaced or added. */
async function deactivated(): Promise<string> {
  const id = await queued();
  for (const url of urls) expect((await json('PATCH', `/v2/images/${id}`, [{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }], V21)).status).toBe(200);
  expect((await json('POST', `/v2/images/${id}/actions/deactivate`)).status).toBe(204);
  return id;
}

async function record(id: string): Promise<Record> {
  return (await json('GET', `/v2/images/${id}`)).doc;
}

/**
 * The demo answers a patch in another media type than Glance's own with Glance's 415, unjudged (it
 * changes nothing), and an id that is not a UUID (a trailing space) with its 404.
 */
const SERVICE_ANSWERS: { [name: string]: number } = {
  'upper-case v2.1 patch type': 415,
  'application/json': 415,
  'application/json-patch+json': 415,
  '/v2/images/{id}%20': 404,
  '/v2/images/{id}%20%20 with a query': 404,
};

describe('1. location changes through the demo, every spelling', () => {
  for (const attack of locationAttacks()) {
    const status = SERVICE_ANSWERS[attack.name] ?? attack.status;
    it(`should ${status} ${attack.cls}: ${attack.name} (deactivated image, remove)`, async () => {
      const id = await deactivated();
      const answer = await sendRaw(demo.port, attack.build(id, AUTH));
      expect(answer.status).toBe(status);
      const text = answer.body.toString();
      if (SERVICE_ANSWERS[attack.name] !== undefined) expect(text).toContain(status === 415 ? '415 Unsupported Media Type' : '404 Not Found');
      else if (attack.by === 'conflict') expect(text).toContain("It's not allowed to remove locations if image status is deactivated.");
      if (attack.by === 'ambiguous') expect(text).toContain('This request cannot be read unambiguously');
      const after = await record(id);
      expect(after.status).toBe('deactivated');
      expect(after.locations.map((l) => l.url)).toEqual(urls);
    });
  }
});

describe('1. the race: an upload in flight', () => {
  it("should 409 'saving' location changes by any spelling while an upload trickles in, then store the bytes", async () => {
    const id = await queued();
    // The demo routes /v2/ only (a /v2.1/ upload is its 404 at once); the id upper-case.
    const upload = trickle(demo.port, rawRequest('PUT', `/v2/images/${id.toUpperCase()}/file`, [['Content-Type', 'application/octet-stream'], ['Content-Length', String(FIXTURE.length)]]), FIXTURE.subarray(0, 8));
    await new Promise((r) => setTimeout(r, 200));
    const add = JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: urls[0], metadata: {} } }]);
    for (const request of [
      rawRequest('PATCH', `/v2/images/${id}`, [['Content-Type', V21]], add),
      rawRequest('PATCH', `/V2/Images/${id.toUpperCase()}/`, [['Content-Type', V21]], add),
      rawRequest('PATCH', `/images/${id}`, [['Accept', 'application/vnd.openstack.images-v2.1'], ['Content-Type', V21]], add),
      rawRequest('PATCH', `/v2/images/${id}`, [['Content-Type', V21]], JSON.stringify([{ op: 'replace', path: '/locations', value: [{ url: urls[1], metadata: {} }] }])),
    ]) {
      const answer = await sendRaw(demo.port, request);
      expect(answer.status).toBe(409);
      expect(answer.body.toString()).toMatch(/It's not allowed to (add|replace) locations if image status is saving\./);
    }
    upload.send(FIXTURE.subarray(8));
    expect((await upload.answer).status).toBe(204);
    const after = await record(id);
    expect(after).toMatchObject({ status: 'active', checksum: createHash('md5').update(FIXTURE).digest('hex') });
    // Only the demo's own file location: none of the attempted ones.
    expect(after.locations.filter((l) => urls.includes(l.url))).toEqual([]);
    expect(after.locations).toHaveLength(1);
    const download = await sendRaw(demo.port, rawRequest('GET', `/v2/images/${id}/file`, []));
    expect(download.status).toBe(200);
    expect(download.body.equals(FIXTURE)).toBe(true);
  });
});

describe('controls: what must still work in the demo', () => {
  it('should 200 a location removal on an active image and a property patch on a queued one', async () => {
    const id = await deactivated();
    expect((await json('POST', `/v2/images/${id}/actions/reactivate`)).status).toBe(204);
    const removed = await json('PATCH', `/v2/images/${id}`, [{ op: 'remove', path: '/locations/0' }], V21);
    expect(removed.status).toBe(200);
    expect(removed.doc.locations.map((l) => l.url)).toEqual([urls[1]]);
    const q = await queued();
    const prop = await json('PATCH', `/v2/images/${q}`, [{ op: 'add', path: '/os_distro', value: 'cirros' }], V21);
    expect(prop.status).toBe(200);
    expect((await record(q)).status).toBe('queued');
  });
});
