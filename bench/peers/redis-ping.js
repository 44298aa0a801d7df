// The Redis round trip of the registry suite, and what Redis has run: one raw TCP connection, one
// PING at a time (RESP `*1\r\n$4\r\nPING\r\n`, answer `+PONG\r\n`) for the given seconds, then
// `INFO commandstats`.
//
//   node bench/peers/redis-ping.js --port PORT [--seconds S]
//
// Prints `RESULT pings=N p50_ms=… p99_ms=… mean_ms=… scripts=N`: the round trips' figures (null
// with --seconds 0), and the calls of EVALSHA and EVAL that Redis has answered since it started
// (the registry's scripts).
'use strict';
const net = require('node:net');
const { parseArgs } = require('node:util');

const { values: o } = parseArgs({ options: { port: { type: 'string' }, seconds: { type: 'string', default: '2' } } });
if (!o.port) throw new Error('usage: node bench/peers/redis-ping.js --port PORT [--seconds S]');
const seconds = Number(o.seconds);

const socket = net.connect(Number(o.port), '127.0.0.1');
socket.setNoDelay(true);
socket.setTimeout(10_000, () => fail(new Error('Redis did not answer within 10 s')));
socket.on('error', (err) => fail(err));

function fail(err) {
  process.stderr.write(`redis-ping: ${err.message}\n`);
  process.exit(1);
}

let buffered = '';
let waiting = null; // { done: (text) => void, complete: (text) => boolean }
socket.on('data', (chunk) => {
  buffered += chunk.toString('latin1');
  if (waiting && waiting.complete(buffered)) {
    const text = buffered;
    buffered = '';
    const w = waiting;
    waiting = null;
    w.done(text);
  }
});

function ask(command, complete) {
  return new Promise((done) => {
    waiting = { done, complete };
    socket.write(command);
  });
}

/** A bulk string answer (`$LEN\r\n…\r\n`) is complete once LEN bytes and the CRLF are in. */
function bulkComplete(text) {
  const m = /^\$(-?\d+)\r\n/.exec(text);
  if (!m) return text.startsWith('-') && text.endsWith('\r\n');
  const len = Number(m[1]);
  return len < 0 || Buffer.byteLength(text, 'latin1') >= m[0].length + len + 2;
}

socket.once('connect', async () => {
  const times = [];
  const until = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  for (;;) {
    const t = process.hrtime.bigint();
    if (t >= until) break;
    const answer = await ask('*1\r\n$4\r\nPING\r\n', (x) => x.endsWith('\r\n'));
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (answer !== '+PONG\r\n') fail(new Error(`PING answered ${JSON.stringify(answer)}`));
  }
  const info = await ask('*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n', bulkComplete);
  let scripts = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) scripts += Number(m[1]);
  times.sort((a, b) => a - b);
  // With no PING (--seconds 0) only the calls are of use: the times are null.
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  const mean = times.length ? times.reduce((a, b) => a + b, 0) / times.length : undefined;
  const f = (x) => (x === undefined ? 'null' : x.toFixed(4));
  process.stdout.write(`RESULT pings=${times.length} p50_ms=${f(at(0.5))} p99_ms=${f(at(0.99))} mean_ms=${f(mean)} scripts=${scripts}\n`);
  socket.end();
  process.exit(0);
});
