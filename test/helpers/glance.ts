/**
 * A real OpenStack Glance (Debian's python3-glance and glance-common, started by test/glance/start.sh)
 * on a free port with a fresh state folder of its own, for tests that need the real thing. A missing
 * package fails the start with its name.
 *
 * `startRealGlance({ withoutLocationChecks: true })` starts the same Glance as it answered before
 * Ocata: its own code, copied into the state folder with the three status checks on location changes
 * taken out (test/glance/without_location_checks.py), the service the location guard stands in front of.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from './processes';

/** The project's Glance scripts and configuration. */
export const GLANCE_DIR = path.join(ROOT, 'test', 'glance');
const START = path.join(GLANCE_DIR, 'start.sh');
const STOP = path.join(GLANCE_DIR, 'stop.sh');
/** Glance's configuration, before the per-run `paths.conf` that start.sh writes into the state folder. */
export const GLANCE_CONF = path.join(GLANCE_DIR, 'glance-api.conf');

export interface RealGlance {
  readonly url: string;
  readonly port: number;
  /** The state folder: database, images, logs. */
  readonly state: string;
  /** glance-api's log, eventlet's access lines included. */
  readonly logFile: string;
  /** `--config-file` arguments that give glance-manage this Glance's database and paths. */
  readonly configArgs: readonly string[];
  /** Its SQLite database. */
  readonly database: string;
  /** Started without Ocata's status checks on location changes. */
  readonly withoutLocationChecks: boolean;
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

/** The environment without proxies or the caller's Python and OpenStack settings, plus `extra`. */
export function glanceEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const dropped = /^(https?_proxy|all_proxy|no_proxy|OS_.*|PYTHONPATH|PYTHONHOME)$/i;
  return {
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !dropped.test(name))),
    ...extra,
    no_proxy: '127.0.0.1,localhost',
    NO_PROXY: '127.0.0.1,localhost',
  };
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('bash', [file, ...args], { env: glanceEnv(env), timeout: 150_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${path.relative(ROOT, file)} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`)) : resolve(),
    );
  });
}

export interface RealGlanceOptions {
  /** Glance's own code without the status checks Ocata added to location changes (a pre-Ocata Glance). */
  readonly withoutLocationChecks?: boolean;
}

/** Start a fresh real Glance; it answers on the returned URL until `stop()`. */
export async function startRealGlance(options: RealGlanceOptions = {}): Promise<RealGlance> {
  const withoutLocationChecks = options.withoutLocationChecks ?? false;
  const folder = mkdtempSync(path.join(tmpdir(), 'glance-edge-glance-'));
  const state = path.join(folder, 'glance');
  const port = await freePort();
  const env = { GLANCE_STATE: state, GLANCE_PORT: String(port), GLANCE_WITHOUT_LOCATION_CHECKS: withoutLocationChecks ? '1' : '0' };
  try {
    await run(START, ['--fresh'], env);
  } catch (err) {
    await run(STOP, [], env).catch(() => undefined);
    rmSync(folder, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    state,
    logFile: path.join(state, 'glance-api.log'),
    configArgs: ['--config-file', GLANCE_CONF, '--config-file', path.join(state, 'paths.conf')],
    database: path.join(state, 'glance.sqlite'),
    withoutLocationChecks,
    stop: async () => {
      await run(STOP, [], env);
      rmSync(folder, { recursive: true, force: true });
    },
  };
}
