/**
 * BEHAVIOUR.md §1, the race (ours), through the sidecar: an upload holds its image until the
 * service has answered it, even when its client has gone. The upstream here does not show
 * `saving` while it writes (as some services do not), so only the registry stands between a
 * location change and the image being written.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { startCli, type RunningProcess } from '../helpers/processes';

const ID = '5a1e0000-1111-2222-3333-444455556666';
/** An image whose uploads the service refuses before reading them (its id names it so). */
const REFUSED = 'refused0-1111-2222-3333-444455556666';
const V21 = 'application/openstack-images-v2.1-json-patch';
const ADD = JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: 'http://127.0.0.1:1/x', metadata: {} } }]);
const WRITE_MS = 1500;

interface Seen {
  readonly method: string;
  readonly at: number;
  readonly writing: boolean;
}

let upstream: http.Server;
let sidecar: RunningProcess;
const seen: Seen[] = [];
let writing = 0;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', at: Date.now(), writing: writing > 0 });
    if (req.method === 'GET') {
      res.setHeader('Content-Type', 'application/json');
      const id = (req.url ?? '').includes('refused') ? REFUSED : ID;
      res.end(JSON.stringify({ id, status: 'queued', size: null, checksum: null, locations: [] }));
      return;
    }
    if (req.method === 'PUT' && (req.url ?? '').includes('refused')) {
      // Refused at once, before the body is read: the client may never send the rest.
      res.writeHead(409, { 'Content-Type': 'text/plain', 'Content-Length': 2 }).end('no');
      return;
    }
    if (req.method === 'PUT') {
      writing += 1;
      req.resume();
      req.on('end', () =>
        setTimeout(() => {
          writing -= 1;
          res.writeHead(204).end();
        }, WRITE_MS),
      );
      return;
    }
    req.resume();
    req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 2 }).end('{}'));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const { port } = upstream.address() as AddressInfo;
  sidecar = await startCli(['proxy', '--upstream', `http://127.0.0.1:${port}`, '--port', '0']);
});

afterAll(async () => {
  await sidecar?.stop();
  upstream?.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

/** Send `text` on a new connection; the first answer's status line and body. */
function send(text: string, closeAfterWrite = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(sidecar.port, '127.0.0.1', () => {
      socket.write(text);
      if (closeAfterWrite) {
        // The whole request has been written: the client leaves before any answer.
        setTimeout(() => socket.destroy(), 100);
        resolve({ status: 0, body: '' });
      }
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const answer = Buffer.concat(chunks).toString();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(answer);
      resolve({ status: m ? Number(m[1]) : 0, body: answer.slice(answer.indexOf('\r\n\r\n') + 4) });
    });
  });
}

const patch = (id = ID) => send(`PATCH /v2/images/${id} HTTP/1.1\r\nHost: x\r\nContent-Type: ${V21}\r\nContent-Length: ${ADD.length}\r\nConnection: close\r\n\r\n${ADD}`);

describe('1. Location changes through the sidecar: an upload whose client has gone', () => {
  it('should 409 saving a location add while the service still writes an upload whose client left, and 200 it once the service has answered', async () => {
    const data = '0123456789abcdefghijklmnopqrstuv';
    await send(`PUT /v2/images/${ID}/file HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${data.length}\r\n\r\n${data}`, true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(seen.filter((s) => s.method === 'PUT')).toHaveLength(1);

    const during = await patch();
    expect(during.status).toBe(409);
    expect(during.body).toBe("409 Conflict\n\nIt's not allowed to add locations if image status is saving.\n\n   ");
    expect(seen.filter((s) => s.method === 'PATCH')).toEqual([]);

    await new Promise((resolve) => setTimeout(resolve, WRITE_MS));
    const after = await patch();
    expect(after).toEqual({ status: 200, body: '{}' });
    // The one PATCH that reached the service came when nothing was being written.
    expect(seen.filter((s) => s.method === 'PATCH').map((s) => s.writing)).toEqual([false]);
  });

  it('should let go of an upload the service refused before its body came, when its client then leaves: a change of the image is judged (200)', async () => {
    // 1000 bytes announced, 1 sent: the service answers 409 at once; the client then goes away.
    const socket = net.connect(sidecar.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const answered = new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => {
        chunks.push(c);
        if (Buffer.concat(chunks).includes('\r\n\r\nno')) resolve(Buffer.concat(chunks).toString());
      });
    });
    socket.write(`PUT /v2/images/${REFUSED}/file HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\nx`);
    expect(await answered).toMatch(/^HTTP\/1\.1 409 /);
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const change = await patch(REFUSED);
    expect(change).toEqual({ status: 200, body: '{}' });
  });
});
