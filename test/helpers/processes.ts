/**
 * Real processes on 127.0.0.1 for end-to-end tests: the demo server (the built CLI, as a user runs
 * it) and a small blob server for http:// image locations.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'cli.js');
/** The 32-byte fixture that makes every range obvious. */
export const FIXTURE = Buffer.from('0123456789abcdefghijklmnopqrstuv');

export interface RunningProcess {
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

/** Start the demo server on a free port with a fresh data folder (or the given one). */
export async function startDemo(extraArgs: string[] = [], dataDir?: string): Promise<Demo> {
  const dir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'glance-edge-demo-'));
  const proc = await startCli(['demo', '--port', '0', '--host', '127.0.0.1', '--data', dir, ...extraArgs]);
  return {
    ...proc,
    dataDir: dir,
    close: async () => {
      await proc.stop();
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface BlobServer {
  readonly url: string;
  /** Serve `body` at `/<name>` (GET and HEAD, with Content-Length). */
  put(name: string, body: Buffer): string;
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
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
