/**
 * The image format lists (`ploop` among the disk formats by default) enforced in front of any image
 * service: `POST /v2/images` and a PATCH that sets `/disk_format` or `/container_format` to a value
 * outside the lists get Glance's 400. The body reaches the next handler byte for byte.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { inspectBody } from '../http/body';
import { readRequest } from '../request/read';
import { parseImagePatch, patchDraft } from '../locations/patch';
import { checkOptions, option, type OptionChecks } from '../options';
import { CONTAINER_FORMATS, DISK_FORMATS } from './formats';
import { formatAllowed, formatError, type FormatField } from './validate';

/** A format list: the whole list, or values to add to and remove from Glance's defaults. */
export type FormatListOption = readonly string[] | { readonly add?: readonly string[]; readonly remove?: readonly string[] };

export interface ImageFormatsOptions {
  /** Default: Glance's `ami, ari, aki, vhd, vhdx, vmdk, raw, qcow2, vdi, iso, ploop`. */
  readonly diskFormats?: FormatListOption;
  /** Default: Glance's `ami, ari, aki, bare, ovf, ova, docker, compressed`. */
  readonly containerFormats?: FormatListOption;
  /** Largest body inspected, in bytes; larger ones are left to the image service. Default 1 MiB. */
  readonly limit?: number;
}

const OPTIONS: OptionChecks<ImageFormatsOptions> = {
  diskFormats: option.formatList,
  containerFormats: option.formatList,
  limit: option.integer(1, Number.MAX_SAFE_INTEGER, 'bytes'),
};

/**
 * Resolve a list option against its default. `factory`, whose option `name` it is, is named by the
 * TypeError for a value that is not a format list (which its own options check has refused first).
 */
export function resolveFormats(value: FormatListOption | undefined, defaults: readonly string[], name: string, factory = 'imageFormats'): readonly string[] {
  if (value === undefined) return defaults;
  checkOptions(factory, { [name]: value }, { [name]: option.formatList });
  if (Array.isArray(value)) return Object.freeze([...new Set(value)]);
  const { add = [], remove = [] } = value as { add?: readonly string[]; remove?: readonly string[] };
  const removed = new Set(remove);
  return Object.freeze([...new Set([...defaults, ...add])].filter((v) => !removed.has(v)));
}

/** Create the format guard. Mount it in front of the image API, before any body parser. */
export function imageFormats(options: ImageFormatsOptions = {}) {
  checkOptions('imageFormats', options, OPTIONS);
  const lists: Readonly<Record<FormatField, readonly string[]>> = {
    disk_format: resolveFormats(options.diskFormats, DISK_FORMATS, 'diskFormats'),
    container_format: resolveFormats(options.containerFormats, CONTAINER_FORMATS, 'containerFormats'),
  };
  const limit = options.limit ?? 1024 * 1024;

  /** The refusal for these (field, value) pairs, in order, or null. */
  const check = (values: [string, unknown][]) => {
    for (const [field, value] of values) {
      if ((field === 'disk_format' || field === 'container_format') && !formatAllowed(value, lists[field])) {
        return formatError(field, value, lists[field]);
      }
    }
    return null;
  };

  async function judge(req: IncomingMessage): Promise<void> {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return; // not ours to judge: the service answers
    const body = await inspectBody(req, limit);
    if (readRequest(req).method === 'POST') {
      let doc: unknown;
      try {
        doc = JSON.parse(body.toString('utf8'));
      } catch {
        return; // malformed: the image service gives its own answer
      }
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return;
      const refusal = check(Object.entries(doc));
      if (refusal) throw refusal;
      return;
    }
    let ops;
    try {
      ops = parseImagePatch(body, readRequest(req).mediaTypeAsSent);
    } catch {
      return; // the location guard or the image service answers a malformed patch
    }
    const refusal = check(ops.filter((o) => o.op !== 'remove' && o.path.length === 1).map((o) => [o.path[0] as string, o.value]));
    if (refusal) throw refusal;
  }

  return function imageFormats(req: IncomingMessage, _res: ServerResponse, next: (err?: unknown) => void): void {
    const reading = readRequest(req);
    // Media types compared exactly, as webob does: Glance answers 415 to any other spelling.
    const create = reading.method === 'POST' && reading.route === 'images' && reading.mediaTypeAsSent === 'application/json';
    const patch = reading.method === 'PATCH' && reading.route === 'image' && patchDraft(reading.mediaTypeAsSent) !== undefined;
    if (!create && !patch) {
      next();
      return;
    }
    judge(req).then(() => next(), next);
  };
}
