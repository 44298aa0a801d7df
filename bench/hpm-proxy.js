// http-proxy-middleware in an Express app, with a keep-alive agent: the reference point for the
// sidecar in bench/sidecar.sh.   node bench/hpm-proxy.js UPSTREAM_URL PORT
'use strict';
const http = require('node:http');
const express = require('express');
const { createProxyMiddleware } = require('http-proxy-middleware');

const [upstream, port] = process.argv.slice(2);
if (!upstream || !port) {
  process.stderr.write('usage: node bench/hpm-proxy.js UPSTREAM_URL PORT\n');
  process.exit(2);
}
const app = express();
app.disable('x-powered-by');
app.use(createProxyMiddleware({ target: upstream, agent: new http.Agent({ keepAlive: true, maxSockets: 256 }), xfwd: true }));
http.createServer(app).listen(Number(port), '127.0.0.1', () => process.stdout.write(`hpm listening on http://127.0.0.1:${port}\n`));
