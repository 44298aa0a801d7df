#!/usr/bin/env node
// The bench harness: runs the suites of bench/suites.js against the built servers (dist/), writes
// every figure to bench/results/<ISO time>.json and prints the report (bench/report.js).
//
//   npm run bench [-- --suite small,download,ranges,clients,workers,registry] [--quick] [--rounds N] [--duration S]
//                   [--warmup S] [--image-mib N] [--server-cpu N] [--load-cpu N] [--keep] [--out FILE]
//
// See bench/README.md.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { setInterval, clearInterval } = require('node:timers');
const { parseArgs } = require('node:util');
const lib = require('./lib');
const config = require('./suites');
const { render } = require('./report');

const { HOST, ROOT, log, warn } = lib;
const CLI = path.join(ROOT, 'dist/server/cli.js');
const PEER_DIR = path.join(__dirname, 'peers');
const LISTENING = /listening (?:on )?(http:\/\/127\.0\.0\.1:\d+)/;
const ID = config.IMAGE_ID;

const USAGE = `usage: npm run bench -- [options]   (or node bench/run.js [options])
  --suite LIST      suites to run, comma-separated (default: ${Object.keys(config.suites).join(',')})
  --quick           ${JSON.stringify(config.quick)} unless given
  --rounds N        measured rounds per peer and workload, interleaved (default ${config.settings.rounds})
  --duration S      seconds per measured run (default ${config.settings.duration})
  --warmup S        seconds of load before each measured run (default ${config.settings.warmup})
  --image-mib N     size of the image of the download and ranges suites (default ${config.settings.imageMiB})
  --server-cpu N    CPU of the servers under test (default ${config.settings.serverCpu}; 0 on a 1-CPU machine)
  --load-cpu N      CPU of wrk (default ${config.settings.loadCpu})
  --keep            keep the temp folder (logs, configs, data)
  --out FILE        where to write the JSON (default bench/results/<ISO time>.json)
  --strict          exit 3 when a target is missed`;

// --- Settings -----------------------------------------------------------------------------------

function settingsFrom(argv) {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      suite: { type: 'string' },
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      'image-mib': { type: 'string' },
      'server-cpu': { type: 'string' },
      'load-cpu': { type: 'string' },
      keep: { type: 'boolean', default: false },
      strict: { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const s = { ...config.settings, ...(v.quick ? config.quick : {}) };
  const num = (flag, key, min) => {
    if (v[flag] === undefined) return;
    const n = Number(v[flag]);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${flag} must be a number >= ${min}, got ${v[flag]}`);
    s[key] = n;
  };
  num('rounds', 'rounds', 1);
  num('duration', 'duration', 1);
  num('warmup', 'warmup', 0);
  num('image-mib', 'imageMiB', 2);
  num('server-cpu', 'serverCpu', 0);
  num('load-cpu', 'loadCpu', 0);
  const cores = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  if (cores < 2) s.serverCpu = s.loadCpu = 0;
  for (const k of ['serverCpu', 'loadCpu']) if (s[k] >= cores) throw new Error(`CPU ${s[k]} does not exist here (${cores} CPUs)`);
  s.suites = v.suite ? v.suite.split(',').map((x) => x.trim()).filter(Boolean) : Object.keys(config.suites);
  for (const name of s.suites) if (!config.suites[name]) throw new Error(`unknown suite ${name} (known: ${Object.keys(config.suites).join(', ')})`);
  s.quick = v.quick;
  return { settings: s, keep: v.keep, strict: v.strict, out: v.out };
}

// --- What is needed -----------------------------------------------------------------------------

function has(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function prerequisites(suites) {
  const needNginx = suites.some((n) => ['small', 'download', 'ranges'].includes(n));
  const needRedis = suites.includes('registry');
  const nginxBin = () => (has('nginx') ? 'nginx' : fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null);
  const missing = [];
  if (!has('wrk')) missing.push('wrk');
  if (!has('taskset')) missing.push('util-linux');
  if (needNginx && !nginxBin()) missing.push('nginx-light');
  if (needRedis && !has('redis-server')) missing.push('redis-server');
  if (missing.length) {
    log(`apt-get install ${missing.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () => execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'ignore', env, timeout: 600_000 });
    try {
      install();
    } catch {
      execFileSync('apt-get', ['update'], { stdio: 'ignore', env, timeout: 600_000 });
      install();
    }
  }
  if (!fs.existsSync(path.join(ROOT, 'node_modules/undici'))) throw new Error(`undici is missing: run npm ci in ${ROOT}`);
  if (!fs.existsSync(CLI)) {
    log('dist/server/cli.js missing: npm run build');
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2], timeout: 600_000 });
  }
  return needNginx ? nginxBin() : null;
}

/** The node flags of the command's shebang (`#!/usr/bin/env -S node --flag`): it runs as users run it. */
function cliNodeFlags() {
  const first = fs.readFileSync(CLI, 'utf8').split('\n', 1)[0];
  const m = first.match(/^#!.*\bnode\b(.*)$/);
  return m ? m[1].trim().split(/\s+/).filter(Boolean) : [];
}

// --- Peers --------------------------------------------------------------------------------------

const peerFile = (f) => path.join(PEER_DIR, f);

/** How each peer is started: a command printing `listening URL`, or an nginx config template. */
const PEERS = {
  sidecar: {
    label: 'glance-edge proxy (sidecar; defaults: metrics, logs, request ids, guard)',
    command: 'proxy',
    cmd: (ctx, extra = []) => ['node', [...ctx.nodeFlags, CLI, 'proxy', '--upstream', ctx.upstream, '--port', '0', ...extra]],
  },
  hpm: { label: 'http-proxy-middleware in Express, keep-alive agent', cmd: (ctx) => ['node', [peerFile('hpm-proxy.js'), ctx.upstream]] },
  node: { label: 'bare node:http proxy, keep-alive agent', cmd: (ctx) => ['node', [peerFile('node-proxy.js'), ctx.upstream]] },
  undici: { label: 'bare undici proxy, Pool.stream', cmd: (ctx) => ['node', [peerFile('undici-proxy.js'), ctx.upstream]] },
  tcp: { label: 'TCP relay in Node, no HTTP, one reused read buffer (the floor of a Node proxy)', cmd: (ctx) => ['node', [peerFile('tcp-relay.js'), ctx.upstream]] },
  nginx: {
    label: 'nginx proxy_pass, upstream keepalive 32, proxy_buffering off',
    nginx: 'nginx-proxy.conf',
    values: (ctx) => ({ UPSTREAM: new URL(ctx.upstream).host }),
  },
  demo: {
    label: 'glance-edge demo',
    command: 'demo',
    cmd: (ctx, extra = []) => ['node', [...ctx.nodeFlags, CLI, 'demo', '--port', '0', '--data', ctx.demoData, ...extra]],
    path: (ctx) => `/v2/images/${ctx.demoImageId}/file`,
  },
  static: {
    label: 'express.static over the same file',
    cmd: (ctx) => ['node', [peerFile('static-server.js'), ctx.blobDir]],
    path: (ctx) => `/${ctx.blobName}`,
  },
  'node-ranges': {
    label: 'bare node:http range server: one positional read into a reused buffer, one write (the floor of Node serving ranges)',
    cmd: (ctx) => ['node', [peerFile('range-server.js'), path.join(ctx.blobDir, ctx.blobName)]],
    path: (ctx) => `/${ctx.blobName}`,
  },
  'nginx-static': {
    label: 'nginx, sendfile on, same file',
    nginx: 'nginx-static.conf',
    values: (ctx) => ({ ROOT: ctx.blobDir, WORKERS: 1 }),
    path: (ctx) => `/${ctx.blobName}`,
  },
  'nginx-static-2': {
    label: 'nginx, sendfile on, same file, worker_processes 2',
    nginx: 'nginx-static.conf',
    values: (ctx) => ({ ROOT: ctx.blobDir, WORKERS: 2 }),
    path: (ctx) => `/${ctx.blobName}`,
  },
};

async function startPeer(name, def, ctx, extra, cpus) {
  const cpu = cpus ?? ctx.settings.serverCpu;
  if (def.nginx) {
    const dir = path.join(ctx.tmp, name);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    const port = await lib.freePort();
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, lib.fillTemplate(peerFile(def.nginx), { TMP: dir, PORT: port, ...def.values(ctx) }));
    const proc = lib.start(name, cpu, ctx.nginxBin, ['-e', path.join(dir, 'error.log'), '-p', dir, '-c', conf, '-g', 'daemon off;'], { logDir: ctx.tmp });
    await lib.waitPort(port, 20_000, proc);
    let worker;
    for (let i = 0; i < 50 && !worker; i++) {
      worker = lib.childrenOf(proc.pid)[0];
      if (!worker) await lib.sleep(100);
    }
    if (!worker) throw new Error(`${name}: nginx (pid ${proc.pid}) has no worker; ${path.join(dir, 'error.log')}`);
    return { name, proc, pid: worker, url: `http://${HOST}:${port}` };
  }
  const [cmd, args] = def.cmd(ctx, extra);
  const proc = lib.start(name, cpu, cmd, args, { logDir: ctx.tmp });
  const m = await proc.waitFor(LISTENING);
  proc.quiet();
  return { name, proc, pid: proc.pid, url: m[1] };
}

/** The part of `glance-edge help` that lists `command`'s flags (the whole text without a command). */
function helpOf(help, command) {
  if (!command) return help;
  const lines = help.split('\n');
  const first = lines.findIndex((l) => l.startsWith(`  ${command} `));
  if (first < 0) return '';
  const next = lines.findIndex((l, i) => i > first && /^ {2}\S/.test(l));
  return lines.slice(first, next < 0 ? undefined : next).join('\n');
}

/** The peers of a suite that apply here: `{ name, def, extra }`; skipped ones with why. */
function peersOf(suite, ctx) {
  const out = [];
  const skipped = {};
  for (const p of suite.peers) {
    const entry = typeof p === 'string' ? { name: p, peer: p } : p;
    // when: a flag the peer's command must list in `glance-edge help` (demo or proxy, by its peer).
    const command = PEERS[entry.peer]?.command;
    if (entry.when && !helpOf(ctx.cliHelp, command).includes(entry.when)) {
      skipped[entry.name] = `glance-edge ${command ?? ''} has no ${entry.when}`;
      continue;
    }
    // args: a list, or a function of the context (for what is known only at run time).
    const extra = typeof entry.args === 'function' ? entry.args(ctx) : (entry.args ?? []);
    // cpus: 'all' gives the peer every CPU (a sidecar with workers, one per core as it runs).
    const cpus = entry.cpus === 'all' ? `0-${(os.availableParallelism ? os.availableParallelism() : os.cpus().length) - 1}` : undefined;
    out.push({ name: entry.name, def: PEERS[entry.peer], extra, processes: entry.processes, cpus });
  }
  return { peers: out, skipped };
}

// --- Checks -------------------------------------------------------------------------------------

function must(cond, what) {
  if (!cond) throw new Error(what);
}

/** Probe for a workload: checks answers, returns the bytes one answer may take on the wire. */
const PROBES = {
  async get(url) {
    const r = await lib.request(`${url}/v2/images/${ID}`, { ms: 10_000 });
    must(r.status === 200, `GET image answered ${r.status}`);
    const image = JSON.parse(r.body.toString('utf8'));
    must(image.id === ID && Array.isArray(image.locations) && image.locations.length === 2, `GET image answered another record: ${r.body.toString('utf8').slice(0, 200)}`);
    return [r.bytes, r.bytes + 4096];
  },
  async patch(url, ctx, w) {
    const r = await lib.request(`${url}/v2/images/${ID}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/openstack-images-v2.1-json-patch', 'Content-Length': Buffer.byteLength(w.body) },
      body: w.body,
      ms: 10_000,
    });
    must(r.status === 200, `PATCH answered ${r.status}: ${r.body?.toString('utf8').slice(0, 300)}`);
    must(JSON.parse(r.body.toString('utf8')).id === ID, 'PATCH answered another record');
    return [r.bytes, r.bytes + 4096];
  },
  async download(url, ctx) {
    const r = await lib.request(`${url}/v2/images/${ID}/file`, { keep: 0, ms: 120_000 });
    must(r.status === 200, `download answered ${r.status}`);
    must(r.bytes === ctx.imageSize, `download brought ${r.bytes} bytes, not ${ctx.imageSize}`);
    must(r.sha256 === ctx.sha256, 'download brought other bytes (sha256 differs)');
    return [ctx.imageSize, ctx.imageSize + 4096];
  },
  async ranges(url, ctx, w) {
    const len = w.rangeBytes;
    const fd = fs.openSync(ctx.imageFile, 'r');
    try {
      for (const o of [0, ctx.imageSize - len, Math.floor(Math.random() * (ctx.imageSize - len))]) {
        const r = await lib.request(url, { headers: { Range: `bytes=${o}-${o + len - 1}` }, ms: 30_000, keep: len });
        must(r.status === 206, `Range bytes=${o}-${o + len - 1} answered ${r.status} (${r.bytes} bytes)`);
        must(r.headers['content-range'] === `bytes ${o}-${o + len - 1}/${ctx.imageSize}`, `Content-Range ${r.headers['content-range']}`);
        const want = Buffer.alloc(len);
        fs.readSync(fd, want, 0, len, o);
        must(r.bytes === len && want.equals(r.body), `Range bytes=${o}-${o + len - 1}: other bytes`);
      }
    } finally {
      fs.closeSync(fd);
    }
    return [len, len + 4096];
  },
};

const LUA = {
  get: () => ['get'],
  patch: (ctx, w) => ['patch', w.body],
  download: () => ['get'],
  ranges: (ctx, w) => ['range', String(ctx.imageSize), String(w.rangeBytes)],
};
const URLS = {
  get: (p) => `${p.url}/v2/images/${ID}`,
  patch: (p) => `${p.url}/v2/images/${ID}`,
  download: (p) => `${p.url}/v2/images/${ID}/file`,
  ranges: (p) => `${p.url}${p.path}`,
};

const round3 = (x) => Math.round(x * 1000) / 1000;

/** One measured round of one peer: probe, warm-up, wrk, checks. */
async function measure(peer, wname, w, round, ctx) {
  const rec = { round, peer: peer.name, ok: false };
  const s = ctx.settings;
  const kind = w.kind ?? wname; // what is sent: get, patch, download, ranges
  try {
    const probeUrl = kind === 'ranges' ? `${peer.url}${peer.path}` : peer.url;
    const [low, high] = await PROBES[kind](probeUrl, ctx, w);
    const run = (seconds) => lib.wrk({ cpu: s.loadCpu, url: URLS[kind](peer, ctx), conns: w.conns, seconds, luaArgs: LUA[kind](ctx, w), logDir: ctx.tmp });
    if (s.warmup > 0) await run(s.warmup);
    // What is read right before and right after the measured run (CPU time, Redis's counters).
    const meters = [...(w.cpu ? [cpuMeter] : []), ...(peer.meters ?? [])];
    const before = [];
    for (const m of meters) before.push(await m.start(peer, ctx));
    const r = await run(s.duration);
    const after = [];
    for (const [i, m] of meters.entries()) after.push(await m.stop(peer, ctx, before[i], r));
    Object.assign(rec, {
      requests: r.requests,
      seconds: r.seconds,
      bytes: r.bytes,
      rps: round3(r.requests / r.seconds),
      mbps: round3(r.bytes / r.seconds / 1e6),
      p50_ms: r.p50_ms,
      p99_ms: r.p99_ms,
      errors: r.errors,
      non2xx: r.non2xx,
      bytes_per_answer: r.requests ? Math.round(r.bytes / r.requests) : null,
      vmhwm_mb: lib.treeVmHWM(peer.pid),
    });
    for (const figures of after) Object.assign(rec, figures.figures);
    must(r.requests > 0, 'no answer at all');
    for (const figures of after) figures.check?.(r);
    must(r.errors === 0 && r.non2xx === 0, `${r.errors} connection errors and ${r.non2xx} answers >= 400`);
    // wrk counts the bytes of the answers still coming when the run ends: one per connection at most.
    must(r.bytes >= r.requests * low && r.bytes <= (r.requests + w.conns) * high, `${rec.bytes_per_answer} bytes per answer, expected ${low}..${high}`);
    rec.ok = true;
  } catch (err) {
    rec.error = err.message.split('\n')[0];
    warn(`${peer.name} ${wname} round ${round}: ${err.message}`);
  }
  const fig = rec.ok ? (kind === 'download' ? `${rec.mbps.toFixed(0)} MB/s` : `${rec.rps.toFixed(0)} req/s`) : 'FAILED';
  const cpu = rec.cpu_us_per_req !== undefined ? `, ${rec.cpu_us_per_req} µs CPU per request` : '';
  log(`${wname} ${peer.name} round ${round}: ${fig}${rec.ok ? `, p99 ${rec.p99_ms} ms${cpu}, VmHWM ${rec.vmhwm_mb} MB` : ''}`);
  return rec;
}

/**
 * CPU time of the server under test over the measured run: utime + stime of its process and every
 * descendant (a cluster primary and its workers), per answer. The processes must be the same at
 * both ends (a worker replaced mid-run would lose its time).
 */
const cpuMeter = {
  start: async (peer) => lib.treeCpu(peer.pid),
  stop: async (peer, ctx, start, r) => {
    const end = lib.treeCpu(peer.pid);
    const ms = end.ms - start.ms;
    const figures = {
      cpu_ms: Math.round(ms),
      cpu_us_per_req: r.requests ? round3((ms * 1000) / r.requests) : null,
      cpu_util: round3(ms / 1000 / r.seconds), // CPUs' worth used on average
      processes: end.pids.length,
    };
    const check = () => must(start.pids.join() === end.pids.join(), `its processes changed during the run: ${start.pids.join(',')} then ${end.pids.join(',')}`);
    return { figures, check };
  },
};

/** Order of the peers in round r: rotated each round, so no peer always comes first. */
const rotate = (list, r) => list.map((_, i) => list[(i + r) % list.length]);

async function runPeerSuite(name, suite, ctx, out) {
  const { peers, skipped } = peersOf(suite, ctx);
  out.skipped = skipped;
  const started = [];
  try {
    for (const p of peers) {
      const s = await startPeer(p.name, p.def, ctx, p.extra, p.cpus);
      s.label = p.def.label + (p.extra.length ? `, ${p.extra.join(' ')}` : '');
      s.path = p.def.path?.(ctx);
      s.meters = suite.meters?.[p.name];
      started.push(s);
      const pids = lib.processTree(s.pid);
      out.peers[p.name] = { label: s.label, url: s.url, pid: s.pid, cpu: p.cpus ?? ctx.settings.serverCpu, processes: pids.length };
      log(`${p.name} listening on ${s.url} (pid ${pids.join(', ')})`);
      // A peer that says how many processes it runs (a primary and its workers) is checked for them.
      must(p.processes === undefined || pids.length === p.processes, `${p.name}: ${pids.length} processes (${pids.join(', ')}), expected ${p.processes}`);
    }
    for (const [wname, w] of Object.entries(suite.workloads)) {
      const rec = (out.workloads[wname] = { what: w.what, conns: w.conns, rounds: [] });
      for (let r = 0; r < ctx.settings.rounds; r++) {
        for (const p of rotate(started, r)) rec.rounds.push(await measure(p, wname, w, r + 1, ctx));
      }
    }
    for (const p of started) out.peak_rss_mb[p.name] = lib.treeVmHWM(p.pid);
  } finally {
    for (const p of started.reverse()) await p.proc.stop();
  }
}

// --- Suites -------------------------------------------------------------------------------------

async function withUpstream(ctx, fn, { file = true } = {}) {
  const args = [peerFile('upstream.js'), '--id', ID];
  if (file) args.push('--file', ctx.imageFile, '--checksum', ctx.md5);
  const up = lib.start('upstream', ctx.settings.serverCpu, 'node', args, { logDir: ctx.tmp });
  try {
    ctx.upstream = (await up.waitFor(LISTENING))[1];
    await fn(up);
  } finally {
    await up.stop();
  }
}

/** A redis-server of the harness's own on a free port, no persistence, pinned with the servers. */
async function withRedis(ctx, fn) {
  const port = await lib.freePort();
  const dir = path.join(ctx.tmp, 'redis');
  fs.mkdirSync(dir, { recursive: true });
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir];
  const redis = lib.start('redis', ctx.settings.serverCpu, 'redis-server', args, { logDir: ctx.tmp });
  try {
    await redis.waitFor(/Ready to accept connections/);
    await fn({ proc: redis, port, url: `redis://${HOST}:${port}/0`, version: (tryVersion('redis-server') || '').match(/v=(\S+)/)?.[1] ?? null });
  } finally {
    await redis.stop();
  }
}

function tryVersion(cmd) {
  try {
    return execFileSync(cmd, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return null;
  }
}

/**
 * One run of bench/peers/redis-ping.js on the load CPU: `seconds` of PINGs one at a time (0: none),
 * then the calls of Redis's script commands so far. Its RESULT figures.
 */
async function redisPing(ctx, port, seconds) {
  const p = lib.start('redis-ping', ctx.settings.loadCpu, 'node', [peerFile('redis-ping.js'), '--port', String(port), '--seconds', String(seconds)], { logDir: ctx.tmp });
  const { code } = await lib.bounded(p.exit, (seconds + 30) * 1000, 'redis-ping');
  const m = p.lines.map((l) => l.match(/^RESULT (.*)$/)).find(Boolean);
  must(code === 0 && m, `redis-ping exited ${code}: ${p.lastLines(3)}`);
  return Object.fromEntries(m[1].split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, v === 'null' ? null : Number(v)]));
}

/**
 * The Redis meter of the registry suite's Redis peer: Redis must have run the registry's scripts
 * (at least one per answer) during the measured run; then, with no load, `rttSeconds` of PINGs
 * give the round trip of that run.
 */
function redisMeter(port, rttSeconds) {
  return {
    start: async (peer, ctx) => (await redisPing(ctx, port, 0)).scripts,
    stop: async (peer, ctx, scriptsBefore) => {
      const f = await redisPing(ctx, port, rttSeconds);
      const scripts = f.scripts - scriptsBefore;
      return {
        figures: { redis_scripts: scripts, redis_pings: f.pings, redis_rtt_p50_ms: f.p50_ms, redis_rtt_p99_ms: f.p99_ms, redis_rtt_mean_ms: f.mean_ms },
        check: (r) => must(scripts >= r.requests, `Redis ran ${scripts} scripts for ${r.requests} answers: the registry is not in Redis`),
      };
    },
  };
}

const UPSTREAM_LABEL = 'bare node:http upstream (bench/peers/upstream.js)';

const SUITES = {
  async small(suite, ctx, out) {
    await withUpstream(ctx, async (up) => {
      out.upstream = { label: UPSTREAM_LABEL, pid: up.pid, cpu: ctx.settings.serverCpu };
      await runPeerSuite('small', suite, ctx, out);
    });
  },
  async workers(suite, ctx, out) {
    await withUpstream(
      ctx,
      async (up) => {
        out.upstream = { label: `${UPSTREAM_LABEL}, no image file`, pid: up.pid, cpu: ctx.settings.serverCpu };
        await runPeerSuite('workers', suite, ctx, out);
      },
      { file: false },
    );
  },
  async registry(suite, ctx, out) {
    await withRedis(ctx, async (redis) => {
      out.redis = { label: `redis-server ${redis.version} --save '' --appendonly no`, url: redis.url, pid: redis.proc.pid, cpu: ctx.settings.serverCpu };
      ctx.redisUrl = redis.url;
      await withUpstream(
        ctx,
        async (up) => {
          out.upstream = { label: `${UPSTREAM_LABEL}, no image file`, pid: up.pid, cpu: ctx.settings.serverCpu };
          const meter = redisMeter(redis.port, suite.rttSeconds);
          await runPeerSuite('registry', { ...suite, meters: Object.fromEntries(suite.redisPeers.map((p) => [p, [meter]])) }, ctx, out);
        },
        { file: false },
      );
      out.peak_rss_mb.redis = lib.vmHWM(redis.proc.pid);
    });
  },
  async download(suite, ctx, out) {
    await SUITES.small(suite, ctx, out);
  },
  async ranges(suite, ctx, out) {
    if (!ctx.demoImageId) await prepareDemo(ctx);
    out.image = { demo_id: ctx.demoImageId, file: ctx.blobPath };
    await runPeerSuite('ranges', suite, ctx, out);
  },
  async clients(suite, ctx, out) {
    const s = ctx.settings;
    const w = suite.workloads.get;
    const server = lib.start('client-server', s.loadCpu, 'node', [peerFile('upstream.js'), '--id', ID], { logDir: ctx.tmp });
    try {
      const base = (await server.waitFor(LISTENING))[1];
      server.quiet();
      out.server = { label: 'bare node:http server (bench/peers/upstream.js)', pid: server.pid, cpu: s.loadCpu };
      const rec = (out.workloads.get = { what: w.what, conns: w.conns, rounds: [] });
      for (const kind of suite.peers) out.peers[kind] = { label: CLIENT_LABELS[kind] ?? kind, cpu: s.serverCpu };
      for (let r = 0; r < s.rounds; r++) {
        for (const kind of rotate(suite.peers, r)) {
          const one = { round: r + 1, peer: kind, ok: false };
          try {
            const probe = await lib.request(`${base}/v2/images/${ID}`, { ms: 10_000 });
            must(probe.status === 200 && probe.bytes > 0, `the server answered ${probe.status}`);
            const args = [peerFile('client.js'), '--kind', kind, '--url', `${base}/v2/images/${ID}`, '--bytes', String(probe.bytes)];
            args.push('--concurrency', String(w.conns), '--duration', String(s.duration), '--warmup', String(s.warmup));
            const c = lib.start(`client-${kind}`, s.serverCpu, 'node', args, { logDir: ctx.tmp });
            let hwm = null;
            const sampler = setInterval(() => (hwm = lib.vmHWM(c.pid) ?? hwm), 250);
            try {
              const { code } = await lib.bounded(c.exit, (s.duration + s.warmup + 30) * 1000, `client ${kind}`);
              const m = c.lines.map((l) => l.match(/^RESULT (.*)$/)).find(Boolean);
              must(code === 0 && m, `client ${kind} exited ${code}: ${c.lastLines()}`);
              const f = Object.fromEntries(m[1].split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
              Object.assign(one, { requests: f.requests, seconds: f.seconds, bytes: f.bytes, rps: round3(f.requests / f.seconds), mbps: round3(f.bytes / f.seconds / 1e6), errors: f.errors, vmhwm_mb: hwm });
              must(f.errors === 0, `${f.errors} failed requests: ${c.lastLines(3)}`);
              must(f.requests > 0, 'no answer at all');
              one.ok = true;
            } finally {
              clearInterval(sampler);
              await c.stop();
            }
          } catch (err) {
            one.error = err.message.split('\n')[0];
            warn(`client ${kind} round ${r + 1}: ${err.message}`);
          }
          log(`clients ${kind} round ${r + 1}: ${one.ok ? `${one.rps.toFixed(0)} req/s` : 'FAILED'}`);
          rec.rounds.push(one);
        }
      }
    } finally {
      await server.stop();
    }
  },
};

const CLIENT_LABELS = {
  http: 'node:http http.request, Agent keepAlive',
  'undici-request': 'undici Pool.request',
  'undici-stream': 'undici Pool.stream',
  'undici-dispatch': 'undici Pool.dispatch',
};

/** The ranges suite's image: uploaded into a demo data folder, found on disk for the others. */
async function prepareDemo(ctx) {
  ctx.demoData = path.join(ctx.tmp, 'demo-data');
  fs.mkdirSync(ctx.demoData, { recursive: true, mode: 0o755 });
  log(`uploading the image into the demo (${ctx.demoData})`);
  const demo = await startPeer('demo-upload', PEERS.demo, ctx, []);
  try {
    const made = await lib.request(`${demo.url}/v2/images`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'b', disk_format: 'raw', container_format: 'bare' }),
      ms: 10_000,
    });
    must(made.status === 201, `POST /v2/images answered ${made.status}: ${made.body?.toString('utf8').slice(0, 300)}`);
    ctx.demoImageId = JSON.parse(made.body.toString('utf8')).id;
    const put = await lib.request(`${demo.url}/v2/images/${ctx.demoImageId}/file`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': ctx.imageSize },
      body: fs.createReadStream(ctx.imageFile),
      ms: 300_000,
    });
    must(put.status === 204, `PUT /v2/images/{id}/file answered ${put.status}: ${put.body?.toString('utf8').slice(0, 300)}`);
  } finally {
    await demo.proc.stop();
  }
  // The demo keeps the data as a file of the image's size: express.static and nginx serve that file.
  const found = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && fs.statSync(p).size === ctx.imageSize) found.push(p);
    }
  };
  walk(ctx.demoData);
  must(found.length === 1, `expected one file of ${ctx.imageSize} bytes in ${ctx.demoData}, found ${found.length}`);
  ctx.blobPath = found[0];
  ctx.blobDir = path.dirname(found[0]);
  ctx.blobName = path.basename(found[0]);
  must(!ctx.blobName.startsWith('.'), `the image file ${ctx.blobPath} is a dotfile: express.static would not serve it`);
  // nginx's workers read it as an unprivileged user.
  execFileSync('chmod', ['-R', 'a+rX', ctx.demoData]);
}

// --- Main ---------------------------------------------------------------------------------------

async function main() {
  const t0 = Date.now();
  const { settings, keep, strict, out: outArg } = settingsFrom(process.argv.slice(2));
  const stamp = new Date(t0).toISOString().replace(/\.\d+Z$/, 'Z');
  const outFile = outArg ? path.resolve(outArg) : path.join(__dirname, 'results', `${stamp}.json`);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });

  const nginxBin = prerequisites(settings.suites);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'glance-edge-bench-'));
  fs.chmodSync(tmp, 0o755); // nginx's workers read files under it
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await lib.stopAll();
    if (keep) process.stderr.write(`temp folder kept: ${tmp}\n`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  };
  lib.installCleanup(cleanup);

  const result = {
    format: 'glance-edge-bench/1',
    started: new Date(t0).toISOString(),
    finished: null,
    seconds: null,
    complete: false,
    command: `node bench/run.js ${process.argv.slice(2).join(' ')}`.trim(),
    settings: { ...settings },
    machine: lib.machine(nginxBin),
    suites: {},
    errors: [],
  };
  const save = () => fs.writeFileSync(outFile, `${JSON.stringify(result, null, 1)}\n`);

  const ctx = { settings, tmp, nginxBin, nodeFlags: cliNodeFlags(), cliHelp: '' };
  try {
    ctx.cliHelp = execFileSync('node', [CLI, 'help'], { encoding: 'utf8', timeout: 20_000 });
  } catch (err) {
    ctx.cliHelp = String(err.stdout ?? '');
  }
  if (settings.suites.some((n) => n === 'download' || n === 'ranges' || n === 'small')) {
    ctx.imageSize = settings.imageMiB * 1024 * 1024;
    ctx.imageFile = path.join(tmp, 'image');
    log(`image: ${settings.imageMiB} MiB of random bytes`);
    ({ sha256: ctx.sha256, md5: ctx.md5 } = lib.randomFile(ctx.imageFile, ctx.imageSize));
  }
  log(`servers on CPU ${settings.serverCpu}, load on CPU ${settings.loadCpu}; ${settings.rounds} round(s) of ${settings.duration} s (+${settings.warmup} s warm-up); results: ${path.relative(process.cwd(), outFile)}`);

  let failed = false;
  try {
    for (const name of settings.suites) {
      const suite = config.suites[name];
      const out = (result.suites[name] = { title: suite.title, started: new Date().toISOString(), seconds: null, peers: {}, workloads: {}, peak_rss_mb: {} });
      // dist/ may be rebuilt while a run goes on: each suite names the build its servers loaded.
      out.dist_built = lib.machine.distBuilt();
      const t = Date.now();
      log(`suite ${name}: ${suite.title}`);
      try {
        await SUITES[name](suite, ctx, out);
      } catch (err) {
        failed = true;
        out.error = err.message;
        result.errors.push(`${name}: ${err.message}`);
        warn(`suite ${name}: ${err.message}`);
      }
      out.seconds = Math.round((Date.now() - t) / 100) / 10;
      save();
    }
  } finally {
    await cleanup();
  }
  result.finished = new Date().toISOString();
  result.seconds = Math.round((Date.now() - t0) / 100) / 10;
  result.complete = true;
  save();

  const { text, missed, failedRounds } = render(result);
  process.stdout.write(`\n${text}\n`);
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), outFile)} (${result.seconds} s)\n`);
  if (failed || failedRounds) return 1;
  if (strict && missed) return 3;
  return 0;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    process.stderr.write(`bench/run.js: ${err.stack || err.message}\n`);
    await lib.bounded(lib.stopAll(), 15_000, 'stopping').catch(() => {});
    process.exit(1);
  },
);
