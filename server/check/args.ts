/**
 * The command line of `glance-edge check`: one URL (or `OS_IMAGE_URL`), flags with values, flags
 * without. Every problem is one message naming what the user typed; the CLI prints it and exits 2.
 */
import { readFileSync } from 'node:fs';

export interface CheckOptions {
  readonly url: string;
  /** Headers sent with every request to the service: the identity. */
  readonly identity: Readonly<Record<string, string>>;
  readonly json: boolean;
  readonly keep: boolean;
  readonly cleanup: boolean;
  readonly timeout: number;
  readonly image?: string;
  readonly ca?: string;
  readonly insecure: boolean;
  readonly serveOn: { readonly host: string; readonly port: number };
}

export class CheckUsageError extends Error {}

const VALUED = ['token', 'header', 'timeout', 'image', 'cacert', 'serve-on'] as const;
const SWITCHES = ['json', 'keep', 'cleanup', 'insecure'] as const;
export const CHECK_FLAGS: readonly string[] = [...VALUED, ...SWITCHES];
const MAX_MS = 86_400_000;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Read `args` (what follows `check`) and the environment. `suggest` names the flag a misspelt one
 * most likely means. `help` is true when `--help` or `-h` is among the arguments.
 */
export function parseCheckArgs(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  suggest: (word: string, candidates: readonly string[]) => string | undefined,
): { readonly help: true } | { readonly help: false; readonly options: CheckOptions } {
  if (args.includes('--help') || args.includes('-h')) return { help: true };
  const values = new Map<string, string>();
  const headers: string[] = [];
  const switches = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const spelled = arg.startsWith('--') && eq > 2 ? arg.slice(0, eq) : arg;
    const name = spelled.slice(2);
    if (spelled.startsWith('--') && (SWITCHES as readonly string[]).includes(name)) {
      if (spelled !== arg) throw new CheckUsageError(`${spelled} takes no value, got '${arg}'`);
      switches.add(name);
      continue;
    }
    if (!spelled.startsWith('--') || !(VALUED as readonly string[]).includes(name)) {
      const near = suggest(spelled.replace(/^--?/, ''), CHECK_FLAGS);
      throw new CheckUsageError(`unknown flag '${spelled}' for check${near === undefined ? '' : ` (did you mean '--${near}'?)`}`);
    }
    let value: string;
    if (spelled !== arg) value = arg.slice(eq + 1);
    else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith('--')) throw new CheckUsageError(`${spelled} needs a value`);
      value = next;
      i++;
    }
    if (name === 'header') headers.push(value);
    else values.set(name, value);
  }
  if (positional.length > 1) throw new CheckUsageError(`check takes one URL, got '${positional[0] ?? ''}' and '${positional[1] ?? ''}'`);

  const url = serviceUrl(positional[0], env);
  const identity: Record<string, string> = {};
  const token = values.get('token') ?? (env['OS_AUTH_TOKEN'] === '' ? undefined : env['OS_AUTH_TOKEN']);
  if (token !== undefined) {
    const from = values.has('token') ? '--token' : 'OS_AUTH_TOKEN';
    if (token === '' || /[\r\n\0]/.test(token)) throw new CheckUsageError(`${from} must be a token on one line, got '${token}'`);
    identity['X-Auth-Token'] = token;
  }
  for (const h of headers) {
    const colon = h.indexOf(':');
    const name = colon === -1 ? '' : h.slice(0, colon).trim();
    const value = colon === -1 ? '' : h.slice(colon + 1).trim();
    if (!TOKEN.test(name) || /[\r\n\0]/.test(value)) throw new CheckUsageError(`--header must be 'Name: value', got '${h}'`);
    identity[name] = value;
  }
  const timeout = millis(values.get('timeout'));
  const image = values.get('image');
  if (image !== undefined && image.trim() === '') throw new CheckUsageError(`--image must be an image id, got '${image}'`);
  const cacert = values.get('cacert');
  const insecure = switches.has('insecure');
  if (cacert !== undefined && insecure) throw new CheckUsageError('--cacert and --insecure exclude each other: trust the given certificates, or none');
  const cleanup = switches.has('cleanup');
  const keep = switches.has('keep');
  const serveOnGiven = values.get('serve-on');
  for (const [a, b] of [
    [cleanup && image !== undefined, '--cleanup and --image'],
    [cleanup && keep, '--cleanup and --keep'],
    [keep && image !== undefined, '--keep and --image (with --image the check creates nothing)'],
    [serveOnGiven !== undefined && (image !== undefined || cleanup), `--serve-on and ${cleanup ? '--cleanup' : '--image'} (it serves data only for images of the check's own)`],
  ] as const) {
    if (a) throw new CheckUsageError(`${b} exclude each other`);
  }
  return {
    help: false,
    options: {
      url,
      identity,
      json: switches.has('json'),
      keep,
      cleanup,
      timeout,
      ...(image === undefined ? {} : { image }),
      ...(cacert === undefined ? {} : { ca: readCa(cacert) }),
      insecure,
      serveOn: serveOn(serveOnGiven),
    },
  };
}

/** The service's URL: http(s) with a host; a trailing version (`/v2`, `/v2.1`) is dropped, as glanceclient drops it. */
function serviceUrl(given: string | undefined, env: NodeJS.ProcessEnv): string {
  const fromEnv = env['OS_IMAGE_URL'];
  const value = given ?? (fromEnv === '' ? undefined : fromEnv);
  if (value === undefined) throw new CheckUsageError("check needs the image service's URL (or OS_IMAGE_URL)");
  const from = given === undefined ? 'OS_IMAGE_URL' : 'check URL';
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || url.search !== '' || url.hash !== '') {
    throw new CheckUsageError(`${from} must be an http:// or https:// URL without a query, got '${value}'`);
  }
  url.pathname = url.pathname.replace(/\/v2(\.\d+)?\/?$/, '').replace(/\/+$/, '');
  return url.toString().replace(/\/$/, '');
}

function millis(value: string | undefined): number {
  if (value === undefined) return 30_000;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_MS) throw new CheckUsageError(`--timeout must be an integer from 1 to ${MAX_MS}, got '${value}'`);
  return n;
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CheckUsageError(`--cacert ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : err instanceof Error ? err.message : String(err)}`);
  }
}

/** HOST:PORT, [IPv6]:PORT; the default is loopback on a free port. */
function serveOn(value: string | undefined): { host: string; port: number } {
  if (value === undefined) return { host: '127.0.0.1', port: 0 };
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new CheckUsageError(`--serve-on must be HOST:PORT (a port from 0 to 65535; [::1]:PORT for IPv6), got '${value}'`);
  return { host: (m[1] ?? m[2]) as string, port };
}
