/**
 * The demo server hardened, as a real process on 127.0.0.1: which http(s) locations it reads and
 * which addresses it never connects to, Glance's 413s for an image too large and a full disk, a
 * bare 500 for an unexpected failure, and its connection limit. Every answer is checked for
 * status, the headers that matter and its exact body.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CLI, FIXTURE, startBlobServer, startCli, startDemo, type BlobServer, type Demo, type RunningProcess } from '../helpers/processes';

const V21 = 'application/openstack-images-v2.1-json-patch';
/** Glance's plain-text error body (webob, no Accept header form). */
const plain = (status: string, message: string) => `${status}\n\n${message}\n\n   `;
const INVALID_LOCATION = plain('400 Bad Request', 'Invalid location');
const TOO_LARGE = 'The incoming image is too large: The provided image is too large.';
const DISK_FULL = 'Image storage media is full: There is not enough disk space on the image storage media.';
const INTERNAL = 'The server has either erred or is incapable of performing the requested operation.';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on its own connection; the answer is read even if the server stops reading the body. */
function send(base: string, method: string, target: string, body?: Buffer | string, headers: Record<string, string> = {}, chunked = false): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, method, path: target, agent: false, headers: { accept: 'text/plain', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', (err) => {
      // A refusal before the body was read: the answer may already be in.
      if (!req.writableFinished) return;
      reject(err);
    });
    if (body !== undefined && !chunked) req.setHeader('content-length', Buffer.byteLength(body));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const json = (answer: Answer) => JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;

async function create(base: string): Promise<string> {
  const res = await send(base, 'POST', '/v2/images', JSON.stringify({ name: 'img', disk_format: 'raw', container_format: 'bare' }), { 'content-type': 'application/json' });
  expect(res.status).toBe(201);
  return json(res)['id'] as string;
}

const addLocation = (base: string, id: string, url: string, headers: Record<string, string> = {}) =>
  send(base, 'PATCH', `/v2/images/${id}`, JSON.stringify([{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }]), { 'content-type': V21, ...headers });

async function show(base: string, id: string): Promise<Record<string, unknown>> {
  const res = await send(base, 'GET', `/v2/images/${id}`);
  expect(res.status).toBe(200);
  return json(res);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Write an image record into a demo data folder before the demo starts, as the store keeps it. */
function writeRecord(dataDir: string, record: Record<string, unknown>): void {
  mkdirSync(path.join(dataDir, 'images'), { recursive: true });
  const now = '2026-11-25T10:00:00Z';
  const full = {
    name: 'written',
    disk_format: 'raw',
    container_format: 'bare',
    visibility: 'shared',
    size: 32,
    virtual_size: 32,
    status: 'active',
    checksum: null,
    protected: false,
    min_ram: 0,
    min_disk: 0,
    owner: null,
    os_hidden: false,
    os_hash_algo: null,
    os_hash_value: null,
    created_at: now,
    updated_at: now,
    locations: [],
    tags: [],
    extra: {},
    ...record,
  };
  writeFileSync(path.join(dataDir, 'images', `${String(record['id'])}.json`), JSON.stringify(full));
}

describe('1. Location changes: which http(s) locations the demo reads', () => {
  let demo: RunningProcess;
  let dataDir: string;
  let certDir: string;
  let blobs: BlobServer;
  /**
   * The blob server the refused locations point at: nothing else ever connects to it, so a
   * connection counted there is the demo's (blobs serves the cases that succeed, whose
   * connections may come late).
   */
  let untouched: BlobServer;
  let tls: https.Server;
  let tlsPort: number;
  let tlsConnections = 0;
  /** A server that sends every request elsewhere, counting them. */
  let redirector: http.Server;
  let redirectorPort: number;

  beforeAll(async () => {
    certDir = mkdtempSync(path.join(tmpdir(), 'glance-edge-cert-'));
    const key = path.join(certDir, 'key.pem');
    const cert = path.join(certDir, 'cert.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ], { stdio: 'ignore' });
    [blobs, untouched] = await Promise.all([startBlobServer(), startBlobServer()]);
    tls = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': FIXTURE.length });
      res.end(req.method === 'HEAD' ? undefined : FIXTURE);
    });
    tls.on('secureConnection', () => tlsConnections++);
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    tlsPort = (tls.address() as net.AddressInfo).port;
    redirector = http.createServer((_req, res) => res.writeHead(302, { Location: `${untouched.url}/redirected`, 'Content-Length': 0 }).end());
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    redirectorPort = (redirector.address() as net.AddressInfo).port;
    untouched.put('redirected', FIXTURE);
    dataDir = mkdtempSync(path.join(tmpdir(), 'glance-edge-demo-'));
    // The demo trusts the test's certificate as a user's demo trusts their CA.
    demo = await startCli(['demo', '--port', '0', '--host', '127.0.0.1', '--data', dataDir], { NODE_EXTRA_CA_CERTS: cert });
  }, 30000);

  afterAll(async () => {
    await demo?.stop();
    await Promise.all([blobs?.close(), untouched?.close()]);
    tls?.closeAllConnections();
    await new Promise((resolve) => tls?.close(resolve));
    redirector?.closeAllConnections();
    await new Promise((resolve) => redirector?.close(resolve));
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(certDir, { recursive: true, force: true });
  });

  it.each([
    ['HTTP:// in capitals', (name: string) => `HTTP://127.0.0.1:${new URL(blobs.url).port}/${name}`],
    ['Http:// mixed case', (name: string) => `Http://127.0.0.1:${new URL(blobs.url).port}/${name}`],
    ['127.1 for 127.0.0.1', (name: string) => `http://127.1:${new URL(blobs.url).port}/${name}`],
    ['localhost', (name: string) => `http://localhost:${new URL(blobs.url).port}/${name}`],
    ['an IPv4-mapped IPv6 loopback', (name: string) => `http://[::ffff:127.0.0.1]:${new URL(blobs.url).port}/${name}`],
  ])('should 200 and activate an image at a loopback blob server spelt with %s, then 200 its bytes', async (_spelling, at) => {
    const id = await create(demo.url);
    const url = at(id);
    blobs.put(id, FIXTURE);
    const before = blobs.connections();
    const res = await addLocation(demo.url, id, url);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(json(res)).toMatchObject({ status: 'active', size: 32, locations: [{ url, metadata: {} }] });
    const data = await send(demo.url, 'GET', `/v2/images/${id}/file`);
    expect(data.status).toBe(200);
    expect(data.headers['content-type']).toBe('application/octet-stream');
    expect(data.headers['content-length']).toBe('32');
    expect(data.body).toEqual(FIXTURE);
    expect(blobs.connections()).toBeGreaterThan(before);
  });

  it.each([
    ['HTTPS:// in capitals, by name', () => `HTTPS://localhost:${tlsPort}/a`],
    ['https:// by address', () => `https://127.0.0.1:${tlsPort}/b`],
  ])('should 200 and activate an image at an https location spelt %s, then 200 its bytes', async (_spelling, at) => {
    const id = await create(demo.url);
    const url = at();
    const before = tlsConnections;
    const res = await addLocation(demo.url, id, url);
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({ status: 'active', size: 32, locations: [{ url, metadata: {} }] });
    const data = await send(demo.url, 'GET', `/v2/images/${id}/file`, undefined, { range: 'bytes=10-19' });
    expect(data.status).toBe(206);
    expect(data.headers['content-range']).toBe('bytes 10-19/32');
    expect(data.body.toString()).toBe('abcdefghij');
    expect(tlsConnections).toBeGreaterThan(before);
  });

  const own = () => new URL(demo.url).port;
  const blobPort = () => new URL(untouched.url).port;
  it.each([
    ['its own address and port', () => `http://127.0.0.1:${own()}/v2/images`],
    ['its own port as 127.1', () => `http://127.1:${own()}/v2/images`],
    ['its own port as 0x7f.1', () => `http://0x7f.1:${own()}/v2/images`],
    ['its own port as 2130706433', () => `http://2130706433:${own()}/v2/images`],
    ['its own port as another loopback address', () => `http://127.0.0.2:${own()}/v2/images`],
    ['its own port as [::ffff:127.0.0.1]', () => `http://[::ffff:127.0.0.1]:${own()}/v2/images`],
    ['its own port as [::1]', () => `http://[::1]:${own()}/v2/images`],
    ['its own port as localhost', () => `http://localhost:${own()}/v2/images`],
    ['its own port as HTTP://LOCALHOST.', () => `HTTP://LOCALHOST.:${own()}/v2/images`],
    ['the metadata service 169.254.169.254', () => 'http://169.254.169.254/latest/meta-data/'],
    ['169.254.169.254 inside IPv6', () => 'http://[::ffff:169.254.169.254]/latest/meta-data/'],
    ['an IPv6 link-local address', () => 'http://[fe80::1]/x'],
    ['0.0.0.0, which reaches this host', () => `http://0.0.0.0:${blobPort()}/x`],
    ['0, which reaches this host', () => `http://0:${blobPort()}/x`],
    ['[::], which reaches this host', () => `http://[::]:${blobPort()}/x`],
    ['a private address not allowed', () => 'http://10.0.0.1/x'],
    ['a multicast address', () => 'http://224.0.0.1/x'],
    ['an empty URL', () => ''],
    ['no host', () => 'http://'],
    ['no host before the path', () => `http:///127.0.0.1:${blobPort()}/x`],
    ['only a port', () => `http://:${blobPort()}/x`],
    ['no slashes', () => `http:127.0.0.1:${blobPort()}/x`],
    ['a port that is not a number', () => 'http://127.0.0.1:port/x'],
    ['an unparsable IPv6 host', () => 'http://[::1/x'],
    ['a backslash before @', () => `http://example.com\\@127.0.0.1:${blobPort()}/x`],
    ['another scheme', () => `ftp://127.0.0.1:${blobPort()}/x`],
    ['a file URL', () => 'file:///etc/passwd'],
    ['a redirect, not followed', () => `http://127.0.0.1:${redirectorPort}/elsewhere`],
  ])('should 400 Invalid location for a location at %s, and leave the image queued', async (_what, at) => {
    const id = await create(demo.url);
    const before = untouched.connections();
    const res = await addLocation(demo.url, id, at());
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
    expect(res.body.toString()).toBe(INVALID_LOCATION);
    expect(await show(demo.url, id)).toMatchObject({ status: 'queued', size: null, locations: [] });
    expect(untouched.connections()).toBe(before);
  });

  it("should 400 Invalid location in Glance's JSON form for the demo's own port, without a request to itself", async () => {
    const other = await create(demo.url);
    const id = await create(demo.url);
    const res = await addLocation(demo.url, id, `http://127.0.0.1:${own()}/v2/images/${other}/file`, { accept: 'application/json' });
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.body.toString()).toBe('{"message": "Invalid location<br /><br />\\n\\n\\n", "code": "400 Bad Request", "title": "Bad Request"}');
    // Access lines are written every 200 ms: the PATCH's is there, no request for the other image is.
    await sleep(500);
    expect(demo.output()).toContain(`"method":"PATCH","url":"/v2/images/${id}"`);
    expect(demo.output()).not.toContain(`/v2/images/${other}/file`);
    expect(demo.output()).not.toContain('"method":"HEAD"');
  });
});

describe('1. Location changes: --allowed-location-hosts', () => {
  let blobs: BlobServer;

  beforeAll(async () => {
    blobs = await startBlobServer();
    blobs.put('a', FIXTURE);
  });

  afterAll(async () => {
    await blobs?.close();
  });

  it.each([
    ['10.0.0.0/8', 'http://127.0.0.1', 400],
    ['', 'http://127.0.0.1', 400],
    ['', 'http://localhost', 400],
    ['localhost', 'http://localhost', 200],
    ['localhost', 'http://127.0.0.1', 400],
    ['127.0.0.1', 'http://127.0.0.1', 200],
    ['127.0.0.0/30,10.0.0.0/8', 'http://127.1', 200],
  ])("should, with --allowed-location-hosts '%s', answer a location at %s:<blob port> %d", async (allowed, base, status) => {
    const demo = await startDemo(['--allowed-location-hosts', allowed]);
    try {
      const id = await create(demo.url);
      const before = blobs.connections();
      const url = `${base}:${new URL(blobs.url).port}/a`;
      const res = await addLocation(demo.url, id, url);
      expect(res.status).toBe(status);
      if (status === 400) {
        expect(res.body.toString()).toBe(INVALID_LOCATION);
        expect(await show(demo.url, id)).toMatchObject({ status: 'queued', locations: [] });
        expect(blobs.connections()).toBe(before);
      } else {
        expect(json(res)).toMatchObject({ status: 'active', size: 32, locations: [{ url, metadata: {} }] });
        expect(blobs.connections()).toBeGreaterThan(before);
      }
    } finally {
      await demo.close();
    }
  });

  it('should 503 a download whose stored location points at the demo itself, never requesting it', async () => {
    // Two images whose locations are each other's data on the demo, stored before it started.
    const dataDir = mkdtempSync(path.join(tmpdir(), 'glance-edge-demo-'));
    const port = await freePort();
    const a = randomUUID();
    const b = randomUUID();
    writeRecord(dataDir, { id: a, locations: [{ url: `http://127.0.0.1:${port}/v2/images/${b}/file`, metadata: {} }] });
    writeRecord(dataDir, { id: b, locations: [{ url: `http://localhost:${port}/v2/images/${a}/file`, metadata: {} }] });
    const demo = await startDemo(['--port', String(port)], dataDir);
    try {
      expect(demo.port).toBe(port);
      for (const [id] of [[a], [b]] as const) {
        const res = await send(demo.url, 'GET', `/v2/images/${id}/file`);
        expect(res.status).toBe(503);
        expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
        expect(res.body.toString()).toBe(plain('503 Service Unavailable', `Image data of image ${id} is not available at its location.`));
      }
      await sleep(500);
      const lines = demo.output().split('\n').filter((l) => l.includes('"url":"/v2/images/'));
      expect(lines).toHaveLength(2);
    } finally {
      await demo.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('2. Image data: an image over --max-image-size', () => {
  let demo: Demo;

  beforeAll(async () => {
    demo = await startDemo(['--max-image-size', '31']);
  });

  afterAll(async () => {
    await demo?.close();
  });

  const leftovers = () => ['blobs', 'staging', 'tmp'].flatMap((d) => readdirSync(path.join(demo.dataDir, d)));

  it.each([
    ['with Content-Length', false],
    ['chunked', true],
  ])('should 413 an upload of 32 bytes %s, keep nothing of it and leave the image queued', async (_how, chunked) => {
    const id = await create(demo.url);
    const res = await send(demo.url, 'PUT', `/v2/images/${id}/file`, FIXTURE, { 'content-type': 'application/octet-stream' }, chunked);
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
    expect(res.body.toString()).toBe(plain('413 Request Entity Too Large', TOO_LARGE));
    expect(await show(demo.url, id)).toMatchObject({ status: 'queued', size: null, checksum: null, locations: [] });
    expect(leftovers()).toEqual([]);
    const data = await send(demo.url, 'GET', `/v2/images/${id}/file`);
    expect(data.status).toBe(204);
    expect(data.body.length).toBe(0);
  });

  it("should 413 in Glance's JSON form", async () => {
    const id = await create(demo.url);
    const res = await send(demo.url, 'PUT', `/v2/images/${id}/file`, FIXTURE, { 'content-type': 'application/octet-stream', accept: 'application/json' });
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.body.toString()).toBe(`{"message": "${TOO_LARGE}<br /><br />\\n\\n\\n", "code": "413 Request Entity Too Large", "title": "Request Entity Too Large"}`);
  });

  it('should 413 staging 32 bytes and leave the image queued with nothing staged', async () => {
    const id = await create(demo.url);
    const res = await send(demo.url, 'PUT', `/v2/images/${id}/stage`, FIXTURE, { 'content-type': 'application/octet-stream' }, true);
    expect(res.status).toBe(413);
    expect(res.body.toString()).toBe(plain('413 Request Entity Too Large', TOO_LARGE));
    expect(await show(demo.url, id)).toMatchObject({ status: 'queued', size: null });
    expect(leftovers()).toEqual([]);
  });

  it('should 204 an upload of exactly 31 bytes and 200 them back', async () => {
    const id = await create(demo.url);
    const res = await send(demo.url, 'PUT', `/v2/images/${id}/file`, FIXTURE.subarray(0, 31), { 'content-type': 'application/octet-stream' }, true);
    expect(res.status).toBe(204);
    expect(await show(demo.url, id)).toMatchObject({ status: 'active', size: 31 });
    const data = await send(demo.url, 'GET', `/v2/images/${id}/file`);
    expect(data.status).toBe(200);
    expect(data.body).toEqual(FIXTURE.subarray(0, 31));
  });
});

describe('2. Image data: a full disk', () => {
  // The demo in a mount namespace of its own, its data folder a 1 MiB tmpfs.
  let child: ReturnType<typeof spawn>;
  let base: string;
  let dataDir: string;
  let output = '';

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'glance-edge-full-'));
    child = spawn(
      'unshare',
      ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=1m glance-edge-full "$0" && exec "$1" "$2" demo --port 0 --host 127.0.0.1 --data "$0"', dataDir, process.execPath, CLI],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    base = await new Promise<string>((resolve, reject) => {
      const onData = (d: Buffer) => {
        output += d.toString();
        const m = /listening on (http:\/\/[^\s"]+)/.exec(output);
        if (m) resolve(m[1] as string);
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) => reject(new Error(`the demo on a tmpfs exited with ${code}:\n${output}`)));
    });
  }, 30000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('should 413 an upload larger than the disk, remove what was written, leave the image queued, then 204 one that fits', async () => {
    const id = await create(base);
    const res = await send(base, 'PUT', `/v2/images/${id}/file`, randomBytes(2 * 1024 * 1024), { 'content-type': 'application/octet-stream' });
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
    expect(res.headers.connection).toBe('close');
    expect(res.body.toString()).toBe(plain('413 Request Entity Too Large', DISK_FULL));
    expect(await show(base, id)).toMatchObject({ status: 'queued', size: null, checksum: null, locations: [] });
    // The folder as the demo sees it, in its own mount namespace.
    const seen = `/proc/${child.pid}/root${dataDir}`;
    expect(readdirSync(path.join(seen, 'tmp'))).toEqual([]);
    expect(readdirSync(path.join(seen, 'blobs'))).toEqual([]);
    // Had the first upload's 1 MiB stayed, this would not fit.
    const fits = randomBytes(600 * 1024);
    const again = await send(base, 'PUT', `/v2/images/${id}/file`, fits, { 'content-type': 'application/octet-stream' });
    expect(again.status).toBe(204);
    const data = await send(base, 'GET', `/v2/images/${id}/file`);
    expect(data.status).toBe(200);
    expect(data.body.equals(fits)).toBe(true);
  });

  it('should 413 staging more than the disk holds and leave the image queued with nothing staged', async () => {
    const id = await create(base);
    const res = await send(base, 'PUT', `/v2/images/${id}/stage`, randomBytes(2 * 1024 * 1024), { 'content-type': 'application/octet-stream' }, true);
    expect(res.status).toBe(413);
    expect(res.body.toString()).toBe(plain('413 Request Entity Too Large', DISK_FULL));
    expect(await show(base, id)).toMatchObject({ status: 'queued', size: null });
    expect(readdirSync(`/proc/${child.pid}/root${dataDir}/staging`)).toEqual([]);
  });

  it('should 413 an import the disk cannot hold and queue the image again without its data, as Glance reverts one', async () => {
    // 600 KiB of the 1 MiB are taken by the first test's image: 300 KiB stage, but do not import.
    const id = await create(base);
    const staged = randomBytes(300 * 1024);
    const stage = await send(base, 'PUT', `/v2/images/${id}/stage`, staged, { 'content-type': 'application/octet-stream' });
    expect(stage.status).toBe(204);
    const body = JSON.stringify({ method: { name: 'glance-direct' } });
    const res = await send(base, 'POST', `/v2/images/${id}/import`, body, { 'content-type': 'application/json' });
    expect(res.status).toBe(413);
    expect(res.body.toString()).toBe(plain('413 Request Entity Too Large', DISK_FULL));
    expect(await show(base, id)).toMatchObject({ status: 'queued', size: null, locations: [] });
    const seen = `/proc/${child.pid}/root${dataDir}`;
    expect(readdirSync(path.join(seen, 'staging'))).toEqual([]);
    expect(readdirSync(path.join(seen, 'tmp'))).toEqual([]);
    expect(readdirSync(path.join(seen, 'blobs'))).toHaveLength(1);
  });
});

describe('0. Error bodies: an unexpected failure', () => {
  let demo: Demo;
  const broken = randomUUID();

  beforeAll(async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'glance-edge-demo-'));
    // A record the demo cannot serve: its locations are not a list.
    writeRecord(dataDir, { id: broken, locations: null });
    demo = await startDemo([], dataDir);
  });

  afterAll(async () => {
    await demo?.close();
    rmSync(demo.dataDir, { recursive: true, force: true });
  });

  it.each([
    ['text/plain', 'text/plain; charset=UTF-8', plain('500 Internal Server Error', INTERNAL)],
    ['application/json', 'application/json', `{"message": "${INTERNAL}<br /><br />\\n\\n\\n", "code": "500 Internal Server Error", "title": "Internal Server Error"}`],
    [
      '*/*',
      'text/html; charset=UTF-8',
      `<html>\n <head>\n  <title>500 Internal Server Error</title>\n </head>\n <body>\n  <h1>500 Internal Server Error</h1>\n  ${INTERNAL}<br /><br />\n\n\n\n </body>\n</html>`,
    ],
  ])('should 500 with Accept %s and a body that says nothing of the failure', async (accept, type, body) => {
    const res = await send(demo.url, 'GET', `/v2/images/${broken}/file`, undefined, { accept });
    expect(res.status).toBe(500);
    expect(res.headers['content-type']).toBe(type);
    expect(res.body.toString()).toBe(body);
    expect(res.body.toString()).not.toMatch(/TypeError|\bat\b|\.js|\/work|\/dist\/|node:/);
  });
});

describe('Connections: --max-connections', () => {
  let demo: Demo;

  beforeAll(async () => {
    demo = await startDemo(['--max-connections', '2']);
  });

  afterAll(async () => {
    await demo?.close();
  });

  /** A connection and one request on it; the bytes it got and whether the server closed it. */
  function connectAndAsk(): Promise<{ socket: net.Socket; answer: Promise<{ bytes: Buffer; closed: boolean }> }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(demo.port, '127.0.0.1', () => {
        socket.write('GET /versions HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        const chunks: Buffer[] = [];
        const answer = new Promise<{ bytes: Buffer; closed: boolean }>((done) => {
          const finish = (closed: boolean) => done({ bytes: Buffer.concat(chunks), closed });
          socket.on('data', (c: Buffer) => {
            chunks.push(c);
            if (Buffer.concat(chunks).includes('"versions"')) finish(false);
          });
          socket.on('close', () => finish(true));
          socket.on('error', () => undefined);
        });
        resolve({ socket, answer });
      });
      socket.on('error', reject);
    });
  }

  it('should close a third connection with no answer while two are open, and 200 a new one once one goes', async () => {
    const first = await connectAndAsk();
    const second = await connectAndAsk();
    try {
      for (const open of [first, second]) {
        const { bytes, closed } = await open.answer;
        expect(closed).toBe(false);
        expect(bytes.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      }
      const third = await connectAndAsk();
      const refused = await third.answer;
      expect(refused).toEqual({ bytes: Buffer.alloc(0), closed: true });

      first.socket.destroy();
      await sleep(200);
      const fourth = await connectAndAsk();
      const { bytes, closed } = await fourth.answer;
      fourth.socket.destroy();
      expect(closed).toBe(false);
      expect(bytes.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    } finally {
      first.socket.destroy();
      second.socket.destroy();
    }
  });
});

describe('The demo command: the new flags', () => {
  it.each([
    [['--max-connections', '0'], "--max-connections must be an integer from 1 to 1048576, got '0'"],
    [['--max-connections', 'many'], "--max-connections must be an integer from 1 to 1048576, got 'many'"],
    [['--max-image-size=-1'], "--max-image-size must be an integer from 1 to 9007199254740991, got '-1'"],
    [['--max-image-size', '1.5'], "--max-image-size must be an integer from 1 to 9007199254740991, got '1.5'"],
    [['--allowed-location-hosts', '10.0.0.0/99'], "--allowed-location-hosts: '10.0.0.0/99' has no valid prefix length"],
    [['--allowed-location-hosts', 'bad host!'], "--allowed-location-hosts: 'bad host!' is not a CIDR, an address or a host name"],
  ])('should exit 2 with one line for %j', (args, message) => {
    const run = spawnSync(process.execPath, [CLI, 'demo', '--port', '0', ...args], { encoding: 'utf8', timeout: 15000 });
    expect(run).toMatchObject({ status: 2, stdout: '', stderr: `glance-edge: ${message}\n` });
  });

  it('should list the new flags in the usage text', () => {
    const run = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8', timeout: 15000 });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('--allowed-location-hosts LIST');
    expect(run.stdout).toContain('--max-image-size BYTES');
    expect(run.stdout).toContain('--max-connections N');
  });
});
