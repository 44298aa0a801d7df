/**
 * Real processes on 127.0.0.1 for end-to-end tests: the demo server (the built CLI, as a user runs
 * it) and a small blob server for http:// image locations.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startOldGlance } from '../fixtures/old-glance';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'server', 'cli.js');
/** The 32-byte fixture that makes every range obvious. */
export const FIXTURE = Buffer.from('0123456789abcdefghijklmnopqrstuv');

export interface RunningProcess {
  /** The command it runs: `demo` or `proxy`. */
  readonly command: string;
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly output: () => string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Start `glance-edge <args>` and wait for its "listening on http://..." line. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningProcess> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`glance-edge ${args.join(' ')} did not start:\n${out}`));
    }, 15000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/[^\s]+?:(\d+))\b/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          command: args[0] ?? '',
          url: m[1] as string,
          port: Number(m[2]),
          child,
          output: () => out,
          stop: (signal = 'SIGTERM') =>
            new Promise<void>((done) => {
              if (child.exitCode !== null || child.signalCode !== null) return done();
              child.once('exit', () => done());
              child.kill(signal);
            }),
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`glance-edge ${args.join(' ')} exited with ${code}:\n${out}`));
    });
  });
}

export interface Demo extends RunningProcess {
  readonly dataDir: string;
  /** Stop the demo and remove its data folder. */
  close(): Promise<void>;
}

/**
 * What the demo's behaviour suites run against: the demo itself, or (jest's project of that name
 * sets it) the sidecar in front of a pre-Ocata service (test/fixtures/old-glance.ts), which must
 * pass the same suites.
 */
export const TARGET: 'demo' | 'sidecar-old' = (globalThis as { GLANCE_EDGE_TARGET?: 'sidecar-old' }).GLANCE_EDGE_TARGET ?? 'demo';

/**
 * Start the demo server on a free port with a fresh data folder (or the given one); for the
 * sidecar-old target, the sidecar (`proxy --legacy-upstream true` with the same extra flags) in
 * front of the old service over that folder.
 */
export async function startDemo(extraArgs: string[] = [], dataDir?: string): Promise<Demo> {
  const dir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'glance-edge-demo-'));
  const remove = () => {
    if (!dataDir) rmSync(dir, { recursive: true, force: true });
  };
  if (TARGET === 'sidecar-old') {
    const old = await startOldGlance(dir);
    const proc = await startCli(['proxy', '--upstream', old.url, '--legacy-upstream', 'true', '--port', '0', '--host', '127.0.0.1', ...extraArgs]);
    return {
      ...proc,
      dataDir: dir,
      close: async () => {
        await proc.stop();
        await old.close();
        remove();
      },
    };
  }
  const proc = await startCli(['demo', '--port', '0', '--host', '127.0.0.1', '--data', dir, ...extraArgs]);
  return {
    ...proc,
    dataDir: dir,
    close: async () => {
      await proc.stop();
      remove();
    },
  };
}

export interface BlobServer {
  readonly url: string;
  /** Serve `body` at `/<name>` (GET and HEAD, with Content-Length). */
  put(name: string, body: Buffer): string;
  /** How many connections clients have opened to it so far. */
  connections(): number;
  close(): Promise<void>;
}

/** A plain HTTP server holding blobs, standing for an http:// image location. */
export function startBlobServer(): Promise<BlobServer> {
  const blobs = new Map<string, Buffer>();
  const server = http.createServer((req, res) => {
    const blob = blobs.get(req.url ?? '');
    if (!blob) {
      res.writeHead(404, { 'Content-Length': 0 }).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.length });
    res.end(req.method === 'HEAD' ? undefined : blob);
  });
  let connections = 0;
  server.on('connection', () => connections++);
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      const url = `http://127.0.0.1:${port}`;
      resolve({
        url,
        put(name, body) {
          blobs.set(`/${name}`, body);
          return `${url}/${name}`;
        },
        connections: () => connections,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
