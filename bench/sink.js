// An upstream for bench/sidecar.sh's chunked uploads: reads every request body to its end, then
// answers 204 (nginx's `return` answers before reading the body, which would end the upload early).
//   node bench/sink.js PORT
'use strict';
const http = require('node:http');

const port = Number(process.argv[2]);
http
  .createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => res.writeHead(204, { 'X-Received-Bytes': String(bytes) }).end());
  })
  .listen(port, '127.0.0.1', () => process.stdout.write(`sink listening on http://127.0.0.1:${port}\n`));
