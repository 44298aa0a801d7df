/**
 * The location guard's decision: given the ops of one patch and the image as the backing service
 * sees it, is the patch refused, and with which of Glance's answers? Pure and synchronous.
 *
 * The ops are judged in order against the image as it would be after the earlier ops, exactly as
 * Glance's images controller applies them; one refused op refuses the whole patch. When the image's
 * whole document is known, the decision follows Glance's other checks of each op too (properties,
 * validation data, duplicate locations, the formats an image needs to become active): if Glance
 * would stop at an earlier op, a refusal answers what Glance answers there.
 */
import { glanceError, type GlanceError } from '../errors';
import { glanceFails, type PatchOp } from './patch';
import { pyIntOfDigits, pyIsDigit } from './python';
import { applyPropertyOp, formatsMissing, imageModel, pyEqualJs, storeTakesMetadata, truthy, validationData, type ImageLocation, type ImageModel } from './glance-image';

export interface LocationImage {
  readonly status: string;
  /** Number of locations, or null when unknown (the backing service then judges count and position). */
  readonly locations: number | null;
  /**
   * The image's document as the service shows it (Glance's `GET /v2/images/{id}`), when known: the
   * decision then also follows Glance's checks of properties and location values.
   */
  readonly document?: unknown;
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

/** The first position Python's `list.insert` cannot take (its index is a C ssize_t). */
const SSIZE_LIMIT = 2n ** 63n;

/**
 * Whether Glance, adding a location at `token`, fails in `list.insert` (OverflowError, a bare 500):
 * a position it reads, of 2^63 or more.
 */
export function insertOverflows(token: string | undefined): boolean {
  if (token === undefined || !pyIsDigit(token)) return false;
  const n = pyIntOfDigits(token);
  return n !== undefined && n >= SSIZE_LIMIT;
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

/** What one op comes to: applied, refused by a rule of the guard, or failed at one of Glance's other checks. */
type Step = { readonly kind: 'applied' } | { readonly kind: 'refused'; readonly error: GlanceError } | { readonly kind: 'fails'; readonly error: GlanceError | null };

const APPLIED: Step = { kind: 'applied' };
const refused = (error: GlanceError): Step => ({ kind: 'refused', error });
/** Glance fails here, with `error`; null: with an answer the suite cannot write (it quotes what only Glance's database holds). */
const fails = (error: GlanceError | null): Step => ({ kind: 'fails', error });

/**
 * The refusal for this patch on this image, or null if the guard lets it through. `ops` may hold
 * every op of the patch (ops on other paths count only when the image's document is known) and
 * `draft` is the patch's JSON-patch draft (4 for the v2.0 media type).
 *
 * Where Glance would fail the patch at an op for a reason of its own (a property that does not
 * exist, a duplicate location...), the patch is left to the service unless a later op is refused:
 * then the answer is Glance's for the earlier op (a service that skipped it could apply the later
 * one). Checks only the service can make (whether its store takes a URL, its quotas and policies)
 * are taken to pass.
 */
export function decideLocationPatch(ops: readonly PatchOp[], image: LocationImage, policy: LocationPolicy, draft: 4 | 10 = 10): GlanceError | null {
  const known = image.document === undefined ? null : imageModel(image.document);
  const model: ImageModel = known ?? { status: image.status, locations: null, properties: new Set(), attributes: new Map() };
  model.status = image.status;
  let count = model.locations?.length ?? image.locations;
  const conflict = (op: LocationConflict['op']): LocationConflict =>
    Object.assign(glanceError(409, 'location.conflict', `It's not allowed to ${op} locations if image status is ${model.status}.`), { op, imageStatus: model.status });

  /** `_do_replace` of `/locations` and `_do_replace_locations`. */
  const replace = (value: unknown): Step => {
    if (!truthy(value)) return refused(glanceError(403, 'location.empty', 'Cannot set locations to empty list.', { afterStockSentence: true }));
    if (!policy.showMultipleLocations) return refused(glanceError(403, 'location.invisible', `It's not allowed to ${VERB.replace} locations if locations are invisible.`));
    if (model.status !== 'active' && model.status !== 'queued') return refused(conflict('replace'));
    const list = Array.isArray(value) ? (value as unknown[]) : null;
    let fresh = new Map<string, unknown>();
    if (known && list) {
      const data = validationData(model, list);
      if (!(data instanceof Map)) return fails(data);
      fresh = data;
      const wanted = list.map((l) => location(l));
      if (model.locations !== null) {
        const urls = (ls: readonly ImageLocation[]) => ls.map((l) => String(l.url)).sort();
        if (urls(wanted).join('\n') !== urls(model.locations).join('\n')) {
          // Glance's 400 `Original locations is not empty: [...]` quotes the ids its database gives locations.
          if (model.locations.length > 0) return fails(null);
          for (const loc of wanted) {
            if (!storeTakesMetadata(loc.metadata)) return fails(metadataRefused());
            if (wanted.filter((other) => sameLocation(other, loc)).length > 1) return fails(duplicate(loc));
          }
        }
      }
      if (model.status === 'queued') {
        const missing = formatsMissing(model);
        if (missing) return fails(missing);
      }
      model.locations = wanted;
    }
    for (const [k, v] of fresh) model.attributes.set(k, v);
    count = list ? list.length : null;
    if (model.status === 'queued') model.status = 'active';
    return APPLIED;
  };

  /** `_do_add` of `/locations/<position>` and `_do_add_locations`. */
  const add = (token: string | undefined, value: unknown): Step => {
    if (!policy.showMultipleLocations) return refused(glanceError(403, 'location.invisible', `It's not allowed to ${VERB.add} locations if locations are invisible.`));
    if (model.status !== 'active' && model.status !== 'queued') return refused(conflict('add'));
    let fresh = new Map<string, unknown>();
    if (known) {
      const data = validationData(model, [value]);
      if (!(data instanceof Map)) return fails(data);
      fresh = data;
    }
    const pos = position(token, count ?? 0, true);
    if (typeof pos !== 'number') return refused(pos ?? glanceError(400, 'location.position', 'Invalid position for adding a location.'));
    if (insertOverflows(token)) return fails(glanceFails(`a location cannot be inserted at position ${String(token)}`));
    if (known) {
      const loc = location(value);
      if (!storeTakesMetadata(loc.metadata)) return fails(metadataRefused());
      if (model.locations !== null && model.locations.some((other) => sameLocation(other, loc))) return fails(duplicate(loc));
      if (model.status === 'queued') {
        const missing = formatsMissing(model);
        if (missing) return fails(missing);
      }
      if (model.locations !== null) model.locations.splice(Math.min(pos, model.locations.length), 0, loc);
    }
    for (const [k, v] of fresh) model.attributes.set(k, v);
    if (count !== null) count += 1;
    if (model.status === 'queued') model.status = 'active';
    return APPLIED;
  };

  /** `_do_remove` of `/locations/<position>` and `_do_remove_locations`. */
  const remove = (token: string | undefined): Step => {
    if (!policy.showMultipleLocations) return refused(glanceError(403, 'location.invisible', `It's not allowed to ${VERB.remove} locations if locations are invisible.`));
    if (model.status !== 'active') return refused(conflict('remove'));
    if (count === null) return APPLIED;
    if (count === 1) return refused(glanceError(403, 'location.last', 'Cannot remove last location in the image.', { afterStockSentence: true }));
    const pos = position(token, count, false);
    if (typeof pos !== 'number') return refused(pos ?? glanceError(400, 'location.position', 'Invalid position for removing a location.'));
    model.locations?.splice(pos, 1);
    count -= 1;
    return APPLIED;
  };

  /** The first op at which Glance fails for a reason of its own, with its answer. */
  let failed: { error: GlanceError | null } | null = null;
  for (const change of ops) {
    const root = change.path[0] ?? '';
    let step: Step;
    if (root !== 'locations') {
      if (!known) continue;
      const error = applyPropertyOp(model, change.op, root, change.value, draft);
      step = error ? fails(error) : APPLIED;
    } else if (change.op === 'replace') {
      step = replace(change.value);
    } else if (change.op === 'add') {
      step = add(change.path[1], change.value);
    } else {
      step = remove(change.path[1]);
    }
    if (step.kind === 'refused') {
      if (failed === null) return step.error;
      if (failed.error !== null) return failed.error;
      // Glance's answer cannot be written: refuse what must be refused, leave the rest to the service.
      return step.error.type === 'location.conflict' ? step.error : null;
    }
    // A failed op changes nothing; the later ops are still judged, against the image without it.
    if (step.kind === 'fails' && failed === null) failed = { error: step.error };
  }
  return null;
}

/** {@link locationPosition}, with the 400 it throws where Glance's `int()` raises returned instead. */
function position(token: string | undefined, count: number, forAdd: boolean): number | GlanceError | null {
  try {
    return locationPosition(token, count, forAdd);
  } catch (err) {
    return err as GlanceError;
  }
}

/** A location value as the image will hold it. */
function location(value: unknown): ImageLocation {
  const v = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  return { url: v['url'], metadata: v['metadata'] };
}

/** `_count_duplicated_locations`: the same URL and equal metadata. */
function sameLocation(a: ImageLocation, b: ImageLocation): boolean {
  return a.url === b.url && pyEqualJs(a.metadata, b.metadata);
}

function duplicate(loc: ImageLocation): GlanceError {
  return glanceError(400, 'location.duplicate', `The location ${String(loc.url)} already exists`);
}

/** glance_store refuses metadata holding other values than str, list and dict, and Glance answers a bare 500. */
function metadataRefused(): GlanceError {
  return glanceFails("a location's metadata holds a value that is not a string, a list or an object, which Glance's store refuses");
}
