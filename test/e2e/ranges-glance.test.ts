/**
 * BEHAVIOUR.md §2.3 and §2.4 against the real Glance 25, live:
 *
 * - an active image of zero bytes, downloaded from Glance and, with the same requests, from every
 *   mode of the suite: serveImage mounted in an Express app, the demo (the built CLI), and the
 *   sidecar (the built CLI) in front of that same Glance. Status, the headers that matter and the
 *   body bytes must be Glance's, apart from the headers the suite adds (ours);
 * - an image whose data is at an http:// location (Glance's http store, no random access): Glance
 *   answers a range with 400, the sidecar in front of it with the 206.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { glanceErrorHandler } from '../../lib/errors';
import { serveImage } from '../../lib/ranges/serve';
import { startRealGlance, type RealGlance } from '../helpers/glance';
import { send as request, type Answer as Reply } from '../helpers/http';
import { FIXTURE, startBlobServer, startCli, startDemo, type BlobServer, type Demo, type RunningProcess } from '../helpers/processes';

const EMPTY_MD5 = 'd41d8cd98f00b204e9800998ecf8427e';
const V21 = 'application/openstack-images-v2.1-json-patch';
const DEPRECATION_HEADERS = ['deprecation', 'link', 'warning'];

/** A new image through `base`: with `data` uploaded, or at `url`. */
async function makeImage(base: string, data: { bytes?: Buffer; url?: string }): Promise<string> {
  const created = await request(base, 'POST', '/v2/images', { 'content-type': 'application/json' }, JSON.stringify({ name: 'r', disk_format: 'raw', container_format: 'bare' }));
  expect(created.status).toBe(201);
  const { id } = JSON.parse(created.body.toString()) as { id: string };
  if (data.bytes) {
    expect((await request(base, 'PUT', `/v2/images/${id}/file`, { 'content-type': 'application/octet-stream', 'content-length': String(data.bytes.length) }, data.bytes)).status).toBe(204);
  } else {
    const ops = JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: data.url, metadata: {} } }]);
    expect((await request(base, 'PATCH', `/v2/images/${id}`, { 'content-type': V21 }, ops)).status).toBe(200);
  }
  const image = JSON.parse((await request(base, 'GET', `/v2/images/${id}`)).body.toString()) as { status: string; size: number };
  expect(image.status).toBe('active');
  return id;
}

/** serveImage mounted in an Express app, over one image of zero bytes. */
function startMounted(): Promise<{ url: string; close: () => Promise<void> }> {
  const app = express();
  app.get(
    '/v2/images/:id/file',
    serveImage({
      source: () => ({
        size: 0,
        checksum: EMPTY_MD5,
        open: () => {
          throw new Error('an image of zero bytes is never opened');
        },
      }),
    }),
  );
  app.use(glanceErrorHandler());
  const server = http.createServer(app);
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

let glance: RealGlance;
let sidecar: RunningProcess;
let demo: Demo;
let mounted: { url: string; close: () => Promise<void> };
let blobs: BlobServer;
/** The zero-byte image in Glance (also what the sidecar serves) and in the demo. */
let glanceEmpty: string;
let demoEmpty: string;

beforeAll(async () => {
  [glance, demo, mounted, blobs] = await Promise.all([startRealGlance(), startDemo(), startMounted(), startBlobServer()]);
  sidecar = await startCli(['proxy', '--upstream', glance.url, '--port', '0', '--host', '127.0.0.1']);
  [glanceEmpty, demoEmpty] = await Promise.all([makeImage(glance.url, { bytes: Buffer.alloc(0) }), makeImage(demo.url, { bytes: Buffer.alloc(0) })]);
}, 180_000);

afterAll(async () => {
  await Promise.all([sidecar?.stop(), demo?.close(), mounted?.close(), blobs?.close()]);
  await glance?.stop();
}, 60_000);

/** Each mode of the suite, with the path of its zero-byte image. */
const modes = (): [string, string, string][] => [
  ['serveImage mounted', mounted.url, '/v2/images/any/file'],
  ['the demo', demo.url, `/v2/images/${demoEmpty}/file`],
  ['the sidecar in front of Glance', sidecar.url, `/v2/images/${glanceEmpty}/file`],
];

/** Glance's answer to a GET of its zero-byte image with `headers`. */
const fromGlance = (headers: Record<string, string>) => request(glance.url, 'GET', `/v2/images/${glanceEmpty}/file`, headers);

/** The suite's answer is Glance's: status, type, length, checksum and bytes; the rest is ours. */
function expectGlances(ours: Reply, theirs: Reply, legacy: boolean): void {
  expect(ours.status).toBe(theirs.status);
  expect(ours.headers['content-type']).toBe(theirs.headers['content-type']);
  expect(ours.headers['content-length']).toBe(theirs.headers['content-length']);
  expect(ours.headers['content-md5']).toBe(theirs.headers['content-md5']);
  expect(ours.body.equals(theirs.body)).toBe(true);
  // Ours: a 416 says how large the image is; data has Accept-Ranges and an ETag.
  expect(theirs.headers['content-range']).toBeUndefined();
  if (theirs.status === 416) expect(ours.headers['content-range']).toBe('bytes */0');
  else expect(ours.headers['content-range']).toBeUndefined();
  if (theirs.status === 200) {
    expect(ours.headers['accept-ranges']).toBe('bytes');
    expect(ours.headers['etag']).toBe(`"${EMPTY_MD5}"`);
  }
  for (const name of DEPRECATION_HEADERS) {
    expect(theirs.headers[name]).toBeUndefined();
    expect(ours.headers[name] !== undefined).toBe(legacy);
  }
}

const ASKS: [string, Record<string, string>][] = [
  ['no range', {}],
  ['Range: bytes=0-', { range: 'bytes=0-' }],
  ['Range: bytes=0-0', { range: 'bytes=0-0' }],
  ['Range: bytes=5-9', { range: 'bytes=5-9' }],
  ['Range: bytes=-0', { range: 'bytes=-0' }],
  ['Range: bytes=abc', { range: 'bytes=abc' }],
  ['Range: bytes=5-3', { range: 'bytes=5-3' }],
  ['Range: bytes=0-1,2-3', { range: 'bytes=0-1,2-3' }],
  ['Content-Range: bytes 0-0/*', { 'content-range': 'bytes 0-0/*' }],
  ['Content-Range: bytes 0-5/10', { 'content-range': 'bytes 0-5/10' }],
  ['Content-Range: bytes 1-2', { 'content-range': 'bytes 1-2' }],
];

describe('2. Image data: an active image of zero bytes, as Glance answers it', () => {
  it('should be served by Glance as measured: 200, octet-stream, Content-Length 0, Content-MD5, no body', async () => {
    const theirs = await fromGlance({});
    expect(theirs.status).toBe(200);
    expect(theirs.headers['content-type']).toBe('application/octet-stream');
    expect(theirs.headers['content-length']).toBe('0');
    expect(theirs.headers['content-md5']).toBe(EMPTY_MD5);
    expect(theirs.body.length).toBe(0);
    const ranged = await fromGlance({ range: 'bytes=0-', accept: 'text/plain' });
    expect(ranged.status).toBe(416);
    expect(ranged.body.toString()).toBe(
      '416 Request Range Not Satisfiable\n\nThe Range requested is not available.\n\n Invalid start position in Range header. Start position MUST be in the inclusive range [0, -1].  ',
    );
  });

  for (const accept of ['text/plain', 'application/json', 'text/html']) {
    describe(`Accept: ${accept}`, () => {
      it.each(ASKS)('should answer %s as Glance does, in every mode', async (_name, headers) => {
        const asked = { accept, ...headers };
        const theirs = await fromGlance(asked);
        for (const [, base, path] of modes()) {
          const ours = await request(base, 'GET', path, asked);
          expectGlances(ours, theirs, 'content-range' in headers);
        }
      });
    });
  }

  it('should answer bytes=-1 with a 416 in every mode (ours: Glance sends a 206 "bytes 0--1/0")', async () => {
    const theirs = await fromGlance({ range: 'bytes=-1', accept: 'text/plain' });
    expect(theirs.status).toBe(206);
    expect(theirs.headers['content-range']).toBe('bytes 0--1/0');
    const startPosition = await fromGlance({ range: 'bytes=0-', accept: 'text/plain' });
    for (const [, base, path] of modes()) {
      const ours = await request(base, 'GET', path, { range: 'bytes=-1', accept: 'text/plain' });
      expect(ours.status).toBe(416);
      expect(ours.headers['content-range']).toBe('bytes */0');
      expect(ours.body.equals(startPosition.body)).toBe(true);
    }
  });

  it.each(ASKS.filter(([name]) => name !== 'Range: bytes=0-1,2-3'))('should answer HEAD with %s with the headers of the GET and no body (ours: Glance 405)', async (_name, headers) => {
    const asked = { accept: 'text/plain', ...headers };
    expect((await request(glance.url, 'HEAD', `/v2/images/${glanceEmpty}/file`, asked)).status).toBe(405);
    const theirs = await fromGlance(asked);
    for (const [, base, path] of modes()) {
      const ours = await request(base, 'HEAD', path, asked);
      expect(ours.status).toBe(theirs.status);
      expect(ours.headers['content-type']).toBe(theirs.headers['content-type']);
      expect(ours.headers['content-length']).toBe(theirs.headers['content-length']);
      expect(ours.headers['content-md5']).toBe(theirs.headers['content-md5']);
      expect(ours.body.length).toBe(0);
    }
  });
});

describe('2. Image data: an http:// location, a store without random access', () => {
  let id: string;
  beforeAll(async () => {
    id = await makeImage(glance.url, { url: blobs.put('ranges-glance', FIXTURE) });
  });

  it.each([
    ['bytes=3-9', 3, 9, 'Offset: 3, length: 7'],
    ['bytes=-5', 27, 31, 'Offset: 27, length: 5'],
    ['bytes=12-', 12, 31, 'Offset: 12, length: 20'],
  ])('should 206 Range: %s through the sidecar where Glance answers 400 (ours)', async (range, first, last, said) => {
    const theirs = await request(glance.url, 'GET', `/v2/images/${id}/file`, { range, accept: 'text/plain' });
    expect(theirs.status).toBe(400);
    expect(theirs.body.toString()).toBe(`400 Bad Request\n\nGetting images randomly from this store is not supported. ${said}\n\n   `);
    const ours = await request(sidecar.url, 'GET', `/v2/images/${id}/file`, { range, accept: 'text/plain' });
    expect(ours.status).toBe(206);
    expect(ours.headers['content-type']).toBe('application/octet-stream');
    expect(ours.headers['content-range']).toBe(`bytes ${first}-${last}/32`);
    expect(ours.headers['content-length']).toBe(String(last - first + 1));
    expect(ours.body.equals(FIXTURE.subarray(first, last + 1))).toBe(true);
  });

  it('should 206 the legacy Content-Range request form through the sidecar where Glance answers 400 (ours)', async () => {
    const theirs = await request(glance.url, 'GET', `/v2/images/${id}/file`, { 'content-range': 'bytes 3-9/*', accept: 'text/plain' });
    expect(theirs.status).toBe(400);
    const ours = await request(sidecar.url, 'GET', `/v2/images/${id}/file`, { 'content-range': 'bytes 3-9/*', accept: 'text/plain' });
    expect(ours.status).toBe(206);
    expect(ours.headers['content-range']).toBe('bytes 3-9/32');
    expect(ours.headers['deprecation']).toBe('@1487721600');
    expect(ours.body.toString()).toBe('3456789');
  });

  it('should send the whole image without a range, as Glance does', async () => {
    const [theirs, ours] = await Promise.all([request(glance.url, 'GET', `/v2/images/${id}/file`), request(sidecar.url, 'GET', `/v2/images/${id}/file`)]);
    expect(theirs.status).toBe(200);
    expect(ours.status).toBe(200);
    expect(ours.headers['content-length']).toBe('32');
    expect(ours.body.equals(theirs.body)).toBe(true);
    expect(ours.body.equals(FIXTURE)).toBe(true);
  });
});
