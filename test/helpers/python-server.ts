/**
 * Starting one of the tests' Python servers (Glance's own code under Debian's /usr/bin/python3):
 * it prints its port as its first line. A missing interpreter or module fails with the Debian
 * package to install, never a skip.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

export const PYTHON = '/usr/bin/python3';

/** The Debian package that provides each Python module the servers import. */
const PACKAGES: Record<string, string> = {
  glance: 'python3-glance',
  routes: 'python3-routes',
  webob: 'python3-webob',
  eventlet: 'python3-eventlet',
  keystonemiddleware: 'python3-keystonemiddleware',
  oslo_config: 'python3-oslo.config',
  oslo_middleware: 'python3-oslo.middleware',
  paste: 'python3-paste',
};

export interface PythonServer {
  readonly child: ChildProcess;
  readonly port: number;
  /** What it wrote on stderr so far. */
  stderr(): string;
  stop(): Promise<void>;
}

/** Start `script` (what it does: for the message when Python is missing) and wait for its port. */
export function startPythonServer(script: string, purpose: string): Promise<PythonServer> {
  const name = path.basename(script);
  if (!existsSync(PYTHON)) return Promise.reject(new Error(`${PYTHON} is missing: install Debian's python3 and python3-glance (${purpose})`));
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
  delete env['PYTHONPATH'];
  delete env['PYTHONHOME'];
  const child = spawn(PYTHON, [script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      const missing = /No module named '([\w.]+)'/.exec(err);
      const top = missing?.[1]?.split('.')[0];
      if (top !== undefined) reject(new Error(`${name} cannot import '${missing?.[1]}': install ${PACKAGES[top] ?? `the Debian package of '${top}'`} for ${PYTHON}\n${err}`));
      else reject(new Error(`${name} ${why}:\n${err}`));
    };
    const timer = setTimeout(() => fail('did not print its port within 20 s'), 20000);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code, signal) => fail(`exited (${code ?? signal}) before printing its port`));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^(\d+)\n/.exec(out);
      if (m === null) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.stdout?.removeAllListeners('data');
      resolve({
        child,
        port: Number(m[1]),
        stderr: () => err,
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
      });
    });
  });
}
