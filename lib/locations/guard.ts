/**
 * The location guard middleware: refuses location changes that Glance (since Ocata) refuses, in
 * front of any image service, and closes the upload race within the process.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { inspectBody } from '../http/body';
import { mediaType, pathOf } from '../http/media';
import { toImageLookup, type ImageLookup } from '../images/lookup';
import { ImageActivity, type Release } from './activity';
import type { GlanceError } from '../errors';
import { decideLocationPatch, type LocationConflict } from './decide';
import { locationOps, parseImagePatch, patchDraft } from './patch';

export interface LocationGuardOptions {
  /** How to ask the backing service about an image: a lookup function, or the URL of a Glance v2 API. */
  readonly lookup: string | ImageLookup;
  /** Glance's `show_multiple_locations`. Default true. */
  readonly showMultipleLocations?: boolean;
  /** Largest patch body inspected, in bytes. Default 1 MiB. */
  readonly limit?: number;
  /** Share upload tracking between guards of one process (e.g. several mounts). Default: the guard's own. */
  readonly activity?: ImageActivity;
  /** Told of every location change the guard refuses (not of malformed patches), e.g. to log or count it. */
  readonly onRefused?: (refusal: LocationRefusal) => void;
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

const OPTIONS = new Set(['lookup', 'showMultipleLocations', 'limit', 'activity', 'onRefused']);

/** `/v2/images/{id}` and the data routes under it, wherever the API is mounted. */
const IMAGE_PATH = /\/v2\/images\/([^/]+)\/?$/;
const UPLOAD_PATH = /\/v2\/images\/([^/]+)\/(file|stage|import)\/?$/;

export type NextFunction = (err?: unknown) => void;

/** Run `fn` once the answer to `res` is over, whether it finished or the connection closed. */
export function whenAnswered(res: ServerResponse, fn: () => void): void {
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
    fn();
  };
  res.on('finish', done);
  res.on('close', done);
}

function imageId(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * Create the location guard. Mount it in front of the image API (before any body parser); send
 * its errors to {@link glanceErrorHandler} or your own.
 */
export function locationGuard(options: LocationGuardOptions) {
  if (typeof options !== 'object' || options === null) throw new TypeError('locationGuard: options must be an object');
  for (const key of Object.keys(options)) {
    if (!OPTIONS.has(key)) throw new TypeError(`locationGuard: unknown option '${key}'`);
  }
  const lookup = toImageLookup(options.lookup, 'locationGuard');
  const showMultipleLocations = options.showMultipleLocations ?? true;
  if (typeof showMultipleLocations !== 'boolean') throw new TypeError("locationGuard: option 'showMultipleLocations' must be a boolean");
  const limit = options.limit ?? 1024 * 1024;
  if (!Number.isInteger(limit) || limit <= 0) throw new TypeError("locationGuard: option 'limit' must be a positive integer of bytes");
  const activity = options.activity ?? new ImageActivity();
  if (!(activity instanceof ImageActivity)) throw new TypeError("locationGuard: option 'activity' must be an ImageActivity");
  const policy = { showMultipleLocations };
  const onRefused = options.onRefused;
  if (onRefused !== undefined && typeof onRefused !== 'function') throw new TypeError("locationGuard: option 'onRefused' must be a function");
  const refuse = (req: IncomingMessage, imageId: string, error: GlanceError): GlanceError => {
    if (onRefused) {
      const conflict = error as Partial<LocationConflict>;
      onRefused({ imageId, error, req, ...(conflict.op ? { op: conflict.op, imageStatus: conflict.imageStatus as string } : {}) });
    }
    return error;
  };

  async function judge(req: IncomingMessage, res: ServerResponse, id: string, type: string): Promise<void> {
    const ops = locationOps(parseImagePatch(await inspectBody(req, limit), type));
    if (ops.length === 0) return;
    const turn = await activity.beginChange(id);
    if (turn === 'uploading') {
      const refusal = decideLocationPatch(ops, { status: 'saving', locations: null }, policy);
      throw refusal ? refuse(req, id, refusal) : new Error('a location change during an upload must be refused');
    }
    const release: Release = turn;
    whenAnswered(res, release);
    const image = await lookup(id, req);
    if (image === null) return; // not visible to this caller: the backing service answers
    const refusal = decideLocationPatch(ops, image, policy);
    if (refusal) throw refuse(req, id, refusal);
  }

  return function locationGuard(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    const path = pathOf(req);
    if (req.method === 'PATCH') {
      const match = IMAGE_PATH.exec(path);
      const type = mediaType(req);
      if (!match || patchDraft(type) === undefined) {
        next();
        return;
      }
      judge(req, res, imageId(match[1] as string), type).then(() => next(), next);
      return;
    }
    if (req.method === 'PUT' || req.method === 'POST') {
      const match = UPLOAD_PATH.exec(path);
      const kind = match?.[2];
      if (match && (kind === 'import' ? req.method === 'POST' : req.method === 'PUT')) {
        activity.beginUpload(imageId(match[1] as string)).then((release) => {
          whenAnswered(res, release);
          next();
        }, next);
        return;
      }
    }
    next();
  };
}
