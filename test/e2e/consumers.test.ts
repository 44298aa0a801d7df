/**
 * The package as a consumer installs it: `npm pack` of the repository (dist/ as built), installed
 * into throw-away projects in a temp folder, each an Express app that mounts the suite as the
 * README shows and answers real HTTP requests on 127.0.0.1:
 *
 *   cjs           `require('glance-edge')`, Express 5
 *   esm           `import { … } from 'glance-edge'`, Express 4
 *   ts-node16     TypeScript, module and moduleResolution node16 (an ES module package), Express 5
 *   ts-bundler    TypeScript, module esnext and moduleResolution bundler, Express 5
 *
 * The TypeScript projects are compiled with the repository's own tsc (strict, libraries checked)
 * and use the exported types, so a broken `exports` map, missing or wrong types, or a broken ES
 * module wrapper fails here. Also: the metadefs JSON subpath, one copy of the module for `import`
 * and `require`, and `npx glance-edge --help` from a consumer project.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { call, plainError } from '../helpers/http';

const ROOT = path.resolve(__dirname, '..', '..');
const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc');
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const SETUP_TIMEOUT_MS = 180000;

const V21 = 'application/openstack-images-v2.1-json-patch';
const ID = '6b2e3ad4-5b5f-4a6b-9b5e-1f8e4c2d9a10';
const FIXTURE = Buffer.from('0123456789abcdefghijklmnopqrstuv');
const MD5 = createHash('md5').update(FIXTURE).digest('hex');
const OCATA = '@1487721600';
const WARNING = '299 - "The Content-Range request header is deprecated; send Range: bytes=first-last"';
const LINK = '<https://docs.openstack.org/api-ref/image/v2/#download-binary-image-data>; rel="deprecation"; type="text/html"';
/** Glance's message for a disk_format outside the list; the plain-text form has each newline as a blank. */
const NOPE_MESSAGE = [
  "Provided object does not match schema 'image': 'nope' is not one of [None, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop']",
  '',
  "Failed validating 'enum' in schema['properties']['disk_format']:",
  "    {'description': 'Format of the disk',",
  "     'enum': [None,",
  ...['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso'].map((f) => `              '${f}',`),
  "              'ploop'],",
  "     'type': ['null', 'string']}",
  '',
  "On instance['disk_format']:",
  "    'nope'",
].join('\n');

// ---------------------------------------------------------------------------------------------
// The consumer projects

/** The body of every JavaScript consumer's server, after its imports. */
const JS_APP = `
const FIXTURE = Buffer.from('${FIXTURE.toString()}');
const MD5 = createHash('md5').update(FIXTURE).digest('hex');
const IMAGES = { '${ID}': { id: '${ID}', status: 'deactivated', size: 32, checksum: MD5, locations: 2 } };

const app = express();
app.use(locationGuard({ lookup: async (id) => IMAGES[id] ?? null }));
app.use(imageFormats());
app.get('/v2/images/:id/file', serveImage({
  source: () => ({
    size: FIXTURE.length,
    checksum: MD5,
    open: (range) => ({ stream: Readable.from([FIXTURE.subarray(range ? range.start : 0, range ? range.end + 1 : FIXTURE.length)]), offset: range ? range.start : 0 }),
  }),
}));
app.use('/static', legacyContentRange(), express.static(STATIC));
// The image service behind the suite: answers with the exact bytes it read.
app.use((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => res.status(200).type('application/octet-stream').set('X-Backing', req.method + ' ' + req.originalUrl).send(Buffer.concat(chunks)));
});
app.use(glanceErrorHandler());
const server = app.listen(0, '127.0.0.1', () => console.log('listening on http://127.0.0.1:' + server.address().port));
`;

const CJS_SERVER = `'use strict';
const { createHash } = require('node:crypto');
const path = require('node:path');
const { Readable } = require('node:stream');
const express = require('express');
const { glanceErrorHandler, imageFormats, legacyContentRange, locationGuard, serveImage } = require('glance-edge');
const STATIC = path.join(__dirname, 'static');
${JS_APP}`;

const ESM_SERVER = `import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { glanceErrorHandler, imageFormats, legacyContentRange, locationGuard, serveImage } from 'glance-edge';
const STATIC = fileURLToPath(new URL('./static', import.meta.url));
${JS_APP}`;

/** The TypeScript consumers' server: the same app, written against the exported types. */
const TS_SERVER = `import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { glanceErrorHandler, imageFormats, legacyContentRange, locationGuard, serveImage } from 'glance-edge';
import type { ByteRange, DeprecationOptions, ImageData, ImageFacts, ImageFormatsOptions, ImageLookup, LocationGuardOptions, OpenedData } from 'glance-edge';

const STATIC = fileURLToPath(new URL('./static', import.meta.url));
const FIXTURE = Buffer.from('${FIXTURE.toString()}');
const MD5: string = createHash('md5').update(FIXTURE).digest('hex');
const IMAGES: Record<string, ImageFacts> = { '${ID}': { id: '${ID}', status: 'deactivated', size: 32, checksum: MD5, locations: 2 } };

const lookup: ImageLookup = async (id) => IMAGES[id] ?? null;
const guard: LocationGuardOptions = { lookup, showMultipleLocations: true };
const formats: ImageFormatsOptions = { diskFormats: { add: [], remove: [] } };
const deprecation: DeprecationOptions = {};
const image: ImageData = {
  size: FIXTURE.length,
  checksum: MD5,
  open: (range?: ByteRange): OpenedData => ({
    stream: Readable.from([FIXTURE.subarray(range ? range.start : 0, range ? range.end + 1 : FIXTURE.length)]),
    offset: range ? range.start : 0,
  }),
};
// The types are the package's, not \`any\`: an unknown option is a compile error.
// @ts-expect-error -- 'limt' is not an option of locationGuard
export const misspelt: LocationGuardOptions = { lookup, limt: 1 };

const app = express();
app.use(locationGuard(guard));
app.use(imageFormats(formats));
app.get('/v2/images/:id/file', serveImage({ source: () => image }));
app.use('/static', legacyContentRange(deprecation), express.static(STATIC));
// The image service behind the suite: answers with the exact bytes it read.
app.use((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => res.status(200).type('application/octet-stream').set('X-Backing', req.method + ' ' + req.originalUrl).send(Buffer.concat(chunks)));
});
app.use(glanceErrorHandler());
const server = app.listen(0, '127.0.0.1', () => console.log('listening on http://127.0.0.1:' + (server.address() as AddressInfo).port));
`;

const TS_OPTIONS = {
  target: 'ES2022',
  lib: ['ES2023'],
  types: ['node'],
  strict: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
  esModuleInterop: true,
  skipLibCheck: false,
  noEmitOnError: true,
};

interface Project {
  readonly name: string;
  readonly install: string[];
  readonly files: Record<string, string>;
  /** The file to run with node once installed (and compiled). */
  readonly main: string;
  readonly compile: boolean;
}

const PROJECTS: readonly Project[] = [
  {
    name: 'cjs',
    install: ['express@5'],
    files: { 'package.json': JSON.stringify({ name: 'consumer-cjs', private: true, type: 'commonjs' }), 'server.js': CJS_SERVER },
    main: 'server.js',
    compile: false,
  },
  {
    name: 'esm',
    install: ['express@4'],
    files: { 'package.json': JSON.stringify({ name: 'consumer-esm', private: true, type: 'module' }), 'server.js': ESM_SERVER },
    main: 'server.js',
    compile: false,
  },
  {
    name: 'ts-node16',
    install: ['express@5', '@types/express@5', '@types/node@20'],
    files: {
      'package.json': JSON.stringify({ name: 'consumer-ts-node16', private: true, type: 'module' }),
      'tsconfig.json': JSON.stringify({ compilerOptions: { ...TS_OPTIONS, module: 'node16', moduleResolution: 'node16' }, files: ['server.ts'] }),
      'server.ts': TS_SERVER,
    },
    main: 'server.js',
    compile: true,
  },
  {
    name: 'ts-bundler',
    install: ['express@5', '@types/express@5', '@types/node@20'],
    files: {
      'package.json': JSON.stringify({ name: 'consumer-ts-bundler', private: true, type: 'module' }),
      'tsconfig.json': JSON.stringify({ compilerOptions: { ...TS_OPTIONS, module: 'esnext', moduleResolution: 'bundler' }, files: ['server.ts'] }),
      'server.ts': TS_SERVER,
    },
    main: 'server.js',
    compile: true,
  },
];

// ---------------------------------------------------------------------------------------------
// Plumbing

/**
 * The environment for npm and the consumers: without what `npm test` puts there about this
 * repository (npm_package_*, npm_config_local_prefix, ...), which would point npm back at it.
 */
function consumerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const dropped = /^(npm_(?!config_)|npm_config_(local_prefix|prefix|global_prefix|call)$|INIT_CWD$)/i;
  for (const [key, value] of Object.entries(process.env)) {
    if (!dropped.test(key)) env[key] = value;
  }
  return env;
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: string[], cwd: string, timeout = 120000): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env: consumerEnv(), timeout, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        reject(new Error(`${file} ${args.join(' ')} (in ${cwd}) did not run to completion (${error.message}):\n${stdout}${stderr}`));
        return;
      }
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

async function mustRun(file: string, args: string[], cwd: string): Promise<Run> {
  const result = await run(file, args, cwd);
  if (result.code !== 0) throw new Error(`${file} ${args.join(' ')} (in ${cwd}) failed with exit code ${result.code}:\n${result.stdout}${result.stderr}`);
  return result;
}

interface Server {
  readonly url: string;
  readonly child: ChildProcess;
}

/** Start `node <main>` in a project and wait for its "listening on http://..." line. */
function startServer(dir: string, main: string): Promise<Server> {
  const child = spawn(process.execPath, [main], { cwd: dir, env: consumerEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${main} in ${dir} did not start:\n${out}`));
    }, 15000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1] as string, child });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`node ${main} in ${dir} exited (${code ?? signal}) before listening:\n${out}`));
    });
  });
}

function stopServer(server: Server | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null || server.child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    server.child.once('exit', () => resolve());
    server.child.kill('SIGTERM');
  });
}

let base: string;
const installed = new Set<string>();
const servers = new Map<string, Server>();
/** Why a project could not be set up: its own tests fail with this, the others still run. */
const setUpErrors = new Map<string, Error>();

/** Install the packed tarball and the project's own dependencies, compile if TypeScript, start it. */
async function setUp(tarball: string, project: Project): Promise<void> {
  const dir = path.join(base, project.name);
  mkdirSync(path.join(dir, 'static'), { recursive: true });
  for (const [name, text] of Object.entries(project.files)) writeFileSync(path.join(dir, name), text);
  writeFileSync(path.join(dir, 'static', 'image.raw'), FIXTURE);
  await mustRun('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball, ...project.install], dir);
  installed.add(project.name);
  if (project.compile) await mustRun(process.execPath, [TSC, '-p', 'tsconfig.json'], dir);
  servers.set(project.name, await startServer(dir, project.main));
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  base = mkdtempSync(path.join(tmpdir(), 'glance-edge-consumers-'));
  const packed = await mustRun('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', base], ROOT);
  const [info] = JSON.parse(packed.stdout) as { filename: string }[];
  if (!info) throw new Error(`npm pack said nothing about its tarball:\n${packed.stdout}`);
  const tarball = path.join(base, info.filename);
  await Promise.all(
    PROJECTS.map((p) => setUp(tarball, p).catch((err: unknown) => setUpErrors.set(p.name, err instanceof Error ? err : new Error(String(err))))),
  );
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await Promise.all([...servers.values()].map(stopServer));
  if (base) rmSync(base, { recursive: true, force: true });
});

/** The URL of a consumer's server; throws why it did not start. */
function url(name: string): string {
  const server = servers.get(name);
  if (!server) throw setUpErrors.get(name) ?? new Error(`the ${name} consumer did not start`);
  return server.url;
}

/** The folder of a consumer project with the package installed; throws why it could not be. */
function projectDir(name: string): string {
  if (!installed.has(name)) throw setUpErrors.get(name) ?? new Error(`the package was not installed in the ${name} consumer`);
  return path.join(base, name);
}

describe.each(PROJECTS.map((p) => [p.name]))('The installed package in the %s consumer', (name) => {
  it('should 409 removing a location of a deactivated image, with Glance text, and not reach the service', async () => {
    const res = await call(url(name), 'PATCH', `/v2/images/${ID}`, '[{"op": "remove", "path": "/locations/0"}]', { 'content-type': V21 });
    expect(res.status).toBe(409);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=UTF-8');
    expect(res.headers.get('x-backing')).toBeNull();
    expect(res.body.toString()).toBe(plainError('409 Conflict', "It's not allowed to remove locations if image status is deactivated."));
  });

  it('should 200 from the service with the patch byte for byte when it touches no location', async () => {
    const body = '[{"op": "replace", "path": "/name", "value": "é"}]  ';
    const res = await call(url(name), 'PATCH', `/v2/images/${ID}`, body, { 'content-type': V21 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-backing')).toBe(`PATCH /v2/images/${ID}`);
    expect(res.body.equals(Buffer.from(body))).toBe(true);
  });

  it('should 400 creating an image with a disk_format outside the list, with Glance text', async () => {
    const res = await call(url(name), 'POST', '/v2/images', '{"disk_format": "nope"}', { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=UTF-8');
    expect(res.headers.get('x-backing')).toBeNull();
    expect(res.body.toString()).toBe(plainError('400 Bad Request', NOPE_MESSAGE.replace(/\n/g, ' ')));
  });

  it('should 206 bytes 2-5 from serveImage for the legacy Content-Range: bytes 2-5/32, with the deprecation headers', async () => {
    const res = await call(url(name), 'GET', `/v2/images/${ID}/file`, undefined, { 'content-range': 'bytes 2-5/32' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 2-5/32');
    expect(res.headers.get('content-length')).toBe('4');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('etag')).toBe(`"${MD5}"`);
    expect(res.headers.get('deprecation')).toBe(OCATA);
    expect(res.headers.get('link')).toBe(LINK);
    expect(res.headers.get('warning')).toBe(WARNING);
    expect(res.body.toString()).toBe('2345');
  });

  it('should 206 bytes 30-31 from serveImage for Range: bytes=-2, with no deprecation headers', async () => {
    const res = await call(url(name), 'GET', `/v2/images/${ID}/file`, undefined, { range: 'bytes=-2' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 30-31/32');
    expect(res.headers.get('deprecation')).toBeNull();
    expect(res.body.toString()).toBe('uv');
  });

  it('should 206 bytes 2-5 from express.static behind legacyContentRange for Content-Range: bytes 2-5/*', async () => {
    const res = await call(url(name), 'GET', '/static/image.raw', undefined, { 'content-range': 'bytes 2-5/*' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 2-5/32');
    expect(res.headers.get('deprecation')).toBe(OCATA);
    expect(res.headers.get('warning')).toBe(WARNING);
    expect(res.body.toString()).toBe('2345');
  });
});

describe('The installed package: subpaths, one module copy, the command', () => {
  it('should resolve glance-edge/metadefs/compute-hypervisor.json with vz, and glance-edge/package.json, through require', async () => {
    const script = [
      "const ns = require('glance-edge/metadefs/compute-hypervisor.json');",
      "console.log(JSON.stringify({ namespace: ns.namespace, vz: ns.properties.hypervisor_type.enum.includes('vz'), version: require('glance-edge/package.json').version }));",
    ].join('\n');
    const res = await mustRun(process.execPath, ['-e', script], projectDir('cjs'));
    expect(JSON.parse(res.stdout)).toEqual({ namespace: 'OS::Compute::Hypervisor', vz: true, version: VERSION });
  });

  it('should refuse a deep import of a file the exports map does not list', async () => {
    const res = await run(process.execPath, ['-e', "require('glance-edge/dist/lib/index.js')"], projectDir('cjs'));
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('ERR_PACKAGE_PATH_NOT_EXPORTED');
  });

  it('should give import and require one copy of the module, with every export named', async () => {
    const script = [
      "import { createRequire } from 'node:module';",
      "import * as ns from 'glance-edge';",
      "import cjs from 'glance-edge';",
      'const required = createRequire(import.meta.url)(\'glance-edge\');',
      "const names = Object.keys(required).filter((n) => n !== '__esModule');",
      'console.log(JSON.stringify({ same: cjs === required && ns.locationGuard === required.locationGuard, missing: names.filter((n) => ns[n] !== required[n]), count: names.length }));',
    ].join('\n');
    const res = await mustRun(process.execPath, ['--input-type=module', '-e', script], projectDir('esm'));
    const answer = JSON.parse(res.stdout) as { same: boolean; missing: string[]; count: number };
    expect(answer).toEqual({ same: true, missing: [], count: expect.any(Number) as number });
    // The public API, not the helpers: at most 20 names.
    expect(answer.count).toBeLessThanOrEqual(20);
  });

  it('should load neither Express, pino, undici nor prom-client for require(\'glance-edge\') and a request through its middlewares', async () => {
    const script = [
      "const http = require('node:http');",
      "const { Readable } = require('node:stream');",
      "const { locationGuard, serveImage, imageFormats, legacyContentRange, glanceErrorHandler } = require('glance-edge');",
      "const guard = locationGuard({ lookup: async (id) => ({ id, status: 'queued', size: null, checksum: null, locations: 2 }) });",
      "const serve = serveImage({ source: () => ({ size: 4, checksum: null, open: () => ({ stream: Readable.from([Buffer.from('abcd')]), offset: 0 }) }) });",
      'const steps = [guard, imageFormats(), legacyContentRange()];',
      'const errors = glanceErrorHandler();',
      'const server = http.createServer((req, res) => {',
      '  let i = 0;',
      '  const next = (err) => { if (err) return errors(err, req, res, () => undefined); const s = steps[i++]; if (s) s(req, res, next); else serve(req, res, next); };',
      '  next();',
      '});',
      "server.listen(0, '127.0.0.1', async () => {",
      '  const base = `http://127.0.0.1:${server.address().port}`;',
      "  const patched = await fetch(`${base}/v2/images/x`, { method: 'PATCH', headers: { 'content-type': 'application/openstack-images-v2.1-json-patch', accept: 'text/plain' }, body: JSON.stringify([{ op: 'remove', path: '/locations/0' }]) });",
      "  const ranged = await fetch(`${base}/v2/images/x/file`, { headers: { range: 'bytes=1-2' } });",
      "  const loaded = Object.keys(require.cache).filter((f) => /[\\/]node_modules[\\/](express|pino|undici|prom-client)[\\/]/.test(f)).map((f) => f.replace(/.*node_modules[\\/]/, ''));",
      '  console.log(JSON.stringify({ patched: patched.status, ranged: ranged.status, body: await ranged.text(), loaded }));',
      '  server.close();',
      '});',
    ].join('\n');
    const res = await mustRun(process.execPath, ['-e', script], projectDir('cjs'));
    expect(JSON.parse(res.stdout)).toEqual({ patched: 409, ranged: 206, body: 'bc', loaded: [] });
  });

  it('should give the servers from glance-edge/server, through require and import', async () => {
    const required = await mustRun(process.execPath, ['-e', "const s = require('glance-edge/server'); console.log(typeof s.createSidecar, typeof s.createDemoApp, typeof s.createMetrics)"], projectDir('cjs'));
    expect(required.stdout).toBe('function function function\n');
    const imported = await mustRun(process.execPath, ['--input-type=module', '-e', "import { createSidecar } from 'glance-edge/server'; console.log(typeof createSidecar)"], projectDir('esm'));
    expect(imported.stdout).toBe('function\n');
  });

  it('should leave an Express 4 consumer one Express: its own', async () => {
    const res = await mustRun(process.execPath, ['-e', "const fs = require('node:fs'); console.log(JSON.stringify({ own: require('express/package.json').version.split('.')[0], nested: fs.existsSync('node_modules/glance-edge/node_modules/express') }))"], projectDir('esm'));
    expect(JSON.parse(res.stdout)).toEqual({ own: '4', nested: false });
  });

  it('should exit 0 with the usage from `npx glance-edge --help` in a consumer project', async () => {
    const res = await mustRun('npx', ['--no', '--', 'glance-edge', '--help'], projectDir('cjs'));
    expect(res.stdout.startsWith('Usage: glance-edge <command> [options]\n')).toBe(true);
    expect(res.stdout).toContain('proxy   Put glance-edge in front of an existing Glance-v2-style image service');
  });
});
