/**
 * §1: the location guard, on the check's own images: whether locations are shown at all, the
 * changes the contract refuses (queued, saving, deactivated) and those it allows (queued, active).
 */
import type { PatchOp } from '../../../lib/locations/patch';
import { CHECK_DATA } from '../data-server';
import {
  expectedLocationAnswer,
  judgeAllowed,
  judgeRefusal,
  locationOp,
  locationsOf,
  patchBody,
  statusAndText,
  statusOf,
  type Answer,
} from '../expect';
import type { CheckImages } from '../images';
import { rowIds, type Judged } from '../rows';
import { group, imagePath, showImage, waitForStatus, type ProbeContext } from './context';

const V21 = 'application/openstack-images-v2.1-json-patch';
export const LOCATION_ROWS = rowIds('locations.');
const DEACTIVATED_ROWS = ['locations.remove.deactivated', 'locations.replace.deactivated', 'locations.add.deactivated'];
const ALLOWED_ROWS = ['locations.replace.queued', 'locations.add.active', 'locations.replace.active', 'locations.remove.active'];
/** Where a location points when the check has no data server: only a service without the guard reads it. */
const NOWHERE = 'http://127.0.0.1:9/glance-edge-check';

function patch(ctx: ProbeContext, id: string, op: PatchOp): Promise<Answer> {
  return ctx.client.request('PATCH', imagePath(id), { headers: { 'Content-Type': V21 }, body: patchBody(op) });
}

/** Judge a change the contract refuses for the image's status. */
async function refused(ctx: ProbeContext, rowId: string, id: string, op: PatchOp, status: string, count: number | null): Promise<void> {
  const expected = expectedLocationAnswer(op, { status, locations: count }, true);
  if (expected === null) throw new Error(`the contract allows ${op.op} on ${status}`);
  ctx.report.set(rowId, judgeRefusal(expected, await patch(ctx, id, op)));
}

/**
 * Whether locations can be changed at all: a remove of a location of the new (queued) image `id`
 * is refused 409 for its status where locations are shown, and 403 as Glance refuses every change
 * of invisible locations where `show_multiple_locations` is off. Undefined when the image cannot
 * be shown.
 */
export async function probeVisibility(ctx: ProbeContext, id: string): Promise<boolean | undefined> {
  ctx.progress('locations: shown on images?, a remove on a queued image');
  let visible: boolean | undefined;
  await group(ctx, LOCATION_ROWS, async () => {
    const { answer: shown, doc } = await showImage(ctx, id);
    if (shown.status !== 200) {
      ctx.report.skip(LOCATION_ROWS, `GET ${imagePath(id)} answered ${statusAndText(shown)}`);
      return;
    }
    const list = locationsOf(doc);
    const status = statusOf(doc) ?? 'queued';
    const op = locationOp('remove', '0');
    const answer = await patch(ctx, id, op);
    const invisible = expectedLocationAnswer(op, { status, locations: null }, false);
    if (invisible === null) throw new Error('the contract allows changes of invisible locations');
    const listed = list === undefined ? 'not listed' : `listed (${list.length} on the new image)`;
    const alike = list === undefined ? 'not listed' : `listed all the same (${list.length})`;
    const expected = `listed, or hidden (show_multiple_locations off) with every change refused ${invisible.status} ${invisible.message}`;
    if (judgeRefusal(invisible, answer).result === 'ok') {
      visible = false;
      ctx.report.set('locations.visible', { result: 'ok', expected, seen: `hidden: a remove answered ${statusAndText(answer)}; locations ${alike}` });
      ctx.report.skip(LOCATION_ROWS, 'locations are hidden (show_multiple_locations is off): every location change is refused alike');
      return;
    }
    visible = true;
    const queued = expectedLocationAnswer(op, { status, locations: list?.length ?? null }, true);
    if (queued === null) throw new Error(`the contract allows a remove on ${status}`);
    const judged = judgeRefusal(queued, answer);
    ctx.report.set('locations.remove.queued', judged);
    ctx.report.set(
      'locations.visible',
      list !== undefined
        ? { result: 'ok', expected, seen: listed }
        : { result: 'differs', expected, seen: `not listed, yet a remove was not refused as for hidden locations: ${judged.seen}` },
    );
  });
  return visible;
}

/**
 * Upload the check's data to the queued image `id`, holding the second half back; while the
 * image is `saving`, remove a location (when `visible`). True once the image is active with it.
 */
export async function uploadHolding(ctx: ProbeContext, id: string, visible: boolean): Promise<{ uploaded: boolean; why?: string }> {
  ctx.progress('upload: the data held back half-way, a location removed while the image is saving');
  const upload = ctx.client.holdUpload(imagePath(id, '/file'), CHECK_DATA, CHECK_DATA.length / 2);
  ctx.holding(upload);
  let finished = false;
  try {
    const status = await waitForStatus(ctx, id, 'saving', Math.min(ctx.timeout, 10_000));
    if (visible) {
      if (status === 'saving') await refused(ctx, 'locations.remove.saving', id, locationOp('remove', '0'), 'saving', null);
      else ctx.report.skip(['locations.remove.saving'], `the image showed ${status ?? 'no status'}, never saving, while its upload was held open`);
    }
    upload.finish();
    finished = true;
    const answer = await upload.answer;
    if (answer.status < 200 || answer.status >= 300) return { uploaded: false, why: `the upload of the check's data answered ${statusAndText(answer)}` };
    const after = await waitForStatus(ctx, id, 'active', ctx.timeout);
    if (after !== 'active') return { uploaded: false, why: `after its upload the check's image showed ${after ?? 'no status'}, not active` };
    return { uploaded: true };
  } finally {
    if (!finished) upload.abort();
    ctx.holding(undefined);
  }
}

/** Deactivate the active image `id` and try each change on it (409 each). */
export async function probeDeactivated(ctx: ProbeContext, id: string, urls: readonly string[] | undefined): Promise<void> {
  ctx.progress('locations: a deactivated image');
  await group(ctx, DEACTIVATED_ROWS, async () => {
    const act = await ctx.client.request('POST', imagePath(id, '/actions/deactivate'));
    if (act.status < 200 || act.status >= 300) {
      ctx.report.skip(DEACTIVATED_ROWS, `deactivating the check's image answered ${statusAndText(act)} (an admin's right by default)`);
      return;
    }
    const { doc } = await showImage(ctx, id);
    const status = statusOf(doc);
    if (status !== 'deactivated') {
      ctx.report.skip(DEACTIVATED_ROWS, `after its deactivation the check's image showed ${status ?? 'no status'}`);
      return;
    }
    const count = locationsOf(doc)?.length ?? null;
    const location = { url: urls?.[1] ?? NOWHERE, metadata: {} };
    await refused(ctx, 'locations.remove.deactivated', id, locationOp('remove', '0'), status, count);
    await refused(ctx, 'locations.replace.deactivated', id, locationOp('replace', undefined, [location]), status, count);
    await refused(ctx, 'locations.add.deactivated', id, locationOp('add', '-', location), status, count);
  });
}

/** On a new image of the check's: replace on queued, then add, replace and remove on active. */
export async function probeAllowed(ctx: ProbeContext, images: CheckImages, urls: readonly [string, string]): Promise<void> {
  ctx.progress(`locations: the allowed changes, with data from ${new URL(urls[0]).origin}`);
  await group(ctx, ALLOWED_ROWS, async () => {
    const { answer, id } = await images.create('locations', { disk_format: 'raw', container_format: 'bare' });
    if (id === undefined) {
      ctx.report.skip(ALLOWED_ROWS, `creating a second image answered ${statusAndText(answer)}`);
      return;
    }
    const [a, b] = urls;
    const allowed = async (rowId: string, op: PatchOp, status: string, count: number, after: readonly string[], firstUse = false): Promise<Judged> => {
      if (expectedLocationAnswer(op, { status, locations: count }, true) !== null) throw new Error(`the contract refuses ${op.op} on ${status}`);
      const judged = judgeAllowed(await patch(ctx, id, op), after, firstUse);
      ctx.report.set(rowId, judged);
      return judged;
    };
    const replaced = await allowed('locations.replace.queued', locationOp('replace', undefined, [{ url: a, metadata: {} }]), 'queued', 0, [a], true);
    if (replaced.result !== 'ok') {
      ctx.report.skip(ALLOWED_ROWS, `needs the image active at the check's location, which the replace on queued did not give (${replaced.why ?? replaced.seen})`);
      return;
    }
    const added = await allowed('locations.add.active', locationOp('add', '-', { url: b, metadata: {} }), 'active', 1, [a, b]);
    const both = added.result === 'ok' ? [a, b] : [a];
    const same = both.map((url) => ({ url, metadata: { glance_edge_check: images.run } }));
    await allowed('locations.replace.active', locationOp('replace', undefined, same), 'active', both.length, both);
    if (added.result !== 'ok') {
      ctx.report.skip(['locations.remove.active'], 'needs two locations, which the add did not give');
      return;
    }
    await allowed('locations.remove.active', locationOp('remove', '1'), 'active', 2, [a]);
  });
}
