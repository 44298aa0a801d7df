/**
 * Writes of image data in the demo that overlap other requests: data is the image's only while
 * the write that brought it is still the image's (server/demo/data.ts). An upload that ends after
 * its image was deleted is Glance's 410 and leaves nothing (not even in an image made again under
 * the id); an import while the stage is still receiving is a 409, and the stage goes on; the token
 * that ties a write to its image is never shown.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { send } from '../helpers/http';
import { startDemo, type Demo } from '../helpers/processes';

let demo: Demo;

beforeAll(async () => {
  demo = await startDemo();
}, 30_000);

afterAll(async () => {
  await demo?.close();
});

const json = { 'Content-Type': 'application/json' };
const octets = { 'Content-Type': 'application/octet-stream' };

async function create(id: string = randomUUID()): Promise<string> {
  const answer = await send(demo.port, 'POST', '/v2/images', json, JSON.stringify({ id, name: 'w', disk_format: 'raw', container_format: 'bare' }));
  expect(answer.status).toBe(201);
  return id;
}

const show = async (id: string) => JSON.parse((await send(demo.port, 'GET', `/v2/images/${id}`)).body.toString('utf8')) as Record<string, unknown>;

/** A PUT whose body is sent but for its last `held` bytes; `finish` sends them and reads the answer. */
function partialPut(target: string, body: Buffer, held: number) {
  const socket = net.connect(demo.port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => undefined);
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1'))));
  socket.write(`PUT ${target} HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
  socket.write(body.subarray(0, body.length - held));
  return {
    finish: async () => {
      socket.write(body.subarray(body.length - held));
      return closed;
    },
  };
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const files = (sub: string) => readdirSync(path.join(demo.dataDir, sub));

describe('2. Image data: writes that overlap other requests', () => {
  it('answers 410 to an upload that ends after its image was deleted, and gives its bytes to no image', async () => {
    for (const again of [false, true]) {
      const id = await create();
      const stale = Buffer.alloc(50_000, 0x41);
      const upload = partialPut(`/v2/images/${id}/file`, stale, 100);
      await until('saving', async () => (await show(id))['status'] === 'saving');
      expect((await send(demo.port, 'DELETE', `/v2/images/${id}`)).status).toBe(204);
      await create(id);
      const fresh = Buffer.from('the image made again');
      if (again) expect((await send(demo.port, 'PUT', `/v2/images/${id}/file`, octets, fresh)).status).toBe(204);
      const answer = await upload.finish();
      expect(answer).toMatch(/^HTTP\/1\.1 410 Gone\r\n/);
      expect(answer).toContain(`Image ${id} could not be found after upload. The image may have been deleted during the upload.`);
      const image = await show(id);
      if (again) {
        expect(image).toMatchObject({ status: 'active', size: fresh.length, checksum: createHash('md5').update(fresh).digest('hex') });
        expect((await send(demo.port, 'GET', `/v2/images/${id}/file`)).body.equals(fresh)).toBe(true);
      } else expect(image).toMatchObject({ status: 'queued', size: null, locations: [] });
    }
    expect(files('tmp')).toEqual([]);
  });

  it('answers 409 to an import while the stage is still receiving, and lets the stage and a later import end well', async () => {
    const id = await create();
    const data = Buffer.alloc(40_000, 0x42);
    const stage = partialPut(`/v2/images/${id}/stage`, data, 10);
    await until('uploading', async () => (await show(id))['status'] === 'uploading');
    const early = await send(demo.port, 'POST', `/v2/images/${id}/import`, { ...json, Accept: 'text/plain' }, JSON.stringify({ method: { name: 'glance-direct' } }));
    expect(early.status).toBe(409);
    expect(early.body.toString('utf8')).toContain(`The data of image ${id} is still being staged.`);
    expect(await stage.finish()).toMatch(/^HTTP\/1\.1 204 No Content\r\n/);
    expect(await show(id)).toMatchObject({ status: 'uploading', size: data.length });
    expect((await send(demo.port, 'POST', `/v2/images/${id}/import`, json, JSON.stringify({ method: { name: 'glance-direct' } }))).status).toBe(202);
    await until('active', async () => (await show(id))['status'] === 'active');
    expect((await send(demo.port, 'GET', `/v2/images/${id}/file`)).body.equals(data)).toBe(true);
    expect(files('staging')).not.toContain(id);
  });

  it('never shows the token of a write, and keeps a property of that name as the caller set it', async () => {
    const id = await create();
    const upload = partialPut(`/v2/images/${id}/file`, Buffer.alloc(20_000, 0x43), 10);
    await until('saving', async () => (await show(id))['status'] === 'saving');
    expect(await show(id)).not.toHaveProperty('writing');
    const patched = await send(demo.port, 'PATCH', `/v2/images/${id}`, { 'Content-Type': 'application/openstack-images-v2.1-json-patch' }, JSON.stringify([{ op: 'add', path: '/writing', value: 'mine' }]));
    expect(patched.status).toBe(200);
    expect(JSON.parse(patched.body.toString('utf8'))).toMatchObject({ writing: 'mine', status: 'saving' });
    expect(await upload.finish()).toMatch(/^HTTP\/1\.1 204 No Content\r\n/);
    expect(await show(id)).toMatchObject({ writing: 'mine', status: 'active', size: 20_000 });
  });
});
