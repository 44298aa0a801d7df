/**
 * The demo serving image data from an http:// location, in-process (createDemoApp) with a short
 * location timeout, in front of a real blob server on 127.0.0.1: the timeout bounds the wait for
 * the location's answer, not how long a client may take to read the data.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createDemoApp } from '../../server/demo/app';
import { DiskImageStore } from '../../server/demo/store';
import { startBlobServer, type BlobServer } from '../helpers/processes';

const TIMEOUT = 300;
// Larger than what the loopback sockets buffer, so that a paused client really stalls the location.
const DATA = randomBytes(48 * 1024 * 1024);

let dir: string;
let server: http.Server;
let url: string;
let blobs: BlobServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'glance-edge-location-data-'));
  const app = createDemoApp({ store: await DiskImageStore.open(dir), locationTimeout: TIMEOUT });
  server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  blobs = await startBlobServer();
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await blobs.close();
  await rm(dir, { recursive: true, force: true });
});

async function imageAt(location: string): Promise<string> {
  const created = await fetch(`${url}/v2/images`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'at-location', disk_format: 'raw', container_format: 'bare' }),
  });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };
  const patched = await fetch(`${url}/v2/images/${id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' },
    body: JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: location, metadata: {} } }]),
  });
  expect(patched.status).toBe(200);
  expect(await patched.json()).toMatchObject({ status: 'active', size: DATA.length });
  return id;
}

/** Download, stopping to read for `pauseMs` after the first chunk. */
function slowDownload(id: string, pauseMs: number): Promise<{ status: number; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/v2/images/${id}/file`, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let paused = false;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (!paused) {
          paused = true;
          res.pause();
          setTimeout(() => res.resume(), pauseMs);
        }
      });
      const done = () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), complete: res.complete });
      res.on('end', done);
      res.on('aborted', done);
      res.on('error', done);
    });
    req.on('error', reject);
  });
}

describe('the demo: data at an http:// location', () => {
  it(`should send every byte to a client that stops reading for longer than the location timeout (${TIMEOUT} ms)`, async () => {
    const id = await imageAt(blobs.put('slow-reader', DATA));
    const { status, body, complete } = await slowDownload(id, 4 * TIMEOUT);
    expect(status).toBe(200);
    expect(complete).toBe(true);
    expect(body.length).toBe(DATA.length);
    expect(body.equals(DATA)).toBe(true);
  });

  it('should still refuse, within the timeout, a location that never answers (400, image unchanged)', async () => {
    const silent = http.createServer(() => undefined); // takes the request, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const at = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/never`;
    try {
      // The location is sized first: a quiet server there fails the add itself.
      const created = await fetch(`${url}/v2/images`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'silent', disk_format: 'raw', container_format: 'bare' }),
      });
      const { id } = (await created.json()) as { id: string };
      const started = Date.now();
      const patched = await fetch(`${url}/v2/images/${id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/openstack-images-v2.1-json-patch', accept: 'application/json' },
        body: JSON.stringify([{ op: 'add', path: '/locations/-', value: { url: at, metadata: {} } }]),
      });
      expect(Date.now() - started).toBeLessThan(TIMEOUT + 2000);
      expect(patched.status).toBe(400);
      expect(patched.headers.get('content-type')).toMatch(/^application\/json/);
      expect(JSON.stringify(await patched.json())).toContain('Invalid location');
      const shown = await fetch(`${url}/v2/images/${id}`);
      expect(await shown.json()).toMatchObject({ status: 'queued', size: null, locations: [] });
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
