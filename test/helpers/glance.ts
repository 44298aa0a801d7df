/**
 * A real OpenStack Glance (Debian's packages, ../shared/glance/) on a free port with a fresh state
 * folder of its own, for tests that need the real thing. Missing pieces fail loudly.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from './processes';

export const SHARED = process.env['GLANCE_EDGE_SHARED'] ?? path.resolve(ROOT, '..', 'shared');
const START = path.join(SHARED, 'glance', 'start-glance.sh');
const STOP = path.join(SHARED, 'glance', 'stop-glance.sh');

export interface RealGlance {
  readonly url: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const proxies = new Set(['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY']);
  const clean: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !proxies.has(name))),
    ...env,
    no_proxy: '127.0.0.1,localhost',
    NO_PROXY: '127.0.0.1,localhost',
  };
  return new Promise((resolve, reject) => {
    execFile('bash', [file, ...args], { env: clean, timeout: 150_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${path.basename(file)} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`)) : resolve(),
    );
  });
}

/** Start a fresh real Glance; it answers on the returned URL until `stop()`. */
export async function startRealGlance(): Promise<RealGlance> {
  if (!existsSync(START) || !existsSync(STOP)) {
    throw new Error(`The real Glance scripts are missing: ${START} (set GLANCE_EDGE_SHARED to the shared folder).`);
  }
  const state = mkdtempSync(path.join(tmpdir(), 'glance-edge-glance-'));
  const port = await freePort();
  const env = { GLANCE_STATE: path.join(state, 'glance'), GLANCE_PORT: String(port) };
  await run(START, ['--fresh'], env);
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      await run(STOP, [], env);
      rmSync(state, { recursive: true, force: true });
    },
  };
}
