/**
 * BEHAVIOUR.md §1 fuzzed against the demo as a real process: images are put into random states
 * (queued; active with 1 to 3 http:// locations or with uploaded data; saving, an upload held open;
 * deactivated; uploading, a stage held open or completed; importing, an import held open), then
 * sent random JSON patches in both media types (v2.1 `{"op": "add", "path": …}` and the v2.0 draft
 * `{"add": …}`), valid and not: location add/remove/replace at /locations, /locations/N,
 * /locations/-, odd positions, other properties, garbage ops, bad JSON, other media types.
 *
 * After every request: never a 5xx; every 4xx is webob's plain-text body (`Accept: text/plain`);
 * a refused request leaves the image exactly as it was; and where §1 refuses a patch (read from the
 * image as it was before, op by op), it is refused with §1's status and text: no location change
 * is ever applied that §1 refuses. Where §1 lets a patch through, the demo may still refuse it
 * (a duplicate URL, an unreachable location, a bad property value), but never with §1's 409.
 *
 * An import is held open by replacing the staged file with a named pipe (mkfifo) that the test
 * writes only at the end: the demo's import reads the staged file, so it stays `importing` while
 * the pipe is empty, which no other client of the API could arrange.
 *
 *   PATCH_FUZZ_RUNS  images fuzzed (default 200, 1 to 8 steps each: about 800 patches)
 *   PATCH_FUZZ_SEED  fast-check seed (default: test/helpers/seed.ts; printed)
 */
import { execFileSync } from 'node:child_process';
import { createWriteStream, rmSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import fc from 'fast-check';
import { isGlanceError, renderGlanceError } from '../../lib/errors';
import { readLocationPatch } from '../../lib/locations/schema';
import { envInt } from '../helpers/env';
import { testSeed } from '../helpers/seed';
import { FIXTURE, startBlobServer, startDemo, type BlobServer, type Demo } from '../helpers/processes';

const RUNS = envInt('PATCH_FUZZ_RUNS', 200);
const SEED = testSeed('PATCH_FUZZ_SEED');

const V21 = 'application/openstack-images-v2.1-json-patch';
const V20 = 'application/openstack-images-v2.0-json-patch';

/** webob's titles and stock sentences for the statuses a patch can get. */
const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
};
const STOCK: Readonly<Record<number, string>> = {
  400: 'The server could not comply with the request since it is either malformed or otherwise incorrect.',
  403: 'Access was denied to this resource.',
  404: 'The resource could not be found.',
  409: 'There was a conflict when trying to complete your request.',
  413: 'The body of your request was too large for this server.',
  415: 'The request media type is not supported by this server.',
};

/** Glance's plain-text error: the message alone, or (Glance's `detail`) after webob's stock sentence. */
const plain = (status: number, message: string) => `${status} ${TITLES[status]}\n\n${message}\n\n   `;
const plainAfterStock = (status: number, message: string) => `${status} ${TITLES[status]}\n\n${STOCK[status]}\n\n ${message}  `;

// ---------------------------------------------------------------------------------------------
// HTTP

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

let demo: Demo;
let blobs: BlobServer;
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

interface Request {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the body with chunked transfer encoding, in this many pieces. */
  pieces?: number;
}

/** Send a request; resolves with the answer once it is complete. */
function call(r: Request): Promise<Reply> {
  const { hostname, port } = new URL(demo.url);
  const body = r.body === undefined ? undefined : Buffer.from(r.body);
  const headers: Record<string, string> = { ...(r.headers ?? {}) };
  if (body && !r.pieces) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, method: r.method, path: r.path, headers, agent, timeout: 15_000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${r.method} ${r.path}: no answer within 15 s`)));
    req.on('error', reject);
    if (body && r.pieces) {
      const step = Math.max(1, Math.ceil(body.length / r.pieces));
      for (let i = 0; i < body.length; i += step) req.write(body.subarray(i, i + step));
    }
    req.end(body && !r.pieces ? body : undefined);
  });
}

/** An answer that is never a 5xx, and whose every 4xx is webob's plain-text error. */
function checked(what: string, reply: Reply): Reply {
  if (reply.status >= 500) throw new Error(`${what}: ${reply.status}\n${reply.body.toString()}`);
  if (reply.status >= 400) {
    const text = reply.body.toString('utf8');
    expect({ what, type: reply.headers['content-type'] }).toEqual({ what, type: 'text/plain; charset=UTF-8' });
    // webob's own 415 template: the media type as sent, no detail.
    const own = reply.status === 415 && /^415 Unsupported Media Type\n\nThe request media type [^\n]* is not supported by this server\. \n\n $/.test(text);
    const m = own ? ['', '415', 'Unsupported Media Type', STOCK[415], ''] : /^(\d{3}) ([^\n]+)\n\n([^\n]+)\n\n ([^\n]*) {2}$/.exec(text);
    if (!m) throw new Error(`${what}: ${reply.status} is not webob's plain-text error: ${JSON.stringify(text)}`);
    expect(`${m[1]} ${m[2]}`).toBe(`${reply.status} ${TITLES[reply.status] ?? '?'}`);
    // Either the message alone (and three blanks), or the message after the stock sentence.
    if (m[4] !== '') expect(m[3]).toBe(STOCK[reply.status]);
    expect(Number(reply.headers['content-length'])).toBe(reply.body.length);
  }
  return reply;
}

async function show(id: string): Promise<Record<string, unknown>> {
  const res = checked(`GET /v2/images/${id}`, await call({ method: 'GET', path: `/v2/images/${id}`, headers: { accept: 'text/plain' } }));
  expect(res.status).toBe(200);
  return JSON.parse(res.body.toString()) as Record<string, unknown>;
}

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'text/plain' };

async function create(): Promise<string> {
  const res = checked('POST /v2/images', await call({ method: 'POST', path: '/v2/images', headers: JSON_HEADERS, body: JSON.stringify({ name: 'fuzz', disk_format: 'raw', container_format: 'bare' }) }));
  expect(res.status).toBe(201);
  return (JSON.parse(res.body.toString()) as { id: string }).id;
}

let blobCount = 0;
/** A new http:// location holding the fixture. */
const freshUrl = () => blobs.put(`blob-${++blobCount}`, FIXTURE);

async function waitFor(id: string, status: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if ((await show(id))['status'] === status) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`image ${id} never became ${status}`);
}

/** A request whose body is held open after its first bytes until `finish`; resolves with its status. */
function hold(method: string, p: string, type: string, body: Buffer): { finish(): Promise<number> } {
  const { hostname, port } = new URL(demo.url);
  let answered!: (status: number) => void;
  let failed!: (err: Error) => void;
  const done = new Promise<number>((resolve, reject) => {
    answered = resolve;
    failed = reject;
  });
  done.catch(() => undefined);
  const req = http.request(
    { hostname, port, method, path: p, agent: false, headers: { 'content-type': type, 'transfer-encoding': 'chunked', accept: 'text/plain' } },
    (res) => {
      res.resume();
      res.on('end', () => answered(res.statusCode ?? 0));
    },
  );
  req.on('error', (err) => failed(err));
  req.write(body.subarray(0, 10));
  return {
    finish: () => {
      req.end(body.subarray(10));
      return done;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// States

type StateName = 'queued' | 'active' | 'active with uploaded data' | 'saving' | 'deactivated' | 'uploading (held)' | 'uploading' | 'importing';

interface Prepared {
  id: string;
  /** An upload (file, stage or import) is in flight through the guard. */
  inFlight: boolean;
  /** Let the held request finish; resolves with its status. */
  release: (() => Promise<number>) | null;
}

async function addLocations(id: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = checked(
      'adding a location',
      await call({ method: 'PATCH', path: `/v2/images/${id}`, headers: { 'content-type': V21, accept: 'text/plain' }, body: JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: freshUrl(), metadata: {} } }]) }),
    );
    expect(res.status).toBe(200);
  }
}

async function prepare(state: StateName, locations: number): Promise<Prepared> {
  const id = await create();
  const none = { id, inFlight: false, release: null };
  switch (state) {
    case 'queued':
      return none;
    case 'active':
      await addLocations(id, locations);
      return none;
    case 'active with uploaded data': {
      const put = checked('upload', await call({ method: 'PUT', path: `/v2/images/${id}/file`, headers: { 'content-type': 'application/octet-stream', accept: 'text/plain' }, body: FIXTURE }));
      expect(put.status).toBe(204);
      await addLocations(id, locations - 1);
      return none;
    }
    case 'deactivated': {
      await addLocations(id, locations);
      const res = checked('deactivate', await call({ method: 'POST', path: `/v2/images/${id}/actions/deactivate`, headers: { accept: 'text/plain' } }));
      expect(res.status).toBe(204);
      return none;
    }
    case 'saving': {
      const upload = hold('PUT', `/v2/images/${id}/file`, 'application/octet-stream', FIXTURE);
      await waitFor(id, 'saving');
      return { id, inFlight: true, release: upload.finish };
    }
    case 'uploading (held)': {
      const stage = hold('PUT', `/v2/images/${id}/stage`, 'application/octet-stream', FIXTURE);
      await waitFor(id, 'uploading');
      return { id, inFlight: true, release: stage.finish };
    }
    case 'uploading':
    case 'importing': {
      const staged = checked('stage', await call({ method: 'PUT', path: `/v2/images/${id}/stage`, headers: { 'content-type': 'application/octet-stream', accept: 'text/plain' }, body: FIXTURE }));
      expect(staged.status).toBe(204);
      if (state === 'uploading') return none;
      // The staged data becomes a named pipe: the import reads it, and waits, until the test writes it.
      const staging = path.join(demo.dataDir, 'staging', id);
      rmSync(staging);
      execFileSync('mkfifo', [staging]);
      const importing = call({ method: 'POST', path: `/v2/images/${id}/import`, headers: JSON_HEADERS, body: JSON.stringify({ method: { name: 'glance-direct' } }) });
      importing.catch(() => undefined);
      // Opened read-write, so that opening never waits for the reader.
      const pipe = createWriteStream(staging, { flags: 'r+' });
      await waitFor(id, 'importing');
      return {
        id,
        inFlight: true,
        release: async () => {
          await new Promise<void>((resolve) => pipe.end(FIXTURE, resolve));
          return checked('import', await importing).status;
        },
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Patches, drawn before the image exists; their location values are made at send time.

type LocValue = 'fresh' | 'existing' | 'unreachable' | 'not http' | 'no metadata' | 'not an object' | 'long url';
type ListValue = 'empty' | 'same' | 'same reversed' | 'fresh' | 'two fresh' | 'same plus fresh' | 'zero' | 'null' | 'empty object' | 'empty string' | 'false' | 'an object' | 'a string';

type Op =
  | { kind: 'add location'; token: string; value: LocValue }
  | { kind: 'remove location'; token: string }
  | { kind: 'replace locations'; value: ListValue }
  | { kind: 'property'; op: 'add' | 'remove' | 'replace'; name: string; value: unknown }
  /** A malformed op: the patch must be refused (400 or 403) whatever the image. */
  | { kind: 'garbage'; raw: unknown };

type Body = { kind: 'ops'; ops: Op[]; indent: boolean } | { kind: 'raw'; body: string | number[] };

type Step =
  | { kind: 'patch'; body: Body; media: string; pieces: number; accept: boolean }
  | { kind: 'deactivate' | 'reactivate' };

/** Positions: Glance's digits and `-`, and ones that are not (a position §1 or the demo refuses). */
const token = fc.constantFrom('-', '-', '0', '0', '1', '1', '2', '3', '7', '01', ' 1 ', 'x', '-1', '~1', '~0', '1.5', '1e0');

/** Names that are plain properties: base ones, extra ones, and ones a careless object would mishandle. */
const propertyName = fc.constantFrom('name', 'name', 'tags', 'min_ram', 'min_disk', 'protected', 'visibility', 'disk_format', 'container_format', 'os_hidden', 'owner', 'foo', 'bar', '__proto__', 'constructor', 'hasOwnProperty', 'x~1y', 'é', '');

const jsonValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...'abcXYZ019 -_./~é"\'\\\n'), maxLength: 12 }) },
  { weight: 2, arbitrary: fc.constantFrom('raw', 'qcow2', 'ploop', 'bare', 'nope', 'public', 'private', 'shared', 'community') },
  { weight: 2, arbitrary: fc.oneof(fc.integer({ min: -2, max: 4096 }), fc.constantFrom(1.5, 1e300)) },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}, ['a', 'b'], ['a', 'a'], [1], { a: 1 }, 'x'.repeat(300)) },
);

const garbageOp = fc.constantFrom<unknown>(
  { op: 'move', from: '/name', path: '/name' },
  { op: 'test', path: '/name', value: 'x' },
  { op: 'copy', from: '/locations/0', path: '/locations/-' },
  { path: '/locations/0' },
  { op: null, path: '/locations/0' },
  { op: 1, path: '/name', value: 1 },
  { op: 'add', value: { url: 'http://127.0.0.1:1/x', metadata: {} } },
  { op: 'add', path: '/locations/-' },
  { op: 'replace', path: '/locations' },
  { op: 'add', path: 'locations/-', value: { url: 'http://127.0.0.1:1/x', metadata: {} } },
  { op: 'add', path: '/locations//0', value: {} },
  { op: 'add', path: '/locations/', value: {} },
  { op: 'remove', path: '/locations' },
  { op: 'remove', path: '/locations/0/url' },
  { op: 'replace', path: '/locations/0', value: [] },
  { op: 'add', path: '/locations', value: [{ url: 'http://127.0.0.1:1/x', metadata: {} }] },
  { op: 'remove', path: '/locations/~2' },
  { op: 'remove', path: '/locations/0~' },
  { op: 'replace', path: '/status', value: 'active' },
  { op: 'replace', path: '/checksum', value: 'x' },
  { op: 'add', path: '/size', value: 1 },
  { op: 'add', path: '/os_glance_foo', value: 'x' },
  { op: 'add', path: '/location', value: 'http://127.0.0.1:1/x' },
  { op: 'remove', path: '/deleted' },
  { op: 'add', path: '/name/x', value: 'x' },
  { op: 'add', path: 5, value: 'x' },
  { op: 'add', path: null, value: 'x' },
  'remove',
  1,
  null,
  [],
  [{ op: 'remove', path: '/locations/0' }],
  { remove: '/locations/0', add: '/locations/-', value: {} },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('add location' as const), token, value: fc.constantFrom<LocValue>('fresh', 'fresh', 'fresh', 'existing', 'unreachable', 'not http', 'no metadata', 'not an object', 'long url') }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('remove location' as const), token }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('replace locations' as const),
      value: fc.constantFrom<ListValue>('empty', 'same', 'same reversed', 'fresh', 'fresh', 'two fresh', 'same plus fresh', 'zero', 'null', 'empty object', 'empty string', 'false', 'an object', 'a string'),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('property' as const), op: fc.constantFrom('add' as const, 'remove' as const, 'replace' as const), name: propertyName, value: jsonValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('garbage' as const), raw: garbageOp }) },
);

const rawBody = fc.constantFrom<string | number[]>('', ' ', '[{', '{}', 'null', '"x"', '1', '[[1]]', 'nul', '[{"op":"remove","path":"/locations/0"},]', '\ufeff[]', '{"op":"remove","path":"/locations/0"}', [0xff, 0xfe, 0x5b, 0x5d], [0x5b, 0x22, 0xc3, 0x28, 0x22, 0x5d]);

const bodyArb: fc.Arbitrary<Body> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('ops' as const), ops: fc.array(opArb, { minLength: 1, maxLength: 1 }), indent: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('ops' as const), ops: fc.array(opArb, { minLength: 0, maxLength: 4 }), indent: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('raw' as const), body: rawBody }) },
);

const mediaArb = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(V21, V20) },
  { weight: 2, arbitrary: fc.constantFrom(`${V21}; charset=UTF-8`, `${V20};charset=utf-8`) },
  { weight: 1, arbitrary: fc.constantFrom('application/json', 'application/json-patch+json', V21.toUpperCase(), '', `${V21}x`) },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('patch' as const), body: bodyArb, media: mediaArb, pieces: fc.constantFrom(0, 0, 0, 2, 3), accept: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('deactivate' as const, 'reactivate' as const) }) },
);

const stateArb = fc.constantFrom<StateName>('queued', 'active', 'active', 'active with uploaded data', 'saving', 'deactivated', 'uploading (held)', 'uploading', 'importing');

const caseArb = fc.record({ state: stateArb, locations: fc.integer({ min: 1, max: 3 }), steps: fc.array(stepArb, { minLength: 1, maxLength: 8 }) });

interface Location {
  url: string;
  metadata: Record<string, unknown>;
}

/** The wire form of one op, in the media type's syntax. */
function wire(op: Op, draft: 4 | 10, current: readonly Location[]): unknown {
  if (op.kind === 'garbage') return op.raw;
  const form = (name: string, p: string, value?: unknown) => {
    const o: Record<string, unknown> = draft === 10 ? { op: name, path: p } : { [name]: p };
    if (value !== undefined) o['value'] = value;
    return o;
  };
  switch (op.kind) {
    case 'add location':
      return form('add', `/locations/${op.token}`, locationValue(op.value, current));
    case 'remove location':
      return form('remove', `/locations/${op.token}`);
    case 'replace locations':
      return form('replace', '/locations', listValue(op.value, current));
    case 'property':
      return form(op.op, `/${op.name}`, op.op === 'remove' ? undefined : op.value);
  }
}

function locationValue(kind: LocValue, current: readonly Location[]): unknown {
  switch (kind) {
    case 'fresh':
      return { url: freshUrl(), metadata: {} };
    case 'existing':
      return current[0] ? { url: current[0].url, metadata: {} } : { url: freshUrl(), metadata: { k: 'v' } };
    case 'unreachable':
      return { url: 'http://127.0.0.1:1/nothing', metadata: {} };
    case 'not http':
      return { url: 'swift://container/object', metadata: {} };
    case 'no metadata':
      return { url: freshUrl() };
    case 'not an object':
      return freshUrl();
    case 'long url':
      return { url: `${freshUrl()}?${'x'.repeat(300)}`, metadata: {} };
  }
}

function listValue(kind: ListValue, current: readonly Location[]): unknown {
  const fresh = () => ({ url: freshUrl(), metadata: {} });
  switch (kind) {
    case 'empty':
      return [];
    case 'same':
      return current.length ? [...current] : [fresh()];
    case 'same reversed':
      return current.length ? [...current].reverse() : [fresh()];
    case 'fresh':
      return [fresh()];
    case 'two fresh':
      return [fresh(), fresh()];
    case 'same plus fresh':
      return [...current, fresh()];
    case 'zero':
      return 0;
    case 'null':
      return null;
    case 'empty object':
      return {};
    case 'empty string':
      return '';
    case 'false':
      return false;
    case 'an object':
      return fresh();
    case 'a string':
      return freshUrl();
  }
}

// ---------------------------------------------------------------------------------------------
/** Glance's schema 400 for a patch with a value its image schema refuses, as the guard renders it; null when none. */
function schemaRefusal(body: Buffer, media: string, plainText: boolean): Refusal | null {
  try {
    readLocationPatch(body, media.split(';')[0]?.trim() ?? '');
    return null;
  } catch (err) {
    if (!isGlanceError(err) || err.type !== 'patch.schema') return null;
    return { status: 400, body: renderGlanceError(err, plainText ? 'text/plain' : undefined).body };
  }
}

// §1, written from BEHAVIOUR.md: what a well-formed patch gets from the location rules.

interface Refusal {
  status: number;
  body: string;
}

/** Python truthiness of a JSON value. */
const truthy = (v: unknown) => (Array.isArray(v) ? v.length > 0 : typeof v === 'object' && v !== null ? Object.keys(v).length > 0 : Boolean(v));

/** A JSON-pointer token as Glance decodes it: `~1` is `/`, `~0` is `~`, blanks around it dropped. */
const decoded = (t: string) => t.replace(/~1/g, '/').replace(/~0/g, '~').trim();

/** Glance's position: digits, or `-` (the end for add, the last element for remove). */
function position(t: string, count: number, forAdd: boolean): boolean {
  if (/^[0-9]+$/.test(t)) return forAdd || Number(t) < count;
  if (t !== '-') return false;
  return forAdd || count > 0;
}

/**
 * §1's answer to a well-formed patch of `ops` (their wire values) on an image with `status` and
 * `count` locations; while an upload is in flight the image counts as `saving`, its locations unknown.
 */
function section1(ops: readonly { op: Op; value: unknown }[], status0: string, count0: number, inFlight: boolean): (Refusal & { at: number }) | null {
  let status = inFlight ? 'saving' : status0;
  let count: number | null = inFlight ? null : count0;
  const conflict = (op: string): Refusal => ({ status: 409, body: plain(409, `It's not allowed to ${op} locations if image status is ${status}.`) });
  for (const [at, { op, value }] of ops.entries()) {
    const refused = judged(op, value);
    if (refused) return { ...refused, at };
  }
  return null;

  function judged(op: Op, value: unknown): Refusal | null {
    if (op.kind === 'replace locations') {
      if (!truthy(value)) return { status: 403, body: plainAfterStock(403, 'Cannot set locations to empty list.') };
      if (status !== 'active' && status !== 'queued') return conflict('replace');
      count = Array.isArray(value) ? value.length : null;
      status = 'active';
    } else if (op.kind === 'remove location') {
      if (status !== 'active') return conflict('remove');
      if (count !== null) {
        if (count === 1) return { status: 403, body: plainAfterStock(403, 'Cannot remove last location in the image.') };
        if (!position(decoded(op.token), count, false)) return { status: 400, body: plain(400, 'Invalid position for removing a location.') };
        count -= 1;
      }
    } else if (op.kind === 'add location') {
      if (status !== 'active' && status !== 'queued') return conflict('add');
      if (!position(decoded(op.token), count ?? 0, true)) return { status: 400, body: plain(400, 'Invalid position for adding a location.') };
      if (count !== null) count += 1;
      status = 'active';
    }
    return null;
  }
}

/**
 * Whether `text` is Glance's answer for an op of `earlier` (the ops before the one §1 refuses)
 * that Glance would fail for a reason of its own first: the guard, which reads the demo's image
 * document, then answers that op as Glance does (README, Compatibility with Glance).
 */
function earlierFailure(earlier: readonly { op: Op; value: unknown }[], text: string): boolean {
  const names = earlier.flatMap(({ op }) => (op.kind === 'property' ? [op.name, decoded(op.name)] : []));
  const named = names.some((name) =>
    [`Property ${name} already present.`, `Property ${name} does not exist.`, `Property ${name} may not be removed.`, `Attribute ${name} can be only replaced for a queued image.`, `for parameter '${name}': Cannot be a negative value`].some((m) => text.includes(m)),
  );
  const located =
    earlier.some(({ op }) => op.kind === 'add location' || op.kind === 'replace locations') &&
    [/The location \S+ already exists/, /^400 Bad Request\n\nInvalid location\n/, /The Store URI was malformed/, /Properties disk_format, container_format must be set prior to saving data\./, /Original locations is not empty/, /^409 Conflict\n\n.*(validation data|os_hash_value|checksum)/s].some((re) => re.test(text));
  return named || located;
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  [demo, blobs] = await Promise.all([startDemo(), startBlobServer()]);
});

afterAll(async () => {
  agent.destroy();
  await Promise.all([demo?.close(), blobs?.close()]);
});

describe('1. Location changes: patches fuzzed against the demo in every state', () => {
  it(`should never 5xx, answer every 4xx in Glance's plain text, and never apply a location change §1 refuses (${RUNS} images)`, async () => {
    const seen = new Map<string, number>();
    const count = (key: string) => seen.set(key, (seen.get(key) ?? 0) + 1);
    let patches = 0;

    await fc.assert(
      fc.asyncProperty(caseArb, async ({ state, locations, steps }) => {
        const image = await prepare(state, locations);
        try {
          let before = await show(image.id);
          for (const step of steps) {
            const where = `${state} image ${image.id}, ${JSON.stringify(step)}`;
            if (step.kind !== 'patch') {
              const res = checked(where, await call({ method: 'POST', path: `/v2/images/${image.id}/actions/${step.kind}`, headers: { accept: 'text/plain' } }));
              expect([204, 403]).toContain(res.status);
              const after = await show(image.id);
              if (res.status !== 204) expect(after).toEqual(before);
              before = after;
              continue;
            }
            patches++;
            const status = before['status'] as string;
            const current = before['locations'] as Location[];
            const draft = step.media.startsWith(V20) ? 4 : 10;
            let body: Buffer;
            let ops: { op: Op; value: unknown }[] | null = null;
            if (step.body.kind === 'raw') {
              body = typeof step.body.body === 'string' ? Buffer.from(step.body.body) : Buffer.from(step.body.body);
            } else {
              const onWire = step.body.ops.map((op) => ({ op, wire: wire(op, draft, current) }));
              ops = onWire.map(({ op, wire: w }) => ({ op, value: (w as Record<string, unknown> | null)?.['value'] }));
              body = Buffer.from(JSON.stringify(onWire.map((o) => o.wire), null, step.body.indent ? 2 : undefined));
            }
            const headers: Record<string, string> = {};
            if (step.media !== '') headers['content-type'] = step.media;
            if (step.accept) headers['accept'] = 'text/plain';
            const res = checked(where, await call({ method: 'PATCH', path: `/v2/images/${image.id}`, headers, body, pieces: step.pieces }));
            const after = await show(image.id);
            if (res.status !== 200) expect({ where, after }).toEqual({ where, after: before });
            else expect(JSON.parse(res.body.toString())).toEqual(after);

            const inspected = step.media.split(';')[0]?.trim() === V21 || step.media.split(';')[0]?.trim() === V20;
            const malformed = step.body.kind === 'raw' || step.body.ops.some((o) => o.kind === 'garbage');
            const touchesLocations = step.body.kind === 'ops' && step.body.ops.some((o) => o.kind !== 'property' && o.kind !== 'garbage');
            count(`${status}${image.inFlight ? ' (upload in flight)' : ''}: ${!inspected ? 'not a patch media type' : malformed ? 'malformed' : touchesLocations ? 'location ops' : 'other ops'} -> ${res.status}`);
            if (!inspected) {
              // Not a patch: the image service's 415, nothing changes.
              expect({ where, status: res.status }).toEqual({ where, status: 415 });
            } else if (malformed) {
              // Glance's 400 (or 403 for a read-only or reserved attribute) before any rule is looked at.
              expect({ where, refused: [400, 403].includes(res.status) }).toEqual({ where, refused: true });
            } else {
              // Glance's deserializer checks every value against the image schema before any status.
              const schema = schemaRefusal(body, step.media, step.accept);
              const ruled = schema ? null : section1(ops ?? [], status, current.length, image.inFlight);
              const refusal = schema ?? ruled;
              // Glance may stop at an earlier op for a reason of its own, and the guard answers as Glance.
              const earlier = ruled !== null && res.status >= 400 && earlierFailure((ops ?? []).slice(0, ruled.at), res.body.toString());
              if (earlier) {
                count('refused at an earlier op, as Glance');
              } else if (refusal) {
                const { status: want, body: text } = refusal;
                expect({ where, status: res.status, body: res.body.toString() }).toEqual({ where, status: want, body: text });
              } else if (res.body.toString().includes("It's not allowed to")) {
                // §1 lets this patch through: the demo may refuse it, but not with §1's conflict.
                throw new Error(`${where}: §1 lets this patch through, yet it got ${res.body.toString()}`);
              }
            }
            before = after;
          }
        } finally {
          if (image.release) {
            const finished = await image.release();
            expect([202, 204]).toContain(finished);
          }
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );

    // The demo is still up and answering.
    expect(demo.child.exitCode).toBeNull();
    expect((await call({ method: 'GET', path: '/versions' })).status).toBe(200);
    // Every state met patches that touch locations, and some were refused by §1's 409.
    if (RUNS >= 100) {
      const states = ['queued', 'active', 'saving (upload in flight)', 'deactivated', 'uploading (upload in flight)', 'uploading', 'importing (upload in flight)'];
      for (const s of states) expect({ s, met: [...seen.keys()].some((k) => k.startsWith(`${s}: location ops`)) }).toEqual({ s, met: true });
      expect([...seen.keys()].some((k) => k.endsWith('location ops -> 409'))).toBe(true);
      expect([...seen.keys()].some((k) => k.endsWith('location ops -> 200'))).toBe(true);
      expect(patches).toBeGreaterThan(RUNS);
    }
  }, 120_000);
});
