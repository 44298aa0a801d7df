/**
 * The check's own images: named `glance-edge-check-<run>-<role>`, remembered from the moment
 * their create is sent, deleted at the end (and on SIGINT/SIGTERM). `--cleanup` finds those a
 * killed run left behind by that name, and deletes nothing else.
 */
import { randomBytes } from 'node:crypto';
import type { ServiceClient } from './client';
import { json, statusAndText, type Answer } from './expect';

export const NAME_PREFIX = 'glance-edge-check-';
/** Exactly the names the check gives its images. */
export const CHECK_NAME = /^glance-edge-check-[0-9a-f]{8}-(data|locations|ploop)$/;

export type Role = 'data' | 'locations' | 'ploop';

/** A new run's name: 8 hex digits. */
export function newRun(): string {
  return randomBytes(4).toString('hex');
}

export class CheckImages {
  private readonly created: string[] = [];
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;
  private deleting: Promise<{ deleted: string[]; failed: string[] }> | undefined;

  constructor(
    private readonly client: ServiceClient,
    readonly run: string,
  ) {}

  name(role: Role): string {
    return `${NAME_PREFIX}${this.run}-${role}`;
  }

  /** Create an image of `role`; its id is remembered as soon as the service gives it. */
  async create(role: Role, fields: Readonly<Record<string, unknown>>): Promise<{ answer: Answer; id: string | undefined }> {
    if (this.closed) throw new Error('the check is stopping: no image is created any more');
    const sent = this.client.request('POST', '/v2/images', {
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: this.name(role), ...fields }),
    });
    this.pending.add(sent);
    try {
      const answer = await sent;
      const doc = json(answer) as { id?: unknown } | undefined;
      const id = answer.status === 201 && typeof doc?.id === 'string' ? doc.id : undefined;
      if (id !== undefined) this.created.push(id);
      return { answer, id };
    } finally {
      this.pending.delete(sent);
    }
  }

  ids(): readonly string[] {
    return this.created;
  }

  /** Delete every image of the run, once the creates in flight have been answered; none is created after. */
  deleteAll(): Promise<{ deleted: string[]; failed: string[] }> {
    this.closed = true;
    this.deleting ??= Promise.allSettled([...this.pending]).then(() => deleteImages(this.client, [...this.created]));
    return this.deleting;
  }
}

/** Delete images by id: gone already (404) counts as deleted. `failed` holds `id: why`. */
export async function deleteImages(client: ServiceClient, ids: readonly string[]): Promise<{ deleted: string[]; failed: string[] }> {
  const deleted: string[] = [];
  const failed: string[] = [];
  for (const id of ids) {
    try {
      const answer = await client.request('DELETE', `/v2/images/${encodeURIComponent(id)}`);
      if (answer.status === 204 || answer.status === 200 || answer.status === 404) deleted.push(id);
      else failed.push(`${id}: ${statusAndText(answer)}`);
    } catch (err) {
      failed.push(`${id}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { deleted, failed };
}

/** Every image the identity can list whose name is one the check gives, page by page. */
export async function leftBehind(client: ServiceClient): Promise<{ id: string; name: string }[]> {
  const found: { id: string; name: string }[] = [];
  let next: string | undefined = '/v2/images?limit=1000';
  for (let pages = 0; next !== undefined && pages < 10_000; pages++) {
    const answer = await client.request('GET', next);
    if (answer.status !== 200) throw new Error(`GET ${next} answered ${statusAndText(answer)}`);
    const doc = json(answer) as { images?: unknown; next?: unknown } | undefined;
    if (!Array.isArray(doc?.images)) throw new Error(`GET ${next} did not answer a list of images`);
    for (const image of doc.images as { id?: unknown; name?: unknown }[]) {
      if (typeof image.id === 'string' && typeof image.name === 'string' && CHECK_NAME.test(image.name)) found.push({ id: image.id, name: image.name });
    }
    next = typeof doc.next === 'string' && doc.images.length > 0 ? doc.next : undefined;
  }
  return found;
}
