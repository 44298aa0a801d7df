/**
 * Which requests the sidecar's listener sends around Express, straight to the forwarder: only
 * reads that no middleware of the suite answers or changes.
 */
import type { IncomingMessage } from 'node:http';
import { untouchedBySuite } from '../../server/sidecar/app';

const ask = (method: string, url: string) => untouchedBySuite({ method, url } as IncomingMessage);

describe('the sidecar: requests that skip Express', () => {
  it.each([
    ['GET', '/v2/images'],
    ['GET', '/v2/images?limit=1&marker=x'],
    ['HEAD', '/v2/images'],
    ['GET', '/v2/images/0b5b5c0e-1f5a-4c8e-9f5e-000000000000'],
    ['GET', '/v2/images/0b5b5c0e-1f5a-4c8e-9f5e-000000000000/members'],
    ['GET', '/v2/tasks'],
    ['GET', '/v2/info/stores'],
    ['GET', '/v2/images?name=file'],
  ])('should forward %s %s directly', (method, url) => {
    expect(ask(method, url)).toBe(true);
  });

  it.each([
    // Writes: location changes, formats, uploads, whatever their spelling.
    ['PATCH', '/v2/images/x'],
    ['PATCH', '/V2/IMAGES/x'],
    ['POST', '/v2/images'],
    ['PUT', '/v2/images/x/file'],
    ['PUT', '/v2/images/x/stage'],
    ['POST', '/v2/images/x/import'],
    ['DELETE', '/v2/images/x'],
    ['OPTIONS', '/v2/images'],
    // Reads the suite answers or changes.
    ['GET', '/'],
    ['GET', '/versions'],
    ['GET', '/versions/'],
    ['GET', '/healthz'],
    ['GET', '/v2/schemas/image'],
    ['GET', '/v2/schemas/images?x=1'],
    ['GET', '/V2/Schemas/image'],
    ['GET', '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type'],
    ['GET', '/v2/images/x/file'],
    ['HEAD', '/v2/images/x/file/'],
    ['GET', '/v2/images/x/FILE'],
    // A percent-escape might spell one of those.
    ['GET', '/v2/images/x%2Ffile'],
    ['GET', '/v2/%73chemas/image'],
  ])('should send %s %s through the suite', (method, url) => {
    expect(ask(method, url)).toBe(false);
  });
});
