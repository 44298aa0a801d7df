/**
 * The lingering close of an answer sent before the request's body was read (lib/http/linger.ts),
 * over raw sockets: the client still sending gets the whole answer and a clean end of the
 * connection (FIN, never a reset), the server reads and drops what still comes, and closes after
 * LINGER_MS at the latest. It also checks that node:http still ends such an answer through the
 * socket's destroySoon(), the hook the close rests on, so a Node that stops calling it fails here.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { glanceError, sendGlanceError } from '../../lib/errors';
import { LINGER_MS } from '../../lib/http/linger';

let server: http.Server;
let port: number;
let destroySoonCalls = 0;

beforeAll(async () => {
  server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    // Refused as soon as the headers are in, the body unread (as the guard refuses an upload).
    sendGlanceError(req, res, glanceError(409, 'location.conflict', 'Refused before the body was read.'));
    const lingering = (req.socket as net.Socket & { destroySoon: () => void }).destroySoon;
    (req.socket as net.Socket & { destroySoon: () => void }).destroySoon = function counted() {
      destroySoonCalls += 1;
      lingering.call(this);
    };
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise((r) => server.close(r)));

/** Send headers announcing `size` bytes, then the body in 64 KiB writes for `sendMs`; collect the answer. */
function upload(size: number, sendMs: number): Promise<{ answer: string; reset: boolean; closedAfterMs: number }> {
  return new Promise((resolve) => {
    // Half-open allowed: the client goes on sending after the server's FIN, as an uploading client does.
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let reset = false;
    const started = Date.now();
    socket.on('connect', () => {
      socket.write(`PUT /v2/images/x/file HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${size}\r\n\r\n`);
      const piece = Buffer.alloc(64 * 1024);
      const timer = setInterval(() => {
        if (socket.destroyed) clearInterval(timer);
        else if (Date.now() - started > sendMs) {
          clearInterval(timer);
          socket.end();
        } else socket.write(piece, () => undefined);
      }, 5);
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') reset = true;
    });
    socket.on('close', () => resolve({ answer: Buffer.concat(chunks).toString('latin1'), reset, closedAfterMs: Date.now() - started }));
  });
}

describe('lingering close', () => {
  it('should give a client still sending the whole answer and end the connection without a reset', async () => {
    const before = destroySoonCalls;
    const results = await Promise.all(Array.from({ length: 8 }, () => upload(1024 * 1024 * 1024, 300)));
    for (const { answer, reset } of results) {
      expect(answer.startsWith('HTTP/1.1 409 Conflict\r\n')).toBe(true);
      expect(answer).toContain('\r\nConnection: close\r\n');
      expect(answer).toContain('Refused before the body was read.');
      expect(reset).toBe(false);
    }
    // node:http ended each answer through destroySoon (the hook the lingering close replaces).
    expect(destroySoonCalls - before).toBe(8);
  });

  it('should close after LINGER_MS at the latest when the client never stops sending', async () => {
    const { answer, closedAfterMs } = await upload(1024 * 1024 * 1024, 10_000);
    expect(answer.startsWith('HTTP/1.1 409 Conflict\r\n')).toBe(true);
    expect(answer).toContain('Refused before the body was read.');
    expect(closedAfterMs).toBeGreaterThanOrEqual(LINGER_MS - 100);
    expect(closedAfterMs).toBeLessThan(LINGER_MS + 3000);
  });
});
