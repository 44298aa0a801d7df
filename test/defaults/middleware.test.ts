/** BEHAVIOUR.md section 3: imageFormats in front of an image service, in Express 5 and Express 4. */
import express from 'express';
import request from 'supertest';
import { express4 } from '../helpers/http';
import { glanceErrorHandler } from '../../lib/errors';
import { imageFormats, resolveFormats, type ImageFormatsOptions } from '../../lib/defaults/middleware';
import { DISK_FORMATS } from '../../lib/defaults/formats';

const V21 = 'application/openstack-images-v2.1-json-patch';

function app(make: typeof express, options: ImageFormatsOptions = {}) {
  const a = make();
  a.use(imageFormats(options));
  // The image service behind: echoes the exact bytes it reads.
  a.use((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.status(200).type('application/octet-stream').send(Buffer.concat(chunks)));
  });
  a.use(glanceErrorHandler());
  return a;
}

describe.each([
  ['Express 5', express],
  ['Express 4', express4],
])('3. imageFormats (%s)', (_name, make) => {
  it('should 400 on creating an image with a disk_format outside the list, with Glance text', async () => {
    const res = await request(app(make)).post('/v2/images').set('content-type', 'application/json').set('accept', 'text/plain').send('{"disk_format":"nope"}');
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('text/plain; charset=UTF-8');
    expect(res.text.startsWith("400 Bad Request\n\nProvided object does not match schema 'image': 'nope' is not one of [None, 'ami',")).toBe(true);
  });

  it('should pass ploop and bare through with the body byte for byte', async () => {
    const body = '{"name": "é ", "disk_format": "ploop", "container_format": "bare"}  ';
    const res = await request(app(make)).post('/v2/images').set('content-type', 'application/json').send(body).buffer(true);
    expect(res.status).toBe(200);
    expect(Buffer.from(res.body as Buffer).toString('utf8')).toBe(body);
  });

  it('should 400 on a PATCH replacing /container_format with a value outside the list', async () => {
    const res = await request(app(make))
      .patch('/v2/images/x')
      .set('content-type', V21)
      .set('accept', 'text/plain')
      .send(JSON.stringify([{ op: 'replace', path: '/container_format', value: 'nope' }]));
    expect(res.status).toBe(400);
    expect(res.text).toContain("Failed validating 'enum' in schema['properties']['container_format']");
  });

  it('should leave malformed bodies and other requests to the image service', async () => {
    const a = app(make);
    expect((await request(a).post('/v2/images').set('content-type', 'application/json').send('{nope')).status).toBe(200);
    expect((await request(a).patch('/v2/images/x').set('content-type', V21).send('[{"op":"move"}]')).status).toBe(200);
    expect((await request(a).post('/v2/images/x/actions/deactivate').send('')).status).toBe(200);
  });

  it('should honour lists with values added and removed', async () => {
    const a = app(make, { diskFormats: { add: ['ephemeral'], remove: ['iso'] } });
    const ok = await request(a).post('/v2/images').set('content-type', 'application/json').send('{"disk_format":"ephemeral"}');
    expect(ok.status).toBe(200);
    const refused = await request(a).post('/v2/images').set('content-type', 'application/json').set('accept', 'text/plain').send('{"disk_format":"iso"}');
    expect(refused.status).toBe(400);
    expect(refused.text).toContain("'iso' is not one of [None, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'ploop', 'ephemeral']");
  });
});

describe('3. imageFormats options', () => {
  it('should resolve a list option against the defaults', () => {
    expect(resolveFormats(undefined, DISK_FORMATS, 'diskFormats')).toBe(DISK_FORMATS);
    expect(resolveFormats(['raw', 'raw', 'qcow2'], DISK_FORMATS, 'diskFormats')).toEqual(['raw', 'qcow2']);
    expect(resolveFormats({ remove: ['ploop'] }, DISK_FORMATS, 'diskFormats')).not.toContain('ploop');
  });

  it.each([
    [{ diskFormat: ['raw'] }, /unknown option 'diskFormat'/],
    [{ diskFormats: 'raw' }, /'diskFormats' must be a list of non-empty strings, or \{ add, remove \}/],
    [{ diskFormats: [1] }, /'diskFormats' must be a list of non-empty strings/],
    [{ containerFormats: { plus: ['x'] } }, /unknown option 'containerFormats.plus'/],
    [{ limit: 0 }, /'limit' must be a whole number of bytes, at least 1/],
  ])('should throw a TypeError at construction for %p', (options, message) => {
    expect(() => imageFormats(options as unknown as ImageFormatsOptions)).toThrow(TypeError);
    expect(() => imageFormats(options as unknown as ImageFormatsOptions)).toThrow(message);
  });
});
