/**
 * locationGuard's leaseTtl: the time to live the guard asks the race registry for, and the
 * renewal every third of it while an upload runs; out of range, a TypeError at construction.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { glanceErrorHandler } from '../../lib/errors';
import type { ImageFacts } from '../../lib/images/lookup';
import { locationGuard } from '../../lib/locations/guard';
import { MemoryStore, type Lease, type LeaseKind, type Store } from '../../lib/locations/store';

const ID = '11111111-1111-4111-8111-111111111111';
const image: ImageFacts = { id: ID, status: 'queued', size: null, checksum: null, locations: 0 };

class Spy implements Store {
  readonly local = true;
  readonly calls: string[] = [];
  readonly inner = new MemoryStore();
  acquire(key: string, kind: LeaseKind, ttl: number) {
    this.calls.push(`acquire ${kind} ${ttl}`);
    return this.inner.acquire(key, kind, ttl);
  }
  renew(lease: Lease, ttl: number) {
    this.calls.push(`renew ${lease.kind} ${ttl}`);
    return this.inner.renew(lease, ttl);
  }
  release(lease: Lease) {
    this.calls.push(`release ${lease.kind}`);
    return this.inner.release(lease);
  }
}

it('should ask for leaseTtl and renew every third of it while an upload runs', async () => {
  const store = new Spy();
  const app = express();
  app.use(locationGuard({ lookup: async () => image, store, leaseTtl: 600 }));
  // The service takes 750 ms over the upload.
  app.put('/v2/images/:id/file', (req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => res.status(204).end(), 750));
  });
  app.use(glanceErrorHandler());
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'PUT', path: `/v2/images/${ID}/file`, headers: { 'Content-Type': 'application/octet-stream' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end('data');
    });
    expect(status).toBe(204);
    await new Promise((r) => setTimeout(r, 50));
    expect(store.calls[0]).toBe('acquire upload 600');
    const renewals = store.calls.filter((c) => c === 'renew upload 600').length;
    expect(renewals).toBeGreaterThanOrEqual(2);
    expect(renewals).toBeLessThanOrEqual(4);
    expect(store.calls[store.calls.length - 1]).toBe('release upload');
  } finally {
    await new Promise((r) => server.close(r));
  }
});

it.each([299, 86_400_001, 1.5, '30000'])('should refuse leaseTtl %j with a TypeError naming it', (leaseTtl) => {
  expect(() => locationGuard({ lookup: async () => null, leaseTtl } as never)).toThrow(
    new TypeError("locationGuard: option 'leaseTtl' must be a whole number of milliseconds from 300 to 86400000"),
  );
});
