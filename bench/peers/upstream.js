// The upstream of the proxy suites and the server of the clients suite: a bare node:http server
// that answers like a Glance-v2 image service for what the workloads ask, and nothing more.
//
//   node bench/peers/upstream.js --id ID [--file PATH --checksum MD5] [--port 0]
//
//   GET  /v2/images/ID        a fixed image record: active, two locations (size and checksum of
//                             PATH when given, else 0 and null)
//   PATCH /v2/images/ID       200 and the same record (the body is read and dropped)
//   GET|HEAD /v2/images/ID/file  the bytes of PATH; one `Range: bytes=` range honoured (206)
//   anything else             404
// Prints `listening http://127.0.0.1:PORT` when ready.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const { parseArgs } = require('node:util');

const { values: o } = parseArgs({
  options: { id: { type: 'string' }, file: { type: 'string' }, checksum: { type: 'string' }, port: { type: 'string', default: '0' } },
});
if (!o.id) throw new Error('usage: node bench/peers/upstream.js --id ID [--file PATH --checksum MD5] [--port 0]');
const size = o.file ? fs.statSync(o.file).size : 0;
const record = Buffer.from(
  JSON.stringify({
    id: o.id,
    name: 'bench',
    status: 'active',
    visibility: 'public',
    protected: false,
    size: o.file ? size : null,
    virtual_size: null,
    checksum: o.checksum ?? null,
    disk_format: 'raw',
    container_format: 'bare',
    min_disk: 0,
    min_ram: 0,
    owner: 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0',
    tags: [],
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    locations: [
      { url: 'file:///var/lib/glance/images/a', metadata: {} },
      { url: 'file:///var/lib/glance/images/b', metadata: {} },
    ],
    self: `/v2/images/${o.id}`,
    file: `/v2/images/${o.id}/file`,
    schema: '/v2/schemas/image',
  }),
);
const imagePath = `/v2/images/${o.id}`;
const filePath = `${imagePath}/file`;
const json = { 'Content-Type': 'application/json', 'Content-Length': record.length };

function file(req, res) {
  if (!o.file) return res.writeHead(204).end();
  let start = 0;
  let end = size - 1;
  let status = 200;
  const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  if (m && (m[1] || m[2])) {
    if (m[1]) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(Number(m[2]), size - 1);
    } else start = Math.max(0, size - Number(m[2]));
    if (start > end) return res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
    status = 206;
  }
  const headers = { 'Content-Type': 'application/octet-stream', 'Content-Length': end - start + 1, 'Accept-Ranges': 'bytes' };
  if (status === 206) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
  res.writeHead(status, headers);
  if (req.method === 'HEAD') return res.end();
  const data = fs.createReadStream(o.file, { start, end, highWaterMark: 256 * 1024 });
  data.on('error', () => res.destroy());
  res.on('close', () => data.destroy());
  data.pipe(res);
}

const server = http.createServer((req, res) => {
  const url = req.url.split('?')[0];
  if (url === imagePath && req.method === 'GET') return res.writeHead(200, json).end(record);
  if (url === imagePath && req.method === 'PATCH') {
    req.resume();
    return req.on('end', () => res.writeHead(200, json).end(record));
  }
  if (url === filePath && (req.method === 'GET' || req.method === 'HEAD')) return file(req, res);
  req.resume();
  res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 9 }).end('not found');
});
server.keepAliveTimeout = 60_000;
server.requestTimeout = 0;
server.listen(Number(o.port), '127.0.0.1', () => process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`));
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
