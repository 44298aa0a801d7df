/**
 * RedisStore's options, checked when it is made (lib/options.ts: a TypeError naming RedisStore and
 * the option), and ioredis loaded only when a RedisStore is made. No Redis is reached here.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RedisStore, type RedisStoreOptions } from '../../server/stores/redis';

const make = (options: unknown) => () => new RedisStore(options as RedisStoreOptions);

describe('RedisStore options', () => {
  it.each([
    [{ url: 'redis://127.0.0.1', bogus: 1 }, "RedisStore: unknown option 'bogus'"],
    [{ url: 'http://127.0.0.1:6379' }, "RedisStore: option 'url' must be a redis:// or rediss:// URL"],
    [{ url: 'redis://127.0.0.1:6379/x' }, "RedisStore: option 'url' must be"],
    [{ url: 'redis://127.0.0.1:6379/?db=1' }, "RedisStore: option 'url' must be"],
    [{ url: 'not a url' }, "RedisStore: option 'url' must be"],
    [{ url: 'redis://127.0.0.1', timeout: 0 }, "RedisStore: option 'timeout' must be a whole number of milliseconds"],
    [{ url: 'redis://127.0.0.1', timeout: '2s' }, "RedisStore: option 'timeout' must be"],
    [{ url: 'redis://127.0.0.1', prefix: 7 }, "RedisStore: option 'prefix' must be a string"],
    [{ url: 'redis://127.0.0.1', password: 1 }, "RedisStore: option 'password' must be a string"],
    [{ url: 'redis://127.0.0.1', db: -1 }, "RedisStore: option 'db' must be"],
    [{ url: 'redis://127.0.0.1', ca: '' }, "RedisStore: option 'ca' must be the path of a PEM file"],
    [{ url: 'redis://127.0.0.1', tls: 'yes' }, "RedisStore: option 'tls' must be true or false"],
    [{ sentinels: ['a:26379'], masterName: 'm', url: 'redis://127.0.0.1' }, "RedisStore: option 'url' cannot be given with 'sentinels'"],
    [{ sentinels: ['a'], masterName: 'm' }, "RedisStore: option 'sentinels' must be a non-empty list of 'host:port'"],
    [{ sentinels: [], masterName: 'm' }, "RedisStore: option 'sentinels' must be"],
    [{ sentinels: ['a:26379'] }, "RedisStore: option 'masterName' is required with 'sentinels'"],
    [{ url: 'redis://127.0.0.1', masterName: 'm' }, "RedisStore: option 'masterName' needs 'sentinels'"],
    [{ url: 'redis://127.0.0.1', sentinelPassword: 'p' }, "RedisStore: option 'sentinelPassword' needs 'sentinels'"],
    [{ client: {} }, "RedisStore: option 'client' must be an ioredis client"],
    [{ client: { evalsha() {}, eval() {}, ping() {}, on() {} }, url: 'redis://127.0.0.1' }, "RedisStore: option 'url' cannot be given with 'client'"],
    [{}, "RedisStore: option 'url' is required"],
    [undefined, "RedisStore: option 'url' is required"],
    ['redis://127.0.0.1', 'RedisStore: options must be an object'],
  ])('should refuse %j', (options, message) => {
    expect(make(options)).toThrow(TypeError);
    expect(make(options)).toThrow(message);
  });

  it('should say which CA file it cannot read', () => {
    expect(make({ url: 'rediss://127.0.0.1', ca: '/nonexistent/ca.pem' })).toThrow("RedisStore: cannot read the CA file '/nonexistent/ca.pem'");
  });

  it('should name its target without credentials, for TLS, IPv6 and Sentinel', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'glance-edge-ca-'));
    const ca = path.join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    const stores = [
      new RedisStore({ url: 'rediss://u:p@127.0.0.1:1/2', ca, timeout: 100 }),
      new RedisStore({ url: 'redis://[::1]:1', timeout: 100 }),
      new RedisStore({ url: 'redis://127.0.0.1:1', tls: true, timeout: 100 }),
      new RedisStore({ sentinels: ['127.0.0.1:1', '[::1]:2'], masterName: 'mymaster', sentinelPassword: 'x', timeout: 100 }),
    ];
    try {
      expect(stores.map((s) => s.target)).toEqual(['rediss://127.0.0.1:1/2', 'redis://[::1]:1', 'rediss://127.0.0.1:1', 'redis+sentinel://127.0.0.1:1,[::1]:2/mymaster']);
      // Nothing listens there: asked, each rejects within its timeout.
      for (const s of stores) await expect(s.ping()).rejects.toThrow('did not answer within 100 ms');
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should load ioredis only when a RedisStore is made, not with the module or the server entry point', () => {
    let loaded = 0;
    jest.isolateModules(() => {
      jest.doMock('ioredis', () => {
        loaded += 1;
        return jest.requireActual('ioredis');
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('../../server/index');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { RedisStore: Fresh } = require('../../server/stores/redis') as typeof import('../../server/stores/redis');
      expect(loaded).toBe(0);
      const store = new Fresh({ url: 'redis://127.0.0.1:1', timeout: 100 });
      expect(loaded).toBe(1);
      void store.close();
    });
  });
});
