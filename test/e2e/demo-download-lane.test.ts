/**
 * The demo takes a download spelt `/v2/images/{id}/file` through its middlewares straight to the
 * download handler, without Express's routing (server/demo/app.ts). Every other spelling the
 * service routes to the same handler (`/v2.1/...`, a version in `Accept`, `//`) goes through the
 * router. Both must answer alike: the same status, headers and bytes, for ranges, the legacy
 * form, HEAD, unknown and queued images, bad ids, and requests the guard judges (a GET with a
 * body). Each request is sent through both, on connections of their own, and compared whole.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { send, type Answer } from '../helpers/http';
import { FIXTURE, startCli, type RunningProcess } from '../helpers/processes';

let demo: RunningProcess;
let dataDir: string;
let active: string;
let queued: string;

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'glance-edge-lane-'));
  demo = await startCli(['demo', '--port', '0', '--host', '127.0.0.1', '--data', dataDir, '--max-ranges', '4']);
  const create = async () => {
    const answer = await send(demo.port, 'POST', '/v2/images', { 'Content-Type': 'application/json' }, JSON.stringify({ name: 'lane', disk_format: 'raw', container_format: 'bare' }));
    expect(answer.status).toBe(201);
    return (JSON.parse(answer.body.toString('utf8')) as { id: string }).id;
  };
  active = await create();
  queued = await create();
  const put = await send(demo.port, 'PUT', `/v2/images/${active}/file`, { 'Content-Type': 'application/octet-stream' }, FIXTURE);
  expect(put.status).toBe(204);
}, 30_000);

afterAll(async () => {
  await demo?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** What may differ between two answers to the same request: its id and the time. */
function comparable(answer: Answer): { status: number; headers: Record<string, unknown>; body: string } {
  const headers: Record<string, unknown> = { ...answer.headers };
  delete headers['date'];
  expect(headers['x-openstack-request-id']).toMatch(/^req-[0-9a-f-]{36}$/);
  delete headers['x-openstack-request-id'];
  // multipart/byteranges: a boundary of its own per answer.
  const boundary = /boundary=(\S+)/.exec(String(headers['content-type'] ?? ''))?.[1];
  let body = answer.body.toString('latin1');
  if (boundary !== undefined) {
    headers['content-type'] = String(headers['content-type']).replace(boundary, 'B');
    body = body.split(boundary).join('B');
  }
  return { status: answer.status, headers, body };
}

interface Case {
  readonly name: string;
  readonly method?: string;
  readonly image?: () => string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly query?: string;
}

const CASES: readonly Case[] = [
  { name: 'the whole image' },
  { name: 'a range', headers: { Range: 'bytes=3-9' } },
  { name: 'a suffix range', headers: { Range: 'bytes=-5' } },
  { name: 'an unsatisfiable range', headers: { Range: 'bytes=32-' } },
  { name: 'an invalid Range', headers: { Range: 'bytes=9-3' } },
  { name: 'two ranges (multipart)', headers: { Range: 'bytes=0-1,4-5' } },
  { name: 'too many ranges', headers: { Range: 'bytes=0-0,2-2,4-4,6-6,8-8' } },
  { name: 'the legacy form', headers: { 'Content-Range': 'bytes 12-30/*' } },
  { name: 'a bad legacy form', headers: { 'Content-Range': 'bytes 30-12/*' } },
  { name: 'If-Range with another ETag', headers: { Range: 'bytes=0-9', 'If-Range': '"x"' } },
  { name: 'HEAD', method: 'HEAD' },
  { name: 'HEAD of a range', method: 'HEAD', headers: { Range: 'bytes=0-9' } },
  { name: 'a queued image', image: () => queued, headers: { Range: 'bytes=0-9' } },
  { name: 'an unknown image', image: () => 'a9e0f7b2-3c51-4d8e-9f60-1b2c3d4e5f60' },
  { name: 'an id that is no UUID', image: () => 'not-an-image' },
  { name: 'an id in capitals', image: () => active.toUpperCase(), headers: { Range: 'bytes=0-3' } },
  { name: 'a query string', query: '?x=1&y', headers: { Range: 'bytes=0-3' } },
  { name: 'a GET with a body', headers: { 'Content-Type': 'application/json', 'Content-Length': '8' }, body: '{"a": 1}' },
  { name: 'a GET with a chunked body', headers: { 'Transfer-Encoding': 'chunked' }, body: 'hello' },
  { name: 'an error asked for in text', image: () => 'a9e0f7b2-3c51-4d8e-9f60-1b2c3d4e5f60', headers: { Accept: 'text/plain' } },
];

describe('a download spelt plainly answers as the same download through the router', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const method = c.method ?? 'GET';
    const image = (c.image ?? (() => active))();
    const headers = c.headers ?? {};
    const query = c.query ?? '';
    const plain = await send(demo.port, method, `/v2/images/${image}/file${query}`, headers, c.body);
    // The same route through the router: the version in the path spelt otherwise, or in Accept.
    const routed = await send(demo.port, method, `/v2.1/images/${image}/file${query}`, headers, c.body);
    expect(comparable(plain)).toEqual(comparable(routed));
    if (headers['Accept'] === undefined) {
      const versioned = await send(demo.port, method, `/images/${image}/file${query}`, { ...headers, Accept: 'application/vnd.openstack.images-v2' }, c.body);
      expect(comparable(plain)).toEqual(comparable(versioned));
    }
  });

  it('keeps the connection after an error answer to a GET whose body came with it, as through the router', async () => {
    const answers = async (version: string) => {
      const missing = 'a9e0f7b2-3c51-4d8e-9f60-1b2c3d4e5f60';
      const bytes =
        `GET /${version}/images/${missing}/file HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello` +
        `GET /${version}/images/${active}/file HTTP/1.1\r\nHost: h\r\nRange: bytes=0-3\r\nConnection: close\r\n\r\n`;
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(demo.port, '127.0.0.1', () => socket.write(bytes));
        const chunks: Buffer[] = [];
        socket.on('data', (d: Buffer) => chunks.push(d));
        socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
        socket.on('error', reject);
      });
      return { statuses: raw.match(/HTTP\/1\.1 \d{3}/g), keepAlive: /^HTTP\/1\.1 404[^]*?Connection: keep-alive/m.test(raw), last: raw.endsWith('0123') };
    };
    const plain = await answers('v2');
    expect(plain).toEqual({ statuses: ['HTTP/1.1 404', 'HTTP/1.1 206'], keepAlive: true, last: true });
    expect(await answers('v2.1')).toEqual(plain);
  });

  it('serves the bytes asked for (the lane is taken, and it is right)', async () => {
    const answer = await send(demo.port, 'GET', `/v2/images/${active}/file`, { Range: 'bytes=3-9' });
    expect(answer.status).toBe(206);
    expect(answer.headers['content-range']).toBe('bytes 3-9/32');
    expect(answer.body.equals(FIXTURE.subarray(3, 10))).toBe(true);
  });

  it('logs a download of the lane once, with its request id and status', async () => {
    const agent = `lane-${randomUUID()}`;
    const answer = await send(demo.port, 'GET', `/v2/images/${active}/file`, { Range: 'bytes=0-0', 'User-Agent': agent });
    expect(answer.status).toBe(206);
    const id = answer.headers['x-openstack-request-id'];
    await new Promise((r) => setTimeout(r, 200));
    const lines = demo
      .output()
      .split('\n')
      .filter((l) => l.includes(agent));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ req: { id, method: 'GET', url: `/v2/images/${active}/file` }, res: { statusCode: 206 } });
  });

  it('counts a download of the lane in the metrics', async () => {
    const metric = async () => {
      const text = (await send(demo.port, 'GET', '/metrics')).body.toString('utf8');
      const line = text.split('\n').find((l) => l.startsWith('glance_edge_http_requests_total{') && l.includes('status="206"') && l.includes('method="GET"'));
      return Number(line?.split(' ').pop() ?? 0);
    };
    const before = await metric();
    expect((await send(demo.port, 'GET', `/v2/images/${active}/file`, { Range: 'bytes=0-0' })).status).toBe(206);
    expect(await metric()).toBe(before + 1);
  });
});
