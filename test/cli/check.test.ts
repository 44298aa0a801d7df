/**
 * The built `glance-edge check` command line (`npm run build` first): each wrong command line is
 * one line naming what the user typed, exit status 2; the usage on --help; and an https service
 * checked with --cacert or --insecure, or refused with a line that names them.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const CLI = path.resolve(__dirname, '..', '..', 'dist', 'server', 'cli.js');

let work = '';
beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'glance-edge-check-cli-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function cleanEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OS_'))), ...env };
}

/** Run synchronously: only for command lines that never reach a server of this process. */
function run(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 15000, env: cleanEnv(env), cwd: work });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Run without blocking this process, whose servers the command talks to. */
function runAsync(args: readonly string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const usageError = (line: string) => ({ status: 2, stdout: '', stderr: `glance-edge: ${line}\n` });

describe('The command line: check', () => {
  it.each<[string[], NodeJS.ProcessEnv, string]>([
    [['check'], {}, "check needs the image service's URL (or OS_IMAGE_URL)"],
    [['check'], { OS_IMAGE_URL: '' }, "check needs the image service's URL (or OS_IMAGE_URL)"],
    [['check', 'ftp://glance:9292'], {}, "check URL must be an http:// or https:// URL without a query, got 'ftp://glance:9292'"],
    [['check', 'glance:9292'], {}, "check URL must be an http:// or https:// URL without a query, got 'glance:9292'"],
    [['check', 'http://glance:9292/?x=1'], {}, "check URL must be an http:// or https:// URL without a query, got 'http://glance:9292/?x=1'"],
    [['check'], { OS_IMAGE_URL: 'glance' }, "OS_IMAGE_URL must be an http:// or https:// URL without a query, got 'glance'"],
    [['check', 'http://a:1', 'http://b:1'], {}, "check takes one URL, got 'http://a:1' and 'http://b:1'"],
    [['check', 'http://a:1', '--tokn', 't'], {}, "unknown flag '--tokn' for check (did you mean '--token'?)"],
    [['check', 'http://a:1', '--upstream', 'http://b:1'], {}, "unknown flag '--upstream' for check"],
    [['check', 'http://a:1', '-t', 'x'], {}, "unknown flag '-t' for check"],
    [['check', 'http://a:1', '--token'], {}, '--token needs a value'],
    [['check', 'http://a:1', '--token', '--json'], {}, '--token needs a value'],
    [['check', 'http://a:1', '--token='], {}, "--token must be a token on one line, got ''"],
    [['check', 'http://a:1', '--json=yes'], {}, "--json takes no value, got '--json=yes'"],
    [['check', 'http://a:1', '--timeout', '0'], {}, "--timeout must be an integer from 1 to 86400000, got '0'"],
    [['check', 'http://a:1', '--timeout', '5s'], {}, "--timeout must be an integer from 1 to 86400000, got '5s'"],
    [['check', 'http://a:1', '--header', 'X-Auth-Token'], {}, "--header must be 'Name: value', got 'X-Auth-Token'"],
    [['check', 'http://a:1', '--header', 'Bad Name: v'], {}, "--header must be 'Name: value', got 'Bad Name: v'"],
    [['check', 'http://a:1', '--image='], {}, "--image must be an image id, got ''"],
    [['check', 'http://a:1', '--cacert', 'none.pem'], {}, '--cacert none.pem: no such file'],
    [['check', 'http://a:1', '--cacert', 'none.pem', '--insecure'], {}, '--cacert and --insecure exclude each other: trust the given certificates, or none'],
    [['check', 'http://a:1', '--cleanup', '--image', 'x'], {}, '--cleanup and --image exclude each other'],
    [['check', 'http://a:1', '--cleanup', '--keep'], {}, '--cleanup and --keep exclude each other'],
    [['check', 'http://a:1', '--keep', '--image', 'x'], {}, '--keep and --image (with --image the check creates nothing) exclude each other'],
    [['check', 'http://a:1', '--image', 'x', '--serve-on', '127.0.0.1:0'], {}, "--serve-on and --image (it serves data only for images of the check's own) exclude each other"],
    [['check', 'http://a:1', '--serve-on', '127.0.0.1'], {}, "--serve-on must be HOST:PORT (a port from 0 to 65535; [::1]:PORT for IPv6), got '127.0.0.1'"],
    [['check', 'http://a:1', '--serve-on', '127.0.0.1:70000'], {}, "--serve-on must be HOST:PORT (a port from 0 to 65535; [::1]:PORT for IPv6), got '127.0.0.1:70000'"],
    [['check', 'http://a:1', '--serve-on', '::1:0'], {}, "--serve-on must be HOST:PORT (a port from 0 to 65535; [::1]:PORT for IPv6), got '::1:0'"],
    [['chek', 'http://a:1'], {}, "unknown command 'chek' (did you mean 'check'?)"],
  ])('should answer %j (environment %j) with one line and exit 2', (args, env, line) => {
    expect(run(args, env)).toEqual(usageError(line));
  });

  it('should print the usage on stdout for check --help and help check', () => {
    const usage = run(['help']).stdout;
    expect(usage).toContain('\n  check   Probe an image service as a client would');
    for (const flag of ['--token T', "--header 'Name: value'", '--json', '--timeout MS', '--image ID', '--keep', '--cleanup', '--cacert FILE | --insecure', '--serve-on HOST:PORT']) {
      expect(usage).toContain(flag);
    }
    expect(run(['check', '--help'])).toEqual({ status: 0, stdout: usage, stderr: '' });
    expect(run(['check', 'http://a:1', '--tokn', 'x', '-h'])).toEqual({ status: 0, stdout: usage, stderr: '' });
    expect(run(['help', 'check'])).toEqual({ status: 0, stdout: usage, stderr: '' });
  });
});

describe('The command line: check of an https service', () => {
  let server: https.Server;
  let url = '';
  let cert = '';
  beforeAll(async () => {
    cert = path.join(work, 'cert.pem');
    const key = path.join(work, 'key.pem');
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(`openssl (Debian package openssl) could not make a test certificate: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    // A service that wants an identity: whoever reaches it is told 401.
    server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => {
      const body = JSON.stringify({ message: 'The request you have made requires authentication.<br /><br />\n\n\n', code: '401 Unauthorized', title: 'Unauthorized' });
      res.writeHead(401, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('should refuse a certificate it cannot verify, naming --cacert and --insecure', async () => {
    expect(await runAsync(['check', url])).toEqual(usageError(`${url} could not be reached (DEPTH_ZERO_SELF_SIGNED_CERT) (--cacert FILE or --insecure)`));
  });

  it.each([[['--cacert', 'CERT']], [['--insecure']]])('should reach the service with %j and say what it answered', async (flags) => {
    const run = await runAsync(['check', url, ...flags.map((f) => (f === 'CERT' ? cert : f))]);
    expect(run).toEqual(usageError(`${url} answered 401 The request you have made requires authentication. to GET /v2/images?limit=1: give an identity (--token, OS_AUTH_TOKEN or --header)`));
  });
});
