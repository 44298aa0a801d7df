/**
 * A real `redis-server` for the tests of the Redis store: on a free port of 127.0.0.1, without
 * persistence, in a temporary folder of its own; one per test file. It can be killed (SIGKILL),
 * paused (SIGSTOP: connected, but answering nothing) and started again on the same port, for the
 * fault tests. A machine without `redis-server` fails the test, naming the package to install.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Kill it at once (SIGKILL), as a crash would; its data is gone (no persistence). */
  kill(): Promise<void>;
  /** Start it again on the same port, empty. */
  restart(): Promise<void>;
  /** Whether it runs (not killed). */
  readonly running: boolean;
  /** Stop answering (SIGSTOP): connections stay open, commands get no answer. */
  pause(): void;
  /** Answer again (SIGCONT). */
  resume(): void;
  /** Stop it and remove its folder. */
  stop(): Promise<void>;
}

const BINARY = process.env.REDIS_SERVER ?? 'redis-server';

/** Fail, naming the package, when there is no redis-server to run. */
function requireBinary(): void {
  const probe = spawnSync(BINARY, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `The Redis store tests need a real redis-server, and '${BINARY}' cannot be run (${probe.error?.message ?? probe.stderr}). ` +
        'Install the Debian package redis-server (apt-get install redis-server), or set REDIS_SERVER to its path.',
    );
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function launch(port: number, dir: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'no', '--loglevel', 'notice', '--logfile', ''];
  const child = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server on port ${port} did not start within 10 s:\n${out}`));
    }, 10_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`redis-server on port ${port} exited (${code ?? signal}) before it was ready:\n${out}`));
    });
  });
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Start a redis-server for this test file. */
export async function startRedis(): Promise<RedisServer> {
  requireBinary();
  const dir = mkdtempSync(path.join(tmpdir(), 'glance-edge-redis-'));
  let port = 0;
  let child: ChildProcess | null = null;
  // Another process may take the free port between the probe and the start: try a few.
  for (let attempt = 0; child === null; attempt += 1) {
    port = await freePort();
    try {
      child = await launch(port, dir);
    } catch (err) {
      if (attempt >= 4) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  let current: ChildProcess | null = child;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return current !== null;
    },
    async kill() {
      if (current) await killed(current);
      current = null;
    },
    async restart() {
      if (current) await killed(current);
      current = null;
      // The port was just freed; a moment may pass before it can be bound again.
      for (let attempt = 0; ; attempt += 1) {
        try {
          current = await launch(port, dir);
          return;
        } catch (err) {
          if (attempt >= 20) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    pause() {
      current?.kill('SIGSTOP');
    },
    resume() {
      current?.kill('SIGCONT');
    },
    async stop() {
      if (current) {
        current.kill('SIGCONT');
        await killed(current);
      }
      current = null;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
