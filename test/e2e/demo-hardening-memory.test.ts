/**
 * BEHAVIOUR.md section 2 ("Data is streamed: memory use does not grow with image size"), from the
 * outside: downloads whose clients never read hold no more of the demo's memory than their
 * sockets' buffers. The demo's RSS is read from /proc/<pid>/status.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { startDemo, type Demo } from '../helpers/processes';

const SIZE = 48 * 1024 * 1024;
const CLIENTS = 200;

let demo: Demo;
let id: string;

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb[1]) / 1024;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  demo = await startDemo();
  const created = await fetch(`${demo.url}/v2/images`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'large', disk_format: 'raw', container_format: 'bare' }),
  });
  expect(created.status).toBe(201);
  ({ id } = (await created.json()) as { id: string });
  const put = await fetch(`${demo.url}/v2/images/${id}/file`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: randomBytes(SIZE) });
  expect(put.status).toBe(204);
}, 60000);

afterAll(async () => {
  await demo?.close();
});

/** A client that asks for the whole image and never reads a byte of the answer. */
function stalledDownload(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(demo.port, '127.0.0.1', () => {
      socket.pause();
      socket.write(`GET /v2/images/${id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

describe('2. Image data: downloads nobody reads', () => {
  it(`should hold ${CLIENTS} stalled downloads of a ${SIZE / 1024 / 1024} MiB image within 100 MB of RSS, and still 206 a range to a reader`, async () => {
    // Warm up: one download read to its end, so that the buffers a download needs exist already.
    const warm = await fetch(`${demo.url}/v2/images/${id}/file`);
    expect(warm.status).toBe(200);
    expect((await warm.arrayBuffer()).byteLength).toBe(SIZE);
    await sleep(500);
    const before = rssMb(demo.child.pid as number);

    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < CLIENTS; i++) sockets.push(await stalledDownload());
      // Let every download run until its socket is full.
      let peak = rssMb(demo.child.pid as number);
      for (let i = 0; i < 30; i++) {
        await sleep(100);
        peak = Math.max(peak, rssMb(demo.child.pid as number));
      }
      // Before downloads respected backpressure, this grew by 300 MB and more (165 -> 478 MB).
      expect(peak - before).toBeLessThan(100);

      // The demo still serves: a reader gets the whole image while the others stall.
      const res = await fetch(`${demo.url}/v2/images/${id}/file`, { headers: { range: 'bytes=0-31' } });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes 0-31/${SIZE}`);
      expect((await res.arrayBuffer()).byteLength).toBe(32);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  }, 60000);
});
