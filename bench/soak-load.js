#!/usr/bin/env node
/**
 * The load driver of bench/soak.sh (see bench/README.md). Two commands:
 *
 *   node bench/soak-load.js blobs --size N [--port 0] [--host 127.0.0.1]
 *       A tiny blob server for http:// image locations: HEAD and GET of /blob/<anything> answer
 *       the same N deterministic bytes (Content-Length, Range honoured). Prints
 *       `soak-blobs listening on http://HOST:PORT`; on SIGTERM prints `soak-blobs served {...}`.
 *
 *   node bench/soak-load.js run --target URL --blobs URL --seconds S --concurrency C
 *        --label NAME --pid PID [--info-pid NAME=PID]... [--image-mib 4] [--loc-images 16]
 *        [--loc-size 65536] [--seed N] [--mix full=1,range1m=2,...] [--window 10]
 *        [--growth-mb 10] [--growth-pct 10]
 *       Sets up images through the image API of TARGET, runs S seconds of mixed load with C
 *       concurrent keep-alive clients, checks every answer, samples VmRSS of PID (and of the
 *       --info-pid processes) once a second, checks the images afterwards, and prints a report
 *       on stdout, ending with one `RESULT key=value ...` line. Progress goes to stderr.
 *
 * Every request is bounded (30 s); every answer is checked: status, the headers that matter and,
 * for image data, every byte against the known content. Anything else is an error.
 */
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { parseArgs } = require('node:util');
const { setInterval, clearInterval } = require('node:timers');

const PATCH_TYPE = 'application/openstack-images-v2.1-json-patch';
const REQUEST_TIMEOUT = 30_000;
const MiB = 1024 * 1024;

const log = (msg) => process.stderr.write(`  .. ${msg}\n`);

/** A small seeded PRNG (mulberry32): the same seed draws the same requests. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `size` deterministic pseudo-random bytes (no compression, no dedup). */
function bytesFrom(seed, size) {
  const out = Buffer.alloc(size);
  let block = crypto.createHash('sha512').update(String(seed)).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = crypto.createHash('sha512').update(block).digest();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// blobs: the http:// location server.

function blobs(argv) {
  const { values } = parseArgs({
    args: argv,
    options: { size: { type: 'string' }, port: { type: 'string', default: '0' }, host: { type: 'string', default: '127.0.0.1' } },
    strict: true,
  });
  const size = Number(values.size);
  if (!Number.isSafeInteger(size) || size <= 0) throw new Error('blobs needs --size BYTES');
  const data = bytesFrom('blob', size);
  const served = { head: 0, get: 0, other: 0 };
  const server = http.createServer((req, res) => {
    req.resume();
    if (!req.url.startsWith('/blob/') || (req.method !== 'HEAD' && req.method !== 'GET')) {
      served.other += 1;
      res.writeHead(404, { 'Content-Length': 0 }).end();
      return;
    }
    if (req.method === 'HEAD') served.head += 1;
    else served.get += 1;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && Number(m[1]) < size) {
      const start = Number(m[1]);
      const end = Math.min(m[2] === '' ? size - 1 : Number(m[2]), size - 1);
      res.writeHead(206, { 'Content-Length': end - start + 1, 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Type': 'application/octet-stream' });
      res.end(req.method === 'HEAD' ? undefined : data.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { 'Content-Length': size, 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
  server.keepAliveTimeout = 5_000;
  server.listen(Number(values.port), values.host, () => {
    process.stdout.write(`soak-blobs listening on http://${values.host}:${server.address().port}\n`);
  });
  const stop = () => {
    process.stdout.write(`soak-blobs served ${JSON.stringify(served)}\n`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

// ---------------------------------------------------------------------------------------------
// run: setup, load, checks, report.

const KINDS = ['full', 'range1m', 'rangesmall', 'legacy', 'list', 'show', 'locadd', 'locremove', 'locrefused', 'name'];
const KIND_NAMES = {
  full: 'full download',
  range1m: 'Range 1 MiB',
  rangesmall: 'Range small',
  legacy: 'Content-Range legacy',
  list: 'GET /v2/images',
  show: 'GET /v2/images/{id}',
  locadd: 'PATCH loc add',
  locremove: 'PATCH loc remove',
  locrefused: 'PATCH loc 409',
  name: 'PATCH name',
};
// What a worker draws; `loc` is an add or a remove, whichever the image it gets needs next.
const DEFAULT_MIX = 'full=1,range1m=2,rangesmall=3,legacy=1,list=1,show=2,loc=2,locrefused=1,name=1';

class Fail extends Error {}

/**
 * One HTTP request. Resolves { status, headers, length, body }, or rejects with a connection error
 * or timeout. With `onData(chunk, offset)`, the body of a `dataStatus` answer goes to it as it
 * comes (body: null); the body of any other answer is kept, to show what went wrong.
 */
let sent = 0;
function request(agent, base, method, path, { headers = {}, body, keep = true, onData, dataStatus = 200 } = {}) {
  sent += 1;
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      let got = 0;
      // Image data is checked as it comes; any other answer (a wrong status) is kept, to be shown.
      const check = onData && res.statusCode === dataStatus ? onData : null;
      res.on('data', (chunk) => {
        try {
          if (check) check(chunk, got);
          else if (keep || onData) chunks.push(chunk);
        } catch (err) {
          reject(err); // first: the destroy below makes other errors too
          req.destroy();
          return;
        }
        got += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, length: got, body: check ? null : Buffer.concat(chunks) }));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('answer cut off')));
    });
    req.setTimeout(REQUEST_TIMEOUT, () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

function jsonOf(answer, what) {
  try {
    return JSON.parse(answer.body.toString('utf8'));
  } catch {
    throw new Fail(`${what}: ${answer.status} with a body that is not JSON: ${answer.body.subarray(0, 200)}`);
  }
}

function expectStatus(answer, want, what) {
  if (answer.status !== want) {
    const text = answer.body ? ` ${answer.body.subarray(0, 300).toString('utf8').replace(/\s+/g, ' ')}` : '';
    throw new Fail(`${what}: status ${answer.status} (want ${want})${text}`);
  }
}

/** Collects a body and checks every chunk against `expected` from `offset` on, without copying. */
function bytesChecker(expected, start, length) {
  return (chunk, got) => {
    if (got + chunk.length > length) throw new Fail(`more than the ${length} bytes expected`);
    const want = expected.subarray(start + got, start + got + chunk.length);
    if (!chunk.equals(want)) {
      // Say where the bytes came from, if from the image at all (e.g. another answer's range).
      let at = 0;
      while (at < chunk.length && chunk[at] === want[at]) at += 1;
      const needle = chunk.subarray(at, at + 64);
      const found = needle.length >= 16 ? expected.indexOf(needle) : -1;
      const from = found >= 0 ? `the image's bytes from ${found}` : 'bytes not found in the image';
      throw new Fail(`wrong bytes from offset ${start + got + at} of a body for bytes ${start}-${start + length - 1}: ${from}`);
    }
  };
}

async function run(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      target: { type: 'string' },
      blobs: { type: 'string' },
      label: { type: 'string', default: 'target' },
      seconds: { type: 'string', default: '60' },
      warmup: { type: 'string', default: '0' },
      concurrency: { type: 'string', default: '64' },
      pid: { type: 'string' },
      'info-pid': { type: 'string', multiple: true, default: [] },
      'image-mib': { type: 'string', default: '4' },
      'loc-images': { type: 'string', default: '16' },
      'loc-size': { type: 'string', default: '65536' },
      seed: { type: 'string' },
      mix: { type: 'string', default: DEFAULT_MIX },
      window: { type: 'string', default: '10' },
      'growth-mb': { type: 'string', default: '10' },
      'growth-pct': { type: 'string', default: '10' },
    },
    strict: true,
  });
  const base = values.target;
  const blobBase = values.blobs;
  if (!base || !blobBase || !values.pid) throw new Error('run needs --target URL --blobs URL --pid PID');
  const seconds = Number(values.seconds);
  const warmup = Number(values.warmup);
  if (!Number.isSafeInteger(warmup) || warmup < 0) throw new Error(`bad --warmup: ${values.warmup}`);
  const concurrency = Number(values.concurrency);
  const imageSize = Math.round(Number(values['image-mib']) * MiB);
  const locCount = Number(values['loc-images']);
  const locSize = Number(values['loc-size']);
  const seed = values.seed === undefined ? crypto.randomInt(2 ** 31) : Number(values.seed);
  const window = Math.min(Number(values.window), Math.max(1, Math.floor(seconds / 2)));
  const growthMb = Number(values['growth-mb']);
  const growthPct = Number(values['growth-pct']);
  for (const [name, v] of Object.entries({ seconds, concurrency, imageSize, locCount, locSize, seed })) {
    if (!Number.isSafeInteger(v) || v < (name === 'seed' ? 0 : 1)) throw new Error(`bad --${name}: ${v}`);
  }
  if (imageSize < 2 * MiB) throw new Error('--image-mib must be at least 2 (1 MiB ranges at random offsets)');
  const pids = [{ name: values.label, pid: Number(values.pid) }];
  for (const spec of values['info-pid']) {
    const [name, pid] = spec.split('=');
    pids.push({ name, pid: Number(pid) });
  }
  const mix = [];
  for (const part of values.mix.split(',')) {
    const [kind, w] = part.split('=');
    if (![...KINDS, 'loc'].includes(kind) || !(Number(w) >= 0)) throw new Error(`bad --mix entry '${part}'`);
    if (Number(w) > 0) mix.push([kind, Number(w)]);
  }
  const mixTotal = mix.reduce((s, [, w]) => s + w, 0);
  const random = prng(seed);
  const draw = () => {
    let x = random() * mixTotal;
    for (const [kind, w] of mix) if ((x -= w) < 0) return kind;
    return mix[mix.length - 1][0];
  };
  const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1)); // lo..hi inclusive

  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const req = (method, path, opts) => request(agent, base, method, path, opts);
  const json = (method, path, doc, type = 'application/json') =>
    req(method, path, { headers: { 'Content-Type': type }, body: JSON.stringify(doc) });

  // --- Setup, through the API --------------------------------------------------------------
  const setupStarted = Date.now();
  const create = async (name) => {
    const a = await json('POST', '/v2/images', { name, disk_format: 'raw', container_format: 'bare' });
    expectStatus(a, 201, `POST /v2/images (${name})`);
    return jsonOf(a, 'POST /v2/images').id;
  };
  const upload = async (id, data) => {
    const a = await req('PUT', `/v2/images/${id}/file`, { headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length }, body: data });
    expectStatus(a, 204, `PUT /v2/images/${id}/file`);
    const s = await req('GET', `/v2/images/${id}`);
    expectStatus(s, 200, `GET /v2/images/${id}`);
    const doc = jsonOf(s, 'GET image');
    if (doc.status !== 'active' || doc.size !== data.length) throw new Fail(`image ${id} is ${doc.status} with size ${doc.size} after upload`);
  };
  const patch = (id, ops) => json('PATCH', `/v2/images/${id}`, ops, PATCH_TYPE);
  const blobUrl = (id) => new URL(`/blob/${id}`, blobBase).href;

  const image = bytesFrom(`image-${seed}`, imageSize);
  const dataId = await create('soak-data');
  await upload(dataId, image);
  const locData = bytesFrom(`loc-${seed}`, locSize);
  const locImages = [];
  for (let i = 0; i < locCount; i++) {
    const id = await create(`soak-loc-${i}`);
    await upload(id, locData);
    locImages.push({ id, added: false, busy: false });
  }
  const deactId = await create('soak-deactivated');
  await upload(deactId, locData);
  let a = await patch(deactId, [{ op: 'add', path: '/locations/-', value: { url: blobUrl(deactId), metadata: {} } }]);
  expectStatus(a, 200, 'adding a location to the image to deactivate');
  a = await req('POST', `/v2/images/${deactId}/actions/deactivate`);
  expectStatus(a, 204, 'POST .../actions/deactivate');
  const nameIds = [];
  for (let i = 0; i < 4; i++) nameIds.push(await create(`soak-name-${i}`));
  const allIds = [dataId, ...locImages.map((l) => l.id), deactId, ...nameIds];
  log(`${values.label}: set up ${allIds.length} images (${values['image-mib']} MiB data image, ${locCount} location images) in ${Date.now() - setupStarted} ms; seed ${seed}`);

  // --- RSS sampling ------------------------------------------------------------------------
  const readStatus = (pid, key) => {
    try {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? (Number(m[1]) * 1024) / 1e6 : null; // MB (10^6 bytes)
    } catch {
      return null;
    }
  };
  /** CPU seconds (user + system) the process has used so far. */
  const cpuSeconds = (pid) => {
    try {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
      return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
    } catch {
      return NaN;
    }
  };
  const idle = pids.map((p) => readStatus(p.pid, 'VmRSS')); // just before the load: not in the windows
  let cpuBefore = pids.map((p) => cpuSeconds(p.pid));
  let ownCpuBefore = process.cpuUsage();
  const samples = pids.map(() => []);
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  // The warm-up: load as measured, every answer checked, but neither counted in req/s and
  // latencies nor in the RSS windows (the heap of a fresh process grows to its working size).
  if (warmup > 0) {
    setTimeout(() => {
      cpuBefore = pids.map((p) => cpuSeconds(p.pid));
      ownCpuBefore = process.cpuUsage();
    }, warmup * 1000);
  }
  const sample = () => {
    const t = elapsed();
    pids.forEach((p, i) => samples[i].push([t, readStatus(p.pid, 'VmRSS')]));
  };
  const sampler = setInterval(sample, 1000);

  // --- Load --------------------------------------------------------------------------------
  const newStats = () => Object.fromEntries(KINDS.map((k) => [k, { n: 0, errors: 0, bytes: 0, ms: [] }]));
  const warmStats = newStats();
  const stats = newStats();
  const statsNow = () => (elapsed() < warmup ? warmStats : stats);
  const perSecond = []; // answers completed in each second of the load (a stall shows as a dip)
  const tally = () => {
    const sec = Math.floor(elapsed());
    perSecond[sec] = (perSecond[sec] ?? 0) + 1;
  };
  const errorSamples = new Map();
  const noteError = (kind, err) => {
    statsNow()[kind].errors += 1;
    const text = `${KIND_NAMES[kind]}: ${err instanceof Fail ? err.message : `connection error: ${err.code ?? ''} ${err.message}`}`;
    errorSamples.set(text, (errorSamples.get(text) ?? 0) + 1);
  };
  let nameCounter = 0;
  const waiters = [];
  // A location image is used by one client at a time (its next op depends on its state); one
  // whose state is unknown after a wrong answer is not used again.
  const takeLocImage = () => {
    const free = locImages.filter((l) => !l.busy && !l.broken);
    if (free.length) {
      const l = free[Math.floor(random() * free.length)];
      l.busy = true;
      return Promise.resolve(l);
    }
    if (locImages.every((l) => l.broken)) return Promise.reject(new Fail('no usable location image left'));
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  };
  const giveLocImage = (l) => {
    if (l.broken) {
      l.busy = false;
      if (locImages.every((x) => x.broken)) for (const w of waiters.splice(0)) w.reject(new Fail('no usable location image left'));
      return;
    }
    const next = waiters.shift();
    if (next) next.resolve(l);
    else l.busy = false;
  };

  const rangeOp = async (start, len, legacy) => {
    const end = start + len - 1;
    const headers = legacy ? { 'Content-Range': `bytes ${start}-${end}/*` } : { Range: `bytes=${start}-${end}` };
    const ans = await req('GET', `/v2/images/${dataId}/file`, { headers, onData: bytesChecker(image, start, len), dataStatus: 206 });
    expectStatus(ans, 206, `bytes ${start}-${end}`);
    if (ans.headers['content-range'] !== `bytes ${start}-${end}/${imageSize}`) throw new Fail(`Content-Range '${ans.headers['content-range']}' (want 'bytes ${start}-${end}/${imageSize}')`);
    if (ans.length !== len) throw new Fail(`${ans.length} bytes for bytes ${start}-${end} (want ${len})`);
    if (legacy && !/^@\d+$/.test(ans.headers['deprecation'] ?? '')) throw new Fail(`no Deprecation header on a legacy answer`);
    return ans.length;
  };

  /** One request of `kind`; returns [kind actually done, bytes received]. Throws on a wrong answer. */
  const once = async (kind, t0ref) => {
    switch (kind) {
      case 'full': {
        const ans = await req('GET', `/v2/images/${dataId}/file`, { onData: bytesChecker(image, 0, imageSize) });
        expectStatus(ans, 200, 'whole download');
        if (ans.length !== imageSize) throw new Fail(`${ans.length} bytes (want ${imageSize})`);
        if (Number(ans.headers['content-length']) !== imageSize) throw new Fail(`Content-Length ${ans.headers['content-length']}`);
        return [kind, ans.length];
      }
      case 'range1m':
        return [kind, await rangeOp(int(0, imageSize - MiB), MiB, false)];
      case 'rangesmall':
        return [kind, await rangeOp(int(0, imageSize - 4096), int(1, 4096), false)];
      case 'legacy':
        return [kind, await rangeOp(int(0, imageSize - 65536), int(1, 65536), true)];
      case 'list': {
        const ans = await req('GET', '/v2/images');
        expectStatus(ans, 200, 'list');
        const doc = jsonOf(ans, 'list');
        const want = Math.min(25, allIds.length); // Glance's default page size
        if (!Array.isArray(doc.images) || doc.images.length !== want) throw new Fail(`list has ${doc.images?.length} images (want ${want})`);
        return [kind, ans.length];
      }
      case 'show': {
        const id = allIds[int(0, allIds.length - 1)];
        const ans = await req('GET', `/v2/images/${id}`);
        expectStatus(ans, 200, 'show');
        const doc = jsonOf(ans, 'show');
        if (doc.id !== id) throw new Fail(`show of ${id} answered image ${doc.id}`);
        return [kind, ans.length];
      }
      case 'loc': {
        const l = await takeLocImage();
        t0ref.t0 = process.hrtime.bigint(); // waiting for a free image is not the server's time
        let done = 'locadd';
        try {
          if (!l.added) {
            const ans = await patch(l.id, [{ op: 'add', path: '/locations/-', value: { url: blobUrl(l.id), metadata: {} } }]);
            expectStatus(ans, 200, 'add location');
            const doc = jsonOf(ans, 'add location');
            if (doc.locations?.length !== 2 || doc.locations[1].url !== blobUrl(l.id)) throw new Fail(`after the add: locations ${JSON.stringify(doc.locations)}`);
            l.added = true;
            return [done, ans.length];
          }
          done = 'locremove';
          const ans = await patch(l.id, [{ op: 'remove', path: '/locations/1' }]);
          expectStatus(ans, 200, 'remove location');
          const doc = jsonOf(ans, 'remove location');
          if (doc.locations?.length !== 1 || !String(doc.locations[0].url).startsWith('file:')) throw new Fail(`after the remove: locations ${JSON.stringify(doc.locations)}`);
          l.added = false;
          return [done, ans.length];
        } catch (err) {
          err.kind = done;
          l.broken = true; // its state is unknown now: not used again
          throw err;
        } finally {
          giveLocImage(l);
        }
      }
      case 'locrefused': {
        const ans = await patch(deactId, [{ op: 'remove', path: '/locations/0' }]);
        expectStatus(ans, 409, 'location removal on a deactivated image');
        return [kind, ans.length];
      }
      case 'name': {
        const id = nameIds[int(0, nameIds.length - 1)];
        const name = `soak-name-${++nameCounter}`;
        const ans = await patch(id, [{ op: 'replace', path: '/name', value: name }]);
        expectStatus(ans, 200, 'name change');
        const doc = jsonOf(ans, 'name change');
        if (doc.name !== name) throw new Fail(`name change answered name ${JSON.stringify(doc.name)} (want ${name})`);
        return [kind, ans.length];
      }
      default:
        throw new Error(`unknown kind ${kind}`);
    }
  };

  const deadline = warmup + seconds;
  const worker = async () => {
    while (elapsed() < deadline) {
      const drawn = draw();
      const ref = { t0: process.hrtime.bigint() };
      try {
        const [kind, bytes] = await once(drawn, ref);
        tally();
        const s = statsNow()[kind];
        s.n += 1;
        s.bytes += bytes;
        s.ms.push(Number(process.hrtime.bigint() - ref.t0) / 1e6);
      } catch (err) {
        tally();
        const kind = err.kind ?? (drawn === 'loc' ? 'locadd' : drawn);
        statsNow()[kind].n += 1;
        noteError(kind, err);
      }
    }
  };
  let progress = 0;
  const ticker = setInterval(() => {
    progress += 10;
    if (progress < deadline) {
      const count = (key) => KINDS.reduce((sum, k) => sum + stats[k][key] + warmStats[k][key], 0);
      const rss = samples[0].at(-1)?.[1];
      log(`${values.label}: ${progress} s${progress <= warmup ? ' (warm-up)' : ''}, ${count('n')} requests, ${count('errors')} errors, RSS ${rss?.toFixed(1)} MB`);
    }
  }, 10_000);
  await Promise.all(Array.from({ length: concurrency }, worker));
  const endSeconds = elapsed();
  const loadSeconds = endSeconds - warmup; // the measured part
  clearInterval(sampler);
  clearInterval(ticker);
  const cpuPct = pids.map((p, i) => (100 * (cpuSeconds(p.pid) - cpuBefore[i])) / loadSeconds);
  const ownCpu = process.cpuUsage(ownCpuBefore);
  const ownCpuPct = (ownCpu.user + ownCpu.system) / 1e4 / loadSeconds;

  // --- After the load: the images are as they must be ---------------------------------------
  const after = [];
  const check = async (what, fn) => {
    try {
      await fn();
    } catch (err) {
      after.push(`${what}: ${err instanceof Fail ? err.message : `connection error: ${err.message}`}`);
    }
  };
  await check('data image: whole download', async () => {
    const ans = await req('GET', `/v2/images/${dataId}/file`, { onData: bytesChecker(image, 0, imageSize) });
    expectStatus(ans, 200, 'download');
    if (ans.length !== imageSize) throw new Fail(`${ans.length} bytes`);
  });
  for (const l of locImages) {
    if (l.broken) continue;
    await check(`location image ${l.id}`, async () => {
      const s = await req('GET', `/v2/images/${l.id}`);
      expectStatus(s, 200, 'show');
      const doc = jsonOf(s, 'show');
      const want = l.added ? 2 : 1;
      if (doc.status !== 'active' || doc.locations?.length !== want) throw new Fail(`${doc.status} with ${doc.locations?.length} locations (want active with ${want})`);
      const ans = await req('GET', `/v2/images/${l.id}/file`, { onData: bytesChecker(locData, 0, locSize) });
      expectStatus(ans, 200, 'download');
      if (ans.length !== locSize) throw new Fail(`${ans.length} bytes of data (want ${locSize})`);
    });
  }
  await check('deactivated image', async () => {
    const s = await req('GET', `/v2/images/${deactId}`);
    expectStatus(s, 200, 'show');
    const doc = jsonOf(s, 'show');
    if (doc.status !== 'deactivated' || doc.locations?.length !== 2) throw new Fail(`${doc.status} with ${doc.locations?.length} locations (want deactivated with 2: the refused removals must change nothing)`);
  });
  agent.destroy();

  // --- Report ------------------------------------------------------------------------------
  const pct = (arr, p) => {
    if (!arr.length) return NaN;
    const sorted = Float64Array.from(arr).sort();
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  };
  const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
  const mean = (xs) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
  /** RSS figures of process i over the measured part: the first and last `window` samples (one a second). */
  const rssOf = (i) => {
    const warm = samples[i].filter(([t, v]) => v !== null && t <= warmup);
    const s = samples[i].filter(([t, v]) => v !== null && t > warmup && t <= endSeconds);
    return {
      first: mean(s.slice(0, window).map(([, v]) => v)),
      last: mean(s.slice(-window).map(([, v]) => v)),
      peak: Math.max(...s.map(([, v]) => v)),
      hwm: readStatus(pids[i].pid, 'VmHWM'),
      n: s.length,
      series: `${warm.length ? `${warm.map(([, v]) => v.toFixed(0)).join(' ')} | ` : ''}${s.map(([, v]) => v.toFixed(0)).join(' ')}`,
    };
  };

  const out = [];
  out.push(`== ${values.label}: ${loadSeconds.toFixed(1)} s of mixed load${warmup ? ` after ${warmup} s of warm-up` : ''}, ${concurrency} connections (seed ${seed})`);
  out.push(`  ${'kind'.padEnd(22)} ${'requests'.padStart(9)} ${'req/s'.padStart(9)} ${'MB/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'errors'.padStart(7)}`);
  let total = 0;
  let errors = 0;
  let bytes = 0;
  const all = [];
  for (const k of KINDS) {
    const s = stats[k];
    total += s.n;
    errors += s.errors;
    bytes += s.bytes;
    for (const x of s.ms) all.push(x);
    out.push(
      `  ${KIND_NAMES[k].padEnd(22)} ${String(s.n).padStart(9)} ${f1(s.n / loadSeconds).padStart(9)} ${f1(s.bytes / loadSeconds / 1e6).padStart(8)} ${f1(pct(s.ms, 50)).padStart(8)} ${f1(pct(s.ms, 99)).padStart(8)} ${String(s.errors).padStart(7)}`,
    );
  }
  out.push(
    `  ${'all'.padEnd(22)} ${String(total).padStart(9)} ${f1(total / loadSeconds).padStart(9)} ${f1(bytes / loadSeconds / 1e6).padStart(8)} ${f1(pct(all, 50)).padStart(8)} ${f1(pct(all, 99)).padStart(8)} ${String(errors).padStart(7)}`,
  );
  const warmN = KINDS.reduce((sum, k) => sum + warmStats[k].n, 0);
  const warmErrors = KINDS.reduce((sum, k) => sum + warmStats[k].errors, 0);
  if (warmup) out.push(`  warm-up (not in the figures above): ${warmN} requests, ${warmErrors} errors`);
  // Whole seconds of the measured part (the last, partial one left out).
  const secs = Array.from({ length: Math.max(0, Math.floor(endSeconds) - warmup) }, (_, i) => perSecond[warmup + i] ?? 0);
  if (secs.length) {
    const slowest = secs.indexOf(Math.min(...secs));
    const sorted = [...secs].sort((x, y) => x - y);
    out.push(
      `  answers per second: slowest ${secs[slowest]} (second ${slowest + 1}), median ${sorted[Math.floor(sorted.length / 2)]}, fastest ${sorted[sorted.length - 1]}`,
    );
  }
  errors += warmErrors;
  if (errorSamples.size) {
    out.push('  errors, by kind of wrong answer (first 10):');
    for (const [text, n] of [...errorSamples].slice(0, 10)) out.push(`    ${n} x ${text}`);
  }
  out.push(`  checks after the load: ${after.length ? `${after.length} FAILED` : 'ok'} (data image bytes, ${locImages.filter((l) => !l.broken).length} location images' status, locations and data, the deactivated image unchanged)`);
  for (const text of after) out.push(`    ${text}`);

  const rss = rssOf(0);
  const growth = rss.last - rss.first;
  const allowed = Math.max(growthMb, (growthPct / 100) * rss.first);
  const stable = Number.isFinite(growth) && growth <= allowed;
  out.push(
    `  RSS of ${values.label} (pid ${pids[0].pid}, VmRSS each second, ${rss.n} samples after the warm-up): first ${window} s mean ${f1(rss.first)} MB, last ${window} s mean ${f1(rss.last)} MB, ` +
      `growth ${growth >= 0 ? '+' : ''}${f1(growth)} MB (allowed +${f1(allowed)}: ${stable ? 'stable' : 'GROWING'}); peak sampled ${f1(rss.peak)} MB, VmHWM ${f1(rss.hwm)} MB`,
  );
  out.push(`    per second (MB; before the load ${f1(idle[0])}${warmup ? '; warm-up | measured' : ''}): ${rss.series}`);
  for (let i = 1; i < pids.length; i++) {
    const r = rssOf(i);
    out.push(`  RSS of ${pids[i].name} (pid ${pids[i].pid}, for information): first ${window} s mean ${f1(r.first)} MB, last ${window} s mean ${f1(r.last)} MB, peak sampled ${f1(r.peak)} MB, VmHWM ${f1(r.hwm)} MB`);
  }
  out.push(
    `  CPU during the load: ${pids.map((p, i) => `${p.name} ${cpuPct[i].toFixed(0)} %`).join(', ')}, load driver ${ownCpuPct.toFixed(0)} % (100 % = one CPU)`,
  );
  const rps = Object.fromEntries(KINDS.map((k) => [k, (stats[k].n / loadSeconds).toFixed(1)]));
  out.push(
    `RESULT label=${values.label} seconds=${loadSeconds.toFixed(1)} requests=${total} sent=${sent} locadds=${stats.locadd.n + warmStats.locadd.n + 1} warmup=${warmup} warm_requests=${warmN} rps=${(total / loadSeconds).toFixed(1)} slowest_second=${secs.length ? Math.min(...secs) : 0} errors=${errors} after_errors=${after.length} ` +
      `rss_first=${f1(rss.first)} rss_last=${f1(rss.last)} rss_growth=${f1(growth)} rss_allowed=${f1(allowed)} rss_peak=${f1(rss.peak)} rss_hwm=${f1(rss.hwm)} stable=${stable ? 1 : 0} window=${window} cpu=${cpuPct[0].toFixed(0)} driver_cpu=${ownCpuPct.toFixed(0)} ` +
      KINDS.map((k) => `rps_${k}=${rps[k]}`).join(' '),
  );
  process.stdout.write(`${out.join('\n')}\n`);
}

// ---------------------------------------------------------------------------------------------

const [command, ...rest] = process.argv.slice(2);
const main = command === 'blobs' ? blobs : command === 'run' ? run : null;
if (!main) {
  process.stderr.write('usage: node bench/soak-load.js blobs --size N [--port 0] | run --target URL --blobs URL --pid PID ... (see the head of this file)\n');
  process.exit(2);
}
Promise.resolve()
  .then(() => main(rest))
  .catch((err) => {
    process.stderr.write(`soak-load ${command}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
