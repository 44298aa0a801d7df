/**
 * plainDownloadId: which requests the demo serves without Express's routing (server/demo/app.ts):
 * only a download spelt as the router matches it with nothing to rewrite or decode.
 */
import type { IncomingMessage } from 'node:http';
import { plainDownloadId } from '../../server/demo/routing';

const ID = '0c7f4a3e-5b1d-4c2a-9e8f-1a2b3c4d5e6f';
const request = (method: string, url: string, headers: Record<string, string> = {}) => ({ method, url, headers }) as unknown as IncomingMessage;

describe('plainDownloadId', () => {
  it.each([
    ['GET', `/v2/images/${ID}/file`],
    ['HEAD', `/v2/images/${ID}/file`],
    ['GET', `/v2/images/${ID}/file?x=1`],
    ['GET', `/v2/images/${ID.toUpperCase()}/file`],
    ['GET', '/v2/images/not-an-id/file'],
  ])('takes %s %s, with the id as the router reads it', (method, url) => {
    expect(plainDownloadId(request(method, url))).toBe(url.split('/')[3]);
  });

  it.each([
    ['PUT', `/v2/images/${ID}/file`, {}],
    ['POST', `/v2/images/${ID}/file`, {}],
    ['DELETE', `/v2/images/${ID}/file`, {}],
    ['get', `/v2/images/${ID}/file`, {}],
    ['GET', `/v2.1/images/${ID}/file`, {}],
    ['GET', `/v2//images/${ID}/file`, {}],
    ['GET', `//v2/images/${ID}/file`, {}],
    ['GET', `/V2/images/${ID}/file`, {}],
    ['GET', `/v2/IMAGES/${ID}/file`, {}],
    ['GET', `/v2/images/${ID}/FILE`, {}],
    ['GET', `/v2/images/${ID}/file/`, {}],
    ['GET', `/v2/images/${ID}/file#x`, {}],
    ['GET', `/v2/images/${ID}%2Ffile`, {}],
    ['GET', `/v2/images/%30c7f4a3e-5b1d-4c2a-9e8f-1a2b3c4d5e6f/file`, {}],
    ['GET', `/v2/images/${ID}/stage`, {}],
    ['GET', `/v2/images/${ID}`, {}],
    ['GET', `http://127.0.0.1/v2/images/${ID}/file`, {}],
    ['GET', `*`, {}],
    ['GET', `/v2/images/${ID}/file`, { accept: 'application/vnd.openstack.images-v2' }],
    ['GET', `/v2/images/${ID}/file`, { accept: 'application/vnd.openstack.images-v1' }],
  ])('leaves %s %s %j to the router', (method, url, headers) => {
    expect(plainDownloadId(request(method, url, headers))).toBeNull();
  });
});
