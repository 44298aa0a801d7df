/**
 * BEHAVIOUR.md section 1, "The race the spec names", under load, against real processes: the demo
 * (its own store behind the guard) and the sidecar in front of a pre-Ocata service
 * (test/fixtures/old-glance.ts), which itself applies location changes in any status.
 *
 * Twenty images, one upload each, two hundred location changes at once: first with every upload
 * held open (each change must be refused with Glance's 409 and change nothing, and every upload
 * must then complete), then with uploads and changes sent at the same moment (whatever the order
 * they land in, no location change may be applied to an image while its upload runs).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { call, plainError } from '../helpers/http';
import { FIXTURE, startBlobServer, startCli, startDemo, type BlobServer, type Demo, type RunningProcess } from '../helpers/processes';
import { startOldGlance, type OldGlance } from '../fixtures/old-glance';

const V21 = 'application/openstack-images-v2.1-json-patch';
const MD5 = createHash('md5').update(FIXTURE).digest('hex');
const IMAGES = 20;
const PATCHES_PER_IMAGE = 10; // 200 location changes in all

const FORBIDDEN = 'Access was denied to this resource.';
const plainAfter = (status: string, stock: string, message: string) => `${status}\n\n${stock}\n\n ${message}  `;
const conflict = (verb: string, status: string) => plainError('409 Conflict', `It's not allowed to ${verb} locations if image status is ${status}.`);
const LAST_LOCATION = plainAfter('403 Forbidden', FORBIDDEN, 'Cannot remove last location in the image.');

type Kind = 'remove' | 'replace' | 'add' | 'rename-and-add';
const KINDS: readonly Kind[] = ['remove', 'replace', 'add', 'rename-and-add'];

interface Change {
  readonly id: string;
  readonly kind: Kind;
  /** The op Glance names in its refusal. */
  readonly verb: 'remove' | 'replace' | 'add';
  /** The URL this change would add (unique to it), or null for a removal. */
  readonly url: string | null;
  readonly ops: unknown[];
}

function change(id: string, kind: Kind, url: string): Change {
  const location = { url, metadata: {} };
  switch (kind) {
    case 'remove':
      return { id, kind, verb: 'remove', url: null, ops: [{ op: 'remove', path: '/locations/0' }] };
    case 'replace':
      return { id, kind, verb: 'replace', url, ops: [{ op: 'replace', path: '/locations', value: [location] }] };
    case 'add':
      return { id, kind, verb: 'add', url, ops: [{ op: 'add', path: '/locations/-', value: location }] };
    case 'rename-and-add':
      return { id, kind, verb: 'add', url, ops: [{ op: 'replace', path: '/name', value: 'renamed' }, { op: 'add', path: '/locations/-', value: location }] };
  }
}

interface Answer {
  readonly status: number;
  readonly body: string;
}

async function send(base: string, c: Change): Promise<Answer> {
  const res = await call(base, 'PATCH', `/v2/images/${c.id}`, JSON.stringify(c.ops), { 'content-type': V21 });
  return { status: res.status, body: res.body.toString() };
}

async function create(base: string): Promise<string> {
  const res = await call(base, 'POST', '/v2/images', JSON.stringify({ name: 'race', disk_format: 'raw', container_format: 'bare' }), {
    'content-type': 'application/json',
  });
  expect(res.status).toBe(201);
  return (JSON.parse(res.body.toString()) as { id: string }).id;
}

async function show(base: string, id: string): Promise<Record<string, unknown>> {
  const res = await call(base, 'GET', `/v2/images/${id}`);
  expect(res.status).toBe(200);
  return JSON.parse(res.body.toString()) as Record<string, unknown>;
}

const urlsOf = (doc: Record<string, unknown>) => (doc['locations'] as { url: string }[]).map((l) => l.url);

interface Upload {
  readonly answer: Promise<Answer>;
  /** Resolves once the request head and the first bytes are on the wire. */
  readonly sent: Promise<void>;
  /** Send the rest of the data and end the request. */
  finish(): void;
}

/**
 * A chunked `PUT .../file` of the 32-byte fixture: the first 10 bytes now, the rest on `finish()`.
 * An upload refused before its body is read gets its answer early; the rest is then not sent.
 */
function startUpload(base: string, id: string): Upload {
  const { hostname, port } = new URL(base);
  let answered = false;
  const req = http.request({
    hostname,
    port,
    method: 'PUT',
    path: `/v2/images/${id}/file`,
    agent: false,
    headers: { 'content-type': 'application/octet-stream', accept: 'text/plain', 'transfer-encoding': 'chunked' },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', (err) => {
      if (!answered) reject(err); // after an early answer, the server may close while data is still coming
    });
  });
  const sent = new Promise<void>((resolve) => req.write(FIXTURE.subarray(0, 10), () => resolve()));
  return {
    answer,
    sent,
    finish: () => {
      if (!answered && !req.destroyed) req.end(FIXTURE.subarray(10));
    },
  };
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where the images live: the process to talk to, and (for the fixture) its store as it is. */
interface Service {
  readonly base: string;
  /** The record the service behind the guard keeps, when the test can read it. */
  readonly stored?: (id: string) => unknown;
  readonly blobs: BlobServer;
}

/**
 * Every image with an upload held open (status `saving`), then 200 location changes at once: each
 * is refused with Glance's 409 for `saving`, nothing is applied; then every upload completes.
 */
async function heldUploads(svc: Service): Promise<void> {
  const ids = await Promise.all(Array.from({ length: IMAGES }, () => create(svc.base)));
  const uploads = ids.map((id) => startUpload(svc.base, id));
  await Promise.all(ids.map((id) => until(`${id} saving`, async () => (await show(svc.base, id))['status'] === 'saving')));
  const before = await Promise.all(ids.map(async (id) => ({ shown: await show(svc.base, id), stored: svc.stored?.(id) })));

  const changes = ids.flatMap((id, i) =>
    Array.from({ length: PATCHES_PER_IMAGE }, (_, j) => change(id, KINDS[j % KINDS.length] as Kind, svc.blobs.put(`held-${i}-${j}`, FIXTURE))),
  );
  const answers = await Promise.all(changes.map((c) => send(svc.base, c)));

  // Every one refused, with Glance's exact answer for the op it refuses.
  const wrong = answers
    .map((a, k) => ({ ...a, change: changes[k] as Change }))
    .filter(({ status, body, change: c }) => status !== 409 || body !== conflict(c.verb, 'saving'));
  expect(wrong).toEqual([]);
  // None applied: the image is exactly as it was, as shown and as stored behind the guard.
  for (const [k, id] of ids.entries()) {
    expect(await show(svc.base, id)).toEqual(before[k]?.shown);
    if (svc.stored) expect(svc.stored(id)).toEqual(before[k]?.stored);
  }

  // Every upload then completes, and the image is active with its data and only its data's location.
  for (const upload of uploads) upload.finish();
  const done = await Promise.all(uploads.map((u) => u.answer));
  expect(done.map((a) => a.status)).toEqual(ids.map(() => 204));
  const offered = new Set(changes.map((c) => c.url));
  for (const id of ids) {
    const image = await show(svc.base, id);
    expect(image).toMatchObject({ status: 'active', size: 32, checksum: MD5, name: 'race' });
    expect(urlsOf(image)).toHaveLength(1);
    expect(urlsOf(image).filter((u) => offered.has(u))).toEqual([]);
    const data = await call(svc.base, 'GET', `/v2/images/${id}/file`);
    expect(data.status).toBe(200);
    expect(data.body.equals(FIXTURE)).toBe(true);
  }
}

interface RaceOutcome {
  readonly id: string;
  readonly upload: Answer;
  readonly changes: readonly { change: Change; answer: Answer }[];
}

/**
 * For each image, its upload and four location changes sent at (about) the same moment, three more
 * 40 ms later while the upload is still sending, and three as the upload sends its last bytes.
 */
async function simultaneous(svc: Service): Promise<RaceOutcome[]> {
  const ids = await Promise.all(Array.from({ length: IMAGES }, () => create(svc.base)));
  return Promise.all(
    ids.map(async (id, i) => {
      const changes = Array.from({ length: PATCHES_PER_IMAGE }, (_, j) =>
        change(id, KINDS[(i + j) % KINDS.length] as Kind, svc.blobs.put(`race-${id}-${j}`, FIXTURE)),
      );
      const upload = startUpload(svc.base, id);
      // Staggered by image (0 to 20 ms after the upload's first bytes left), so that the upload
      // lands first for some images and a location change for others.
      if (i % 5 !== 0) await upload.sent;
      await sleep((i % 5) * 5);
      const answers = changes.slice(0, 4).map((c) => send(svc.base, c));
      await sleep(40);
      answers.push(...changes.slice(4, 7).map((c) => send(svc.base, c)));
      await sleep(40);
      upload.finish();
      answers.push(...changes.slice(7).map((c) => send(svc.base, c)));
      const all = await Promise.all(answers);
      return { id, upload: await upload.answer, changes: changes.map((c, k) => ({ change: c, answer: all[k] as Answer })) };
    }),
  );
}

/**
 * The answers a location change may get in the race, other than 200, from the guard (exact
 * bytes) or, for a replace of locations an image already has, from the service behind.
 */
function refusedAsExpected(c: Change, a: Answer): boolean {
  if (a.status === 409 && a.body === conflict(c.verb, 'saving')) return true; // while the upload ran
  switch (c.kind) {
    case 'remove': // before anything (queued), or when only one location is there
      return (a.status === 409 && a.body === conflict('remove', 'queued')) || (a.status === 403 && a.body === LAST_LOCATION);
    case 'replace': // an add won: Glance's "Original locations is not empty", the service's own check
      return a.status === 400 && a.body.includes('Original locations is not empty');
    default:
      return false;
  }
}

/**
 * What holds whatever the order: no location change applied while the image was `saving`. A change
 * applied while the upload ran would be answered 200 with the image as it was then, `saving`: so
 * every 200 shows `active`. And the final image holds no location of a refused change.
 */
async function checkRace(svc: Service, outcomes: RaceOutcome[]): Promise<{ refusedWhileSaving: number }> {
  let refusedWhileSaving = 0;
  for (const { id, changes } of outcomes) {
    const unexpected = changes.filter(({ change: c, answer: a }) => a.status !== 200 && !refusedAsExpected(c, a));
    expect(unexpected).toEqual([]);
    const applied = changes.filter(({ answer }) => answer.status === 200).map(({ change: c, answer }) => ({ change: c, doc: JSON.parse(answer.body) as Record<string, unknown> }));
    expect(applied.filter(({ doc }) => doc['status'] !== 'active')).toEqual([]);
    refusedWhileSaving += changes.filter(({ change: c, answer: a }) => a.status === 409 && a.body === conflict(c.verb, 'saving')).length;

    const image = await show(svc.base, id);
    expect(image['status']).toBe('active');
    const refusedUrls = new Set(changes.filter(({ answer }) => answer.status !== 200).map(({ change: c }) => c.url));
    expect(urlsOf(image).filter((u) => refusedUrls.has(u))).toEqual([]);
  }
  return { refusedWhileSaving };
}

describe('1. The upload race, in the demo', () => {
  let demo: Demo;
  let blobs: BlobServer;
  beforeAll(async () => {
    // One after the other, so that whatever started is stopped in afterAll if the next fails.
    blobs = await startBlobServer();
    demo = await startDemo();
  });
  afterAll(async () => {
    await Promise.all([demo?.close(), blobs?.close()]);
  });

  it('should 409 all of 200 concurrent location removals, replacements and adds on 20 saving images, apply none, and let every upload complete', async () => {
    await heldUploads({ base: demo.url, blobs });
  });

  it('should never apply a location change to an image while its upload runs, with uploads and 200 changes sent at once', async () => {
    const outcomes = await simultaneous({ base: demo.url, blobs });
    const { refusedWhileSaving } = await checkRace({ base: demo.url, blobs }, outcomes);
    // The race was run: some changes came while an upload was in flight.
    expect(refusedWhileSaving).toBeGreaterThan(0);
    const blobUrl = (id: string) => `file://${path.join(demo.dataDir, 'blobs', id)}`;
    for (const { id, upload, changes } of outcomes) {
      const applied = changes.filter(({ answer }) => answer.status === 200).map(({ answer }) => JSON.parse(answer.body) as Record<string, unknown>);
      const image = await show(demo.url, id);
      if (upload.status === 204) {
        // The upload began on a queued image: no location change was applied before it (the first
        // would have activated the image and the upload been refused), and none while it ran. So
        // every change that was applied saw the image with the upload's data.
        expect(applied.filter((doc) => doc['checksum'] !== MD5 || doc['size'] !== 32)).toEqual([]);
        expect(image).toMatchObject({ status: 'active', size: 32, checksum: MD5 });
      } else {
        // A location change came first and activated the image: the upload was refused before a
        // byte was written, and failed cleanly (no data, no file).
        expect(upload).toEqual({ status: 409, body: plainError('409 Conflict', 'Image status transition from active to saving is not allowed') });
        expect(applied.length).toBeGreaterThan(0);
        expect(applied.filter((doc) => doc['checksum'] !== null)).toEqual([]);
        expect(image).toMatchObject({ status: 'active', checksum: null });
        expect(urlsOf(image)).not.toContain(blobUrl(id));
        expect(existsSync(path.join(demo.dataDir, 'blobs', id))).toBe(false);
      }
      // The locations are the upload's and those of changes that were applied, nothing else.
      const allowed = new Set([blobUrl(id), ...changes.filter(({ answer }) => answer.status === 200).map(({ change: c }) => c.url)]);
      expect(urlsOf(image).filter((u) => !allowed.has(u))).toEqual([]);
      const data = await call(demo.url, 'GET', `/v2/images/${id}/file`);
      expect(data.status).toBe(200);
      expect(data.body.equals(FIXTURE)).toBe(true);
    }
    // No partial upload left behind.
    expect(readdirSync(path.join(demo.dataDir, 'tmp')).filter((f) => f.endsWith('.part'))).toEqual([]);
  });
});

describe('1. The upload race, through the sidecar in front of a pre-Ocata service', () => {
  let old: OldGlance;
  let sidecar: RunningProcess;
  let blobs: BlobServer;
  beforeAll(async () => {
    blobs = await startBlobServer();
    old = await startOldGlance();
    sidecar = await startCli(['proxy', '--upstream', old.url, '--port', '0', '--host', '127.0.0.1']);
  });
  afterAll(async () => {
    await sidecar?.stop();
    await Promise.all([old?.close(), blobs?.close()]);
  });

  it('should let the old service itself apply a location change while an upload runs (what the sidecar must prevent)', async () => {
    // The control: without the sidecar, a change during an upload is answered 200 with the image
    // `saving`, which is what the checks below look for.
    const id = await create(old.url);
    const upload = startUpload(old.url, id);
    await until(`${id} saving`, () => old.store.get(id)?.status === 'saving');
    const direct = await send(old.url, change(id, 'add', blobs.put(`control-${id}`, FIXTURE)));
    expect(direct.status).toBe(200);
    expect(JSON.parse(direct.body)).toMatchObject({ status: 'saving' });
    upload.finish();
    expect((await upload.answer).status).toBe(204);
  });

  it('should 409 all of 200 concurrent location removals, replacements and adds on 20 saving images, forward none, and let every upload complete', async () => {
    await heldUploads({ base: sidecar.url, blobs, stored: (id) => structuredClone(old.store.get(id)) });
  });

  it('should never let a location change reach the old service while an upload of the image runs, with uploads and 200 changes sent at once', async () => {
    const outcomes = await simultaneous({ base: sidecar.url, blobs });
    const { refusedWhileSaving } = await checkRace({ base: sidecar.url, blobs }, outcomes);
    expect(refusedWhileSaving).toBeGreaterThan(0);
    for (const { id, upload } of outcomes) {
      if (upload.status === 204) {
        expect(old.store.get(id)).toMatchObject({ status: 'active', size: 32, checksum: MD5 });
      } else {
        // The old service refused the data of an image a location change had already activated:
        // it failed cleanly, no data of it is kept, and the client gets the old service's own
        // refusal (not a 502: the service answered, it did not fail to).
        expect(upload).toEqual({ status: 409, body: expect.stringContaining('409 Conflict') });
        expect(old.store.get(id)).toMatchObject({ status: 'active', checksum: null });
      }
      const data = await call(sidecar.url, 'GET', `/v2/images/${id}/file`);
      expect(data.status).toBe(200);
      expect(data.body.equals(FIXTURE)).toBe(true);
    }
  });
});
