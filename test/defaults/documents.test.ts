/**
 * BEHAVIOUR.md section 3 in front of an older image service: its schema lacks ploop and its
 * namespace lacks vz; imageSchemas and hypervisorMetadefs merge them in, or serve their own on 404.
 */
import { gzipSync, brotliCompressSync } from 'node:zlib';
import express, { type Express } from 'express';
import request from 'supertest';
import { express4 } from '../helpers/http';
import { hypervisorMetadefs, imageSchemas } from '../../lib/defaults/documents';
import { glanceErrorHandler } from '../../lib/errors';

const OLD_DISK = [null, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso'];
const NEW_DISK = [...OLD_DISK, 'ploop'];
const OLD_HV = ['baremetal', 'hyperv', 'kvm', 'lxc', 'powervm', 'qemu', 'uml', 'vmware', 'xen'];
const NEW_HV = ['baremetal', 'hyperv', 'kvm', 'lxc', 'powervm', 'qemu', 'uml', 'vmware', 'vz', 'xen'];

const oldSchema = () => ({
  name: 'image',
  properties: { disk_format: { type: ['null', 'string'], enum: OLD_DISK }, container_format: { type: ['null', 'string'], enum: [null, 'bare', 'ovf'] }, name: { type: 'string' } },
});
const oldProperty = () => ({ type: 'string', title: 'Hypervisor Type', description: 'Hypervisor type. vmware - VMware vsphere. For more information, see: x', enum: OLD_HV });

/** An older image service: the handlers the middlewares sit in front of. */
function oldService(make: typeof express, mode: 'plain' | 'gzip' | 'br' | 'missing' | 'text'): Express {
  const a = make();
  a.use(imageSchemas());
  a.use(hypervisorMetadefs());
  const json = (res: express.Response, doc: unknown) => {
    const body = Buffer.from(JSON.stringify(doc));
    if (mode === 'missing') return res.status(404).type('text/plain').send('404 Not Found\n\nThe resource could not be found.\n\n   ');
    if (mode === 'text') return res.status(200).type('text/plain').send(body);
    res.setHeader('ETag', '"old"');
    if (mode === 'gzip') return res.status(200).type('application/json').set('Content-Encoding', 'gzip').send(gzipSync(body));
    if (mode === 'br') return res.status(200).type('application/json').set('Content-Encoding', 'br').send(brotliCompressSync(body));
    return res.status(200).type('application/json').send(body);
  };
  a.get('/v2/schemas/image', (_req, res) => json(res, oldSchema()));
  a.get('/v2/schemas/images', (_req, res) => json(res, { name: 'images', properties: { images: { type: 'array', items: oldSchema() } } }));
  a.get('/v2/metadefs/namespaces/:ns', (_req, res) => json(res, { namespace: 'OS::Compute::Hypervisor', properties: { hypervisor_type: oldProperty() } }));
  a.get('/v2/metadefs/namespaces/:ns/properties/:name', (_req, res) => json(res, { name: 'hypervisor_type', ...oldProperty() }));
  a.get('/v2/images/x', (_req, res) => res.status(304).end());
  a.use(glanceErrorHandler());
  return a;
}

describe.each([
  ['Express 5', express],
  ['Express 4', express4],
])('3. Documents in front of an older service (%s)', (_name, make) => {
  it.each(['plain', 'gzip', 'br'] as const)('should add ploop to the image schema (%s body), recomputing Content-Length and dropping the ETag', async (mode) => {
    const res = await request(oldService(make, mode)).get('/v2/schemas/image');
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.headers['etag']).toBeUndefined();
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.text));
    const doc = JSON.parse(res.text) as ReturnType<typeof oldSchema>;
    expect(doc.properties.disk_format.enum).toEqual(NEW_DISK);
    expect(doc.properties.container_format.enum).toEqual([null, 'ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed']);
    expect(doc.properties.name).toEqual({ type: 'string' });
  });

  it('should add ploop to the images schema', async () => {
    const res = await request(oldService(make, 'plain')).get('/v2/schemas/images');
    expect(res.status).toBe(200);
    expect((JSON.parse(res.text) as { properties: { images: { items: ReturnType<typeof oldSchema> } } }).properties.images.items.properties.disk_format.enum).toEqual(NEW_DISK);
  });

  it("should serve the suite's own schema when the service has none (404)", async () => {
    const res = await request(oldService(make, 'missing')).get('/v2/schemas/image');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect((JSON.parse(res.text) as { properties: { disk_format: { enum: unknown[] } } }).properties.disk_format.enum).toEqual(NEW_DISK);
  });

  it('should add vz to the namespace and to hypervisor_type, with the VZ line', async () => {
    const ns = await request(oldService(make, 'gzip')).get('/v2/metadefs/namespaces/OS::Compute::Hypervisor');
    expect(ns.status).toBe(200);
    const doc = JSON.parse(ns.text) as { properties: { hypervisor_type: { enum: string[]; description: string } } };
    expect(doc.properties.hypervisor_type.enum).toEqual(NEW_HV);
    expect(doc.properties.hypervisor_type.description).toContain('VZ - Virtuozzo OS Containers and Virtual Machines (through libvirt).');
    const property = await request(oldService(make, 'plain')).get('/v2/metadefs/namespaces/OS%3A%3ACompute%3A%3AHypervisor/properties/hypervisor_type');
    expect(Object.keys(JSON.parse(property.text) as object)).toEqual(['name', 'type', 'title', 'description', 'enum']);
    expect((JSON.parse(property.text) as { enum: string[] }).enum).toEqual(NEW_HV);
  });

  it("should serve the shipped namespace when the service has none (404)", async () => {
    const res = await request(oldService(make, 'missing')).get('/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type');
    expect(res.status).toBe(200);
    expect(res.text.startsWith('{"name": "hypervisor_type", "type": "string", "title": "Hypervisor Type", "description": "Hypervisor type required by the image.')).toBe(true);
    expect(res.text).toContain('"enum": ["baremetal", "hyperv", "kvm", "lxc", "powervm", "qemu", "uml", "vmware", "vz", "xen"]');
  });

  it('should pass a body that is not JSON, HEAD, and a 304 untouched', async () => {
    const text = await request(oldService(make, 'text')).get('/v2/schemas/image');
    expect(text.status).toBe(200);
    expect(text.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(JSON.parse(text.text)).toEqual(oldSchema());
    const head = await request(oldService(make, 'plain')).head('/v2/schemas/image');
    expect(head.status).toBe(200);
    expect(head.headers['etag']).toBe('"old"');
    const notModified = await request(oldService(make, 'plain')).get('/v2/images/x');
    expect(notModified.status).toBe(304);
    expect(notModified.headers['content-length']).toBeUndefined();
  });

  it('should leave other namespaces alone', async () => {
    const res = await request(oldService(make, 'missing')).get('/v2/metadefs/namespaces/OS::Other');
    expect(res.status).toBe(404);
    expect(res.text).toBe('404 Not Found\n\nThe resource could not be found.\n\n   ');
  });
});
