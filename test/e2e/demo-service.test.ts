/**
 * The demo image service as a process: Glance's answers for the API it serves, data on disk that
 * survives restarts, and crash safety of uploads.
 */
import http from 'node:http';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { FIXTURE, startDemo, type Demo } from '../helpers/processes';

const plain = (status: string, message: string) => `${status}\n\n${message}\n\n   `;

async function call(demo: Demo, method: string, p: string, body?: string | Buffer, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { accept: 'text/plain', ...headers } };
  if (body !== undefined) init.body = body;
  const res = await fetch(`${demo.url}${p}`, init);
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

async function create(demo: Demo, props: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const res = await call(demo, 'POST', '/v2/images', JSON.stringify({ name: 'img', disk_format: 'raw', container_format: 'bare', ...props }), {
    'content-type': 'application/json',
  });
  expect(res.status).toBe(201);
  return JSON.parse(res.body.toString()) as Record<string, unknown>;
}

describe('demo image service', () => {
  let demo: Demo;
  beforeAll(async () => {
    demo = await startDemo();
  });
  afterAll(async () => {
    await demo?.close();
  });

  it('should 300 on / and 200 on /versions with the version list', async () => {
    const root = await call(demo, 'GET', '/');
    expect(root.status).toBe(300);
    expect(root.headers.get('content-type')).toBe('application/json');
    const doc = JSON.parse(root.body.toString()) as { versions: { id: string; status: string; links: { href: string }[] }[] };
    expect(doc.versions[0]).toEqual({ id: 'v2.15', status: 'CURRENT', links: [{ rel: 'self', href: `${demo.url}/v2/` }] });
    expect(doc.versions.map((v) => v.id)).toEqual(['v2.15', 'v2.9', 'v2.7', 'v2.6', 'v2.5', 'v2.4', 'v2.3', 'v2.2', 'v2.1', 'v2.0']);
    const versions = await call(demo, 'GET', '/versions');
    expect(versions.status).toBe(200);
    expect(versions.body.equals(root.body)).toBe(true);
  });

  it('should 201 on create with Glance fields, a Location header and the import methods', async () => {
    const res = await call(demo, 'POST', '/v2/images', JSON.stringify({ name: 'n1', disk_format: 'ploop', container_format: 'bare', foo: 'bar' }), {
      'content-type': 'application/json',
    });
    expect(res.status).toBe(201);
    const image = JSON.parse(res.body.toString()) as Record<string, unknown>;
    expect(res.headers.get('location')).toBe(`${demo.url}/v2/images/${String(image['id'])}`);
    expect(res.headers.get('openstack-image-import-methods')).toBe('glance-direct');
    expect(Object.keys(image)).toEqual([
      'foo', 'name', 'disk_format', 'container_format', 'visibility', 'size', 'virtual_size', 'status', 'checksum', 'protected', 'min_ram', 'min_disk',
      'owner', 'os_hidden', 'os_hash_algo', 'os_hash_value', 'id', 'created_at', 'updated_at', 'locations', 'tags', 'self', 'file', 'schema',
    ]);
    expect(image).toMatchObject({ foo: 'bar', name: 'n1', status: 'queued', size: null, checksum: null, locations: [], visibility: 'shared' });
    expect(String(image['created_at'])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('should 403 on creating an image with a read-only attribute', async () => {
    const res = await call(demo, 'POST', '/v2/images', JSON.stringify({ status: 'active' }), { 'content-type': 'application/json' });
    expect(res.status).toBe(403);
    expect(res.body.toString()).toBe(plain('403 Forbidden', "Attribute 'status' is read-only."));
  });

  it('should store an upload and serve it back byte for byte with Glance headers', async () => {
    const { id } = await create(demo);
    const put = await call(demo, 'PUT', `/v2/images/${String(id)}/file`, FIXTURE, { 'content-type': 'application/octet-stream' });
    expect(put.status).toBe(204);
    const image = JSON.parse((await call(demo, 'GET', `/v2/images/${String(id)}`)).body.toString()) as Record<string, unknown>;
    expect(image).toMatchObject({
      status: 'active',
      size: 32,
      virtual_size: 32,
      checksum: 'aa4bc671b4c1c7a38e29800f50ef6346',
      os_hash_algo: 'sha512',
      os_hash_value: 'bc54f6d705962f3eaf8f2558772d6fd2e72647032e358a4ef72b82abf38bb32637b00b03f980b9fa1ebcce068d257f4b418bd35870521c8c838b6bc76e765482',
    });
    const get = await call(demo, 'GET', `/v2/images/${String(id)}/file`);
    expect(get.status).toBe(200);
    expect(get.headers.get('content-type')).toBe('application/octet-stream');
    expect(get.headers.get('content-md5')).toBe('aa4bc671b4c1c7a38e29800f50ef6346');
    expect(get.headers.get('content-length')).toBe('32');
    expect(get.body.equals(FIXTURE)).toBe(true);
  });

  it('should 409 on a second upload to an active image', async () => {
    const { id } = await create(demo);
    await call(demo, 'PUT', `/v2/images/${String(id)}/file`, FIXTURE, { 'content-type': 'application/octet-stream' });
    const again = await call(demo, 'PUT', `/v2/images/${String(id)}/file`, FIXTURE, { 'content-type': 'application/octet-stream' });
    expect(again.status).toBe(409);
    expect(again.body.toString()).toBe(plain('409 Conflict', 'Image status transition from active to saving is not allowed'));
  });

  it('should 400 on an upload before the formats are set', async () => {
    const { id } = await create(demo, { disk_format: null, container_format: null });
    const put = await call(demo, 'PUT', `/v2/images/${String(id)}/file`, FIXTURE, { 'content-type': 'application/octet-stream' });
    expect(put.status).toBe(400);
    expect(put.body.toString()).toBe(plain('400 Bad Request', 'Properties disk_format, container_format must be set prior to saving data.'));
  });

  it('should 204 with no body when downloading a queued image', async () => {
    const { id } = await create(demo);
    const get = await call(demo, 'GET', `/v2/images/${String(id)}/file`);
    expect(get.status).toBe(204);
    expect(get.headers.get('content-length')).toBe('0');
    expect(get.body.length).toBe(0);
  });

  it('should 404 on ids that are not images, without touching the disk', async () => {
    for (const id of ['not-a-uuid', '..%2F..%2Fetc%2Fpasswd', '00000000-0000-0000-0000-000000000000']) {
      const res = await call(demo, 'GET', `/v2/images/${id}/file`);
      expect(res.status).toBe(404);
      expect(res.body.toString()).toBe(plain('404 Not Found', `No image found with ID ${decodeURIComponent(id)}`));
    }
  });

  it('should deactivate and reactivate, and 403 on deactivating a queued image', async () => {
    const { id } = await create(demo);
    const refused = await call(demo, 'POST', `/v2/images/${String(id)}/actions/deactivate`);
    expect(refused.status).toBe(403);
    expect(refused.body.toString()).toBe(plain('403 Forbidden', "Not allowed to deactivate image in status 'queued'"));
    await call(demo, 'PUT', `/v2/images/${String(id)}/file`, FIXTURE, { 'content-type': 'application/octet-stream' });
    expect((await call(demo, 'POST', `/v2/images/${String(id)}/actions/deactivate`)).status).toBe(204);
    expect((await call(demo, 'POST', `/v2/images/${String(id)}/actions/deactivate`)).status).toBe(204);
    expect(JSON.parse((await call(demo, 'GET', `/v2/images/${String(id)}`)).body.toString())).toMatchObject({ status: 'deactivated' });
    expect((await call(demo, 'POST', `/v2/images/${String(id)}/actions/reactivate`)).status).toBe(204);
    expect(JSON.parse((await call(demo, 'GET', `/v2/images/${String(id)}`)).body.toString())).toMatchObject({ status: 'active' });
  });

  it('should list newest first with a next link, and delete with 204 then 404', async () => {
    const a = await create(demo, { name: 'list-a' });
    const b = await create(demo, { name: 'list-b' });
    const page = JSON.parse((await call(demo, 'GET', '/v2/images?limit=1')).body.toString()) as { images: { id: string }[]; next: string; first: string };
    expect(page.images.map((i) => i.id)).toEqual([b['id']]);
    expect(page.first).toBe('/v2/images?limit=1');
    expect(page.next).toBe(`/v2/images?limit=1&marker=${String(b['id'])}`);
    const second = JSON.parse((await call(demo, 'GET', page.next)).body.toString()) as { images: { id: string }[] };
    expect(second.images.map((i) => i.id)).toEqual([a['id']]);
    expect((await call(demo, 'DELETE', `/v2/images/${String(a['id'])}`)).status).toBe(204);
    const gone = await call(demo, 'DELETE', `/v2/images/${String(a['id'])}`);
    expect(gone.status).toBe(404);
    expect(gone.body.toString()).toBe(plain('404 Not Found', `Failed to find image ${String(a['id'])} to delete`));
  });

  it('should serve the image schema with ploop among the disk formats', async () => {
    const res = await call(demo, 'GET', '/v2/schemas/image');
    expect(res.status).toBe(200);
    const schema = JSON.parse(res.body.toString()) as { properties: Record<string, { enum?: unknown[] }> };
    expect(schema.properties['disk_format']?.enum).toEqual([null, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop']);
    expect(schema.properties['container_format']?.enum).toEqual([null, 'ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed']);
  });
});

describe('demo image service: data on disk', () => {
  it('should keep every image across a restart', async () => {
    const first = await startDemo();
    const dir = first.dataDir;
    const res = await fetch(`${first.url}/v2/images`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'kept', disk_format: 'raw', container_format: 'bare' }),
    });
    const { id } = (await res.json()) as { id: string };
    expect((await fetch(`${first.url}/v2/images/${id}/file`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: FIXTURE })).status).toBe(204);
    await first.stop();
    const second = await startDemo([], dir);
    try {
      const image = (await (await fetch(`${second.url}/v2/images/${id}`)).json()) as Record<string, unknown>;
      expect(image).toMatchObject({ name: 'kept', status: 'active', size: 32, checksum: 'aa4bc671b4c1c7a38e29800f50ef6346' });
      const data = Buffer.from(await (await fetch(`${second.url}/v2/images/${id}/file`)).arrayBuffer());
      expect(data.equals(FIXTURE)).toBe(true);
    } finally {
      await second.close();
      await import('node:fs/promises').then((fs) => fs.rm(dir, { recursive: true, force: true }));
    }
  });

  it('should put an image whose upload was cut off by a crash back to queued, with no partial data', async () => {
    const first = await startDemo();
    const dir = first.dataDir;
    const res = await fetch(`${first.url}/v2/images`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'cut', disk_format: 'raw', container_format: 'bare' }),
    });
    const { id } = (await res.json()) as { id: string };
    const { hostname, port } = new URL(first.url);
    const upload = http.request({ hostname, port, method: 'PUT', path: `/v2/images/${id}/file`, headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } });
    upload.on('error', () => undefined);
    upload.write(Buffer.alloc(64 * 1024, 1));
    for (let i = 0; i < 100; i++) {
      const image = (await (await fetch(`${first.url}/v2/images/${id}`)).json()) as { status: string };
      if (image.status === 'saving') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await first.stop('SIGKILL');
    upload.destroy();
    const second = await startDemo([], dir);
    try {
      const image = (await (await fetch(`${second.url}/v2/images/${id}`)).json()) as Record<string, unknown>;
      expect(image).toMatchObject({ status: 'queued', size: null, checksum: null, locations: [] });
      expect(existsSync(path.join(dir, 'blobs', id))).toBe(false);
      expect(readdirSync(path.join(dir, 'tmp'))).toEqual([]);
      const get = await fetch(`${second.url}/v2/images/${id}/file`);
      expect(get.status).toBe(204);
      const put = await fetch(`${second.url}/v2/images/${id}/file`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: FIXTURE });
      expect(put.status).toBe(204);
    } finally {
      await second.close();
      await import('node:fs/promises').then((fs) => fs.rm(dir, { recursive: true, force: true }));
    }
  });
});
