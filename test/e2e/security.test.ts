/**
 * What a hostile or unlucky client can do to the demo and the sidecar, as real processes: whose
 * credentials the guard's lookups carry and where they may not appear; what a caller who may not see
 * an image can learn of it; oversized bodies and headers; clients that send their request slowly;
 * error bodies that echo what they were given; image ids that try to be paths.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { call, plainError } from '../helpers/http';
import { FIXTURE, startCli, startDemo, type Demo, type RunningProcess } from '../helpers/processes';
import { invisibleBody, startVisibilityUpstream, type VisibilityUpstream } from '../fixtures/visibility-upstream';

const V21 = 'application/openstack-images-v2.1-json-patch';
const MiB = 1024 * 1024;
const TOO_LARGE = plainError('413 Request Entity Too Large', 'The request body is larger than 1048576 bytes.');

/** webob's HTML error form, for a message given as Glance's only sentence (already escaped). */
const htmlError = (status: string, escaped: string) =>
  `<html>\n <head>\n  <title>${status}</title>\n </head>\n <body>\n  <h1>${status}</h1>\n  ${escaped}<br /><br />\n\n\n\n </body>\n</html>`;

const TOKEN_A = `gAAAAA-token-a-${randomUUID()}`;
const TOKEN_B = `gAAAAA-token-b-${randomUUID()}`;
const BEARER = `bearer-${randomUUID()}`;
const COOKIE = `cookie-${randomUUID()}`;
const SERVICE_TOKEN = `service-${randomUUID()}`;

const IMG = {
  credentials: '0c3e7f0a-0000-4000-8000-00000000000c',
  broken: '0c3e7f0a-0000-4000-8000-0000000000bb',
  hidden: '0c3e7f0a-0000-4000-8000-0000000000dd',
  odd: '0c3e7f0a-0000-4000-8000-00000000000e',
  limit: '0c3e7f0a-0000-4000-8000-0000000000ff',
};
const ODD_STATUS = "<img src=x onerror=alert('x')>";

// -- raw connections ------------------------------------------------------------------------------

interface Raw {
  readonly socket: net.Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves when the server has closed the connection (or it failed). */
  readonly closed: Promise<void>;
  /** Resolves once a complete answer (head and Content-Length body) has come. */
  readonly answered: Promise<void>;
  isClosed(): boolean;
  isAnswered(): boolean;
}

const sockets = new Set<net.Socket>();

function connect(base: string): Promise<Raw> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    sockets.add(socket);
    const chunks: Buffer[] = [];
    let closed = false;
    let answered = false;
    let onClose!: () => void;
    let onAnswer!: () => void;
    const closedP = new Promise<void>((r) => (onClose = r));
    const answeredP = new Promise<void>((r) => (onAnswer = r));
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (!answered && parse(Buffer.concat(chunks))) {
        answered = true;
        onAnswer();
      }
    });
    socket.on('error', () => undefined); // a reset after the answer is what some tests wait for
    socket.on('close', () => {
      closed = true;
      sockets.delete(socket);
      onClose();
    });
    socket.once('connect', () =>
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        closed: closedP,
        answered: answeredP,
        isClosed: () => closed,
        isAnswered: () => answered,
      }),
    );
    socket.once('error', reject);
  });
}

interface Parsed {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** The first answer in `data`, once its head and its Content-Length body are all there. */
function parse(data: Buffer): Parsed | null {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const [statusLine = '', ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  if (data.length < end + 4 + length) return null;
  return { status: Number(statusLine.split(' ')[1]), headers, body: data.subarray(end + 4, end + 4 + length).toString() };
}

/**
 * One request through node:http, which sends the path exactly as given (fetch would resolve `.` and
 * `..` segments, even encoded ones, before sending).
 */
function exact(base: string, method: string, target: string, body?: string, headers: Record<string, string> = {}) {
  const { hostname, port } = new URL(base);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request({ hostname, port, method, path: target, agent: false, headers: { accept: 'text/plain', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** encodeURIComponent, and dots too: an id of `.` or `..` must stay one path segment. */
const encodeId = (id: string) => encodeURIComponent(id).replace(/\./g, '%2E');

const write = (socket: net.Socket, data: string | Buffer) =>
  new Promise<boolean>((resolve) => {
    if (socket.destroyed || !socket.writable) return resolve(false);
    socket.write(data, (err) => resolve(!err));
  });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Whether `p` settles within `ms`. */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  return Promise.race([p.then(() => true), late]).finally(() => clearTimeout(timer));
}

// -- processes -------------------------------------------------------------------------------------

let upstream: VisibilityUpstream;
let sidecar: RunningProcess;
let demo: Demo;
/** A demo and a sidecar with short client timeouts, for the slow clients. */
let strictDemo: Demo;
let strictSidecar: RunningProcess;
/** A demo over a data folder inside `root`, next to files an id must never reach. */
let idsDemo: Demo;
let root: string;
let demoImage: string;

async function createIn(base: string): Promise<string> {
  const res = await call(base, 'POST', '/v2/images', JSON.stringify({ name: 'sec', disk_format: 'raw', container_format: 'bare' }), {
    'content-type': 'application/json',
  });
  expect(res.status).toBe(201);
  return (JSON.parse(res.body.toString()) as { id: string }).id;
}

async function activeIn(base: string): Promise<string> {
  const id = await createIn(base);
  expect((await call(base, 'PUT', `/v2/images/${id}/file`, FIXTURE, { 'content-type': 'application/octet-stream' })).status).toBe(204);
  return id;
}

// -- slow clients, started first and judged last (they run while the other tests do) ---------------

/** The client timeouts the strict processes are started with (--header-timeout, --idle-timeout). */
const HEADER_TIMEOUT = 3000;
const IDLE_TIMEOUT = 5000;
const STRICT = ['--header-timeout', String(HEADER_TIMEOUT), '--idle-timeout', String(IDLE_TIMEOUT)];
/** How long the test waits for a cut (a deadline, plus the second between Node's checks, plus slack). */
const STRICT_CUT_MS = IDLE_TIMEOUT + 4000;
/** The default header timeout is 20 s. */
const DEFAULT_CUT_MS = 25_000;

interface Cut {
  /** Whether the server closed the connection (rather than the test giving up). */
  readonly closedByServer: boolean;
  readonly afterMs: number;
  readonly answer: string;
}

/** Send `head`, then `drip` one byte every 500 ms (cycling; nothing if empty), for at most `waitMs`. */
async function slowClient(waitMs: number, base: string, head: string, drip = ''): Promise<Cut> {
  const started = Date.now();
  const raw = await connect(base);
  if (head) await write(raw.socket, head);
  let k = 0;
  const timer = drip ? setInterval(() => void write(raw.socket, drip[k++ % drip.length] as string), 500) : undefined;
  const closedByServer = await within(raw.closed, waitMs - (Date.now() - started));
  clearInterval(timer);
  raw.socket.destroy();
  return { closedByServer, afterMs: Date.now() - started, answer: raw.received().toString('latin1').split('\r\n')[0] ?? '' };
}

const slow: Record<string, Promise<Cut>> = {};
let slowUploadImage: string;

beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'glance-edge-ids-'));
  mkdirSync(path.join(root, 'data'));
  // One after the other, so that whatever started is stopped in afterAll if the next fails.
  upstream = await startVisibilityUpstream();
  sidecar = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1']);
  demo = await startDemo();
  idsDemo = await startDemo(['--max-ranges', '10'], path.join(root, 'data'));
  strictDemo = await startDemo(STRICT);
  strictSidecar = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1', '--timeout', '3000', ...STRICT]);
  demoImage = await activeIn(demo.url);
  const strictImage = await activeIn(strictDemo.url);
  slowUploadImage = await createIn(strictDemo.url);
  upstream.add({ id: IMG.limit, status: 'active', locations: ['http://127.0.0.1:1/a', 'http://127.0.0.1:1/b'], visibleTo: [TOKEN_A] });

  const slowHeaders = 'GET /versions HTTP/1.1\r\nHost: 127.0.0.1\r\n';
  const drip = 'X-Slow: aaaaaaaaaaaaaaaa\r\n'; // header lines, one byte at a time, never the blank line
  const patchHead = (id: string, length: number) =>
    `PATCH /v2/images/${id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${V21}\r\nContent-Length: ${length}\r\nAccept: text/plain\r\n\r\n`;
  const body = JSON.stringify([{ op: 'remove', path: '/locations/0' }]).padEnd(200, ' ');
  slow['default demo headers'] = slowClient(DEFAULT_CUT_MS, demo.url, slowHeaders, drip);
  slow['default sidecar headers'] = slowClient(DEFAULT_CUT_MS, sidecar.url, slowHeaders, drip);
  slow['demo headers'] = slowClient(STRICT_CUT_MS, strictDemo.url, slowHeaders, drip);
  slow['sidecar headers'] = slowClient(STRICT_CUT_MS, strictSidecar.url, slowHeaders, drip);
  slow['demo silent'] = slowClient(STRICT_CUT_MS, strictDemo.url, '');
  slow['sidecar silent'] = slowClient(STRICT_CUT_MS, strictSidecar.url, '');
  slow['demo patch body'] = slowClient(STRICT_CUT_MS, strictDemo.url, patchHead(strictImage, 200) + body.slice(0, 20));
  slow['sidecar patch body'] = slowClient(STRICT_CUT_MS, strictSidecar.url, patchHead(IMG.limit, 200) + body.slice(0, 20));
  slow['demo upload body'] = slowClient(
    STRICT_CUT_MS,
    strictDemo.url,
    `PUT /v2/images/${slowUploadImage}/file HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n0123456789`,
  );
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all([sidecar?.stop(), strictSidecar?.stop(), demo?.close(), idsDemo?.close(), strictDemo?.close()]);
  await upstream?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

// -- 1. the lookup: credentials and visibility -------------------------------------------------------

describe('1. Location changes through the sidecar: the lookup asks with the caller’s credentials', () => {
  const secrets = { 'x-auth-token': TOKEN_A, authorization: `Bearer ${BEARER}`, cookie: `session=${COOKIE}`, 'x-service-token': SERVICE_TOKEN };

  it('should forward the caller’s credentials on every lookup and never write them to stdout or stderr', async () => {
    upstream.add({ id: IMG.credentials, status: 'active', locations: ['http://127.0.0.1:1/a', 'http://127.0.0.1:1/b'], visibleTo: [TOKEN_A], data: FIXTURE });
    upstream.add({ id: IMG.broken, status: 'active', locations: ['http://127.0.0.1:1/a'], visibleTo: [TOKEN_A], broken: true });
    const from = upstream.seen.length;

    const removed = await call(sidecar.url, 'PATCH', `/v2/images/${IMG.credentials}`, JSON.stringify([{ op: 'remove', path: '/locations/-' }]), { 'content-type': V21, ...secrets });
    expect(removed.status).toBe(200);
    const ranged = await call(sidecar.url, 'GET', `/v2/images/${IMG.credentials}/file`, undefined, { range: 'bytes=0-9', ...secrets });
    expect(ranged.status).toBe(206);
    expect(ranged.body.toString()).toBe('0123456789');
    const failed = await call(sidecar.url, 'PATCH', `/v2/images/${IMG.broken}`, JSON.stringify([{ op: 'remove', path: '/locations/0' }]), { 'content-type': V21, ...secrets });
    expect(failed.status).toBe(502);
    expect(failed.body.toString()).toBe(plainError('502 Bad Gateway', 'The image service answered 500 when asked for the image status.'));

    // Upstream: four lookups (GET /v2/images/{id}: two for the change, one for the download, one for
    // the change that fails), each with every credential exactly as sent; the forwarded PATCH and
    // the data request carry them too.
    const seen = upstream.seen.slice(from);
    const lookups = seen.filter((r) => r.method === 'GET' && /^\/v2\/images\/[^/]+$/.test(r.url));
    expect(lookups.map((r) => r.url)).toEqual([`/v2/images/${IMG.credentials}`, `/v2/images/${IMG.credentials}`, `/v2/images/${IMG.credentials}`, `/v2/images/${IMG.broken}`]);
    for (const r of seen) expect(r.headers).toMatchObject(secrets);
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual(
      expect.arrayContaining([`PATCH /v2/images/${IMG.credentials}`, `GET /v2/images/${IMG.credentials}/file`]),
    );

    // The sidecar's own output: one access-log line per request, and not one credential.
    for (let i = 0; i < 100 && !sidecar.output().includes(`/v2/images/${IMG.broken}`); i++) await sleep(20);
    const output = sidecar.output();
    expect(output).toContain(`"url":"/v2/images/${IMG.broken}"`);
    for (const secret of [TOKEN_A, BEARER, COOKIE, SERVICE_TOKEN]) expect(output).not.toContain(secret);
  });
});

describe('1. Location changes through the sidecar: a caller who may not see an image learns nothing', () => {
  beforeAll(() => {
    upstream.add({ id: IMG.hidden, status: 'deactivated', locations: ['http://127.0.0.1:1/a', 'http://127.0.0.1:1/b'], visibleTo: [TOKEN_A], data: FIXTURE });
  });

  it('should 409 the caller who may see the deactivated image (the answer the others must not get)', async () => {
    const res = await call(sidecar.url, 'PATCH', `/v2/images/${IMG.hidden}`, JSON.stringify([{ op: 'remove', path: '/locations/0' }]), { 'content-type': V21, 'x-auth-token': TOKEN_A });
    expect(res.status).toBe(409);
    expect(res.body.toString()).toBe(plainError('409 Conflict', "It's not allowed to remove locations if image status is deactivated."));
  });

  it.each([
    ['removal', [{ op: 'remove', path: '/locations/0' }]],
    ['replacement', [{ op: 'replace', path: '/locations', value: [{ url: 'http://127.0.0.1:1/c', metadata: {} }] }]],
    ['addition', [{ op: 'add', path: '/locations/-', value: { url: 'http://127.0.0.1:1/c', metadata: {} } }]],
  ])('should 404 exactly as the upstream does a location %s by a caller who may not see the deactivated image', async (_name, ops) => {
    const headers = { 'content-type': V21, 'x-auth-token': TOKEN_B };
    const direct = await call(upstream.url, 'PATCH', `/v2/images/${IMG.hidden}`, JSON.stringify(ops), headers);
    const from = upstream.seen.length;
    const res = await call(sidecar.url, 'PATCH', `/v2/images/${IMG.hidden}`, JSON.stringify(ops), headers);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe(direct.headers.get('content-type'));
    expect(res.body.toString()).toBe(direct.body.toString());
    expect(res.body.toString()).toBe(invisibleBody(IMG.hidden));
    // The answer is the upstream's own: the patch went on to it, and it changed nothing.
    expect(upstream.seen.slice(from).map((r) => `${r.method} ${r.headers['x-auth-token']}`)).toContain(`PATCH ${TOKEN_B}`);
    expect(upstream.get(IMG.hidden)?.locations).toEqual(['http://127.0.0.1:1/a', 'http://127.0.0.1:1/b']);
  });

  it('should 404 exactly as the upstream does a ranged download by a caller who may not see the image', async () => {
    const headers = { 'x-auth-token': TOKEN_B, range: 'bytes=0-9' };
    const direct = await call(upstream.url, 'GET', `/v2/images/${IMG.hidden}/file`, undefined, headers);
    const res = await call(sidecar.url, 'GET', `/v2/images/${IMG.hidden}/file`, undefined, headers);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-range')).toBeNull();
    expect(res.body.toString()).toBe(direct.body.toString());
    expect(res.body.toString()).toBe(invisibleBody(IMG.hidden));
  });

  it('should 401 exactly as the upstream does a location change without credentials', async () => {
    const ops = JSON.stringify([{ op: 'remove', path: '/locations/0' }]);
    const direct = await call(upstream.url, 'PATCH', `/v2/images/${IMG.hidden}`, ops, { 'content-type': V21 });
    const res = await call(sidecar.url, 'PATCH', `/v2/images/${IMG.hidden}`, ops, { 'content-type': V21 });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(direct.headers.get('www-authenticate'));
    expect(res.body.toString()).toBe(direct.body.toString());
  });
});

// -- oversized bodies and headers ------------------------------------------------------------------

interface Refusal {
  readonly answer: Parsed | null;
  /** Body bytes written before the answer came. */
  readonly writtenBeforeAnswer: number;
  /** Whether the server closed the connection within 3 s of its answer, though most of the body never came. */
  readonly closedByServer: boolean;
}

/**
 * A location patch that declares 100 MB (or is chunked) and keeps coming, 64 KiB every 10 ms, until
 * the answer (2 MiB at most); then nothing more. A server that read the rest would wait for it.
 */
async function oversizedPatch(base: string, id: string, framing: 'content-length' | 'chunked'): Promise<Refusal> {
  const raw = await connect(base);
  const length = framing === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${100 * 1000 * 1000}`;
  await write(raw.socket, `PATCH /v2/images/${id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${V21}\r\nAccept: text/plain\r\n${length}\r\n\r\n`);
  const piece = Buffer.alloc(64 * 1024, 'x');
  Buffer.from('[{"op":"add","path":"/locations/-","value":{"url":"http://127.0.0.1:1/x","metadata":{"pad":"').copy(piece);
  const framed = framing === 'chunked' ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece;
  let written = 0;
  while (!raw.isAnswered() && written < 2 * MiB) {
    if (!(await write(raw.socket, framed))) break;
    written += piece.length;
    await sleep(10);
  }
  await within(raw.answered, 5000);
  const closedByServer = await within(raw.closed, 3000);
  raw.socket.destroy();
  return { answer: parse(raw.received()), writtenBeforeAnswer: written, closedByServer };
}

describe('request limits', () => {
  it.each([['content-length'], ['chunked']] as const)(
    'should 413 a location patch over 1 MiB (%s) in the demo without reading the rest, and close the connection',
    async (framing) => {
      const before = await call(demo.url, 'GET', `/v2/images/${demoImage}`);
      const refusal = await oversizedPatch(demo.url, demoImage, framing);
      expect(refusal.answer).toMatchObject({ status: 413, body: TOO_LARGE, headers: { connection: 'close' } });
      expect(refusal.writtenBeforeAnswer).toBeLessThan(2 * MiB);
      expect(refusal).toMatchObject({ closedByServer: true });
      expect((await call(demo.url, 'GET', `/v2/images/${demoImage}`)).body.toString()).toBe(before.body.toString());
    },
  );

  it.each([['content-length'], ['chunked']] as const)(
    'should 413 a location patch over 1 MiB (%s) in the sidecar without reading the rest or asking the upstream',
    async (framing) => {
      const from = upstream.seen.length;
      const refusal = await oversizedPatch(sidecar.url, IMG.limit, framing);
      expect(refusal.answer).toMatchObject({ status: 413, body: TOO_LARGE, headers: { connection: 'close' } });
      expect(refusal.writtenBeforeAnswer).toBeLessThan(2 * MiB);
      expect(refusal).toMatchObject({ closedByServer: true });
      expect(upstream.seen.slice(from)).toEqual([]);
    },
  );

  const manyRanges = `bytes=${Array.from({ length: 1000 }, (_, i) => `${i}-${i}`).join(',')}`;

  /** `n` downloads with `range`, one after the other: every answer, and the slowest one's time. */
  async function rangeRequests(base: string, id: string, range: string, n: number) {
    const answers = new Set<string>();
    let slowest = 0;
    for (let i = 0; i < n; i++) {
      const started = Date.now();
      const res = await call(base, 'GET', `/v2/images/${id}/file`, undefined, { range });
      slowest = Math.max(slowest, Date.now() - started);
      answers.add(`${res.status} ${res.body.toString()}`);
    }
    return { answers: [...answers], slowest };
  }

  it('should 400 a Range header of 1000 ranges at once, as Glance does any multi-range request, and stay up', async () => {
    const { answers, slowest } = await rangeRequests(demo.url, demoImage, manyRanges, 50);
    expect(answers).toEqual([
      `400 ${plainError('400 Bad Request', 'Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.')}`,
    ]);
    expect(slowest).toBeLessThan(1000);
    const res = await call(demo.url, 'GET', `/v2/images/${demoImage}/file`, undefined, { range: 'bytes=-5' });
    expect(res.status).toBe(206);
    expect(res.body.toString()).toBe('rstuv');
  });

  it('should 400 a Range header of 1000 ranges at once when multipart answers are on (at most 10), without parsing it', async () => {
    const id = await activeIn(idsDemo.url);
    const { answers, slowest } = await rangeRequests(idsDemo.url, id, manyRanges, 50);
    expect(answers).toEqual([`400 ${plainError('400 Bad Request', 'Too many ranges in the Range header: at most 10 are served in one request.')}`]);
    expect(slowest).toBeLessThan(1000);
    const res = await call(idsDemo.url, 'GET', `/v2/images/${id}/file`, undefined, { range: 'bytes=0-0,31-31' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-type')).toMatch(/^multipart\/byteranges; boundary=/);
  });

  it.each([
    ['demo', () => demo.url, () => `/v2/images/${demoImage}/file`, '/versions'],
    ['sidecar', () => sidecar.url, () => `/v2/images/${IMG.limit}/file`, '/healthz'],
  ])('should 431 a 64 KB Range header in the %s at once, close the connection, and stay up', async (_name, base, target, alive) => {
    const raw = await connect(base());
    const started = Date.now();
    const range = `bytes=${'0-0,'.repeat(16 * 1024)}0-0`;
    await write(raw.socket, `GET ${target()} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: ${range}\r\n\r\n`);
    expect(await within(raw.closed, 2000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(raw.received().toString('latin1')).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect((await call(base(), 'GET', alive)).status).toBe(200);
  });
});

// -- error bodies that echo ------------------------------------------------------------------------

describe('error bodies escape what they echo', () => {
  const id = `<script>alert('x')</script>"\\`;
  const escapedId = '&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot;\\';

  it('should escape an image id in the HTML form of a 404', async () => {
    const res = await call(demo.url, 'GET', `/v2/images/${encodeURIComponent(id)}`, undefined, { accept: 'text/html' });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('text/html; charset=UTF-8');
    expect(res.body.toString()).toBe(htmlError('404 Not Found', `No image found with ID ${escapedId}`));
  });

  it('should give an image id as a JSON string in the JSON form of a 404', async () => {
    const res = await call(demo.url, 'GET', `/v2/images/${encodeURIComponent(id)}`, undefined, { accept: 'application/json' });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(JSON.parse(res.body.toString())).toEqual({ message: `No image found with ID ${id}<br /><br />\n\n\n`, code: '404 Not Found', title: 'Not Found' });
  });

  it('should escape a media type in the HTML form of a 415', async () => {
    const res = await call(demo.url, 'PATCH', `/v2/images/${demoImage}`, '[]', { 'content-type': 'application/<script>alert(1)</script>', accept: 'text/html' });
    expect(res.status).toBe(415);
    expect(res.headers.get('content-type')).toBe('text/html; charset=UTF-8');
    // webob's own 415 template (not Glance's sentence): the type as sent, escaped.
    const line = '415 Unsupported Media Type';
    expect(res.body.toString()).toBe(
      `<html>\n <head>\n  <title>${line}</title>\n </head>\n <body>\n  <h1>${line}</h1>\n  ` +
        'The request media type application/&lt;script&gt;alert(1)&lt;/script&gt; is not supported by this server.\n<br /><br />\n\n </body>\n</html>',
    );
  });

  it('should escape an image status from the upstream in the HTML form of a 409, and give it as a JSON string', async () => {
    upstream.add({ id: IMG.odd, status: ODD_STATUS, locations: ['http://127.0.0.1:1/a', 'http://127.0.0.1:1/b'], visibleTo: [TOKEN_A] });
    const ops = JSON.stringify([{ op: 'remove', path: '/locations/0' }]);
    const html = await call(sidecar.url, 'PATCH', `/v2/images/${IMG.odd}`, ops, { 'content-type': V21, 'x-auth-token': TOKEN_A, accept: 'text/html' });
    expect(html.status).toBe(409);
    expect(html.body.toString()).toBe(
      htmlError('409 Conflict', 'It&#x27;s not allowed to remove locations if image status is &lt;img src=x onerror=alert(&#x27;x&#x27;)&gt;.'),
    );
    const json = await call(sidecar.url, 'PATCH', `/v2/images/${IMG.odd}`, ops, { 'content-type': V21, 'x-auth-token': TOKEN_A, accept: 'application/json' });
    expect(json.status).toBe(409);
    expect(JSON.parse(json.body.toString())).toEqual({
      message: `It's not allowed to remove locations if image status is ${ODD_STATUS}.<br /><br />\n\n\n`,
      code: '409 Conflict',
      title: 'Conflict',
    });
  });
});

// -- image ids that are not UUIDs --------------------------------------------------------------------

/** Every file and folder under `dir`: path, size and modification time. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const s = statSync(p);
      out.push(`${path.relative(dir, p)} ${s.isDirectory() ? 'dir' : s.size} ${s.mtimeMs}`);
      if (s.isDirectory()) walk(p);
    }
  };
  out.push(`. ${statSync(dir).mtimeMs}`);
  walk(dir);
  return out;
}

describe('image ids that are not UUIDs never become paths', () => {
  const UUID = '6a7c2b43-1d52-4a8e-9e2f-3b1c0d9e8f70';
  const ids = [
    '../../sentinel',
    '../sentinel',
    '../../../../../../../../etc/passwd',
    '..\\..\\sentinel',
    '..%2F..%2Fsentinel',
    '..',
    '.',
    'sentinel\0',
    '\0',
    `${UUID}\0`,
    `${UUID}/../../../sentinel`,
    `${UUID}.json`,
    ` ${UUID}`,
    'a'.repeat(4096),
  ];

  it('should 404 every image request with such an id, serve nothing from outside the data folder, and write nothing anywhere', async () => {
    // Files an id-made path would reach from <data>/images/<id>.json and <data>/blobs/<id>.
    const record = { id: 'sentinel', name: 'SENTINEL', status: 'active', size: 9, locations: [], tags: [], extra: {} };
    writeFileSync(path.join(root, 'sentinel.json'), JSON.stringify(record));
    writeFileSync(path.join(root, 'sentinel'), 'SENTINEL!');
    const before = snapshot(root);

    const requests: [string, string, string | undefined, Record<string, string>][] = [
      ['GET', '', undefined, {}],
      ['GET', '/file', undefined, {}],
      ['GET', '/file', undefined, { range: 'bytes=0-3' }],
      ['PUT', '/file', 'EVIL-DATA', { 'content-type': 'application/octet-stream' }],
      ['PUT', '/stage', 'EVIL-DATA', { 'content-type': 'application/octet-stream' }],
      ['POST', '/import', JSON.stringify({ method: { name: 'glance-direct' } }), { 'content-type': 'application/json' }],
      ['PATCH', '', JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: 'http://127.0.0.1:1/x', metadata: {} } }]), { 'content-type': V21 }],
      ['PATCH', '', JSON.stringify([{ op: 'replace', path: '/name', value: 'evil' }]), { 'content-type': V21 }],
      ['DELETE', '', undefined, {}],
      ['POST', '/actions/deactivate', undefined, {}],
      ['POST', '/actions/reactivate', undefined, {}],
    ];
    const answers: string[] = [];
    for (const id of ids) {
      for (const [method, suffix, body, headers] of requests) {
        const res = await exact(idsDemo.url, method, `/v2/images/${encodeId(id)}${suffix}`, body, headers);
        answers.push(`${res.status} ${method} ${suffix} ${JSON.stringify(id.slice(0, 40))}`);
        expect(res.body).not.toContain('SENTINEL');
        if (method === 'GET' && suffix === '') expect(res.body).toBe(plainError('404 Not Found', `No image found with ID ${id}`));
      }
    }
    // 404, or 400 for a change whose id the services behind the suite would read differently
    // (a dot segment, an encoded slash, a backslash or a NUL): never passed on unjudged.
    expect(answers.filter((a) => !a.startsWith('404 ') && !(a.startsWith('400 ') && !a.startsWith('400 GET ')))).toEqual([]);
    // Paths not encoded at all: never an image route.
    for (const target of ['/v2/images/../../sentinel', '/v2/images/../../sentinel/file', '/v2/images/%2e%2e/%2e%2e/sentinel/file', '/v2/images/..%2f..%2fsentinel/file']) {
      const res = await exact(idsDemo.url, 'GET', target);
      expect(res.status).toBe(404);
      expect(res.body).not.toContain('SENTINEL');
    }
    // Nothing written, created or removed: neither in the data folder nor next to it.
    expect(snapshot(root)).toEqual(before);
    expect(readFileSync(path.join(root, 'sentinel'), 'utf8')).toBe('SENTINEL!');
  });
});

// -- server timeouts ---------------------------------------------------------------------------------

describe('server timeouts cut clients that send their request slowly', () => {
  // The demo and the sidecar above run with the defaults (20 s for the headers); the strict ones
  // with --header-timeout 3000 --idle-timeout 5000 (the default idle timeout, 60 s, is too long to
  // wait for here). Node checks the header deadline every second, so each cut may come a second late.
  const SLOW = DEFAULT_CUT_MS + 10_000;

  it.each([
    ['the demo', 'default demo headers'],
    ['the sidecar', 'default sidecar headers'],
  ])('should 408 a client that sends its headers one byte at a time (Slowloris) in %s with the default header timeout (20 s)', async (_name, key) => {
    const cut = await (slow[key] as Promise<Cut>);
    expect(cut).toMatchObject({ closedByServer: true, answer: 'HTTP/1.1 408 Request Timeout' });
    expect(cut.afterMs).toBeGreaterThanOrEqual(20_000 - 500);
    expect(cut.afterMs).toBeLessThan(DEFAULT_CUT_MS);
  }, SLOW);

  it.each([
    ['the demo', 'demo headers'],
    ['the sidecar', 'sidecar headers'],
  ])(`should 408 a client that sends its headers one byte at a time (Slowloris) in %s at --header-timeout ${HEADER_TIMEOUT}`, async (_name, key) => {
    const cut = await (slow[key] as Promise<Cut>);
    expect(cut).toMatchObject({ closedByServer: true, answer: 'HTTP/1.1 408 Request Timeout' });
    expect(cut.afterMs).toBeGreaterThanOrEqual(HEADER_TIMEOUT - 500);
    expect(cut.afterMs).toBeLessThan(HEADER_TIMEOUT + 2500);
  }, SLOW);

  it.each([
    ['the demo', 'demo silent'],
    ['the sidecar', 'sidecar silent'],
  ])('should cut a client that connects and sends nothing in %s', async (_name, key) => {
    const cut = await (slow[key] as Promise<Cut>);
    expect(cut).toMatchObject({ closedByServer: true });
    expect(cut.answer).toMatch(/^(HTTP\/1\.1 408 Request Timeout)?$/);
    expect(cut.afterMs).toBeLessThan(STRICT_CUT_MS);
  }, SLOW);

  it.each([
    ['the demo', 'demo patch body'],
    ['the sidecar', 'sidecar patch body'],
  ])(`should cut a location patch whose body stops coming in %s at --idle-timeout ${IDLE_TIMEOUT}`, async (_name, key) => {
    const cut = await (slow[key] as Promise<Cut>);
    expect(cut).toMatchObject({ closedByServer: true });
    expect(cut.afterMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT - 500);
    expect(cut.afterMs).toBeLessThan(STRICT_CUT_MS);
  }, SLOW);

  it(`should cut an upload whose data stops coming in the demo at --idle-timeout ${IDLE_TIMEOUT}, and put its image back to queued`, async () => {
    const cut = await (slow['demo upload body'] as Promise<Cut>);
    expect(cut).toMatchObject({ closedByServer: true });
    expect(cut.afterMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT - 500);
    // The demo puts it back once it has removed the partial data: give it a moment.
    let status: unknown;
    for (let i = 0; i < 100 && status !== 'queued'; i++, await sleep(20)) {
      status = (JSON.parse((await call(strictDemo.url, 'GET', `/v2/images/${slowUploadImage}`)).body.toString()) as Record<string, unknown>)['status'];
    }
    expect(status).toBe('queued');
  }, SLOW);
});
