/**
 * BEHAVIOUR.md §1: the location guard in front of a small Express app (5 and 4), with supertest.
 * The app's PATCH handler echoes the exact bytes it reads, so every pass-through case also proves
 * that the next handler gets the client's body byte for byte.
 */
import express from 'express';
import { express4, rawBody } from '../helpers/http';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { glanceErrorHandler } from '../../lib/errors';
import { httpImageLookup, type ImageFacts, type ImageLookup } from '../../lib/images/lookup';
import { MemoryStore } from '../../lib/locations/store';
import { locationGuard, type LocationGuardOptions } from '../../lib/locations/guard';


const V21 = 'application/openstack-images-v2.1-json-patch';
const V20 = 'application/openstack-images-v2.0-json-patch';
const FIXTURE = Buffer.from('0123456789abcdefghijklmnopqrstuv');
const LOCATION = { url: 'http://127.0.0.1:1/a.qcow2', metadata: {} };

const REMOVE_0 = '[{"op": "remove", "path": "/locations/0"}]';
const plain = (status: string, message: string) => `${status}\n\n${message}\n\n   `;
const conflictText = (verb: string, status: string) => plain('409 Conflict', `It's not allowed to ${verb} locations if image status is ${status}.`);

// ---------------------------------------------------------------------------------------------
// Plumbing


interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const closers: (() => Promise<void>)[] = [];

async function listen(listener: http.RequestListener): Promise<{ server: http.Server; url: string; port: number }> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { server, url: `http://127.0.0.1:${port}`, port };
}

afterEach(async () => {
  while (closers.length > 0) await closers.pop()?.();
});

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: Buffer;
}

interface App {
  url: string;
  /** Requests that reached the handlers behind the guard. */
  seen: Seen[];
  /** What happened, in order: `handler:PATCH`, `finish:PATCH`, `upload:start`, ... */
  events: string[];
}

interface AppOptions {
  /** Resolved when an upload's answer may be sent; by default at once. */
  uploadGate?: () => Promise<void>;
}

/** A small Express app: the guard, an echoing image API, an upload route, the error handler. */
async function startApp(factory: typeof express, options: LocationGuardOptions, appOptions: AppOptions = {}): Promise<App> {
  const seen: Seen[] = [];
  const events: string[] = [];

  const read = (req: IncomingMessage) =>
    new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => resolve(Buffer.concat(chunks)));
    });

  const echo = (req: IncomingMessage, res: ServerResponse) => {
    events.push(`handler:${req.method}`);
    res.on('finish', () => events.push(`finish:${req.method}`));
    void read(req).then((body) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], body });
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, 'X-Backing': 'echo' });
      res.end(body);
    });
  };

  const upload = (req: IncomingMessage, res: ServerResponse) => {
    events.push('upload:start');
    res.on('finish', () => events.push('upload:finish'));
    void read(req).then(async (body) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], body });
      await (appOptions.uploadGate?.() ?? Promise.resolve());
      res.writeHead(204, { 'X-Backing': 'upload' });
      res.end();
    });
  };

  const app = factory();
  app.use(locationGuard(options));
  app.patch('/v2/images/:id', echo);
  app.put('/v2/images/:id/file', upload);
  app.put('/v2/images/:id/stage', upload);
  app.post('/v2/images/:id/import', upload);
  app.use(echo);
  app.use(glanceErrorHandler());
  const { url } = await listen(app);
  return { url, seen, events };
}

/** A lookup function over a fixed set of images that counts its calls. */
function fakeLookup(images: Record<string, ImageFacts | null>): { lookup: ImageLookup; calls: string[] } {
  const calls: string[] = [];
  const lookup: ImageLookup = (id) => {
    calls.push(id);
    return Promise.resolve(images[id] ?? null);
  };
  return { lookup, calls };
}

const facts = (id: string, status: string, locations: number | null): ImageFacts => ({ id, status, size: 32, checksum: null, locations });

const IMAGES: Record<string, ImageFacts | null> = {
  queued: facts('queued', 'queued', 0),
  saving: facts('saving', 'saving', 0),
  active: facts('active', 'active', 2),
  single: facts('single', 'active', 1),
  hidden: null,
};

function patch(app: App, id: string, body: string | Buffer, type: string = V21) {
  return request(app.url)
    .patch(`/v2/images/${id}`)
    .set('Content-Type', type)
    .send(body) // a string or Buffer goes out as is (superagent would re-serialise only a Buffer sent as JSON)
    .buffer(true)
    .parse(rawBody);
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A request whose body goes out as separate chunks (Transfer-Encoding: chunked), a pause between them. */
function chunkedRequest(url: string, path: string, headers: http.OutgoingHttpHeaders, chunks: Buffer[]): Promise<RawResponse> {
  return new Promise<RawResponse>((resolve, reject) => {
    let answered = false;
    const req = http.request(`${url}${path}`, { method: 'PATCH', headers, agent: false }, (res) => {
      answered = true;
      const body: Buffer[] = [];
      res.on('data', (c: Buffer) => body.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(body) }));
      res.on('error', reject);
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    void (async () => {
      for (const chunk of chunks) {
        if (answered) break;
        req.write(chunk);
        await sleep(15);
      }
      req.end();
    })();
  });
}

// ---------------------------------------------------------------------------------------------
// An upstream Glance for httpImageLookup

interface UpstreamRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

const upstreamSeen: UpstreamRequest[] = [];
let upstream: http.Server;
let upstreamUrl: string;
let upstreamAgent: http.Agent;

const glanceImage = (id: string, status: string, locations: number) =>
  JSON.stringify({
    id,
    name: `image ${id}`,
    status,
    visibility: 'shared',
    locations: Array.from({ length: locations }, (_, i) => ({ url: `http://127.0.0.1:1/${id}-${i}`, metadata: {} })),
    size: status === 'queued' ? null : 32,
    checksum: status === 'queued' ? null : '78a47efe5cdc26d6fef2cec0bbb2b4ac',
    disk_format: 'raw',
    container_format: 'bare',
  });

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    upstreamSeen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const id = /^\/v2\/images\/([^/]+)$/.exec(req.url ?? '')?.[1] ?? '';
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };
    switch (id) {
      case 'queued':
        return send(200, 'application/json', glanceImage(id, 'queued', 0));
      case 'active':
        return send(200, 'application/json', glanceImage(id, 'active', 2));
      case 'single':
        return send(200, 'application/json', glanceImage(id, 'active', 1));
      case 'gone':
        return send(404, 'text/plain; charset=UTF-8', plain('404 Not Found', 'No image found with ID gone'));
      case 'unauthorized':
        return send(401, 'text/plain; charset=UTF-8', plain('401 Unauthorized', 'The request you have made requires authentication.'));
      case 'forbidden':
        return send(403, 'text/plain; charset=UTF-8', plain('403 Forbidden', 'You are not authorized to complete get_image action.'));
      case 'broken':
        return send(500, 'text/plain; charset=UTF-8', plain('500 Internal Server Error', 'Boom'));
      case 'unavailable':
        return send(503, 'text/plain; charset=UTF-8', plain('503 Service Unavailable', 'Try later'));
      case 'garbage':
        return send(200, 'application/json', '<html>this is not json</html>');
      case 'not-an-image':
        return send(200, 'application/json', '{"images": []}');
      case 'hang':
        return undefined; // never answers
      default:
        return send(404, 'text/plain; charset=UTF-8', plain('404 Not Found', `No image found with ID ${id}`));
    }
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  upstreamAgent = new http.Agent({ keepAlive: true });
});

afterAll(async () => {
  upstreamAgent.destroy();
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

beforeEach(() => {
  upstreamSeen.length = 0;
});

// ---------------------------------------------------------------------------------------------

describe.each<[string, typeof express]>([
  ['Express 5', express],
  ['Express 4', express4],
])('1. Location changes: PATCH /v2/images/{id} (%s)', (_name, factory) => {
  describe('refusals with Glance bodies', () => {
    it('should 409 when removing a location of a queued image', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'queued', REMOVE_0);
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.headers['content-length']).toBe(String(conflictText('remove', 'queued').length));
      expect(res.headers['x-backing']).toBeUndefined();
      expect((res.body as Buffer).toString('utf8')).toBe(conflictText('remove', 'queued'));
      expect(calls).toEqual(['queued', 'queued']);
      expect(app.seen).toEqual([]);
    });

    it('should 409 in JSON when removing a location of a queued image with the v2.0 syntax and a charset', async () => {
      const { lookup } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'queued', '[{"remove": "/locations/0"}]', `${V20}; charset=UTF-8`).set('Accept', 'application/json');
      const body =
        '{"message": "It\'s not allowed to remove locations if image status is queued.<br /><br />\\n\\n\\n", "code": "409 Conflict", "title": "Conflict"}';
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.headers['content-length']).toBe(String(body.length));
      expect((res.body as Buffer).toString('utf8')).toBe(body);
      expect(app.seen).toEqual([]);
    });

    it('should 409 in HTML when adding a location to a saving image', async () => {
      const { lookup } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'saving', JSON.stringify([{ op: 'add', path: '/locations/-', value: LOCATION }])).set('Accept', '*/*');
      const body =
        '<html>\n <head>\n  <title>409 Conflict</title>\n </head>\n <body>\n  <h1>409 Conflict</h1>\n' +
        '  It&#x27;s not allowed to add locations if image status is saving.<br /><br />\n\n\n\n </body>\n</html>';
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('text/html; charset=UTF-8');
      expect(res.headers['content-length']).toBe(String(body.length));
      expect((res.body as Buffer).toString('utf8')).toBe(body);
      expect(app.seen).toEqual([]);
    });

    it('should 403 when replacing locations with [] (in JSON)', async () => {
      const { lookup } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'saving', '[{"op": "replace", "path": "/locations", "value": []}]').set('Accept', 'application/json');
      const body =
        '{"message": "Access was denied to this resource.<br /><br />\\nCannot set locations to empty list.\\n\\n", "code": "403 Forbidden", "title": "Forbidden"}';
      expect(res.status).toBe(403);
      expect(res.headers['content-type']).toBe('application/json');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
      expect(app.seen).toEqual([]);
    });

    it('should 403 when removing the last location of an active image', async () => {
      const { lookup } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'single', '[{"op": "remove", "path": "/locations/5"}]');
      const body = '403 Forbidden\n\nAccess was denied to this resource.\n\n Cannot remove last location in the image.  ';
      expect(res.status).toBe(403);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
      expect(app.seen).toEqual([]);
    });

    it('should 403 when locations are invisible (showMultipleLocations false)', async () => {
      const { lookup } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup, showMultipleLocations: false });
      const res = await patch(app, 'active', REMOVE_0);
      const body = plain('403 Forbidden', "It's not allowed to remove locations if locations are invisible.");
      expect(res.status).toBe(403);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
      expect(app.seen).toEqual([]);
    });

    it('should 400 for a malformed location patch without looking the image up', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'active', JSON.stringify([{ op: 'replace', path: '/locations/0', value: LOCATION }]));
      const body = plain('400 Bad Request', "Invalid JSON pointer for this resource: '/locations/0'");
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
      expect(calls).toEqual([]);
      expect(app.seen).toEqual([]);
    });

    it("should 400 with Glance's schema text, before any status, for a location that is not an object (saving image, plain text and JSON)", async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const explanation =
        "Provided object does not match schema 'image': 'metadata' is a required property\n\n" +
        "Failed validating 'required' in schema['properties']['locations']['items']:\n" +
        "    {'properties': {'metadata': {'type': 'object'},\n" +
        "                    'url': {'maxLength': 255, 'type': 'string'},\n" +
        "                    'validation_data': {'additionalProperties': False,\n" +
        "                                        'description': 'Values to be used '\n" +
        "                                                       'to populate the '\n" +
        "                                                       'corresponding '\n" +
        "                                                       'image properties. '\n" +
        "                                                       'If the image '\n" +
        "                                                       'status is not '\n" +
        "                                                       \"'queued', values \"\n" +
        "                                                       'must exactly match '\n" +
        "                                                       'those already '\n" +
        "                                                       'contained in the '\n" +
        "                                                       'image properties.',\n" +
        "                                        'properties': {'checksum': {'maxLength': 32,\n" +
        "                                                                    'minLength': 32,\n" +
        "                                                                    'type': 'string'},\n" +
        "                                                       'os_hash_algo': {'maxLength': 64,\n" +
        "                                                                        'type': 'string'},\n" +
        "                                                       'os_hash_value': {'maxLength': 128,\n" +
        "                                                                         'type': 'string'}},\n" +
        "                                        'required': ['os_hash_algo',\n" +
        "                                                     'os_hash_value'],\n" +
        "                                        'type': 'object',\n" +
        "                                        'writeOnly': True}},\n" +
        "     'required': ['url', 'metadata'],\n" +
        "     'type': 'object'}\n\n" +
        "On instance['locations'][0]:\n" +
        "    {'url': 'http://a/b'}";
      const body = '[{"op": "add", "path": "/locations/-", "value": {"url": "http://a/b"}}]';
      const res = await patch(app, 'saving', body);
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(plain('400 Bad Request', explanation.replace(/\n/g, ' ')));
      const json = await patch(app, 'queued', body).set('Accept', 'application/json');
      expect(json.status).toBe(400);
      expect(json.headers['content-type']).toBe('application/json');
      expect((json.body as Buffer).toString('utf8')).toBe(`{"message": ${JSON.stringify(`${explanation}<br /><br />\n\n\n`)}, "code": "400 Bad Request", "title": "Bad Request"}`);
      expect(calls).toEqual([]);
      expect(app.seen).toEqual([]);
    });

    it.each([
      ['replace /locations with a non-list', '[{"op": "replace", "path": "/locations", "value": {}}]', "{} is not of type 'array'"],
      ['a metadata that is not an object', '[{"op": "add", "path": "/locations/0", "value": {"url": "u", "metadata": "m"}}]', "'m' is not of type 'object'"],
      ['a url over 255 characters', `[{"op": "add", "path": "/locations/-", "value": {"url": "${'u'.repeat(300)}", "metadata": {}}}]`, `'${'u'.repeat(300)}' is too long`],
      ['a name that is not a string, then a location remove', '[{"op": "replace", "path": "/name", "value": 5}, {"op": "remove", "path": "/locations/0"}]', "5 is not of type 'null', 'string'"],
      ['a disk format of another Glance, then a location add', '[{"op": "replace", "path": "/disk_format", "value": "zzz"}, {"op": "add", "path": "/locations/-", "value": {"url": "u", "metadata": {}}}]', "'zzz' is not one of [None, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop']"],
    ])("should 400 with Glance's schema text for %s, not the saving image's 409, without a lookup", async (_name, body, message) => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'saving', body).set('Accept', 'application/json');
      expect(res.status).toBe(400);
      const { message: text } = JSON.parse((res.body as Buffer).toString('utf8')) as { message: string };
      expect(text.startsWith(`Provided object does not match schema 'image': ${message}\n\nFailed validating `)).toBe(true);
      expect(calls).toEqual([]);
      expect(app.seen).toEqual([]);
    });

    it('should take the disk formats of the Glance in question (diskFormats), and judge the status then', async () => {
      const { lookup } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup, diskFormats: { add: ['zzz'] } });
      const res = await patch(app, 'saving', '[{"op": "replace", "path": "/disk_format", "value": "zzz"}, {"op": "add", "path": "/locations/-", "value": {"url": "u", "metadata": {}}}]');
      expect(res.status).toBe(409);
      expect((res.body as Buffer).toString('utf8')).toBe(conflictText('add', 'saving'));
    });

    it('should leave a patch without location ops to the service whatever its values', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'saving', '[{"op": "replace", "path": "/name", "value": 5}]');
      expect(res.status).toBe(200);
      expect(calls).toEqual([]);
    });

    it('should 400 for an empty body in a patch media type', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'active', '');
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(plain('400 Bad Request', 'Body expected in request.'));
      expect(calls).toEqual([]);
      expect(app.seen).toEqual([]);
    });

    it('should 403 when replacing the blank-padded pointer "/locations " with [] (Glance strips pointer tokens)', async () => {
      // Glance's _decode_json_pointer strips each token, so "/locations " is /locations: Glance answers 403.
      // A guard that does not strip sees an attribute named "locations " and lets the change through unchecked.
      const { lookup } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'active', '[{"op": "replace", "path": "/locations ", "value": []}]');
      expect(res.status).toBe(403);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe('403 Forbidden\n\nAccess was denied to this resource.\n\n Cannot set locations to empty list.  ');
      expect(app.seen).toEqual([]);
    });
  });

  describe('what passes through untouched', () => {
    it('should 409 a location patch sent as application/json, which a service other than Glance may apply', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'queued', REMOVE_0, 'application/json');
      expect(res.status).toBe(409);
      expect((res.body as Buffer).toString('utf8')).toBe(conflictText('remove', 'queued'));
      expect(calls).toEqual(['queued', 'queued']);
      expect(app.seen).toEqual([]);
    });

    it("should 200 from the handler for a location patch sent as application/json, with no lookup, with patchMediaTypes 'glance'", async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup, patchMediaTypes: 'glance' });
      const res = await patch(app, 'queued', REMOVE_0, 'application/json');
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect((res.body as Buffer).toString('utf8')).toBe(REMOVE_0);
      expect(calls).toEqual([]);
      expect(app.seen).toEqual([{ method: 'PATCH', url: '/v2/images/queued', contentType: 'application/json', body: Buffer.from(REMOVE_0) }]);
    });

    it.each(['constructor', '__proto__', 'text/plain'])(
      'should 200 from the handler for a PATCH with Content-Type %s and a body that is not JSON, with no lookup',
      async (type) => {
        const { lookup, calls } = fakeLookup(IMAGES);
        const app = await startApp(factory, { lookup });
        const body = 'remove /locations/0';
        const res = await patch(app, 'queued', body, type);
        expect(res.status).toBe(200);
        expect(res.headers['x-backing']).toBe('echo');
        expect((res.body as Buffer).toString('utf8')).toBe(body);
        expect(calls).toEqual([]);
      },
    );

    it.each([
      ['text/plain', '[{"remove": "/locations/0"}]'],
      ['text/plain', '\ufeff[{"op": "remove", "path": "/locations/0"}]'],
      ['application/vnd.x+json', REMOVE_0],
    ])('should 409 a location remove sent as %s %j, which a body parser may read as JSON', async (type, body) => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'queued', body, type);
      expect(res.status).toBe(409);
      expect((res.body as Buffer).toString('utf8')).toBe(conflictText('remove', 'queued'));
      expect(calls).toEqual(['queued', 'queued']);
      expect(app.seen).toEqual([]);
    });

    it('should 409 a location remove in the older draft syntax sent as application/json-patch+json, which a service may apply', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'queued', '[{"remove": "/locations/0"}]', 'application/json-patch+json');
      expect(res.status).toBe(409);
      expect((res.body as Buffer).toString('utf8')).toBe(conflictText('remove', 'queued'));
      expect(calls).toEqual(['queued', 'queued']);
      expect(app.seen).toEqual([]);
    });

    it.each(['GET', 'PUT', 'POST', 'DELETE'] as const)('should 200 from the handler for %s /v2/images/{id} in a patch media type, with no lookup', async (method) => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const verb = ({ GET: 'get', PUT: 'put', POST: 'post', DELETE: 'delete' } as const)[method];
      const res = await request(app.url)[verb]('/v2/images/queued')
        .set('Content-Type', V21)
        .send(Buffer.from(REMOVE_0))
        .buffer(true)
        .parse(rawBody);
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect((res.body as Buffer).toString('utf8')).toBe(REMOVE_0);
      expect(calls).toEqual([]);
      expect(app.seen).toEqual([{ method, url: '/v2/images/queued', contentType: V21, body: Buffer.from(REMOVE_0) }]);
    });

    it('should 200 from the handler for a PATCH of another resource, with no lookup', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await request(app.url).patch('/v2/images/queued/members/p1').set('Content-Type', V21).send(Buffer.from(REMOVE_0)).buffer(true).parse(rawBody);
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect((res.body as Buffer).toString('utf8')).toBe(REMOVE_0);
      expect(calls).toEqual([]);
    });

    it('should 200 with the exact bytes and no lookup for a patch without location ops', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const body = Buffer.from('[{"op": "replace", "path": "/name", "value": "Ünïcødé ☃ 🚀 \\u00e9"}, {"op": "add", "path": "/tags", "value": ["x"]}]  \r\n\t ', 'utf8');
      const res = await patch(app, 'saving', body);
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect(res.headers['content-length']).toBe(String(body.length));
      expect(res.body).toEqual(body);
      expect(calls).toEqual([]);
      expect(app.seen).toEqual([{ method: 'PATCH', url: '/v2/images/saving', contentType: V21, body }]);
    });

    it('should 200 with no lookup for the empty patch []', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'saving', '[]');
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect((res.body as Buffer).toString('utf8')).toBe('[]');
      expect(calls).toEqual([]);
    });

    it('should 200 with the exact bytes for an allowed location patch', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const body = Buffer.from(
        `[{"op": "add", "path": "/locations/-", "value": {"url": "http://127.0.0.1:1/\u00e9t\u00e9", "metadata": {"note": "snö ☃"}}}, {"op": "remove", "path": "/locations/0"}]\n  `,
        'utf8',
      );
      const res = await patch(app, 'active', body);
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect(res.headers['content-length']).toBe(String(body.length));
      expect(res.body).toEqual(body);
      expect(calls).toEqual(['active', 'active']);
      expect(app.seen).toEqual([{ method: 'PATCH', url: '/v2/images/active', contentType: V21, body }]);
    });

    it('should 200 with the exact bytes of a chunked body split inside a UTF-8 character', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const whole = Buffer.from('[{"op": "add", "path": "/locations/1", "value": {"url": "http://127.0.0.1:1/☃", "metadata": {}}}]   ', 'utf8');
      const cut = whole.indexOf(Buffer.from('☃')) + 1; // in the middle of the snowman's three bytes
      const chunks = [whole.subarray(0, 10), whole.subarray(10, cut), whole.subarray(cut)];
      const res = await chunkedRequest(app.url, '/v2/images/active', { 'Content-Type': V21 }, chunks);
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect(res.headers['content-length']).toBe(String(whole.length));
      expect(res.body).toEqual(whole);
      expect(calls).toEqual(['active', 'active']);
      expect(app.seen).toEqual([{ method: 'PATCH', url: '/v2/images/active', contentType: V21, body: whole }]);
    });

    it('should 200 from the handler when the lookup says the caller may not see the image', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup });
      const res = await patch(app, 'hidden', REMOVE_0);
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect((res.body as Buffer).toString('utf8')).toBe(REMOVE_0);
      expect(calls).toEqual(['hidden']);
      expect(app.seen).toHaveLength(1);
    });
  });

  describe('body size limit', () => {
    const big = Buffer.from(JSON.stringify([{ op: 'remove', path: '/locations/0' }, { op: 'replace', path: '/name', value: 'x'.repeat(80) }]));
    const body413 = plain('413 Request Entity Too Large', 'The request body is larger than 64 bytes.');

    it('should 413 for a body over the limit announced by Content-Length', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup, limit: 64 });
      const res = await patch(app, 'active', big);
      expect(res.status).toBe(413);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.headers['connection']).toBe('close');
      expect(res.headers['content-length']).toBe(String(body413.length));
      expect((res.body as Buffer).toString('utf8')).toBe(body413);
      expect(calls).toEqual([]);
      expect(app.seen).toEqual([]);
    });

    it('should 413 for a chunked body that grows over the limit', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const app = await startApp(factory, { lookup, limit: 64 });
      const chunks = [big.subarray(0, 40), big.subarray(40, 80), big.subarray(80)];
      const res = await chunkedRequest(app.url, '/v2/images/active', { 'Content-Type': V21 }, chunks);
      expect(res.status).toBe(413);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(res.headers['connection']).toBe('close');
      expect(res.body.toString('utf8')).toBe(body413);
      expect(calls).toEqual([]);
      expect(app.seen).toEqual([]);
    });

    it('should 200 for a body of exactly the limit', async () => {
      const { lookup } = fakeLookup(IMAGES);
      const body = Buffer.from(`${REMOVE_0}${' '.repeat(64 - REMOVE_0.length)}`);
      expect(body.length).toBe(64);
      const app = await startApp(factory, { lookup, limit: 64 });
      const res = await patch(app, 'active', body);
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect(res.body).toEqual(body);
    });
  });

  describe('the image lookup over HTTP (httpImageLookup)', () => {
    const TOKEN = 'gAAAAABm-Xy_z0/9+token==';
    const lookupAt = (url: string, timeout = 2000) => httpImageLookup({ url, timeout, agent: upstreamAgent });

    it('should 409 when the upstream says the image is queued, asking it with the caller token', async () => {
      const app = await startApp(factory, { lookup: lookupAt(upstreamUrl) });
      const res = await patch(app, 'queued', REMOVE_0).set('X-Auth-Token', TOKEN).set('X-Openstack-Request-Id', 'req-42');
      expect(res.status).toBe(409);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(conflictText('remove', 'queued'));
      // Once to see that the caller may see the image, once within the change's turn.
      expect(upstreamSeen).toHaveLength(2);
      expect(upstreamSeen[1]).toEqual(upstreamSeen[0]);
      expect(upstreamSeen[0]?.method).toBe('GET');
      expect(upstreamSeen[0]?.url).toBe('/v2/images/queued');
      expect(upstreamSeen[0]?.headers['x-auth-token']).toBe(TOKEN);
      expect(upstreamSeen[0]?.headers['x-openstack-request-id']).toBe('req-42');
      expect(app.seen).toEqual([]);
    });

    it('should 200 from the handler when the upstream image allows the change, forwarding Authorization unchanged', async () => {
      const app = await startApp(factory, { lookup: lookupAt(upstreamUrl) });
      const res = await patch(app, 'active', REMOVE_0).set('Authorization', 'Bearer abc.DEF/ghi').set('X-Auth-Token', TOKEN);
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect((res.body as Buffer).toString('utf8')).toBe(REMOVE_0);
      expect(upstreamSeen.map((r) => [r.method, r.url, r.headers['authorization'], r.headers['x-auth-token']])).toEqual([
        ['GET', '/v2/images/active', 'Bearer abc.DEF/ghi', TOKEN],
        ['GET', '/v2/images/active', 'Bearer abc.DEF/ghi', TOKEN],
      ]);
    });

    it('should 403 when the upstream image has one location', async () => {
      const app = await startApp(factory, { lookup: lookupAt(upstreamUrl) });
      const res = await patch(app, 'single', REMOVE_0).set('X-Auth-Token', TOKEN);
      expect(res.status).toBe(403);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe('403 Forbidden\n\nAccess was denied to this resource.\n\n Cannot remove last location in the image.  ');
    });

    it.each(['gone', 'unauthorized', 'forbidden'])('should 200 from the handler when the upstream answers the lookup of %s with 4xx', async (id) => {
      const app = await startApp(factory, { lookup: lookupAt(upstreamUrl) });
      const res = await patch(app, id, REMOVE_0).set('X-Auth-Token', TOKEN);
      expect(res.status).toBe(200);
      expect(res.headers['x-backing']).toBe('echo');
      expect((res.body as Buffer).toString('utf8')).toBe(REMOVE_0);
      expect(upstreamSeen.map((r) => r.url)).toEqual([`/v2/images/${id}`]);
      expect(app.seen).toEqual([{ method: 'PATCH', url: `/v2/images/${id}`, contentType: V21, body: Buffer.from(REMOVE_0) }]);
    });

    it.each([
      ['the upstream answers 500', 'broken', 'The image service answered 500 when asked for the image status.'],
      ['the upstream answers garbage', 'garbage', 'The image service did not answer with an image document.'],
      ['the upstream answers JSON that is not an image', 'not-an-image', 'The image service did not answer with an image document.'],
    ])('should 502 when %s', async (_name, id, message) => {
      const app = await startApp(factory, { lookup: lookupAt(upstreamUrl) });
      const res = await patch(app, id, REMOVE_0).set('X-Auth-Token', TOKEN);
      expect(res.status).toBe(502);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(plain('502 Bad Gateway', message));
      expect(app.seen).toEqual([]);
    });

    it('should 502 when the upstream refuses the connection', async () => {
      const closed = http.createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const { port } = closed.address() as AddressInfo;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const app = await startApp(factory, { lookup: lookupAt(`http://127.0.0.1:${port}`) });
      const res = await patch(app, 'active', REMOVE_0).set('Accept', 'application/json');
      const body =
        '{"message": "The image service could not be reached (ECONNREFUSED).<br /><br />\\n\\n\\n", "code": "502 Bad Gateway", "title": "Bad Gateway"}';
      expect(res.status).toBe(502);
      expect(res.headers['content-type']).toBe('application/json');
      expect((res.body as Buffer).toString('utf8')).toBe(body);
      expect(app.seen).toEqual([]);
    });

    it('should 503 when the upstream says it is unavailable', async () => {
      const app = await startApp(factory, { lookup: lookupAt(upstreamUrl) });
      const res = await patch(app, 'unavailable', REMOVE_0);
      expect(res.status).toBe(503);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(plain('503 Service Unavailable', 'The image service is unavailable, so the image status could not be checked.'));
      expect(app.seen).toEqual([]);
    });

    it('should 502 when the upstream does not answer within the lookup timeout', async () => {
      const app = await startApp(factory, { lookup: lookupAt(upstreamUrl, 200) });
      const started = Date.now();
      const res = await patch(app, 'hang', REMOVE_0);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(res.status).toBe(502);
      expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((res.body as Buffer).toString('utf8')).toBe(plain('502 Bad Gateway', 'The image service did not answer within 200 ms when asked for the image status.'));
      expect(app.seen).toEqual([]);
    });

    it('should 409 when the lookup option is the upstream URL itself', async () => {
      const app = await startApp(factory, { lookup: upstreamUrl });
      const res = await patch(app, 'queued', REMOVE_0).set('X-Auth-Token', TOKEN);
      expect(res.status).toBe(409);
      expect((res.body as Buffer).toString('utf8')).toBe(conflictText('remove', 'queued'));
      expect(upstreamSeen.map((r) => [r.url, r.headers['x-auth-token']])).toEqual([
        ['/v2/images/queued', TOKEN],
        ['/v2/images/queued', TOKEN],
      ]);
    });
  });

  describe('the race the spec names (ours)', () => {
    it('should 409 saving at once when removing a location of an image whose upload is in flight, then judge normally', async () => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const gate = deferred();
      const app = await startApp(factory, { lookup }, { uploadGate: () => gate.promise });

      let uploadDone = false;
      const uploading = request(app.url)
        .put('/v2/images/active/file')
        .set('Content-Type', 'application/octet-stream')
        .send(FIXTURE)
        .buffer(true)
        .parse(rawBody)
        .then((res) => {
          uploadDone = true;
          return res;
        });
      while (!app.events.includes('upload:start')) await sleep(5);

      const refused = await patch(app, 'active', REMOVE_0);
      expect(uploadDone).toBe(false);
      expect(refused.status).toBe(409);
      expect(refused.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((refused.body as Buffer).toString('utf8')).toBe(conflictText('remove', 'saving'));
      // The upload's lookup, and the change's: both callers may see the image.
      expect(calls).toEqual(['active', 'active']);

      // Another image is not concerned: looked up, its turn taken, looked up again.
      const other = await patch(app, 'queued', '[{"op": "add", "path": "/locations/-", "value": {"url": "http://127.0.0.1:1/x", "metadata": {}}}]');
      expect(other.status).toBe(200);
      expect(calls).toEqual(['active', 'active', 'queued', 'queued']);

      gate.resolve();
      const uploaded = await uploading;
      expect(uploaded.status).toBe(204);
      expect(uploaded.headers['x-backing']).toBe('upload');
      expect(uploaded.body).toEqual(Buffer.alloc(0));

      const judged = await patch(app, 'active', REMOVE_0);
      expect(judged.status).toBe(200);
      expect(judged.headers['x-backing']).toBe('echo');
      expect((judged.body as Buffer).toString('utf8')).toBe(REMOVE_0);
      expect(calls).toEqual(['active', 'active', 'queued', 'queued', 'active', 'active']);
      expect(app.seen.map((s) => [s.method, s.url, s.body.toString('utf8')])).toEqual([
        ['PUT', '/v2/images/active/file', FIXTURE.toString()],
        ['PATCH', '/v2/images/queued', '[{"op": "add", "path": "/locations/-", "value": {"url": "http://127.0.0.1:1/x", "metadata": {}}}]'],
        ['PATCH', '/v2/images/active', REMOVE_0],
      ]);
    });

    it('should hold an upload until the pending location change of its image is answered (200)', async () => {
      const lookupStarted = deferred();
      const lookupGate = deferred();
      // The change's second lookup, made within its turn, waits for the gate.
      let lookups = 0;
      const app = await startApp(factory, {
        lookup: async (id) => {
          app.events.push(`lookup:${id}`);
          if (++lookups === 2) {
            lookupStarted.resolve();
            await lookupGate.promise;
          }
          return IMAGES[id] ?? null;
        },
      });

      const changing = patch(app, 'active', REMOVE_0).then((res) => res);
      await lookupStarted.promise;
      const uploading = request(app.url).put('/v2/images/active/file').send(FIXTURE).buffer(true).parse(rawBody).then((res) => res);
      await sleep(150);
      expect(app.events).toEqual(['lookup:active', 'lookup:active', 'lookup:active']);

      lookupGate.resolve();
      const changed = await changing;
      const uploaded = await uploading;
      expect(changed.status).toBe(200);
      expect(changed.headers['x-backing']).toBe('echo');
      expect((changed.body as Buffer).toString('utf8')).toBe(REMOVE_0);
      expect(uploaded.status).toBe(204);
      expect(uploaded.headers['x-backing']).toBe('upload');
      expect(uploaded.body).toEqual(Buffer.alloc(0));
      expect(app.events).toEqual(['lookup:active', 'lookup:active', 'lookup:active', 'handler:PATCH', 'finish:PATCH', 'upload:start', 'upload:finish']);
    });

    it('should hold an upload until the pending location change of its image is refused (409)', async () => {
      const lookupStarted = deferred();
      const lookupGate = deferred();
      // The change's second lookup, made within its turn, waits for the gate.
      let lookups = 0;
      const app = await startApp(factory, {
        lookup: async (id) => {
          app.events.push(`lookup:${id}`);
          if (++lookups === 2) {
            lookupStarted.resolve();
            await lookupGate.promise;
          }
          return IMAGES[id] ?? null;
        },
      });

      const changing = patch(app, 'queued', REMOVE_0).then((res) => res);
      await lookupStarted.promise;
      const uploading = request(app.url).put('/v2/images/queued/file').send(FIXTURE).buffer(true).parse(rawBody).then((res) => {
        app.events.push('upload:answered');
        return res;
      });
      await sleep(150);
      expect(app.events).toEqual(['lookup:queued', 'lookup:queued', 'lookup:queued']);

      lookupGate.resolve();
      const changed = await changing;
      app.events.push('change:answered');
      const uploaded = await uploading;
      expect(changed.status).toBe(409);
      expect(changed.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((changed.body as Buffer).toString('utf8')).toBe(conflictText('remove', 'queued'));
      expect(uploaded.status).toBe(204);
      expect(uploaded.headers['x-backing']).toBe('upload');
      expect(app.events.indexOf('upload:start')).toBeGreaterThan(app.events.indexOf('lookup:queued'));
      expect(app.events.filter((e) => e.startsWith('upload:'))).toEqual(['upload:start', 'upload:finish', 'upload:answered']);
      expect(app.seen.map((s) => [s.method, s.url])).toEqual([['PUT', '/v2/images/queued/file']]);
    });

    it.each([
      ['PUT', 'stage'],
      ['POST', 'import'],
    ] as const)('should 409 saving at once when adding a location while %s /v2/images/{id}/%s is in flight', async (method, kind) => {
      const { lookup, calls } = fakeLookup(IMAGES);
      const gate = deferred();
      const app = await startApp(factory, { lookup }, { uploadGate: () => gate.promise });
      const started = request(app.url);
      const uploading = (method === 'PUT' ? started.put(`/v2/images/queued/${kind}`) : started.post(`/v2/images/queued/${kind}`))
        .set('Content-Type', 'application/octet-stream')
        .send(FIXTURE)
        .buffer(true)
        .parse(rawBody)
        .then((res) => res);
      while (!app.events.includes('upload:start')) await sleep(5);

      const refused = await patch(app, 'queued', JSON.stringify([{ op: 'add', path: '/locations/-', value: LOCATION }]));
      expect(refused.status).toBe(409);
      expect(refused.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect((refused.body as Buffer).toString('utf8')).toBe(conflictText('add', 'saving'));
      expect(calls).toEqual(['queued', 'queued']);

      gate.resolve();
      const uploaded = await uploading;
      expect(uploaded.status).toBe(204);
      expect(uploaded.headers['x-backing']).toBe('upload');
      expect(app.seen.map((s) => [s.method, s.url])).toEqual([[method, `/v2/images/queued/${kind}`]]);
    });

    it('should 200 at once an upload of another image while a location change is pending', async () => {
      const lookupStarted = deferred();
      const lookupGate = deferred();
      let lookups = 0;
      const app = await startApp(factory, {
        lookup: async (id) => {
          if (++lookups === 2) {
            lookupStarted.resolve();
            await lookupGate.promise;
          }
          return IMAGES[id] ?? null;
        },
      });
      const changing = patch(app, 'active', REMOVE_0).then((res) => res);
      await lookupStarted.promise;
      const uploaded = await request(app.url).put('/v2/images/queued/file').send(FIXTURE).buffer(true).parse(rawBody);
      expect(uploaded.status).toBe(204);
      expect(uploaded.headers['x-backing']).toBe('upload');
      lookupGate.resolve();
      const changed = await changing;
      expect(changed.status).toBe(200);
      expect((changed.body as Buffer).toString('utf8')).toBe(REMOVE_0);
    });
  });
});

describe('1. Location changes: locationGuard options', () => {
  const { lookup } = fakeLookup(IMAGES);

  it('should throw a TypeError at construction for an unknown option', () => {
    expect(() => locationGuard({ lookup, lmit: 10 } as unknown as LocationGuardOptions)).toThrow(new TypeError("locationGuard: unknown option 'lmit'"));
  });

  it.each<[string, unknown]>([
    ['0', 0],
    ['-1', -1],
    ['1.5', 1.5],
    ['"1024"', '1024'],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
  ])('should throw a TypeError at construction for limit %s', (_name, limit) => {
    expect(() => locationGuard({ lookup, limit } as unknown as LocationGuardOptions)).toThrow(
      new TypeError("locationGuard: option 'limit' must be a whole number of bytes, at least 1"),
    );
  });

  it("should throw a TypeError naming the key for a misspelt option (showMultipleLocatoins)", () => {
    expect(() => locationGuard({ lookup: async () => null, showMultipleLocatoins: false } as unknown as LocationGuardOptions)).toThrow(
      new TypeError("locationGuard: unknown option 'showMultipleLocatoins'"),
    );
  });

  it('should throw a TypeError at construction when lookup is missing', () => {
    expect(() => locationGuard({} as unknown as LocationGuardOptions)).toThrow(TypeError);
    expect(() => locationGuard({} as unknown as LocationGuardOptions)).toThrow(/^locationGuard: option 'lookup' is required \(a function/);
  });

  it('should throw a TypeError at construction when lookup is neither a function nor a URL', () => {
    expect(() => locationGuard({ lookup: 42 } as unknown as LocationGuardOptions)).toThrow(/option 'lookup' must be a function/);
    expect(() => locationGuard({ lookup: 'not a url' })).toThrow(TypeError);
    expect(() => locationGuard({ lookup: 'ftp://127.0.0.1/' })).toThrow(TypeError);
  });

  it('should throw a TypeError at construction for options that are not an object', () => {
    expect(() => locationGuard(null as unknown as LocationGuardOptions)).toThrow(new TypeError('locationGuard: options must be an object'));
  });

  it('should throw a TypeError at construction for a non-boolean showMultipleLocations or a store that is not one', () => {
    expect(() => locationGuard({ lookup, showMultipleLocations: 'no' } as unknown as LocationGuardOptions)).toThrow(
      new TypeError("locationGuard: option 'showMultipleLocations' must be true or false"),
    );
    expect(() => locationGuard({ lookup, store: {} } as unknown as LocationGuardOptions)).toThrow(
      new TypeError("locationGuard: option 'store' must be a Store (acquire, renew, release, local)"),
    );
  });

  it('should build a named middleware with valid options', () => {
    const guard = locationGuard({ lookup, limit: 10, showMultipleLocations: false, store: new MemoryStore() });
    expect(typeof guard).toBe('function');
    expect(guard.name).toBe('locationGuard');
  });
});
