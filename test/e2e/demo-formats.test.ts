/**
 * Formats and metadefs through the demo server process (BEHAVIOUR.md section 3): the schemas' format
 * enums, Glance's word-for-word 400 for an unknown format, the OS::Compute::Hypervisor namespace with
 * `vz`, and the real Debian `glance` client using all of it. Expected bodies were recorded from the
 * real Glance 25.1.0 (test/glance/); test/e2e/metadefs-load.test.ts compares the property body with
 * a running real Glance.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { glance, parseTable } from '../helpers/glance-client';
import { ROOT, startDemo, type Demo } from '../helpers/processes';

const NS = 'OS::Compute::Hypervisor';
const CLI_TEST_TIMEOUT_MS = 120000;

const DISK_FORMATS = [null, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'];
const CONTAINER_FORMATS = [null, 'ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'];
const HYPERVISORS = ['baremetal', 'hyperv', 'kvm', 'lxc', 'powervm', 'qemu', 'uml', 'vmware', 'vz', 'xen'];
const VZ_LINE = 'VZ - Virtuozzo OS Containers and Virtual Machines (through libvirt)';
const PATCH_TYPE = 'application/openstack-images-v2.1-json-patch';

/** The exact body of the real Glance 25.1.0 for `{"disk_format": "nope"}` (the \n are JSON escapes). */
const NOPE_BODY = String.raw`{"message": "Provided object does not match schema 'image': 'nope' is not one of [None, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop']\n\nFailed validating 'enum' in schema['properties']['disk_format']:\n    {'description': 'Format of the disk',\n     'enum': [None,\n              'ami',\n              'ari',\n              'aki',\n              'vhd',\n              'vhdx',\n              'vmdk',\n              'raw',\n              'qcow2',\n              'vdi',\n              'iso',\n              'ploop'],\n     'type': ['null', 'string']}\n\nOn instance['disk_format']:\n    'nope'<br /><br />\n\n\n", "code": "400 Bad Request", "title": "Bad Request"}`;

const plain = (status: string, message: string) => `${status}\n\n${message}\n\n   `;

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

type Json = Record<string, unknown>;

async function call(base: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const init: RequestInit = { method, headers: { accept: 'application/json', 'x-auth-token': 'x', ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'content-type': 'application/json', ...init.headers };
  }
  const res = await fetch(`${base}${p}`, init);
  return { status: res.status, headers: res.headers, text: Buffer.from(await res.arrayBuffer()).toString('utf8') };
}

const json = (reply: Reply): Json => JSON.parse(reply.text) as Json;

function enumOf(schema: Json, field: string): unknown {
  const props = schema.properties as Record<string, Json>;
  return props[field]?.enum;
}

describe('formats and metadefs of the demo server', () => {
  let demo: Demo | undefined;

  function url(): string {
    if (!demo) throw new Error('the demo server did not start');
    return demo.url;
  }

  async function createImage(props: Json): Promise<Reply> {
    return call(url(), 'POST', '/v2/images', props);
  }

  beforeAll(async () => {
    demo = await startDemo();
  }, 30000);

  afterAll(async () => {
    await demo?.close();
  });

  describe('image schemas', () => {
    it.each(['/v2/schemas/image', '/v2/schemas/images'])('should list Glance default format enums with null first in %s', async (p) => {
      const res = await call(url(), 'GET', p);
      expect(res.status).toBe(200);
      const doc = json(res);
      const schema = p.endsWith('images') ? (((doc.properties as Json).images as Json).items as Json) : doc;
      expect(enumOf(schema, 'disk_format')).toEqual(DISK_FORMATS);
      expect(enumOf(schema, 'container_format')).toEqual(CONTAINER_FORMATS);
    });
  });

  describe('format validation', () => {
    it('should create an image with disk_format ploop and container_format bare (201)', async () => {
      const res = await createImage({ disk_format: 'ploop', container_format: 'bare' });
      expect(res.status).toBe(201);
      expect(json(res)).toMatchObject({ disk_format: 'ploop', container_format: 'bare', status: 'queued' });
    });

    it('should refuse disk_format nope with the exact 400 body of the real Glance', async () => {
      const res = await createImage({ disk_format: 'nope' });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.text).toBe(NOPE_BODY);
    });

    it('should refuse disk_format PLOOP because formats are case-sensitive (400)', async () => {
      const res = await createImage({ disk_format: 'PLOOP' });
      expect(res.status).toBe(400);
      expect(json(res).message).toContain("'PLOOP' is not one of [None, 'ami'");
    });

    it('should refuse a PATCH replacing disk_format with nope (400, same body) and leave the image unchanged', async () => {
      const created = await createImage({ name: 'patched', disk_format: 'raw', container_format: 'bare' });
      expect(created.status).toBe(201);
      const id = json(created).id as string;

      const res = await call(url(), 'PATCH', `/v2/images/${id}`, [{ op: 'replace', path: '/disk_format', value: 'nope' }], {
        'content-type': PATCH_TYPE,
      });
      expect(res.status).toBe(400);
      expect(res.text).toBe(NOPE_BODY);

      const after = await call(url(), 'GET', `/v2/images/${id}`);
      expect(after.status).toBe(200);
      expect(json(after)).toMatchObject({ id, disk_format: 'raw', container_format: 'bare' });
    });

    it('should accept a PATCH replacing container_format with ovf (200)', async () => {
      const created = await createImage({ name: 'ovf', disk_format: 'raw', container_format: 'bare' });
      const id = json(created).id as string;
      const res = await call(url(), 'PATCH', `/v2/images/${id}`, [{ op: 'replace', path: '/container_format', value: 'ovf' }], {
        'content-type': PATCH_TYPE,
      });
      expect(res.status).toBe(200);
      expect(json(res)).toMatchObject({ id, container_format: 'ovf', disk_format: 'raw' });
    });
  });

  describe('metadefs', () => {
    it('should serve the OS::Compute::Hypervisor namespace with vz in hypervisor_type', async () => {
      const res = await call(url(), 'GET', `/v2/metadefs/namespaces/${NS}`);
      expect(res.status).toBe(200);
      const doc = json(res);
      expect(doc.namespace).toBe(NS);
      const props = doc.properties as Record<string, Json>;
      expect(props.hypervisor_type?.enum).toEqual(HYPERVISORS);
      expect(props.hypervisor_type?.description).toContain(VZ_LINE);
      expect(props.vm_mode).toBeDefined();
      expect((doc.resource_type_associations as Json[])[0]?.name).toBe('OS::Glance::Image');
      expect(doc.self).toBe(`/v2/metadefs/namespaces/${NS}`);
      expect(doc.schema).toBe('/v2/schemas/metadefs/namespace');
    });

    it('should serve the namespace properties with vz in hypervisor_type', async () => {
      const res = await call(url(), 'GET', `/v2/metadefs/namespaces/${NS}/properties`);
      expect(res.status).toBe(200);
      const props = json(res).properties as Record<string, Json>;
      expect(props.hypervisor_type?.enum).toEqual(HYPERVISORS);
      expect(props.hypervisor_type?.description).toContain(VZ_LINE);
      expect(props.vm_mode).toBeDefined();
    });

    it('should serve hypervisor_type with the exact body of the real Glance (raw UTF-8 ®)', async () => {
      const res = await call(url(), 'GET', `/v2/metadefs/namespaces/${NS}/properties/hypervisor_type`);
      expect(res.status).toBe(200);
      expect(res.text).toContain('Microsoft® hyperv');
      expect(res.text).not.toContain('\\u00ae');

      const shipped = (JSON.parse(readFileSync(path.join(ROOT, 'lib', 'defaults', 'compute-hypervisor.json'), 'utf8')) as {
        properties: Record<string, { title: string; description: string; type: string; enum: string[] }>;
      }).properties.hypervisor_type;
      if (!shipped) throw new Error('the shipped compute-hypervisor.json has no hypervisor_type');
      const fromShipped =
        `{"name": "hypervisor_type", "type": ${JSON.stringify(shipped.type)}, "title": ${JSON.stringify(shipped.title)}, ` +
        `"description": ${JSON.stringify(shipped.description)}, "enum": [${shipped.enum.map((v) => JSON.stringify(v)).join(', ')}]}`;
      expect(res.text).toBe(fromShipped);
      expect((JSON.parse(res.text) as Json).enum).toEqual(HYPERVISORS);
    });

    it.each([
      [`/v2/metadefs/namespaces/OS::Nope`, 'Metadata definition namespace=OS::Nope was not found.'],
      [`/v2/metadefs/namespaces/${NS}/properties/nope`, 'Could not find property nope'],
      [`/v2/metadefs/namespaces/OS::Nope/properties`, 'Namespace OS::Nope not found'],
    ])('should answer 404 with Glance text for %s', async (p, message) => {
      const res = await call(url(), 'GET', p, undefined, { accept: 'text/plain' });
      expect(res.status).toBe(404);
      expect(res.text).toBe(plain('404 Not Found', message));
    });

    it.each(['/v2/schemas/metadefs/namespace', '/v2/schemas/metadefs/property'])('should answer 200 JSON for %s', async (p) => {
      const res = await call(url(), 'GET', p);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(typeof json(res).name).toBe('string');
    });
  });

  describe('the real glance client', () => {
    it(
      'should create a ploop image with image-create --disk-format ploop',
      async () => {
        const result = await glance(url(), 'image-create', '--name', 'p', '--disk-format', 'ploop', '--container-format', 'bare');
        expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
        const fields = parseTable(result.stdout);
        expect(fields.get('name')).toBe('p');
        expect(fields.get('disk_format')).toBe('ploop');
        expect(fields.get('container_format')).toBe('bare');
      },
      CLI_TEST_TIMEOUT_MS,
    );

    it(
      'should show the OS::Compute::Hypervisor namespace with md-namespace-show',
      async () => {
        const result = await glance(url(), 'md-namespace-show', NS);
        expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
        expect(parseTable(result.stdout).get('namespace')).toBe(NS);
      },
      CLI_TEST_TIMEOUT_MS,
    );

    it(
      'should list "vz" in md-property-show of hypervisor_type',
      async () => {
        const result = await glance(url(), 'md-property-show', NS, 'hypervisor_type');
        expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
        expect(result.stdout).toContain('"vz"');
      },
      CLI_TEST_TIMEOUT_MS,
    );
  });
});
