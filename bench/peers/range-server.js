// The floor of Node serving ranges from disk: bare node:http, the file opened once, each
// `Range: bytes=a-b` answered with one positional read into a reused buffer and one write. No
// validation beyond that, no headers but the range's, no logs: what any Node server of ranges pays.
//   node bench/peers/range-server.js FILE [PORT=0]   → prints `listening URL` (every path is the file)
'use strict';
const fs = require('node:fs');
const http = require('node:http');

const [file, port = '0'] = process.argv.slice(2);
const fd = fs.openSync(file, 'r');
const size = fs.fstatSync(fd).size;
const pool = [];

const server = http.createServer((req, res) => {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  const start = m ? Number(m[1]) : 0;
  const end = m ? Math.min(Number(m[2]), size - 1) : size - 1;
  const length = end - start + 1;
  if (!m || length <= 0 || length > 1 << 20) {
    res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
    return;
  }
  const buffer = pool.pop() ?? Buffer.allocUnsafeSlow(1 << 20);
  fs.read(fd, buffer, 0, length, start, (err, n) => {
    if (err || n !== length) {
      pool.push(buffer);
      res.destroy();
      return;
    }
    res.writeHead(206, { 'Content-Type': 'application/octet-stream', 'Content-Length': length, 'Content-Range': `bytes ${start}-${end}/${size}` });
    // The buffer is reused once the socket has taken it.
    res.end(buffer.subarray(0, length), () => pool.push(buffer));
  });
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`));
