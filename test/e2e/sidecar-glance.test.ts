/**
 * The sidecar (`glance-edge proxy`) in front of a real Glance 25: invisible except for the rows
 * BEHAVIOUR.md marks (ours), streaming data both ways, failing closed when the upstream is gone.
 */
import { randomBytes, createHash } from 'node:crypto';
import { call, plainError } from '../helpers/http';
import { startCli, type RunningProcess } from '../helpers/processes';
import { startRealGlance, type RealGlance } from '../helpers/glance';

const V21 = 'application/openstack-images-v2.1-json-patch';
const plain = plainError;

let glance: RealGlance;
let sidecar: RunningProcess;

async function create(base: string): Promise<string> {
  const res = await call(base, 'POST', '/v2/images', JSON.stringify({ name: 's', disk_format: 'raw', container_format: 'bare' }), { 'content-type': 'application/json' });
  expect(res.status).toBe(201);
  return (JSON.parse(res.body.toString()) as { id: string }).id;
}

beforeAll(async () => {
  glance = await startRealGlance();
  sidecar = await startCli(['proxy', '--upstream', glance.url, '--port', '0', '--host', '127.0.0.1']);
}, 180_000);

afterAll(async () => {
  await sidecar?.stop();
  await glance?.stop();
}, 60_000);

describe('the sidecar in front of a real Glance', () => {
  let id: string;
  const data = randomBytes(3 * 1024 * 1024 + 17);

  it('should stream an upload through to Glance and the same bytes back', async () => {
    id = await create(sidecar.url);
    const put = await call(sidecar.url, 'PUT', `/v2/images/${id}/file`, data, { 'content-type': 'application/octet-stream' });
    expect(put.status).toBe(204);
    const image = JSON.parse((await call(glance.url, 'GET', `/v2/images/${id}`)).body.toString()) as { status: string; size: number; checksum: string };
    expect(image).toMatchObject({ status: 'active', size: data.length, checksum: createHash('md5').update(data).digest('hex') });
    const get = await call(sidecar.url, 'GET', `/v2/images/${id}/file`);
    expect(get.status).toBe(200);
    expect(get.headers.get('content-length')).toBe(String(data.length));
    expect(get.headers.get('accept-ranges')).toBe('bytes');
    expect(get.body.equals(data)).toBe(true);
  });

  it('should 206 a range with Content-Range, exactly the slice', async () => {
    const res = await call(sidecar.url, 'GET', `/v2/images/${id}/file`, undefined, { range: 'bytes=1000-1999' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 1000-1999/${data.length}`);
    expect(res.body.equals(data.subarray(1000, 2000))).toBe(true);
  });

  it('should honour the legacy Content-Range request form with the deprecation headers', async () => {
    const res = await call(sidecar.url, 'GET', `/v2/images/${id}/file`, undefined, { 'content-range': 'bytes 10-19/*' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 10-19/${data.length}`);
    expect(res.headers.get('deprecation')).toBe('@1487721600');
    expect(res.body.equals(data.subarray(10, 20))).toBe(true);
  });

  it('should answer like Glance for an unknown image, byte for byte', async () => {
    const p = '/v2/images/00000000-0000-0000-0000-000000000000';
    const [through, direct] = await Promise.all([call(sidecar.url, 'GET', p), call(glance.url, 'GET', p)]);
    expect(through.status).toBe(404);
    expect(through.body.toString()).toBe(direct.body.toString());
    expect(through.headers.get('content-type')).toBe(direct.headers.get('content-type'));
  });

  it('should 409 a location removal on a queued image, as Glance does', async () => {
    const queued = await create(sidecar.url);
    const ops = JSON.stringify([{ op: 'remove', path: '/locations/0' }]);
    const through = await call(sidecar.url, 'PATCH', `/v2/images/${queued}`, ops, { 'content-type': V21 });
    const direct = await call(glance.url, 'PATCH', `/v2/images/${queued}`, ops, { 'content-type': V21 });
    expect(through.status).toBe(409);
    expect(through.body.toString()).toBe(plain('409 Conflict', "It's not allowed to remove locations if image status is queued."));
    expect(through.body.toString()).toBe(direct.body.toString());
  });

  it('should pass a patch without location ops through, the body byte for byte', async () => {
    const target = await create(sidecar.url);
    const res = await call(sidecar.url, 'PATCH', `/v2/images/${target}`, '[{"op": "replace", "path": "/name", "value": "r\u00e9nam\u00e9"}]  ', { 'content-type': V21 });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({ name: 'r\u00e9nam\u00e9' });
  });

  it('should add ploop and vz where Glance already has them, changing nothing', async () => {
    const schema = JSON.parse((await call(sidecar.url, 'GET', '/v2/schemas/image')).body.toString()) as { properties: { disk_format: { enum: unknown[] } } };
    expect(schema.properties.disk_format.enum).toContain('ploop');
    const [through, direct] = await Promise.all([
      call(sidecar.url, 'GET', '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type'),
      call(glance.url, 'GET', '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type'),
    ]);
    expect(through.status).toBe(200);
    expect(through.body.equals(direct.body)).toBe(true);
  });

  it('should 416 with Content-Range for a start past the image (ours: Glance omits it)', async () => {
    const res = await call(sidecar.url, 'GET', `/v2/images/${id}/file`, undefined, { range: `bytes=${data.length}-` });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${data.length}`);
  });
});

describe('the sidecar when the upstream is gone', () => {
  it('should 502 with a Glance error body, and refuse location changes (fail closed)', async () => {
    const orphan = await startCli(['proxy', '--upstream', 'http://127.0.0.1:9', '--port', '0', '--host', '127.0.0.1']);
    try {
      const res = await call(orphan.url, 'GET', '/v2/images');
      expect(res.status).toBe(502);
      expect(res.body.toString()).toBe(plain('502 Bad Gateway', 'The image service could not be reached (ECONNREFUSED).'));
      const patch = await call(orphan.url, 'PATCH', '/v2/images/00000000-0000-0000-0000-000000000000', '[{"op":"remove","path":"/locations/0"}]', { 'content-type': V21 });
      expect(patch.status).toBe(502);
    } finally {
      await orphan.stop();
    }
  });
});

