/**
 * The one upstream client (lib/upstream/client.ts) against real node:http servers on 127.0.0.1:
 * the retry a stale pooled connection allows (and only for a bodiless GET or HEAD), the deadline
 * of an answer, the mapping of failures to 502 and 504, answers read whole within a limit, abort.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { AnswerUnread, UpstreamFailure, upstreamClient, upstreamError } from '../../lib/upstream/client';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(handler: Handler): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const read = (res: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
    res.on('end', () => resolve(text));
  });

describe('upstreamClient', () => {
  it('should send the flat headers as given, at the path under the base URL, and give the answer', async () => {
    let seen: { url: string | undefined; raw: string[] } = { url: undefined, raw: [] };
    const url = await serve((req, res) => {
      seen = { url: req.url, raw: req.rawHeaders };
      res.end('hello');
    });
    const client = upstreamClient({ url: `${url}/prefix/`, timeout: 1000 });
    const answer = await client.send({ method: 'GET', path: '/v2/images?limit=1', headers: ['Host', client.host, 'X-Auth-Token', 't'] }).answer;
    expect(answer.statusCode).toBe(200);
    expect(await read(answer)).toBe('hello');
    expect(seen.url).toBe('/prefix/v2/images?limit=1');
    expect(seen.raw).toEqual(['Host', client.host, 'X-Auth-Token', 't', 'Connection', 'keep-alive']);
  });

  /**
   * A server that answers the first request on each connection and resets the connection when a
   * second one comes on it: to the client, a pooled connection that died as it was reused.
   */
  async function resettingOnReuse(seen: string[]): Promise<string> {
    const served = new WeakSet<object>();
    return serve((req, res) => {
      seen.push(req.method as string);
      if (served.has(req.socket)) {
        req.socket.destroy();
        return;
      }
      served.add(req.socket);
      req.resume();
      res.end('answered');
    });
  }

  it('should ask a GET once more on a fresh connection when the pooled one was reset as it was reused', async () => {
    const seen: string[] = [];
    const client = upstreamClient({ url: await resettingOnReuse(seen), timeout: 1000 });
    expect(await read(await client.send({ method: 'GET', path: '/', headers: ['Host', client.host] }).answer)).toBe('answered');
    expect(await read(await client.send({ method: 'GET', path: '/', headers: ['Host', client.host] }).answer)).toBe('answered');
    expect(seen).toEqual(['GET', 'GET', 'GET']);
  });

  it('should never send a request with a body twice', async () => {
    const seen: string[] = [];
    const client = upstreamClient({ url: await resettingOnReuse(seen), timeout: 1000 });
    expect(await read(await client.send({ method: 'GET', path: '/', headers: ['Host', client.host] }).answer)).toBe('answered');
    const sent = client.send({ method: 'PUT', path: '/', headers: ['Host', client.host, 'Content-Length', '3'], body: Readable.from([Buffer.from('abc')]) });
    const failure = (await sent.answer.catch((e: unknown) => e)) as UpstreamFailure;
    expect(failure).toBeInstanceOf(UpstreamFailure);
    expect(failure.kind).toBe('unreachable');
    expect(seen).toEqual(['GET', 'PUT']);
  });

  it('should fail with a timeout when the answer does not begin within the deadline, as a 504', async () => {
    const url = await serve(() => undefined);
    const client = upstreamClient({ url, timeout: 150 });
    const started = Date.now();
    const failure = (await client.send({ method: 'GET', path: '/', headers: ['Host', client.host] }).answer.catch((e: unknown) => e)) as UpstreamFailure;
    expect(failure).toBeInstanceOf(UpstreamFailure);
    expect(failure.kind).toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(Date.now() - started).toBeLessThan(2000);
    const error = upstreamError(failure);
    expect([error.status, error.type, error.message]).toEqual([504, 'upstream.timeout', 'The image service did not answer within 150 ms.']);
  });

  it('should fail as unreachable when nothing listens, as a 502 naming the error code', async () => {
    const url = await serve(() => undefined);
    const port = new URL(url).port;
    const server = servers.pop() as http.Server;
    await new Promise((r) => server.close(r));
    const client = upstreamClient({ url: `http://127.0.0.1:${port}`, timeout: 1000 });
    const failure = (await client.send({ method: 'GET', path: '/', headers: ['Host', client.host] }).answer.catch((e: unknown) => e)) as UpstreamFailure;
    const error = upstreamError(failure);
    expect([error.status, error.type, error.message]).toEqual([502, 'upstream.unreachable', 'The image service could not be reached (ECONNREFUSED).']);
  });

  it('should read an answer whole within its limit, and refuse a larger one', async () => {
    const url = await serve((req, res) => res.end(req.url === '/big' ? Buffer.alloc(2048) : '{"id":"x"}'));
    const client = upstreamClient({ url, timeout: 1000 });
    const small = await client.fetch({ method: 'GET', path: '/', headers: ['Host', client.host] }, 1024);
    expect([small.status, small.body.toString()]).toEqual([200, '{"id":"x"}']);
    const big = await client.fetch({ method: 'GET', path: '/big', headers: ['Host', client.host] }, 1024).catch((e: unknown) => e);
    expect(big).toEqual(new AnswerUnread('too large'));
  });

  it('should bound a whole read by its deadline when the body stalls', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': '10' });
      res.write('12345');
    });
    const client = upstreamClient({ url, timeout: 1000 });
    const failure = (await client.fetch({ method: 'GET', path: '/', headers: ['Host', client.host], timeout: 150 }, 1024).catch((e: unknown) => e)) as UpstreamFailure;
    expect(failure).toBeInstanceOf(UpstreamFailure);
    expect([failure.kind, failure.ms]).toEqual(['timeout', 150]);
  });

  it('should end the exchange on abort: the server sees the connection close, and closed resolves', async () => {
    let closedAtServer!: () => void;
    const serverSawClose = new Promise<void>((r) => (closedAtServer = r));
    const url = await serve((req) => req.socket.on('close', closedAtServer));
    const client = upstreamClient({ url, timeout: 5000 });
    const sent = client.send({ method: 'GET', path: '/', headers: ['Host', client.host] });
    await new Promise((r) => setTimeout(r, 50));
    sent.abort();
    await Promise.all([sent.closed, serverSawClose]);
    expect(await sent.answer.catch((e: unknown) => (e as UpstreamFailure).kind)).toBe('unreachable');
  });
});
