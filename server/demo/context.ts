/**
 * What the routes of the embedded image service share (service.ts builds it once): the store, the
 * format rules, the location client and the open image files; and the answers they all send.
 */
import { rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';
import { glanceError } from '../../lib/errors';
import { inspectBody } from '../../lib/http/body';
import { pythonJson } from '../../lib/http/json';
import type { FileCache } from '../../lib/ranges/file';
import type { ImageRules } from './images';
import { isResponse, type locationClient, type SelfAddress } from './location';
import { timestamp, type DiskImageStore, type ImageRecord } from './store';

export interface ServiceContext {
  readonly store: DiskImageStore;
  /** The format lists, of the schemas and of every image. */
  readonly rules: Omit<ImageRules, 'sizeAt'>;
  /** Most bytes of one image's data (Glance's `image_size_cap`). */
  readonly maxImageSize: number;
  /** Opens a location URL at an address the policy allows. */
  readonly openLocation: ReturnType<typeof locationClient>;
  /** Image files stay open between downloads; a file is forgotten when its data goes. */
  readonly files: FileCache;
}

/** A route's handler, for a path with an image `:id` or none. */
export type Handler = (req: Request<{ id: string }>, res: Response) => void | Promise<void>;

export const JSON_LIMIT = 1024 * 1024;

export function sendJson(res: ServerResponse, status: number, doc: unknown, headers: Record<string, string> = {}, ascii = true): void {
  const body = pythonJson(doc, ascii);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Glance's 204 (upload, stage, delete, deactivate, reactivate): webob's default content type rides on it. */
export function noContent(res: ServerResponse): void {
  res.writeHead(204, { 'Content-Type': 'text/html; charset=UTF-8', 'Content-Length': '0' }).end();
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = await inspectBody(req, JSON_LIMIT);
  if (body.length === 0) throw glanceError(400, 'request.empty', 'Body expected in request.');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw glanceError(400, 'request.malformed', 'Malformed JSON in request body.');
  }
}

/** The demo as the request reached it: a location must never lead back there. */
export const selfOf = (req: IncomingMessage): SelfAddress => ({ port: req.socket.localPort ?? 0 });

/** The image `id`, or Glance's 404. */
export function imageOf(ctx: ServiceContext, id: string): ImageRecord {
  const record = ctx.store.get(id);
  if (!record) throw glanceError(404, 'image.not_found', `No image found with ID ${id}`);
  return record;
}

/** `record` with `changes`, updated now. */
export const touch = (record: ImageRecord, changes: Partial<ImageRecord>): ImageRecord => ({ ...record, ...changes, updated_at: timestamp() });

/** Forget the image's open file and delete its data. */
export async function dropData(ctx: ServiceContext, id: string): Promise<void> {
  ctx.files.forget(ctx.store.blobPath(id));
  await rm(ctx.store.blobPath(id), { force: true });
}

/** The rules for one request: a location is sized as Glance's http store sizes it (HEAD, more than 0 bytes). */
export function rulesFor(ctx: ServiceContext, req: IncomingMessage): ImageRules {
  return {
    ...ctx.rules,
    locationId: () => ctx.store.nextLocationId(),
    sizeAt: async (url) => {
      const res = await ctx.openLocation(url, 'HEAD', selfOf(req));
      if (!isResponse(res)) return null;
      // A HEAD answer has no body, but only reading it to its end frees the connection.
      res.resume();
      const length = Number(res.headers['content-length']);
      return Number.isSafeInteger(length) && length > 0 ? length : null;
    },
  };
}
