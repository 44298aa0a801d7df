/**
 * Running the built `glance-edge check` as an operator runs it (`npm run build` first), and
 * reading its `--json` report. The process is spawned, never run synchronously: some services it
 * probes run in the test's own process.
 */
import { spawn } from 'node:child_process';
import { CLI } from '../helpers/processes';

export interface CheckRow {
  readonly id: string;
  readonly section: string;
  readonly behaviour: string;
  readonly kind: 'required' | 'recommended';
  readonly expected: string;
  readonly seen: string;
  readonly result: 'ok' | 'missing' | 'differs' | 'could not test';
  readonly why?: string;
}

export interface CheckReport {
  readonly url: string;
  readonly image: string | null;
  readonly run: string | null;
  readonly rows: CheckRow[];
  readonly summary: Record<'required' | 'recommended', Record<'ok' | 'missing' | 'differs' | 'couldNotTest', number>>;
  readonly images: { created: string[]; deleted: string[]; kept: string[]; notDeleted: string[] };
  readonly exitStatus: number;
}

export interface CheckRun {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment of the test without OpenStack settings, plus `env`. */
function cleanEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OS_'))), ...env };
}

/** Run `glance-edge check <args>`; `during` is called with the child once it runs (to signal it). */
export function check(args: readonly string[], env: NodeJS.ProcessEnv = {}, timeout = 60_000, during?: (child: ReturnType<typeof spawn>, stderr: () => string) => void): Promise<CheckRun> {
  const child = spawn(process.execPath, [CLI, 'check', ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  during?.(child, () => stderr);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`glance-edge check ${args.join(' ')} did not end within ${timeout} ms:\n${stderr}`));
    }, timeout);
    child.once('error', reject);
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/** The report of a `--json` run, with its rows by id. */
export function report(run: CheckRun): CheckReport & { row(id: string): CheckRow } {
  let doc: CheckReport;
  try {
    doc = JSON.parse(run.stdout) as CheckReport;
  } catch {
    throw new Error(`no JSON report (exit ${String(run.status)}):\n${run.stdout}\n${run.stderr}`);
  }
  return {
    ...doc,
    row(id) {
      const found = doc.rows.find((r) => r.id === id);
      if (!found) throw new Error(`no row ${id}`);
      return found;
    },
  };
}

/** Every row's id and result, for one readable comparison. */
export function results(doc: CheckReport): Record<string, string> {
  return Object.fromEntries(doc.rows.map((r) => [r.id, r.result === 'could not test' ? `could not test (${r.why ?? ''})` : r.result]));
}

/** The names of the images the service lists (as an admin sees them) that are the check's own. */
export async function checkImagesLeft(url: string, headers: Record<string, string> = {}): Promise<string[]> {
  const res = await fetch(`${url}/v2/images?limit=1000`, { headers: { accept: 'application/json', ...headers } });
  if (res.status !== 200) throw new Error(`GET ${url}/v2/images answered ${res.status}`);
  const doc = (await res.json()) as { images: { name: string | null }[] };
  return doc.images.map((i) => i.name ?? '').filter((n) => n.startsWith('glance-edge-check-'));
}
