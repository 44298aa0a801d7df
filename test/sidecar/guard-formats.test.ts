/**
 * The sidecar's format lists reach its location guard: a patch that changes locations and sets a
 * disk format is checked against the image schema of the formats the sidecar was given, so a
 * format added there is not refused with the schema's 400 (and a format not in the list is).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSidecar } from '../../server/sidecar/app';

const ID = '11111111-1111-4111-8111-111111111111';
let upstream: http.Server;
let base: string;
const patches: string[] = [];

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.method === 'PATCH') patches.push(body);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ id: ID, status: 'active', size: 3, checksum: null, locations: [{ url: 'http://a/1', metadata: {} }] }));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => upstream.close(r)));

async function patchThrough(sidecar: http.RequestListener, format: string): Promise<{ status: number; body: string }> {
  const server = http.createServer(sidecar);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const body = JSON.stringify([
      { op: 'replace', path: '/disk_format', value: format },
      { op: 'add', path: '/locations/-', value: { url: 'http://a/2', metadata: {} } },
    ]);
    return await new Promise((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'PATCH', path: `/v2/images/${ID}`, headers: { 'Content-Type': 'application/openstack-images-v2.1-json-patch' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

it("should check a patch's values against the sidecar's own format lists", async () => {
  const added = await patchThrough(createSidecar({ upstream: base, diskFormats: { add: ['zfs'] } }) as http.RequestListener, 'zfs');
  expect(added.status).toBe(200);
  expect(patches).toHaveLength(1);
  const refused = await patchThrough(createSidecar({ upstream: base }) as http.RequestListener, 'zfs');
  expect(refused.status).toBe(400);
  expect(refused.body).toContain("Provided object does not match schema 'image': 'zfs' is not one of [");
  expect(patches).toHaveLength(1);
});
