/**
 * The sidecar in front of a pre-Ocata service (test/fixtures/old-glance.ts), which allows location
 * changes in any status, ignores Range, lists no ploop and has no vz: through the sidecar, the
 * behaviours of BEHAVIOUR.md it lacks are there, and a refused change never reaches it.
 */
import { call, plainError } from '../helpers/http';
import { FIXTURE, startBlobServer, startCli, type BlobServer, type RunningProcess } from '../helpers/processes';
import { startOldGlance, type OldGlance } from '../fixtures/old-glance';

const V21 = 'application/openstack-images-v2.1-json-patch';
const plain = plainError;

let old: OldGlance;
let sidecar: RunningProcess;
let blobs: BlobServer;

/** An active image with two http locations, made through the sidecar. */
async function activeWithTwo(): Promise<string> {
  const created = await call(sidecar.url, 'POST', '/v2/images', JSON.stringify({ name: 'o', disk_format: 'raw', container_format: 'bare' }), { 'content-type': 'application/json' });
  expect(created.status).toBe(201);
  const { id } = JSON.parse(created.body.toString()) as { id: string };
  for (const url of [blobs.put(`${id}-a`, FIXTURE), blobs.put(`${id}-b`, FIXTURE)]) {
    const added = await call(sidecar.url, 'PATCH', `/v2/images/${id}`, JSON.stringify([{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }]), { 'content-type': V21 });
    expect(added.status).toBe(200);
  }
  expect(old.store.get(id)?.status).toBe('active');
  return id;
}

beforeAll(async () => {
  [old, blobs] = await Promise.all([startOldGlance(), startBlobServer()]);
  sidecar = await startCli(['proxy', '--upstream', old.url, '--legacy-upstream', 'true', '--port', '0', '--host', '127.0.0.1']);
});

afterAll(async () => {
  await sidecar?.stop();
  await Promise.all([old?.close(), blobs?.close()]);
});

describe('1. Location changes through the sidecar, in front of a service without the guard', () => {
  it('should let the old service itself remove a location of a deactivated image (the behaviour it lacks)', async () => {
    const id = await activeWithTwo();
    await old.setStatus(id, 'deactivated');
    const direct = await call(old.url, 'PATCH', `/v2/images/${id}`, JSON.stringify([{ op: 'remove', path: '/locations/0' }]), { 'content-type': V21 });
    expect(direct.status).toBe(200);
    expect(old.store.get(id)?.locations).toHaveLength(1);
  });

  it.each(['deactivated', 'saving', 'killed', 'queued', 'uploading', 'importing'])(
    'should 409 a location removal of a %s image and leave the old service untouched',
    async (status) => {
      const id = await activeWithTwo();
      await old.setStatus(id, status);
      const before = old.store.get(id);
      const res = await call(sidecar.url, 'PATCH', `/v2/images/${id}`, JSON.stringify([{ op: 'remove', path: '/locations/0' }]), { 'content-type': V21 });
      expect(res.status).toBe(409);
      expect(res.body.toString()).toBe(plain('409 Conflict', `It's not allowed to remove locations if image status is ${status}.`));
      expect(old.store.get(id)).toEqual(before);
    },
  );

  it.each(['deactivated', 'saving', 'killed', 'uploading'])('should 409 a location replace and add on a %s image', async (status) => {
    const id = await activeWithTwo();
    await old.setStatus(id, status);
    const before = old.store.get(id);
    const replace = await call(sidecar.url, 'PATCH', `/v2/images/${id}`, JSON.stringify([{ op: 'replace', path: '/locations', value: [{ url: 'http://127.0.0.1:1/c', metadata: {} }] }]), { 'content-type': V21 });
    expect(replace.status).toBe(409);
    expect(replace.body.toString()).toBe(plain('409 Conflict', `It's not allowed to replace locations if image status is ${status}.`));
    const add = await call(sidecar.url, 'PATCH', `/v2/images/${id}`, JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: 'http://127.0.0.1:1/c', metadata: {} } }]), { 'content-type': V21 });
    expect(add.status).toBe(409);
    expect(add.body.toString()).toBe(plain('409 Conflict', `It's not allowed to add locations if image status is ${status}.`));
    expect(old.store.get(id)).toEqual(before);
  });

  it('should let a location removal of an active image through to the old service', async () => {
    const id = await activeWithTwo();
    const res = await call(sidecar.url, 'PATCH', `/v2/images/${id}`, JSON.stringify([{ op: 'remove', path: '/locations/-' }]), { 'content-type': V21 });
    expect(res.status).toBe(200);
    expect(old.store.get(id)?.locations.map((l) => l.url)).toEqual([`${blobs.url}/${id}-a`]);
  });
});

describe('2. and 3. through the sidecar, in front of a service without ranges, ploop or vz', () => {
  it('should serve ranges from an old service that understands only the legacy form', async () => {
    const created = await call(sidecar.url, 'POST', '/v2/images', JSON.stringify({ name: 'd', disk_format: 'raw', container_format: 'bare' }), { 'content-type': 'application/json' });
    const { id } = JSON.parse(created.body.toString()) as { id: string };
    expect((await call(sidecar.url, 'PUT', `/v2/images/${id}/file`, FIXTURE, { 'content-type': 'application/octet-stream' })).status).toBe(204);
    const res = await call(sidecar.url, 'GET', `/v2/images/${id}/file`, undefined, { range: 'bytes=-5' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 27-31/32');
    expect(res.body.toString()).toBe('rstuv');
  });

  it("should add ploop to the old service's schema", async () => {
    const res = await call(sidecar.url, 'GET', '/v2/schemas/image');
    expect(res.status).toBe(200);
    const schema = JSON.parse(res.body.toString()) as { properties: { disk_format: { enum: unknown[] } } };
    expect(schema.properties.disk_format.enum).toEqual([null, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop']);
  });

  it("should add vz to the old service's OS::Compute::Hypervisor namespace", async () => {
    const direct = await call(old.url, 'GET', '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type');
    expect((JSON.parse(direct.body.toString()) as { enum: string[] }).enum).not.toContain('vz');
    const res = await call(sidecar.url, 'GET', '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type');
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body.toString()) as { enum: string[] }).enum).toEqual(['baremetal', 'hyperv', 'kvm', 'lxc', 'powervm', 'qemu', 'uml', 'vmware', 'vz', 'xen']);
  });
});
