/**
 * Image members on the demo against the real Glance 25.1, live: the same requests to both, the same
 * status, the headers that matter and the same body bytes (image ids and dates normalised); and the
 * `glance` client's member commands on both, with the same output.
 */
import { glance as glanceCli } from '../helpers/glance-client';
import { startRealGlance, type RealGlance } from '../helpers/glance';
import { startDemo, type Demo } from '../helpers/processes';
import { send, type Answer } from '../helpers/http';

jest.setTimeout(120_000);

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const STAMP = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/g;
const normal = (s: string) => s.replace(UUID, 'ID').replace(STAMP, 'T');

function view(answer: Answer) {
  const h = answer.headers;
  return {
    status: answer.status,
    contentType: h['content-type'],
    contentLength: h['content-length'] === undefined ? undefined : 'present',
    requestId: typeof h['x-openstack-request-id'] === 'string',
    body: normal(answer.body.toString('utf8')),
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

const JSON_TYPE = { 'Content-Type': 'application/json' };

async function createBoth(props: Record<string, unknown> = {}): Promise<{ g: string; d: string }> {
  const body = JSON.stringify({ name: 'shared', disk_format: 'raw', container_format: 'bare', ...props });
  const [g, d] = await Promise.all([glance.port, demo.port].map((port) => send(port, 'POST', '/v2/images', JSON_TYPE, body)));
  expect([g?.status, d?.status]).toEqual([201, 201]);
  return { g: (JSON.parse(String(g?.body)) as { id: string }).id, d: (JSON.parse(String(d?.body)) as { id: string }).id };
}

async function both(ids: { g: string; d: string }, method: string, target: string, headers: Record<string, string> = {}, body?: string) {
  const g = await send(glance.port, method, target.replace('{id}', ids.g), headers, body);
  const d = await send(demo.port, method, target.replace('{id}', ids.d), headers, body);
  return { glance: view(g), demo: view(d) };
}

/** Send to both, expect the same answer with `status`, and return the demo's view. */
async function same(ids: { g: string; d: string }, status: number, method: string, target: string, body?: string, headers: Record<string, string> = {}) {
  const { glance: g, demo: d } = await both(ids, method, target, { ...(body === undefined ? {} : JSON_TYPE), ...headers }, body);
  expect({ request: `${method} ${target} ${body ?? ''}`, ...d }).toEqual({ request: `${method} ${target} ${body ?? ''}`, ...g });
  expect(d.status).toBe(status);
  return d;
}

describe('image members: the API, as Glance serves it to an admin', () => {
  it('should list, add, show, update and delete the members of a shared image', async () => {
    const ids = await createBoth();
    expect((await same(ids, 200, 'GET', '/v2/images/{id}/members')).body).toBe('{"members": [], "schema": "/v2/schemas/members"}');
    const added = await same(ids, 200, 'POST', '/v2/images/{id}/members', '{"member": "tenant-a"}');
    expect(added.contentType).toBe('application/json');
    expect(added.body).toBe('{"member_id": "tenant-a", "image_id": "ID", "status": "pending", "created_at": "T", "updated_at": "T", "schema": "/v2/schemas/member"}');
    await same(ids, 200, 'POST', '/v2/images/{id}/members', '{"member": "tenant-b", "extra": 1}');
    await same(ids, 409, 'POST', '/v2/images/{id}/members', '{"member": "tenant-a"}');
    const list = await same(ids, 200, 'GET', '/v2/images/{id}/members');
    expect(JSON.parse(list.body)).toEqual({
      members: ['tenant-a', 'tenant-b'].map((m) => ({ member_id: m, image_id: 'ID', status: 'pending', created_at: 'T', updated_at: 'T', schema: '/v2/schemas/member' })),
      schema: '/v2/schemas/members',
    });
    await same(ids, 200, 'GET', '/v2/images/{id}/members/tenant-a');
    await same(ids, 404, 'GET', '/v2/images/{id}/members/nobody');
    for (const status of ['accepted', 'rejected', 'pending', 'accepted']) {
      const updated = await same(ids, 200, 'PUT', '/v2/images/{id}/members/tenant-a', JSON.stringify({ status }));
      expect(JSON.parse(updated.body)).toMatchObject({ member_id: 'tenant-a', status });
    }
    await same(ids, 200, 'GET', '/v2/images/{id}/members/tenant-a');
    await same(ids, 404, 'PUT', '/v2/images/{id}/members/nobody', '{"status": "accepted"}');
    const removed = await same(ids, 204, 'DELETE', '/v2/images/{id}/members/tenant-b');
    expect(removed.body).toBe('');
    await same(ids, 404, 'DELETE', '/v2/images/{id}/members/tenant-b');
    expect(JSON.parse((await same(ids, 200, 'GET', '/v2/images/{id}/members')).body).members).toHaveLength(1);
    // Members do not change the image document.
    const image = await same(ids, 200, 'GET', '/v2/images/{id}');
    expect(JSON.parse(image.body)).toMatchObject({ visibility: 'shared', status: 'queued' });
  });

  it('should refuse members on an image that is not shared, with each endpoint\'s text, and keep them for when it is shared again', async () => {
    const ids = await createBoth();
    await same(ids, 200, 'POST', '/v2/images/{id}/members', '{"member": "kept"}');
    const patch = (visibility: string) => JSON.stringify([{ op: 'replace', path: '/visibility', value: visibility }]);
    const patchType = { 'Content-Type': 'application/openstack-images-v2.1-json-patch' };
    await same(ids, 200, 'PATCH', '/v2/images/{id}', patch('private'), patchType);
    for (const accept of [{}, { Accept: 'application/json' }]) {
      await same(ids, 403, 'GET', '/v2/images/{id}/members', undefined, accept);
      await same(ids, 403, 'POST', '/v2/images/{id}/members', '{"member": "other"}', accept);
      await same(ids, 404, 'GET', '/v2/images/{id}/members/kept', undefined, accept);
      await same(ids, 403, 'PUT', '/v2/images/{id}/members/kept', '{"status": "accepted"}', accept);
      await same(ids, 403, 'DELETE', '/v2/images/{id}/members/kept', undefined, accept);
    }
    const listed = await send(demo.port, 'GET', `/v2/images/${ids.d}/members`);
    expect(listed.body.toString()).toBe(`403 Forbidden\n\nNot allowed to list members for image ${ids.d}: Only shared images have members.\n\n   `);
    await same(ids, 200, 'PATCH', '/v2/images/{id}', patch('shared'), patchType);
    const back = await same(ids, 200, 'GET', '/v2/images/{id}/members');
    expect(JSON.parse(back.body).members).toEqual([expect.objectContaining({ member_id: 'kept', status: 'pending' })]);
  });

  it.each([
    ['no body', 'POST', '/v2/images/{id}/members', '', 400],
    ['not JSON', 'POST', '/v2/images/{id}/members', 'nope', 400],
    ['a list', 'POST', '/v2/images/{id}/members', '[]', 400],
    ['a string', 'POST', '/v2/images/{id}/members', '"tenant"', 400],
    ['null', 'POST', '/v2/images/{id}/members', 'null', 400],
    ['a number for a status body', 'PUT', '/v2/images/{id}/members/tenant', '1', 400],
    ['no member', 'POST', '/v2/images/{id}/members', '{}', 400],
    ['an empty member', 'POST', '/v2/images/{id}/members', '{"member": ""}', 400],
    ['a null member', 'POST', '/v2/images/{id}/members', '{"member": null}', 400],
    ['no status', 'PUT', '/v2/images/{id}/members/tenant', '{}', 400],
    ['a status that is not one', 'PUT', '/v2/images/{id}/members/tenant', '{"status": "bogus"}', 400],
    ['a list for a status', 'PUT', '/v2/images/{id}/members/tenant', '[]', 400],
  ])('should answer %s (%s %s) as Glance does', async (_name, method, target, body, status) => {
    const ids = await createBoth();
    await same(ids, 200, 'POST', '/v2/images/{id}/members', '{"member": "tenant"}');
    for (const accept of [{}, { Accept: 'application/json' }]) await same(ids, status, method, target, body, accept);
  });

  it('should answer each endpoint for an image that does not exist with Glance\'s 404', async () => {
    const ids = { g: '00000000-0000-0000-0000-000000000000', d: '00000000-0000-0000-0000-000000000000' };
    for (const [method, target, body] of [
      ['GET', '/v2/images/{id}/members', undefined],
      ['POST', '/v2/images/{id}/members', '{"member": "t"}'],
      ['GET', '/v2/images/{id}/members/t', undefined],
      ['PUT', '/v2/images/{id}/members/t', '{"status": "accepted"}'],
      ['DELETE', '/v2/images/{id}/members/t', undefined],
      ['GET', '/v2/images/not-an-id/members', undefined],
    ] as const) {
      const d = await same(ids, 404, method, target, body);
      expect(d.body).toMatch(/^404 Not Found\n\nImage (ID|not-an-id) not found\.\n\n {3}$/);
    }
  });

  it('should refuse the 129th member (Glance\'s image_member_quota, 128) with Glance\'s 413', async () => {
    const ids = await createBoth();
    for (let i = 0; i < 128; i++) {
      const body = JSON.stringify({ member: `t${i}` });
      const [g, d] = await Promise.all([send(glance.port, 'POST', `/v2/images/${ids.g}/members`, JSON_TYPE, body), send(demo.port, 'POST', `/v2/images/${ids.d}/members`, JSON_TYPE, body)]);
      expect([i, g.status, d.status]).toEqual([i, 200, 200]);
    }
    const d = await same(ids, 413, 'POST', '/v2/images/{id}/members', '{"member": "one-too-many"}');
    expect(d.body).toBe(
      '413 Request Entity Too Large\n\nImage member limit exceeded for image ID: The limit has been exceeded on the number of allowed image members for this image. Attempted: 129, Maximum: 128:\n\n   ',
    );
  });

  it('should serve the member schemas as Glance does', async () => {
    const ids = { g: '', d: '' };
    for (const target of ['/v2/schemas/member', '/v2/schemas/members']) {
      const { glance: g, demo: d } = await both(ids, 'GET', target);
      expect(d).toEqual(g);
      expect(d.status).toBe(200);
    }
  });

  it('should give the glance client the same member-create, member-list, member-update and member-delete output', async () => {
    const ids = await createBoth();
    const run = async (...args: string[]) => {
      const [g, d] = await Promise.all([glanceCli(glance.url, ...args.map((a) => a.replace('{id}', ids.g))), glanceCli(demo.url, ...args.map((a) => a.replace('{id}', ids.d)))]);
      const out = (r: { code: number; stdout: string; stderr: string }) => ({ code: r.code, stdout: normal(r.stdout), stderr: normal(r.stderr) });
      expect({ args, ...out(d) }).toEqual({ args, ...out(g) });
      return out(d);
    };
    const created = await run('member-create', '{id}', 'tenant-cli');
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('| ID | tenant-cli | pending |');
    expect((await run('member-list', '--image-id', '{id}')).stdout).toContain('tenant-cli');
    expect((await run('member-update', '{id}', 'tenant-cli', 'accepted')).stdout).toContain('accepted');
    expect((await run('member-get', '{id}', 'tenant-cli')).code).toBe(0);
    expect((await run('member-delete', '{id}', 'tenant-cli')).code).toBe(0);
    const empty = await run('member-list', '--image-id', '{id}');
    expect(empty.code).toBe(0);
    expect(empty.stdout).not.toContain('tenant-cli');
  });
});
