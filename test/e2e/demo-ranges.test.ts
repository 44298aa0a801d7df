/**
 * BEHAVIOUR.md section 2, row by row, against the demo server as a real process (the built CLI):
 * every answer is checked for status, every header the section names, and the exact body bytes.
 * Requests go out through node's http.request, so the headers are exactly the ones written here.
 */
import { randomUUID } from 'node:crypto';
import { send as call, type Answer as Reply } from '../helpers/http';
import { FIXTURE, startBlobServer, startDemo, type BlobServer, type Demo } from '../helpers/processes';

const SIZE = FIXTURE.length;
const MD5 = 'aa4bc671b4c1c7a38e29800f50ef6346';
const ETAG = `"${MD5}"`;
const V21 = 'application/openstack-images-v2.1-json-patch';

const DEPRECATION = '@1487721600';
const LINK = '<https://docs.openstack.org/api-ref/image/v2/#download-binary-image-data>; rel="deprecation"; type="text/html"';
const WARNING = '299 - "The Content-Range request header is deprecated; send Range: bytes=first-last"';

const MULTIPLE = 'Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.';
const INVALID_RANGE = 'Invalid Range header.';
const INVALID_CONTENT_RANGE = 'Invalid Content-Range header.';
const RANGE_START = 'Invalid start position in Range header. Start position MUST be in the inclusive range [0, 31].';
const LEGACY_START = 'Invalid start position in Content-Range header. Start position MUST be in the inclusive range [0, 31].';
const LEGACY_STOP = 'Invalid stop position in Content-Range header. The stop position MUST be in the inclusive range [0, 31].';

/** webob's plain-text bodies (BEHAVIOUR.md section 0). */
const plain = (status: string, message: string) => `${status}\n\n${message}\n\n   `;
const plain416 = (message: string) => `416 Request Range Not Satisfiable\n\nThe Range requested is not available.\n\n ${message}  `;

let demo: Demo;
let multi: Demo;
let blobs: BlobServer;

/** GET (or HEAD) an image's data, asking for plain-text errors. */
const download = (base: string, id: string, headers: Record<string, string> = {}, method = 'GET') =>
  call(base, method, `/v2/images/${id}/file`, { accept: 'text/plain', ...headers });

async function create(base: string): Promise<string> {
  const body = JSON.stringify({ name: 'ranges', disk_format: 'raw', container_format: 'bare' });
  const res = await call(base, 'POST', '/v2/images', { 'content-type': 'application/json' }, body);
  expect(res.status).toBe(201);
  return (JSON.parse(res.body.toString()) as { id: string }).id;
}

/** An active image whose data is FIXTURE, uploaded to the demo. */
async function uploaded(base: string): Promise<string> {
  const id = await create(base);
  const put = await call(base, 'PUT', `/v2/images/${id}/file`, { 'content-type': 'application/octet-stream' }, FIXTURE);
  expect(put.status).toBe(204);
  const shown = JSON.parse((await call(base, 'GET', `/v2/images/${id}`)).body.toString()) as Record<string, unknown>;
  expect(shown).toMatchObject({ status: 'active', size: SIZE, checksum: MD5 });
  return id;
}

/** An active image whose data is FIXTURE at an http:// location (a server that ignores Range). */
async function atLocation(base: string): Promise<string> {
  const id = await create(base);
  const url = blobs.put(`${id}.raw`, FIXTURE);
  const res = await call(base, 'PATCH', `/v2/images/${id}`, { 'content-type': V21 }, JSON.stringify([{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }]));
  expect(res.status).toBe(200);
  expect(JSON.parse(res.body.toString())).toMatchObject({ status: 'active', size: SIZE });
  return id;
}

// ---------------------------------------------------------------------------------------------
// What an answer must look like

function expectSignal(reply: Reply, legacy: boolean): void {
  expect({ deprecation: reply.headers['deprecation'], link: reply.headers['link'], warning: reply.headers['warning'], sunset: reply.headers['sunset'] }).toEqual(
    legacy ? { deprecation: DEPRECATION, link: LINK, warning: WARNING, sunset: undefined } : { deprecation: undefined, link: undefined, warning: undefined, sunset: undefined },
  );
}

interface Bytes {
  /** The inclusive range of a 206; none for a 200 with the whole image. */
  range?: [number, number];
  /** The image has a checksum (uploaded data); an image at a location has none. */
  checksum?: boolean;
  legacy?: boolean;
  head?: boolean;
}

/** A 200 with the whole image or a 206 with exactly the slice, and every header section 2 names. */
function expectBytes(reply: Reply, { range, checksum = true, legacy = false, head = false }: Bytes): void {
  const expected = range ? FIXTURE.subarray(range[0], range[1] + 1) : FIXTURE;
  expect(reply.status).toBe(range ? 206 : 200);
  expect(reply.headers['content-type']).toBe('application/octet-stream');
  expect(reply.headers['accept-ranges']).toBe('bytes');
  expect(reply.headers['content-range']).toBe(range ? `bytes ${range[0]}-${range[1]}/${SIZE}` : undefined);
  expect(reply.headers['content-length']).toBe(String(expected.length));
  expect(reply.headers['content-md5']).toBe(checksum ? MD5 : undefined);
  expect(reply.headers['etag']).toBe(checksum ? ETAG : undefined);
  expectSignal(reply, legacy);
  expect(reply.body.toString('latin1')).toBe(head ? '' : expected.toString('latin1'));
}

/** A 416 with Glance's text after webob's sentence, and `Content-Range: bytes *\/32`. */
function expect416(reply: Reply, message: string, legacy = false): void {
  const body = plain416(message);
  expect(reply.status).toBe(416);
  expect(reply.headers['content-type']).toBe('text/plain; charset=UTF-8');
  expect(reply.headers['content-range']).toBe(`bytes */${SIZE}`);
  expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(body)));
  expect(reply.headers['content-md5']).toBeUndefined();
  expectSignal(reply, legacy);
  expect(reply.body.toString('latin1')).toBe(body);
}

function expect400(reply: Reply, message: string, legacy = false): void {
  const body = plain('400 Bad Request', message);
  expect(reply.status).toBe(400);
  expect(reply.headers['content-type']).toBe('text/plain; charset=UTF-8');
  expect(reply.headers['content-range']).toBeUndefined();
  expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(body)));
  expectSignal(reply, legacy);
  expect(reply.body.toString('latin1')).toBe(body);
}

type Outcome = { range?: [number, number] } | { error: 400 | 416; message: string };

function expectOutcome(reply: Reply, outcome: Outcome, options: Omit<Bytes, 'range'> = {}): void {
  if ('error' in outcome) {
    if (outcome.error === 416) expect416(reply, outcome.message, options.legacy);
    else expect400(reply, outcome.message, options.legacy);
  } else {
    expectBytes(reply, { ...options, ...outcome });
  }
}

function says(outcome: Outcome): string {
  if ('error' in outcome) return `should ${outcome.error} ${JSON.stringify(outcome.message)}`;
  return outcome.range ? `should 206 with bytes ${outcome.range[0]}-${outcome.range[1]}/${SIZE}` : 'should 200 with the whole image';
}

const bytes = (start: number, end: number): Outcome => ({ range: [start, end] });
const WHOLE: Outcome = {};
const e416 = (message: string): Outcome => ({ error: 416, message });
const e400 = (message: string): Outcome => ({ error: 400, message });

/** The process's warn line (JSON) for a use of the legacy form, once it has been written. */
async function logLine(of: Demo, userAgent: string, contentRange: string, path: string): Promise<Record<string, unknown> | undefined> {
  for (let i = 0; i < 100; i++) {
    const line = of
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l['msg'] === 'deprecated Content-Range request header' && l['userAgent'] === userAgent && l['contentRange'] === contentRange && l['url'] === path);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

/** A multipart/byteranges body (RFC 9110 §14.6): each part with its type and range, then the closing boundary. */
function multipartBody(boundary: string, ranges: [number, number][]): string {
  const parts = ranges.map(
    ([s, e], i) => `${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${s}-${e}/${SIZE}\r\n\r\n${FIXTURE.subarray(s, e + 1).toString('latin1')}`,
  );
  return `${parts.join('')}\r\n--${boundary}--\r\n`;
}

function boundaryOf(reply: Reply): string {
  const m = /^multipart\/byteranges; boundary=([0-9A-Za-z'()+_,./:=?-]{1,70})$/.exec(reply.headers['content-type'] ?? '');
  expect(m).not.toBeNull();
  return m?.[1] ?? '';
}

// ---------------------------------------------------------------------------------------------

let id: string;
let queued: string;
let remote: string;
let multiId: string;
let multiRemote: string;

beforeAll(async () => {
  [demo, multi, blobs] = await Promise.all([startDemo(), startDemo(['--max-ranges', '10']), startBlobServer()]);
  [id, queued, remote, multiId, multiRemote] = await Promise.all([uploaded(demo.url), create(demo.url), atLocation(demo.url), uploaded(multi.url), atLocation(multi.url)]);
});

afterAll(async () => {
  await Promise.all([demo?.close(), multi?.close(), blobs?.close()]);
});

describe('2. Image data: Range (Glance, with RFC 9110 fixes marked ours)', () => {
  it('should 200 with the whole image, Accept-Ranges, Content-MD5 and ETag when no range is asked for', async () => {
    expectBytes(await download(demo.url, id), {});
  });

  const rows: [string, Outcome][] = [
    ['bytes=0-9', bytes(0, 9)],
    ['bytes=12-32', bytes(12, 31)],
    ['bytes=12-', bytes(12, 31)],
    ['bytes=12-31', bytes(12, 31)],
    ['bytes=-5', bytes(27, 31)],
    ['bytes=-40', bytes(0, 31)],
    ['bytes=0-99999', bytes(0, 31)],
    ['bytes=32-', e416(RANGE_START)],
    ['bytes=999999-', e416(RANGE_START)],
    ['bytes=5-3', e416(INVALID_RANGE)],
    ['bytes=abc', e416(INVALID_RANGE)],
    ['items=0-1', e416(INVALID_RANGE)],
    ['bytes=', e416(INVALID_RANGE)],
    ['bytes=0-1,4-5', e400(MULTIPLE)],
    [' bytes = 1-2 ', bytes(1, 2)],
    ['BYTES=1-2', bytes(1, 2)],
    ['bytes=-0', e416(INVALID_RANGE)],
    // Answers recorded from Glance 25.1.0.
    ['bytes=1-2,abc', e400(MULTIPLE)],
    ['bytes=1-2,', e400(MULTIPLE)],
    ['bytes=,1-2', e400(MULTIPLE)],
    ['bytes= 1 - 2', bytes(1, 2)],
    ['bytes=01-02', bytes(1, 2)],
    ['bytes=+1-2', e416(INVALID_RANGE)],
    ['bytes=0-0', bytes(0, 0)],
    ['bytes=31-31', bytes(31, 31)],
    ['bytes=1-2xyz', bytes(1, 2)],
  ];
  for (const [range, outcome] of rows) {
    it(`${says(outcome)} for Range: ${JSON.stringify(range)}`, async () => {
      expectOutcome(await download(demo.url, id, { range }), outcome);
    });
  }

  it('should 416 with Content-Range: bytes */32 and no body for HEAD with bytes=32-', async () => {
    const reply = await download(demo.url, id, { range: 'bytes=32-' }, 'HEAD');
    expect(reply.status).toBe(416);
    expect(reply.headers['content-range']).toBe(`bytes */${SIZE}`);
    expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(plain416(RANGE_START))));
    expect(reply.body.length).toBe(0);
  });

  it('should 206 with the headers of bytes 0-9/32 and no body for HEAD with bytes=0-9', async () => {
    expectBytes(await download(demo.url, id, { range: 'bytes=0-9' }, 'HEAD'), { range: [0, 9], head: true });
  });

  it('should 200 with the headers of the whole image and no body for HEAD without a range', async () => {
    expectBytes(await download(demo.url, id, {}, 'HEAD'), { head: true });
  });
});

describe('2. Image data: If-Range (strong comparison, ours)', () => {
  it('should 206 with bytes 0-9/32 when If-Range is the current strong ETag', async () => {
    expectBytes(await download(demo.url, id, { range: 'bytes=0-9', 'if-range': ETAG }), { range: [0, 9] });
  });

  it.each([
    ['a stale ETag', '"0123456789abcdef0123456789abcdef"'],
    ['the weak form of the current ETag', `W/${ETAG}`],
    ['a date', 'Wed, 21 Oct 2015 07:28:00 GMT'],
  ])('should 200 with the whole image when If-Range is %s', async (_name, ifRange) => {
    expectBytes(await download(demo.url, id, { range: 'bytes=0-9', 'if-range': ifRange }), {});
  });

  it('should 200 with the whole image for If-Range without Range', async () => {
    expectBytes(await download(demo.url, id, { 'if-range': ETAG }), {});
  });
});

describe('2. Image data: the legacy request form (Content-Range on a download)', () => {
  const rows: [string, Outcome][] = [
    ['bytes 12-30/32', bytes(12, 30)],
    ['bytes 12-30/*', bytes(12, 30)],
    ['bytes 12-31/99', bytes(12, 31)],
    ['bytes 31-31/*', bytes(31, 31)],
    ['bytes 12-40/*', e416(LEGACY_STOP)],
    ['bytes 40-45/*', e416(LEGACY_STOP)],
    ['bytes 0-32/*', e416(LEGACY_STOP)],
    ['bytes 40-45/50', e416(LEGACY_START)],
    ['bytes 12-40/32', e416(INVALID_CONTENT_RANGE)],
    ['bytes 12-31/10', e416(INVALID_CONTENT_RANGE)],
    ['bytes 30-12/*', e416(INVALID_CONTENT_RANGE)],
    ['items 1-2/*', e416(INVALID_CONTENT_RANGE)],
    ['bytes 1-2', e416(INVALID_CONTENT_RANGE)],
    // Ours: Glance answers 500.
    ['bytes */32', e416(INVALID_CONTENT_RANGE)],
  ];
  rows.forEach(([contentRange, outcome], i) => {
    it(`${says(outcome)} with the deprecation signal and a log line for Content-Range: ${JSON.stringify(contentRange)}`, async () => {
      const userAgent = `e2e-legacy/${i}`;
      expectOutcome(await download(demo.url, id, { 'content-range': contentRange, 'user-agent': userAgent }), outcome, { legacy: true });
      expect(await logLine(demo, userAgent, contentRange, `/v2/images/${id}/file`)).toMatchObject({ level: 'warn', method: 'GET', client: userAgent.split('/')[0]?.toLowerCase() });
    });
  });

  it('should 206 with the deprecation signal and headers only for HEAD with Content-Range: bytes 12-30/*', async () => {
    expectBytes(await download(demo.url, id, { 'content-range': 'bytes 12-30/*' }, 'HEAD'), { range: [12, 30], legacy: true, head: true });
  });

  it('should 206 with bytes 3-4/32 (Range wins) when Range and Content-Range are both sent', async () => {
    expectBytes(await download(demo.url, id, { range: 'bytes=3-4', 'content-range': 'bytes 12-30/*' }), { range: [3, 4], legacy: true });
  });

  it('should 416 "Invalid Range header." (Range wins, even invalid) when an invalid Range comes with a valid Content-Range', async () => {
    expect416(await download(demo.url, id, { range: 'bytes=abc', 'content-range': 'bytes 12-30/*' }), INVALID_RANGE, true);
  });

  it('should 200 with the whole image and the signal for a stale If-Range with Content-Range', async () => {
    expectBytes(await download(demo.url, id, { 'content-range': 'bytes 12-30/*', 'if-range': '"0000"' }), { legacy: true });
  });

  it('should 404 with the signal for Content-Range on an unknown image', async () => {
    const unknown = randomUUID();
    const reply = await download(demo.url, unknown, { 'content-range': 'bytes 12-30/*' });
    expect(reply.status).toBe(404);
    expectSignal(reply, true);
    expect(reply.body.toString()).toBe(plain('404 Not Found', `No image found with ID ${unknown}`));
  });

  it('should 204 with the signal for Content-Range on a queued image', async () => {
    const reply = await download(demo.url, queued, { 'content-range': 'bytes 12-30/*' });
    expect(reply.status).toBe(204);
    expect(reply.headers['content-length']).toBe('0');
    expectSignal(reply, true);
    expect(reply.body.length).toBe(0);
  });

  it('should 206 without the signal and without a log line for Range alone', async () => {
    const userAgent = 'e2e-modern/1';
    expectBytes(await download(demo.url, id, { range: 'bytes=12-30', 'user-agent': userAgent }), { range: [12, 30] });
    // Wait for this request's access line: a warn line of the legacy form would have come before it.
    for (let i = 0; i < 100 && !demo.output().includes(`"userAgent":${JSON.stringify(userAgent)}`); i++) await new Promise((r) => setTimeout(r, 20));
    expect(demo.output()).toContain(`"userAgent":${JSON.stringify(userAgent)}`);
    const deprecations = demo.output().split('\n').filter((l) => l.includes('deprecated Content-Range'));
    expect(deprecations.join('\n')).not.toContain(JSON.stringify(userAgent));
  });
});

describe('2. Image data: other download facts (Glance)', () => {
  it('should 204 with Content-Length: 0 for a queued image', async () => {
    const reply = await download(demo.url, queued);
    expect(reply.status).toBe(204);
    expect(reply.headers['content-length']).toBe('0');
    expect(reply.headers['content-range']).toBeUndefined();
    expectSignal(reply, false);
    expect(reply.body.length).toBe(0);
  });

  it('should 204 with Content-Length: 0 for a queued image with Range: bytes=0-9', async () => {
    const reply = await download(demo.url, queued, { range: 'bytes=0-9' });
    expect(reply.status).toBe(204);
    expect(reply.headers['content-length']).toBe('0');
    expect(reply.body.length).toBe(0);
  });

  it('should 404 "No image found with ID <id>" for an unknown image', async () => {
    const unknown = randomUUID();
    const reply = await download(demo.url, unknown, { range: 'bytes=0-9' });
    const body = plain('404 Not Found', `No image found with ID ${unknown}`);
    expect(reply.status).toBe(404);
    expect(reply.headers['content-type']).toBe('text/plain; charset=UTF-8');
    expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(reply.headers['content-range']).toBeUndefined();
    expectSignal(reply, false);
    expect(reply.body.toString()).toBe(body);
  });
});

describe('2. Image data: an image at an http:// location whose server ignores Range', () => {
  const rows: [Record<string, string>, string, Outcome][] = [
    [{}, 'no range', WHOLE],
    [{ range: 'bytes=0-9' }, 'Range: bytes=0-9', bytes(0, 9)],
    [{ range: 'bytes=12-' }, 'Range: bytes=12-', bytes(12, 31)],
    [{ range: 'bytes=-5' }, 'Range: bytes=-5', bytes(27, 31)],
    [{ range: 'bytes=30-99999' }, 'Range: bytes=30-99999', bytes(30, 31)],
    [{ range: 'bytes=31-31' }, 'Range: bytes=31-31', bytes(31, 31)],
    [{ range: 'bytes=32-' }, 'Range: bytes=32-', e416(RANGE_START)],
  ];
  for (const [headers, name, outcome] of rows) {
    it(`${says(outcome)} cut from the whole blob for ${name}`, async () => {
      expectOutcome(await download(demo.url, remote, headers), outcome, { checksum: false });
    });
  }

  it('should 206 with bytes 12-30/32 and the signal for Content-Range: bytes 12-30/*', async () => {
    expectBytes(await download(demo.url, remote, { 'content-range': 'bytes 12-30/*' }), { range: [12, 30], checksum: false, legacy: true });
  });
});

describe('2. Image data: multiple ranges with --max-ranges 10 (multipart/byteranges, ours)', () => {
  async function expectMultipart(image: string, range: string, ranges: [number, number][], checksum = true): Promise<void> {
    const reply = await download(multi.url, image, { range });
    expect(reply.status).toBe(206);
    const boundary = boundaryOf(reply);
    const body = multipartBody(boundary, ranges);
    expect(reply.headers['content-range']).toBeUndefined();
    expect(reply.headers['accept-ranges']).toBe('bytes');
    expect(reply.headers['content-md5']).toBe(checksum ? MD5 : undefined);
    expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(body, 'latin1')));
    expect(reply.body.toString('latin1')).toBe(body);
  }

  it('should 206 multipart/byteranges with the parts 0-1 and 4-5 for bytes=0-1,4-5', async () => {
    await expectMultipart(multiId, 'bytes=0-1,4-5', [
      [0, 1],
      [4, 5],
    ]);
  });

  it('should 206 multipart/byteranges with exactly this body for bytes=0-1,4-5', async () => {
    const reply = await download(multi.url, multiId, { range: 'bytes=0-1,4-5' });
    const b = boundaryOf(reply);
    const body = `--${b}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-1/32\r\n\r\n01\r\n--${b}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 4-5/32\r\n\r\n45\r\n--${b}--\r\n`;
    expect(reply.status).toBe(206);
    expect(reply.headers['content-length']).toBe(String(body.length));
    expect(reply.body.toString('latin1')).toBe(body);
  });

  it('should 206 multipart/byteranges with 10 parts for 10 ranges', async () => {
    const ranges = Array.from({ length: 10 }, (_, i): [number, number] => [3 * i, 3 * i]);
    await expectMultipart(multiId, `bytes=${ranges.map(([s, e]) => `${s}-${e}`).join(',')}`, ranges);
  });

  it('should 206 multipart/byteranges cut from the whole blob for an image at an http:// location', async () => {
    await expectMultipart(
      multiRemote,
      'bytes=0-1,-5',
      [
        [0, 1],
        [27, 31],
      ],
      false,
    );
  });

  it('should 206 with one Content-Range bytes 0-8/32 for the overlapping bytes=0-4,3-8', async () => {
    expectBytes(await download(multi.url, multiId, { range: 'bytes=0-4,3-8' }), { range: [0, 8] });
  });

  it('should 206 with one Content-Range bytes 0-31/32 for bytes=0-1,-40', async () => {
    expectBytes(await download(multi.url, multiId, { range: 'bytes=0-1,-40' }), { range: [0, 31] });
  });

  it('should 206 with bytes 0-1/32 for bytes=0-1,999- (the satisfiable part)', async () => {
    expectBytes(await download(multi.url, multiId, { range: 'bytes=0-1,999-' }), { range: [0, 1] });
  });

  it('should 416 with Content-Range: bytes */32 when no range is satisfiable', async () => {
    expect416(await download(multi.url, multiId, { range: 'bytes=40-50,32-' }), RANGE_START);
  });

  it('should 416 "Invalid Range header." for bytes=0-1,abc', async () => {
    expect416(await download(multi.url, multiId, { range: 'bytes=0-1,abc' }), INVALID_RANGE);
  });

  it('should 400 for 11 ranges', async () => {
    const range = `bytes=${Array.from({ length: 11 }, (_, i) => `${3 * i}-${3 * i}`).join(',')}`;
    expect400(await download(multi.url, multiId, { range }), 'Too many ranges in the Range header: at most 10 are served in one request.');
  });

  it('should 200 with the whole image for 11 ranges with a stale If-Range (the Range is ignored, RFC 9110 §13.1.5)', async () => {
    const range = `bytes=${Array.from({ length: 11 }, (_, i) => `${3 * i}-${3 * i}`).join(',')}`;
    expectBytes(await download(multi.url, multiId, { range, 'if-range': '"0123456789abcdef0123456789abcdef"' }), {});
  });

  it('should 200 with the whole image for bytes=0-1,4-5 with a stale If-Range', async () => {
    expectBytes(await download(multi.url, multiId, { range: 'bytes=0-1,4-5', 'if-range': '"0123456789abcdef0123456789abcdef"' }), {});
  });

  it('should 206 multipart headers with the Content-Length of the body and no body for HEAD with bytes=0-1,4-5', async () => {
    const reply = await download(multi.url, multiId, { range: 'bytes=0-1,4-5' }, 'HEAD');
    expect(reply.status).toBe(206);
    const body = multipartBody(boundaryOf(reply), [
      [0, 1],
      [4, 5],
    ]);
    expect(reply.headers['content-length']).toBe(String(body.length));
    expect(reply.body.length).toBe(0);
  });
});
