// The load of the clients suite: `--concurrency` requests kept in flight, each a keep-alive GET of
// URL whose answer is read to its end, for `--warmup` + `--duration` seconds, by one of:
//   http           node:http http.request on an Agent({ keepAlive: true, maxSockets: concurrency })
//   undici-request undici Pool.request (body read with for await)
//   undici-stream  undici Pool.stream into a counting Writable
//   undici-dispatch undici Pool.dispatch with a bare handler (onResponseStart/Data/End)
// The pool has `concurrency` connections. Every answer must be 200 with `--bytes` bytes of body.
// Prints `RESULT requests=N seconds=S bytes=B errors=E` (the measured part, after the warm-up).
//   node bench/peers/client.js --kind KIND --url URL --bytes N [--concurrency 32] [--duration 10] [--warmup 2]
'use strict';
const http = require('node:http');
const { performance } = require('node:perf_hooks');
const { Writable } = require('node:stream');
const { parseArgs } = require('node:util');

const { values: o } = parseArgs({
  options: {
    kind: { type: 'string' },
    url: { type: 'string' },
    bytes: { type: 'string' },
    concurrency: { type: 'string', default: '32' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
  },
});
const conc = Number(o.concurrency);
const expect = Number(o.bytes);
const url = new URL(o.url);
const path = url.pathname + url.search;

function viaHttp() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
  const opts = { hostname: url.hostname, port: url.port, path, method: 'GET', agent };
  return () =>
    new Promise((resolve, reject) => {
      const req = http.request(opts, (res) => {
        let n = 0;
        res.on('data', (c) => (n += c.length));
        res.on('end', () => resolve([res.statusCode, n]));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
}

function viaUndici(kind) {
  const { Pool } = require('undici');
  const pool = new Pool(url.origin, { connections: conc, pipelining: 1 });
  const opts = { path, method: 'GET' };
  if (kind === 'undici-request')
    return async () => {
      const { statusCode, body } = await pool.request(opts);
      let n = 0;
      for await (const c of body) n += c.length;
      return [statusCode, n];
    };
  if (kind === 'undici-stream')
    return () => {
      let status = 0;
      let n = 0;
      return pool
        .stream(opts, ({ statusCode }) => {
          status = statusCode;
          return new Writable({
            write(c, _e, cb) {
              n += c.length;
              cb();
            },
          });
        })
        .then(() => [status, n]);
    };
  if (kind === 'undici-dispatch')
    return () =>
      new Promise((resolve, reject) => {
        let status = 0;
        let n = 0;
        pool.dispatch(opts, {
          onRequestStart() {},
          onResponseStart(_controller, statusCode) {
            status = statusCode;
          },
          onResponseData(_controller, chunk) {
            n += chunk.length;
          },
          onResponseEnd() {
            resolve([status, n]);
          },
          onResponseError(_controller, err) {
            reject(err);
          },
        });
      });
  throw new Error(`unknown --kind ${kind}`);
}

const one = o.kind === 'http' ? viaHttp() : viaUndici(o.kind);
const t0 = performance.now();
const measureFrom = t0 + Number(o.warmup) * 1000;
const until = measureFrom + Number(o.duration) * 1000;
let requests = 0;
let bytes = 0;
let errors = 0;
let firstError = null;

async function loop() {
  for (;;) {
    const now = performance.now();
    if (now >= until) return;
    try {
      const [status, n] = await one();
      if (status !== 200 || n !== expect) throw new Error(`answer ${status} with ${n} bytes (expected 200, ${expect})`);
      if (now >= measureFrom && performance.now() <= until) {
        requests++;
        bytes += n;
      }
    } catch (err) {
      errors++;
      firstError ??= err;
      if (errors > 1000) throw err;
    }
  }
}

Promise.all(Array.from({ length: conc }, loop)).then(
  () => {
    if (firstError) process.stderr.write(`first error: ${firstError.message}\n`);
    process.stdout.write(`RESULT requests=${requests} seconds=${Number(o.duration).toFixed(3)} bytes=${bytes} errors=${errors}\n`);
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  },
);
