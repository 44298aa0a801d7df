/**
 * BEHAVIOUR.md §2 as a property: Range and legacy Content-Range headers drawn from the grammar in
 * model.ts (valid and invalid: unit in any case, blanks, numbers with leading zeros, suffixes, open
 * ends, garbage, commas, `*`, stated lengths), on images of 1 to 5000 bytes, against the reference
 * model in model.ts, written from the contract and the answers recorded from Glance 25.1.0, not
 * from the code.
 *
 * (a) decideRange against the model; (b) the bytes on the wire: serveImage in a bare http server
 * with an in-memory source that sometimes ignores the range, fetched with node's http.request.
 * fuzz.test.ts sends many more, and pathological, headers the same way and through the demo.
 *
 * RANGE_PROPERTY_SEED  fast-check seed of both properties (default: test/helpers/seed.ts; printed)
 */
import { createHash } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { sendGlanceError } from '../../lib/errors';
import { decideRange, type RangeDecision } from '../../lib/ranges/decide';
import { serveImage } from '../../lib/ranges/serve';
import { ask, CATEGORIES, category, expectReply, imageSize, memorySource, model, normalised, ows, request, type Answer, type MemoryImage, type Reply } from './model';
import { testSeed } from '../helpers/seed';

const SEED = testSeed('RANGE_PROPERTY_SEED');

/** A decision reduced to the model's terms. */
function observed(decision: RangeDecision): Answer {
  if (decision.kind === 'whole') return { status: 200 };
  if (decision.kind === 'partial') return { status: 206, ranges: decision.ranges.map((r): [number, number] => [r.start, r.end]) };
  const status = decision.error.status;
  if (status !== 400 && status !== 416) throw new Error(`unexpected status ${status}`);
  return { status, type: decision.error.type, message: decision.error.message };
}

// ---------------------------------------------------------------------------------------------
// (a) The decision

describe('2. Image data: decideRange against the reference model (property)', () => {
  it('should answer 200, 206, 400 or 416 exactly as the model for 2000 random requests', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(
        imageSize.chain((size) => fc.tuple(fc.constant(size), request(size))),
        ([size, drawn]) => {
          const etag = '"0123456789abcdef0123456789abcdef"';
          const a = ask(size, etag, drawn);
          const decision = decideRange({ range: a.range, contentRange: a.contentRange, ifRange: a.ifRange, size, etag, maxRanges: a.maxRanges });
          const expected = model(a);
          expect(normalised(observed(decision))).toEqual(normalised(expected));
          if (decision.kind === 'error' && decision.error.status === 416) expect(decision.error.headers).toEqual({ 'Content-Range': `bytes */${size}` });
          seen.add(category(expected));
        },
      ),
      { numRuns: 2000, seed: SEED },
    );
    // The grammar reaches every answer of the contract (so the property can fail on each of them).
    expect([...seen].sort()).toEqual(CATEGORIES);
  });
});

// ---------------------------------------------------------------------------------------------
// (b) The bytes on the wire

type Current = MemoryImage;

let current: Current | null = null;
let server: http.Server;
let port: number;

const source = memorySource(() => current as Current);

const handlers = new Map([1, 2, 3, 5, 10].map((n) => [n, serveImage({ source, maxRanges: n })]));

beforeAll(async () => {
  server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const handler = handlers.get(Number(req.url?.slice(1)));
    if (!handler) {
      res.writeHead(404).end();
      return;
    }
    handler(req, res, (err) => sendGlanceError(req, res, err ?? new Error('no error')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
});

function fetchRaw(method: string, path: string, headers: Record<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('2. Image data: serveImage bytes against the reference model (property)', () => {
  it('should send exactly the status, Content-Range, Content-Length and bytes the model names for 300 random requests', async () => {
    await fc.assert(
      fc.asyncProperty(
        imageSize.chain((size) =>
          fc.tuple(
            fc.uint8Array({ minLength: size, maxLength: size }),
            request(size),
            fc.boolean(),
            fc.oneof(fc.constant(size), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 1024 })),
            fc.constantFrom('GET', 'GET', 'GET', 'HEAD'),
          ),
        ),
        async ([bytes, drawn, ignoresRange, chunk, method]) => {
          const image = Buffer.from(bytes);
          const checksum = createHash('md5').update(image).digest('hex');
          const etag = `"${checksum}"`;
          current = { image, checksum, ignoresRange, chunk };
          const sent = ask(image.length, etag, drawn);
          const headers: Record<string, string> = { accept: 'text/plain' };
          if (sent.range !== undefined) headers['range'] = sent.range;
          if (sent.contentRange !== undefined) headers['content-range'] = sent.contentRange;
          if (sent.ifRange !== undefined) headers['if-range'] = sent.ifRange;

          const reply = await fetchRaw(method, `/${drawn.maxRanges}`, headers);
          const expected = model(ask(image.length, etag, drawn, ows));
          expectReply(reply, expected, { image, checksum, etag, method, legacy: sent.contentRange !== undefined });
        },
      ),
      { numRuns: 300, seed: SEED },
    );
  });
});
