/** What every group of probes works with, and the small steps they share. */
import type { HeldUpload, ServiceClient } from '../client';
import { json, statusOf, type Answer } from '../expect';
import type { Report } from '../report';

export interface ProbeContext {
  readonly client: ServiceClient;
  readonly report: Report;
  /** Milliseconds a request may take; also the longest wait for an image's status. */
  readonly timeout: number;
  /** One line on stderr per group of probes. */
  progress(line: string): void;
  /** Told of an upload held open (and of its end, with undefined), to give it up on a signal. */
  holding(upload: HeldUpload | undefined): void;
}

/**
 * Run one group of probes; if a request of it fails (the service gone, a timeout), the rows of
 * `ids` it has not judged yet could not be tested, and say why.
 */
export async function group(ctx: ProbeContext, ids: readonly string[], work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    ctx.report.skip(ids, `a request to the service failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function imagePath(id: string, rest = ''): string {
  return `/v2/images/${encodeURIComponent(id)}${rest}`;
}

export async function showImage(ctx: ProbeContext, id: string): Promise<{ answer: Answer; doc: unknown }> {
  const answer = await ctx.client.request('GET', imagePath(id));
  return { answer, doc: answer.status === 200 ? json(answer) : undefined };
}

/**
 * Ask for the image every 100 ms until its status is `want`, for at most `ms`: the status last
 * seen (undefined when the image could not be shown).
 */
export async function waitForStatus(ctx: ProbeContext, id: string, want: string, ms: number): Promise<string | undefined> {
  const until = Date.now() + ms;
  for (;;) {
    const status = statusOf((await showImage(ctx, id)).doc);
    if (status === want || Date.now() >= until) return status;
    await new Promise((r) => setTimeout(r, 100));
  }
}
