/**
 * Request framing through the sidecar: the upstream must read each client request as exactly one
 * request, with the body the client framed, whatever the method, headers and timing. Requests are
 * written byte by byte over raw sockets to the sidecar (the built CLI), in front of an upstream that
 * parses the stream as a strict HTTP/1.1 server does (test/fixtures/raw-upstream.ts), so a body
 * forwarded without framing would show up there as a request of its own.
 */
import net from 'node:net';
import { answerDocument, headerOf, startRawUpstream, type ParsedRequest, type RawUpstream, type RawUpstreamOptions } from '../fixtures/raw-upstream';
import { FIXTURE, startCli, type RunningProcess } from '../helpers/processes';

const IMAGE = '11111111-2222-3333-4444-555555555555';
/** A whole PATCH request carried as the body of another: it must never reach the upstream as a request. */
const smuggled = (patch: string) =>
  [`PATCH /v2/images/${IMAGE} HTTP/1.1`, 'Host: 127.0.0.1', 'Content-Type: application/openstack-images-v2.1-json-patch', `Content-Length: ${patch.length}`, '', patch].join('\r\n');
/** A location change that the suite would refuse (409), had it judged it. */
const SMUGGLED = smuggled('[{"op": "replace", "path": "/locations", "value": []}]');
/** The image record the sidecar's lookups get (a PATCH or an upload is looked up first). */
const DOCUMENTS = { [`/v2/images/${IMAGE}`]: { id: IMAGE, name: 'framing', status: 'queued', locations: [] } };

type Headers = readonly (readonly [string, string])[];

/** The bytes of a request: request line, header fields as given, empty line, body. */
function request(method: string, target: string, headers: Headers, body = '', version = 'HTTP/1.1'): string {
  return `${method} ${target} ${version}\r\nHost: sidecar.test\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n${body}`;
}

/** `body` in chunks of `size` bytes, with the last chunk. */
function chunked(body: string | Buffer, size = 17): string {
  const buf = Buffer.from(body);
  let out = '';
  for (let i = 0; i < buf.length; i += size) {
    const part = buf.subarray(i, i + size);
    out += `${part.length.toString(16)}\r\n${part.toString('latin1')}\r\n`;
  }
  return `${out}0\r\n\r\n`;
}

interface Answer {
  readonly status: number;
  readonly head: string;
  /** Header fields, names lower-cased, repeated ones joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

interface Exchange {
  /** Final answers, in order. */
  readonly answers: Answer[];
  /** Interim (1xx) status lines. */
  readonly interim: string[];
  /** Whether the sidecar closed the connection. */
  readonly closed: boolean;
}

/**
 * Answers off the start of `buf`, as a client reads them; `heads` says which requests were HEAD.
 * Returns what it could read and the bytes left over.
 */
function readAnswers(buf: Buffer, heads: readonly boolean[], done: Answer[], interim: string[], closed: boolean): Buffer {
  for (;;) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return buf;
    const head = buf.subarray(0, end).toString('latin1');
    const [statusLine = '', ...fields] = head.split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
    const headers: Record<string, string> = {};
    for (const field of fields) {
      const colon = field.indexOf(':');
      const name = field.slice(0, colon).toLowerCase();
      const value = field.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    let at = end + 4;
    if (status >= 100 && status < 200) {
      interim.push(statusLine);
      buf = buf.subarray(at);
      continue;
    }
    let body: Buffer;
    if (heads[done.length] === true || status === 204 || status === 304) body = Buffer.alloc(0);
    else if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', at);
        if (lineEnd < 0) return buf;
        const n = parseInt(buf.subarray(at, lineEnd).toString('latin1'), 16);
        if (n === 0) {
          if (buf.length < lineEnd + 4) return buf;
          at = lineEnd + 4;
          break;
        }
        if (buf.length < lineEnd + 2 + n + 2) return buf;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + n));
        at = lineEnd + 2 + n + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length < at + n) return buf;
      body = Buffer.from(buf.subarray(at, at + n));
      at += n;
    } else {
      // Delimited by the close.
      if (!closed) return buf;
      body = Buffer.from(buf.subarray(at));
      at = buf.length;
    }
    done.push({ status, head, headers, body });
    buf = buf.subarray(at);
  }
}

/**
 * Write `bytes` to the sidecar on a connection of its own (and `later` 100 ms later) and read
 * answers until `count` have come (and, with `close`, the sidecar has closed the connection), or 5 s
 * have passed.
 */
function exchange(port: number, bytes: string | Buffer, options: { count?: number; heads?: readonly boolean[]; close?: boolean; later?: string } = {}): Promise<Exchange> {
  const count = options.count ?? 1;
  const heads = options.heads ?? [];
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const answers: Answer[] = [];
    const interim: string[] = [];
    let pending: Buffer = Buffer.alloc(0);
    let closed = false;
    const timer = setTimeout(() => finish(), 5000);
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ answers, interim, closed });
    };
    const check = () => {
      pending = readAnswers(pending, heads, answers, interim, closed);
      if (closed || (answers.length >= count && !options.close)) finish();
    };
    socket.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      check();
    });
    socket.on('end', () => {
      closed = true;
      check();
    });
    socket.on('error', () => {
      closed = true;
      check();
    });
    socket.write(bytes);
    const later = options.later;
    if (later !== undefined) setTimeout(() => socket.writable && socket.write(later), 100);
  });
}

/** The answer's status, headers and body are those of the upstream's answer to `seen`. */
function expectForwarded(answer: Answer | undefined, seen: ParsedRequest | undefined): void {
  expect(seen).toBeDefined();
  const r = seen as ParsedRequest;
  const doc = answerDocument(r);
  expect(answer).toBeDefined();
  const a = answer as Answer;
  expect(a.status).toBe(200);
  expect(a.headers['content-type']).toBe('application/json');
  expect(a.headers['content-length']).toBe(String(Buffer.byteLength(doc)));
  expect(a.headers['x-upstream-request']).toBe(`${r.connection}.${r.index}`);
  expect(a.body.toString('latin1')).toBe(r.method === 'HEAD' ? '' : doc);
}

/** Node's own answer to a request its parser refuses: no body, connection closed. */
const NODE_400 = 'HTTP/1.1 400 Bad Request\r\nConnection: close';

/** Glance's plain-text 400 for a request whose body has no single framing. */
const framingRefusal = (message: string) => `400 Bad Request\n\n${message}\n\n   `;
const UNSUPPORTED_CODING = framingRefusal('Transfer-Encoding other than chunked is not supported.');
const BOTH_FRAMINGS = framingRefusal('A request may not carry both Content-Length and Transfer-Encoding.');

async function withUpstream(options: RawUpstreamOptions, fn: (upstream: RawUpstream, sidecar: RunningProcess) => Promise<void>): Promise<void> {
  const upstream = await startRawUpstream(options);
  const sidecar = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1']);
  try {
    await fn(upstream, sidecar);
  } finally {
    await sidecar.stop();
    await upstream.close();
  }
}

/** Requests the upstream parsed since `mark`. */
const since = (upstream: RawUpstream, mark: number) => upstream.requests().slice(mark);

/** Whether `r` is the sidecar's own lookup of the image record, made before a PATCH or an upload is judged. */
const isLookup = (r: ParsedRequest) => r.method === 'GET' && r.target === `/v2/images/${IMAGE}` && r.framing === 'none';

/** How many times `needle` occurs in every byte the upstream has received. */
function occurrences(upstream: RawUpstream, needle: string): number {
  let n = 0;
  for (const c of upstream.connections()) {
    for (let at = c.received.indexOf(needle); at >= 0; at = c.received.indexOf(needle, at + 1)) n += 1;
  }
  return n;
}

const pause = (ms: number) => new Promise((done) => setTimeout(done, ms));

describe('request framing through the sidecar', () => {
  let upstream: RawUpstream;
  let sidecar: RunningProcess;
  beforeAll(async () => {
    upstream = await startRawUpstream({ documents: DOCUMENTS });
    sidecar = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1']);
  });
  afterAll(async () => {
    await sidecar.stop();
    await upstream.close();
  });

  describe('a bodiless method carrying a whole request as its body', () => {
    const methods = ['GET', 'HEAD', 'DELETE', 'OPTIONS'] as const;

    it.each(methods)('should 200 and forward a chunked %s with its body framed chunked, never as a second request', async (method) => {
      const mark = upstream.requests().length;
      const { answers } = await exchange(sidecar.port, request(method, '/v2/images', [['Transfer-Encoding', 'chunked']], chunked(SMUGGLED)), {
        heads: [method === 'HEAD'],
      });
      const seen = since(upstream, mark);
      expect(seen.map((r) => [r.method, r.target, r.framing, r.error])).toEqual([[method, '/v2/images', 'chunked', undefined]]);
      expect((seen[0] as ParsedRequest).body.toString('latin1')).toBe(SMUGGLED);
      expect(headerOf(seen[0] as ParsedRequest, 'transfer-encoding')).toBe('chunked');
      expect(headerOf(seen[0] as ParsedRequest, 'content-length')).toBeUndefined();
      expect(answers).toHaveLength(1);
      expectForwarded(answers[0], seen[0]);
    });

    it.each(methods)('should 200 and forward a %s with its Content-Length body framed by that length, never as a second request', async (method) => {
      const mark = upstream.requests().length;
      const { answers } = await exchange(sidecar.port, request(method, '/v2/images', [['Content-Length', String(SMUGGLED.length)]], SMUGGLED), {
        heads: [method === 'HEAD'],
      });
      const seen = since(upstream, mark);
      expect(seen.map((r) => [r.method, r.target, r.framing, r.error])).toEqual([[method, '/v2/images', 'length', undefined]]);
      expect((seen[0] as ParsedRequest).body.toString('latin1')).toBe(SMUGGLED);
      expect(headerOf(seen[0] as ParsedRequest, 'content-length')).toBe(String(SMUGGLED.length));
      expect(headerOf(seen[0] as ParsedRequest, 'transfer-encoding')).toBeUndefined();
      expectForwarded(answers[0], seen[0]);
    });

    it.each(methods)('should 200 and keep the Content-Length of a %s that Connection names, so its body stays a body', async (method) => {
      const mark = upstream.requests().length;
      const headers: Headers = [
        ['Connection', 'keep-alive, content-length'],
        ['Content-Length', String(SMUGGLED.length)],
      ];
      const { answers } = await exchange(sidecar.port, request(method, '/v2/images', headers, SMUGGLED), { heads: [method === 'HEAD'] });
      const seen = since(upstream, mark);
      expect(seen.map((r) => [r.method, r.target, r.framing, r.error])).toEqual([[method, '/v2/images', 'length', undefined]]);
      expect((seen[0] as ParsedRequest).body.toString('latin1')).toBe(SMUGGLED);
      expect(headerOf(seen[0] as ParsedRequest, 'content-length')).toBe(String(SMUGGLED.length));
      // The sidecar's own Connection, never the client's list (a HEAD with a body says it is the
      // last request on its connection; after a GET, DELETE or OPTIONS with one, undici closes it).
      expect(headerOf(seen[0] as ParsedRequest, 'connection')).toBe(method === 'HEAD' ? 'close' : 'keep-alive');
      expectForwarded(answers[0], seen[0]);
    });

    it.each(methods)('should 200 and frame chunked a %s whose Transfer-Encoding Connection names', async (method) => {
      const mark = upstream.requests().length;
      const headers: Headers = [
        ['Connection', 'Transfer-Encoding'],
        ['Transfer-Encoding', 'chunked'],
      ];
      const { answers } = await exchange(sidecar.port, request(method, '/v2/images', headers, chunked(SMUGGLED)), { heads: [method === 'HEAD'] });
      const seen = since(upstream, mark);
      expect(seen.map((r) => [r.method, r.target, r.framing, r.error])).toEqual([[method, '/v2/images', 'chunked', undefined]]);
      expect((seen[0] as ParsedRequest).body.toString('latin1')).toBe(SMUGGLED);
      expectForwarded(answers[0], seen[0]);
    });

    it('should never let a PATCH reach the upstream from any of these', async () => {
      expect(upstream.requests().filter((r) => r.method === 'PATCH' || r.error !== undefined)).toEqual([]);
      // Each smuggled request arrived once per test above (four per method), inside a body, and
      // nowhere else: in the bytes themselves only within those bodies (a chunked one may be split).
      const carried = upstream.requests().filter((r) => r.body.toString('latin1') === SMUGGLED).length;
      expect(carried).toBe(methods.length * 4);
      expect(occurrences(upstream, SMUGGLED)).toBeLessThanOrEqual(carried);
    });
  });

  describe('ambiguous framing', () => {
    /**
     * The request is refused, the connection closed, and nothing of it reaches the upstream: no
     * request but the sidecar's own lookups, and not one more occurrence of `marker` (a piece of the
     * body) in the bytes the upstream received.
     */
    async function expectRefused(bytes: string, check: (answer: Answer) => void, options: { later?: string; marker?: string } = {}): Promise<void> {
      const marker = options.marker ?? 'PATCH /v2/images';
      const mark = upstream.requests().length;
      const before = occurrences(upstream, marker);
      const { answers, closed } = await exchange(sidecar.port, bytes, { close: true, ...(options.later === undefined ? {} : { later: options.later }) });
      expect(answers).toHaveLength(1);
      check(answers[0] as Answer);
      expect(closed).toBe(true);
      await pause(50);
      expect(since(upstream, mark).filter((r) => !isLookup(r))).toEqual([]);
      expect(occurrences(upstream, marker)).toBe(before);
    }
    const EMPTY_CODING_REFUSED_BY_NODE = Number(process.versions.node.split('.')[0]) >= 22;
    const byNode = (answer: Answer) => {
      expect(answer.head).toBe(NODE_400);
      expect(answer.body.length).toBe(0);
    };
    const byTheSidecar = (body: string) => (answer: Answer) => {
      expect(answer.status).toBe(400);
      // Node 22 and later refuse an empty Transfer-Encoding themselves, before any request exists.
      if (answer.head === NODE_400 && EMPTY_CODING_REFUSED_BY_NODE) return;
      expect(answer.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(answer.headers['connection']).toBe('close');
      expect(answer.body.toString()).toBe(body);
    };

    // Node's parser refuses these itself, before the sidecar sees a request.
    it.each([
      ['Content-Length then Transfer-Encoding', [['Content-Length', String(SMUGGLED.length)], ['Transfer-Encoding', 'chunked']], chunked(SMUGGLED)],
      ['Transfer-Encoding then Content-Length', [['Transfer-Encoding', 'chunked'], ['Content-Length', '5']], chunked(SMUGGLED)],
      ['Content-Length and Transfer-Encoding that Connection names', [['Connection', 'content-length, transfer-encoding'], ['Content-Length', '5'], ['Transfer-Encoding', 'chunked']], chunked(SMUGGLED)],
      ['two differing Content-Length', [['Content-Length', '0'], ['Content-Length', String(SMUGGLED.length)]], SMUGGLED],
      ['two equal Content-Length', [['Content-Length', String(SMUGGLED.length)], ['Content-Length', String(SMUGGLED.length)]], SMUGGLED],
      ['a Content-Length list', [['Content-Length', `${SMUGGLED.length}, ${SMUGGLED.length}`]], SMUGGLED],
      ['a signed Content-Length', [['Content-Length', `+${SMUGGLED.length}`]], SMUGGLED],
      ['Transfer-Encoding chunked, identity', [['Transfer-Encoding', 'chunked, identity']], chunked(SMUGGLED)],
      ['Transfer-Encoding chunked twice', [['Transfer-Encoding', 'chunked'], ['Transfer-Encoding', 'chunked']], chunked(SMUGGLED)],
    ] as [string, Headers, string][])('should 400 (Node) a GET with %s, and pass nothing on', async (_name, headers, body) => {
      await expectRefused(request('GET', '/v2/images', headers, body), byNode);
    });

    it('should 400 (Node) a Transfer-Encoding with a space before the colon, and pass nothing on', async () => {
      await expectRefused(`GET /v2/images HTTP/1.1\r\nHost: sidecar.test\r\nTransfer-Encoding : chunked\r\n\r\n${chunked(SMUGGLED)}`, byNode);
    });

    it('should 400 (Node) a header section with a bare LF, and pass nothing on', async () => {
      await expectRefused(`GET /v2/images HTTP/1.1\r\nHost: sidecar.test\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`, byNode);
    });

    // Node hands these on as requests and refuses only the body's first byte: the sidecar refuses
    // them when it gets the request, before any of it goes upstream.
    it.each(['identity', 'xchunked', 'gzip'])('should 400 in Glance form a GET with Transfer-Encoding %s, and pass nothing on', async (coding) => {
      const head = request('GET', '/v2/images', [['Transfer-Encoding', coding], ['Accept', 'text/plain']]);
      await expectRefused(head, byTheSidecar(UNSUPPORTED_CODING), { later: SMUGGLED });
    });

    // Node reads these as chunked; another reader may not, so the sidecar refuses them.
    it.each([
      ['Transfer-Encoding gzip, chunked', [['Transfer-Encoding', 'gzip, chunked']]],
      ['Transfer-Encoding gzip then chunked', [['Transfer-Encoding', 'gzip'], ['Transfer-Encoding', 'chunked']]],
      ['Transfer-Encoding Chunked', [['Transfer-Encoding', 'Chunked']]],
      ['Transfer-Encoding CHUNKED', [['Transfer-Encoding', 'CHUNKED']]],
    ] as [string, Headers][])('should 400 in Glance form a GET with %s, and pass nothing on', async (_name, headers) => {
      await expectRefused(request('GET', '/v2/images', [...headers, ['Accept', 'text/plain']], chunked(SMUGGLED)), byTheSidecar(UNSUPPORTED_CODING));
    });

    // Node reads an empty Transfer-Encoding as no body, so the PATCH after it as a request of its
    // own (one the suite lets through, renaming the image): it is never forwarded either.
    it('should 400 in Glance form a GET with an empty Transfer-Encoding, and forward nothing written after it', async () => {
      const rename = smuggled('[{"op": "replace", "path": "/name", "value": "smuggled"}]');
      await expectRefused(request('GET', '/v2/images', [['Transfer-Encoding', ''], ['Accept', 'text/plain']], rename), byTheSidecar(UNSUPPORTED_CODING));
    });

    it('should 400 in Glance form a GET with an empty Transfer-Encoding and a Content-Length, and pass nothing on', async () => {
      const headers: Headers = [
        ['Transfer-Encoding', ''],
        ['Content-Length', String(SMUGGLED.length)],
        ['Accept', 'text/plain'],
      ];
      await expectRefused(request('GET', '/v2/images', headers, SMUGGLED), byTheSidecar(BOTH_FRAMINGS));
    });

    it('should 400 in Glance form a PUT upload with Transfer-Encoding gzip, chunked, and pass nothing on', async () => {
      const headers: Headers = [
        ['Content-Type', 'application/octet-stream'],
        ['Transfer-Encoding', 'gzip, chunked'],
        ['Accept', 'text/plain'],
      ];
      await expectRefused(request('PUT', `/v2/images/${IMAGE}/file`, headers, chunked(FIXTURE)), byTheSidecar(UNSUPPORTED_CODING), { marker: FIXTURE.toString('latin1') });
    });

    it('should 200 and forward as chunked a Transfer-Encoding with white space around chunked (not part of the value)', async () => {
      const mark = upstream.requests().length;
      const { answers } = await exchange(sidecar.port, `GET /v2/images HTTP/1.1\r\nHost: sidecar.test\r\nTransfer-Encoding:   chunked  \r\n\r\n${chunked(SMUGGLED)}`);
      const seen = since(upstream, mark);
      expect(seen.map((r) => [r.method, r.framing, r.body.toString('latin1')])).toEqual([['GET', 'chunked', SMUGGLED]]);
      expectForwarded(answers[0], seen[0]);
    });

    it('should 417 (Node) an Expect other than 100-continue, and pass nothing on', async () => {
      const mark = upstream.requests().length;
      const { answers } = await exchange(sidecar.port, request('GET', '/v2/images', [['Expect', 'smuggle'], ['Content-Length', String(SMUGGLED.length)]], SMUGGLED));
      expect(answers[0]?.status).toBe(417);
      await pause(50);
      expect(since(upstream, mark)).toEqual([]);
    });

    it('should 100, then 200 and forward the body framed, for a GET with Expect: 100-continue', async () => {
      const mark = upstream.requests().length;
      const headers: Headers = [
        ['Expect', '100-continue'],
        ['Content-Length', String(SMUGGLED.length)],
      ];
      const { answers, interim } = await exchange(sidecar.port, request('GET', '/v2/images', headers, SMUGGLED));
      expect(interim).toEqual(['HTTP/1.1 100 Continue']);
      const seen = since(upstream, mark);
      expect(seen.map((r) => [r.method, r.framing, r.body.toString('latin1')])).toEqual([['GET', 'length', SMUGGLED]]);
      expectForwarded(answers[0], seen[0]);
    });

    it('should 400 in Glance\'s format a request target that cannot be forwarded (OPTIONS *), and pass nothing on', async () => {
      const mark = upstream.requests().length;
      const { answers } = await exchange(sidecar.port, 'OPTIONS * HTTP/1.1\r\nHost: sidecar.test\r\nAccept: text/plain\r\n\r\n');
      expect(answers[0]?.status).toBe(400);
      expect(answers[0]?.headers['content-type']).toBe('text/plain; charset=UTF-8');
      expect(answers[0]?.body.toString('latin1')).toBe('400 Bad Request\n\nThe request cannot be forwarded: path must be an absolute URL or start with a slash.\n\n   ');
      await pause(50);
      expect(since(upstream, mark)).toEqual([]);
    });

    it('should 200 and forward as one HTTP/1.1 request a chunked HTTP/1.0 GET', async () => {
      const mark = upstream.requests().length;
      const { answers } = await exchange(sidecar.port, request('GET', '/v2/images', [['Transfer-Encoding', 'chunked']], chunked(SMUGGLED), 'HTTP/1.0'));
      const seen = since(upstream, mark);
      expect(seen.map((r) => [r.method, r.version, r.framing, r.body.toString('latin1')])).toEqual([['GET', 'HTTP/1.1', 'chunked', SMUGGLED]]);
      expectForwarded(answers[0], seen[0]);
    });
  });

  describe('pipelined requests', () => {
    it('should 200 each of a chunked GET and a GET written together, each read upstream as the client sent it', async () => {
      const mark = upstream.requests().length;
      const bytes = request('GET', '/v2/images?first', [['Transfer-Encoding', 'chunked']], chunked(SMUGGLED)) + request('GET', '/v2/images?second', []);
      const { answers } = await exchange(sidecar.port, bytes, { count: 2 });
      const seen = since(upstream, mark);
      expect(seen.map((r) => [r.method, r.target, r.framing, r.body.length]).sort()).toEqual([
        ['GET', '/v2/images?first', 'chunked', SMUGGLED.length],
        ['GET', '/v2/images?second', 'none', 0],
      ]);
      expect(answers).toHaveLength(2);
      expectForwarded(answers[0], seen.find((r) => r.target === '/v2/images?first'));
      expectForwarded(answers[1], seen.find((r) => r.target === '/v2/images?second'));
    });

    it('should 200 each of a DELETE with a Content-Length body and a HEAD written together', async () => {
      const mark = upstream.requests().length;
      const bytes = request('DELETE', `/v2/images/${IMAGE}`, [['Content-Length', String(SMUGGLED.length)]], SMUGGLED) + request('HEAD', '/v2/images', []);
      const { answers } = await exchange(sidecar.port, bytes, { count: 2, heads: [false, true] });
      const seen = since(upstream, mark).filter((r) => r.method !== 'GET');
      expect(seen.map((r) => [r.method, r.framing, r.body.toString('latin1')]).sort()).toEqual([
        ['DELETE', 'length', SMUGGLED],
        ['HEAD', 'none', ''],
      ]);
      expectForwarded(answers[0], seen.find((r) => r.method === 'DELETE'));
      expectForwarded(answers[1], seen.find((r) => r.method === 'HEAD'));
    });
  });

  describe('upgrades', () => {
    it('should 200 a GET asking for an upgrade, forwarded as a plain GET, and never forward the request written after it', async () => {
      const mark = upstream.requests().length;
      const headers: Headers = [
        ['Connection', 'Upgrade'],
        ['Upgrade', 'h2c'],
      ];
      const { answers } = await exchange(sidecar.port, request('GET', '/v2/images?upgrade', headers) + SMUGGLED);
      await pause(50);
      const seen = since(upstream, mark).filter((r) => !isLookup(r));
      expect(seen.map((r) => [r.method, r.target, r.framing, headerOf(r, 'upgrade'), headerOf(r, 'connection')])).toEqual([['GET', '/v2/images?upgrade', 'none', undefined, 'keep-alive']]);
      expectForwarded(answers[0], seen[0]);
    });
  });

  describe('controls: ordinary requests still go through byte for byte', () => {
    it('should 200 a plain GET, forwarded without a body', async () => {
      const mark = upstream.requests().length;
      const { answers } = await exchange(sidecar.port, request('GET', '/v2/images?limit=1', []));
      const seen = since(upstream, mark);
      expect(seen.map((r) => [r.method, r.target, r.framing, r.body.length])).toEqual([['GET', '/v2/images?limit=1', 'none', 0]]);
      expect(headerOf(seen[0] as ParsedRequest, 'content-length')).toBeUndefined();
      expect(headerOf(seen[0] as ParsedRequest, 'transfer-encoding')).toBeUndefined();
      expectForwarded(answers[0], seen[0]);
    });

    it('should 200 a chunked PUT upload, forwarded chunked with the same bytes', async () => {
      const mark = upstream.requests().length;
      const headers: Headers = [
        ['Content-Type', 'application/octet-stream'],
        ['Transfer-Encoding', 'chunked'],
      ];
      const { answers } = await exchange(sidecar.port, request('PUT', `/v2/images/${IMAGE}/file`, headers, chunked(FIXTURE, 5)));
      const seen = since(upstream, mark).filter((r) => r.method === 'PUT');
      expect(seen.map((r) => [r.target, r.framing, r.body.toString('latin1')])).toEqual([[`/v2/images/${IMAGE}/file`, 'chunked', FIXTURE.toString('latin1')]]);
      expect(headerOf(seen[0] as ParsedRequest, 'transfer-encoding')).toBe('chunked');
      expectForwarded(answers[0], seen[0]);
    });

    it('should 200 a PUT upload with a Content-Length, forwarded with that length and the same bytes', async () => {
      const mark = upstream.requests().length;
      const headers: Headers = [
        ['Content-Type', 'application/octet-stream'],
        ['Content-Length', String(FIXTURE.length)],
      ];
      const { answers } = await exchange(sidecar.port, request('PUT', `/v2/images/${IMAGE}/file`, headers, FIXTURE.toString('latin1')));
      const seen = since(upstream, mark).filter((r) => r.method === 'PUT');
      expect(seen.map((r) => [r.target, r.framing, r.body.toString('latin1')])).toEqual([[`/v2/images/${IMAGE}/file`, 'length', FIXTURE.toString('latin1')]]);
      expect(headerOf(seen[0] as ParsedRequest, 'content-length')).toBe(String(FIXTURE.length));
      expectForwarded(answers[0], seen[0]);
    });

    it('should 200 a PATCH, forwarded with its Content-Length and the same bytes', async () => {
      const mark = upstream.requests().length;
      const body = '[{"op": "replace", "path": "/name", "value": "renamed"}]';
      const headers: Headers = [
        ['Content-Type', 'application/openstack-images-v2.1-json-patch'],
        ['Content-Length', String(body.length)],
      ];
      const { answers } = await exchange(sidecar.port, request('PATCH', `/v2/images/${IMAGE}`, headers, body));
      const seen = since(upstream, mark).filter((r) => r.method === 'PATCH');
      expect(seen.map((r) => [r.target, r.framing, r.body.toString('latin1')])).toEqual([[`/v2/images/${IMAGE}`, 'length', body]]);
      expect(headerOf(seen[0] as ParsedRequest, 'content-length')).toBe(String(body.length));
      expectForwarded(answers[0], seen[0]);
    });

    it('should 200 a POST without a body, forwarded with none (Content-Length: 0)', async () => {
      const mark = upstream.requests().length;
      const { answers } = await exchange(sidecar.port, request('POST', '/v2/images', []));
      const seen = since(upstream, mark);
      expect(seen.map((r) => [r.method, r.framing, r.body.length, headerOf(r, 'content-length'), headerOf(r, 'transfer-encoding')])).toEqual([['POST', 'length', 0, '0', undefined]]);
      expectForwarded(answers[0], seen[0]);
    });

    it('should 200 a DELETE without a body, forwarded with no framing header at all', async () => {
      const mark = upstream.requests().length;
      const { answers } = await exchange(sidecar.port, request('DELETE', `/v2/images/${IMAGE}`, []));
      const seen = since(upstream, mark).filter((r) => !isLookup(r));
      expect(seen.map((r) => [r.method, r.framing, headerOf(r, 'content-length'), headerOf(r, 'transfer-encoding')])).toEqual([['DELETE', 'none', undefined, undefined]]);
      expectForwarded(answers[0], seen[0]);
    });
  });
});

describe('request framing and the sidecar’s pool of upstream connections', () => {
  it('should 200 each client its own answer when the upstream answers late, and not reuse a connection a GET with a body went on', async () => {
    await withUpstream({ delay: () => 150 }, async (upstream, sidecar) => {
      const first = exchange(sidecar.port, request('GET', '/v2/images?client=a', [['Transfer-Encoding', 'chunked']], chunked(SMUGGLED)));
      const second = exchange(sidecar.port, request('GET', '/v2/images?client=b', [['Content-Length', String(SMUGGLED.length)]], SMUGGLED));
      const [a, b] = await Promise.all([first, second]);
      // Then two requests without a body, once those answers are over.
      const [c, d] = await Promise.all([exchange(sidecar.port, request('GET', '/v2/images?client=c', [])), exchange(sidecar.port, request('HEAD', '/v2/images?client=d', []), { heads: [true] })]);
      const seen = upstream.requests();
      expect(seen.map((r) => [r.method, r.target, r.framing, r.body.length]).sort()).toEqual([
        ['GET', '/v2/images?client=a', 'chunked', SMUGGLED.length],
        ['GET', '/v2/images?client=b', 'length', SMUGGLED.length],
        ['GET', '/v2/images?client=c', 'none', 0],
        ['HEAD', '/v2/images?client=d', 'none', 0],
      ]);
      // A connection that carried a GET with a body is closed after its answer (whatever the
      // upstream made of that body, nothing more goes on it): c and d go on two new ones.
      expect(upstream.connections().length).toBe(4);
      expectForwarded(a.answers[0], seen.find((r) => r.target.endsWith('a')));
      expectForwarded(b.answers[0], seen.find((r) => r.target.endsWith('b')));
      expectForwarded(c.answers[0], seen.find((r) => r.target.endsWith('c')));
      expectForwarded(d.answers[0], seen.find((r) => r.target.endsWith('d')));
      // Nothing more comes on either connection.
      await pause(400);
      expect(upstream.requests()).toHaveLength(4);
    });
  });

  it.each(['HEAD', 'GET'])('should send nothing more on the connection a %s with a body went on, and keep the one of a %s without', async (method) => {
    await withUpstream({}, async (upstream, sidecar) => {
      const heads = [method === 'HEAD'];
      const bodied = await exchange(sidecar.port, request(method, '/v2/images?with=body', [['Content-Length', String(SMUGGLED.length)]], SMUGGLED), { heads });
      const after = await exchange(sidecar.port, request(method, '/v2/images?after=body', []), { heads });
      const again = await exchange(sidecar.port, request(method, '/v2/images?again', []), { heads });
      const seen = upstream.requests();
      expect(seen.map((r) => [r.method, r.target, r.framing, r.body.toString('latin1')])).toEqual([
        [method, '/v2/images?with=body', 'length', SMUGGLED],
        [method, '/v2/images?after=body', 'none', ''],
        [method, '/v2/images?again', 'none', ''],
      ]);
      // Whatever an upstream makes of a body on a HEAD or GET, the next request is not on its heels.
      expect(seen[1]?.connection).not.toBe(seen[0]?.connection);
      // A HEAD or GET without one keeps its connection for the next.
      expect(seen[2]?.connection).toBe(seen[1]?.connection);
      expectForwarded(bodied.answers[0], seen[0]);
      expectForwarded(after.answers[0], seen[1]);
      expectForwarded(again.answers[0], seen[2]);
    });
  });

  it.each([
    ['Content-Length', [['Content-Length', String(SMUGGLED.length)]], SMUGGLED],
    ['chunked', [['Transfer-Encoding', 'chunked']], chunked(SMUGGLED)],
  ] as [string, Headers, string][])('should 502, not send again, a GET with a %s body on a pooled connection the upstream resets', async (_name, headers, body) => {
    await withUpstream({ resetAfter: 1 }, async (upstream, sidecar) => {
      const warm = await exchange(sidecar.port, request('GET', '/v2/images?warm', []));
      expectForwarded(warm.answers[0], upstream.requests()[0]);
      const { answers } = await exchange(sidecar.port, request('GET', '/v2/images?body', [...headers, ['Accept', 'text/plain']], body));
      expect(answers[0]?.status).toBe(502);
      expect(answers[0]?.body.toString()).toMatch(/^502 Bad Gateway\n\nThe image service could not be reached \((ECONNRESET|EPIPE)\)\.\n\n {3}$/);
      await pause(100);
      // The body went out once at most, on the pooled connection, and was never asked again.
      expect(upstream.connections()).toHaveLength(1);
      expect(occurrences(upstream, 'GET /v2/images?body')).toBe(1);
      expect(upstream.requests().map((r) => r.target)).toEqual(['/v2/images?warm']);
    });
  });

  it('should 200 a bodiless GET asked again on a fresh connection when its pooled one is reset', async () => {
    await withUpstream({ resetAfter: 1 }, async (upstream, sidecar) => {
      const warm = await exchange(sidecar.port, request('GET', '/v2/images?warm', []));
      expectForwarded(warm.answers[0], upstream.requests()[0]);
      const { answers } = await exchange(sidecar.port, request('GET', '/v2/images?again', []));
      const seen = upstream.requests();
      expect(seen.map((r) => [r.connection, r.target])).toEqual([
        [0, '/v2/images?warm'],
        [1, '/v2/images?again'],
      ]);
      expectForwarded(answers[0], seen[1]);
    });
  });
});
