/**
 * The real `glance` command-line client (Debian's python3-glanceclient) against the demo server, as
 * an operator would use it. Every expected output below is what the same command prints against the
 * real Glance 25.1.0 (test/glance/).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertGlanceInstalled, glance, parseTable, type CliResult } from '../helpers/glance-client';
import { startRealGlance } from '../helpers/glance';
import { FIXTURE, startBlobServer, startCli, startDemo, type BlobServer } from '../helpers/processes';

/** What the client talks to: the demo, or the sidecar in front of a real Glance. */
interface Target {
  readonly url: string;
  close(): Promise<void>;
}

const TARGETS: [string, () => Promise<Target>][] = [
  ['the demo server', startDemo],
  [
    'the sidecar in front of a real Glance',
    async () => {
      const upstream = await startRealGlance();
      const sidecar = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1']);
      return {
        url: sidecar.url,
        close: async () => {
          await sidecar.stop();
          await upstream.stop();
        },
      };
    },
  ],
];

const FIXTURE_MD5 = 'aa4bc671b4c1c7a38e29800f50ef6346';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TEST_TIMEOUT_MS = 120000;

interface Location {
  readonly url: string;
  readonly metadata: Record<string, unknown>;
}

interface Image {
  readonly id: string;
  readonly status: string;
  readonly size: number | null;
  readonly checksum: string | null;
  readonly locations: Location[];
}





/** A field of the table with the wrapping spaces removed (for URLs and JSON the client wrapped). */
function compact(fields: Map<string, string>, key: string): string {
  return (fields.get(key) ?? '').replace(/\s+/g, '');
}

/** Expect exit code 0 and a table, and return the table. */
function expectTable(result: CliResult): Map<string, string> {
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
  const fields = parseTable(result.stdout);
  expect(fields.get('id')).toMatch(UUID);
  return fields;
}

/** Expect exit code 0 and no output (image-upload, location-delete, image-deactivate, ...). */
function expectSilentSuccess(result: CliResult): void {
  expect(result).toEqual({ code: 0, stdout: '', stderr: '' });
}

describe.each(TARGETS)('the real glance client against %s', (_name, startTarget) => {
  let demo: Target | undefined;
  let blobs: BlobServer | undefined;
  let work = '';
  let fixtureFile = '';
  let blobA = '';
  let blobB = '';
  /** Image ids shared by the sequential tests below. */
  let uploadedId = '';
  let locatedId = '';

  function demoUrl(): string {
    if (!demo) throw new Error('the demo server did not start');
    return demo.url;
  }

  function run(...args: string[]): Promise<CliResult> {
    return glance(demoUrl(), ...args);
  }

  /** The demo's state, by plain HTTP, as any client sees it. */
  async function getImage(id: string): Promise<Image> {
    const res = await fetch(`${demoUrl()}/v2/images/${id}`, { headers: { 'X-Auth-Token': 'x' } });
    expect(res.status).toBe(200);
    return (await res.json()) as Image;
  }

  beforeAll(async () => {
    assertGlanceInstalled();
    work = mkdtempSync(path.join(tmpdir(), 'glance-cli-work-'));
    fixtureFile = path.join(work, 'fixture.bin');
    writeFileSync(fixtureFile, FIXTURE);
    blobs = await startBlobServer();
    blobA = blobs.put('a.raw', FIXTURE);
    blobB = blobs.put('b.raw', FIXTURE);
    demo = await startTarget();
  }, 180000);

  afterAll(async () => {
    await demo?.close();
    await blobs?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60000);

  it(
    'should create an active 32-byte image with the fixture checksum from image-create --file',
    async () => {
      const fields = expectTable(
        await run('image-create', '--name', 'x', '--disk-format', 'raw', '--container-format', 'bare', '--file', fixtureFile),
      );
      expect(fields.get('name')).toBe('x');
      expect(fields.get('status')).toBe('active');
      expect(fields.get('size')).toBe('32');
      expect(fields.get('checksum')).toBe(FIXTURE_MD5);
      expect(fields.get('disk_format')).toBe('raw');
      expect(fields.get('container_format')).toBe('bare');
      uploadedId = fields.get('id') as string;

      const image = await getImage(uploadedId);
      expect(image).toMatchObject({ id: uploadedId, status: 'active', size: 32, checksum: FIXTURE_MD5 });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should download bytes identical to the fixture with image-download',
    async () => {
      const out = path.join(work, 'downloaded.bin');
      expectSilentSuccess(await run('image-download', '--file', out, uploadedId));
      expect(readFileSync(out)).toEqual(FIXTURE);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should create a queued image without data and make it active with image-upload --file',
    async () => {
      const fields = expectTable(await run('image-create', '--name', 'y', '--disk-format', 'raw', '--container-format', 'bare'));
      expect(fields.get('status')).toBe('queued');
      expect(fields.get('size')).toBe('None');
      const id = fields.get('id') as string;
      expect(await getImage(id)).toMatchObject({ id, status: 'queued', size: null });

      expectSilentSuccess(await run('image-upload', '--file', fixtureFile, id));
      expect(await getImage(id)).toMatchObject({ id, status: 'active', size: 32, checksum: FIXTURE_MD5 });

      const out = path.join(work, 'uploaded.bin');
      expectSilentSuccess(await run('image-download', '--file', out, id));
      expect(readFileSync(out)).toEqual(FIXTURE);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should activate a queued image with size 32 from a HEAD of the url on location-add',
    async () => {
      const created = expectTable(await run('image-create', '--name', 'z', '--disk-format', 'raw', '--container-format', 'bare'));
      expect(created.get('status')).toBe('queued');
      locatedId = created.get('id') as string;

      const fields = expectTable(await run('location-add', '--url', blobA, locatedId));
      expect(fields.get('id')).toBe(locatedId);
      expect(fields.get('status')).toBe('active');
      expect(fields.get('size')).toBe('32');
      expect(compact(fields, 'locations')).toBe(`[{"url":"${blobA}","metadata":{}}]`);

      const image = await getImage(locatedId);
      expect(image).toMatchObject({ id: locatedId, status: 'active', size: 32 });
      expect(image.locations).toEqual([{ url: blobA, metadata: {} }]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should append a second location with location-add',
    async () => {
      const fields = expectTable(await run('location-add', '--url', blobB, locatedId));
      expect(fields.get('status')).toBe('active');
      expect(compact(fields, 'locations')).toBe(`[{"url":"${blobA}","metadata":{}},{"url":"${blobB}","metadata":{}}]`);

      expect((await getImage(locatedId)).locations).toEqual([
        { url: blobA, metadata: {} },
        { url: blobB, metadata: {} },
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should show the new metadata of a location after location-update --metadata',
    async () => {
      const fields = expectTable(await run('location-update', '--url', blobA, '--metadata', '{"k":"v"}', locatedId));
      expect(fields.get('status')).toBe('active');
      expect(fields.get('locations')).toContain('"metadata": {"k": "v"}');
      expect(compact(fields, 'locations')).toBe(`[{"url":"${blobA}","metadata":{"k":"v"}},{"url":"${blobB}","metadata":{}}]`);

      expect((await getImage(locatedId)).locations).toEqual([
        { url: blobA, metadata: { k: 'v' } },
        { url: blobB, metadata: {} },
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should remove the second location with location-delete',
    async () => {
      expectSilentSuccess(await run('location-delete', '--url', blobB, locatedId));

      const image = await getImage(locatedId);
      expect(image.status).toBe('active');
      expect(image.locations).toEqual([{ url: blobA, metadata: { k: 'v' } }]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should mark the image deactivated with image-deactivate',
    async () => {
      expectSilentSuccess(await run('image-deactivate', locatedId));
      expect((await getImage(locatedId)).status).toBe('deactivated');
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should refuse location-delete on a deactivated image with 409',
    async () => {
      const result = await run('location-delete', '--url', blobA, locatedId);
      expect(result.code).not.toBe(0);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(
        'HTTP 409 Conflict: It&#x27;s not allowed to remove locations if image status is deactivated.',
      );

      const image = await getImage(locatedId);
      expect(image.status).toBe('deactivated');
      expect(image.locations).toEqual([{ url: blobA, metadata: { k: 'v' } }]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should refuse location-add on a deactivated image with 409',
    async () => {
      const result = await run('location-add', '--url', blobB, locatedId);
      expect(result.code).not.toBe(0);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('HTTP 409 Conflict: It&#x27;s not allowed to add locations if image status is deactivated.');

      const image = await getImage(locatedId);
      expect(image.status).toBe('deactivated');
      expect(image.locations).toEqual([{ url: blobA, metadata: { k: 'v' } }]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should allow location-add and location-delete again after image-reactivate',
    async () => {
      expectSilentSuccess(await run('image-reactivate', locatedId));
      expect((await getImage(locatedId)).status).toBe('active');

      const fields = expectTable(await run('location-add', '--url', blobB, locatedId));
      expect(fields.get('status')).toBe('active');
      expect(compact(fields, 'locations')).toBe(`[{"url":"${blobA}","metadata":{"k":"v"}},{"url":"${blobB}","metadata":{}}]`);

      expectSilentSuccess(await run('location-delete', '--url', blobA, locatedId));
      const image = await getImage(locatedId);
      expect(image.status).toBe('active');
      expect(image.locations).toEqual([{ url: blobB, metadata: {} }]);
    },
    TEST_TIMEOUT_MS,
  );
});
