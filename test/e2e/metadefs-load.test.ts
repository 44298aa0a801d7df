/**
 * The shipped OS::Compute::Hypervisor namespace (dist/lib/defaults/compute-hypervisor.json) is a file an
 * operator can load into any Glance: load it with `glance-manage db_load_metadefs` into a real Glance
 * 25.1.0 (test/glance/, a state folder and port of its own) whose metadefs were unloaded first, and
 * check that Glance then serves `vz`. Before that, the demo's hypervisor_type property is compared byte
 * for byte with the one Glance serves from Debian's metadefs.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { glanceEnv, startRealGlance, type RealGlance } from '../helpers/glance';
import { ROOT, startDemo, type Demo } from '../helpers/processes';

const GLANCE_MANAGE = '/usr/bin/glance-manage';
const SHIPPED = path.join(ROOT, 'dist', 'lib', 'defaults', 'compute-hypervisor.json');
const NS = 'OS::Compute::Hypervisor';
const HYPERVISORS = ['baremetal', 'hyperv', 'kvm', 'lxc', 'powervm', 'qemu', 'uml', 'vmware', 'vz', 'xen'];
const VZ_LINE = 'VZ - Virtuozzo OS Containers and Virtual Machines (through libvirt)';
const TEST_TIMEOUT_MS = 180000;

/** Run glance-manage; its output is in the error when it fails. */
function manage(glance: RealGlance, ...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(GLANCE_MANAGE, [...glance.configArgs, ...args], { env: glanceEnv(), timeout: 150000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`glance-manage ${args.join(' ')} failed (${error.message}):\n${stdout}${stderr}`)) : resolve(),
    );
  });
}

function assertPrerequisites(): void {
  if (!existsSync(GLANCE_MANAGE)) throw new Error(`${GLANCE_MANAGE} is missing: install the Debian package glance-common (bash .ci/run does).`);
  if (!existsSync(SHIPPED)) throw new Error(`${SHIPPED} is missing: run \`npm run build\` first.`);
}

describe('the shipped compute-hypervisor.json in a real Glance', () => {
  let glance: RealGlance | undefined;
  let demo: Demo | undefined;

  async function get(base: string, p: string): Promise<{ status: number; text: string }> {
    const res = await fetch(`${base}${p}`, { headers: { accept: 'application/json', 'x-auth-token': 'x' } });
    return { status: res.status, text: Buffer.from(await res.arrayBuffer()).toString('utf8') };
  }

  function started(): RealGlance {
    if (!glance) throw new Error('the real Glance did not start');
    return glance;
  }

  beforeAll(async () => {
    assertPrerequisites();
    [glance, demo] = await Promise.all([startRealGlance(), startDemo()]);
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await Promise.all([glance?.stop(), demo?.stop()]);
  }, 90000);

  it("should serve the demo's hypervisor_type byte for byte as Glance serves Debian's", async () => {
    if (!demo) throw new Error('the demo server did not start');
    const p = `/v2/metadefs/namespaces/${NS}/properties/hypervisor_type`;
    const [real, ours] = await Promise.all([get(started().url, p), get(demo.url, p)]);
    expect(real.status).toBe(200);
    expect(ours).toEqual(real);
  });

  it(
    'should serve vz in hypervisor_type after glance-manage db_load_metadefs of a folder holding only the shipped file',
    async () => {
      const real = started();
      const base = real.url;

      // Remove Debian's metadefs (which already hold the namespace) so only our file can bring it back.
      await manage(real, 'db_unload_metadefs');
      expect((await get(base, `/v2/metadefs/namespaces/${NS}`)).status).toBe(404);

      const loadDir = path.join(real.state, 'load');
      mkdirSync(loadDir);
      copyFileSync(SHIPPED, path.join(loadDir, 'compute-hypervisor.json'));
      await manage(real, 'db_load_metadefs', loadDir);

      const property = await get(base, `/v2/metadefs/namespaces/${NS}/properties/hypervisor_type`);
      expect(property.status).toBe(200);
      const doc = JSON.parse(property.text) as { name: string; enum: string[]; description: string };
      expect(doc.name).toBe('hypervisor_type');
      expect(doc.enum).toEqual(HYPERVISORS);
      expect(doc.description).toContain(VZ_LINE);

      const namespace = await get(base, `/v2/metadefs/namespaces/${NS}`);
      expect(namespace.status).toBe(200);
      expect(JSON.parse(namespace.text)).toMatchObject({
        namespace: NS,
        resource_type_associations: [expect.objectContaining({ name: 'OS::Glance::Image' })],
      });
    },
    TEST_TIMEOUT_MS,
  );
});
