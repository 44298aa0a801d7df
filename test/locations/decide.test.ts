/**
 * BEHAVIOUR.md §1, "Decision, op by op, in order (Glance)": one row per row of the table, for every
 * status Glance knows, then the order of the checks, positions, the queued → active rule and
 * all-or-nothing.
 */
import type { GlanceError } from '../../lib/errors';
import { IMAGE_STATUSES } from '../../lib/images/lookup';
import { decideLocationPatch, locationPosition, type LocationImage } from '../../lib/locations/decide';
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
    ])('should map token %s with %i locations (add: %s) to %s', (token, count, forAdd, expected) => {
      expect(locationPosition(token, count, forAdd)).toBe(expected);
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
});
