/**
 * The location guard middleware: refuses location changes that Glance (since Ocata) refuses, in
 * front of any image service, and closes the upload race within the process.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { edgeData, inspectBody } from '../http/body';
import { toImageLookup, type ImageFacts, type ImageLookup } from '../images/lookup';
import { readRequest, type RequestReading } from '../request/read';
import { checkOptions, option, type OptionChecks } from '../options';
import { isStore, MemoryStore, type Lease, type LeaseKind, type Store } from './store';
import { glanceError, type GlanceError } from '../errors';
import { decideLocationPatch, type LocationConflict, type LocationImage } from './decide';
import { readPythonJson, type PyValue } from '../http/json';
import { PATCH_MEDIA_TYPES, type PatchOp } from './patch';
import { pyStrip, toJsValue } from './python';
import { imageValueCheck, readJudgedPatch, readLocationPatch, type ImageValueCheck } from './schema';
import { resolveFormats, type FormatListOption } from '../defaults/middleware';
import { CONTAINER_FORMATS, DISK_FORMATS } from '../defaults/formats';

export interface LocationGuardOptions {
  /** How to ask the backing service about an image: a lookup function, or the URL of a Glance v2 API. */
  readonly lookup: string | ImageLookup;
  /** Glance's `show_multiple_locations`. Default true. */
  readonly showMultipleLocations?: boolean;
  /** Largest patch body inspected, in bytes. Default 1 MiB. */
  readonly limit?: number;
  /**
   * The race registry: which images have an upload in flight or a location change being judged.
   * Default: a {@link MemoryStore} of the guard's own. Share one between guards of one process, or
   * a shared store between processes.
   */
  readonly store?: Store;
  /** Told of every location change the guard refuses (not of malformed patches), e.g. to log or count it. */
  readonly onRefused?: (refusal: LocationRefusal) => void;
  /**
   * The router behind the guard matches paths with regard to case (Express's `caseSensitive`):
   * spellings only a case-blind router reads as an image (`/V2/images/{id}`) are then left to it.
   * Default false, as Express routes.
   */
  readonly caseSensitive?: boolean;
  /** The router behind the guard is strict about a trailing slash (Express's `strict`). Default false. */
  readonly strict?: boolean;
  /**
   * Which PATCH bodies are patches: `'json'` (the default) also judges a patch sent as
   * `application/json` or `application/json-patch+json`, which a service other than Glance may read
   * as one; `'glance'` only Glance's two patch media types, for a service that answers 415 to others
   * as Glance does.
   */
  readonly patchMediaTypes?: 'glance' | 'json';
  /**
   * How long a lease in the race registry lasts unless renewed, in ms; a held lease is renewed every
   * third of it, so a renewal may fail twice before the lease runs out. Default 30000: a holder that
   * dies (a sidecar killed mid-upload) frees its image within 30 s.
   */
  readonly leaseTtl?: number;
  /**
   * The disk formats of the Glance in question (its `disk_formats`), a list or changes to Glance's
   * defaults (`{ add, remove }`): Glance checks a patch's `disk_format` against them before it
   * judges its location ops, and so does the guard. Default Glance's.
   */
  readonly diskFormats?: FormatListOption;
  /** Its `container_formats`, likewise. Default Glance's. */
  readonly containerFormats?: FormatListOption;
}

/** A location change the guard refused. */
export interface LocationRefusal {
  readonly imageId: string;
  /** The answer: a 409 (then `op` and `imageStatus` are set), or a 403 or 400 of the decision. */
  readonly error: GlanceError;
  /** The op refused for the image's status, on a 409. */
  readonly op?: string;
  /** The image's status, on a 409 (`saving` while an upload runs through the suite). */
  readonly imageStatus?: string;
  readonly req: IncomingMessage;
}

const GUARD_OPTIONS: OptionChecks<LocationGuardOptions> = {
  lookup: option.object('a function (id, req) => Promise<ImageFacts | null> or the URL of a Glance v2 API', (v) => typeof v === 'function' || typeof v === 'string'),
  showMultipleLocations: option.boolean,
  limit: option.integer(1, Number.MAX_SAFE_INTEGER, 'bytes'),
  store: option.object('a Store (acquire, renew, release, local)', isStore),
  onRefused: option.function('(refusal) => void'),
  caseSensitive: option.boolean,
  strict: option.boolean,
  patchMediaTypes: option.oneOf('json', 'glance'),
  leaseTtl: option.integer(300, 86_400_000, 'milliseconds'),
  diskFormats: option.formatList,
  containerFormats: option.formatList,
};

/** Whether a (lower-cased) media type says its body is JSON, or says nothing. */
function isJsonType(type: string): boolean {
  return type === '' || type === 'application/json' || type.endsWith('+json') || type.endsWith('-json-patch');
}

export type NextFunction = (err?: unknown) => void;

/**
 * Run `fn` once the answer to `req` is over, whether it finished or the connection closed. (An
 * answer queued behind one that closes the connection emits neither 'finish' nor 'close': its
 * socket's 'close' comes all the same.)
 */
export function whenAnswered(req: IncomingMessage, res: ServerResponse, fn: () => void): void {
  if (res.writableFinished || res.destroyed) {
    fn();
    return;
  }
  let called = false;
  const done = () => {
    if (called) return;
    called = true;
    res.removeListener('finish', done);
    res.removeListener('close', done);
    socket?.removeListener('close', done);
    // A forwarder's exchange with the service may outlast the answer (a client gone mid-upload).
    const upstream = edgeData(req).upstream;
    if (upstream) void upstream.then(fn);
    else fn();
  };
  const socket = req.socket as IncomingMessage['socket'] | null;
  if (socket?.destroyed) {
    done();
    return;
  }
  res.on('finish', done);
  res.on('close', done);
  socket?.on('close', done);
}

/** The key of an image in the race registry: its id as the service names it, as MySQL compares it. */
function registryKey(image: ImageFacts): string {
  return image.id.toLowerCase().replace(/ +$/, '');
}

/** The guard's options, read once: what every request is judged with. */
interface GuardConfig {
  readonly lookup: ImageLookup;
  readonly limit: number;
  readonly store: Store;
  readonly policy: { readonly showMultipleLocations: boolean };
  readonly onRefused: ((refusal: LocationRefusal) => void) | undefined;
  readonly caseSensitive: boolean;
  readonly strict: boolean;
  /** PATCH bodies in other media types than Glance's are judged too (`patchMediaTypes: 'json'`). */
  readonly looseTypes: boolean;
  readonly leaseTtl: number;
  /** Glance's check of a patch's values against its image schema (with the configured formats). */
  readonly checkValue: ImageValueCheck;
}

/** The options checked, with their defaults. */
function guardConfig(options: LocationGuardOptions): GuardConfig {
  checkOptions('locationGuard', options, GUARD_OPTIONS, ['lookup']);
  const lookup = toImageLookup(options.lookup, 'locationGuard');
  const showMultipleLocations = options.showMultipleLocations ?? true;
  return {
    lookup,
    limit: options.limit ?? 1024 * 1024,
    store: options.store ?? new MemoryStore(),
    policy: { showMultipleLocations },
    onRefused: options.onRefused,
    caseSensitive: options.caseSensitive ?? false,
    strict: options.strict ?? false,
    looseTypes: (options.patchMediaTypes ?? 'json') === 'json',
    leaseTtl: options.leaseTtl ?? LEASE_MS,
    checkValue: imageValueCheck({
      diskFormats: resolveFormats(options.diskFormats, DISK_FORMATS, 'diskFormats', 'locationGuard'),
      containerFormats: resolveFormats(options.containerFormats, CONTAINER_FORMATS, 'containerFormats', 'locationGuard'),
    }),
  };
}

/**
 * Create the location guard. Mount it in front of the image API (before any body parser); send
 * its errors to {@link glanceErrorHandler} or your own. It reads each request once, through
 * {@link readRequest}, and leaves `req.url` as it came: the next handler reads the request the
 * guard judged.
 */
export function locationGuard(options: LocationGuardOptions) {
  const config = guardConfig(options);
  const { caseSensitive, strict } = config;

  return function locationGuard(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    const reading = readRequest(req);
    // Whatever route it seems to name: an ambiguous spelling may name an image to another reader.
    if (reading.ambiguous !== null && reading.mayChange) {
      next(ambiguousRequest(reading.ambiguous));
      return;
    }
    const id = reading.imageId;
    if (id === null || (caseSensitive && reading.caseFolded) || (strict && reading.trailingSlash)) {
      next();
      return;
    }
    const work = guardWork(config, req, res, reading, id);
    if (work === null) next();
    else work.then(() => next(), next);
  };
}

/** The 400 for a request that could change something and that the services may read differently. */
function ambiguousRequest(why: string): GlanceError {
  return glanceError(400, 'request.ambiguous', `This request cannot be read unambiguously: ${why}.`, { headers: { Connection: 'close' } });
}

/**
 * What the guard does with a request that names image `id`: judge a location change (a PATCH of
 * the record, an added location, data removed from a store), register an upload (data, stage,
 * import), or nothing (null).
 */
function guardWork(config: GuardConfig, req: IncomingMessage, res: ServerResponse, reading: RequestReading, id: string): Promise<void> | null {
  const { method, route } = reading;
  if (route === 'image' && method === 'PATCH') {
    // Glance compares its media types exactly; services that read other types, without regard to
    // case, and a body parser may read any type (or none) as JSON.
    const type = config.looseTypes ? reading.mediaType : reading.mediaTypeAsSent;
    const draftType = Object.keys(PATCH_MEDIA_TYPES).find((t) => t === type);
    if (draftType !== undefined) return judgePatch(config, req, res, id, draftType);
    else if (config.looseTypes) return judgeLoosePatch(config, req, res, id, isJsonType(type));
    return null;
  }
  if (route === 'image-locations' && method === 'POST') {
    // Glance 2024.2's call adds a location: Ocata's rule for an add, judged once its body is read
    // (a body that trickles in holds no turn), and the race.
    return inspectBody(req, config.limit).then(() => judgeChange(config, req, res, id, (image) => (image.status === 'active' || image.status === 'queued' ? null : addConflict(image.status))));
  }
  if (route === 'image-store' && method === 'DELETE') {
    // Removing the image's data from one store removes a location: Glance (since Ussuri) allows it on active images only.
    return inspectBody(req, config.limit).then(() => judgeChange(config, req, res, id, (image) => (image.status === 'active' ? null : storeConflict())));
  }
  if ((route === 'image-file' || route === 'image-stage') && method === 'PUT') return registerUpload(config, req, res, id);
  if (route === 'image-import' && method === 'POST') return registerUpload(config, req, res, id);
  return null;
}

/** `error`, told to the `onRefused` hook (with the op and image status of a 409) before it is thrown. */
function refuse(config: GuardConfig, req: IncomingMessage, imageId: string, error: GlanceError): GlanceError {
  const { onRefused } = config;
  if (onRefused) {
    const conflict = error as Partial<LocationConflict>;
    onRefused({ imageId, error, req, ...(conflict.op ? { op: conflict.op, imageStatus: conflict.imageStatus as string } : {}) });
  }
  return error;
}

/**
 * A PATCH of the image record: judged when it touches `/locations`, its values first checked as
 * Glance's deserializer checks them (a value Glance's image schema refuses is refused before any
 * status is asked).
 */
async function judgePatch(config: GuardConfig, req: IncomingMessage, res: ServerResponse, id: string, type: string): Promise<void> {
  const body = await inspectBody(req, config.limit);
  const ops = readJudgedPatch(body, type, config.checkValue);
  if (ops.length === 0) return;
  const draft = PATCH_MEDIA_TYPES[type] ?? 10;
  await judgeChange(config, req, res, id, (image) => decideLocationPatch(ops, image, config.policy, draft));
}

/**
 * A PATCH of the image record in another media type than Glance's, which a service other than
 * Glance may read as JSON: judged by {@link looseLocationOps}; a body it cannot read is refused
 * when the media type says JSON (or says nothing), and left to the service otherwise.
 */
async function judgeLoosePatch(config: GuardConfig, req: IncomingMessage, res: ServerResponse, id: string, json: boolean): Promise<void> {
  const body = await inspectBody(req, config.limit);
  const ops = looseLocationOps(body, json, config.checkValue);
  if (ops.length === 0) return;
  await judgeChange(config, req, res, id, (image) => decideLocationPatch(ops, image, config.policy));
}

/**
 * A location change of image `id`: looked up with the caller's identity (not visible: the
 * service answers, and nothing is registered), refused at once while an upload of the image runs
 * through the suite, otherwise its turn taken and the image asked again, so that the status it is
 * judged on is read while no upload of the image can start. The turn lasts until it is answered.
 */
async function judgeChange(config: GuardConfig, req: IncomingMessage, res: ServerResponse, id: string, decide: (image: LocationImage) => GlanceError | null): Promise<void> {
  const { lookup } = config;
  const seen = await lookup(id, req);
  if (seen === null) return;
  const turn = await lease(config, req, res, registryKey(seen), 'change');
  if (turn === 'uploading') throw refuse(config, req, id, decide({ status: 'saving', locations: null }) ?? savingConflict());
  const image = await lookup(id, req);
  if (image === null) return;
  const refusal = decide(image);
  if (refusal) throw refuse(config, req, id, refusal);
}

/** An upload of image data: registered under the image's key once the caller may see it. */
async function registerUpload(config: GuardConfig, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  const { lookup } = config;
  const image = await lookup(id, req);
  if (image === null) return;
  await lease(config, req, res, registryKey(image), 'upload');
}

/**
 * Take a lease of `kind` on `key` for the request, held (renewed every third of its time to live)
 * until its answer is over, then released. A store that fails refuses the request (503); a lease
 * that can no longer be renewed cuts the request: it is not left unguarded.
 */
async function lease({ store, leaseTtl }: GuardConfig, req: IncomingMessage, res: ServerResponse, key: string, kind: LeaseKind): Promise<Lease | 'uploading'> {
  let held: Lease | 'uploading';
  try {
    held = await store.acquire(key, kind, leaseTtl);
  } catch {
    throw registryDown();
  }
  if (held === 'uploading') return held;
  const taken = held;
  const renewal = setInterval(() => {
    store.renew(taken, leaseTtl).then(
      (renewed) => {
        if (!renewed) cut();
      },
      () => cut(),
    );
  }, Math.floor(leaseTtl / 3)).unref();
  const cut = () => {
    clearInterval(renewal);
    req.destroy();
    res.destroy();
  };
  whenAnswered(req, res, () => {
    clearInterval(renewal);
    store.release(taken).catch(() => undefined); // it runs out after its time to live
  });
  return taken;
}

/**
 * The location ops of a PATCH body in another media type than Glance's, which a service other than
 * Glance may read as JSON (a body parser may strip a byte-order mark first): a JSON patch (an
 * array, or one op object) read as Glance reads one, in either draft's syntax; a JSON object (a
 * merge patch) whose `locations` member is a replace of `/locations`; anything else has none. A
 * body that is not JSON as Python reads it is refused (400) when `json` (its media type says JSON,
 * or nothing) or when JavaScript's JSON reads it (invalid UTF-8, nesting past Python's limit): a
 * body parser behind may read what the guard cannot judge. Otherwise it has none.
 */
function looseLocationOps(body: Buffer, json: boolean, checkValue: ImageValueCheck): PatchOp[] {
  const text = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? body.subarray(3) : body;
  if (text.length === 0) return [];
  let doc: PyValue;
  try {
    doc = readPythonJson(text);
  } catch {
    if (json || readableByJavaScript(text)) throw glanceError(400, 'patch.invalid', 'Malformed JSON in request body.');
    return [];
  }
  if (doc instanceof Map && !OPERATION_KEYS.some((key) => doc.has(key))) {
    for (const [key, value] of doc) {
      if (pyStrip(key).toLowerCase() !== 'locations') continue;
      const refusal = checkValue('replace', ['locations'], value);
      if (refusal) throw refusal;
      return [{ op: 'replace', path: ['locations'], value: toJsValue(value) }];
    }
    return [];
  }
  if (!Array.isArray(doc) && !(doc instanceof Map)) return [];
  // One op object is read as a patch of one op, as a lenient handler may read it.
  const patch = Array.isArray(doc) ? text : Buffer.concat([Buffer.from('['), text, Buffer.from(']')]);
  // Either draft's syntax: a service that reads JSON patches may read either.
  try {
    return readLocationPatch(patch, PATCH_TYPE_D10, checkValue);
  } catch (err) {
    try {
      return readLocationPatch(patch, PATCH_TYPE_D4, checkValue);
    } catch {
      throw err;
    }
  }
}

/** Members that make a JSON object an op of a patch (either draft) rather than a merge patch. */
const OPERATION_KEYS = ['op', 'path', 'add', 'remove', 'replace'];

/** Whether JavaScript's JSON reads `text` (as a body parser would, invalid UTF-8 replaced). */
function readableByJavaScript(text: Buffer): boolean {
  try {
    JSON.parse(text.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

/** A lease's time to live by default (renewed every third of it). */
const LEASE_MS = 30_000;

/** The answer when the race registry cannot be asked: the change or upload is not let through unguarded. */
function registryDown(): GlanceError {
  return glanceError(503, 'registry.unavailable', 'The registry of uploads in flight cannot be reached, so the request cannot be let through safely.');
}

/** Glance's 409 for deleting an image's data from a store while it is not active. */
function storeConflict(): GlanceError {
  return glanceError(409, 'location.conflict', "It's not allowed to remove image data from store if image status is not 'active'");
}

const PATCH_TYPE_D10 = 'application/openstack-images-v2.1-json-patch';
const PATCH_TYPE_D4 = 'application/openstack-images-v2.0-json-patch';

/** Glance's 409 for adding a location to an image in `status`. */
function addConflict(status: string): GlanceError {
  return Object.assign(glanceError(409, 'location.conflict', `It's not allowed to add locations if image status is ${status}.`), { op: 'add', imageStatus: status });
}

/** Glance's 409 for adding a location while image data is being written. */
function savingConflict(): GlanceError {
  return addConflict('saving');
}
