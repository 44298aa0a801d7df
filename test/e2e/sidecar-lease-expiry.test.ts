/**
 * A sidecar killed in the middle of an upload (SIGKILL: nothing is released): its lease in the
 * shared registry (Redis) keeps the image from location changes through another sidecar until the
 * lease's time to live has run out, and no longer. The upstream (test/fixtures/glance_upstream.py)
 * applies location changes in any status and shows the image `queued` while it reads the upload,
 * so only the registry can refuse a change.
 */
import { randomUUID } from 'node:crypto';
import { startCli, type RunningProcess } from '../helpers/processes';
import { startRedis, type RedisServer } from '../helpers/redis';
import { OWNER, rawRequest, sendRaw, startGlanceUpstream, trickle, V21, type GlanceUpstream, type RawAnswer } from '../fixtures/glance-upstream';

const AUTH: [string, string][] = [['X-Auth-Token', OWNER]];
const TTL = 2000;
const PLAIN = 'text/plain; charset=UTF-8';
const SAVING = `409 Conflict\n\nIt's not allowed to add locations if image status is saving.\n\n   `;

let redis: RedisServer;
let upstream: GlanceUpstream;
const sidecars: RunningProcess[] = [];

async function sidecar(): Promise<RunningProcess> {
  const proc = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--store', `${redis.url}/0`, '--lease-ttl', String(TTL)]);
  sidecars.push(proc);
  return proc;
}

beforeAll(async () => {
  redis = await startRedis();
  upstream = await startGlanceUpstream();
}, 30_000);

afterAll(async () => {
  await Promise.all(sidecars.map((s) => s.stop('SIGKILL')));
  await upstream?.stop();
  await redis?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const addLocation = (via: RunningProcess, id: string, url: string) =>
  sendRaw(via.port, rawRequest('PATCH', `/v2/images/${id}`, [...AUTH, ['Content-Type', V21]], JSON.stringify([{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }])));

function expectSaving(answer: RawAnswer): void {
  expect({ status: answer.status, type: answer.headers['content-type'], body: answer.body.toString() }).toEqual({ status: 409, type: PLAIN, body: SAVING });
}

it('should hold the image of a killed sidecar\'s upload until the lease runs out, then let changes through', async () => {
  const a = await sidecar();
  const b = await sidecar();
  const id = randomUUID();
  await upstream.addImage({ id, status: 'queued', locations: [], visibleTo: [OWNER] });
  const head = rawRequest('PUT', `/v2/images/${id}/file`, [...AUTH, ['Content-Type', 'application/octet-stream'], ['Content-Length', '100000']]);
  const upload = trickle(a.port, head, Buffer.alloc(4096, 1));
  // The upstream has begun reading it: the lease is held.
  const until = Date.now() + 10_000;
  while (!(await upstream.log()).some((e) => e.upload === true && e.image_id === id)) {
    if (Date.now() > until) throw new Error('the upstream never began reading the upload');
    await sleep(25);
  }
  expectSaving(await addLocation(b, id, 'http://127.0.0.1:1/held'));

  await a.stop('SIGKILL');
  const killedAt = Date.now();
  void upload.answer.catch(() => undefined);
  await upstream.setStatus(id, 'queued');
  // Before the time to live has run out: still refused, and nothing reaches the service.
  expectSaving(await addLocation(b, id, 'http://127.0.0.1:1/early'));
  expect(Date.now() - killedAt).toBeLessThan(TTL);
  expect((await upstream.log()).filter((e) => e.location_change && e.image_id === id)).toEqual([]);

  // After it: the change is judged on the image's own status (queued: allowed) and applied.
  await sleep(TTL + 500 - (Date.now() - killedAt));
  const after = await addLocation(b, id, 'http://127.0.0.1:1/after');
  expect(after.status).toBe(200);
  expect(after.headers['content-type']).toMatch(/^application\/json/);
  expect(JSON.parse(after.body.toString())).toMatchObject({ id, locations: [{ url: 'http://127.0.0.1:1/after', metadata: {} }] });
  const applied = (await upstream.log()).filter((e) => e.location_change && e.image_id === id);
  expect(applied.map((e) => e.status)).toEqual([200]);
}, 40_000);
