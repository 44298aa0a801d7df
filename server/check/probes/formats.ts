/** §3: ploop in the image schema and on create, vz in OS::Compute::Hypervisor. */
import { judgePloopCreate, judgeSchema, judgeVz } from '../expect';
import type { CheckImages } from '../images';
import { group, type ProbeContext } from './context';

/** The schema's disk formats and, when `images` may be created, an image created as ploop. */
export async function probeFormats(ctx: ProbeContext, images: CheckImages | undefined): Promise<void> {
  ctx.progress('formats: ploop in the image schema and on create');
  await group(ctx, ['formats.ploop.schema'], async () => {
    ctx.report.set('formats.ploop.schema', judgeSchema(await ctx.client.request('GET', '/v2/schemas/image')));
  });
  if (images === undefined) {
    ctx.report.skip(['formats.ploop.create'], '--image: the check creates nothing');
    return;
  }
  await group(ctx, ['formats.ploop.create'], async () => {
    const { answer } = await images.create('ploop', { disk_format: 'ploop', container_format: 'bare' });
    ctx.report.set('formats.ploop.create', judgePloopCreate(answer));
  });
}

export async function probeVz(ctx: ProbeContext): Promise<void> {
  ctx.progress('metadefs: vz in OS::Compute::Hypervisor');
  await group(ctx, ['metadefs.vz'], async () => {
    ctx.report.set('metadefs.vz', judgeVz(await ctx.client.request('GET', '/v2/metadefs/namespaces/OS::Compute::Hypervisor/properties/hypervisor_type')));
  });
}
