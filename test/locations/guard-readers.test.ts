/**
 * BEHAVIOUR.md §5 in mount mode: the guard in front of an Express app whose handler reads patches
 * as Express apps do (express.json: any JSON media type, a charset, a gzip body, a merge patch), and
 * applies their location ops to its images. A change the guard must refuse never reaches it, under
 * any spelling Express routes; the answer states the refusal.
 */
import { gzipSync } from 'node:zlib';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import express from 'express';
import { glanceErrorHandler } from '../../lib/errors';
import type { ImageFacts } from '../../lib/images/lookup';
import { locationGuard } from '../../lib/locations/guard';
import { express4 } from '../helpers/http';

const QUEUED = 'c0ffee00-1111-2222-3333-444455556666';
const DEACTIVATED = 'dead0000-1111-2222-3333-444455556666';
const REMOVE = [{ op: 'remove', path: '/locations/0' }];

interface Answer {
  readonly status: number;
  readonly body: string;
}

/** Send raw bytes, read the first answer. */
function raw(port: number, head: string, body: Buffer = Buffer.alloc(0)): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(Buffer.concat([Buffer.from(head), body])));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
  });
}

describe.each([
  ['Express 5', express],
  ['Express 4', express4 as unknown as typeof express],
])('5. Reading a request as the service behind it does: the guard in front of an %s app that reads JSON itself', (_name, factory) => {
  let server: http.Server;
  let port: number;
  const applied: string[] = [];

  beforeAll(async () => {
    const images: Record<string, ImageFacts> = {
      [QUEUED]: { id: QUEUED, status: 'queued', size: null, checksum: null, locations: 2 },
      [DEACTIVATED]: { id: DEACTIVATED, status: 'deactivated', size: 32, checksum: null, locations: 2 },
    };
    const app = factory();
    app.use(locationGuard({ lookup: async (id) => images[id.toLowerCase()] ?? null }));
    // The handler an Express user writes: any JSON, inflated, in any UTF charset.
    app.use(express.json({ type: () => true, strict: false }));
    app.patch('/v2/images/:id', (req, res) => {
      applied.push(`${req.params['id'] ?? ''} ${JSON.stringify(req.body)}`);
      res.status(200).json({ applied: true });
    });
    app.post('/v2/images/:id/locations', (req, res) => {
      applied.push(`${req.params['id'] ?? ''} add ${JSON.stringify(req.body)}`);
      res.status(202).json({ applied: true });
    });
    app.use(glanceErrorHandler());
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    applied.length = 0;
  });

  const patch = (target: string, type: string, body: Buffer, extra = '') =>
    raw(port, `PATCH ${target} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\n${extra}Connection: close\r\n\r\n`, body);
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));

  it.each([
    [`/v2/images/${QUEUED}`, 'application/json'],
    [`/v2/images/${QUEUED}`, 'application/json-patch+json'],
    [`/v2/images/${QUEUED}`, 'Application/OpenStack-Images-V2.1-JSON-Patch'],
    [`/V2/IMAGES/${QUEUED}`, 'application/openstack-images-v2.1-json-patch'],
    [`/v2/images/${QUEUED}/`, 'application/openstack-images-v2.1-json-patch'],
    [`/v2/images/${QUEUED.toUpperCase()}`, 'application/openstack-images-v2.1-json-patch'],
  ])('should 409 a location remove of a queued image at %s sent as %s, and apply nothing', async (target, type) => {
    const answer = await patch(target, type, json(REMOVE));
    expect(answer).toEqual({ status: 409, body: "409 Conflict\n\nIt's not allowed to remove locations if image status is queued.\n\n   " });
    expect(applied).toEqual([]);
  });

  it('should 409 a location remove sent with no Content-Type at all, which the app reads as JSON, and apply nothing', async () => {
    const body = json(REMOVE);
    const answer = await raw(port, `PATCH /v2/images/${QUEUED} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`, body);
    expect(answer).toEqual({ status: 409, body: "409 Conflict\n\nIt's not allowed to remove locations if image status is queued.\n\n   " });
    expect(applied).toEqual([]);
  });

  it('should 409 POST /v2/images/{id}/locations on a deactivated image, and apply nothing', async () => {
    const body = json({ url: 'http://127.0.0.1:1/x', validation_data: {} });
    const answer = await raw(port, `POST /v2/images/${DEACTIVATED}/locations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`, body);
    expect(answer).toEqual({ status: 409, body: "409 Conflict\n\nIt's not allowed to add locations if image status is deactivated.\n\n   " });
    expect(applied).toEqual([]);
  });

  it('should 202 from the app for POST /v2/images/{id}/locations on a queued image, the body byte for byte', async () => {
    const body = json({ url: 'http://127.0.0.1:1/x', validation_data: {} });
    const answer = await raw(port, `POST /v2/images/${QUEUED}/locations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`, body);
    expect(answer).toEqual({ status: 202, body: '{"applied":true}' });
    expect(applied).toEqual([`${QUEUED} add {"url":"http://127.0.0.1:1/x","validation_data":{}}`]);
  });

  it('should 409 a merge patch whose locations member the app would apply, and apply nothing', async () => {
    const answer = await patch(`/v2/images/${QUEUED}`, 'application/json', json({ ' locations ': [] }));
    expect(answer).toEqual({ status: 403, body: '403 Forbidden\n\nAccess was denied to this resource.\n\n Cannot set locations to empty list.  ' });
    expect(applied).toEqual([]);
  });

  it.each([
    ['a gzip body', 'application/json', gzipSync(json(REMOVE)), 'Content-Encoding: gzip\r\n', 'the body has a content coding'],
    ['a UTF-16 body', 'application/json; charset=utf-16le', Buffer.from(JSON.stringify(REMOVE), 'utf16le'), '', 'the body has a charset other than UTF-8'],
  ])('should 400 %s the app would inflate or decode, and apply nothing', async (_what, type, body, extra, why) => {
    const answer = await patch(`/v2/images/${QUEUED}`, type, body, extra);
    expect(answer).toEqual({ status: 400, body: `400 Bad Request\n\nThis request cannot be read unambiguously: ${why}.\n\n   ` });
    expect(applied).toEqual([]);
  });

  it('should 409 a JSON body with a byte-order mark, which a body parser skips, and apply nothing', async () => {
    const answer = await patch(`/v2/images/${QUEUED}`, 'application/json', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json(REMOVE)]));
    expect(answer).toEqual({ status: 409, body: "409 Conflict\n\nIt's not allowed to remove locations if image status is queued.\n\n   " });
    expect(applied).toEqual([]);
  });

  const UTF7 = Buffer.from(
    '[{"op":"replace","path":"/name","value":"+ACIAfQAsAHsAIgBvAHAAIgA6ACIAcgBlAG0AbwB2AGUAIgAsACIAcABhAHQAaAAiADoAIgAvAGwAbwBjAGEAdABpAG8AbgBzAC8AMAAiACwAIgB4ACIAOgAi-"}]',
  );
  it.each([
    ['application/openstack-images-v2.1-json-patch; x="a;charset=utf-8"; charset=utf-7', 'the body names its charset more than once'],
    ['application/json; x="a;charset=utf-8"; charset=utf-7', 'the body names its charset more than once'],
    ['application/openstack-images-v2.1-json-patch; charset=utf-8; charset=utf-7', 'the body names its charset more than once'],
    ['application/openstack-images-v2.1-json-patch; charset="utf-7"', 'the body has a charset other than UTF-8'],
  ])('should 400 a UTF-7 body hidden behind the Content-Type %s, and apply nothing', async (type, why) => {
    const answer = await patch(`/v2/images/${QUEUED}`, type, UTF7);
    expect(answer).toEqual({ status: 400, body: `400 Bad Request\n\nThis request cannot be read unambiguously: ${why}.\n\n   ` });
    expect(applied).toEqual([]);
  });

  it.each([
    ['invalid UTF-8', Buffer.concat([Buffer.from('[{"op":"remove","path":"/locations/0","x":"'), Buffer.from([0xff]), Buffer.from('"}]')])],
    ['nesting past Python\'s limit', Buffer.from(`[{"op":"remove","path":"/locations/0","x":${'['.repeat(1000)}${']'.repeat(1000)}}]`)],
  ])('should 400 a text/plain body with %s, which JavaScript reads as JSON and Python does not, and apply nothing', async (_what, body) => {
    const answer = await patch(`/v2/images/${QUEUED}`, 'text/plain', body);
    expect(answer).toEqual({ status: 400, body: '400 Bad Request\n\nMalformed JSON in request body.\n\n   ' });
    expect(applied).toEqual([]);
  });

  it.each(['text/plain', 'application/json'])('should 409 a single op object (not an array) sent as %s, and apply nothing', async (type) => {
    const answer = await patch(`/v2/images/${QUEUED}`, type, json({ op: 'remove', path: '/locations/0' }));
    expect(answer).toEqual({ status: 409, body: "409 Conflict\n\nIt's not allowed to remove locations if image status is queued.\n\n   " });
    expect(applied).toEqual([]);
  });

  it('should 400 a body sent as JSON that is not JSON as Python reads it, and apply nothing', async () => {
    const answer = await patch(`/v2/images/${QUEUED}`, 'application/json', Buffer.from('[{"op": "remove", "path": "/locations/0",}]'));
    expect(answer).toEqual({ status: 400, body: '400 Bad Request\n\nMalformed JSON in request body.\n\n   ' });
    expect(applied).toEqual([]);
  });

  it('should 200 from the app for a property patch sent as application/json, applied byte for byte', async () => {
    const answer = await patch(`/v2/images/${QUEUED}`, 'application/json', json([{ op: 'replace', path: '/name', value: 'x' }]));
    expect(answer).toEqual({ status: 200, body: '{"applied":true}' });
    expect(applied).toEqual([`${QUEUED} [{"op":"replace","path":"/name","value":"x"}]`]);
  });
});
