/**
 * The location guard's decision: given the location ops of one patch and the image as the backing
 * service sees it, is the patch refused, and with which of Glance's answers? Pure and synchronous.
 *
 * The ops are judged in order against the image as it would be after the earlier ops, exactly as
 * Glance's images controller applies them; one refused op refuses the whole patch.
 */
import { glanceError, type GlanceError } from '../errors';
import { glanceFails, type PatchOp } from './patch';
import { pyIntOfDigits, pyIsDigit } from './python';

export interface LocationImage {
  readonly status: string;
  /** Number of locations, or null when unknown (the backing service then judges count and position). */
  readonly locations: number | null;
}

/** A 409 of the guard: which op met which image status. */
export interface LocationConflict extends GlanceError {
  readonly op: 'add' | 'remove' | 'replace';
  readonly imageStatus: string;
}

export interface LocationPolicy {
  /** Glance's `show_multiple_locations`: when false every location op is refused with 403. */
  readonly showMultipleLocations: boolean;
}

const VERB = { add: 'add', remove: 'remove', replace: 'update' } as const;

/** Python truthiness of a JSON value: Glance refuses a replace whose value is falsy (NaN is not). */
function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object' && v !== null) return Object.keys(v).length > 0;
  if (typeof v === 'number') return v !== 0;
  return Boolean(v);
}

/**
 * Glance's position rule (`_get_location_position`): a token `str.isdigit()` accepts, read by
 * `int()` (Unicode digits count: `/locations/٣` is position 3), or `-` for the last element
 * (remove) or the end (add); null where Glance answers `Invalid position for ... a location.`
 * Throws a 400 where Glance's `int()` raises and Glance answers a bare 500 (`'²'`, which
 * `isdigit()` accepts, or more than 4300 digits).
 */
export function locationPosition(token: string | undefined, count: number, forAdd: boolean): number | null {
  if (token === undefined) return null;
  let pos: number;
  if (pyIsDigit(token)) {
    const n = pyIntOfDigits(token);
    if (n === undefined) throw glanceFails(`'${token}' is not a position`);
    if (!forAdd && n >= BigInt(count)) return null;
    pos = Number(n);
  } else if (token === '-') {
    pos = forAdd ? count : count - 1;
  } else {
    return null;
  }
  return forAdd || (pos >= 0 && pos < count) ? pos : null;
}

/** The refusal for this patch on this image, or null if the guard lets it through. */
export function decideLocationPatch(ops: readonly PatchOp[], image: LocationImage, policy: LocationPolicy): GlanceError | null {
  let status = image.status;
  let count = image.locations;
  const conflict = (op: LocationConflict['op']): LocationConflict =>
    Object.assign(glanceError(409, 'location.conflict', `It's not allowed to ${op} locations if image status is ${status}.`), { op, imageStatus: status });

  for (const change of ops) {
    if (change.path[0] !== 'locations') continue;
    if (change.op === 'replace' && !truthy(change.value)) {
      return glanceError(403, 'location.empty', 'Cannot set locations to empty list.', { afterStockSentence: true });
    }
    if (!policy.showMultipleLocations) {
      return glanceError(403, 'location.invisible', `It's not allowed to ${VERB[change.op]} locations if locations are invisible.`);
    }
    switch (change.op) {
      case 'remove':
        if (status !== 'active') return conflict('remove');
        if (count !== null) {
          if (count === 1) return glanceError(403, 'location.last', 'Cannot remove last location in the image.', { afterStockSentence: true });
          if (locationPosition(change.path[1], count, false) === null) {
            return glanceError(400, 'location.position', 'Invalid position for removing a location.');
          }
          count -= 1;
        }
        break;
      case 'replace':
        if (status !== 'active' && status !== 'queued') return conflict('replace');
        count = Array.isArray(change.value) ? change.value.length : null;
        if (status === 'queued') status = 'active';
        break;
      case 'add':
        if (status !== 'active' && status !== 'queued') return conflict('add');
        if (locationPosition(change.path[1], count ?? 0, true) === null) {
          return glanceError(400, 'location.position', 'Invalid position for adding a location.');
        }
        if (count !== null) count += 1;
        if (status === 'queued') status = 'active';
        break;
    }
  }
  return null;
}
