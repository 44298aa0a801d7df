/**
 * Sidecars sharing the race registry in Redis (`glance-edge proxy --store redis://...`): separate
 * processes in front of ONE pre-Ocata-like Glance (test/fixtures/glance_upstream.py: Glance's own
 * routing, location changes applied in any status, and each one logged with the image's status
 * and the uploads of it being read at that moment), on one real redis-server (test/helpers/redis.ts).
 *
 * The upstream is told to show an image `queued` once its upload has begun (as services that do not
 * show `saving` while they write): the lookup of a change then cannot be what refuses it, only a
 * registry that knows of the upload. Sidecars that keep registries of their own (no --store, or
 * other --store-prefix) let a change through one reach the service while the other uploads.
 */
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { CLI, startCli, type RunningProcess } from '../helpers/processes';
import { startRedis, type RedisServer } from '../helpers/redis';
import { testSeed } from '../helpers/seed';
import { OWNER, rawRequest, sendRaw, startGlanceUpstream, trickle, V21, type GlanceUpstream, type LoggedRequest, type RawAnswer, type Trickle } from '../fixtures/glance-upstream';

const AUTH: [string, string][] = [['X-Auth-Token', OWNER]];
const PLAIN = 'text/plain; charset=UTF-8';
const REQUEST_ID = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** The first bytes of an upload, sent at once; the rest is held back. */
const FIRST = 4096;

type Kind = 'remove' | 'replace' | 'add' | 'rename-and-add';
const KINDS: readonly Kind[] = ['remove', 'replace', 'add', 'rename-and-add'];

let redis: RedisServer;
let upstream: GlanceUpstream;
/** Two sidecars on the same Redis, with the default prefix. */
let a: RunningProcess;
let b: RunningProcess;
/** Every sidecar started, stopped at the end whatever happened. */
const sidecars: RunningProcess[] = [];

async function sidecar(...args: string[]): Promise<RunningProcess> {
  const proc = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1', ...args]);
  sidecars.push(proc);
  return proc;
}

const storeUrl = () => `${redis.url}/0`;

beforeAll(async () => {
  redis = await startRedis();
  upstream = await startGlanceUpstream();
  // The upstream knows the tokens its images name: the owner's, before any test adds one.
  await upstream.addImage({ id: randomUUID(), status: 'active', visibleTo: [OWNER] });
  a = await sidecar('--store', storeUrl());
  b = await sidecar('--store', storeUrl());
}, 40_000);

afterAll(async () => {
  await Promise.all(sidecars.map((s) => s.stop()));
  await upstream?.stop();
  await redis?.stop();
});

// --- Small pieces ---------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
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

const plain = (status: string, message: string) => `${status}\n\n${message}\n\n   `;
const savingConflict = (verb: string) => plain('409 Conflict', `It's not allowed to ${verb} locations if image status is saving.`);
const REGISTRY_DOWN = plain('503 Service Unavailable', 'The registry of uploads in flight cannot be reached, so the request cannot be let through safely.');

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

const patch = (via: RunningProcess, id: string, ops: unknown[]) => sendRaw(via.port, rawRequest('PATCH', `/v2/images/${id}`, [...AUTH, ['Content-Type', V21]], JSON.stringify(ops)));
const addLocation = (via: RunningProcess, id: string, url: string) => patch(via, id, changeOps('add', url).ops);

const same = (x: string | null, id: string) => (x ?? '').toLowerCase() === id.toLowerCase();

/** The location changes of `ids` that reached the upstream. */
async function locationChanges(...ids: string[]): Promise<LoggedRequest[]> {
  return (await upstream.log()).filter((e) => e.location_change && ids.some((id) => same(e.image_id, id)));
}

/** The uploads of `ids` the upstream has begun to read. */
async function uploadsSeen(...ids: string[]): Promise<LoggedRequest[]> {
  return (await upstream.log()).filter((e) => e.upload === true && ids.some((id) => same(e.image_id, id)));
}

/** Where a change reached the service: the status the service showed, and the uploads it was reading. */
const when = (e: LoggedRequest) => ({ status: e.status_at_change, uploads: e.uploads_in_flight, answered: e.status });

function expectRefusedSaving(answer: RawAnswer, verb: string): void {
  expect({ status: answer.status, type: answer.headers['content-type'], body: answer.body.toString() }).toEqual({ status: 409, type: PLAIN, body: savingConflict(verb) });
  expect(Number(answer.headers['content-length'])).toBe(answer.body.length);
}

/** A 200 of a PATCH: the image as the service shows it after the change. */
function changed(answer: RawAnswer): { status: string; locations: { url: string }[] } {
  expect(answer.status).toBe(200);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  expect(answer.headers['x-openstack-request-id']).toMatch(REQUEST_ID);
  expect(Number(answer.headers['content-length'])).toBe(answer.body.length);
  return JSON.parse(answer.body.toString()) as { status: string; locations: { url: string }[] };
}

interface Held {
  readonly id: string;
  readonly data: Buffer;
  readonly upload: Trickle;
}

/**
 * `count` queued images, each with an upload of its data begun through `via` (its first bytes
 * sent, the rest held back), then shown `queued` by the upstream while it reads.
 */
async function holdUploads(via: RunningProcess, count: number, random: () => number): Promise<Held[]> {
  const held = await Promise.all(
    Array.from({ length: count }, async () => {
      const id = randomUUID();
      const data = Buffer.from(Array.from({ length: 20_000 + Math.floor(random() * 40_000) }, () => Math.floor(random() * 256)));
      await upstream.addImage({ id, status: 'queued', locations: [], visibleTo: [OWNER] });
      const head = rawRequest('PUT', `/v2/images/${id}/file`, [...AUTH, ['Content-Type', 'application/octet-stream'], ['Content-Length', String(data.length)]]);
      return { id, data, upload: trickle(via.port, head, data.subarray(0, FIRST)) };
    }),
  );
  const ids = held.map((h) => h.id);
  await waitFor('the upstream to begin reading every upload', async () => (await uploadsSeen(...ids)).length === ids.length);
  for (const id of ids) await upstream.setStatus(id, 'queued');
  for (const id of ids) expect((await upstream.image(id)).status).toBe('queued');
  return held;
}

/** Send the rest of each held upload: 204, and the image active with exactly its data, as shown through `via`. */
async function finishUploads(held: readonly Held[], via: RunningProcess): Promise<void> {
  for (const h of held) h.upload.send(h.data.subarray(FIRST));
  for (const h of held) {
    const done = await h.upload.answer;
    expect({ id: h.id, status: done.status, body: done.body.toString() }).toEqual({ id: h.id, status: 204, body: '' });
    expect(done.headers['x-openstack-request-id']).toMatch(REQUEST_ID);
  }
  for (const h of held) {
    const shown = await sendRaw(via.port, rawRequest('GET', `/v2/images/${h.id}`, AUTH));
    expect(shown.status).toBe(200);
    expect(shown.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(shown.body.toString())).toMatchObject({ id: h.id, status: 'active', size: h.data.length, checksum: createHash('md5').update(h.data).digest('hex') });
    const file = await sendRaw(via.port, rawRequest('GET', `/v2/images/${h.id}/file`, AUTH));
    expect(file.status).toBe(200);
    expect(file.headers['content-type']).toBe('application/octet-stream');
    expect(Number(file.headers['content-length'])).toBe(h.data.length);
    expect(file.body.equals(h.data)).toBe(true);
  }
}

/** GET /healthz of `via`: its status and document. */
async function health(via: RunningProcess): Promise<{ status: number; doc: Record<string, unknown> }> {
  const answer = await sendRaw(via.port, rawRequest('GET', '/healthz', []));
  expect(answer.headers['content-type']).toBe('application/json');
  expect(answer.headers['cache-control']).toBe('no-store');
  expect(Number(answer.headers['content-length'])).toBe(answer.body.length);
  return { status: answer.status, doc: JSON.parse(answer.body.toString()) as Record<string, unknown> };
}

/** Run `glance-edge <args>` to its end (without GLANCE_EDGE_ settings from the environment). */
function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GLANCE_EDGE_')));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`glance-edge ${args.join(' ')} did not exit within 15 s:\n${stdout}${stderr}`));
    }, 15_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// --- The tests ------------------------------------------------------------------------------------

describe('the race across sidecars sharing Redis', () => {
  it("should 409 'saving' every location change through sidecar B while uploads run through sidecar A, apply none, and judge B's changes normally once the uploads are done", async () => {
    const seed = testSeed('SIDECAR_REDIS_SEED');
    const random = mulberry32(seed);
    const held = await holdUploads(a, 3, random);
    const ids = held.map((h) => h.id);

    const kinds = shuffled(Array.from({ length: 40 }, (_, k) => KINDS[k % KINDS.length] as Kind), random);
    const changes = kinds.map((kind, k) => ({ id: ids[k % ids.length] as string, kind, ...changeOps(kind, `http://127.0.0.1:1/${seed >>> 0}/${k}`) }));
    const answers = await Promise.all(changes.map((c) => patch(b, c.id, c.ops)));
    const wrong = answers
      .map((answer, k) => ({ k, kind: changes[k]?.kind, status: answer.status, type: answer.headers['content-type'], body: answer.body.toString() }))
      .filter((x, k) => x.status !== 409 || x.type !== PLAIN || x.body !== savingConflict(changes[k]?.verb ?? ''));
    expect(wrong).toEqual([]);
    expect(await locationChanges(...ids)).toEqual([]);

    await finishUploads(held, b);
    // Judged normally now: an add on each image, now active, goes through B and is applied.
    for (const h of held) {
      const url = `http://127.0.0.1:1/${seed >>> 0}/after-${h.id}`;
      expect(changed(await addLocation(b, h.id, url))).toMatchObject({ status: 'active', locations: [{ url, metadata: {} }] });
    }
    const applied = await locationChanges(...ids);
    expect(applied.map(when)).toEqual(ids.map(() => ({ status: 'active', uploads: 0, answered: 200 })));
  }, 60_000);

  it('should let a change through one sidecar reach the service while the other uploads, when each keeps its own registry (no --store)', async () => {
    const c = await sidecar();
    const d = await sidecar();
    const [held] = (await holdUploads(c, 1, mulberry32(testSeed('SIDECAR_REDIS_ALONE_SEED')))) as [Held];
    const answer = await addLocation(d, held.id, 'http://127.0.0.1:1/alone');
    // The service applied it while it read the upload (what the shared registry prevents).
    expect(changed(answer)).toMatchObject({ locations: [{ url: 'http://127.0.0.1:1/alone', metadata: {} }] });
    const applied = await locationChanges(held.id);
    expect(applied.map(when)).toEqual([{ status: 'queued', uploads: 1, answered: 200 }]);
    held.upload.send(held.data.subarray(FIRST));
    expect((await held.upload.answer).status).toBe(204);
    await Promise.all([c.stop(), d.stop()]);
  }, 30_000);
});

describe('Redis gone and back', () => {
  it('should 503 location changes and uploads in Glance\'s format while Redis is down, let everything else through, report it in /healthz, and recover by itself when Redis is back', async () => {
    const active = randomUUID();
    const queued = randomUUID();
    await upstream.addImage({ id: active, status: 'active', locations: [{ url: 'http://127.0.0.1:1/first', metadata: {} }], visibleTo: [OWNER], data: Buffer.from('first') });
    await upstream.addImage({ id: queued, status: 'queued', locations: [], visibleTo: [OWNER] });
    expect((await health(a)).status).toBe(200);

    await redis.kill();

    let started = Date.now();
    const change = await addLocation(a, active, 'http://127.0.0.1:1/while-down');
    const changeMs = Date.now() - started;
    expect({ status: change.status, type: change.headers['content-type'], body: change.body.toString() }).toEqual({ status: 503, type: PLAIN, body: REGISTRY_DOWN });
    expect(Number(change.headers['content-length'])).toBe(change.body.length);
    expect(changeMs).toBeLessThan(3500);

    const data = Buffer.from('0123456789abcdefghijklmnopqrstuv');
    started = Date.now();
    const put = await sendRaw(a.port, rawRequest('PUT', `/v2/images/${queued}/file`, [...AUTH, ['Content-Type', 'application/octet-stream']], data));
    const putMs = Date.now() - started;
    expect({ status: put.status, type: put.headers['content-type'], body: put.body.toString() }).toEqual({ status: 503, type: PLAIN, body: REGISTRY_DOWN });
    expect(putMs).toBeLessThan(3500);

    // Everything else flows.
    const list = await sendRaw(a.port, rawRequest('GET', '/v2/images', AUTH));
    expect(list.status).toBe(200);
    expect(list.headers['content-type']).toMatch(/^application\/json/);
    expect((JSON.parse(list.body.toString()) as { images: { id: string }[] }).images.map((i) => i.id)).toEqual(expect.arrayContaining([active, queued]));
    const record = await sendRaw(a.port, rawRequest('GET', `/v2/images/${active}`, AUTH));
    expect(record.status).toBe(200);
    expect(record.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(record.body.toString())).toMatchObject({ id: active, status: 'active', locations: [{ url: 'http://127.0.0.1:1/first', metadata: {} }] });
    const file = await sendRaw(a.port, rawRequest('GET', `/v2/images/${active}/file`, AUTH));
    expect(file.status).toBe(200);
    expect(file.body.toString()).toBe('first');

    const down = await health(a);
    expect(down.status).toBe(503);
    expect(down.doc).toMatchObject({ status: 'registry unavailable', upstream: { reachable: true }, registry: { ok: false, local: false, error: expect.stringMatching(/\S/) } });

    // Nothing of it reached the service.
    expect(await locationChanges(active, queued)).toEqual([]);
    expect(await uploadsSeen(queued)).toEqual([]);
    expect((await upstream.image(queued)).status).toBe('queued');

    await redis.restart();
    const back = Date.now();
    await waitFor('/healthz to answer 200 again', async () => (await health(a)).status === 200, 10_000);
    console.log(`sidecar-redis: answered 503 in ${changeMs} ms (change) and ${putMs} ms (upload) with Redis down; /healthz 200 ${Date.now() - back} ms after Redis was back`);
    expect((await health(a)).doc).toMatchObject({ status: 'ok', registry: { ok: true, local: false } });

    const after = changed(await addLocation(a, active, 'http://127.0.0.1:1/after'));
    expect(after.locations.map((l) => l.url)).toEqual(['http://127.0.0.1:1/first', 'http://127.0.0.1:1/after']);
    expect((await locationChanges(active)).map(when)).toEqual([{ status: 'active', uploads: 0, answered: 200 }]);
    const upload = await sendRaw(a.port, rawRequest('PUT', `/v2/images/${queued}/file`, [...AUTH, ['Content-Type', 'application/octet-stream']], data));
    expect(upload.status).toBe(204);
    expect(await upstream.image(queued)).toMatchObject({ status: 'active', size: data.length, checksum: createHash('md5').update(data).digest('hex') });
  }, 45_000);
});

describe('Redis that does not answer', () => {
  it('should 503 a location change within --store-timeout while Redis is paused, and judge the same image normally once it answers again', async () => {
    if (!redis.running) await redis.restart();
    const quick = await sidecar('--store', storeUrl(), '--store-timeout', '500');
    const id = randomUUID();
    await upstream.addImage({ id, status: 'active', locations: [{ url: 'http://127.0.0.1:1/first', metadata: {} }], visibleTo: [OWNER] });
    expect((await health(quick)).status).toBe(200);

    redis.pause();
    try {
      const started = Date.now();
      const change = await addLocation(quick, id, 'http://127.0.0.1:1/while-paused');
      const ms = Date.now() - started;
      expect({ status: change.status, type: change.headers['content-type'], body: change.body.toString() }).toEqual({ status: 503, type: PLAIN, body: REGISTRY_DOWN });
      expect(ms).toBeLessThan(2000);
      const down = await health(quick);
      expect(down.status).toBe(503);
      expect(down.doc).toMatchObject({ status: 'registry unavailable', registry: { ok: false, error: expect.stringMatching(/\S/) } });
    } finally {
      redis.resume();
    }
    expect(await locationChanges(id)).toEqual([]);

    // What the paused calls asked of Redis is answered late: the image must not stay held by it.
    await waitFor('/healthz to answer 200 again', async () => (await health(quick)).status === 200, 10_000);
    const started = Date.now();
    const after = changed(await addLocation(quick, id, 'http://127.0.0.1:1/after-pause'));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(after.locations.map((l) => l.url)).toEqual(['http://127.0.0.1:1/first', 'http://127.0.0.1:1/after-pause']);
    expect((await locationChanges(id)).map(when)).toEqual([{ status: 'active', uploads: 0, answered: 200 }]);
    await quick.stop();
  }, 30_000);
});

describe('--workers with --store: every worker on the shared registry', () => {
  it("should 409 'saving' changes through another sidecar and through the workers (fresh connections) while an upload runs through one of them", async () => {
    if (!redis.running) await redis.restart();
    const cluster = await sidecar('--store', storeUrl(), '--workers', '2');
    const [held] = (await holdUploads(cluster, 1, mulberry32(testSeed('SIDECAR_REDIS_WORKERS_SEED')))) as [Held];
    const answers = await Promise.all([b, cluster, cluster, cluster, cluster].map((via, k) => addLocation(via, held.id, `http://127.0.0.1:1/workers-${k}`)));
    for (const answer of answers) expectRefusedSaving(answer, 'add');
    expect(await locationChanges(held.id)).toEqual([]);
    await finishUploads([held], b);
    await cluster.stop();
  }, 30_000);
});

describe('--store-prefix: one Redis, separate clouds', () => {
  it("should not let an upload through a sidecar of one prefix refuse a change through a sidecar of another, while its own prefix's sidecars see it", async () => {
    // The test above restarts Redis; should it have failed midway, Redis runs again for this one.
    if (!redis.running) await redis.restart();
    const one = await sidecar('--store', storeUrl(), '--store-prefix', 'cloud-one:');
    const other = await sidecar('--store', storeUrl(), '--store-prefix', 'cloud-two:');
    const [held] = (await holdUploads(one, 1, mulberry32(testSeed('SIDECAR_REDIS_PREFIX_SEED')))) as [Held];

    // A sidecar of its own prefix sees it; one of another prefix does not.
    expectRefusedSaving(await addLocation(one, held.id, 'http://127.0.0.1:1/same-cloud'), 'add');
    expect(await locationChanges(held.id)).toEqual([]);
    const answer = await addLocation(other, held.id, 'http://127.0.0.1:1/other-cloud');
    expect(changed(answer)).toMatchObject({ locations: [{ url: 'http://127.0.0.1:1/other-cloud', metadata: {} }] });
    expect((await locationChanges(held.id)).map(when)).toEqual([{ status: 'queued', uploads: 1, answered: 200 }]);

    held.upload.send(held.data.subarray(FIRST));
    expect((await held.upload.answer).status).toBe(204);
    await Promise.all([one.stop(), other.stop()]);
  }, 30_000);
});

describe('--store on the command line', () => {
  it('should exit 2 with one line naming --store-prefix when it comes without --store', async () => {
    const run = await runCli(['proxy', '--upstream', upstream.url, '--port', '0', '--store-prefix', 'x']);
    expect(run).toEqual({ code: 2, stdout: '', stderr: 'glance-edge: --store-prefix needs --store URL (or --store-sentinels)\n' });
  });

  it('should exit 2 with one line naming --store for a URL that is not redis:// or rediss://', async () => {
    const run = await runCli(['proxy', '--upstream', upstream.url, '--port', '0', '--store', 'http://x']);
    expect(run).toEqual({ code: 2, stdout: '', stderr: "glance-edge: --store must be a redis:// or rediss:// URL, got 'http://x'\n" });
  });
});
