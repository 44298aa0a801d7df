/**
 * The shipped OS::Compute::Hypervisor namespace (dist/defaults/compute-hypervisor.json) is a file an
 * operator can load into any Glance: load it with `glance-manage db_load_metadefs` into a REAL Glance
 * 25.1.0 (../shared/glance, its own state folder and port) whose metadefs were unloaded first, and
 * check that Glance then serves `vz`.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/processes';

const SHARED = process.env.GLANCE_EDGE_SHARED ?? path.resolve(ROOT, '..', 'shared');
const GLANCE_DIR = path.join(SHARED, 'glance');
const START = path.join(GLANCE_DIR, 'start-glance.sh');
const STOP = path.join(GLANCE_DIR, 'stop-glance.sh');
const CONF = path.join(GLANCE_DIR, 'glance-api.conf');
const GLANCE_MANAGE = '/usr/bin/glance-manage';
const SHIPPED = path.join(ROOT, 'dist', 'defaults', 'compute-hypervisor.json');
const NS = 'OS::Compute::Hypervisor';
const REFERENCE_PORT = 19292;
const HYPERVISORS = ['baremetal', 'hyperv', 'kvm', 'lxc', 'powervm', 'qemu', 'uml', 'vmware', 'vz', 'xen'];
const VZ_LINE = 'VZ - Virtuozzo OS Containers and Virtual Machines (through libvirt)';
const TEST_TIMEOUT_MS = 180000;

interface Run {
  readonly code: number;
  readonly output: string;
}

/** The environment without proxies or Python overrides, plus extra variables. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const dropped = /^(https?_proxy|all_proxy|no_proxy|OS_.*|PYTHONPATH|PYTHONHOME)$/i;
  for (const [key, value] of Object.entries(process.env)) {
    if (!dropped.test(key)) env[key] = value;
  }
  return { ...env, no_proxy: '127.0.0.1', NO_PROXY: '127.0.0.1', ...extra };
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeout = 150000): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: cleanEnv(env), timeout }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        reject(new Error(`${file} ${args.join(' ')} did not run to completion (${error.message}):\n${stdout}${stderr}`));
        return;
      }
      resolve({ code: error ? Number(error.code) : 0, output: `${stdout}${stderr}` });
    });
  });
}

function expectSuccess(what: string, result: Run): void {
  if (result.code !== 0) throw new Error(`${what} failed with exit code ${result.code}:\n${result.output}`);
}

/** A free TCP port on 127.0.0.1 other than the reference Glance's. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port: p } = server.address() as net.AddressInfo;
        server.close(() => resolve(p));
      });
    });
    if (port !== REFERENCE_PORT) return port;
  }
}

function assertPrerequisites(): void {
  const missing = [START, STOP, CONF, GLANCE_MANAGE, SHIPPED].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `Cannot load the shipped metadefs into a real Glance: missing ${missing.join(', ')}. ` +
        `The shared folder (${SHARED}, or $GLANCE_EDGE_SHARED) must hold glance/start-glance.sh, ` +
        'glance-manage comes with Debian\'s glance-common (start-glance.sh installs it as root), and ' +
        'dist/ comes from `npm run build`.',
    );
  }
}

describe('the shipped compute-hypervisor.json in a real Glance', () => {
  let state = '';
  let base = '';
  let env: NodeJS.ProcessEnv = {};
  let started = false;

  /** `glance-manage` with Glance's config and this run's paths.conf (database, ports). */
  const manage = (...args: string[]) =>
    run(GLANCE_MANAGE, ['--config-file', CONF, '--config-file', path.join(env.GLANCE_STATE as string, 'paths.conf'), ...args], env);

  async function get(p: string): Promise<{ status: number; text: string }> {
    const res = await fetch(`${base}${p}`, { headers: { accept: 'application/json', 'x-auth-token': 'x' } });
    return { status: res.status, text: Buffer.from(await res.arrayBuffer()).toString('utf8') };
  }

  afterAll(async () => {
    if (started) await run(STOP, [], env, 60000);
    if (state) rmSync(state, { recursive: true, force: true });
  }, 90000);

  it(
    'should serve vz in hypervisor_type after glance-manage db_load_metadefs of a folder holding only the shipped file',
    async () => {
      assertPrerequisites();
      state = mkdtempSync(path.join(tmpdir(), 'glance-edge-metadefs-'));
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      env = { GLANCE_STATE: path.join(state, 'glance'), GLANCE_PORT: String(port) };

      started = true;
      expectSuccess('start-glance.sh --fresh', await run(START, ['--fresh'], env));

      // Remove Debian's metadefs (which already hold the namespace) so only our file can bring it back.
      expectSuccess('glance-manage db_unload_metadefs', await manage('db_unload_metadefs'));
      expect((await get(`/v2/metadefs/namespaces/${NS}`)).status).toBe(404);

      const loadDir = path.join(state, 'load');
      mkdirSync(loadDir);
      copyFileSync(SHIPPED, path.join(loadDir, 'compute-hypervisor.json'));
      expectSuccess('glance-manage db_load_metadefs', await manage('db_load_metadefs', loadDir));

      const property = await get(`/v2/metadefs/namespaces/${NS}/properties/hypervisor_type`);
      expect(property.status).toBe(200);
      const doc = JSON.parse(property.text) as { name: string; enum: string[]; description: string };
      expect(doc.name).toBe('hypervisor_type');
      expect(doc.enum).toEqual(HYPERVISORS);
      expect(doc.description).toContain(VZ_LINE);

      const namespace = await get(`/v2/metadefs/namespaces/${NS}`);
      expect(namespace.status).toBe(200);
      expect(JSON.parse(namespace.text)).toMatchObject({
        namespace: NS,
        resource_type_associations: [expect.objectContaining({ name: 'OS::Glance::Image' })],
      });
    },
    TEST_TIMEOUT_MS,
  );
});
