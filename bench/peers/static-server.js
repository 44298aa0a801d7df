// express.static over a folder, with its defaults (Range, ETag, Last-Modified).
//   node bench/peers/static-server.js ROOT [PORT=0]   → prints `listening URL`
'use strict';
const http = require('node:http');
const path = require('node:path');
const express = require('express');

const [root, port = '0'] = process.argv.slice(2);
const app = express();
app.disable('x-powered-by');
app.use(express.static(path.resolve(root)));
const server = http.createServer(app);
server.requestTimeout = 0; // whole-image downloads may take long
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`));
