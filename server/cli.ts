#!/usr/bin/env -S node --max-semi-space-size=2
/**
 * The `glance-edge` command.
 *
 *   glance-edge demo [--data DIR] [--port 9292] [--host 127.0.0.1] [--show-multiple-locations true|false] ...
 *   glance-edge proxy --upstream URL [--port 9393] [--config FILE] ...
 *   glance-edge check URL [--token T] [--json] ...   (server/check/)
 *
 * A wrong command line is one line on stderr that names what the user wrote (the flag, the
 * GLANCE_EDGE_ variable, or the key and its --config file) and exit status 2; the usage goes to
 * stdout on --help, -h and `help`, and to stderr when the command is missing.
 *
 * The shebang gives V8 a 2 MiB young-generation semi-space: at thousands of downloads a second V8
 * otherwise grows it to 16 MiB (48 MiB of heap). Under 1 MiB range load (8 connections) the demo
 * peaked at 124 MB RSS with V8's default, 96-99 MB with 2 MiB and 93-95 MB with 1 MiB, at the
 * same throughput within this machine's noise. 1 MiB was the setting until the sidecar's small
 * pass-through got cheap: objects of the 32 requests in flight then outlived a 1 MiB young
 * generation and were promoted, and old-space collections cost the sidecar its rate and its tail
 * (bench small, GET: 0.93 x a bare node:http proxy with p99 20.5 ms at 1 MiB, 1.14 x with p99 7.0 ms
 * at 2 MiB; a 256 MiB download peaked at 90.1 and 89.0 MB RSS). V8 reads the flag only at
 * start-up. Both commands also reclaim streamed data every 4 MiB (server/perf/reclaim.ts).
 *
 * The demo also grows its heap by a fifth at a time (--heap-growing-percent=20, which V8 reads at
 * each collection, so it is set at run time). With V8's own factor its old space climbed from 8 to
 * 72 MB over a minute of mixed load at 64 connections, and its RSS from 143 to 163 MB; with 20 %
 * RSS is flat at 110-115 MB from the fifth second, at the same request rate (1,720 against
 * 1,630-1,780 req/s). The sidecar keeps V8's factor: 20 % cost it about a tenth of its small
 * pass-through rate, and its RSS is flat without it.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { createDemoApp } from './demo/app';
import { locationPolicy } from './demo/location';
import { DEFAULT_MAX_IMAGE_SIZE } from './demo/service';
import { DiskImageStore } from './demo/store';
import type { FormatListOption } from '../lib/defaults/middleware';
import { createLogger, type Logger } from './observe/logs';
import { reclaimStreamedData } from './perf/reclaim';
import { createMetrics } from './observe/metrics';
import { createSidecar, warnLocalStore } from './sidecar/app';
import { isWorker, runPrimary, workerListening, workerMetrics, workerStore } from './cluster';
import { RecordHub, WorkerRecords } from './stores/records';
import { RedisStore, type RedisStoreOptions } from './stores/redis';
import { CheckUsageError, parseCheckArgs } from './check/args';
import { runCheck } from './check/run';

const USAGE = `Usage: glance-edge <command> [options]
       glance-edge help | --help | -h

Commands:
  demo    Run an embedded Glance-v2-compatible image service on disk, with glance-edge in front.
          --data DIR                         where images are kept (default ./data)
          --port N                           port to listen on (default 9292; 0 picks a free one)
          --host H                           address to listen on (default 127.0.0.1)
          --show-multiple-locations BOOL     Glance's show_multiple_locations (default true)
          --max-ranges N                     most ranges one download may ask for, served as
                                             multipart/byteranges (default 1: Glance's 400)
          --header-timeout MS                a client must send its request headers within this
                                             (default 20000)
          --idle-timeout MS                  close a connection idle this long mid-request (a body
                                             that stops coming, a client that stops reading;
                                             default 60000)
          --allowed-location-hosts LIST      loopback and private addresses that http(s) image
                                             locations may point at: a comma list of CIDRs,
                                             addresses and host names (default 127.0.0.0/8,::1;
                                             '' allows none). Link-local, unspecified and the
                                             demo's own port are never connected to
          --max-image-size BYTES             most bytes of one image's data: Glance's
                                             image_size_cap (default 1099511627776, 1 TiB)
          --max-connections N                most client connections open at once; more are
                                             closed as they come (default 1024)
          --workers N|auto                   worker processes sharing the port (auto: one per
                                             core; default 1). The primary process keeps the
                                             image records and the race registry for them all
  proxy   Put glance-edge in front of an existing Glance-v2-style image service (the sidecar).
          --upstream URL                     the image service, http:// or https://
          --port N                           port to listen on (default 9393)
          --host H                           address to listen on (default 127.0.0.1)
          --show-multiple-locations BOOL     as the upstream's show_multiple_locations (default true)
          --max-ranges N                     as for demo
          --legacy-upstream BOOL             the upstream understands only Content-Range requests
                                             (default false)
          --timeout MS                       wait for the upstream to begin answering (default 60000)
          --header-timeout MS, --idle-timeout MS   as for demo (idle: longer than --timeout;
                                             default the larger of 60000 and timeout + 10000)
          --workers N|auto                   worker processes sharing the port (auto: one per
                                             core; default 1). Without --store they share the
                                             race registry through the primary process
          --peers BOOL                       other sidecars front the same service: warn when
                                             the race registry is not shared (default false)
          --lease-ttl MS                     how long a lease in the race registry lasts unless
                                             renewed (every third of it; default 30000)
          --store URL                        the race registry in Redis, shared by every sidecar:
                                             redis://[user@]host:port/db or rediss://
          --store-password P                 its password (better: GLANCE_EDGE_STORE_PASSWORD)
          --store-prefix S                   prefix of its keys (default glance-edge:)
          --store-timeout MS                 longest wait for Redis; then 503 (default 2000)
          --store-ca FILE                    CA certificates for rediss://
          --store-sentinels H:P,H:P          Redis through Sentinel, with
          --store-sentinel-master NAME       the name of its master
          --config FILE                      a JSON file with any of: upstream, port, host,
                                             showMultipleLocations, maxRanges, legacyUpstream,
                                             timeout, headerTimeout, idleTimeout, workers, peers,
                                             leaseTtl, store, storePassword, storePrefix, storeTimeout,
                                             storeCa, storeSentinels, storeSentinelMaster,
                                             diskFormats, containerFormats
          Flags win over GLANCE_EDGE_UPSTREAM, GLANCE_EDGE_PORT, GLANCE_EDGE_HOST (and the others
          GLANCE_EDGE_ + the flag's name in capitals, - as _), which win over
          the file.
  check   Probe an image service as a client would and report what it lacks of the contract:
          glance-edge check URL [options]    (URL: the image API's root; or OS_IMAGE_URL)
          --token T                          X-Auth-Token to send (default OS_AUTH_TOKEN)
          --header 'Name: value'             a header sent with every request (repeatable)
          --json                             the report as JSON on stdout instead of a table
          --timeout MS                       longest wait for one answer (default 30000)
          --image ID                         only the read-only rows (ranges, the legacy form,
                                             schema, metadefs) on this image; creates nothing
          --keep                             leave the check's images (glance-edge-check-*)
          --cleanup                          delete the images a killed check left behind
          --cacert FILE | --insecure         trust these CA certificates | check no certificate
          --serve-on HOST:PORT               where the check serves the data of its http
                                             locations, an address the service reaches
                                             (default 127.0.0.1:0, a free port)
          Exit status: 0 when every required row it could test is ok, 1 when a required row
          is missing or differs, 2 when it could not run or could test no required row.
  help    Print this text.

BOOL is true or false, nothing else. N, MS (milliseconds) and BYTES are whole numbers in decimal:
a port from 0 to 65535, MS from 1 to 86400000 (a day), --max-ranges from 1 to 1000,
--max-connections from 1 to 1048576, --max-image-size from 1 to 9007199254740991. In the
--config file they are JSON numbers and JSON true or false.

Both log JSON lines on stdout (pino): one per request, with its X-Openstack-Request-Id; a warn
line per deprecated Content-Range request; one per refused location change. Both serve
Prometheus metrics at GET /metrics.

Exit status: 2 when the command line is wrong (one line on stderr says what), 1 when the command
cannot start (its port taken, its data folder unwritable), 0 once stopped by SIGINT or SIGTERM.
`;

/** A wrong command line: one line on stderr naming what the user wrote, and exit status 2. */
class UsageError extends Error {}

const DEMO_FLAGS = ['data', 'port', 'host', 'show-multiple-locations', 'max-ranges', 'header-timeout', 'idle-timeout', 'allowed-location-hosts', 'max-image-size', 'max-connections', 'workers'] as const;
const PROXY_FLAGS = [
  'upstream',
  'port',
  'host',
  'show-multiple-locations',
  'max-ranges',
  'legacy-upstream',
  'timeout',
  'header-timeout',
  'idle-timeout',
  'workers',
  'peers',
  'lease-ttl',
  'store',
  'store-password',
  'store-prefix',
  'store-timeout',
  'store-ca',
  'store-sentinels',
  'store-sentinel-master',
  'config',
] as const;
const COMMANDS = { demo: DEMO_FLAGS as readonly string[], proxy: PROXY_FLAGS as readonly string[] };
type Command = keyof typeof COMMANDS;
/** The keys of proxy's --config file: its flags but --config, in camelCase, and the format lists. */
const CONFIG_KEYS = [...PROXY_FLAGS.filter((f) => f !== 'config').map(camelCase), 'diskFormats', 'containerFormats'];

/** Timeouts in ms: at least 1, at most a day (well inside Node's timers, which overflow at 2^31 - 1). */
const MAX_MS = 86_400_000;
/** Linux's default ceiling on one process's open files (fs.nr_open). */
const MAX_CONNECTIONS = 1_048_576;

function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** The candidate that `word` most likely misspells: the same letters apart from case, - and _, or two edits away. */
function nearest(word: string, candidates: readonly string[]): string | undefined {
  const loose = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const distance = (a: string, b: string): number => {
    let row = Array.from({ length: b.length + 1 }, (_v, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const next = [i];
      for (let j = 1; j <= b.length; j++) {
        next.push(Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)));
      }
      row = next;
    }
    return row[b.length] ?? Infinity;
  };
  const w = loose(word);
  if (w.length < 3) return undefined;
  return candidates.find((c) => loose(c) === w) ?? candidates.find((c) => distance(loose(c), w) <= 2);
}

/**
 * The flags of `command` in `args`: `--name value` or `--name=value`, the last of a repeated flag
 * winning. `help` is true when `--help` or `-h` is among them, whatever else is wrong.
 */
function parseFlags(command: Command, args: readonly string[]): { readonly help: boolean; readonly flags: ReadonlyMap<string, string> } {
  const known = COMMANDS[command];
  const flags = new Map<string, string>();
  let help = false;
  let problem: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg === '--') {
      const after = args[i + 1];
      if (after !== undefined) problem ??= `${command} takes no arguments, got '${after}'`;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      problem ??= `${command} takes no arguments, got '${arg}'`;
      continue;
    }
    const eq = arg.indexOf('=');
    const spelled = arg.startsWith('--') && eq > 2 ? arg.slice(0, eq) : arg;
    const name = spelled.slice(2);
    if (spelled === '--help') {
      problem ??= `--help takes no value, got '${arg}'`;
      continue;
    }
    if (!spelled.startsWith('--') || !known.includes(name)) {
      problem ??= unknownFlag(command, spelled);
      continue;
    }
    let value: string;
    if (spelled !== arg) {
      value = arg.slice(eq + 1);
    } else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith('--')) {
        problem ??= `${spelled} needs a value`;
        continue;
      }
      value = next;
      i++;
    }
    flags.set(name, value);
  }
  if (!help && problem !== undefined) throw new UsageError(problem);
  return { help, flags };
}

function unknownFlag(command: Command, spelled: string): string {
  const other: Command = command === 'demo' ? 'proxy' : 'demo';
  const name = spelled.replace(/^--?/, '');
  if (spelled.startsWith('--') && COMMANDS[other].includes(name)) return `unknown flag '${spelled}' for ${command} (it is a flag of ${other})`;
  const near = nearest(name, COMMANDS[command]);
  return `unknown flag '${spelled}' for ${command}${near === undefined ? '' : ` (did you mean '--${near}'?)`}`;
}

/**
 * A setting's value and where the user gave it, named as they wrote it: `--port`,
 * `GLANCE_EDGE_PORT`, or `port in proxy.json`. From a flag or a variable it is a string; from the
 * file, any JSON value.
 */
interface Given {
  readonly value: unknown;
  readonly from: string;
  readonly inFile: boolean;
}

/** A proxy --config file: its name as given and its object. */
interface ConfigFile {
  readonly file: string;
  readonly doc: Readonly<Record<string, unknown>>;
}

/** `flag`'s value from the command line, else its GLANCE_EDGE_ variable, else its key in the file. */
function lookup(flags: ReadonlyMap<string, string>, flag: string, sources: { readonly env: boolean; readonly config?: ConfigFile | undefined }): Given | undefined {
  const value = flags.get(flag);
  if (value !== undefined) return { value, from: `--${flag}`, inFile: false };
  if (sources.env) {
    const variable = `GLANCE_EDGE_${flag.toUpperCase().replace(/-/g, '_')}`;
    const fromEnv = process.env[variable];
    if (fromEnv !== undefined) return { value: fromEnv, from: variable, inFile: false };
  }
  const key = camelCase(flag);
  const { config } = sources;
  if (config !== undefined && Object.hasOwn(config.doc, key)) return { value: config.doc[key], from: `${key} in ${config.file}`, inFile: true };
  return undefined;
}

/** What the user wrote, for a message: quoted as typed, or as JSON from the file. */
function shown(given: Given): string {
  const { value } = given;
  if (!given.inFile) return `'${String(value)}'`;
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null) return 'an object';
  return JSON.stringify(value);
}

function integer(given: Given | undefined, fallback: number, min: number, max: number): number {
  if (given === undefined) return fallback;
  const { value } = given;
  const n = given.inFile ? (typeof value === 'number' ? value : NaN) : /^\d+$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${given.from} must be an integer from ${min} to ${max}, got ${shown(given)}`);
  return n;
}

function millis(given: Given | undefined, fallback: number): number {
  return integer(given, fallback, 1, MAX_MS);
}

/** Exactly true or false: from a flag or a variable the word, from the file the JSON boolean. */
function bool(given: Given | undefined, fallback: boolean): boolean {
  if (given === undefined) return fallback;
  const { value } = given;
  if (given.inFile ? value === true : value === 'true') return true;
  if (given.inFile ? value === false : value === 'false') return false;
  throw new UsageError(`${given.from} must be true or false, got ${shown(given)}`);
}

function text(given: Given | undefined, fallback: string): string {
  if (given === undefined) return fallback;
  if (typeof given.value !== 'string' || given.value === '') throw new UsageError(`${given.from} must be a non-empty string, got ${shown(given)}`);
  return given.value;
}

function httpUrl(given: Given): string {
  const { value } = given;
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    throw new UsageError(`${given.from} must be an http:// or https:// URL, got ${shown(given)}`);
  }
  return value as string;
}

/** A format list of the file: an array of names, or { add, remove } arrays (see imageFormats). */
function formatList(given: Given | undefined): FormatListOption | undefined {
  if (given === undefined) return undefined;
  const { value } = given;
  const names = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string' && s !== '');
  const changes = typeof value === 'object' && value !== null && Object.entries(value).every(([k, v]) => (k === 'add' || k === 'remove') && names(v));
  if (!names(value) && !changes) throw new UsageError(`${given.from} must be an array of format names or an object of "add" and "remove" arrays, got ${shown(given)}`);
  return value as FormatListOption;
}

/** A comma list of CIDRs, addresses and host names; '' is the empty list. */
function hostList(given: Given | undefined): string[] | undefined {
  if (given === undefined) return undefined;
  const list = String(given.value).split(',').map((h) => h.trim()).filter((h) => h !== '');
  try {
    locationPolicy(list, given.from);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  return list;
}

function readConfig(file: string): ConfigFile {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--config ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : err instanceof Error ? err.message : String(err)}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(source);
  } catch (err) {
    throw new UsageError(`--config ${file} is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UsageError(`--config ${file} must hold a JSON object, got ${shown({ value: doc, from: file, inFile: true })}`);
  for (const key of Object.keys(doc)) {
    if (CONFIG_KEYS.includes(key)) continue;
    const near = nearest(key, CONFIG_KEYS);
    throw new UsageError(`unknown key '${key}' in ${file}${near === undefined ? '' : ` (did you mean '${near}'?)`}`);
  }
  return { file, doc: doc as Record<string, unknown> };
}

/** How long a client may take over its request's headers, and be idle mid-request, in ms. */
interface ClientTimeouts {
  readonly header: number;
  readonly idle: number;
}

/** An http.Server for `handler` that cuts clients too slow with their headers or idle mid-request. */
function createServer(handler: http.RequestListener, timeouts: ClientTimeouts): http.Server {
  // Checked every second, so that a slow client is cut within a second of its deadline.
  const server = http.createServer({ connectionsCheckingInterval: 1000 }, handler);
  server.headersTimeout = timeouts.header;
  // No overall deadline: image uploads and downloads may take long. A connection on which nothing
  // moves for `idle` ms (a body that stops coming, a client that stops reading) is closed.
  server.requestTimeout = 0;
  server.timeout = timeouts.idle;
  server.keepAliveTimeout = 5_000;
  return server;
}

/** Listen, log the address, and close gracefully on SIGINT/SIGTERM. */
function serve(name: string, logger: Logger, server: http.Server, host: string, listenPort: number, extra: Record<string, unknown>, listening?: () => void): Promise<void> {
  // Streamed image data is freed every few MiB instead of piling up (see server/perf/reclaim.ts).
  reclaimStreamedData();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, host, () => {
      const address = server.address();
      const actual = typeof address === 'object' && address ? address.port : listenPort;
      const shownHost = host.includes(':') ? `[${host}]` : host;
      // A worker tells its primary, which announces the address once every worker listens.
      if (listening) listening();
      else {
        logger.info({ ...extra, port: actual }, `glance-edge ${name} listening on http://${shownHost}:${actual}`);
        logger.flush();
      }
      // Graceful stop: no new connections, in-flight requests finish, idle keep-alive
      // connections are closed as they become idle; after 10 s the process exits anyway.
      const stop = () => {
        logger.info(`glance-edge ${name} stopping: no new connections, waiting for requests in flight (10 s at most)`);
        server.close(() => process.exit(0));
        setInterval(() => server.closeIdleConnections(), 50).unref();
        setTimeout(() => process.exit(0), 10_000).unref();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      resolve();
    });
  });
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    // A missing command is a wrong command line: the usage goes where errors go.
    process.stderr.write(USAGE);
    process.exitCode = 2;
    return;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    const [about, extra] = rest;
    if (command === 'help' && about !== undefined && about !== 'demo' && about !== 'proxy' && about !== 'check') throw new UsageError(unknownCommand(about));
    if (command === 'help' && extra !== undefined) throw new UsageError(`help takes one command at most, got '${extra}'`);
    process.stdout.write(USAGE);
    return;
  }
  if (command === 'check') {
    await check(rest);
    return;
  }
  if (command !== 'demo' && command !== 'proxy') throw new UsageError(unknownCommand(command));
  const { help, flags } = parseFlags(command, rest);
  if (help) {
    process.stdout.write(USAGE);
    return;
  }
  if (command === 'demo') await demo(flags);
  else await proxy(flags);
}

function unknownCommand(command: string): string {
  const near = nearest(command, ['demo', 'proxy', 'check', 'help']);
  return `unknown command '${command}' (${near === undefined ? 'the commands are demo, proxy, check and help' : `did you mean '${near}'?`})`;
}

/** `glance-edge check` (server/check/): its exit status is the check's. */
async function check(args: readonly string[]): Promise<void> {
  let parsed: ReturnType<typeof parseCheckArgs>;
  try {
    parsed = parseCheckArgs(args, process.env, nearest);
  } catch (err) {
    throw err instanceof CheckUsageError ? new UsageError(err.message) : err;
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
    return;
  }
  process.exitCode = await runCheck(parsed.options);
}

async function demo(flags: ReadonlyMap<string, string>): Promise<void> {
  const given = (flag: (typeof DEMO_FLAGS)[number]) => lookup(flags, flag, { env: false });
  // Every flag is checked before anything starts.
  const dataGiven = given('data');
  const dataDir = path.resolve(text(dataGiven, 'data'));
  const listenPort = integer(given('port'), 9292, 0, 65535);
  const host = text(given('host'), '127.0.0.1');
  const showMultipleLocations = bool(given('show-multiple-locations'), true);
  const maxRanges = integer(given('max-ranges'), 1, 1, 1000);
  const timeouts = { header: millis(given('header-timeout'), 20_000), idle: millis(given('idle-timeout'), 60_000) };
  const allowedLocationHosts = hostList(given('allowed-location-hosts'));
  const maxImageSize = integer(given('max-image-size'), DEFAULT_MAX_IMAGE_SIZE, 1, Number.MAX_SAFE_INTEGER);
  const maxConnections = integer(given('max-connections'), 1024, 1, MAX_CONNECTIONS);
  const workers = workerCount(given('workers'));
  const inCluster = isWorker();
  // The demo's heap grows by a fifth at a time rather than V8's 1.5-4x (see the header).
  v8.setFlagsFromString('--heap-growing-percent=20');
  // The process that opens the store keeps the records; workers read a copy it keeps current.
  const store = await (inCluster ? DiskImageStore.replica(dataDir, new WorkerRecords()) : DiskImageStore.open(dataDir)).catch((err: unknown) => {
    const folder = dataGiven === undefined ? `the default data folder ${dataDir}` : `--data ${String(dataGiven.value)}`;
    throw new Error(`${folder}: ${err instanceof Error ? err.message : String(err)}`);
  });
  const logger = createLogger();
  if (workers > 1 && !inCluster) {
    const records = new RecordHub(store);
    await runPrimary({ command: 'demo', workers, shared: false, serve: (worker) => records.serve(worker), logger, host, extra: { data: dataDir } });
    return;
  }
  const metrics = createMetrics();
  const app = createDemoApp({
    store,
    showMultipleLocations,
    maxRanges,
    ...(allowedLocationHosts === undefined ? {} : { allowedLocationHosts }),
    maxImageSize,
    logger,
    metrics,
    ...(inCluster ? { registry: workerStore(undefined, 2000), servedMetrics: workerMetrics(metrics.registry) } : {}),
  });
  const server = createServer(app, timeouts);
  server.maxConnections = maxConnections;
  if (inCluster) await serve('demo worker', logger, server, host, listenPort, { data: dataDir }, () => workerListening(server, logger));
  else await serve('demo', logger, server, host, listenPort, { data: dataDir });
}

async function proxy(flags: ReadonlyMap<string, string>): Promise<void> {
  const configFile = flags.get('config');
  const config = configFile === undefined ? undefined : readConfig(configFile);
  const given = (flag: Exclude<(typeof PROXY_FLAGS)[number], 'config'>) => lookup(flags, flag, { env: true, config });
  const fromFile = (key: 'diskFormats' | 'containerFormats'): Given | undefined =>
    config !== undefined && Object.hasOwn(config.doc, key) ? { value: config.doc[key], from: `${key} in ${config.file}`, inFile: true } : undefined;
  // Every setting is checked before anything starts.
  const upstreamGiven = given('upstream');
  if (upstreamGiven === undefined) throw new UsageError('proxy needs --upstream URL (or GLANCE_EDGE_UPSTREAM, or upstream in a --config file)');
  const upstream = httpUrl(upstreamGiven);
  const listenPort = integer(given('port'), 9393, 0, 65535);
  const host = text(given('host'), '127.0.0.1');
  const showMultipleLocations = bool(given('show-multiple-locations'), true);
  const maxRanges = integer(given('max-ranges'), 1, 1, 1000);
  const legacyUpstream = bool(given('legacy-upstream'), false);
  const timeoutGiven = given('timeout');
  const timeout = millis(timeoutGiven, 60_000);
  // A client waits in silence while the upstream thinks: it must not be cut before the upstream's deadline.
  const idleGiven = given('idle-timeout');
  const timeouts = { header: millis(given('header-timeout'), 20_000), idle: millis(idleGiven, Math.max(60_000, timeout + 10_000)) };
  if (idleGiven !== undefined && timeouts.idle <= timeout) {
    const upstreamWait = timeoutGiven === undefined ? 'the default --timeout' : timeoutGiven.from;
    throw new UsageError(`${idleGiven.from} (${timeouts.idle}) must be longer than ${upstreamWait} (${timeout}): a client waits idle while the upstream answers`);
  }
  const diskFormats = formatList(fromFile('diskFormats'));
  const containerFormats = formatList(fromFile('containerFormats'));
  const workers = workerCount(given('workers'));
  const peers = bool(given('peers'), false);
  const leaseTtlGiven = given('lease-ttl');
  const leaseTtl = leaseTtlGiven === undefined ? undefined : integer(leaseTtlGiven, 30_000, 300, MAX_MS);
  const storeOptions = redisStoreOptions(given);
  const logger = createLogger();
  if (workers > 1 && !isWorker()) {
    // The workers share the primary's registry, which other sidecars do not see: said once, here.
    if (peers && storeOptions === undefined) warnLocalStore(logger);
    await runPrimary({ command: 'proxy', workers, shared: storeOptions !== undefined, logger, host, extra: { upstream } });
    return;
  }
  const shared = storeOptions === undefined ? undefined : redisStore(storeOptions);
  const metrics = createMetrics();
  const inCluster = isWorker();
  const handler = createSidecar({
    upstream,
    timeout,
    showMultipleLocations,
    maxRanges,
    legacyUpstream,
    ...(diskFormats === undefined ? {} : { diskFormats }),
    ...(containerFormats === undefined ? {} : { containerFormats }),
    logger,
    metrics,
    ...(inCluster ? { store: workerStore(shared, 2000), servedMetrics: workerMetrics(metrics.registry) } : shared ? { store: shared } : {}),
    peers: peers && !inCluster,
    ...(leaseTtl === undefined ? {} : { leaseTtl }),
  });
  const server = createServer(handler, timeouts);
  if (inCluster) await serve('proxy worker', logger, server, host, listenPort, { upstream }, () => workerListening(server, logger));
  else await serve('proxy', logger, server, host, listenPort, { upstream, ...(shared ? { store: shared.target } : {}) });
}

/** --workers: a count from 1 to 1024, or auto (one per core). */
function workerCount(given: Given | undefined): number {
  if (given === undefined) return 1;
  if (given.value === 'auto') return Math.max(1, os.availableParallelism());
  return integer(given, 1, 1, 1024);
}

/** The Redis store's options from --store and its companions, or undefined without --store or --store-sentinels. */
function redisStoreOptions(given: (flag: Exclude<(typeof PROXY_FLAGS)[number], 'config'>) => Given | undefined): RedisStoreOptions | undefined {
  const url = given('store');
  const sentinels = given('store-sentinels');
  const companions = (['store-password', 'store-prefix', 'store-timeout', 'store-ca', 'store-sentinel-master'] as const).map(given).filter((g) => g !== undefined);
  if (url === undefined && sentinels === undefined) {
    const [stray] = companions;
    if (stray !== undefined) throw new UsageError(`${stray.from} needs --store URL (or --store-sentinels)`);
    return undefined;
  }
  if (url !== undefined && sentinels !== undefined) throw new UsageError(`${url.from} and ${sentinels.from} exclude each other: give the Redis URL or its Sentinels`);
  const master = given('store-sentinel-master');
  if (sentinels !== undefined && master === undefined) throw new UsageError(`${sentinels.from} needs --store-sentinel-master NAME`);
  const password = given('store-password');
  const prefix = given('store-prefix');
  const ca = given('store-ca');
  return {
    ...(url === undefined ? {} : { url: redisUrl(url) }),
    ...(sentinels === undefined ? {} : { sentinels: hostPorts(sentinels) }),
    ...(master === undefined ? {} : { masterName: text(master, '') }),
    ...(password === undefined ? {} : { password: text(password, '') }),
    ...(prefix === undefined ? {} : { prefix: text(prefix, '') }),
    ...(ca === undefined ? {} : { ca: text(ca, '') }),
    timeout: millis(given('store-timeout'), 2000),
  };
}

function redisUrl(given: Given): string {
  const value = text(given, '');
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    throw new UsageError(`${given.from} must be a redis:// or rediss:// URL, got ${shown(given)}`);
  }
  return value;
}

/** host:port pairs: a comma list, or in the file an array of strings. */
function hostPorts(given: Given): string[] {
  const list = Array.isArray(given.value) ? given.value : typeof given.value === 'string' ? given.value.split(',').map((h) => h.trim()) : [];
  if (list.length === 0 || !list.every((h) => typeof h === 'string' && /^.+:\d{1,5}$/.test(h))) {
    throw new UsageError(`${given.from} must be a list of host:port, got ${shown(given)}`);
  }
  return list as string[];
}

/** The Redis store; a CA file that cannot be read is a wrong command line. */
function redisStore(options: RedisStoreOptions): RedisStore {
  try {
    return new RedisStore(options);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    // One line, whatever the message holds (JSON.parse quotes the file it could not read).
    const message = (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ');
    process.stderr.write(`glance-edge: ${message}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  });
}
