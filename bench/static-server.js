#!/usr/bin/env node
/**
 * A minimal express.static server: the reference point "plain Express" for bench/ranges.sh.
 *
 *   node bench/static-server.js --root DIR [--port 0] [--host 127.0.0.1]
 *
 * Serves the files of DIR at /<name> with express.static's defaults (Range, ETag, Last-Modified)
 * and prints `static-server listening on http://HOST:PORT (root: DIR)` when ready. Stops on
 * SIGINT/SIGTERM.
 */
'use strict';
const http = require('node:http');
const path = require('node:path');
const { parseArgs } = require('node:util');
const express = require('express');

const { values } = parseArgs({
  options: {
    root: { type: 'string' },
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
  },
  strict: true,
});
if (!values.root) {
  process.stderr.write('usage: node bench/static-server.js --root DIR [--port 0] [--host 127.0.0.1]\n');
  process.exit(2);
}
const root = path.resolve(values.root);
const app = express();
app.disable('x-powered-by');
app.use(express.static(root));

const server = http.createServer(app);
// Same timeouts as the demo: whole-image downloads may take long.
server.requestTimeout = 0;
server.headersTimeout = 60_000;
server.keepAliveTimeout = 5_000;
server.listen(Number(values.port), values.host, () => {
  const { port } = server.address();
  process.stdout.write(`static-server listening on http://${values.host}:${port} (root: ${root})\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2_000).unref();
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
