/**
 * BEHAVIOUR.md §1, the race (ours): the registry behind its seam. MemoryStore's leases, and the
 * guard failing closed when its store cannot answer.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { glanceErrorHandler } from '../../lib/errors';
import type { ImageFacts } from '../../lib/images/lookup';
import { locationGuard } from '../../lib/locations/guard';
import { MemoryStore, type Lease, type Store } from '../../lib/locations/store';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function held(lease: Lease | 'uploading'): Lease {
  if (lease === 'uploading') throw new Error('expected a lease');
  return lease;
}

describe('1. Location changes: MemoryStore, the race registry of one process', () => {
  it('should refuse a change of an image while an upload lease of it is held, and not of another image', async () => {
    const store = new MemoryStore();
    const upload = held(await store.acquire('a', 'upload', 30_000));
    expect(await store.acquire('a', 'change', 30_000)).toBe('uploading');
    const other = held(await store.acquire('b', 'change', 30_000));
    expect(store.uploading()).toBe(1);
    await store.release(upload);
    await store.release(other);
    expect(store.uploading()).toBe(0);
    const change = held(await store.acquire('a', 'change', 30_000));
    expect(change.kind).toBe('change');
    await store.release(change);
  });

  it('should give changes of one image their turns in order, and hold an upload until the change before it is released', async () => {
    const store = new MemoryStore();
    const order: string[] = [];
    const first = held(await store.acquire('a', 'change', 30_000));
    const second = store.acquire('a', 'change', 30_000).then((l) => (order.push('second'), l));
    await sleep(10);
    const upload = store.acquire('a', 'upload', 30_000).then((l) => (order.push('upload'), l));
    await sleep(10);
    expect(order).toEqual([]);
    await store.release(first);
    // The second change had waited, and an upload has registered since: it is refused; then the upload goes on.
    expect(await second).toBe('uploading');
    await store.release(held(await upload));
    expect(order).toEqual(['second', 'upload']);
  });

  it('should let a lease run out after its time to live, and renew only a lease still held', async () => {
    const store = new MemoryStore();
    const upload = held(await store.acquire('a', 'upload', 50));
    expect(await store.renew(upload, 50)).toBe(true);
    await sleep(120);
    expect(store.uploading()).toBe(0);
    expect(await store.renew(upload, 50)).toBe(false);
    expect(held(await store.acquire('a', 'change', 50)).kind).toBe('change');
  });

  it('should release a lease only by its own token', async () => {
    const store = new MemoryStore();
    const upload = held(await store.acquire('a', 'upload', 30_000));
    await store.release({ ...upload, token: 'someone-else' });
    expect(store.uploading()).toBe(1);
    await store.release(upload);
    expect(store.uploading()).toBe(0);
  });
});

describe('1. Location changes: the guard fails closed when its store cannot answer', () => {
  const IMAGE: ImageFacts = { id: 'a', status: 'active', size: 32, checksum: null, locations: 2 };
  const broken: Store = {
    local: false,
    acquire: () => Promise.reject(new Error('connection refused')),
    renew: () => Promise.reject(new Error('connection refused')),
    release: () => Promise.reject(new Error('connection refused')),
  };
  let server: http.Server;
  let base: string;
  const reached: string[] = [];

  beforeAll(async () => {
    const app = express();
    app.use(locationGuard({ lookup: async () => IMAGE, store: broken }));
    app.use((req, res) => {
      reached.push(`${req.method ?? ''} ${req.url}`);
      res.status(200).end('reached');
    });
    app.use(glanceErrorHandler());
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const TEXT = '503 Service Unavailable\n\nThe registry of uploads in flight cannot be reached, so the request cannot be let through safely.\n\n   ';

  it.each([
    ['PATCH', '/v2/images/a', 'application/openstack-images-v2.1-json-patch', '[{"op": "remove", "path": "/locations/0"}]'],
    ['PUT', '/v2/images/a/file', 'application/octet-stream', '0123456789'],
  ])('should 503 %s %s and let nothing through', async (method, path, type, body) => {
    const res = await fetch(`${base}${path}`, { method, headers: { 'content-type': type, accept: 'text/plain' }, body });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe(TEXT);
    expect(reached).toEqual([]);
  });

  it('should 200 a property patch, which needs no registry', async () => {
    const res = await fetch(`${base}/v2/images/a`, { method: 'PATCH', headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' }, body: '[{"op": "replace", "path": "/name", "value": "x"}]' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('reached');
    expect(reached).toEqual(['PATCH /v2/images/a']);
  });
});
