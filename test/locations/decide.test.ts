/**
 * BEHAVIOUR.md §1, "Decision, op by op, in order (Glance)": one row per row of the table, for every
 * status Glance knows, then the order of the checks, positions, the queued → active rule and
 * all-or-nothing.
 */
import type { GlanceError } from '../../lib/errors';
import { IMAGE_STATUSES } from '../../lib/images/lookup';
import { decideLocationPatch, insertOverflows, locationPosition, type LocationImage } from '../../lib/locations/decide';
import { fromHexLength } from '../../lib/locations/glance-image';
import { parseImagePatch, type PatchOp } from '../../lib/locations/patch';

const LOCATION = { url: 'http://example.com/image.qcow2', metadata: {} };
const OTHER = { url: 'http://example.com/other.qcow2', metadata: {} };

const remove = (position: string): PatchOp => ({ op: 'remove', path: ['locations', position] });
const add = (position: string, value: unknown = LOCATION): PatchOp => ({ op: 'add', path: ['locations', position], value });
const replace = (value: unknown): PatchOp => ({ op: 'replace', path: ['locations'], value });

const VISIBLE = { showMultipleLocations: true };
const INVISIBLE = { showMultipleLocations: false };

const image = (status: string, locations: number | null): LocationImage => ({ status, locations });

interface Expected {
  status: number;
  type: string;
  message: string;
}

function expectRefusal(err: GlanceError | null, expected: Expected): void {
  expect(err).not.toBeNull();
  expect({ status: err?.status, type: err?.type, message: err?.message }).toEqual(expected);
}

const conflict = (verb: string, status: string): Expected => ({
  status: 409,
  type: 'location.conflict',
  message: `It's not allowed to ${verb} locations if image status is ${status}.`,
});
const EMPTY: Expected = { status: 403, type: 'location.empty', message: 'Cannot set locations to empty list.' };
const LAST: Expected = { status: 403, type: 'location.last', message: 'Cannot remove last location in the image.' };
const BAD_REMOVE: Expected = { status: 400, type: 'location.position', message: 'Invalid position for removing a location.' };
const BAD_ADD: Expected = { status: 400, type: 'location.position', message: 'Invalid position for adding a location.' };
const invisible = (verb: string): Expected => ({
  status: 403,
  type: 'location.invisible',
  message: `It's not allowed to ${verb} locations if locations are invisible.`,
});

describe('1. Location changes: decision, op by op, in order (Glance)', () => {
  describe('row: replace /locations with an empty value', () => {
    it.each(IMAGE_STATUSES)('should 403 when replacing locations with [] on a %s image', (status) => {
      expectRefusal(decideLocationPatch([replace([])], image(status, 2), VISIBLE), EMPTY);
    });

    it.each<[string, unknown]>([
      ['null', null],
      ['{}', {}],
      ['""', ''],
      ['0', 0],
      ['false', false],
    ])('should 403 when replacing locations with the falsy value %s', (_name, value) => {
      expectRefusal(decideLocationPatch([replace(value)], image('active', 2), VISIBLE), EMPTY);
    });

    it('should 403 with the stock sentence first, as HTTPForbidden(msg) renders', () => {
      const err = decideLocationPatch([replace([])], image('active', 2), VISIBLE);
      expect(err?.explanation).toBe('Access was denied to this resource.');
      expect(err?.detail).toBe('Cannot set locations to empty list.');
    });
  });

  describe('row: any location op while show_multiple_locations is off', () => {
    it.each(IMAGE_STATUSES)('should 403 for remove, replace and add on a %s image', (status) => {
      expectRefusal(decideLocationPatch([remove('0')], image(status, 2), INVISIBLE), invisible('remove'));
      expectRefusal(decideLocationPatch([replace([LOCATION])], image(status, 2), INVISIBLE), invisible('update'));
      expectRefusal(decideLocationPatch([add('-')], image(status, 2), INVISIBLE), invisible('add'));
    });
  });

  describe('row: remove on an image that is not active', () => {
    it.each(IMAGE_STATUSES)('should answer remove /locations/0 on a %s image (409 unless active)', (status) => {
      const err = decideLocationPatch([remove('0')], image(status, 2), VISIBLE);
      if (status === 'active') expect(err).toBeNull();
      else expectRefusal(err, conflict('remove', status));
    });
  });

  describe('row: remove of the last location', () => {
    it('should 403 when removing the only location of an active image', () => {
      expectRefusal(decideLocationPatch([remove('0')], image('active', 1), VISIBLE), LAST);
    });

    it('should 403 with the stock sentence first, as HTTPForbidden(e.msg) renders', () => {
      const err = decideLocationPatch([remove('0')], image('active', 1), VISIBLE);
      expect(err?.explanation).toBe('Access was denied to this resource.');
      expect(err?.detail).toBe('Cannot remove last location in the image.');
    });
  });

  describe('row: remove at a position out of range', () => {
    it.each(['2', '5', '-1', 'x', '', '1.0', '+1'])('should 400 when removing /locations/%s of an active image with 2 locations', (pos) => {
      expectRefusal(decideLocationPatch([remove(pos)], image('active', 2), VISIBLE), BAD_REMOVE);
    });

    it('should 400 when removing any location of an active image with none', () => {
      expectRefusal(decideLocationPatch([remove('0')], image('active', 0), VISIBLE), BAD_REMOVE);
      expectRefusal(decideLocationPatch([remove('-')], image('active', 0), VISIBLE), BAD_REMOVE);
    });

    it.each(['0', '1', '-'])('should pass removing /locations/%s of an active image with 2 locations', (pos) => {
      expect(decideLocationPatch([remove(pos)], image('active', 2), VISIBLE)).toBeNull();
    });
  });

  describe('row: replace on an image that is neither active nor queued', () => {
    it.each(IMAGE_STATUSES)('should answer replace /locations on a %s image (409 unless active or queued)', (status) => {
      const err = decideLocationPatch([replace([LOCATION])], image(status, 0), VISIBLE);
      if (status === 'active' || status === 'queued') expect(err).toBeNull();
      else expectRefusal(err, conflict('replace', status));
    });
  });

  describe('row: add on an image that is neither active nor queued', () => {
    it.each(IMAGE_STATUSES)('should answer add /locations/- on a %s image (409 unless active or queued)', (status) => {
      const err = decideLocationPatch([add('-')], image(status, 1), VISIBLE);
      if (status === 'active' || status === 'queued') expect(err).toBeNull();
      else expectRefusal(err, conflict('add', status));
    });

    it.each(['x', '-1', '', '1.5'])('should 400 when adding at /locations/%s', (pos) => {
      expectRefusal(decideLocationPatch([add(pos)], image('active', 1), VISIBLE), BAD_ADD);
    });

    it.each(['0', '1', '7', '-'])('should pass adding at /locations/%s (positions past the end are allowed)', (pos) => {
      expect(decideLocationPatch([add(pos)], image('active', 1), VISIBLE)).toBeNull();
    });
  });

  describe('the order of the checks', () => {
    it('should 403 for replace [] even on a saving image (before the 409)', () => {
      expectRefusal(decideLocationPatch([replace([])], image('saving', 2), VISIBLE), EMPTY);
    });

    it('should 403 for replace [] even when locations are invisible (before the invisible 403)', () => {
      expectRefusal(decideLocationPatch([replace([])], image('saving', 2), INVISIBLE), EMPTY);
    });

    it('should 403 invisible before the 409 of a saving image', () => {
      expectRefusal(decideLocationPatch([remove('0')], image('saving', 2), INVISIBLE), invisible('remove'));
      expectRefusal(decideLocationPatch([add('-')], image('saving', 2), INVISIBLE), invisible('add'));
    });

    it('should 409 before the last-location 403 when removing the only location of a queued image', () => {
      expectRefusal(decideLocationPatch([remove('0')], image('queued', 1), VISIBLE), conflict('remove', 'queued'));
    });

    it('should 403 last-location before the position 400 (Glance: remove /locations/5 with ONE location)', () => {
      expectRefusal(decideLocationPatch([remove('5')], image('active', 1), VISIBLE), LAST);
    });

    it('should 409 before the position 400 when adding at x on a saving image', () => {
      expectRefusal(decideLocationPatch([add('x')], image('saving', 1), VISIBLE), conflict('add', 'saving'));
    });
  });

  describe('positions', () => {
    it.each<[string | undefined, number, boolean, number | null]>([
      ['0', 2, false, 0],
      ['1', 2, false, 1],
      ['2', 2, false, null],
      ['-', 2, false, 1],
      ['-', 0, false, null],
      ['-1', 2, false, null],
      ['x', 2, false, null],
      [undefined, 2, false, null],
      ['0', 0, true, 0],
      ['5', 2, true, 5],
      ['-', 2, true, 2],
      ['-1', 2, true, null],
      ['x', 2, true, null],
      ['9223372036854775807', 2, true, Number(2n ** 63n - 1n)],
      ['9223372036854775808', 2, false, null],
    ])('should map token %s with %i locations (add: %s) to %s', (token, count, forAdd, expected) => {
      expect(locationPosition(token, count, forAdd)).toBe(expected);
    });

    it.each(['9223372036854775808', '99999999999999999999'])("should refuse with Glance's failure a patch whose add at %s Glance crashes on (list.insert: OverflowError) before a later op the guard refuses", (token) => {
      const refusal = decideLocationPatch([add(token), remove('2')], image('active', 1), VISIBLE);
      expect(refusal).toMatchObject({ status: 400, type: 'patch.unreadable' });
      expect(insertOverflows(token)).toBe(true);
      expect(insertOverflows('9223372036854775807')).toBe(false);
    });

    it('should pass remove /locations/- as the last element', () => {
      expect(decideLocationPatch([remove('-'), remove('-')], image('active', 3), VISIBLE)).toBeNull();
      expectRefusal(decideLocationPatch([remove('-'), remove('-')], image('active', 2), VISIBLE), LAST);
    });
  });

  describe('the image as the earlier ops leave it', () => {
    it('should pass [add, add, remove /locations/0] on a queued image with no locations', () => {
      expect(decideLocationPatch([add('-'), add('-', OTHER), remove('0')], image('queued', 0), VISIBLE)).toBeNull();
    });

    it('should 409 for [remove] alone on a queued image with no locations', () => {
      expectRefusal(decideLocationPatch([remove('0')], image('queued', 0), VISIBLE), conflict('remove', 'queued'));
    });

    it('should 403 for [add, remove] on a queued image with no locations (the added one is the last)', () => {
      expectRefusal(decideLocationPatch([add('-'), remove('0')], image('queued', 0), VISIBLE), LAST);
    });

    it('should pass [replace [a, b], remove /locations/1] on a queued image', () => {
      expect(decideLocationPatch([replace([LOCATION, OTHER]), remove('1')], image('queued', 0), VISIBLE)).toBeNull();
    });

    it('should 400 for [replace [a, b], remove /locations/2] on a queued image', () => {
      expectRefusal(decideLocationPatch([replace([LOCATION, OTHER]), remove('2')], image('queued', 0), VISIBLE), BAD_REMOVE);
    });

    it('should 403 for [remove, remove] on an active image with 2 locations (the second removes the last)', () => {
      expectRefusal(decideLocationPatch([remove('0'), remove('0')], image('active', 2), VISIBLE), LAST);
    });

    it('should 400 for [remove /locations/0, remove /locations/2] on an active image with 3 locations', () => {
      expectRefusal(decideLocationPatch([remove('0'), remove('2')], image('active', 3), VISIBLE), BAD_REMOVE);
    });

    it('should take the count after an add for the next remove', () => {
      expect(decideLocationPatch([add('-'), remove('1')], image('active', 1), VISIBLE)).toBeNull();
    });
  });

  describe('all or nothing', () => {
    it('should 409 the whole patch when a later op is refused', () => {
      expectRefusal(decideLocationPatch([add('-'), add('-'), remove('0')], image('saving', 0), VISIBLE), conflict('add', 'saving'));
    });

    it('should 400 the whole patch when only its last op is refused', () => {
      expectRefusal(decideLocationPatch([add('-'), remove('0'), remove('9')], image('active', 2), VISIBLE), BAD_REMOVE);
    });

    it('should 403 the whole patch for a trailing replace [] after allowed ops', () => {
      expectRefusal(decideLocationPatch([add('-'), remove('0'), replace([])], image('active', 2), VISIBLE), EMPTY);
    });

    it('should pass a patch without location ops', () => {
      const ops = parseImagePatch(Buffer.from('[{"op": "replace", "path": "/name", "value": "x"}]'), 'application/openstack-images-v2.1-json-patch');
      expect(decideLocationPatch(ops, image('saving', 0), INVISIBLE)).toBeNull();
      expect(decideLocationPatch([], image('killed', 0), VISIBLE)).toBeNull();
    });

    it('should judge only the location ops of a mixed patch', () => {
      const ops = parseImagePatch(
        Buffer.from('[{"op": "replace", "path": "/name", "value": "x"}, {"op": "remove", "path": "/locations/0"}]'),
        'application/openstack-images-v2.1-json-patch',
      );
      expectRefusal(decideLocationPatch(ops, image('deactivated', 2), VISIBLE), conflict('remove', 'deactivated'));
    });
  });

  describe('unknown location count (the service does not show locations)', () => {
    it('should pass remove /locations/5 on an active image with an unknown count', () => {
      expect(decideLocationPatch([remove('5')], image('active', null), VISIBLE)).toBeNull();
    });

    it('should pass removing twice on an active image with an unknown count', () => {
      expect(decideLocationPatch([remove('0'), remove('0')], image('active', null), VISIBLE)).toBeNull();
    });

    it('should pass add /locations/5 on a queued image with an unknown count', () => {
      expect(decideLocationPatch([add('5')], image('queued', null), VISIBLE)).toBeNull();
    });

    it('should still 409 remove on a queued image with an unknown count', () => {
      expectRefusal(decideLocationPatch([remove('0')], image('queued', null), VISIBLE), conflict('remove', 'queued'));
    });

    it('should still 403 replace [] with an unknown count', () => {
      expectRefusal(decideLocationPatch([replace([])], image('active', null), VISIBLE), EMPTY);
    });

    it('should still 400 add at x with an unknown count', () => {
      expectRefusal(decideLocationPatch([add('x')], image('active', null), VISIBLE), BAD_ADD);
    });

    it('should pass a remove after replace with a non-list value (count unknown again)', () => {
      expect(decideLocationPatch([replace({ url: 'x' }), remove('3')], image('queued', 0), VISIBLE)).toBeNull();
    });
  });

  describe("the image's document known: Glance's other checks, up to the op where Glance stops", () => {
    /** A Glance image document: `extra` holds custom properties and overrides. */
    const doc = (status: string, locations: unknown[], extra: Record<string, unknown> = {}): LocationImage => ({
      status,
      locations: locations.length,
      document: { name: 'x', disk_format: 'raw', container_format: 'bare', visibility: 'shared', size: 32, status, checksum: null, protected: false, min_ram: 0, min_disk: 0, owner: null, os_hidden: false, os_hash_algo: null, os_hash_value: null, id: 'i', locations, tags: [], self: '/v2/images/i', file: '/v2/images/i/file', schema: '/v2/schemas/image', ...extra },
    });
    const prop = (op: 'add' | 'remove' | 'replace', name: string, value?: unknown): PatchOp => (op === 'remove' ? { op, path: [name] } : { op, path: [name], value });
    const property = (status: number, message: string): Expected => ({ status, type: 'image.property', message });
    const deactivated = doc('deactivated', [LOCATION, OTHER], { foo: 'bar' });

    it.each<[string, PatchOp[], 4 | 10, Expected]>([
      ['remove of a property that does not exist', [prop('remove', 'bar'), remove('0')], 10, property(409, 'Property bar does not exist.')],
      ['replace of a property that does not exist', [prop('replace', 'bar', 'x'), remove('0')], 10, property(409, 'Property bar does not exist.')],
      ['remove of an attribute of the image', [prop('remove', 'name'), remove('0')], 10, property(403, 'Property name may not be removed.')],
      ['remove of a method of the image object', [prop('remove', 'delete'), remove('0')], 10, property(403, 'Property delete may not be removed.')],
      ['v2.0 add of an attribute', [prop('add', 'name', 'y'), remove('0')], 4, property(409, 'Property name already present.')],
      ['v2.0 add of an existing custom property', [prop('add', 'foo', 'y'), remove('0')], 4, property(409, 'Property foo already present.')],
      ['replace of disk_format on an image that is not queued', [prop('replace', 'disk_format', 'qcow2'), remove('0')], 10, property(403, 'Attribute disk_format can be only replaced for a queued image.')],
      ['a negative min_ram', [prop('replace', 'min_ram', -1), remove('0')], 10, property(400, "Invalid value '-1' for parameter 'min_ram': Cannot be a negative value")],
    ])("should answer Glance's refusal of an earlier op (%s) before the 409 of a deactivated image", (_name, ops, draft, expected) => {
      expectRefusal(decideLocationPatch(ops, deactivated, VISIBLE, draft), expected);
      // Without the document the 409 is all the guard can tell.
      expectRefusal(decideLocationPatch(ops, image('deactivated', 2), VISIBLE, draft), conflict('remove', 'deactivated'));
    });

    it.each(['__class__', '__dict__', '__weakref__', 'base'])("should 400 patch.unreadable for setting %s, which breaks Glance's image object (Glance: a bare 500)", (name) => {
      expect(decideLocationPatch([prop('replace', name, 'x'), remove('0')], deactivated, VISIBLE)).toMatchObject({ status: 400, type: 'patch.unreadable' });
    });

    it.each<[string, PatchOp[], 4 | 10]>([
      ['replace of a name of the image object that takes a value', [prop('replace', 'delete', 'x'), remove('0')], 10],
      ['replace of image_id, which fails only when the image is saved', [prop('replace', 'image_id', 'x'), remove('0')], 10],
      ['remove of an existing custom property', [prop('remove', 'foo'), remove('0')], 10],
      ['v2.1 add of an attribute', [prop('add', 'name', 'y'), remove('0')], 10],
      ['replace of an attribute', [prop('replace', 'min_ram', 512), remove('0')], 10],
      ['v2.0 add of a new custom property', [prop('add', 'new', 'y'), remove('0')], 4],
    ])('should 409 a deactivated image after an op Glance applies (%s)', (_name, ops, draft) => {
      expectRefusal(decideLocationPatch(ops, deactivated, VISIBLE, draft), conflict('remove', 'deactivated'));
    });

    it("should leave a patch that fails at Glance's own check to the service when nothing later is refused", () => {
      expect(decideLocationPatch([prop('remove', 'bar'), add('-', OTHER)], doc('active', [LOCATION]), VISIBLE)).toBeNull();
      expect(decideLocationPatch([add('-', LOCATION)], doc('active', [LOCATION]), VISIBLE)).toBeNull();
    });

    it('should answer the duplicate 400 of an add before a later position 400', () => {
      expectRefusal(decideLocationPatch([add('-', LOCATION), remove('9')], doc('active', [LOCATION, OTHER]), VISIBLE), { status: 400, type: 'location.duplicate', message: `The location ${LOCATION.url} already exists` });
      // Other metadata is another location.
      expectRefusal(decideLocationPatch([add('-', { url: LOCATION.url, metadata: { k: 'v' } }), remove('9')], doc('active', [LOCATION, OTHER]), VISIBLE), BAD_REMOVE);
    });

    it('should answer the duplicate 400 of a replace whose list holds one location twice', () => {
      expectRefusal(decideLocationPatch([replace([LOCATION, LOCATION]), remove('9')], doc('queued', []), VISIBLE), { status: 400, type: 'location.duplicate', message: `The location ${LOCATION.url} already exists` });
    });

    it("should leave to the service a replace Glance refuses with its database's location ids (Original locations is not empty)", () => {
      expect(decideLocationPatch([replace([OTHER]), remove('9')], doc('active', [LOCATION]), VISIBLE)).toBeNull();
      // The same URLs in another order or with other metadata are a replace Glance applies.
      expectRefusal(decideLocationPatch([replace([OTHER, LOCATION]), remove('9')], doc('active', [LOCATION, OTHER]), VISIBLE), BAD_REMOVE);
    });

    it.each<[string, Record<string, unknown>, string]>([
      ['a checksum that is not hexadecimal', { checksum: 'z'.repeat(32), os_hash_algo: 'sha512', os_hash_value: 'ab'.repeat(64) }, `checksum (${'z'.repeat(32)}) is not a valid hexadecimal value`],
      ['a checksum of the wrong size', { checksum: `${'ab'.repeat(15)}  `, os_hash_algo: 'sha512', os_hash_value: 'ab'.repeat(64) }, `checksum (${'ab'.repeat(15)}  ) is not the correct size for md5 (should be 16 bytes)`],
      ['another hash algorithm', { os_hash_algo: 'sha256', os_hash_value: 'ab'.repeat(32) }, 'os_hash_algo must be sha512, not sha256'],
      ['a hash value of the wrong size', { os_hash_algo: 'sha512', os_hash_value: 'ab'.repeat(32) }, `os_hash_value (${'ab'.repeat(32)}) is not the correct size for sha512 (should be 64 bytes)`],
    ])('should 409 validation data with %s before the 409 of a later remove on a queued image', (_name, data, message) => {
      const ops = [add('-', { ...OTHER, validation_data: data }), remove('0')];
      expectRefusal(decideLocationPatch(ops, doc('queued', []), VISIBLE), { status: 409, type: 'location.validation', message });
    });

    it('should 409 new validation data on an active image, and take values it already has', () => {
      const data = { os_hash_algo: 'sha512', os_hash_value: 'ab'.repeat(64) };
      expectRefusal(decideLocationPatch([add('-', { ...OTHER, validation_data: data }), remove('9')], doc('active', [LOCATION]), VISIBLE), {
        status: 409,
        type: 'location.validation',
        message: "New value(s) for os_hash_algo, os_hash_value may only be provided when image status is 'queued'",
      });
      expectRefusal(decideLocationPatch([add('-', { ...OTHER, validation_data: data }), remove('9')], doc('active', [LOCATION], data), VISIBLE), BAD_REMOVE);
    });

    it('should answer the formats 400 of an image that cannot become active before the 409 of a later remove', () => {
      const ops = [prop('replace', 'container_format', null), add('-'), remove('0')];
      expectRefusal(decideLocationPatch(ops, doc('queued', []), VISIBLE), { status: 400, type: 'image.formats', message: 'Property container_format must be set prior to saving data.' });
      expectRefusal(decideLocationPatch([add('-'), remove('0')], doc('queued', [], { disk_format: null, container_format: null }), VISIBLE), {
        status: 400,
        type: 'image.formats',
        message: 'Properties disk_format, container_format must be set prior to saving data.',
      });
    });

    it("should 400 patch.unreadable where Glance's store fails on metadata that is not text (Glance: a bare 500)", () => {
      const ops = [add('-', { url: OTHER.url, metadata: { n: 1 } }), remove('0')];
      expect(decideLocationPatch(ops, doc('queued', []), VISIBLE)).toMatchObject({ status: 400, type: 'patch.unreadable' });
    });

    it.each<[string, number | null]>([
      [' 0a 0b ', 2],
      ['\t\n0a\v\f\r', 1],
      ['0A', 1],
      ['', 0],
      ['0a0', null],
      ['0 a', null],
      ['zz', null],
      ['\u00a00a', null],
      ['0a\u001c', null],
    ])("should read %j as Python's bytearray.fromhex does (%s bytes)", (text, bytes) => {
      expect(fromHexLength(text)).toBe(bytes);
    });
  });
});

