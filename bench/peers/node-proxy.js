// The bare node:http reverse proxy: the request forwarded on a keep-alive agent with its method,
// path and end-to-end headers, the answer piped back. No logs, metrics or error pages: the floor
// of Node's own HTTP cost for a proxy.
//   node bench/peers/node-proxy.js UPSTREAM_URL [PORT=0]   → prints `listening URL`
'use strict';
const http = require('node:http');

const [upstream, port = '0'] = process.argv.slice(2);
const { hostname, port: upstreamPort } = new URL(upstream);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
const strip = (headers) => {
  const drop = new Set(HOP);
  for (const h of String(headers.connection ?? '').split(',')) drop.add(h.trim().toLowerCase());
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !drop.has(k)));
};

const server = http.createServer((req, res) => {
  const out = http.request({ hostname, port: upstreamPort, method: req.method, path: req.url, headers: strip(req.headers), agent }, (answer) => {
    res.writeHead(answer.statusCode, strip(answer.headers));
    answer.pipe(res);
  });
  out.on('error', () => res.destroy());
  req.pipe(out);
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`));
