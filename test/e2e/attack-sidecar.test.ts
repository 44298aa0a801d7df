/**
 * Attacks on the sidecar (`glance-edge proxy`) over raw sockets, in front of a pre-Ocata-like
 * Glance built from Glance's own request-reading code that applies location changes in any status
 * (test/fixtures/glance_upstream.py). Each attack gets its answer checked, and the upstream's log
 * checked that no location change of an image in a forbidding status, or during an upload of it,
 * ever reached the service.
 */
import { createHash, randomUUID } from 'node:crypto';
import { startCli, type RunningProcess } from '../helpers/processes';
import { testSeed } from '../helpers/seed';
import {
  locationAttacks,
  OTHER,
  OWNER,
  rawRequest,
  sendRaw,
  smuggledPatch,
  startGlanceUpstream,
  trickle,
  V21,
  type GlanceUpstream,
  type LoggedRequest,
  type UpstreamImage,
} from '../fixtures/glance-upstream';

jest.setTimeout(60_000);

let upstream: GlanceUpstream;
let sidecar: RunningProcess;
const AUTH: [string, string][] = [['X-Auth-Token', OWNER]];
const LOCATIONS = [
  { url: 'http://127.0.0.1:1/a', metadata: { store: 's1' } },
  { url: 'http://127.0.0.1:1/b', metadata: { store: 's2' } },
];

beforeAll(async () => {
  upstream = await startGlanceUpstream();
  sidecar = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1']);
  // A decoy the other caller owns, so that its token is a valid one.
  await upstream.addImage({ id: randomUUID(), status: 'active', visibleTo: [OTHER] });
}, 30_000);

afterAll(async () => {
  await sidecar?.stop();
  await upstream?.stop();
});

async function image(status: string, extra: Partial<UpstreamImage> = {}): Promise<string> {
  const id = randomUUID();
  await upstream.addImage({ id, status, locations: LOCATIONS, visibleTo: [OWNER], ...extra });
  return id;
}

const same = (a: string | null, b: string) => (a ?? '').toLowerCase().replace(/ +$/, '') === b.toLowerCase();
async function logOf(id: string): Promise<LoggedRequest[]> {
  return (await upstream.log()).filter((e) => same(e.image_id, id) || (e.request_line ?? '').toLowerCase().includes(id.toLowerCase()));
}

/** The location changes of `id` that reached the upstream. */
async function changesOf(id: string): Promise<LoggedRequest[]> {
  return (await logOf(id)).filter((e) => e.location_change);
}

const plain = (status: string, message: string) => `${status}\n\n${message}\n\n   `;

/**
 * Spellings the upstream (Glance's own routing) does not route to the image: the sidecar's lookup,
 * asked at the record as the request spelt it, gets the same answer, so the request goes on and the
 * service gives its own.
 */
const NOT_ROUTED: Record<string, number> = {
  '/images/{id} with Accept images-v2.1 between commas': 300,
  '/images/{id} with two Accept headers': 300,
  '/V2/images/{id}': 300,
  '/v2/IMAGES/{id}': 404,
  // The lookup asks at the trailing slash too, which Glance does not route.
  '/v2/images/{id}/': 404,
};

describe('1. location changes through the sidecar, every spelling', () => {
  for (const attack of locationAttacks()) {
    const status = NOT_ROUTED[attack.name] ?? attack.status;
    it(`should ${status} ${attack.cls}: ${attack.name} (queued image, remove)`, async () => {
      const id = await image('queued');
      const answer = await sendRaw(sidecar.port, attack.build(id, AUTH));
      const text = answer.body.toString();
      expect(answer.status).toBe(status);
      // Not routed: the lookup and the request both reached no controller.
      if (NOT_ROUTED[attack.name] !== undefined) expect((await logOf(id)).map((e) => e.action)).toEqual([null, null]);
      else if (attack.by === 'conflict') expect(text).toContain("It's not allowed to remove locations if image status is queued.");
      if (attack.by === 'ambiguous') expect(text).toContain('This request cannot be read unambiguously');
      expect(await changesOf(id)).toEqual([]);
      const stored = await upstream.image(id);
      expect(stored.locations).toEqual(LOCATIONS);
      expect(stored.status).toBe('queued');
    });
  }

  it('should 409 in plain text, exactly as Glance words it, for the plain spelling', async () => {
    const id = await image('killed');
    const answer = await sendRaw(sidecar.port, rawRequest('PATCH', `/v2/images/${id}`, [...AUTH, ['Content-Type', V21]], JSON.stringify([{ op: 'replace', path: '/locations', value: LOCATIONS }])));
    expect(answer.status).toBe(409);
    expect(answer.headers['content-type']).toBe('text/plain; charset=UTF-8');
    expect(answer.body.toString()).toBe(plain('409 Conflict', "It's not allowed to replace locations if image status is killed."));
    expect(await changesOf(id)).toEqual([]);
  });

  it('should 409 DELETE /v2/stores/{store}/{ID} on a queued image, and 204 it on an active one', async () => {
    const queued = await image('queued');
    const refused = await sendRaw(sidecar.port, rawRequest('DELETE', `/v2.1/stores/s1/${queued.toUpperCase()}`, AUTH));
    expect(refused.status).toBe(409);
    expect(refused.body.toString()).toBe(plain('409 Conflict', "It's not allowed to remove image data from store if image status is not 'active'"));
    expect(await changesOf(queued)).toEqual([]);
    const active = await image('active');
    const done = await sendRaw(sidecar.port, rawRequest('DELETE', `/v2/stores/s1/${active}`, AUTH));
    expect(done.status).toBe(204);
    expect((await upstream.image(active)).locations).toEqual([LOCATIONS[1]]);
  });
});

describe('1. identity: the caller who cannot see the image', () => {
  it("should 404 with the service's own answer, the same for any status and for no image at all", async () => {
    const answers: string[] = [];
    for (const status of ['queued', 'saving', 'active', 'deactivated']) {
      const id = await image(status);
      const answer = await sendRaw(sidecar.port, rawRequest('PATCH', `/v2/images/${id}`, [['X-Auth-Token', OTHER], ['Content-Type', V21]], JSON.stringify([{ op: 'remove', path: '/locations/0' }])));
      expect(answer.status).toBe(404);
      answers.push(answer.body.toString().replace(id, '{id}'));
      expect(await changesOf(id)).toEqual([]);
      expect((await upstream.image(id)).locations).toEqual(LOCATIONS);
    }
    const none = randomUUID();
    const missing = await sendRaw(sidecar.port, rawRequest('PATCH', `/v2/images/${none}`, [['X-Auth-Token', OTHER], ['Content-Type', V21]], JSON.stringify([{ op: 'remove', path: '/locations/0' }])));
    expect(missing.status).toBe(404);
    answers.push(missing.body.toString().replace(none, '{id}'));
    expect(new Set(answers).size).toBe(1);
    expect(answers[0]).toContain('404 Not Found');
  });

  it('should 404 a caller whose X-Auth-Token cannot see the image, whatever its X-Storage-Token says', async () => {
    const id = await image('queued');
    const answer = await sendRaw(sidecar.port, rawRequest('PATCH', `/v2/images/${id}`, [['X-Auth-Token', OTHER], ['X-Storage-Token', OWNER], ['Content-Type', V21]], JSON.stringify([{ op: 'remove', path: '/locations/0' }])));
    expect(answer.status).toBe(404);
    expect(await changesOf(id)).toEqual([]);
  });

  it('should 401 a caller without a token, as the service does', async () => {
    const id = await image('queued');
    const answer = await sendRaw(sidecar.port, rawRequest('PATCH', `/v2/images/${id}`, [['Content-Type', V21]], JSON.stringify([{ op: 'remove', path: '/locations/0' }])));
    expect(answer.status).toBe(401);
    expect(await changesOf(id)).toEqual([]);
  });

  it("should not let a trickling upload by a caller who cannot see the image hold up the owner's change", async () => {
    const id = await image('queued');
    const uploads = [
      trickle(sidecar.port, rawRequest('PUT', `/v2/images/${id}/file`, [['Content-Type', 'application/octet-stream'], ['Content-Length', '100000']]), 'x'),
      trickle(sidecar.port, rawRequest('PUT', `/v2.1/images/${id.toUpperCase()}/file`, [['X-Auth-Token', OTHER], ['Content-Type', 'application/octet-stream'], ['Content-Length', '100000']]), 'x'),
    ];
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const answer = await sendRaw(sidecar.port, rawRequest('PATCH', `/v2/images/${id}`, [...AUTH, ['Content-Type', V21]], JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: 'http://127.0.0.1:1/c', metadata: {} } }])));
    expect(answer.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(3000);
    const changes = await changesOf(id);
    expect(changes).toHaveLength(1);
    expect(changes[0]?.uploads_in_flight).toBe(0);
    for (const u of uploads) u.abort();
  });
});

describe('1. framing', () => {
  it('should never let a PATCH smuggled in the body of a GET reach the service', async () => {
    for (const te of ['chunked', 'Chunked']) {
      const id = await image('queued');
      const answer = await sendRaw(sidecar.port, smuggledPatch(id, AUTH, te), 3000);
      expect([200, 400]).toContain(answer.status);
      const seen = await logOf(id);
      expect(seen.filter((e) => e.method !== 'GET')).toEqual([]);
      expect(await changesOf(id)).toEqual([]);
      expect((await upstream.image(id)).locations).toEqual(LOCATIONS);
    }
  });
});

describe('1. the race the spec names: uploads in flight', () => {
  it("should 409 'saving' every location change, by any spelling, while the owner's upload runs", async () => {
    const id = await image('queued', { uploadDelay: 1500 });
    const data = Buffer.from('0123456789abcdefghijklmnopqrstuv');
    const upload = trickle(sidecar.port, rawRequest('PUT', `/v2.1/images/${id.toUpperCase()}/file`, [...AUTH, ['Content-Type', 'application/octet-stream'], ['Content-Length', String(data.length)]]), data.subarray(0, 10));
    await waitFor(async () => (await logOf(id)).some((e) => e.upload));
    const add = JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: 'http://127.0.0.1:1/c', metadata: {} } }]);
    const tries = [
      rawRequest('PATCH', `/v2/images/${id}`, [...AUTH, ['Content-Type', V21]], add),
      rawRequest('PATCH', `/v2//images/${id}%20`, [...AUTH, ['Content-Type', V21]], add),
      rawRequest('PATCH', `/images/${id}`, [...AUTH, ['Accept', 'application/vnd.openstack.images-v2.1'], ['Content-Type', V21]], add),
      rawRequest('POST', `/v2/images/${id}/locations`, [...AUTH, ['Content-Type', 'application/json']], JSON.stringify({ url: 'http://127.0.0.1:1/d' })),
    ];
    for (const t of tries) {
      const answer = await sendRaw(sidecar.port, t);
      expect(answer.status).toBe(409);
    }
    upload.send(data.subarray(10));
    expect((await upload.answer).status).toBe(204);
    expect(await changesOf(id)).toEqual([]);
    expect(Buffer.from((await upstream.image(id)).data ?? '', 'base64').equals(data)).toBe(true);
  });

  it('should apply no location change while a slow upload of the image is in flight (200 concurrent, seeded)', async () => {
    const seed = testSeed('ATTACK_SEED');
    const random = mulberry32(seed);
    const rounds = 4;
    const perRound = 50;
    const add = (n: number) => JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: `http://127.0.0.1:1/r${n}`, metadata: {} } }]);
    const answers: number[] = [];
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: rounds }, async (_, round) => {
        const id = await image('queued', { uploadDelay: 800, locations: [] });
        ids.push(id);
        const spelt = round % 2 === 0 ? `/v2.1/images/${id}/file` : `/v2/images/${id.toUpperCase()}/file`;
        // The upload starts somewhere in the first 150 ms of the changes' 600 ms.
        const upload = new Promise((r) => setTimeout(r, Math.floor(random() * 150))).then(() =>
          sendRaw(sidecar.port, rawRequest('PUT', spelt, [...AUTH, ['Content-Type', 'application/octet-stream']], Buffer.alloc(64 * 1024, round)), 30000),
        );
        const changes = Array.from({ length: perRound }, async (_, n) => {
          await new Promise((r) => setTimeout(r, Math.floor(random() * 600)));
          const choice = Math.floor(random() * 4);
          const target = [`/v2/images/${id}`, `/v2//images/${id.toUpperCase()}`, `/v2.15/images/${id}%20`, `/images/${id}`][choice] as string;
          const headers: [string, string][] = [...AUTH, ['Content-Type', V21]];
          if (choice === 3) headers.push(['Accept', 'application/vnd.openstack.images-v2']);
          const answer = await sendRaw(sidecar.port, rawRequest('PATCH', target, headers, add(n)), 30000);
          answers.push(answer.status);
        });
        await Promise.all([upload, ...changes]);
      }),
    );
    const counts = answers.reduce<Record<number, number>>((c, s) => ({ ...c, [s]: (c[s] ?? 0) + 1 }), {});
    console.log(`attack-sidecar race answers ${JSON.stringify(counts)}`);
    expect(answers.every((s) => s === 200 || s === 409)).toBe(true);
    for (const id of ids) {
      for (const change of await changesOf(id)) {
        expect({ id, status: change.status_at_change, uploads: change.uploads_in_flight }).toEqual({ id, status: expect.stringMatching(/^(queued|active)$/), uploads: 0 });
      }
    }
  });

  it("should 409 'importing' a location change while an import runs", async () => {
    const id = await image('queued', { importDelay: 1500 });
    const started = await sendRaw(sidecar.port, rawRequest('POST', `/v2/images/${id}/import`, [...AUTH, ['Content-Type', 'application/json']], '{"method": {"name": "glance-direct"}}'));
    expect(started.status).toBe(202);
    const answer = await sendRaw(sidecar.port, rawRequest('PATCH', `/v2/images/${id}`, [...AUTH, ['Content-Type', V21]], JSON.stringify([{ op: 'replace', path: '/locations', value: LOCATIONS }])));
    expect(answer.status).toBe(409);
    expect(answer.body.toString()).toBe(plain('409 Conflict', "It's not allowed to replace locations if image status is importing."));
    expect(await changesOf(id)).toEqual([]);
  });
});

describe('controls: what must still work through the sidecar', () => {
  it('should 200 and apply a location removal on an active image, by X-Storage-Token too', async () => {
    const id = await image('active');
    const answer = await sendRaw(sidecar.port, rawRequest('PATCH', `/v2/images/${id}`, [['X-Storage-Token', OWNER], ['Content-Type', V21]], JSON.stringify([{ op: 'remove', path: '/locations/0' }])));
    expect(answer.status).toBe(200);
    expect((JSON.parse(answer.body.toString()) as { locations: unknown[] }).locations).toEqual([LOCATIONS[1]]);
    expect((await changesOf(id)).map((c) => c.applied)).toEqual([[{ op: 'remove', path: 'locations/0' }]]);
  });

  it('should 200 a property patch on a queued image without looking it up', async () => {
    const id = await image('queued');
    const answer = await sendRaw(sidecar.port, rawRequest('PATCH', `/v2/images/${id}`, [...AUTH, ['Content-Type', V21]], JSON.stringify([{ op: 'add', path: '/os_distro', value: 'cirros' }])));
    expect(answer.status).toBe(200);
    const seen = await logOf(id);
    expect(seen.map((e) => e.action)).toEqual(['update']);
    expect((await upstream.image(id)).properties).toEqual({ os_distro: 'cirros' });
  });

  it('should pass an upload and a download byte for byte', async () => {
    const id = await image('queued', { locations: [] });
    const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256));
    const put = await sendRaw(sidecar.port, rawRequest('PUT', `/v2/images/${id}/file`, [...AUTH, ['Content-Type', 'application/octet-stream']], data));
    expect(put.status).toBe(204);
    const stored = await upstream.image(id);
    expect(stored.checksum).toBe(createHash('md5').update(data).digest('hex'));
    const get = await sendRaw(sidecar.port, rawRequest('GET', `/v2/images/${id}/file`, AUTH));
    expect(get.status).toBe(200);
    expect(get.body.equals(data)).toBe(true);
    const range = await sendRaw(sidecar.port, rawRequest('GET', `/v2/images/${id}/file`, [...AUTH, ['Range', 'bytes=10-19']]));
    expect(range.status).toBe(206);
    expect(range.body.equals(data.subarray(10, 20))).toBe(true);
  });
});

async function waitFor(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
