// http-proxy-middleware in an Express app, with a keep-alive agent.
//   node bench/peers/hpm-proxy.js UPSTREAM_URL [PORT=0]   → prints `listening URL`
'use strict';
const http = require('node:http');
const express = require('express');
const { createProxyMiddleware } = require('http-proxy-middleware');

const [upstream, port = '0'] = process.argv.slice(2);
const app = express();
app.disable('x-powered-by');
app.use(createProxyMiddleware({ target: upstream, agent: new http.Agent({ keepAlive: true, maxSockets: 256 }), xfwd: true }));
const server = http.createServer(app);
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`));
