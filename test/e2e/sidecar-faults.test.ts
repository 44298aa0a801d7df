/**
 * The sidecar as a process in front of upstreams the test controls: one that stalls, one that dies
 * mid-answer, one that answers garbage, and an old one that understands only the legacy
 * Content-Range request form. Plus its own /healthz, version links and access log.
 */
import http from 'node:http';
import net from 'node:net';
import { FIXTURE, startCli, type RunningProcess } from '../helpers/processes';

const IMAGE = '11111111-2222-3333-4444-555555555555';

interface Upstream {
  readonly url: string;
  readonly seen: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

function upstream(handler: http.RequestListener): Promise<Upstream> {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    handler(req, res);
  });
  return listening(server).then((url) => ({
    url,
    seen,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  }));
}

/** `server` listening on a free port of 127.0.0.1: its URL. */
function listening(server: net.Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`)));
}

/** Glance-like answers for one image: the lookup, the versions, and data through `data`. */
function oldGlance(data: (req: http.IncomingMessage, res: http.ServerResponse) => void): http.RequestListener {
  return (req, res) => {
    if (req.url === `/v2/images/${IMAGE}`) {
      const doc = JSON.stringify({ id: IMAGE, status: 'active', size: FIXTURE.length, checksum: 'aa4bc671b4c1c7a38e29800f50ef6346', locations: [] });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(doc) }).end(doc);
    } else if (req.url === `/v2/images/${IMAGE}/file`) {
      data(req, res);
    } else if (req.url === '/versions' || req.url === '/') {
      const port = (req.socket.address() as net.AddressInfo).port;
      const doc = JSON.stringify({ versions: [{ id: 'v2.3', status: 'CURRENT', links: [{ rel: 'self', href: `http://127.0.0.1:${port}/v2/` }] }] });
      res.writeHead(req.url === '/' ? 300 : 200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(doc) }).end(doc);
    } else {
      res.writeHead(404, { 'Content-Length': '0' }).end();
    }
  };
}

async function withSidecar(up: Upstream, extra: string[], fn: (sidecar: RunningProcess) => Promise<void>): Promise<void> {
  const sidecar = await startCli(['proxy', '--upstream', up.url, '--port', '0', '--host', '127.0.0.1', ...extra]);
  try {
    await fn(sidecar);
  } finally {
    await sidecar.stop();
    await up.close();
  }
}

/**
 * An upstream that answers the first request of each connection (keeping it alive) and resets the
 * connection when a second request arrives on it: a kept-alive connection closed by the upstream
 * just as the sidecar reuses it.
 */
function resettingUpstream(): Promise<Upstream & { readonly connections: () => number }> {
  const seen: http.IncomingHttpHeaders[] = [];
  let connections = 0;
  const server = net.createServer((socket) => {
    connections += 1;
    let requests = 0;
    let buffered = '';
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      while (buffered.includes('\r\n\r\n')) {
        const end = buffered.indexOf('\r\n\r\n') + 4;
        const head = buffered.slice(0, end);
        const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < end + length) return;
        buffered = buffered.slice(end + length);
        requests += 1;
        if (requests > 1) {
          socket.resetAndDestroy();
          return;
        }
        seen.push({ request: head.split('\r\n')[0] });
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}');
      }
    });
    socket.on('error', () => undefined);
  });
  return listening(server).then((url) => ({
    url,
    seen,
    connections: () => connections,
    close: () => new Promise<void>((done) => server.close(() => done())),
  }));
}

describe('the sidecar and kept-alive connections the upstream closes', () => {
  it('should ask a GET again on a fresh connection when its reused one is reset, and answer 200', async () => {
    const up = await resettingUpstream();
    await withSidecar(up, [], async (sidecar) => {
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${sidecar.url}/v2/images?limit=${i}`);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('{}');
      }
      // Every request after the first met a reset reused connection and was asked again.
      expect(up.seen).toHaveLength(4);
      expect(up.connections()).toBeGreaterThanOrEqual(4);
    });
  });

  it('should not ask a request with a body again (the body is gone): 502 with a Glance body', async () => {
    const up = await resettingUpstream();
    await withSidecar(up, [], async (sidecar) => {
      expect((await fetch(`${sidecar.url}/v2/images`)).status).toBe(200);
      const res = await fetch(`${sidecar.url}/v2/images/x/members`, { method: 'POST', body: '{"member": "m"}', headers: { 'content-type': 'application/json', accept: 'text/plain' } });
      expect(res.status).toBe(502);
      expect(await res.text()).toBe('502 Bad Gateway\n\nThe image service could not be reached (ECONNRESET).\n\n   ');
    });
  });
});

/**
 * An upstream that answers the image's lookup (a queued image) and, to an upload, a 401 as soon as
 * its head has come, reading none of its body (keystonemiddleware refusing a token does so).
 */
function earlyRefusingUpstream(): Promise<Upstream & { readonly bodyBytes: () => number }> {
  let bodyBytes = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let buffered = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      buffered = Buffer.concat([buffered, d]);
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.subarray(0, end).toString('latin1');
        buffered = buffered.subarray(end + 4);
        if (head.startsWith('PUT ')) {
          bodyBytes = buffered.length;
          socket.write('HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nunauthorized');
          socket.pause();
          return;
        }
        const doc = JSON.stringify({ id: IMAGE, status: 'queued', size: null, checksum: null, locations: [] });
        socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(doc)}\r\n\r\n${doc}`);
      }
    });
  });
  return listening(server).then((url) => ({
    url,
    seen: [],
    bodyBytes: () => bodyBytes,
    close: () =>
      new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  }));
}

describe('the sidecar in front of upstreams that misbehave', () => {
  it('should give a client still sending an upload the upstream\'s early 401, then close its connection', async () => {
    const up = await earlyRefusingUpstream();
    await withSidecar(up, [], async (sidecar) => {
      // Like most upload clients, it writes the whole body before it reads anything.
      const body = Buffer.alloc(8 * 1024 * 1024, 0x42);
      const socket = net.connect(sidecar.port, '127.0.0.1');
      const received: Buffer[] = [];
      socket.on('data', (d: Buffer) => received.push(d));
      const closed = new Promise<string | undefined>((done) => {
        socket.on('error', (err: NodeJS.ErrnoException) => done(err.code));
        socket.on('close', () => done(undefined));
      });
      socket.write(`PUT /v2/images/${IMAGE}/file HTTP/1.1\r\nHost: sidecar.test\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`);
      const written = await new Promise<boolean>((done) => socket.write(body, (err) => done(err === undefined || err === null)));
      expect(written).toBe(true);
      expect(await closed).toBeUndefined();
      const answer = Buffer.concat(received).toString('latin1');
      expect(answer).toMatch(/^HTTP\/1\.1 401 Unauthorized\r\n/);
      expect(answer).toContain('\r\nConnection: close\r\n');
      expect(answer.endsWith('\r\n\r\nunauthorized')).toBe(true);
      // The upstream got the head and no more than what came with it: the rest was dropped here.
      expect(up.bodyBytes()).toBeLessThan(body.length);
    });
  });

  it('should 504 with a Glance body when the upstream does not answer in time', async () => {
    const up = await upstream(() => undefined); // never answers
    await withSidecar(up, ['--timeout', '300'], async (sidecar) => {
      const res = await fetch(`${sidecar.url}/v2/images`, { headers: { accept: 'text/plain' } });
      expect(res.status).toBe(504);
      expect(await res.text()).toBe('504 Gateway Timeout\n\nThe image service did not answer within 300 ms.\n\n   ');
    });
  });

  it('should cut the client off, never end cleanly, when the upstream dies mid-answer', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '1000' });
      res.write('{"images": [');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    await withSidecar(up, [], async (sidecar) => {
      const failure = await fetch(`${sidecar.url}/v2/images`)
        .then((res) => res.text())
        .then(
          () => null,
          (err: unknown) => err,
        );
      expect(failure).not.toBeNull();
    });
  });

  it('should 502 and close the connection when the upstream resets during an upload, not read the rest', async () => {
    const up = await upstream((req, res) => {
      // The lookup that comes before an upload: the image is there and queued.
      if (req.method === 'GET') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id: IMAGE, status: 'queued', size: null, checksum: null, locations: [] }));
        return;
      }
      let n = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        if (n > 100_000) req.socket.destroy();
      });
    });
    await withSidecar(up, [], async (sidecar) => {
      const { hostname, port } = new URL(sidecar.url);
      const size = 64 * 1024 * 1024;
      const answer = await new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
        const req = http.request(
          { hostname, port, method: 'PUT', path: `/v2/images/${IMAGE}/file`, headers: { 'content-type': 'application/octet-stream', 'content-length': size, accept: 'text/plain' } },
          (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
          },
        );
        req.on('error', reject);
        const chunk = Buffer.alloc(64 * 1024);
        let sent = 0;
        const pump = () => {
          while (sent < size) {
            sent += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      });
      expect(answer.status).toBe(502);
      expect(answer.connection).toBe('close');
      // The reset reaches the sidecar as a read (ECONNRESET) or as its next write (EPIPE), as timing has it.
      expect(answer.body).toMatch(/^502 Bad Gateway\n\nThe image service could not be reached \((ECONNRESET|EPIPE)\)\.\n\n {3}$/);
    });
  });

  it('should refuse a location change with 502 when the lookup gets garbage (fail closed)', async () => {
    const up = await upstream((req, res) => {
      if (req.method === 'GET') res.writeHead(200, { 'Content-Type': 'application/json' }).end('<html>not json');
      else res.writeHead(200, { 'Content-Length': '2' }).end('{}');
    });
    await withSidecar(up, [], async (sidecar) => {
      const res = await fetch(`${sidecar.url}/v2/images/${IMAGE}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/openstack-images-v2.1-json-patch', accept: 'text/plain' },
        body: '[{"op":"remove","path":"/locations/0"}]',
      });
      expect(res.status).toBe(502);
      expect(await res.text()).toBe('502 Bad Gateway\n\nThe image service did not answer with an image document.\n\n   ');
      expect(up.seen.filter((h) => h['content-type'] !== undefined)).toHaveLength(0); // the PATCH never went upstream
    });
  });
});

describe('the sidecar in front of an old service', () => {
  it('should cut the slice itself when the upstream ignores Range and sends the whole image', async () => {
    const up = await upstream(oldGlance((_req, res) => res.writeHead(200, { 'Content-Length': String(FIXTURE.length) }).end(FIXTURE)));
    await withSidecar(up, [], async (sidecar) => {
      const res = await fetch(`${sidecar.url}/v2/images/${IMAGE}/file`, { headers: { range: 'bytes=-5' } });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe('bytes 27-31/32');
      expect(Buffer.from(await res.arrayBuffer()).toString()).toBe('rstuv');
    });
  });

  it('should ask a legacy-only upstream with Content-Range and answer the client a proper 206', async () => {
    // Pre-Ocata Glance: honours only the legacy request form, and its 206 lacks Content-Range.
    const up = await upstream(
      oldGlance((req, res) => {
        const m = /^bytes (\d+)-(\d+)\/\*$/.exec(String(req.headers['content-range'] ?? ''));
        if (!m) return void res.writeHead(200, { 'Content-Length': String(FIXTURE.length) }).end(FIXTURE);
        const slice = FIXTURE.subarray(Number(m[1]), Number(m[2]) + 1);
        res.writeHead(206, { 'Content-Length': String(slice.length) }).end(slice);
      }),
    );
    await withSidecar(up, ['--legacy-upstream', 'true'], async (sidecar) => {
      const res = await fetch(`${sidecar.url}/v2/images/${IMAGE}/file`, { headers: { range: 'bytes=12-20' } });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe('bytes 12-20/32');
      expect(Buffer.from(await res.arrayBuffer()).toString()).toBe('cdefghijk');
      const asked = up.seen.find((h) => h['content-range'] !== undefined);
      expect(asked?.['content-range']).toBe('bytes 12-20/*');
      expect(asked?.['range']).toBeUndefined();
    });
  });

  it("should name itself, not the upstream, in the version documents", async () => {
    const up = await upstream(oldGlance(() => undefined));
    await withSidecar(up, [], async (sidecar) => {
      for (const p of ['/', '/versions']) {
        const res = await fetch(`${sidecar.url}${p}`);
        expect(res.status).toBe(p === '/' ? 300 : 200);
        const doc = (await res.json()) as { versions: { links: { href: string }[] }[] };
        expect(doc.versions[0]?.links[0]?.href).toBe(`${sidecar.url}/v2/`);
      }
    });
  });

  it('should answer /healthz 200 with the upstream reachable, 503 without it, and log one JSON line per request', async () => {
    const up = await upstream(oldGlance(() => undefined));
    await withSidecar(up, [], async (sidecar) => {
      const ok = await fetch(`${sidecar.url}/healthz`);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ status: 'ok', upstream: { url: up.url, reachable: true, status: 200 }, uploadsInFlight: 0 });
      // Log lines are written in batches, at the latest 200 ms after they are made.
      let line: string | undefined;
      for (let i = 0; i < 100 && !line; i++) {
        await new Promise((r) => setTimeout(r, 20));
        line = sidecar
          .output()
          .split('\n')
          .find((l) => l.includes('"/healthz"'));
      }
      const entry = JSON.parse(line ?? '{}') as Record<string, unknown>;
      expect(entry).toMatchObject({ level: 'info', msg: 'request completed', req: { id: ok.headers.get('x-openstack-request-id'), method: 'GET', url: '/healthz' }, res: { statusCode: 200 } });
    });
    const orphan = await startCli(['proxy', '--upstream', 'http://127.0.0.1:9', '--port', '0', '--host', '127.0.0.1']);
    try {
      const down = await fetch(`${orphan.url}/healthz`);
      expect(down.status).toBe(503);
      expect(await down.json()).toMatchObject({ status: 'upstream unreachable', upstream: { reachable: false } });
    } finally {
      await orphan.stop();
    }
  });
});
