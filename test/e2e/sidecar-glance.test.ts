/**
 * The sidecar (`glance-edge proxy`) in front of a real Glance 25: invisible except for the rows
 * BEHAVIOUR.md marks (ours), streaming data both ways, failing closed when the upstream is gone.
 */
import { randomBytes, createHash } from 'node:crypto';
import http from 'node:http';
import { call, plainError } from '../helpers/http';
import { FIXTURE, startBlobServer, startCli, type BlobServer, type RunningProcess } from '../helpers/processes';
import { startRealGlance, type RealGlance } from '../helpers/glance';

const V21 = 'application/openstack-images-v2.1-json-patch';
const V20 = 'application/openstack-images-v2.0-json-patch';
const plain = plainError;

let glance: RealGlance;
let sidecar: RunningProcess;

async function create(base: string): Promise<string> {
  const res = await call(base, 'POST', '/v2/images', JSON.stringify({ name: 's', disk_format: 'raw', container_format: 'bare' }), { 'content-type': 'application/json' });
  expect(res.status).toBe(201);
  return (JSON.parse(res.body.toString()) as { id: string }).id;
}

beforeAll(async () => {
  glance = await startRealGlance();
  sidecar = await startCli(['proxy', '--upstream', glance.url, '--port', '0', '--host', '127.0.0.1']);
}, 180_000);

afterAll(async () => {
  await sidecar?.stop();
  await glance?.stop();
}, 60_000);

describe('the sidecar in front of a real Glance', () => {
  let id: string;
  const data = randomBytes(3 * 1024 * 1024 + 17);

  it('should stream an upload through to Glance and the same bytes back', async () => {
    id = await create(sidecar.url);
    const put = await call(sidecar.url, 'PUT', `/v2/images/${id}/file`, data, { 'content-type': 'application/octet-stream' });
    expect(put.status).toBe(204);
    const image = JSON.parse((await call(glance.url, 'GET', `/v2/images/${id}`)).body.toString()) as { status: string; size: number; checksum: string };
    expect(image).toMatchObject({ status: 'active', size: data.length, checksum: createHash('md5').update(data).digest('hex') });
    const get = await call(sidecar.url, 'GET', `/v2/images/${id}/file`);
    expect(get.status).toBe(200);
    expect(get.headers.get('content-length')).toBe(String(data.length));
    expect(get.headers.get('accept-ranges')).toBe('bytes');
    expect(get.body.equals(data)).toBe(true);
  });

  it('should 206 a range with Content-Range, exactly the slice', async () => {
    const res = await call(sidecar.url, 'GET', `/v2/images/${id}/file`, undefined, { range: 'bytes=1000-1999' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 1000-1999/${data.length}`);
    expect(res.body.equals(data.subarray(1000, 2000))).toBe(true);
  });

  it('should honour the legacy Content-Range request form with the deprecation headers', async () => {
    const res = await call(sidecar.url, 'GET', `/v2/images/${id}/file`, undefined, { 'content-range': 'bytes 10-19/*' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 10-19/${data.length}`);
    expect(res.headers.get('deprecation')).toBe('@1487721600');
    expect(res.body.equals(data.subarray(10, 20))).toBe(true);
  });

  it('should answer like Glance for an unknown image, byte for byte', async () => {
    const p = '/v2/images/00000000-0000-0000-0000-000000000000';
    const [through, direct] = await Promise.all([call(sidecar.url, 'GET', p), call(glance.url, 'GET', p)]);
    expect(through.status).toBe(404);
    expect(through.body.toString()).toBe(direct.body.toString());
    expect(through.headers.get('content-type')).toBe(direct.headers.get('content-type'));
  });

  it('should 409 a location removal on a queued image, as Glance does', async () => {
    const queued = await create(sidecar.url);
    const ops = JSON.stringify([{ op: 'remove', path: '/locations/0' }]);
    const through = await call(sidecar.url, 'PATCH', `/v2/images/${queued}`, ops, { 'content-type': V21 });
    const direct = await call(glance.url, 'PATCH', `/v2/images/${queued}`, ops, { 'content-type': V21 });
    expect(through.status).toBe(409);
    expect(through.body.toString()).toBe(plain('409 Conflict', "It's not allowed to remove locations if image status is queued."));
    expect(through.body.toString()).toBe(direct.body.toString());
  });

  it('should pass a patch without location ops through, the body byte for byte', async () => {
    const target = await create(sidecar.url);
    const res = await call(sidecar.url, 'PATCH', `/v2/images/${target}`, '[{"op": "replace", "path": "/name", "value": "r\u00e9nam\u00e9"}]  ', { 'content-type': V21 });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({ name: 'r\u00e9nam\u00e9' });
  });

  it('should add ploop and vz where Glance already has them, changing nothing', async () => {
    const schema = JSON.parse((await call(sidecar.url, 'GET', '/v2/schemas/image')).body.toString()) as { properties: { disk_format: { enum: unknown[] } } };
    expect(schema.properties.disk_format.enum).toContain('ploop');
    const [through, direct] = await Promise.all([
      call(sidecar.url, 'GET', '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type'),
      call(glance.url, 'GET', '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type'),
    ]);
    expect(through.status).toBe(200);
    expect(through.body.equals(direct.body)).toBe(true);
  });

  it('should 416 with Content-Range for a start past the image (ours: Glance omits it)', async () => {
    const res = await call(sidecar.url, 'GET', `/v2/images/${id}/file`, undefined, { range: `bytes=${data.length}-` });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${data.length}`);
  });
});

describe('the sidecar when the upstream is gone', () => {
  it('should 502 with a Glance error body, and refuse location changes (fail closed)', async () => {
    const orphan = await startCli(['proxy', '--upstream', 'http://127.0.0.1:9', '--port', '0', '--host', '127.0.0.1']);
    try {
      const res = await call(orphan.url, 'GET', '/v2/images');
      expect(res.status).toBe(502);
      expect(res.body.toString()).toBe(plain('502 Bad Gateway', 'The image service could not be reached (ECONNREFUSED).'));
      const patch = await call(orphan.url, 'PATCH', '/v2/images/00000000-0000-0000-0000-000000000000', '[{"op":"remove","path":"/locations/0"}]', { 'content-type': V21 });
      expect(patch.status).toBe(502);
    } finally {
      await orphan.stop();
    }
  });
});


// ---------------------------------------------------------------------------------------------
// Side by side: each row of BEHAVIOUR.md, asked of Glance directly and through the sidecar, each
// on an image of its own made the same way through the same door. The answers must be the same
// (status, headers, body bytes, with the image id, the servers' addresses and times masked),
// except where the row is (ours): there the difference itself is asserted.

type State = 'none' | 'queued' | 'data' | 'two' | 'deactivated' | 'saving' | 'uploading';

interface Made {
  readonly id: string;
  /** For a held upload: send the rest and get its status. */
  readonly finish?: () => Promise<number>;
}

interface Row {
  readonly name: string;
  readonly state: State;
  readonly method: string;
  /** The path, `{id}` standing for the row's image. */
  readonly path: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
  /** Headers only the sidecar sends (ours); anything else must match. */
  readonly ours?: readonly string[];
  /** For a row whose answer differs on purpose: check the sidecar's own. */
  readonly differs?: (through: Answer, direct: Answer) => void;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Headers that differ between any two answers of any server. */
const PER_ANSWER = new Set(['date', 'x-openstack-request-id', 'connection', 'keep-alive', 'transfer-encoding']);
/** Headers the suite adds to image data (BEHAVIOUR.md §2, ours). */
const DATA_HEADERS = ['accept-ranges', 'etag'];
const DEPRECATION = ['deprecation', 'link', 'warning'];
const remove0 = JSON.stringify([{ op: 'remove', path: '/locations/0' }]);

let blobsForRows: BlobServer;

/** An image in `state`, made through `base` (Glance itself or the sidecar). */
async function make(base: string, state: State): Promise<Made> {
  if (state === 'none') return { id: '00000000-0000-0000-0000-000000000000' };
  const id = await create(base);
  if (state === 'queued') return { id };
  if (state === 'data') {
    expect((await call(base, 'PUT', `/v2/images/${id}/file`, FIXTURE, { 'content-type': 'application/octet-stream' })).status).toBe(204);
    return { id };
  }
  if (state === 'saving' || state === 'uploading') return held(base, id, state);
  for (const name of ['a', 'b']) {
    const value = { url: blobsForRows.put(`${id}-${name}`, FIXTURE), metadata: {} };
    expect((await call(base, 'PATCH', `/v2/images/${id}`, JSON.stringify([{ op: 'add', path: '/locations/-', value }]), { 'content-type': V21 })).status).toBe(200);
  }
  if (state === 'deactivated') expect((await call(base, 'POST', `/v2/images/${id}/actions/deactivate`)).status).toBe(204);
  return { id };
}

/** An upload (`saving`) or a stage (`uploading`) held open through `base` until `finish`. */
async function held(base: string, id: string, state: 'saving' | 'uploading'): Promise<Made> {
  const { hostname, port } = new URL(base);
  let answered: (status: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (answered = resolve));
  const req = http.request(
    { hostname, port, method: 'PUT', path: `/v2/images/${id}/${state === 'saving' ? 'file' : 'stage'}`, headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } },
    (res) => {
      res.resume();
      res.on('end', () => answered(res.statusCode ?? 0));
    },
  );
  req.on('error', () => answered(0));
  req.write(FIXTURE.subarray(0, 10));
  for (let i = 0; i < 200; i++) {
    const image = JSON.parse((await call(glance.url, 'GET', `/v2/images/${id}`)).body.toString()) as { status: string };
    if (image.status === state) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    id,
    finish: () => {
      req.end(FIXTURE.subarray(10));
      return done;
    },
  };
}

/** The answer to `row` on a fresh image made through `base`, with what differs per server masked. */
async function ask(base: string, row: Row): Promise<Answer> {
  const made = await make(base, row.state);
  const res = await call(base, row.method, row.path.replace('{id}', made.id), row.body, { ...row.headers });
  if (made.finish) expect(await made.finish()).toBe(204);
  const mask = (text: string) =>
    text
      .replaceAll(made.id, '{id}')
      .replaceAll(base, '{base}')
      .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/g, '{time}');
  const headers: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    if (!PER_ANSWER.has(name)) headers[name] = mask(value);
  });
  return { status: res.status, headers, body: mask(res.body.toString('latin1')) };
}

const range = (name: string, value: string, extra: Partial<Row> = {}): Row => ({
  name: `a download with Range: ${name}`,
  state: 'data',
  method: 'GET',
  path: '/v2/images/{id}/file',
  headers: { range: value },
  ours: DATA_HEADERS,
  ...extra,
});
const legacy = (value: string, extra: Partial<Row> = {}): Row => ({
  name: `a download with the legacy Content-Range: ${value}`,
  state: 'data',
  method: 'GET',
  path: '/v2/images/{id}/file',
  headers: { 'content-range': value },
  ours: [...DATA_HEADERS, ...DEPRECATION],
  ...extra,
});
const patch = (name: string, state: State, body: string, type = V21, extra: Partial<Row> = {}): Row => ({
  name: `${name} (${state})`,
  state,
  method: 'PATCH',
  path: '/v2/images/{id}',
  body,
  headers: { 'content-type': type },
  ...extra,
});
/** A location change while a stage is in flight: Glance's 409 names `uploading`, the sidecar's `saving`. */
function whileStaging(op: string) {
  return (through: Answer, direct: Answer) => {
    expect(direct.status).toBe(409);
    expect(direct.body).toContain(`${op} locations if image status is uploading.`);
    expect(through.status).toBe(409);
    expect(through.body).toBe(direct.body.replaceAll('status is uploading', 'status is saving'));
  };
}
// 416s carry `Content-Range: bytes */32` (ours).
const range416: Partial<Row> = { ours: ['content-range'] };

const ROWS: Row[] = [
  // §0 and §1
  patch('an empty body', 'two', ''),
  patch('malformed JSON', 'two', '[{'),
  patch('a body that is not an array', 'two', '{}'),
  patch('an operation that is not an object', 'two', '[1]'),
  patch('an unknown operation', 'two', '[{"op":"move","path":"/locations/0"}]'),
  patch('an add without a value', 'two', '[{"op":"add","path":"/locations/0"}]'),
  patch('a replace of one location', 'two', '[{"op":"replace","path":"/locations/0","value":[]}]'),
  patch('a remove of the whole list', 'two', '[{"op":"remove","path":"/locations"}]'),
  patch('a remove at /locations/-1', 'two', '[{"op":"remove","path":"/locations/-1"}]'),
  patch('a v2.0 operation without an op member', 'two', '[{"foo":"/locations/0"}]', V20),
  patch('an empty patch', 'two', '[]'),
  patch('another media type', 'two', '[]', 'application/json'),
  patch('a name change', 'deactivated', '[{"op":"replace","path":"/name","value":"r\u00e9nam\u00e9"}]  '),
  patch('a location removal of an unknown image', 'none', remove0),
  patch('a replace with an empty list', 'saving', '[{"op":"replace","path":"/locations","value":[]}]'),
  patch('a location removal', 'saving', remove0),
  patch('a location replace', 'saving', JSON.stringify([{ op: 'replace', path: '/locations', value: [{ url: 'http://127.0.0.1:1/x', metadata: {} }] }])),
  patch('a location add', 'saving', JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: 'http://127.0.0.1:1/x', metadata: {} } }])),
  // While data goes in through the sidecar, BEHAVIOUR.md's race row (ours) answers with `saving`.
  patch('a location removal', 'uploading', remove0, V21, { differs: whileStaging('remove') }),
  patch('a location add', 'uploading', JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: 'http://127.0.0.1:1/x', metadata: {} } }]), V21, { differs: whileStaging('add') }),
  patch('a location removal', 'queued', remove0),
  patch('a location removal', 'deactivated', remove0),
  patch('a v2.0 location removal', 'deactivated', '[{"remove":"/locations/0"}]', V20),
  patch('a location replace', 'deactivated', JSON.stringify([{ op: 'replace', path: '/locations', value: [{ url: 'http://127.0.0.1:1/x', metadata: {} }] }])),
  patch('a location add', 'deactivated', JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: 'http://127.0.0.1:1/x', metadata: {} } }])),
  patch('a removal of the last location', 'data', remove0),
  patch('a removal out of range', 'two', '[{"op":"remove","path":"/locations/5"}]'),
  patch('a removal of the last of two', 'two', '[{"op":"remove","path":"/locations/-"}]'),
  patch('a removal then a removal of the last', 'two', '[{"op":"remove","path":"/locations/0"},{"op":"remove","path":"/locations/0"}]'),
  // §2
  { name: 'a download without a range', state: 'data', method: 'GET', path: '/v2/images/{id}/file', ours: DATA_HEADERS },
  range('bytes=0-9', 'bytes=0-9'),
  range('bytes=12-32', 'bytes=12-32'),
  range('bytes=12-', 'bytes=12-'),
  range('bytes=-5', 'bytes=-5'),
  range('bytes=-40', 'bytes=-40'),
  range('bytes=0-99999', 'bytes=0-99999'),
  range('bytes=32-', 'bytes=32-', range416),
  range('bytes=999999-', 'bytes=999999-', range416),
  range('bytes=5-3', 'bytes=5-3', range416),
  range('bytes=abc', 'bytes=abc', range416),
  range('items=0-1', 'items=0-1', range416),
  range('bytes=', 'bytes=', range416),
  range('two ranges', 'bytes=0-1,4-5', { ours: [] }),
  range('blanks', ' bytes = 1-2 '),
  range('capitals', 'BYTES=1-2'),
  range('bytes=-0 (ours: Glance sends the whole image as a 206)', 'bytes=-0', {
    differs: (through, direct) => {
      expect(direct.status).toBe(206);
      expect(through.status).toBe(416);
      expect(through.headers['content-range']).toBe('bytes */32');
    },
  }),
  legacy('bytes 12-30/32'),
  legacy('bytes 12-30/*'),
  legacy('bytes 12-99/32', { ours: [...DEPRECATION, 'content-range'] }),
  legacy('bytes 30-12/32', { ours: [...DEPRECATION, 'content-range'] }),
  legacy('bytes 12-40/32', { ours: [...DEPRECATION, 'content-range'] }),
  legacy('bytes */32 (ours: Glance answers 500)', {
    differs: (through, direct) => {
      expect(direct.status).toBe(500);
      expect(through.status).toBe(416);
      expect(through.body).toBe(`416 Request Range Not Satisfiable\n\nThe Range requested is not available.\n\n Invalid Content-Range header.  `);
    },
  }),
  { name: 'a download with both headers (Range wins)', state: 'data', method: 'GET', path: '/v2/images/{id}/file', headers: { range: 'bytes=1-2', 'content-range': 'bytes 12-30/*' }, ours: [...DATA_HEADERS, ...DEPRECATION] },
  { name: 'a download of a queued image', state: 'queued', method: 'GET', path: '/v2/images/{id}/file' },
  { name: 'a download of an unknown image', state: 'none', method: 'GET', path: '/v2/images/{id}/file' },
  // §3
  { name: 'the image schema', state: 'none', method: 'GET', path: '/v2/schemas/image' },
  { name: 'the images schema', state: 'none', method: 'GET', path: '/v2/schemas/images' },
  { name: 'a create with disk_format nope', state: 'none', method: 'POST', path: '/v2/images', body: '{"disk_format": "nope", "container_format": "bare"}', headers: { 'content-type': 'application/json' } },
  { name: 'a create with container_format PLOOP', state: 'none', method: 'POST', path: '/v2/images', body: '{"disk_format": "raw", "container_format": "PLOOP"}', headers: { 'content-type': 'application/json' } },
  patch('a disk_format replace with nope', 'queued', '[{"op":"replace","path":"/disk_format","value":"nope"}]'),
  patch('a disk_format replace with ploop', 'queued', '[{"op":"replace","path":"/disk_format","value":"ploop"}]'),
  { name: 'the hypervisor namespace', state: 'none', method: 'GET', path: '/v2/metadefs/namespaces/OS::Compute::Hypervisor' },
  { name: 'its properties', state: 'none', method: 'GET', path: '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties' },
  { name: 'its hypervisor_type', state: 'none', method: 'GET', path: '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type' },
  // §4
  { name: 'the root', state: 'none', method: 'GET', path: '/' },
  { name: 'the versions', state: 'none', method: 'GET', path: '/versions' },
];

describe('side by side: the same requests to Glance directly and through the sidecar', () => {
  beforeAll(async () => {
    blobsForRows = await startBlobServer();
  });
  afterAll(async () => {
    await blobsForRows?.close();
  });

  for (const accept of ['text/plain', 'application/json', 'text/html']) {
    it.each(ROWS.filter((r) => accept === 'text/plain' || r.method === 'PATCH'))(`should answer $name as Glance does (Accept: ${accept})`, async (row) => {
      const asked = { ...row, headers: { accept, ...row.headers } };
      const direct = await ask(glance.url, asked);
      const through = await ask(sidecar.url, asked);
      if (row.differs) {
        row.differs(through, direct);
        return;
      }
      const ours = new Set(row.ours ?? []);
      const common = (a: Answer): Answer => ({ ...a, headers: Object.fromEntries(Object.entries(a.headers).filter(([name]) => !ours.has(name))) });
      expect(common(through)).toEqual(common(direct));
    });
  }
});
