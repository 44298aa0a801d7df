/**
 * BEHAVIOUR.md §5: a lookup asked as requested (the sidecar's) goes to the image record the request
 * names, in the request's spelling, with its query (a service may read the caller's identity there)
 * and never with its method override.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { glanceErrorHandler } from '../../lib/errors';
import { httpImageLookup } from '../../lib/images/lookup';
import { locationGuard } from '../../lib/locations/guard';
import { readTarget } from '../../lib/request/read';

const ID = 'c0ffee00-1111-2222-3333-444455556666';
const V21 = 'application/openstack-images-v2.1-json-patch';

describe('5. Reading a request: where a lookup asks', () => {
  it.each([
    [`/v2/images/${ID}`, `/v2/images/${ID}`, ''],
    [`/v2.1//images/${ID}/file?x=1`, `/v2.1//images/${ID}`, 'x=1'],
    [`/v2/images/${ID}/?token=abc&_method=PATCH;Token=def`, `/v2/images/${ID}/`, 'token=abc&Token=def'],
    [`/v2/images/${ID}?%5Fmethod=patch&a=b`, `/v2/images/${ID}`, 'a=b'],
    [`/v2/stores/file/${ID}?x`, `/v2/images/${ID}`, 'x'],
    [`/v2/images/${ID}?a=1;b=%3B`, `/v2/images/${ID}`, 'a=1;b=%3B'],
  ])('should ask about %s at %s with the query %j', (target, record, query) => {
    const reading = readTarget('PATCH', target, ['Host', 'x']);
    expect({ recordTarget: reading.recordTarget, lookupQuery: reading.lookupQuery }).toEqual({ recordTarget: record, lookupQuery: query });
  });

  it('should carry the query on a lookup at the canonical record too (mount mode with a lookup URL), and no _method', async () => {
    const asked: string[] = [];
    const upstream = http.createServer((req, res) => {
      asked.push(`${req.method ?? ''} ${req.url ?? ''}`);
      // A service that reads the caller's token from the query.
      if (!(req.url ?? '').includes('token=owner')) return void res.writeHead(401).end();
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: ID, status: 'queued', size: null, checksum: null, locations: [] }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const app = express();
    app.use(locationGuard({ lookup: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` }));
    app.use((_req, res) => res.status(200).end('reached'));
    app.use(glanceErrorHandler());
    const server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/images/${ID}?token=owner`, {
        method: 'PATCH',
        headers: { 'content-type': V21, accept: 'text/plain' },
        body: '[{"op": "remove", "path": "/locations/0"}]',
      });
      expect(res.status).toBe(409);
      expect(await res.text()).toBe("409 Conflict\n\nIt's not allowed to remove locations if image status is queued.\n\n   ");
      expect(asked).toEqual([`GET /v2/images/${ID}?token=owner`, `GET /v2/images/${ID}?token=owner`]);
    } finally {
      server.closeAllConnections();
      upstream.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  });

  it('should send the lookup of a PATCH with a query token to the record with that query, and no _method', async () => {
    const asked: string[] = [];
    const upstream = http.createServer((req, res) => {
      asked.push(`${req.method ?? ''} ${req.url ?? ''}`);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: ID, status: 'queued', size: null, checksum: null, locations: [] }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const app = express();
    app.use(locationGuard({ lookup: httpImageLookup({ url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, asRequested: true }) }));
    app.use((_req, res) => res.status(200).end('reached'));
    app.use(glanceErrorHandler());
    const server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v2.1/images/${ID}?auth_token=t1&_method=PATCH`, {
        method: 'PATCH',
        headers: { 'content-type': V21, accept: 'text/plain' },
        body: '[{"op": "remove", "path": "/locations/0"}]',
      });
      expect(res.status).toBe(409);
      expect(await res.text()).toBe("409 Conflict\n\nIt's not allowed to remove locations if image status is queued.\n\n   ");
      expect(asked).toEqual([`GET /v2.1/images/${ID}?auth_token=t1`, `GET /v2.1/images/${ID}?auth_token=t1`]);
    } finally {
      server.closeAllConnections();
      upstream.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  });
});
