/**
 * The real `glance` command-line client (Debian's python3-glanceclient), run as a user runs it: a
 * fresh HOME per command (its cached schema breaks the next one otherwise), stdin truly closed
 * (`image-create` uploads stdin otherwise), no proxy and no OS_* settings from the environment.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const GLANCE = '/usr/bin/glance';
const COMMAND_TIMEOUT_MS = 60000;

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function assertGlanceInstalled(): void {
  if (!existsSync(GLANCE)) {
    throw new Error(
      `The real glance client ${GLANCE} is missing: install python3-glanceclient ` +
        '(apt-get install python3-glanceclient; .ci/run does it) to run these tests.',
    );
  }
}

function glanceEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const dropped = /^(https?_proxy|all_proxy|no_proxy|OS_.*|PYTHONPATH|PYTHONHOME)$/i;
  for (const [key, value] of Object.entries(process.env)) {
    if (!dropped.test(key)) env[key] = value;
  }
  return { ...env, HOME: home, no_proxy: '127.0.0.1', NO_PROXY: '127.0.0.1' };
}

export async function glance(url: string, ...args: string[]): Promise<CliResult> {
  assertGlanceInstalled();
  const home = mkdtempSync(path.join(tmpdir(), 'glance-cli-home-'));
  const argv = ['-c', 'exec "$0" "$@" <&-', GLANCE, '--os-image-url', url, '--os-auth-token', 'x', ...args];
  try {
    return await new Promise<CliResult>((resolve, reject) => {
      execFile('/bin/sh', argv, { env: glanceEnv(home), timeout: COMMAND_TIMEOUT_MS }, (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`glance ${args.join(' ')} did not run to completion (${error.message}):\n${stdout}${stderr}`));
          return;
        }
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      });
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

export function parseTable(stdout: string): Map<string, string> {
  const fields = new Map<string, string>();
  let last: string | undefined;
  for (const line of stdout.split('\n')) {
    const m = /^\| (.*?) *\| (.*?) *\|$/.exec(line.trimEnd());
    if (!m) continue;
    const key = m[1] as string;
    const value = m[2] as string;
    if (key === 'Property' && value === 'Value') continue;
    if (key === '' && last !== undefined) {
      fields.set(last, `${fields.get(last) ?? ''} ${value}`);
    } else {
      fields.set(key, value);
      last = key;
    }
  }
  return fields;
}
