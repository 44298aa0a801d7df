// The bare undici reverse proxy: an undici Pool to the upstream, each request forwarded with
// pool.stream (the answer's body written straight into the client's response), hop-by-hop headers
// stripped both ways.
//   node bench/peers/undici-proxy.js UPSTREAM_URL [PORT=0]   → prints `listening URL`
'use strict';
const http = require('node:http');
const { Pool } = require('undici');

const [upstream, port = '0'] = process.argv.slice(2);
const pool = new Pool(upstream, { connections: 256, keepAliveTimeout: 60_000 });
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect'];
const strip = (headers) => {
  const drop = new Set(HOP);
  for (const h of String(headers.connection ?? '').split(',')) drop.add(h.trim().toLowerCase());
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !drop.has(k)));
};

const server = http.createServer((req, res) => {
  const body = req.method === 'GET' || req.method === 'HEAD' ? null : req;
  pool.stream(
    { path: req.url, method: req.method, headers: strip(req.headers), body },
    ({ statusCode, headers }) => res.writeHead(statusCode, strip(headers)),
    (err) => err && res.destroy(),
  );
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`));
