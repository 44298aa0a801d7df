#!/usr/bin/env -S node --max-semi-space-size=1
/**
 * The `glance-edge` command.
 *
 *   glance-edge demo [--data DIR] [--port 9292] [--host 127.0.0.1] [--show-multiple-locations true|false]
 *                    [--allowed-location-hosts CIDRS] [--max-image-size BYTES] [--max-connections N]
 *
 * The shebang gives V8 a 1 MiB young-generation semi-space: at thousands of downloads a second V8
 * otherwise grows it to 16 MiB (48 MiB of heap). Under 1 MiB range load (8 connections) the demo
 * peaked at 124 MB RSS with V8's default, 96-99 MB with 2 MiB and 93-95 MB with 1 MiB, at the
 * same throughput within this machine's noise. V8 reads the flag only at start-up. Both commands
 * also reclaim streamed data every 4 MiB (lib/http/reclaim.ts).
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
import path from 'node:path';
import v8 from 'node:v8';
import { parseArgs } from 'node:util';
import { createDemoApp } from './demo/app';
import { locationPolicy } from './demo/location';
import { DEFAULT_MAX_IMAGE_SIZE } from './demo/service';
import { DiskImageStore } from './demo/store';
import { createLogger, type Logger } from './observe/logs';
import { reclaimStreamedData } from './http/reclaim';
import { createMetrics } from './observe/metrics';
import { createSidecarHandler } from './sidecar/app';

const USAGE = `Usage: glance-edge <command> [options]

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
  proxy   Put glance-edge in front of an existing Glance-v2-style image service (the sidecar).
          --upstream URL                     the image service
          --port N                           port to listen on (default 9393)
          --host H                           address to listen on (default 127.0.0.1)
          --show-multiple-locations BOOL     as the upstream's show_multiple_locations (default true)
          --max-ranges N                     as for demo
          --legacy-upstream BOOL             the upstream understands only Content-Range requests
          --timeout MS                       wait for the upstream to begin answering (default 60000)
          --header-timeout MS, --idle-timeout MS   as for demo (idle: longer than --timeout;
                                             default the larger of 60000 and timeout + 10000)
          --config FILE                      a JSON file with any of: upstream, port, host,
                                             showMultipleLocations, maxRanges, legacyUpstream,
                                             timeout, headerTimeout, idleTimeout, diskFormats,
                                             containerFormats
          Flags win over GLANCE_EDGE_UPSTREAM, GLANCE_EDGE_PORT, GLANCE_EDGE_HOST (and the others
          GLANCE_EDGE_ + the flag's name in capitals, - as _), which win over
          the file.

Both log JSON lines on stdout (pino): one per request, with its X-Openstack-Request-Id; a warn
line per deprecated Content-Range request; one per refused location change. Both serve
Prometheus metrics at GET /metrics.
`;

class UsageError extends Error {}

function port(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port must be a port number, got '${value}'`);
  return n;
}

function bool(value: string | undefined, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (/^(true|yes|1|on)$/i.test(value)) return true;
  if (/^(false|no|0|off)$/i.test(value)) return false;
  throw new UsageError(`--${name} must be true or false, got '${value}'`);
}

function readConfig(file: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--config ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UsageError(`--config ${file}: must hold a JSON object`);
  const known = new Set(['upstream', 'port', 'host', 'showMultipleLocations', 'maxRanges', 'legacyUpstream', 'timeout', 'headerTimeout', 'idleTimeout', 'diskFormats', 'containerFormats']);
  const unknown = Object.keys(doc).find((k) => !known.has(k));
  if (unknown !== undefined) throw new UsageError(`--config ${file}: unknown key '${unknown}'`);
  return doc as Record<string, unknown>;
}

function maxRanges(value: string | undefined): number {
  const n = Number(value ?? 1);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError(`--max-ranges must be a whole number from 1 to 1000, got '${value}'`);
  return n;
}

function whole(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive whole number, got '${value}'`);
  return n;
}

/** A comma list of CIDRs, addresses and host names; '' is the empty list. */
function hostList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const list = value.split(',').map((h) => h.trim()).filter((h) => h !== '');
  try {
    locationPolicy(list, '--allowed-location-hosts');
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  return list;
}

/** How long a client may take over its request's headers, and be idle mid-request, in ms. */
interface ClientTimeouts {
  readonly header: number;
  readonly idle: number;
}

function millis(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive number of milliseconds, got '${value}'`);
  return n;
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
function serve(name: string, logger: Logger, server: http.Server, host: string, listenPort: number, extra: Record<string, unknown>): Promise<void> {
  // Streamed image data is freed every few MiB instead of piling up (see lib/http/reclaim.ts).
  reclaimStreamedData();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, host, () => {
      const address = server.address();
      const actual = typeof address === 'object' && address ? address.port : listenPort;
      const shownHost = host.includes(':') ? `[${host}]` : host;
      logger.info({ ...extra, port: actual }, `glance-edge ${name} listening on http://${shownHost}:${actual}`);
      logger.flush();
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
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (command === 'demo') {
    const { values } = parseArgs({
      args: rest,
      options: {
        data: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'show-multiple-locations': { type: 'string' },
        'max-ranges': { type: 'string' },
        'header-timeout': { type: 'string' },
        'idle-timeout': { type: 'string' },
        'allowed-location-hosts': { type: 'string' },
        'max-image-size': { type: 'string' },
        'max-connections': { type: 'string' },
      },
      strict: true,
    });
    const allowedLocationHosts = hostList(values['allowed-location-hosts']);
    const maxImageSize = whole(values['max-image-size'], 'max-image-size', DEFAULT_MAX_IMAGE_SIZE);
    const maxConnections = whole(values['max-connections'], 'max-connections', 1024);
    // The demo's heap grows by a fifth at a time rather than V8's 1.5-4x (see the header).
    v8.setFlagsFromString('--heap-growing-percent=20');
    const dataDir = path.resolve(values.data ?? 'data');
    const store = await DiskImageStore.open(dataDir);
    const logger = createLogger();
    const app = createDemoApp({
      store,
      showMultipleLocations: bool(values['show-multiple-locations'], 'show-multiple-locations', true),
      maxRanges: maxRanges(values['max-ranges']),
      ...(allowedLocationHosts === undefined ? {} : { allowedLocationHosts }),
      maxImageSize,
      logger,
      metrics: createMetrics(),
    });
    const timeouts = { header: millis(values['header-timeout'], 'header-timeout', 20_000), idle: millis(values['idle-timeout'], 'idle-timeout', 60_000) };
    const server = createServer(app, timeouts);
    server.maxConnections = maxConnections;
    await serve('demo', logger, server, values.host ?? '127.0.0.1', port(values.port, 9292), { data: dataDir });
    return;
  }
  if (command === 'proxy') {
    const { values } = parseArgs({
      args: rest,
      options: {
        upstream: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'show-multiple-locations': { type: 'string' },
        'max-ranges': { type: 'string' },
        'legacy-upstream': { type: 'string' },
        timeout: { type: 'string' },
        'header-timeout': { type: 'string' },
        'idle-timeout': { type: 'string' },
        config: { type: 'string' },
      },
      strict: true,
    });
    const file = values.config === undefined ? {} : readConfig(values.config);
    const pick = (flag: string | undefined, env: string, key: string): string | undefined => {
      const fromFile = file[key];
      return flag ?? process.env[env] ?? (fromFile === undefined ? undefined : String(fromFile));
    };
    const upstream = pick(values.upstream, 'GLANCE_EDGE_UPSTREAM', 'upstream');
    if (!upstream || !/^https?:\/\/./.test(upstream)) throw new UsageError('proxy needs --upstream http(s)://host:port (or GLANCE_EDGE_UPSTREAM, or upstream in --config)');
    const timeout = Number(pick(values.timeout, 'GLANCE_EDGE_TIMEOUT', 'timeout') ?? 60000);
    if (!Number.isInteger(timeout) || timeout <= 0) throw new UsageError('--timeout must be a positive number of milliseconds');
    const formats = (key: 'diskFormats' | 'containerFormats') => (file[key] === undefined ? {} : { [key]: file[key] as string[] });
    const logger = createLogger();
    const handler = createSidecarHandler({
      upstream,
      timeout,
      showMultipleLocations: bool(pick(values['show-multiple-locations'], 'GLANCE_EDGE_SHOW_MULTIPLE_LOCATIONS', 'showMultipleLocations'), 'show-multiple-locations', true),
      maxRanges: maxRanges(pick(values['max-ranges'], 'GLANCE_EDGE_MAX_RANGES', 'maxRanges')),
      legacyUpstream: bool(pick(values['legacy-upstream'], 'GLANCE_EDGE_LEGACY_UPSTREAM', 'legacyUpstream'), 'legacy-upstream', false),
      ...formats('diskFormats'),
      ...formats('containerFormats'),
      logger,
      metrics: createMetrics(),
    });
    const host = pick(values.host, 'GLANCE_EDGE_HOST', 'host') ?? '127.0.0.1';
    // A client waits in silence while the upstream thinks: it must not be cut before the upstream's deadline.
    const timeouts = {
      header: millis(pick(values['header-timeout'], 'GLANCE_EDGE_HEADER_TIMEOUT', 'headerTimeout'), 'header-timeout', 20_000),
      idle: millis(pick(values['idle-timeout'], 'GLANCE_EDGE_IDLE_TIMEOUT', 'idleTimeout'), 'idle-timeout', Math.max(60_000, timeout + 10_000)),
    };
    if (timeouts.idle <= timeout) throw new UsageError(`--idle-timeout (${timeouts.idle}) must be longer than --timeout (${timeout}): a client waits idle while the upstream answers`);
    await serve('proxy', logger, createServer(handler, timeouts), host, port(pick(values.port, 'GLANCE_EDGE_PORT', 'port'), 9393), { upstream });
    return;
  }
  throw new UsageError(`unknown command '${command}'`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    const usage = err instanceof UsageError || (err instanceof Error && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'));
    process.stderr.write(`glance-edge: ${err instanceof Error ? err.message : String(err)}\n${usage ? `\n${USAGE}` : ''}`);
    process.exit(usage ? 2 : 1);
  });
}
