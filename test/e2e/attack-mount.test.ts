/**
 * Attacks on the location guard mounted in a user's Express 4 and Express 5 apps, over raw
 * sockets: in front of a handler that applies location changes to an in-memory store in any status
 * (as a pre-Ocata service does) and records what it applied. The guard's lookup reads the same
 * store, with the caller's token (X-Auth-Token, else X-Storage-Token).
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { glanceErrorHandler, locationGuard } from '../../lib';
import { express4 } from '../helpers/http';
import { testSeed } from '../helpers/seed';
import { locationAttacks, OTHER, OWNER, rawRequest, sendRaw, trickle, V20, V21 } from '../fixtures/glance-upstream';

jest.setTimeout(60_000);

interface Loc {
  url: string;
  metadata: Record<string, unknown>;
}
interface Img {
  id: string;
  status: string;
  locations: Loc[];
  visibleTo: string[];
  properties: Record<string, unknown>;
  data: Buffer | null;
  uploads: number;
}
interface Applied {
  method: string;
  url: string;
  id: string;
  statusAtChange: string;
  uploadsInFlight: number;
  ops: string[];
}

const LOCATIONS: Loc[] = [
  { url: 'http://127.0.0.1:1/a', metadata: { store: 's1' } },
  { url: 'http://127.0.0.1:1/b', metadata: { store: 's2' } },
];

/** The image store behind the app: ids compared as MySQL compares them. */
class Store {
  readonly images = new Map<string, Img>();
  readonly applied: Applied[] = [];
  static key(id: string): string {
    return id.toLowerCase().replace(/ +$/, '');
  }
  add(status: string, locations: Loc[] = LOCATIONS): string {
    const id = randomUUID();
    this.images.set(id, { id, status, locations: locations.map((l) => ({ ...l })), visibleTo: [OWNER], properties: {}, data: null, uploads: 0 });
    return id;
  }
  get(id: string): Img | undefined {
    return this.images.get(Store.key(id));
  }
  changesOf(id: string): Applied[] {
    return this.applied.filter((a) => Store.key(a.id) === id);
  }
}

function tokenOf(req: IncomingMessage): string | undefined {
  const t = req.headers['x-auth-token'] ?? req.headers['x-storage-token'];
  return Array.isArray(t) ? t[0] : t;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The user's app: the guard, a method override as the method-override package does it, then the image API. */
function buildApp(make: typeof express, store: Store, uploadDelay: number) {
  const app = make();
  app.use(
    locationGuard({
      lookup: async (id, req) => {
        const image = store.get(id);
        const token = tokenOf(req);
        if (!image || token === undefined || !image.visibleTo.includes(token)) return null;
        return { id: image.id, status: image.status, size: image.data?.length ?? null, checksum: null, locations: image.locations.length };
      },
    }),
  );
  app.use((req: Request, _res: Response, next: NextFunction) => {
    const override = req.headers['x-http-method-override'];
    if (req.method === 'POST' && typeof override === 'string') req.method = override.toUpperCase();
    next();
  });
  const visible = (req: Request, res: Response): Img | null => {
    const token = tokenOf(req);
    if (token === undefined) {
      res.status(401).type('text/plain').send('401 Unauthorized');
      return null;
    }
    const image = store.get(String(req.params['id'] ?? req.params[0]));
    if (!image || !image.visibleTo.includes(token)) {
      res.status(404).type('text/plain').send('404 Not Found');
      return null;
    }
    return image;
  };
  const change = (req: Request, image: Img, ops: string[]) =>
    store.applied.push({ method: req.method, url: req.originalUrl, id: image.id, statusAtChange: image.status, uploadsInFlight: image.uploads, ops });
  const doc = (image: Img) => ({ id: image.id, status: image.status, locations: image.locations, properties: image.properties });

  const record = /^\/v2(?:\.\d+)?\/+images\/([^/]+)\/?$/i;
  app.get(record, (req: Request, res: Response) => {
    const image = visible(req, res);
    if (image) res.json(doc(image));
  });
  app.patch(record, async (req: Request, res: Response) => {
    const image = visible(req, res);
    if (!image) return;
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    let ops: Record<string, unknown>[];
    try {
      ops = JSON.parse((await readBody(req)).toString()) as Record<string, unknown>[];
    } catch {
      res.status(400).send('bad json');
      return;
    }
    const applied: string[] = [];
    for (const raw of ops) {
      const op = type === V20 ? (['add', 'remove', 'replace'].find((k) => k in raw) as string) : String(raw['op']);
      const path = String(type === V20 ? raw[op] : raw['path']);
      const parts = path.replace(/^\//, '').split('/').map((p) => p.trim());
      if (parts[0] === 'locations') {
        const at = parts[1] === '-' || parts[1] === undefined ? image.locations.length - (op === 'remove' ? 1 : 0) : Number(parts[1]);
        if (op === 'replace') image.locations = raw['value'] as Loc[];
        else if (op === 'add') image.locations.splice(at, 0, raw['value'] as Loc);
        else image.locations.splice(at, 1);
        if (image.status === 'queued' && image.locations.length > 0) image.status = 'active';
      } else if (op === 'remove') image.properties = Object.fromEntries(Object.entries(image.properties).filter(([k]) => k !== parts.join('/')));
      else image.properties[parts.join('/')] = raw['value'];
      applied.push(`${op} ${path}`);
    }
    if (applied.some((a) => a.includes('locations'))) change(req, image, applied);
    res.json(doc(image));
  });
  app.put('/v2/images/:id/file', async (req: Request, res: Response) => {
    const image = visible(req, res);
    if (!image) return;
    if (image.status !== 'queued') {
      res.status(409).send('409 Conflict');
      return;
    }
    image.status = 'saving';
    image.uploads++;
    try {
      image.data = await readBody(req);
      await new Promise((r) => setTimeout(r, uploadDelay));
      image.status = 'active';
    } catch {
      image.status = 'queued';
    } finally {
      image.uploads--;
    }
    res.status(204).end();
  });
  app.get('/v2/images/:id/file', (req: Request, res: Response) => {
    const image = visible(req, res);
    if (image) res.type('application/octet-stream').send(image.data);
  });
  app.post('/v2/images/:id/locations', async (req: Request, res: Response) => {
    const image = visible(req, res);
    if (!image) return;
    const value = JSON.parse((await readBody(req)).toString()) as { url: string };
    image.locations.push({ url: value.url, metadata: {} });
    change(req, image, ['add /locations/-']);
    res.status(202).end();
  });
  app.delete('/v2/stores/:store/:id', (req: Request, res: Response) => {
    const image = visible(req, res);
    if (!image) return;
    image.locations = image.locations.filter((l) => l.metadata['store'] !== req.params['store']);
    change(req, image, [`remove stores/${String(req.params['store'])}`]);
    res.status(204).end();
  });
  app.use(glanceErrorHandler());
  return app;
}

/** This app reads only X-Auth-Token and X-Storage-Token: to it, X_Auth_Token is no token (its own 401). */
const SERVICE_ANSWERS: Record<string, number> = { 'the token in X_Auth_Token': 401 };
const AUTH: [string, string][] = [['X-Auth-Token', OWNER]];

for (const [name, make] of [
  ['Express 4', express4],
  ['Express 5', express],
] as const) {
  describe(`1. location changes through locationGuard mounted in ${name}`, () => {
    const store = new Store();
    let server: http.Server;
    let port: number;
    beforeAll(async () => {
      server = http.createServer(buildApp(make, store, 600));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });

    for (const attack of locationAttacks()) {
      const status = SERVICE_ANSWERS[attack.name] ?? attack.status;
      it(`should ${status} ${attack.cls}: ${attack.name} (queued image, remove)`, async () => {
        const id = store.add('queued');
        const answer = await sendRaw(port, attack.build(id, AUTH));
        expect(answer.status).toBe(status);
        const text = answer.body.toString();
        if (SERVICE_ANSWERS[attack.name] !== undefined) expect(text).toBe('401 Unauthorized');
        else if (attack.by === 'conflict') expect(text).toContain("It's not allowed to remove locations if image status is queued.");
        if (attack.by === 'ambiguous') expect(text).toContain('This request cannot be read unambiguously');
        expect(store.changesOf(id)).toEqual([]);
        expect(store.get(id)).toMatchObject({ status: 'queued', locations: LOCATIONS });
      });
    }

    it("should 404 a caller who cannot see the image with the service's own answer", async () => {
      const id = store.add('queued');
      const answer = await sendRaw(port, rawRequest('PATCH', `/v2/images/${id}`, [['X-Auth-Token', OTHER], ['Content-Type', V21]], JSON.stringify([{ op: 'remove', path: '/locations/0' }])));
      expect(answer.status).toBe(404);
      expect(answer.body.toString()).toBe('404 Not Found');
      expect(store.changesOf(id)).toEqual([]);
    });

    it("should 409 'saving' changes by any spelling while the owner's upload runs, and not for another caller's trickle", async () => {
      const id = store.add('queued', []);
      const add = JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: 'http://127.0.0.1:1/c', metadata: {} } }]);
      // A caller who cannot see the image trickles an upload: the owner's change is not held up.
      const stranger = trickle(port, rawRequest('PUT', `/v2/images/${id.toUpperCase()}/file`, [['X-Auth-Token', OTHER], ['Content-Length', '1000']]), 'x');
      await new Promise((r) => setTimeout(r, 100));
      const free = store.add('queued', []);
      const t0 = Date.now();
      const ok = await sendRaw(port, rawRequest('PATCH', `/v2/images/${free}`, [...AUTH, ['Content-Type', V21]], add));
      expect(ok.status).toBe(200);
      expect(Date.now() - t0).toBeLessThan(2000);
      stranger.abort();
      const data = Buffer.from('0123456789abcdefghijklmnopqrstuv');
      const upload = trickle(port, rawRequest('PUT', `/v2/images/${id.toUpperCase()}%20/file`, [...AUTH, ['Content-Length', String(data.length)]]), data.subarray(0, 5));
      await new Promise((r) => setTimeout(r, 100));
      for (const request of [
        rawRequest('PATCH', `/v2/images/${id}`, [...AUTH, ['Content-Type', V21]], add),
        rawRequest('PATCH', `/V2.1/Images/${id}/`, [...AUTH, ['Content-Type', V20]], JSON.stringify([{ add: '/locations/-', value: { url: 'http://x/y', metadata: {} } }])),
        rawRequest('POST', `/v2/images/${id}/locations`, [...AUTH, ['Content-Type', 'application/json']], '{"url": "http://127.0.0.1:1/d"}'),
      ]) {
        const answer = await sendRaw(port, request);
        expect(answer.status).toBe(409);
        expect(answer.body.toString()).toContain('status is saving');
      }
      upload.send(data.subarray(5));
      expect((await upload.answer).status).toBe(204);
      expect(store.get(id)?.data?.equals(data)).toBe(true);
      expect(store.changesOf(id)).toEqual([]);
    });

    it('should apply no location change while an upload is in flight (50 concurrent, seeded)', async () => {
      const seed = testSeed('ATTACK_SEED');
      let a = seed >>> 0;
      const random = () => {
        a = (Math.imul(a ^ (a >>> 15), 1 | a) + 0x6d2b79f5) >>> 0;
        return a / 4294967296;
      };
      const id = store.add('queued', []);
      const upload = new Promise((r) => setTimeout(r, Math.floor(random() * 100))).then(() => sendRaw(port, rawRequest('PUT', `/v2/images/${id.toUpperCase()}/file`, AUTH, Buffer.alloc(40000, 1))));
      const answers = await Promise.all(
        Array.from({ length: 50 }, async (_, n) => {
          await new Promise((r) => setTimeout(r, Math.floor(random() * 400)));
          const target = [`/v2/images/${id}`, `/v2.1/images/${id}%20`, `/V2/IMAGES/${id.toUpperCase()}`][n % 3] as string;
          return (await sendRaw(port, rawRequest('PATCH', target, [...AUTH, ['Content-Type', V21]], JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: `http://x/${n}`, metadata: {} } }])))).status;
        }),
      );
      await upload;
      expect(answers.every((s) => s === 200 || s === 409)).toBe(true);
      for (const c of store.changesOf(id)) expect({ status: c.statusAtChange, uploads: c.uploadsInFlight }).toEqual({ status: expect.stringMatching(/^(queued|active)$/), uploads: 0 });
    });

    it('controls: should 200 a location removal on an active image, a property patch, an upload and a download byte for byte', async () => {
      const active = store.add('active');
      const removed = await sendRaw(port, rawRequest('PATCH', `/v2/images/${active}`, [['X-Storage-Token', OWNER], ['Content-Type', V21]], JSON.stringify([{ op: 'remove', path: '/locations/0' }])));
      expect(removed.status).toBe(200);
      expect(store.get(active)?.locations).toEqual([LOCATIONS[1]]);
      const queued = store.add('queued', []);
      const prop = await sendRaw(port, rawRequest('PATCH', `/v2/images/${queued}`, [...AUTH, ['Content-Type', V21]], JSON.stringify([{ op: 'add', path: '/os_distro', value: 'cirros' }])));
      expect(prop.status).toBe(200);
      expect(store.get(queued)?.properties).toEqual({ os_distro: 'cirros' });
      const data = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 13) % 256));
      expect((await sendRaw(port, rawRequest('PUT', `/v2/images/${queued}/file`, AUTH, data))).status).toBe(204);
      const get = await sendRaw(port, rawRequest('GET', `/v2/images/${queued}/file`, AUTH));
      expect(get.status).toBe(200);
      expect(get.body.equals(data)).toBe(true);
    });
  });
}
