/**
 * The race registry in Redis (or anything that speaks its protocol: Valkey, KeyDB): one registry for
 * every process that guards the same image service, so that an upload through one sidecar refuses a
 * location change through another. The semantics are {@link MemoryStore}'s (lib/locations/store.ts),
 * kept by four Lua scripts that each run atomically in Redis:
 *
 * - per image (its canonical id), a sorted set of upload tokens scored by when each runs out; a
 *   string holding the token of the change being judged, with Redis's own expiry; and the changes
 *   waiting for their turn, in order (a sorted set by arrival, and one by when each runs out);
 * - `upload` registers the upload at once, then tells it whether it may go on (no change held or
 *   waiting); `change` refuses while an upload is held, takes the turn when it is free, or queues
 *   the change and, asked again, gives it its turn once it heads the queue and none is held (and
 *   then refuses it if an upload registered meanwhile); `renew` extends a lease only while its own
 *   token holds it; `release` deletes the token wherever it is, comparing before it deletes, and
 *   hands a change's turn on.
 *
 * A lease or a place in the queue that is not renewed runs out after its time to live, so a process
 * that dies frees its images. A change's turn given back is handed on in the same script: to the
 * change that heads the queue (or, when an upload came behind it, that change is refused and the next
 * one considered), which is told by its token (Redis pub/sub, on a second connection made when a
 * holder first waits; at once, from the release's own answer, when it waits in the same process) and
 * goes on without asking; once no change waits, every upload is told to ask again. The rest of the
 * queue stays quiet: no herd of asks that all but one lose. A holder also asks again
 * by the clock (every {@link POLL_MS}, or a quarter of its time to live when shorter; every few
 * milliseconds at first when it hears no releases), renewing its place each time, since a lease may
 * also run out or a message be missed.
 *
 * Every command has a deadline (`timeout`, 2 s by default): a Redis that cannot be reached or does
 * not answer in time makes the call reject, and the guard answers 503 (it fails closed). The client
 * reconnects by itself; commands are never queued while it is disconnected nor sent again after a
 * reconnection, so a call that failed does not take a lease later; what such a call may have taken
 * is released once Redis answers again.
 *
 * `ioredis` is loaded when the first RedisStore is made, not when this module is: the suite without
 * a Redis store does not load it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { Lease, LeaseKind, Store } from '../../lib/locations/store';
import { checkOptions, option, type OptionChecks } from '../../lib/options';

/**
 * What the store uses of an ioredis client (a `Redis`, standalone or behind Sentinel, or a
 * `Cluster`). Declared here rather than imported, so that neither this module nor its types load
 * ioredis.
 */
export interface RedisClient {
  readonly status: string;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  connect(): Promise<unknown>;
  evalsha(sha: string, numkeys: number, ...args: string[]): Promise<unknown>;
  eval(script: string, numkeys: number, ...args: string[]): Promise<unknown>;
  ping(): Promise<unknown>;
  quit(): Promise<unknown>;
  disconnect(): void;
  /** Optional: a client that can make another connection lets waiting holders be woken at once. */
  duplicate?(override?: Record<string, unknown>): RedisSubscriber;
}

/** The connection on which a store listens for the releases its waiting holders wait for. */
export interface RedisSubscriber {
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  disconnect(): void;
}

/** The settings of ioredis's `Redis` that the store gives. */
type RedisSettings = Record<string, unknown>;

export interface RedisStoreOptions {
  /**
   * The server: `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS. Port 6379 and
   * database 0 unless said. Give `url`, or `sentinels` and `masterName`, or `client`.
   */
  readonly url?: string;
  /** The ACL user; overrides the URL's. */
  readonly username?: string;
  /** The password (e.g. from an environment variable, to keep it out of the URL and the command line); overrides the URL's. */
  readonly password?: string;
  /** The database number; overrides the URL's. Default 0. */
  readonly db?: number;
  /** Speak TLS (as `rediss://` does); with `sentinels`, to the sentinels and to the master. */
  readonly tls?: boolean;
  /** A file of PEM certificates to trust instead of Node's own CAs; turns TLS on. */
  readonly ca?: string;
  /** Sentinels to ask where the master is, each `host:port` (`[v6]:port`); needs `masterName`. */
  readonly sentinels?: readonly string[];
  /** The name of the master the sentinels watch (Sentinel's `master-name`). */
  readonly masterName?: string;
  /** The sentinels' own password, when they ask for one. */
  readonly sentinelPassword?: string;
  /** Put before every key, so that several clouds (or suites) share one Redis. Default `glance-edge:`. */
  readonly prefix?: string;
  /** How long a call may wait for Redis, in ms: reconnecting, then the answer. Default 2000. */
  readonly timeout?: number;
  /**
   * An ioredis client of yours (a `Redis` or a `Cluster`) to use instead of connecting: no
   * connection option may be given with it, and {@link RedisStore.close} leaves it open.
   */
  readonly client?: RedisClient;
}

const DEFAULT_PREFIX = 'glance-edge:';
const DEFAULT_TIMEOUT_MS = 2000;
/** The longest wait between two asks of a holder waiting for its turn. */
export const POLL_MS = 100;
/** The first wait; each next one is twice the last. */
const FIRST_POLL_MS = 5;

const CONNECTION_OPTIONS = ['url', 'username', 'password', 'db', 'tls', 'ca', 'sentinels', 'masterName', 'sentinelPassword'] as const;

const isRedisUrl = (v: unknown): boolean => {
  if (typeof v !== 'string') return false;
  try {
    const u = new URL(v);
    return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '' && u.search === '' && u.hash === '' && /^\/?(\d+)?$/.test(u.pathname);
  } catch {
    return false;
  }
};
const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/;

const REDIS_STORE_OPTIONS: OptionChecks<RedisStoreOptions> = {
  url: { expected: 'a redis:// or rediss:// URL, [user[:password]@]host[:port][/db]', test: isRedisUrl },
  username: { expected: 'a string', test: (v) => typeof v === 'string' },
  password: { expected: 'a string', test: (v) => typeof v === 'string' },
  db: option.integer(0, 1_000_000, 'database number'),
  tls: option.boolean,
  ca: { expected: 'the path of a PEM file', test: (v) => typeof v === 'string' && v !== '' },
  sentinels: {
    expected: "a non-empty list of 'host:port'",
    test: (v) => Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && HOST_PORT.test(s)),
  },
  masterName: { expected: 'a non-empty string', test: (v) => typeof v === 'string' && v !== '' },
  sentinelPassword: { expected: 'a string', test: (v) => typeof v === 'string' },
  prefix: { expected: 'a string', test: (v) => typeof v === 'string' },
  timeout: option.integer(1, 600_000, 'milliseconds'),
  client: option.object('an ioredis client (Redis or Cluster)', (v) => {
    const c = v as Partial<Record<'evalsha' | 'eval' | 'ping' | 'on', unknown>> | null;
    return typeof c === 'object' && c !== null && ['evalsha', 'eval', 'ping', 'on'].every((m) => typeof c[m as keyof typeof c] === 'function');
  }),
};

// --- The scripts ---------------------------------------------------------------------------------
// KEYS, for every script: [1] the uploads (token -> when it runs out, ms), [2] the change held (its
// token, with an expiry), [3] the changes waiting (token -> arrival number), [4] when each waiting
// change runs out (token -> ms). Times are Redis's own clock (TIME), so processes need not agree.
const PRELUDE = `
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function ms(n) return string.format('%d', n) end
local function pruneQueue()
  local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ms(now))
  for _, token in ipairs(gone) do
    redis.call('ZREM', KEYS[3], token)
    redis.call('ZREM', KEYS[4], token)
  end
end
local function prune()
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now))
  pruneQueue()
end
-- The sets live as long as their last entry (and a second more), so an idle image leaves nothing.
local function keepUploads()
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIREAT', KEYS[1], ms(tonumber(last[2]) + 1000)) end
end
local function keepQueue()
  local last = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', KEYS[3], ms(tonumber(last[2]) + 1000))
    redis.call('PEXPIREAT', KEYS[4], ms(tonumber(last[2]) + 1000))
  end
end
-- The turn is free: give it to the change that heads the queue, for what is left of its place's time,
-- and tell it on channel c ('<token>:turn'), or, when an upload registered while it waited, refuse it
-- ('<token>:uploading') and go on to the next; once no change waits, tell every upload ('*'). What was
-- told is returned, for the caller's own holders.
local function handOn(c)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now))
  pruneQueue()
  local told = {}
  while redis.call('EXISTS', KEYS[2]) == 0 do
    local head = redis.call('ZRANGE', KEYS[3], 0, 0)
    local t = head[1]
    if not t then
      redis.call('PUBLISH', c, '*')
      told[#told + 1] = '*'
      break
    end
    local expiry = tonumber(redis.call('ZSCORE', KEYS[4], t) or now)
    redis.call('ZREM', KEYS[3], t)
    redis.call('ZREM', KEYS[4], t)
    local message = t .. ':uploading'
    if redis.call('ZCARD', KEYS[1]) == 0 then
      redis.call('SET', KEYS[2], t, 'PX', ms(math.max(1, expiry - now)))
      message = t .. ':turn'
    end
    redis.call('PUBLISH', c, message)
    told[#told + 1] = message
  end
  keepQueue()
  return told
end
local token = ARGV[1]
`;

/** An upload: registered (again) for `ttl` ms; 1 when it may go on, 0 while a change is held or waiting. */
const UPLOAD = `${PRELUDE}
local ttl = tonumber(ARGV[2])
prune()
redis.call('ZADD', KEYS[1], ms(now + ttl), token)
keepUploads()
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('ZCARD', KEYS[3]) > 0 then return 0 end
return 1
`;

/**
 * A change: 1 when it holds the turn for `ttl` ms, -1 refused (an upload is held), 0 queued (asked
 * again, its place is kept for another `ttl` ms, and the turn given once it heads the queue).
 */
const CHANGE = `${PRELUDE}
local ttl = tonumber(ARGV[2])
prune()
if redis.call('GET', KEYS[2]) == token then
  -- Its turn was given to it while it waited (its message missed).
  redis.call('PEXPIRE', KEYS[2], ttl)
  return 1
end
if redis.call('ZSCORE', KEYS[3], token) then
  redis.call('ZADD', KEYS[4], ms(now + ttl), token)
  keepQueue()
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)
  if head[1] ~= token then return 0 end
  redis.call('ZREM', KEYS[3], token)
  redis.call('ZREM', KEYS[4], token)
  if redis.call('ZCARD', KEYS[1]) > 0 then
    -- It leaves the queue without the turn: the next may take it.
    handOn(ARGV[3])
    return -1
  end
  redis.call('SET', KEYS[2], token, 'PX', ttl)
  return 1
end
if redis.call('ZCARD', KEYS[1]) > 0 then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('SET', KEYS[2], token, 'PX', ttl)
  return 1
end
local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
local place = 1
if last[2] then place = tonumber(last[2]) + 1 end
redis.call('ZADD', KEYS[3], place, token)
redis.call('ZADD', KEYS[4], ms(now + ttl), token)
keepQueue()
return 0
`;

/** Extend the lease of `token` (an `upload` or a `change`) by `ttl` ms: 1, or 0 when the token no longer holds it. */
const RENEW = `${PRELUDE}
local ttl = tonumber(ARGV[2])
if ARGV[3] == 'upload' then
  prune()
  if not redis.call('ZSCORE', KEYS[1], token) then return 0 end
  redis.call('ZADD', KEYS[1], 'XX', ms(now + ttl), token)
  keepUploads()
  return 1
end
if redis.call('GET', KEYS[2]) == token then
  redis.call('PEXPIRE', KEYS[2], ttl)
  return 1
end
return 0
`;

/**
 * Delete `token` wherever it is (an upload, the change held when it is this token's, a place in the
 * queue); a change's turn given back (or its place) is handed on (ARGV[2], the channel). How many
 * entries went, then the messages told, for the caller's own holders.
 */
const RELEASE = `${PRELUDE}
local n = redis.call('ZREM', KEYS[3], token) + redis.call('ZREM', KEYS[4], token)
if redis.call('GET', KEYS[2]) == token then
  redis.call('DEL', KEYS[2])
  n = n + 1
end
local gone = n + redis.call('ZREM', KEYS[1], token)
local told = {}
if n > 0 and ARGV[2] then told = handOn(ARGV[2]) end
table.insert(told, 1, gone)
return told
`;

interface Script {
  readonly lua: string;
  readonly sha: string;
}
const script = (lua: string): Script => ({ lua, sha: createHash('sha1').update(lua).digest('hex') });
export const SCRIPTS = { upload: script(UPLOAD), change: script(CHANGE), renew: script(RENEW), release: script(RELEASE) } as const;

/** What a failed acquire may have left in Redis, to release once Redis answers again. */
interface Orphan {
  readonly keys: readonly string[];
  readonly channel: string;
  readonly until: number;
}

/** ioredis's refusal of a command it did not send: the connection is down and commands are not queued. */
const NOT_SENT = /^Stream isn't writeable/;

/** A holder's ear on the releases of its image while it waits for its turn. */
interface Listening {
  /** Whether releases are heard (else only the clock wakes). */
  readonly subscribed: boolean;
  /** What the holder was told within `ms`: its turn, refused, or to ask again (also when nothing was told). */
  next(ms: number): Promise<Told>;
  stop(): void;
}

/** What a waiting holder is told: the turn given to it, refused (an upload came), or to ask again. */
type Told = 'turn' | 'uploading' | 'ask';

/** One holder waiting on a channel: woken when told, or told while it was asking (`told`). */
interface Listener {
  wake: ((told: Told) => void) | null;
  told: Told | null;
}

/** A channel this store listens on: its holders by token, and its subscription. */
interface Channel {
  readonly listeners: Map<string, Listener>;
  /** Resolves true once subscribed, false when that failed (null: not asked, or to ask again). */
  subscribed: Promise<boolean> | null;
  /** Whether the subscription is known to be made. */
  heard: boolean;
  /** The unsubscription of a channel nobody waits on, kept a while for the next waiting holder. */
  idle: NodeJS.Timeout | null;
}

/** How long a channel nobody waits on stays subscribed. */
const CHANNEL_IDLE_MS = 5000;
/** A message to one holder, `<token>:turn` or `<token>:uploading`; any other (`*`) tells every holder of the channel to ask. */
const TO_HOLDER = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):(turn|uploading)$/;

/** `promise`, or a rejection after `ms`. */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** The race registry in Redis, shared by every process that uses the same Redis and prefix. */
export class RedisStore implements Store {
  readonly local = false;
  /** Where it connects, without credentials: for logs and health reports. */
  readonly target: string;
  readonly prefix: string;
  readonly timeout: number;
  readonly #client: RedisClient;
  readonly #own: boolean;
  #closed = false;
  #lastError: Error | null = null;
  readonly #waitingReady = new Set<() => void>();
  readonly #orphans = new Map<string, Orphan>();
  /** The connection that hears releases (made when a holder first waits), and who waits on which channel. */
  #subscriber: RedisSubscriber | null = null;
  readonly #channels = new Map<string, Channel>();

  constructor(given: RedisStoreOptions) {
    const options = checkOptions('RedisStore', given, REDIS_STORE_OPTIONS);
    const connection = CONNECTION_OPTIONS.filter((k) => options[k] !== undefined);
    if (options.client !== undefined) {
      if (connection.length > 0) throw new TypeError(`RedisStore: option '${connection[0] as string}' cannot be given with 'client' (the client is already connected)`);
    } else if (options.url === undefined && options.sentinels === undefined) {
      throw new TypeError("RedisStore: option 'url' is required (a redis:// or rediss:// URL), unless 'sentinels' or 'client' is given");
    }
    if (options.url !== undefined && options.sentinels !== undefined) throw new TypeError("RedisStore: option 'url' cannot be given with 'sentinels' (the sentinels name the master)");
    if (options.sentinels !== undefined && options.masterName === undefined) throw new TypeError("RedisStore: option 'masterName' is required with 'sentinels'");
    if (options.sentinels === undefined && options.masterName !== undefined) throw new TypeError("RedisStore: option 'masterName' needs 'sentinels'");
    if (options.sentinels === undefined && options.sentinelPassword !== undefined) throw new TypeError("RedisStore: option 'sentinelPassword' needs 'sentinels'");
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;

    if (options.client !== undefined) {
      this.#client = options.client;
      this.#own = false;
      this.target = 'the client given';
    } else {
      const [settings, target] = connectionSettings(options, this.timeout);
      // Loaded here, not at the top of the module: only a process that makes a RedisStore loads ioredis.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { Redis: RedisClass } = require('ioredis') as { Redis: new (settings: RedisSettings) => RedisClient };
      this.#client = new RedisClass(settings);
      this.#own = true;
      this.target = target;
    }
    this.#client.on('error', (err: Error) => {
      this.#lastError = err;
    });
    this.#client.on('ready', () => {
      this.#lastError = null;
      for (const wake of [...this.#waitingReady]) wake();
      this.#releaseOrphans();
    });
  }

  async acquire(key: string, kind: LeaseKind, ttl: number): Promise<Lease | 'uploading'> {
    if (kind !== 'upload' && kind !== 'change') throw new TypeError(`RedisStore: unknown lease kind '${String(kind)}'`);
    const lease: Lease = { key, kind, token: randomUUID() };
    const ms = leaseMs(ttl);
    const keys = this.#keys(key);
    const channel = this.#channel(key);
    const pollCap = Math.max(1, Math.min(POLL_MS, Math.floor(ms / 4)));
    let delay = Math.min(FIRST_POLL_MS, pollCap);
    // On a channel already heard, the holder listens before it first asks: nothing told after is missed.
    let listening: Listening | null = this.#channels.get(channel)?.heard === true ? this.#listenNow(channel, lease.token) : null;
    try {
      for (;;) {
        const answer = await this.#eval(kind === 'upload' ? SCRIPTS.upload : SCRIPTS.change, keys, [lease.token, String(ms), channel]);
        if (answer === 1) return lease;
        if (answer === -1) return 'uploading';
        if (answer !== 0) throw new Error(`RedisStore: unexpected answer from Redis: ${String(answer)}`);
        if (listening === null) {
          // Told from now on; a release before that is seen by asking again at once.
          listening = await this.#listen(channel, lease.token);
          if (listening.subscribed) continue;
        }
        // The turn is given (or refused) by the release that frees it, without asking; a holder that
        // hears releases asks by the clock only for what no message tells (a lease run out, a message
        // lost), at the slowest pace.
        const told = await listening.next(listening.subscribed ? pollCap : delay);
        if (told === 'turn') return lease;
        if (told === 'uploading') return 'uploading';
        delay = Math.min(delay * 2, pollCap);
      }
    } catch (err) {
      // It may have registered before it failed (or Redis may yet run what timed out): release it.
      this.#abandon(lease.token, keys, channel, ms);
      throw err;
    } finally {
      listening?.stop();
    }
  }

  async renew(lease: Lease, ttl: number): Promise<boolean> {
    const answer = await this.#eval(SCRIPTS.renew, this.#keys(lease.key), [lease.token, String(leaseMs(ttl)), lease.kind]);
    return answer === 1;
  }

  async release(lease: Lease): Promise<void> {
    const channel = this.#channel(lease.key);
    this.#toldHere(channel, await this.#eval(SCRIPTS.release, this.#keys(lease.key), [lease.token, channel]));
  }

  /** What a release told (its answer after the count), to this store's own holders at once (the same messages reach them again, later, by Redis). */
  #toldHere(channel: string, answer: unknown): void {
    if (Array.isArray(answer)) for (const message of answer.slice(1)) this.#told(channel, String(message));
  }

  /** The channel on which the releases of image `key` are told. */
  #channel(key: string): string {
    return `${this.prefix}lease:{${encodeURIComponent(key)}}:released`;
  }

  /**
   * Listen for the releases of one image until stop(): next(ms) resolves when this holder is told it
   * may take the turn (Redis names the change that heads the queue, or every upload), or after `ms`
   * (asking again by the clock stays the rule: a message may be missed, a lease may run out). Without
   * a connection to listen on (a client that cannot make one, or Redis unreachable), only the clock
   * wakes.
   */
  async #listen(name: string, token: string): Promise<Listening> {
    const listening = this.#listenNow(name, token);
    const subscriber = this.#subscriberConnection();
    const channel = this.#channels.get(name);
    if (subscriber === null || channel === undefined) return listening;
    // One subscription per channel, shared by its holders; one that failed is tried again.
    channel.subscribed ??= withDeadline(subscriber.subscribe(name), this.timeout).then(
      () => {
        channel.heard = true;
        return true;
      },
      () => {
        channel.subscribed = null;
        return false;
      },
    );
    return { ...listening, subscribed: await channel.subscribed };
  }

  /** A holder of `token` listening on `name` from now on, heard when the channel is already subscribed. */
  #listenNow(name: string, token: string): Listening {
    let channel = this.#channels.get(name);
    if (channel === undefined) {
      channel = { listeners: new Map(), subscribed: null, heard: false, idle: null };
      this.#channels.set(name, channel);
    }
    if (channel.idle !== null) {
      clearTimeout(channel.idle);
      channel.idle = null;
    }
    const ch = channel;
    const listener: Listener = { wake: null, told: null };
    ch.listeners.set(token, listener);
    return {
      subscribed: ch.heard,
      next: (ms) =>
        new Promise<Told>((resolve) => {
          if (listener.told !== null) {
            resolve(listener.told);
            listener.told = null;
            return;
          }
          const timer = setTimeout(() => {
            listener.wake = null;
            resolve('ask');
          }, ms);
          listener.wake = (told) => {
            clearTimeout(timer);
            listener.wake = null;
            resolve(told);
          };
        }),
      stop: () => {
        ch.listeners.delete(token);
        if (ch.listeners.size > 0 || this.#channels.get(name) !== ch || ch.idle !== null) return;
        ch.idle = setTimeout(() => {
          ch.idle = null;
          if (ch.listeners.size > 0 || this.#channels.get(name) !== ch) return;
          this.#channels.delete(name);
          if (ch.subscribed !== null) this.#subscriber?.unsubscribe(name).catch(() => undefined);
        }, CHANNEL_IDLE_MS).unref();
      },
    };
  }

  /** A message on a channel: to the holder it names (if it is this store's), or to every holder of the channel. */
  #told(name: string, message: string): void {
    const listeners = this.#channels.get(name)?.listeners;
    if (listeners === undefined) return;
    const toHolder = TO_HOLDER.exec(message);
    const tell = (listener: Listener, told: Told) => {
      if (listener.wake !== null) listener.wake(told);
      else if (listener.told !== 'turn' && listener.told !== 'uploading') listener.told = told; // asking right now: heard when it waits
    };
    if (toHolder === null) {
      for (const listener of [...listeners.values()]) tell(listener, 'ask');
      return;
    }
    const listener = listeners.get(toHolder[1] as string);
    if (listener !== undefined) tell(listener, toHolder[2] as Told);
  }

  /** The connection that hears releases, made on first need; null when the client cannot make one. */
  #subscriberConnection(): RedisSubscriber | null {
    if (this.#subscriber !== null || this.#closed) return this.#subscriber;
    if (typeof this.#client.duplicate !== 'function') return null;
    // Its subscriptions wait for it to connect (and are made again when it reconnects).
    const subscriber = this.#client.duplicate({ enableOfflineQueue: true, autoResubscribe: true });
    subscriber.on('error', () => undefined); // the clock still wakes; the main connection reports
    subscriber.on('message', (channel: string, message: string) => this.#told(channel, String(message)));
    this.#subscriber = subscriber;
    return subscriber;
  }

  /** Resolves when Redis answers a PING within the timeout; rejects (saying why) otherwise. For health checks. */
  async ping(): Promise<void> {
    await this.#run(() => this.#client.ping());
  }

  /**
   * Stop: calls made after reject, and a holder still waiting for its turn gives up (rejects). The
   * connection the store made is closed; a client given is left open.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const wake of [...this.#waitingReady]) wake();
    for (const channel of this.#channels.values()) if (channel.idle !== null) clearTimeout(channel.idle);
    this.#subscriber?.disconnect();
    this.#subscriber = null;
    if (!this.#own) return;
    const client = this.#client;
    if (client.status !== 'ready') {
      client.disconnect();
      return;
    }
    const timer = setTimeout(() => client.disconnect(), this.timeout).unref();
    await client.quit().catch(() => client.disconnect());
    clearTimeout(timer);
  }

  /** The same as {@link close}. */
  quit(): Promise<void> {
    return this.close();
  }

  /** The keys of image `key`, in one hash slot (for Redis Cluster), under the prefix. */
  #keys(key: string): string[] {
    const base = `${this.prefix}lease:{${encodeURIComponent(key)}}:`;
    return [`${base}uploads`, `${base}change`, `${base}queue`, `${base}queue-expiry`];
  }

  /** Run `script` within the timeout: its SHA first, its text when Redis does not know it yet. */
  #eval(s: Script, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#run(async () => {
      try {
        return await this.#client.evalsha(s.sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return await this.#client.eval(s.lua, keys.length, ...keys, ...args);
      }
    });
  }

  /**
   * Run `work` once the client is connected, rejecting when that and its answer take longer than
   * the timeout. A command the client refused to send (the connection had just dropped) is sent
   * again once it is back, within the same timeout; one that was sent is never sent twice.
   */
  #run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('RedisStore: closed'));
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | null, value?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#waitingReady.delete(attempt);
        if (err) reject(err);
        else resolve(value as T);
      };
      const timer = setTimeout(() => {
        const why = this.#lastError ? ` (${this.#lastError.message})` : '';
        finish(new Error(`RedisStore: Redis at ${this.target} did not answer within ${this.timeout} ms${why}`));
      }, this.timeout);
      const attempt = () => {
        this.#waitingReady.delete(attempt);
        if (settled) return;
        if (this.#closed) return finish(new Error('RedisStore: closed'));
        const status = this.#client.status;
        if (status === 'end' && !this.#own) return finish(new Error('RedisStore: the client given is closed'));
        if (status !== 'ready') {
          this.#waitingReady.add(attempt);
          if (status === 'wait') this.#client.connect().catch(() => undefined); // a lazy client
          return;
        }
        work().then(
          (value) => finish(null, value),
          (err: unknown) => {
            if (err instanceof Error && NOT_SENT.test(err.message)) {
              setTimeout(attempt, 10);
              return;
            }
            finish(err instanceof Error ? new Error(`RedisStore: Redis at ${this.target} failed: ${err.message}`, { cause: err }) : new Error(String(err)));
          },
        );
      };
      attempt();
    });
  }

  /** Release what a failed acquire may hold, now or once Redis answers again; a lease run out needs nothing. */
  #abandon(token: string, keys: readonly string[], channel: string, ttl: number): void {
    this.#orphans.set(token, { keys, channel, until: Date.now() + ttl });
    this.#releaseOrphans();
  }

  #releaseOrphans(): void {
    if (this.#closed || this.#client.status !== 'ready') return;
    const now = Date.now();
    for (const [token, orphan] of this.#orphans) {
      if (orphan.until < now) {
        this.#orphans.delete(token);
        continue;
      }
      this.#eval(SCRIPTS.release, orphan.keys, [token, orphan.channel]).then(
        (told) => {
          this.#orphans.delete(token);
          this.#toldHere(orphan.channel, told);
        },
        () => undefined, // tried again at the next reconnection, until it has run out
      );
    }
  }
}

/** A time to live in whole milliseconds, at least 1. */
function leaseMs(ttl: number): number {
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) throw new TypeError(`RedisStore: a lease's time to live must be a positive number of ms, not ${String(ttl)}`);
  return Math.max(1, Math.ceil(ttl));
}

/** ioredis's settings for `options` (no client given), and the target named in messages. */
function connectionSettings(options: RedisStoreOptions, timeout: number): [RedisSettings, string] {
  let tls = options.tls === true || options.ca !== undefined;
  let host = '';
  let port = 6379;
  let username = options.username;
  let password = options.password;
  let db = options.db;
  if (options.url !== undefined) {
    const url = new URL(options.url);
    if (url.protocol === 'rediss:') tls = true;
    host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (url.port !== '') port = Number(url.port);
    if (username === undefined && url.username !== '') username = decodeURIComponent(url.username);
    if (password === undefined && url.password !== '') password = decodeURIComponent(url.password);
    const path = url.pathname.replace(/^\//, '');
    if (db === undefined && path !== '') db = Number(path);
  }
  let ca: string | undefined;
  if (options.ca !== undefined) {
    try {
      ca = readFileSync(options.ca, 'utf8');
    } catch (err) {
      throw new Error(`RedisStore: cannot read the CA file '${options.ca}': ${(err as Error).message}`, { cause: err });
    }
  }
  const tlsOptions: ConnectionOptions | undefined = tls ? (ca !== undefined ? { ca } : {}) : undefined;
  const settings: RedisSettings = {
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(db !== undefined ? { db } : {}),
    connectTimeout: Math.max(timeout, 1000),
    commandTimeout: timeout,
    // Fail at once while disconnected (the store waits for the connection itself, within the
    // timeout), and never send a command again after a reconnection: a call that has failed must
    // not take a lease later.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Try again soon after Redis comes back: 100 ms, 200 ms, ... at most a second apart.
    retryStrategy: (times: number) => Math.min(times * 100, 1000),
  };
  if (options.sentinels !== undefined) {
    const sentinels = options.sentinels.map((s) => {
      const m = HOST_PORT.exec(s) as RegExpExecArray;
      return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) };
    });
    Object.assign(settings, {
      sentinels,
      name: options.masterName,
      ...(options.sentinelPassword !== undefined ? { sentinelPassword: options.sentinelPassword } : {}),
      ...(tlsOptions ? { tls: tlsOptions, enableTLSForSentinelMode: true, sentinelTLS: tlsOptions } : {}),
    });
    return [settings, `${tls ? 'rediss' : 'redis'}+sentinel://${options.sentinels.join(',')}/${options.masterName as string}`];
  }
  Object.assign(settings, { host, port, ...(tlsOptions ? { tls: tlsOptions } : {}) });
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return [settings, `${tls ? 'rediss' : 'redis'}://${shownHost}:${port}${db ? `/${db}` : ''}`];
}
