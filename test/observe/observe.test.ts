/**
 * Operability in mount mode: the metrics and log hooks wired into the middlewares of an Express
 * app, as a user mounts them, checked through real requests (supertest): what is counted, with
 * which labels, and which JSON lines are written.
 */
import { Writable } from 'node:stream';
import express from 'express';
import request from 'supertest';
import { glanceError, glanceErrorHandler } from '../../lib/errors';
import type { ImageFacts, ImageLookup } from '../../lib/images/lookup';
import { MemoryStore } from '../../lib/locations/store';
import { locationGuard } from '../../lib/locations/guard';
import { accessLog, createLogger, logLegacyRange, logRefusal, requestId } from '../../server/observe/logs';
import { both, clientName, createMetrics, metricsEndpoint, routeGroup } from '../../server/observe/metrics';
import { serveImage } from '../../lib/ranges/serve';
import { Readable } from 'node:stream';
import http, { type IncomingMessage } from 'node:http';

const V21 = 'application/openstack-images-v2.1-json-patch';
const FIXTURE = Buffer.from('0123456789abcdefghijklmnopqrstuv');
const image = (status: string, locations = 2): ImageFacts => ({ id: status, status, size: 32, checksum: null, locations });

/** Lines written by a logger, parsed. */
function sink() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ destination }) };
}

/** A mount-mode app with everything wired: guard, downloads, metrics, logs. */
function app(lookup: ImageLookup) {
  const metrics = createMetrics();
  const { lines, logger } = sink();
  const store = new MemoryStore();
  metrics.trackUploads(store);
  const a = express();
  a.use(metrics.requests());
  a.use(accessLog(logger));
  a.get('/metrics', metricsEndpoint(metrics.registry));
  a.use(locationGuard({ lookup: metrics.observeLookup(lookup), store, onRefused: both(logRefusal(logger), metrics.onRefused) }));
  a.get(
    '/v2/images/:id/file',
    serveImage({
      source: () => ({ size: 32, checksum: null, open: () => ({ stream: Readable.from([FIXTURE]), offset: 0 }) }),
      deprecation: { onUse: both(logLegacyRange(logger), metrics.onLegacyRange) },
    }),
  );
  a.use((_req: express.Request, res: express.Response) => void res.status(200).json({ ok: true }));
  a.use(glanceErrorHandler());
  return { app: a, metrics, lines, store };
}

const lookupOf = (images: Record<string, ImageFacts>): ImageLookup => async (id) => {
  if (id === 'broken') throw glanceError(502, 'lookup.failed', 'The image service failed.');
  return images[id] ?? null;
};

async function scrape(a: express.Express): Promise<string> {
  const res = await request(a).get('/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  return res.text;
}

describe('metrics', () => {
  it('should count requests by method, route group and status, and 409s by op and image status', async () => {
    const { app: a } = app(lookupOf({ d: image('deactivated'), s: image('saving'), act: image('active') }));
    expect((await request(a).patch('/v2/images/d').set('content-type', V21).send('[{"op":"remove","path":"/locations/0"}]')).status).toBe(409);
    expect((await request(a).patch('/v2/images/d').set('content-type', V21).send('[{"op":"remove","path":"/locations/0"}]')).status).toBe(409);
    expect((await request(a).patch('/v2/images/s').set('content-type', V21).send('[{"op":"add","path":"/locations/-","value":{"url":"http://x/y","metadata":{}}}]')).status).toBe(409);
    expect((await request(a).patch('/v2/images/act').set('content-type', V21).send('[{"op":"remove","path":"/locations/0"}]')).status).toBe(200);
    expect((await request(a).get('/v2/images')).status).toBe(200);
    const text = await scrape(a);
    expect(text).toContain('glance_edge_location_conflicts_total{op="remove",image_status="deactivated"} 2');
    expect(text).toContain('glance_edge_location_conflicts_total{op="add",image_status="saving"} 1');
    expect(text).toContain('glance_edge_http_requests_total{method="PATCH",route="image",status="409"} 3');
    expect(text).toContain('glance_edge_http_requests_total{method="PATCH",route="image",status="200"} 1');
    expect(text).toContain('glance_edge_http_requests_total{method="GET",route="images",status="200"} 1');
    // Two lookups a change: whether the caller may see the image, then its status within the turn.
    expect(text).toMatch(/glance_edge_upstream_latency_seconds_count\{kind="lookup"\} 8\n/);
    expect(text).toContain('nodejs_heap_size_used_bytes'.replace('nodejs', 'glance_edge_nodejs'));
  });

  it('should count lookup failures by type, and not 403s or 400s as conflicts', async () => {
    const { app: a } = app(lookupOf({ q: image('queued', 0) }));
    expect((await request(a).patch('/v2/images/broken').set('content-type', V21).send('[{"op":"remove","path":"/locations/0"}]')).status).toBe(502);
    expect((await request(a).patch('/v2/images/q').set('content-type', V21).send('[{"op":"replace","path":"/locations","value":[]}]')).status).toBe(403);
    const text = await scrape(a);
    expect(text).toContain('glance_edge_lookup_failures_total{type="lookup.failed"} 1');
    expect(text).not.toMatch(/glance_edge_location_conflicts_total\{/);
  });

  it('should count legacy Content-Range requests by client, with at most `legacyClients` names', async () => {
    const metrics = createMetrics({ legacyClients: 2 });
    const a = express();
    a.get('/metrics', metricsEndpoint(metrics.registry));
    a.get('/v2/images/:id/file', serveImage({ source: () => ({ size: 32, checksum: null, open: () => ({ stream: Readable.from([FIXTURE]), offset: 0 }) }), deprecation: { onUse: metrics.onLegacyRange } }));
    for (const ua of ['python-glanceclient/4.1', 'python-glanceclient/3.0', 'curl/8', 'Wget/1.21', 'aria2/1.36', undefined]) {
      const req = request(a).get('/v2/images/x/file').set('content-range', 'bytes 1-2/*');
      const res = await (ua === undefined ? req.unset('User-Agent') : req.set('user-agent', ua));
      expect(res.status).toBe(206);
    }
    const text = await scrape(a);
    expect(text).toContain('glance_edge_legacy_content_range_requests_total{client="python-glanceclient"} 2');
    expect(text).toContain('glance_edge_legacy_content_range_requests_total{client="curl"} 1');
    expect(text).toContain('glance_edge_legacy_content_range_requests_total{client="other"} 3');
  });

  it('should report uploads in flight through the guard', async () => {
    const { app: a, store } = app(lookupOf({}));
    const lease = await store.acquire('img', 'upload', 30_000);
    expect(await scrape(a)).toContain('glance_edge_uploads_in_flight 1');
    if (lease !== 'uploading') await store.release(lease);
    expect(await scrape(a)).toContain('glance_edge_uploads_in_flight 0');
  });

  it.each([
    ['/', 'versions'],
    ['/versions', 'versions'],
    ['/healthz', 'healthz'],
    ['/v2/schemas/image', 'schemas'],
    ['/v2/metadefs/namespaces/OS::Compute::Hypervisor', 'metadefs'],
    ['/v2/images?limit=1', 'images'],
    ['/v2/images/abc', 'image'],
    // Read as the guard reads it: mounted under a prefix, the API's requests reach it without one.
    ['/image-api/v2/images/abc/file', 'other'],
    ['/v2/images/abc/stage', 'image_upload'],
    ['/v2/images/abc/import', 'image_upload'],
    ['/v2/images/abc/actions/deactivate', 'image_action'],
    ['/v2/images/abc/tags/x', 'other'],
    ['/v2/tasks', 'other'],
  ])('should put %s in the route group %s', (url, group) => {
    expect(routeGroup({ url } as IncomingMessage)).toBe(group);
  });

  it.each([
    ['python-glanceclient/4.1.0 keystoneauth1/5.1.2', 'python-glanceclient'],
    ['Wget/1.21.3', 'wget'],
    ['', 'unknown'],
    [undefined, 'unknown'],
    ['<script>', 'unknown'],
    [`${'a'.repeat(100)}/1`, 'a'.repeat(40)],
  ])('should name the client of User-Agent %j %s', (ua, name) => {
    expect(clientName(ua)).toBe(name);
  });

  it("should serve Node's default metrics but the GC histogram, unless gcMetrics is true", async () => {
    const plain = await createMetrics().registry.metrics();
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_heap_space_size_used_bytes', 'nodejs_version_info', 'nodejs_active_handles_total']) {
      expect(plain).toContain(`# TYPE glance_edge_${name} `);
    }
    expect(plain).not.toContain('nodejs_gc_duration_seconds');
    expect(plain).toMatch(/^glance_edge_reclaim_collections_total \d+$/m);
    const withGc = await createMetrics({ gcMetrics: true, prefix: 'gc_' }).registry.metrics();
    expect(withGc).toContain('# TYPE gc_nodejs_gc_duration_seconds histogram');
    expect(withGc).toContain('# TYPE gc_process_cpu_user_seconds_total counter');
    expect(() => createMetrics({ gcMetrics: 'yes' } as never)).toThrow("createMetrics: option 'gcMetrics' must be true or false");
  });

  it('should throw a TypeError for an unknown option or a bad registry', () => {
    expect(() => createMetrics({ legacyclients: 3 } as never)).toThrow("createMetrics: unknown option 'legacyclients'");
    expect(() => createMetrics({ registry: {} as never })).toThrow(TypeError);
  });
});

describe('logs', () => {
  it('should write one access line per request with the request id it sets on the answer', async () => {
    const { app: a, lines } = app(lookupOf({}));
    const res = await request(a).get('/v2/images?limit=1').set('x-auth-token', 'secret-token-1').set('user-agent', 'test-client/1');
    const id = res.headers['x-openstack-request-id'] as string;
    expect(id).toMatch(/^req-[0-9a-f-]{36}$/);
    const access = lines.filter((l) => typeof l['msg'] === 'string' && l['msg'].startsWith('request '));
    expect(access).toEqual([
      {
        level: 'info',
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        name: 'glance-edge',
        req: { id, method: 'GET', url: '/v2/images?limit=1', remoteAddress: expect.stringMatching(/127\.0\.0\.1$/), userAgent: 'test-client/1' },
        res: { statusCode: 200, bytes: 11 },
        responseTime: expect.any(Number),
        msg: 'request completed',
      },
    ]);
    expect(JSON.stringify(lines)).not.toContain('secret-token-1');
  });

  it("should log a 5xx answer at error without a made-up stack, and an upstream's own request id", async () => {
    const { lines, logger } = sink();
    const a = express();
    a.use(accessLog(logger));
    a.get('/broken', (_req, _res, next) => next(glanceError(502, 'upstream.unreachable', 'The image service could not be reached.')));
    a.get('/forwarded', (_req, res) => void res.set('X-Openstack-Request-Id', 'req-upstream-1').status(200).send('ok'));
    a.use(glanceErrorHandler());
    const broken = await request(a).get('/broken');
    expect(broken.status).toBe(502);
    const forwarded = await request(a).get('/forwarded');
    expect(forwarded.headers['x-openstack-request-id']).toBe('req-upstream-1');
    const [errored, completed] = lines.filter((l) => typeof l['msg'] === 'string' && l['msg'].startsWith('request '));
    expect(errored).toMatchObject({ level: 'error', msg: 'request errored', res: { statusCode: 502 } });
    expect(errored).not.toHaveProperty('err');
    expect(completed).toMatchObject({ level: 'info', msg: 'request completed', res: { statusCode: 200, bytes: 2, upstreamRequestId: 'req-upstream-1' } });
    expect((completed?.['req'] as { id: string }).id).toMatch(/^req-[0-9a-f-]{36}$/);
  });

  it('should log a request whose client went away mid-answer at warn, as aborted', async () => {
    const { lines, logger } = sink();
    const a = express();
    a.use(accessLog(logger));
    a.get('/slow', (_req, res) => {
      res.writeHead(200, { 'Content-Length': '1000' });
      res.write('partial');
    });
    const server = a.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => {
      const req = http.get(`http://127.0.0.1:${port}/slow`, (res) => res.once('data', () => req.destroy()));
      req.on('close', () => resolve());
      req.on('error', () => undefined);
    });
    for (let i = 0; i < 50 && !lines.some((l) => l['msg'] === 'request aborted'); i++) await new Promise((r) => setTimeout(r, 10));
    server.close();
    expect(lines.find((l) => l['msg'] === 'request aborted')).toMatchObject({ level: 'warn', req: { method: 'GET', url: '/slow' }, res: { statusCode: 200, bytes: 1000 } });
  });

  it("should take the client's X-Openstack-Request-Id when it is a sane token, and not otherwise", async () => {
    const { app: a } = app(lookupOf({}));
    const given = 'req-11111111-2222-3333-4444-555555555555';
    expect((await request(a).get('/v2/images').set('x-openstack-request-id', given)).headers['x-openstack-request-id']).toBe(given);
    const bad = await request(a).get('/v2/images').set('x-openstack-request-id', 'a b<script>');
    expect(bad.headers['x-openstack-request-id']).toMatch(/^req-[0-9a-f-]{36}$/);
    expect(requestId({ headers: { 'x-openstack-request-id': 'x'.repeat(200) } } as unknown as IncomingMessage)).toMatch(/^req-/);
  });

  it('should write one line per refused location change, with op, image status and the request id', async () => {
    const { app: a, lines } = app(lookupOf({ d: image('deactivated') }));
    const res = await request(a).patch('/v2/images/d').set('content-type', V21).send('[{"op":"replace","path":"/locations","value":[{"url":"http://x/y","metadata":{}}]}]');
    expect(res.status).toBe(409);
    const refused = lines.filter((l) => l['msg'] === 'location change refused');
    expect(refused).toEqual([
      expect.objectContaining({ level: 'info', requestId: res.headers['x-openstack-request-id'], imageId: 'd', status: 409, type: 'location.conflict', op: 'replace', imageStatus: 'deactivated' }),
    ]);
  });

  it('should write one warn line per use of the legacy Content-Range header, and none for Range', async () => {
    const { app: a, lines } = app(lookupOf({}));
    const res = await request(a).get('/v2/images/x/file').set('content-range', 'bytes 1-2/*').set('user-agent', 'python-glanceclient/4.1');
    expect(res.status).toBe(206);
    expect((await request(a).get('/v2/images/x/file').set('range', 'bytes=1-2')).status).toBe(206);
    const warned = lines.filter((l) => l['level'] === 'warn');
    expect(warned).toEqual([
      expect.objectContaining({
        msg: 'deprecated Content-Range request header',
        requestId: res.headers['x-openstack-request-id'],
        client: 'python-glanceclient',
        contentRange: 'bytes 1-2/*',
        url: '/v2/images/x/file',
        uses: 1,
      }),
    ]);
  });
});
