// The least a node:http reverse proxy can do: take a request, send it upstream on a keep-alive
// agent with the same method, path and headers, pipe the answer back. No header filtering, no
// X-Forwarded-*, no error answers, no logs, no metrics: the floor of Node's own HTTP cost, next to
// which bench/sidecar.sh puts the sidecar (and against which the nginx ratio can be read).
//
//   node bench/min-proxy.js UPSTREAM_URL PORT
'use strict';
const http = require('node:http');

const [upstream, port] = process.argv.slice(2);
if (!upstream || !port) {
  process.stderr.write('usage: node bench/min-proxy.js UPSTREAM_URL PORT\n');
  process.exit(2);
}
const { hostname, port: upstreamPort } = new URL(upstream);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

http
  .createServer((req, res) => {
    const out = http.request({ hostname, port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  })
  .listen(Number(port), '127.0.0.1', () => process.stdout.write(`min-proxy listening on http://127.0.0.1:${port}\n`));
