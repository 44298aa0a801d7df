/**
 * BEHAVIOUR.md §1, the race: the race registry's semantics (lib/locations/store.ts), one suite run
 * against every store: MemoryStore, and RedisStore on a real redis-server (test/helpers/redis.ts).
 * Each test has its own keys (a fresh MemoryStore, a fresh Redis prefix).
 */
import { randomUUID } from 'node:crypto';
import { MemoryStore, type Lease, type Store } from '../../lib/locations/store';
import { RedisStore } from '../../server/stores/redis';
import { startRedis, type RedisServer } from '../helpers/redis';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function held(lease: Lease | 'uploading'): Lease {
  if (lease === 'uploading') throw new Error('expected a lease, got uploading');
  return lease;
}

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const done = await Promise.race([promise.then(() => true as const), late]);
  clearTimeout(timer);
  return done;
}

/** Whether a change of `key` would be refused now (the change taken for the probe is given back). */
async function changeRefused(store: Store, key: string): Promise<boolean> {
  const probe = await store.acquire(key, 'change', 30_000);
  if (probe === 'uploading') return true;
  await store.release(probe);
  return false;
}

let redis: RedisServer;
const opened: RedisStore[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await redis?.stop();
});

const STORES: [string, () => Store][] = [
  ['MemoryStore', () => new MemoryStore()],
  [
    'RedisStore',
    () => {
      const store = new RedisStore({ url: redis.url, prefix: `contract-${randomUUID()}:` });
      opened.push(store);
      return store;
    },
  ],
];

describe.each(STORES)('1. Location changes: the race registry, %s', (_name, make) => {
  it('should refuse a change of an image while an upload lease of it is held, and not of another image', async () => {
    const store = make();
    const upload = held(await store.acquire('a', 'upload', 30_000));
    expect(upload).toEqual({ key: 'a', kind: 'upload', token: expect.any(String) });
    expect(await store.acquire('a', 'change', 30_000)).toBe('uploading');
    const other = held(await store.acquire('b', 'change', 30_000));
    expect(other.kind).toBe('change');
    await store.release(upload);
    await store.release(other);
    const change = held(await store.acquire('a', 'change', 30_000));
    expect(change.kind).toBe('change');
    await store.release(change);
  });

  it('should hold several uploads of one image at once, each its own lease, and refuse changes until the last is released', async () => {
    const store = make();
    const first = held(await store.acquire('a', 'upload', 30_000));
    const second = held(await store.acquire('a', 'upload', 30_000));
    expect(first.token).not.toBe(second.token);
    expect(await changeRefused(store, 'a')).toBe(true);
    await store.release(first);
    expect(await changeRefused(store, 'a')).toBe(true);
    await store.release(second);
    expect(await changeRefused(store, 'a')).toBe(false);
  });

  it('should judge changes of one image one after the other, in the order they came', async () => {
    const store = make();
    const order: string[] = [];
    const first = held(await store.acquire('a', 'change', 30_000));
    const second = store.acquire('a', 'change', 30_000).then((l) => (order.push('second'), held(l)));
    await sleep(20);
    const third = store.acquire('a', 'change', 30_000).then((l) => (order.push('third'), held(l)));
    await sleep(40);
    expect(order).toEqual([]);
    await store.release(first);
    const two = await second;
    expect(await settlesWithin(third, 150)).toBe(false);
    expect(order).toEqual(['second']);
    await store.release(two);
    await store.release(await third);
    expect(order).toEqual(['second', 'third']);
    // Another image is not held up by these.
    await store.release(held(await store.acquire('b', 'change', 30_000)));
  });

  it('should give changes of one image their turns in order, and hold an upload until the change before it is released', async () => {
    const store = make();
    const order: string[] = [];
    const first = held(await store.acquire('a', 'change', 30_000));
    const second = store.acquire('a', 'change', 30_000).then((l) => (order.push('second'), l));
    await sleep(20);
    const upload = store.acquire('a', 'upload', 30_000).then((l) => (order.push('upload'), l));
    await sleep(40);
    expect(order).toEqual([]);
    await store.release(first);
    // The second change had waited, and an upload has registered since: it is refused; then the upload goes on.
    expect(await second).toBe('uploading');
    await store.release(held(await upload));
    expect(order).toEqual(['second', 'upload']);
  });

  it('should count an upload that waits for a change: a change that comes meanwhile is refused', async () => {
    const store = make();
    const change = held(await store.acquire('a', 'change', 30_000));
    const upload = store.acquire('a', 'upload', 30_000);
    await sleep(20);
    expect(await settlesWithin(upload, 50)).toBe(false);
    await store.release(change);
    const going = held(await upload);
    expect(await store.acquire('a', 'change', 30_000)).toBe('uploading');
    await store.release(going);
  });

  it('should let a lease run out after its time to live, and renew only a lease still held', async () => {
    const store = make();
    const upload = held(await store.acquire('a', 'upload', 250));
    expect(await store.renew(upload, 100)).toBe(true);
    await sleep(300);
    expect(await store.renew(upload, 100)).toBe(false);
    expect(await changeRefused(store, 'a')).toBe(false);
    // A change lease runs out too: the next change and a waiting upload go on.
    held(await store.acquire('a', 'change', 60));
    const next = held(await store.acquire('a', 'change', 60));
    expect(next.kind).toBe('change');
    const upload2 = held(await store.acquire('a', 'upload', 60));
    expect(await store.renew(next, 60)).toBe(false);
    await store.release(upload2);
  });

  it('should keep a renewed lease past its first time to live', async () => {
    const store = make();
    const upload = held(await store.acquire('a', 'upload', 400));
    const change = held(await store.acquire('b', 'change', 400));
    for (let i = 0; i < 4; i += 1) {
      await sleep(100);
      expect(await store.renew(upload, 400)).toBe(true);
      expect(await store.renew(change, 400)).toBe(true);
    }
    expect(await changeRefused(store, 'a')).toBe(true);
    const waiting = store.acquire('b', 'upload', 400);
    expect(await settlesWithin(waiting, 50)).toBe(false);
    await store.release(upload);
    await store.release(change);
    await store.release(held(await waiting));
  });

  it('should release a lease only by its own token', async () => {
    const store = make();
    const upload = held(await store.acquire('a', 'upload', 30_000));
    await store.release({ ...upload, token: 'someone-else' });
    expect(await store.renew({ ...upload, token: 'someone-else' }, 30_000)).toBe(false);
    expect(await changeRefused(store, 'a')).toBe(true);
    const change = held(await store.acquire('b', 'change', 30_000));
    await store.release({ ...change, token: 'someone-else' });
    const next = store.acquire('b', 'change', 30_000);
    expect(await settlesWithin(next, 80)).toBe(false); // still held: the next change waits
    await store.release(upload);
    expect(await changeRefused(store, 'a')).toBe(false);
    await store.release(change);
    await store.release(held(await next));
  });

  it('should not let a stale token release or renew a newer lease of the image', async () => {
    const store = make();
    // A change whose holder stalled past its time to live; another change has the turn since.
    const stale = held(await store.acquire('a', 'change', 50));
    await sleep(100);
    const newer = held(await store.acquire('a', 'change', 30_000));
    expect(await store.renew(stale, 30_000)).toBe(false);
    await store.release(stale);
    const upload = store.acquire('a', 'upload', 30_000);
    expect(await settlesWithin(upload, 80)).toBe(false); // the newer change still holds the turn
    await store.release(newer);
    await store.release(held(await upload));
    // The same with uploads.
    const staleUpload = held(await store.acquire('c', 'upload', 50));
    await sleep(100);
    const newerUpload = held(await store.acquire('c', 'upload', 30_000));
    expect(await store.renew(staleUpload, 30_000)).toBe(false);
    await store.release(staleUpload);
    expect(await changeRefused(store, 'c')).toBe(true);
    await store.release(newerUpload);
    expect(await changeRefused(store, 'c')).toBe(false);
  });

  it('should not be told of released leases twice: releasing again does nothing', async () => {
    const store = make();
    const upload = held(await store.acquire('a', 'upload', 30_000));
    await store.release(upload);
    await store.release(upload);
    expect(await store.renew(upload, 30_000)).toBe(false);
    const change = held(await store.acquire('a', 'change', 30_000));
    await store.release(change);
    await store.release(change);
    await store.release(held(await store.acquire('a', 'change', 30_000)));
  });
});
