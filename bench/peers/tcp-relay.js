// The floor of any Node proxy: a TCP relay, no HTTP at all. Each client connection gets an
// upstream connection of its own and the bytes are copied both ways as they come; the upstream's
// answers are read into one reused buffer (net's `onread`; a fresh one only while the last is
// still queued on the client's socket): no allocation, no parser, no stream machinery beyond the
// socket's own write. It is an HTTP proxy only because it is transparent; what it costs per byte
// is what Node's socket reads and writes cost, which every proxy on Node pays.
//   node bench/peers/tcp-relay.js UPSTREAM_URL [PORT=0]   → prints `listening URL`
'use strict';
const net = require('node:net');

const [upstream, port = '0'] = process.argv.slice(2);
const { hostname, port: upstreamPort } = new URL(upstream);
const SIZE = 64 * 1024;

const server = net.createServer({ noDelay: true }, (client) => {
  let buffer = Buffer.allocUnsafeSlow(SIZE);
  const up = net.connect({
    host: hostname,
    port: Number(upstreamPort),
    noDelay: true,
    onread: {
      buffer: () => buffer,
      callback(n, buf) {
        const room = client.write(buf.subarray(0, n));
        if (client.writableLength === 0) return true;
        // The client's socket keeps that buffer until it has written it: read into another, and,
        // when its queue is full, not before it drains ('drain' comes only after a write said so).
        buffer = Buffer.allocUnsafeSlow(SIZE);
        if (room) return true;
        client.once('drain', () => up.resume());
        return false;
      },
    },
  });
  client.pipe(up);
  const close = () => {
    client.destroy();
    up.destroy();
  };
  client.on('error', close).on('close', close);
  up.on('error', close).on('close', close).on('end', () => client.end());
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`));
