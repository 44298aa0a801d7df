/**
 * Glance's own reading of an image PATCH body (test/helpers/glance_patch.py, run by Debian's
 * /usr/bin/python3 with its python3-glance): one long-running process, one JSON line per body each
 * way. Missing pieces fail loudly, naming what is missing.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

import { PYTHON } from './python-server';

export { PYTHON };
export const GLANCE_DESERIALIZER = '/usr/lib/python3/dist-packages/glance/api/v2/images.py';
const SCRIPT = path.join(__dirname, 'glance_patch.py');

/** A value as the helper writes it: numbers as `{"$n": repr}`, dicts as `{"$d": [[key, value], ...]}` in Python's order. */
export type GlanceValue = null | boolean | string | { $n: string } | { $d: [string, GlanceValue][] } | GlanceValue[];

export interface GlanceChange {
  readonly op: string;
  readonly path: string[];
  readonly hasValue: boolean;
  readonly value?: GlanceValue;
  /** For a location add or remove: `_get_locations_op_pos` for images of {@link POSITION_COUNTS} locations. */
  readonly positions?: (string | null | { error: string })[];
}

export type GlanceReading =
  | { readonly ok: true; readonly changes: GlanceChange[]; readonly schema?: [number, string] | null }
  | { readonly ok: false; readonly status: number; readonly explanation: string; readonly detail: string; readonly exception: string; readonly schema?: [number, string] | null };

/** The location counts the helper asks `_get_locations_op_pos` about (its COUNTS). */
export const POSITION_COUNTS = [0, 1, 2, 5] as const;

export interface GlancePatchReader {
  /** Glance's reading of `body` sent with `contentType`. */
  read(contentType: string, body: Buffer): Promise<GlanceReading>;
  close(): Promise<void>;
}

/** Throws, naming what is missing, unless Debian's python3 and python3-glance are installed. */
export function requireGlance(): void {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: install Debian's python3 (apt-get install python3-glance)`);
  if (!existsSync(GLANCE_DESERIALIZER)) throw new Error(`Glance is missing (${GLANCE_DESERIALIZER}): install Debian's python3-glance`);
}

/** Start the helper; it answers bodies in order until `close()`. */
export async function startGlancePatchReader(): Promise<GlancePatchReader> {
  requireGlance();
  const child: ChildProcessWithoutNullStreams = spawn(PYTHON, [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  const waiting: { resolve: (r: GlanceReading) => void; reject: (e: Error) => void }[] = [];
  let stderr = '';
  let buffered = '';
  let failure: Error | undefined;
  const fail = (err: Error) => {
    failure ??= err;
    for (const w of waiting.splice(0)) w.reject(failure);
  };
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-8000);
  });
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buffered += d;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const w = waiting.shift();
      if (w) w.resolve(JSON.parse(line) as GlanceReading);
    }
  });
  child.on('error', (err) => fail(new Error(`${PYTHON} could not be started: ${err.message}`)));
  child.on('exit', (code, signal) => fail(new Error(`${path.basename(SCRIPT)} exited (${signal ?? code}); is python3-glance installed?\n${stderr}`)));
  child.stdin.on('error', () => undefined); // the exit handler reports it

  const reader: GlancePatchReader = {
    read(contentType, body) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        child.stdin.write(`${JSON.stringify({ contentType, bodyBase64: body.toString('base64') })}\n`);
      });
    },
    close() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end();
      });
    },
  };
  // The first answer proves that Glance's code imported.
  const first = await reader.read('application/openstack-images-v2.1-json-patch', Buffer.from('[]'));
  if (!first.ok || first.changes.length !== 0) throw new Error(`glance_patch.py answered [] with ${JSON.stringify(first)}`);
  return reader;
}
