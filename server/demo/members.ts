/**
 * Image members (`/v2/images/{id}/members[/{member}]`), as Glance 25 serves them to an admin: every
 * caller of the demo is one (there is no Keystone), so the owner and member checks Glance makes
 * for other callers never refuse. Only a `shared` image has members; a member is `pending` until
 * its status is set. Members are kept in the image's record, die with the image and never touch
 * its `updated_at`; an image made `private` or `public` keeps them, unseen, until it is `shared`
 * again. One function per endpoint.
 */
import type { Request } from 'express';
import { glanceError } from '../../lib/errors';
import { imageOf, readJson, sendJson, type Handler, type ServiceContext } from './context';
import { timestamp, type ImageMember, type ImageRecord } from './store';

/** Glance's `image_member_quota` default. */
export const MEMBER_QUOTA = 128;

const MEMBER_PROPERTIES = {
  member_id: { type: 'string', description: 'An identifier for the image member (tenantId)' },
  image_id: {
    type: 'string',
    description: 'An identifier for the image',
    pattern: '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$',
  },
  created_at: { type: 'string', description: 'Date and time of image member creation' },
  updated_at: { type: 'string', description: 'Date and time of last modification of image member' },
  status: { type: 'string', description: 'The status of this image member', enum: ['pending', 'accepted', 'rejected'] },
  schema: { readOnly: true, type: 'string' },
};

/** `GET /v2/schemas/member`, as Glance serves it. */
export const MEMBER_SCHEMA = { name: 'member', properties: MEMBER_PROPERTIES };

/** `GET /v2/schemas/members`, as Glance serves it. */
export const MEMBERS_SCHEMA = {
  name: 'members',
  properties: { members: { type: 'array', items: MEMBER_SCHEMA }, schema: { type: 'string' } },
  links: [{ rel: 'describedby', href: '{schema}' }],
};

/** A member as Glance shows it. */
const memberView = (imageId: string, m: ImageMember) => ({
  member_id: m.member_id,
  image_id: imageId,
  status: m.status,
  created_at: m.created_at,
  updated_at: m.updated_at,
  schema: '/v2/schemas/member',
});

/** The image of the path, or Glance's 404 of the members controller. */
function imageFor(ctx: ServiceContext, req: Request<{ id: string }>): ImageRecord {
  const record = ctx.store.get(req.params.id);
  if (!record) throw glanceError(404, 'image.not_found', `Image ${req.params.id} not found.`);
  return record;
}

const isShared = (record: ImageRecord) => record.visibility === 'shared';
const membersOf = (record: ImageRecord): ImageMember[] => record.members ?? [];

/** The member `memberId` of `record`, or Glance's 404. */
function memberOf(record: ImageRecord, memberId: string): ImageMember {
  const member = membersOf(record).find((m) => String(m.member_id) === memberId);
  if (!member) throw glanceError(404, 'member.not_found', `${memberId} not found in the member list of the image ${record.id}.`);
  return member;
}

/** `record` with `members`, saved under the image's lock; the image's own `updated_at` stays. */
async function saveMembers(ctx: ServiceContext, id: string, change: (record: ImageRecord) => ImageMember[]): Promise<void> {
  await ctx.store.exclusive(id, async () => {
    const record = imageOf(ctx, id);
    await ctx.store.save({ ...record, members: change(record) });
  });
}

/** `GET /v2/images/{id}/members`: the members of a shared image. */
export function listMembers(ctx: ServiceContext): Handler {
  return (req, res) => {
    const record = imageFor(ctx, req);
    if (!isShared(record)) throw glanceError(403, 'member.forbidden', `Not allowed to list members for image ${record.id}: Only shared images have members.`);
    sendJson(res, 200, { members: membersOf(record).map((m) => memberView(record.id, m)), schema: '/v2/schemas/members' }, {}, false);
  };
}

/** `POST /v2/images/{id}/members` `{"member": ...}`: a new pending member of a shared image. */
export function addMember(ctx: ServiceContext): Handler {
  return async (req, res) => {
    const body = await readBody(req);
    if (Array.isArray(body)) throw glanceError(400, 'member.body', 'Expected a member in the form: {"member": "image_id"}');
    if (!Object.hasOwn(body, 'member')) throw glanceError(400, 'member.body', 'Member to be added not specified');
    const memberId = (body as Record<string, unknown>)['member'];
    if (isFalsy(memberId)) throw glanceError(400, 'member.body', "Member can't be empty");
    // Glance names the member and the image as the request spelt them.
    const id = req.params.id;
    const record = imageFor(ctx, req);
    if (!isShared(record)) throw glanceError(403, 'member.forbidden', `Not allowed to create members for image ${id}.`);
    let added: ImageMember | undefined;
    await saveMembers(ctx, record.id, (current) => {
      const members = membersOf(current);
      if (!isShared(current)) throw glanceError(403, 'member.forbidden', `Not allowed to create members for image ${id}.`);
      if (members.length + 1 > MEMBER_QUOTA) {
        const why = `The limit has been exceeded on the number of allowed image members for this image. Attempted: ${members.length + 1}, Maximum: ${MEMBER_QUOTA}`;
        throw glanceError(413, 'member.quota', `Image member limit exceeded for image ${id}: ${why}:`);
      }
      if (members.some((m) => String(m.member_id) === String(memberId))) throw glanceError(409, 'member.duplicate', `Member ${pyText(memberId)} is duplicated for image ${id}`);
      const now = timestamp();
      added = { member_id: memberId as ImageMember['member_id'], status: 'pending', created_at: now, updated_at: now };
      return [...members, added];
    });
    sendJson(res, 200, memberView(record.id, added as ImageMember), {}, false);
  };
}

/** `GET /v2/images/{id}/members/{member}`: one member (404 whenever Glance would refuse). */
export function showMember(ctx: ServiceContext): Handler {
  return (req, res) => {
    const record = imageFor(ctx, req);
    if (!isShared(record)) throw glanceError(404, 'member.forbidden', 'Only shared images have members.');
    sendJson(res, 200, memberView(record.id, memberOf(record, memberParam(req))), {}, false);
  };
}

/** `PUT /v2/images/{id}/members/{member}` `{"status": ...}`: the member's status. */
export function updateMember(ctx: ServiceContext): Handler {
  return async (req, res) => {
    const body = await readBody(req);
    if (Array.isArray(body)) throw glanceError(400, 'member.body', 'Expected a status in the form: {"status": "status"}');
    if (!Object.hasOwn(body, 'status')) throw glanceError(400, 'member.body', 'Status not specified');
    const status = (body as Record<string, unknown>)['status'];
    const id = req.params.id;
    const record = imageFor(ctx, req);
    const forbidden = () => glanceError(403, 'member.forbidden', `Not allowed to update members for image ${id}.`);
    if (!isShared(record)) throw forbidden();
    const memberId = memberParam(req);
    memberOf(record, memberId);
    if (status !== 'pending' && status !== 'accepted' && status !== 'rejected') {
      throw glanceError(400, 'member.status', 'Incorrect request: Status must be "pending", "accepted" or "rejected".');
    }
    let updated: ImageMember | undefined;
    await saveMembers(ctx, record.id, (current) => {
      if (!isShared(current)) throw forbidden();
      const member = memberOf(current, memberId);
      updated = { ...member, status, updated_at: timestamp() };
      return membersOf(current).map((m) => (m === member ? (updated as ImageMember) : m));
    });
    sendJson(res, 200, memberView(record.id, updated as ImageMember), {}, false);
  };
}

/** `DELETE /v2/images/{id}/members/{member}`: 204. */
export function deleteMember(ctx: ServiceContext): Handler {
  return async (req, res) => {
    const id = req.params.id;
    const record = imageFor(ctx, req);
    const forbidden = () => glanceError(403, 'member.forbidden', `Not allowed to delete members for image ${id}.`);
    if (!isShared(record)) throw forbidden();
    const memberId = memberParam(req);
    memberOf(record, memberId);
    await saveMembers(ctx, record.id, (current) => {
      if (!isShared(current)) throw forbidden();
      const member = memberOf(current, memberId);
      return membersOf(current).filter((m) => m !== member);
    });
    // Glance's own empty Response here: no Content-Type, unlike its other 204s.
    res.writeHead(204, { 'Content-Length': '0' }).end();
  };
}

/** A JSON body as Glance's deserializer takes it: an object or a list, anything else is 400. */
async function readBody(req: Request): Promise<Record<string, unknown> | unknown[]> {
  const body = await readJson(req);
  if (typeof body !== 'object' || body === null) throw glanceError(400, 'request.body_type', 'Unexpected body type. Expected list/dict.');
  return body as Record<string, unknown> | unknown[];
}

const memberParam = (req: Request) => String((req.params as Record<string, string>)['member'] ?? '');

/** Python's falsiness of a JSON value: `not member_id`. */
function isFalsy(v: unknown): boolean {
  if (v === null || v === false || v === 0 || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v as object).length === 0;
}

/** A member id as Python's `%s` writes it (ids are strings, but Glance takes any JSON value). */
const pyText = (v: unknown) => (typeof v === 'string' ? v : v === true ? 'True' : v === false ? 'False' : JSON.stringify(v));
