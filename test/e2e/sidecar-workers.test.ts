/**
 * `glance-edge proxy --workers 2`: two worker processes (node:cluster) share the sidecar's port, and
 * the race registry the primary keeps, in front of a pre-Ocata-like Glance
 * (test/fixtures/glance_upstream.py: Glance's own routing, location changes applied in any status,
 * and each one logged with the image's status and the uploads of it being read at that moment).
 *
 * Which worker serves a connection is read from /proc (test/helpers/workers.ts), so that every test
 * knows which worker answered what.
 *
 * The upstream is told to show an image `queued` once its upload has begun (as services that do not
 * show `saving` while they write): the lookup of a change then cannot be what refuses it, only
 * the registry the workers share. A worker that kept a registry of its own would let a change of
 * an image uploaded through the other worker reach the service.
 */
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import os from 'node:os';
import { CLI, startCli, type RunningProcess } from '../helpers/processes';
import { testSeed } from '../helpers/seed';
import { ask, childrenOf, connectionsTo, interleave, refused, running, waitFor, type Conn } from '../helpers/workers';
import { OWNER, rawRequest, sendRaw, startGlanceUpstream, V21, type GlanceUpstream, type LoggedRequest, type RawAnswer } from '../fixtures/glance-upstream';

const AUTH: [string, string][] = [['X-Auth-Token', OWNER]];
const IMAGES = 5;
const CHANGES = 100;
const PLAIN = 'text/plain; charset=UTF-8';
const REQUEST_ID = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Kind = 'remove' | 'replace' | 'add' | 'rename-and-add';
const KINDS: readonly Kind[] = ['remove', 'replace', 'add', 'rename-and-add'];

let upstream: GlanceUpstream;
let sidecar: RunningProcess;
/** Sidecars a test started of its own, stopped after it whatever happened. */
const extra: RunningProcess[] = [];

beforeAll(async () => {
  upstream = await startGlanceUpstream();
  // The upstream knows the tokens its images name: the owner's, before any test adds one.
  await upstream.addImage({ id: randomUUID(), status: 'active', visibleTo: [OWNER] });
  sidecar = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1', '--workers', '2']);
}, 40_000);

afterAll(async () => {
  await Promise.all([sidecar, ...extra].map((s) => s?.stop()));
  await upstream?.stop();
});

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

// --- Glance's requests and answers ---------------------------------------------------------------

const plain = (status: string, message: string) => `${status}\n\n${message}\n\n   `;
const savingConflict = (verb: string) => plain('409 Conflict', `It's not allowed to ${verb} locations if image status is saving.`);

function changeOps(kind: Kind, url: string): { verb: string; ops: unknown[] } {
  const location = { url, metadata: {} };
  switch (kind) {
    case 'remove':
      return { verb: 'remove', ops: [{ op: 'remove', path: '/locations/0' }] };
    case 'replace':
      return { verb: 'replace', ops: [{ op: 'replace', path: '/locations', value: [location] }] };
    case 'add':
      return { verb: 'add', ops: [{ op: 'add', path: '/locations/-', value: location }] };
    case 'rename-and-add':
      return { verb: 'add', ops: [{ op: 'replace', path: '/name', value: 'renamed' }, { op: 'add', path: '/locations/-', value: location }] };
  }
}

const patchRequest = (id: string, ops: unknown[]) => rawRequest('PATCH', `/v2/images/${id}`, [...AUTH, ['Content-Type', V21]], JSON.stringify(ops));
const uploadHead = (id: string, size: number) => rawRequest('PUT', `/v2/images/${id}/file`, [...AUTH, ['Content-Type', 'application/octet-stream'], ['Content-Length', String(size)]]);

const same = (a: string | null, id: string) => (a ?? '').toLowerCase() === id.toLowerCase();

/** The location changes of `ids` that reached the upstream. */
async function locationChanges(ids: readonly string[]): Promise<LoggedRequest[]> {
  return (await upstream.log()).filter((e) => e.location_change && ids.some((id) => same(e.image_id, id)));
}

/** The uploads of `ids` the upstream has begun to read. */
async function uploadsSeen(ids: readonly string[]): Promise<LoggedRequest[]> {
  return (await upstream.log()).filter((e) => e.upload === true && ids.some((id) => same(e.image_id, id)));
}

/** The one line of `metric` with exactly these labels in a Prometheus text, or undefined. */
function sample(text: string, metric: string, labels: Record<string, string>): number | undefined {
  const found: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== metric) continue;
    const seen = Object.fromEntries([...(m[2] as string).matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.keys(seen).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => seen[k] === v)) found.push(Number(m[3]));
  }
  if (found.length > 1) throw new Error(`${metric} ${JSON.stringify(labels)} appears ${found.length} times in one scrape: ${found.join(', ')}`);
  return found[0];
}

const IMAGES_200 = { method: 'GET', route: 'images', status: '200' };
const REQUESTS = 'glance_edge_http_requests_total';

function checkMetricsAnswer(answer: RawAnswer): string {
  expect(answer.status).toBe(200);
  expect(answer.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  expect(Number(answer.headers['content-length'] ?? answer.body.length)).toBe(answer.body.length);
  const text = answer.body.toString();
  expect(text).toContain(`# TYPE ${REQUESTS} counter`);
  return text;
}

/** GET /v2/images through `conn`: 200, JSON, the images the owner sees. */
async function listImages(conn: Conn): Promise<void> {
  const answer = await ask(conn, rawRequest('GET', '/v2/images', AUTH));
  expect(answer.status).toBe(200);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  expect(answer.headers['x-openstack-request-id']).toMatch(REQUEST_ID);
  expect(Number(answer.headers['content-length'])).toBe(answer.body.length);
  expect(Array.isArray((JSON.parse(answer.body.toString()) as { images: unknown }).images)).toBe(true);
}

interface Held {
  readonly id: string;
  readonly data: Buffer;
  readonly conn: Conn;
}

/**
 * An image for each connection of `conns`, each with an upload of its data begun through it (its
 * first `first` bytes sent, the rest held back), then shown `queued` by the upstream while it reads.
 */
async function holdUploads(conns: readonly Conn[], random: () => number, first = 4096): Promise<Held[]> {
  const held = await Promise.all(
    conns.map(async (conn) => {
      const id = randomUUID();
      const data = Buffer.from(Array.from({ length: 60_000 + Math.floor(random() * 60_000) }, () => Math.floor(random() * 256)));
      await upstream.addImage({ id, status: 'queued', locations: [], visibleTo: [OWNER] });
      conn.socket.write(Buffer.concat([uploadHead(id, data.length), data.subarray(0, first)]));
      return { id, data, conn };
    }),
  );
  const ids = held.map((h) => h.id);
  await waitFor('the upstream to begin reading every upload', async () => (await uploadsSeen(ids)).length === ids.length);
  for (const id of ids) await upstream.setStatus(id, 'queued');
  for (const id of ids) expect((await upstream.image(id)).status).toBe('queued');
  return held;
}

/** Send the rest of each held upload: 204, and the image active with exactly its data. */
async function finishUploads(held: readonly Held[], via: number): Promise<void> {
  for (const h of held) h.conn.socket.write(h.data.subarray(4096));
  for (const h of held) {
    const done = await h.conn.answer;
    expect({ id: h.id, status: done.status, body: done.body.toString() }).toEqual({ id: h.id, status: 204, body: '' });
    expect(done.headers['x-openstack-request-id']).toMatch(REQUEST_ID);
  }
  for (const h of held) {
    const md5 = createHash('md5').update(h.data).digest('hex');
    const shown = await sendRaw(via, rawRequest('GET', `/v2/images/${h.id}`, AUTH));
    expect(shown.status).toBe(200);
    expect(shown.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(shown.body.toString())).toMatchObject({ id: h.id, status: 'active', size: h.data.length, checksum: md5, locations: [] });
    const file = await sendRaw(via, rawRequest('GET', `/v2/images/${h.id}/file`, AUTH));
    expect(file.status).toBe(200);
    expect(file.headers['content-type']).toBe('application/octet-stream');
    expect(Number(file.headers['content-length'])).toBe(h.data.length);
    expect(file.body.equals(h.data)).toBe(true);
  }
}

/** Run `glance-edge <args>` to its end: its exit status and what it wrote. */
function runCli(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`glance-edge ${args.join(' ')} did not exit within 15 s:\n${stdout}${stderr}`));
    }, 15_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function exitOf(proc: RunningProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const { child } = proc;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

// --- The tests ------------------------------------------------------------------------------------

describe('the race across workers: one registry for the whole sidecar', () => {
  it(`should 409 'saving' all of ${CHANGES} location changes (remove, replace, add, rename-and-add) sent through both workers while ${IMAGES} uploads are held open, apply none, then complete every upload`, async () => {
    const seed = testSeed('SIDECAR_WORKERS_SEED');
    const random = mulberry32(seed);
    const workers = childrenOf(sidecar.child.pid as number);
    expect(workers).toHaveLength(2);

    // The uploads, on both workers.
    const uploadConns = interleave(await connectionsTo(sidecar.port, workers, Math.ceil(IMAGES / 2))).slice(0, IMAGES);
    expect(new Set(uploadConns.map((c) => c.worker)).size).toBe(2);
    const held = await holdUploads(uploadConns, random);
    const ids = held.map((h) => h.id);

    // The changes: half on each worker, each image's changes in pairs, one through each worker.
    const changeConns = interleave(await connectionsTo(sidecar.port, workers, CHANGES / 2));
    expect(changeConns).toHaveLength(CHANGES);
    const kinds = shuffled(Array.from({ length: CHANGES }, (_, k) => KINDS[k % KINDS.length] as Kind), random);
    const changes = changeConns.map((conn, k) => {
      const image = held[Math.floor(k / 2) % IMAGES] as Held;
      const kind = kinds[k] as Kind;
      return { conn, image, kind, ...changeOps(kind, `http://127.0.0.1:1/${seed >>> 0}/${k}`) };
    });
    for (const h of held) {
      const through = new Set(changes.filter((c) => c.image === h).map((c) => c.conn.worker));
      expect({ id: h.id, workers: [...through].sort() }).toEqual({ id: h.id, workers: workers });
    }

    const answers = await Promise.all(changes.map((c) => ask(c.conn, patchRequest(c.image.id, c.ops))));
    const wrong = answers
      .map((a, k) => ({ k, kind: changes[k]?.kind, worker: changes[k]?.conn.worker, status: a.status, type: a.headers['content-type'], body: a.body.toString(), length: a.headers['content-length'] }))
      .filter((a, k) => a.status !== 409 || a.type !== PLAIN || a.body !== savingConflict(changes[k]?.verb ?? '') || Number(a.length) !== Buffer.byteLength(a.body));
    expect(wrong).toEqual([]);
    console.log(`sidecar-workers race: ${CHANGES} changes, ${JSON.stringify(Object.fromEntries(workers.map((w) => [w, changes.filter((c) => c.conn.worker === w).length])))} by worker pid, all 409`);

    // None reached the service; the uploads were still being read all along.
    expect(await locationChanges(ids)).toEqual([]);
    expect((await uploadsSeen(ids)).map((e) => e.status ?? null)).toEqual(ids.map(() => null));

    await finishUploads(held, sidecar.port);
    expect(await locationChanges(ids)).toEqual([]);
    expect((await uploadsSeen(ids)).map((e) => e.status)).toEqual(ids.map(() => 204));
  }, 60_000);
});

describe('metrics: any worker answers with the whole sidecar', () => {
  it('should count in /metrics, asked of either worker, every GET /v2/images answered by both workers', async () => {
    const workers = childrenOf(sidecar.child.pid as number);
    expect(workers).toHaveLength(2);
    const first = await sendRaw(sidecar.port, rawRequest('GET', '/metrics', []));
    const before = sample(checkMetricsAnswer(first), REQUESTS, IMAGES_200) ?? 0;

    const N = 12;
    const gets = interleave(await connectionsTo(sidecar.port, workers, N / 2));
    await Promise.all(gets.map((conn) => listImages(conn)));

    // Counted once each answer is over: the first scrapes may come a moment before.
    let latest: number | undefined;
    await waitFor(`${REQUESTS} to reach ${before + N}`, async () => {
      latest = sample(checkMetricsAnswer(await sendRaw(sidecar.port, rawRequest('GET', '/metrics', []))), REQUESTS, IMAGES_200);
      return latest === before + N;
    }, 5_000).catch((err: Error) => {
      throw new Error(`${err.message} (last seen ${latest}, from ${before})`);
    });

    const scrapes = interleave(await connectionsTo(sidecar.port, workers, 3));
    const seen = await Promise.all(scrapes.map(async (conn) => ({ worker: conn.worker, value: sample(checkMetricsAnswer(await ask(conn, rawRequest('GET', '/metrics', []))), REQUESTS, IMAGES_200) })));
    expect(seen).toEqual(scrapes.map((c) => ({ worker: c.worker, value: before + N })));
    expect(new Set(seen.map((s) => s.worker)).size).toBe(2);
  }, 40_000);
});

describe('life of the workers', () => {
  it('should replace a worker killed with SIGKILL, log worker.replaced, keep answering on both workers and share the registry with the new one', async () => {
    const primary = sidecar.child.pid as number;
    const [victim, survivor] = childrenOf(primary) as [number, number];
    process.kill(victim, 'SIGKILL');
    await waitFor('the primary to log worker.replaced', () =>
      sidecar
        .output()
        .split('\n')
        .some((line) => line.includes('"worker.replaced"') && line.includes(`"pid":${victim}`)),
    );
    const line = sidecar.output().split('\n').find((l) => l.includes('"worker.replaced"') && l.includes(`"pid":${victim}`)) as string;
    expect(JSON.parse(line)).toMatchObject({ level: 'warn', event: 'worker.replaced', pid: victim, signal: 'SIGKILL', msg: 'a worker died; starting another' });
    await waitFor('a new worker', () => childrenOf(primary).length === 2 && !childrenOf(primary).includes(victim));
    const workers = childrenOf(primary);
    expect(workers).toContain(survivor);
    expect(running(victim)).toBe(false);

    // Both the new worker and the old one answer.
    const gets = await connectionsTo(sidecar.port, workers, 2);
    await Promise.all(interleave(gets).map((conn) => listImages(conn)));
    const health = await connectionsTo(sidecar.port, workers, 1);
    for (const conn of interleave(health)) {
      const answer = await ask(conn, rawRequest('GET', '/healthz', []));
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toBe('application/json');
      expect(answer.headers['cache-control']).toBe('no-store');
      expect(JSON.parse(answer.body.toString())).toMatchObject({ status: 'ok', upstream: { reachable: true }, registry: { ok: true } });
    }

    // An upload through one worker still refuses a change through the other, the new one included.
    const random = mulberry32(testSeed('SIDECAR_WORKERS_REPLACED_SEED'));
    const [uploadConn] = (await connectionsTo(sidecar.port, [survivor], 1)).get(survivor) as Conn[];
    const held = await holdUploads([uploadConn as Conn], random);
    const image = held[0] as Held;
    const changeConns = interleave(await connectionsTo(sidecar.port, workers, 2));
    const answers = await Promise.all(changeConns.map((conn, k) => ask(conn, patchRequest(image.id, changeOps('add', `http://127.0.0.1:1/replaced-${k}`).ops))));
    expect(answers.map((a) => [a.status, a.headers['content-type'], a.body.toString()])).toEqual(answers.map(() => [409, PLAIN, savingConflict('add')]));
    expect(await locationChanges([image.id])).toEqual([]);
    await finishUploads(held, sidecar.port);
  }, 40_000);

  it('should announce one listening line, then on SIGTERM to the primary close the port at once, let the uploads in flight on both workers finish, and exit 0', async () => {
    const own = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1', '--workers', '2']);
    extra.push(own);
    const workers = childrenOf(own.child.pid as number);
    expect(workers).toHaveLength(2);
    const announced = own.output().split('\n').filter((l) => l.includes('listening on'));
    expect(announced).toHaveLength(1);
    expect(JSON.parse(announced[0] as string)).toMatchObject({ level: 'info', msg: `glance-edge proxy listening on http://127.0.0.1:${own.port}`, port: own.port, workers: 2, upstream: upstream.url });
    const answer = await sendRaw(own.port, rawRequest('GET', '/v2/images', AUTH));
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(answer.body.toString())).toHaveProperty('images');

    const random = mulberry32(testSeed('SIDECAR_WORKERS_STOP_SEED'));
    const held = await holdUploads(interleave(await connectionsTo(own.port, workers, 1)), random);
    const exited = exitOf(own);
    own.child.kill('SIGTERM');
    await waitFor('the port to refuse connections', () => refused(own.port), 5_000);
    expect(workers.filter(running)).toEqual(workers);

    for (const h of held) h.conn.socket.write(h.data.subarray(4096));
    for (const h of held) {
      const done = await h.conn.answer;
      expect({ id: h.id, status: done.status, body: done.body.toString() }).toEqual({ id: h.id, status: 204, body: '' });
      expect(await upstream.image(h.id)).toMatchObject({ status: 'active', size: h.data.length, checksum: createHash('md5').update(h.data).digest('hex') });
    }
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(workers.filter(running)).toEqual([]);
    expect(await refused(own.port)).toBe(true);
  }, 30_000);

  it('should leave no worker running and the port refusing connections within a few seconds of the primary being SIGKILLed', async () => {
    const own = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1', '--workers', '2']);
    extra.push(own);
    const workers = childrenOf(own.child.pid as number);
    expect(workers).toHaveLength(2);
    const exited = exitOf(own);
    own.child.kill('SIGKILL');
    expect(await exited).toEqual({ code: null, signal: 'SIGKILL' });
    const killedAt = Date.now();
    await waitFor('every worker to exit', () => workers.every((pid) => !running(pid)), 5_000).catch((err: Error) => {
      throw new Error(`${err.message}: still running ${JSON.stringify(workers.filter(running))}`);
    });
    console.log(`sidecar-workers: the workers of a SIGKILLed primary were gone within ${Date.now() - killedAt} ms`);
    expect(await refused(own.port)).toBe(true);
  }, 30_000);
});

describe('--workers on the command line', () => {
  for (const value of ['0', 'x', '-1', '1.5', '1025']) {
    it(`should exit 2 with one line naming --workers for --workers ${value}`, async () => {
      const run = await runCli(['proxy', '--upstream', upstream.url, '--port', '0', '--workers', value]);
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(`glance-edge: --workers must be an integer from 1 to 1024, got '${value}'\n`);
    });
  }

  it('should start one worker per core with --workers auto', async () => {
    const own = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1', '--workers', 'auto']);
    extra.push(own);
    const cores = os.availableParallelism();
    const line = own.output().split('\n').find((l) => l.includes('listening on')) as string;
    expect(JSON.parse(line)).toMatchObject({ level: 'info', msg: `glance-edge proxy listening on http://127.0.0.1:${own.port}`, port: own.port, ...(cores > 1 ? { workers: cores } : {}) });
    expect(childrenOf(own.child.pid as number)).toHaveLength(cores > 1 ? cores : 0);
    const answer = await sendRaw(own.port, rawRequest('GET', '/healthz', []));
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(JSON.parse(answer.body.toString())).toMatchObject({ status: 'ok' });
    const exited = exitOf(own);
    own.child.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
  }, 30_000);
});
