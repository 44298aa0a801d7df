/**
 * The request id and the access line through the sidecar's listener (createSidecar), both
 * ways: reads forwarded around Express get the id among the upstream's headers (written as one
 * flat list), everything else gets it set before the suite answers. An upstream's own id wins on
 * the answer and is logged as `res.upstreamRequestId`; the line has the bytes either way.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createSidecar } from '../../server/sidecar/app';
import { createLogger } from '../../server/observe/logs';

const UPSTREAM_ID = 'req-11111111-2222-4333-8444-555555555555';
const ID = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let upstream: http.Server;
let sidecar: http.Server;
let base: string;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    const body = JSON.stringify({ path: req.url });
    const own = req.url?.includes('own-id') ? { 'X-Openstack-Request-Id': UPSTREAM_ID } : {};
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...own }).end(body);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = createLogger({ destination });
  sidecar = http.createServer(createSidecar({ upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, logger }));
  await new Promise<void>((r) => sidecar.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(sidecar.address() as AddressInfo).port}`;
});

afterAll(async () => {
  sidecar.closeAllConnections();
  upstream.closeAllConnections();
  await Promise.all([new Promise((r) => sidecar.close(r)), new Promise((r) => upstream.close(r))]);
});

/** The access line of the request to `url`, once written. */
async function lineFor(url: string): Promise<Record<string, unknown> | undefined> {
  for (let i = 0; i < 50; i++) {
    const line = lines.find((l) => (l['req'] as { url?: string } | undefined)?.url === url);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

describe('the request id through the sidecar', () => {
  it.each([
    ['a forwarded read', '/v2/images?fast=1'],
    ['a read through the suite', '/versions?through=1'],
  ])('should set a new id on %s whose upstream sends none, and log it with the bytes', async (_what, url) => {
    const res = await fetch(`${base}${url}`);
    const body = await res.text();
    const id = res.headers.get('x-openstack-request-id');
    expect(id).toMatch(ID);
    expect(res.status).toBe(200);
    expect((await lineFor(url))?.['req']).toMatchObject({ id, method: 'GET', url });
    expect((await lineFor(url))?.['res']).toEqual({ statusCode: res.status, bytes: Buffer.byteLength(body) });
  });

  it("should pass the client's own sane id on to the answer", async () => {
    const given = 'req-abcdef01-2345-4678-9abc-def012345678';
    const res = await fetch(`${base}/v2/images?given=1`, { headers: { 'X-Openstack-Request-Id': given } });
    await res.text();
    expect(res.headers.get('x-openstack-request-id')).toBe(given);
    expect((await lineFor('/v2/images?given=1'))?.['req']).toMatchObject({ id: given });
  });

  it.each([
    ['a forwarded read', 'GET', '/v2/images?own-id=1'],
    ['a write through the suite', 'DELETE', '/v2/images/x?own-id=1'],
  ])("should answer %s with the upstream's own id, once, and log ours with it", async (_what, method, url) => {
    const res = await fetch(`${base}${url}`, { method });
    const body = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('x-openstack-request-id')).toBe(UPSTREAM_ID);
    const line = await lineFor(url);
    expect((line?.['req'] as { id: string }).id).toMatch(ID);
    expect(line?.['res']).toEqual({ statusCode: 200, bytes: Buffer.byteLength(body), upstreamRequestId: UPSTREAM_ID });
  });
});
