/** §2: ranges and the legacy request form, on one active image (the check's own, or `--image`). */
import {
  expectedRange,
  header,
  judgeAcceptRanges,
  judgeDeprecation,
  judgeDownload,
  judgeIfRange,
  judgeSeveral,
  judgeUnsatisfiableHeader,
  rangeProbes,
  reference,
  statusAndText,
  type Answer,
  type IfRangeTry,
  type Reference,
} from '../expect';
import { rowIds } from '../rows';
import { group, imagePath, type ProbeContext } from './context';

/** Bytes of image data read at most per answer: enough for every range of the probes' own. */
const READ = 64 * 1024;

export const DATA_ROWS = [...rowIds('ranges.'), ...rowIds('legacy.')];

/**
 * Probe the downloads of image `id` of `size` bytes. `known` is its data when the check uploaded
 * it; otherwise the bytes are those read from the image itself (its first 64 KiB and, for a larger
 * image, its last bytes asked as one plain range).
 */
export async function probeRanges(ctx: ProbeContext, id: string, size: number, known?: Buffer): Promise<void> {
  if (size < 3) {
    ctx.report.skip(DATA_ROWS, `the image holds ${size} bytes: the range rows need 3 or more`);
    return;
  }
  const probes = rangeProbes(size);
  ctx.progress(`ranges: ${id} (${size} bytes)`);
  const file = imagePath(id, '/file');
  const get = (headers: Record<string, string> = {}) => ctx.client.request('GET', file, { headers, limit: READ });
  await group(ctx, DATA_ROWS, async () => {
    const whole = await get();
    if (whole.status !== 200) {
      ctx.report.skip(DATA_ROWS, `GET ${file} answered ${statusAndText(whole)}, not 200 and the image data`);
      return;
    }
    const ref = known === undefined ? await readReference(get, size, whole, probes.tailFrom) : reference(size, known);
    const judge = (rowId: string, range: string) => async (): Promise<Answer> => {
      const answer = await get({ Range: range });
      ctx.report.set(rowId, judgeDownload(expectedRange({ range, size }), answer, ref));
      return answer;
    };
    const single = await judge('ranges.single', probes.single)();
    await judge('ranges.suffix', probes.suffix)();
    await judge('ranges.clamped', probes.clamped)();
    const unsatisfiable = await judge('ranges.unsatisfiable', probes.unsatisfiable)();
    ctx.report.set('ranges.unsatisfiable.content-range', judgeUnsatisfiableHeader(expectedRange({ range: probes.unsatisfiable, size }), unsatisfiable));
    await judge('ranges.zero-suffix', probes.zeroSuffix)();
    ctx.report.set('ranges.several', judgeSeveral(probes.several, await get({ Range: probes.several }), ref));
    ctx.report.set('ranges.accept-ranges', judgeAcceptRanges([whole, single]));
    await probeIfRange(ctx, get, header(whole, 'etag'), probes.single, ref);
    const legacy = await get({ 'Content-Range': probes.legacy });
    ctx.report.set('legacy.form', judgeDownload(expectedRange({ contentRange: probes.legacy, size }), legacy, ref));
    ctx.report.set('legacy.deprecated', judgeDeprecation(legacy));
  });
}

/** The image's first bytes from its whole answer, and for a larger image its last ones, asked as a range. */
async function readReference(get: (headers?: Record<string, string>) => Promise<Answer>, size: number, whole: Answer, tailFrom: number): Promise<Reference> {
  if (whole.complete) return reference(size, whole.body);
  const tail = await get({ Range: `bytes=${tailFrom}-${size - 1}` });
  const good = tail.status === 206 && tail.complete && header(tail, 'content-range') === `bytes ${tailFrom}-${size - 1}/${size}` && tail.body.length === size - tailFrom;
  return reference(size, whole.body, good ? { start: tailFrom, bytes: tail.body } : undefined);
}

async function probeIfRange(ctx: ProbeContext, get: (headers?: Record<string, string>) => Promise<Answer>, etag: string | undefined, range: string, ref: Reference): Promise<void> {
  const validators = [...(etag === undefined ? [] : [etag]), '"glance-edge-check-stale"', ...(etag === undefined || etag.startsWith('W/') ? [] : [`W/${etag}`])];
  const tries: IfRangeTry[] = [];
  for (const ifRange of validators) tries.push({ ifRange, range, answer: await get({ Range: range, 'If-Range': ifRange }) });
  ctx.report.set('ranges.if-range', judgeIfRange(etag, tries, ref));
}
