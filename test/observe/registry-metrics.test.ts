/**
 * The race registry's metrics (metrics.observeStore): its calls timed by op, its failures counted,
 * the leases this process holds gauged by kind, and the store's own semantics left as they are.
 */
import { MemoryStore, type Lease, type Store } from '../../lib/locations/store';
import { createMetrics } from '../../server/observe/metrics';

const sample = async (text: Promise<string>, line: string) => {
  const found = (await text).split('\n').find((l) => l.startsWith(line));
  return found === undefined ? undefined : Number(found.slice(line.length).trim());
};

describe('metrics.observeStore', () => {
  it('should gauge the leases held by kind and count the calls by op', async () => {
    const metrics = createMetrics();
    const store = metrics.observeStore(new MemoryStore());
    expect(store.local).toBe(true);
    const upload = (await store.acquire('a', 'upload', 10_000)) as Lease;
    const change = await store.acquire('a', 'change', 10_000);
    expect(change).toBe('uploading');
    const other = (await store.acquire('b', 'change', 10_000)) as Lease;
    expect(store.uploading?.()).toBe(1);
    const text = () => metrics.registry.metrics();
    expect(await sample(text(), 'glance_edge_registry_leases_held{kind="upload"}')).toBe(1);
    expect(await sample(text(), 'glance_edge_registry_leases_held{kind="change"}')).toBe(1);
    expect(await store.renew(upload, 10_000)).toBe(true);
    await store.release(upload);
    await store.release(other);
    expect(await sample(text(), 'glance_edge_registry_leases_held{kind="upload"}')).toBe(0);
    expect(await sample(text(), 'glance_edge_registry_leases_held{kind="change"}')).toBe(0);
    expect(await sample(text(), 'glance_edge_registry_seconds_count{op="acquire"}')).toBe(3);
    expect(await sample(text(), 'glance_edge_registry_seconds_count{op="renew"}')).toBe(1);
    expect(await sample(text(), 'glance_edge_registry_seconds_count{op="release"}')).toBe(2);
  });

  it('should count the failures of a store that cannot answer, and pass them on', async () => {
    const metrics = createMetrics();
    const down: Store = {
      local: false,
      acquire: () => Promise.reject(new Error('unreachable')),
      renew: () => Promise.reject(new Error('unreachable')),
      release: () => Promise.reject(new Error('unreachable')),
      ping: () => Promise.reject(new Error('unreachable')),
    };
    const store = metrics.observeStore(down);
    await expect(store.acquire('a', 'upload', 1000)).rejects.toThrow('unreachable');
    await expect(store.renew({ key: 'a', kind: 'upload', token: 't' }, 1000)).rejects.toThrow('unreachable');
    await expect(store.ping?.()).rejects.toThrow('unreachable');
    expect(store.uploading).toBeUndefined();
    const text = metrics.registry.metrics();
    expect(await sample(text, 'glance_edge_registry_errors_total{op="acquire"}')).toBe(1);
    expect(await sample(metrics.registry.metrics(), 'glance_edge_registry_errors_total{op="renew"}')).toBe(1);
  });

  it('should stop gauging a lease that could not be renewed', async () => {
    const metrics = createMetrics();
    const store = metrics.observeStore(new MemoryStore());
    const lease = (await store.acquire('a', 'change', 300)) as Lease;
    await new Promise((r) => setTimeout(r, 400));
    expect(await store.renew(lease, 300)).toBe(false);
    expect(await sample(metrics.registry.metrics(), 'glance_edge_registry_leases_held{kind="change"}')).toBe(0);
  });
});
