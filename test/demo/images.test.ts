/**
 * The demo's image rules: a patch that changes nothing gives a record deep-equal to the image,
 * prototypes included, so the image (and its updated_at) is not touched. Run in jest's vm context,
 * where structuredClone is the outer realm's: a copy made by it would differ in prototype.
 */
import { isDeepStrictEqual } from 'node:util';
import { applyPatch, type ImageRules } from '../../server/demo/images';
import type { ImageRecord } from '../../server/demo/store';

const rules: ImageRules = { diskFormats: ['raw'], containerFormats: ['bare'], sizeAt: async () => 32 };

function record(): ImageRecord {
  return JSON.parse(
    JSON.stringify({
      id: '0b5b5c0e-1f5a-4c8e-9f5e-000000000001',
      name: 'img',
      status: 'active',
      visibility: 'shared',
      protected: false,
      disk_format: 'raw',
      container_format: 'bare',
      size: 32,
      virtual_size: null,
      checksum: null,
      os_hash_algo: null,
      os_hash_value: null,
      min_disk: 0,
      min_ram: 0,
      owner: null,
      tags: [],
      locations: [
        { url: 'http://127.0.0.1:1/a', metadata: {} },
        { url: 'http://127.0.0.1:1/b', metadata: { k: 'v' } },
      ],
      properties: {},
      created_at: '2026-11-25T10:00:00Z',
      updated_at: '2026-11-25T10:00:00Z',
    }),
  ) as ImageRecord;
}

describe('the demo: a patch that changes nothing', () => {
  it('should give a record deep-equal to the image, prototypes included, for an empty patch', async () => {
    const current = record();
    const { record: next, dropped } = await applyPatch(current, [], rules);
    expect(isDeepStrictEqual(next, current)).toBe(true);
    expect(next).not.toBe(current);
    expect(dropped).toEqual([]);
  });

  it('should give a different record when a location goes', async () => {
    const current = record();
    const { record: next, dropped } = await applyPatch(current, [{ op: 'remove', path: ['locations', '0'] }], rules);
    expect(isDeepStrictEqual(next, current)).toBe(false);
    expect(dropped).toEqual(['http://127.0.0.1:1/a']);
    expect(current.locations).toHaveLength(2);
  });
});
