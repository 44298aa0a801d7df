/**
 * `glance-edge check URL`: probe an image service as a client would, with the identity given, and
 * report which of the contract's behaviours it has. Progress on stderr, one line per group of
 * probes; the table (or `--json`) on stdout. The exit status: 0 when every required row it could
 * test is ok, 1 when a required row is missing or differs, 2 when it could not run or could test
 * no required row.
 *
 * It creates only images of its own, named `glance-edge-check-<run>-<role>`, and deletes them at
 * the end and on SIGINT/SIGTERM, unless `--keep`.
 */
import { serviceClient, type HeldUpload, type ServiceClient } from './client';
import type { CheckOptions } from './args';
import { startDataServer, CHECK_DATA, type DataServer } from './data-server';
import { json, statusAndText, statusOf, type Answer } from './expect';
import { CheckImages, deleteImages, leftBehind, NAME_PREFIX, newRun } from './images';
import { group, type ProbeContext } from './probes/context';
import { DATA_ROWS, probeRanges } from './probes/data';
import { probeFormats, probeVz } from './probes/formats';
import { LOCATION_ROWS, probeAllowed, probeDeactivated, probeVisibility, uploadHolding } from './probes/locations';
import { renderJson, renderTable, Report, type ImagesOutcome } from './report';
import { exitStatus } from './rows';

/** Where the check writes, and how it ends the process on a signal. */
export interface CheckIo {
  out(text: string): void;
  err(text: string): void;
  exit(status: number): void;
}

const PROCESS_IO: CheckIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  exit: (status) => process.exit(status),
};

/** The check could not run at all: one line, exit status 2. */
export class CouldNotRun extends Error {}

/** Run the check (or `--cleanup`) and give its exit status. */
export async function runCheck(options: CheckOptions, io: CheckIo = PROCESS_IO): Promise<number> {
  const client = serviceClient({
    url: options.url,
    identity: options.identity,
    timeout: options.timeout,
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    insecure: options.insecure,
  });
  try {
    if (options.cleanup) return await cleanup(client, options, io);
    if (options.image !== undefined) return await checkImage(client, options, options.image, io);
    return await checkService(client, options, io);
  } catch (err) {
    if (!(err instanceof CouldNotRun)) throw err;
    io.err(`glance-edge: ${err.message}\n`);
    return 2;
  } finally {
    client.close();
  }
}

/** GET `path` as the first request: what makes the check unable to run is said here. */
async function preflight(client: ServiceClient, options: CheckOptions, path: string): Promise<Answer> {
  let answer: Answer;
  try {
    answer = await client.request('GET', path);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const tls = /CERT|SSL|TLS|SELF_SIGNED/i.test(message) ? ' (--cacert FILE or --insecure)' : '';
    throw new CouldNotRun(`${client.url} ${message}${tls}`);
  }
  if (answer.status === 401 || answer.status === 403) {
    const who = Object.keys(options.identity).length === 0 ? 'give an identity (--token, OS_AUTH_TOKEN or --header)' : 'the identity given was refused';
    throw new CouldNotRun(`${client.url} answered ${statusAndText(answer)} to GET ${path}: ${who}`);
  }
  if (answer.status === 404 && options.image !== undefined && path.startsWith('/v2/images/')) {
    throw new CouldNotRun(`--image ${options.image}: ${client.url} has no such image (${statusAndText(answer)})`);
  }
  const doc = json(answer);
  const isList = typeof doc === 'object' && doc !== null && (Array.isArray((doc as { images?: unknown }).images) || statusOf(doc) !== undefined);
  if (answer.status !== 200 || !isList) throw new CouldNotRun(`${client.url} answered ${statusAndText(answer)} to GET ${path}: not a Glance v2 image API?`);
  return answer;
}

function context(client: ServiceClient, report: Report, options: CheckOptions, io: CheckIo, holding: (upload: HeldUpload | undefined) => void): ProbeContext {
  return { client, report, timeout: options.timeout, progress: (line) => io.err(`${line}\n`), holding };
}

function output(options: CheckOptions, io: CheckIo, report: Report, run: string | null, images: ImagesOutcome): number {
  const rows = report.rows();
  io.out(options.json ? renderJson(options.url, options.image ?? null, run, rows, images) : renderTable(rows));
  return exitStatus(rows);
}

const NO_IMAGES: ImagesOutcome = { created: [], deleted: [], kept: [], notDeleted: [] };

/** `--image ID`: the read-only rows on an existing image; nothing is created. */
async function checkImage(client: ServiceClient, options: CheckOptions, id: string, io: CheckIo): Promise<number> {
  const doc = json(await preflight(client, options, `/v2/images/${encodeURIComponent(id)}`)) as { status?: unknown; size?: unknown };
  io.err(`glance-edge check: ${client.url}, image ${id} (the read-only rows; nothing is created)\n`);
  const report = new Report();
  const ctx = context(client, report, options, io, () => undefined);
  report.skip(LOCATION_ROWS, "--image: the location rows need images of the check's own");
  await probeFormats(ctx, undefined);
  await probeVz(ctx);
  if (doc.status !== 'active') report.skip(DATA_ROWS, `image ${id} is ${String(doc.status)}, not active`);
  else if (typeof doc.size !== 'number') report.skip(DATA_ROWS, `image ${id} shows no size`);
  else await probeRanges(ctx, id, doc.size);
  return output(options, io, report, null, NO_IMAGES);
}

/** The whole check, on images of its own. */
async function checkService(client: ServiceClient, options: CheckOptions, io: CheckIo): Promise<number> {
  const run = newRun();
  const images = new CheckImages(client, run);
  await preflight(client, options, '/v2/images?limit=1');

  let held: HeldUpload | undefined;
  let data: DataServer | undefined;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return io.exit(2);
    stopping = true;
    io.err(`glance-edge: ${signal}: stopping${options.keep ? '' : " and deleting the check's images"}\n`);
    held?.abort();
    void (async () => {
      if (options.keep) io.err(keptLine(images.ids()));
      else io.err(deletedLine(await images.deleteAll()));
      await data?.close();
      io.exit(2);
    })();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let outcome: ImagesOutcome | undefined;
  try {
    const report = new Report();
    const ctx = context(client, report, options, io, (upload) => (held = upload));
    const created = await images.create('data', { disk_format: 'raw', container_format: 'bare' });
    if (created.id === undefined) {
      const { answer } = created;
      const hint = answer.status === 401 || answer.status === 403 ? '; check one image with --image ID' : '';
      throw new CouldNotRun(`${client.url} answered ${statusAndText(answer)} to creating an image${hint}`);
    }
    const dataImage = created.id;
    io.err(`glance-edge check: ${client.url}, images named ${NAME_PREFIX}${run}-*\n`);
    let noData = '';
    data = await startDataServer(options.serveOn.host, options.serveOn.port, `${NAME_PREFIX}${run}`).catch((err: unknown) => {
      const { host, port } = options.serveOn;
      noData = `could not serve the check's location data on ${host.includes(':') ? `[${host}]` : host}:${port} (${(err as NodeJS.ErrnoException).code ?? String(err)}): see --serve-on`;
      return undefined;
    });

    await probeFormats(ctx, images);
    await probeVz(ctx);
    const visible = await probeVisibility(ctx, dataImage);
    let upload: { uploaded: boolean; why?: string } = { uploaded: false };
    await group(ctx, ['locations.remove.saving'], async () => {
      upload = await uploadHolding(ctx, dataImage, visible === true);
    });
    const noUpload = `needs the check's image active with its data: ${upload.why ?? 'the upload failed'}`;
    if (upload.uploaded) await probeRanges(ctx, dataImage, CHECK_DATA.length, CHECK_DATA);
    else report.skip(DATA_ROWS, noUpload);
    if (visible === true) {
      if (upload.uploaded) await probeDeactivated(ctx, dataImage, data?.urls);
      else report.skip(['locations.remove.deactivated', 'locations.replace.deactivated', 'locations.add.deactivated'], noUpload);
      if (data) await probeAllowed(ctx, images, data.urls);
      else report.skip(LOCATION_ROWS, noData);
    }
    // Stopped by a signal: its handler deletes the images and ends the process; no report.
    if (stopping) return 2;
    outcome = await finish(options, images, io);
    return output(options, io, report, run, outcome);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (outcome === undefined && !stopping && !options.keep && images.ids().length > 0) io.err(deletedLine(await images.deleteAll()));
    await data?.close();
  }
}

/** Delete the run's images (or keep them), saying so on stderr. */
async function finish(options: CheckOptions, images: CheckImages, io: CheckIo): Promise<ImagesOutcome> {
  const created = [...images.ids()];
  if (options.keep) {
    io.err(keptLine(created));
    return { created, deleted: [], kept: created, notDeleted: [] };
  }
  const result = await images.deleteAll();
  io.err(deletedLine(result));
  return { created, deleted: result.deleted, kept: [], notDeleted: result.failed };
}

function keptLine(ids: readonly string[]): string {
  return `kept: ${ids.length === 0 ? 'no image' : ids.join(', ')} (--keep)\n`;
}

function deletedLine(result: { deleted: readonly string[]; failed: readonly string[] }): string {
  const deleted = `cleanup: deleted ${result.deleted.length} image${result.deleted.length === 1 ? '' : 's'}`;
  return result.failed.length === 0 ? `${deleted}\n` : `${deleted}; could not delete ${result.failed.join('; ')} (glance-edge check --cleanup)\n`;
}

/** `--cleanup`: delete every image a killed run left behind, found by its name. */
async function cleanup(client: ServiceClient, options: CheckOptions, io: CheckIo): Promise<number> {
  await preflight(client, options, '/v2/images?limit=1');
  let found: { id: string; name: string }[];
  try {
    found = await leftBehind(client);
  } catch (err) {
    throw new CouldNotRun(`${client.url}: listing images failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  const { deleted, failed } = await deleteImages(
    client,
    found.map((f) => f.id),
  );
  if (options.json) {
    io.out(`${JSON.stringify({ url: options.url, found, deleted, notDeleted: failed }, null, 2)}\n`);
  } else if (found.length === 0) {
    io.out(`no image named ${NAME_PREFIX}… at ${client.url}\n`);
  } else {
    for (const f of found) if (deleted.includes(f.id)) io.out(`deleted ${f.id} ${f.name}\n`);
    for (const line of failed) io.out(`could not delete ${line}\n`);
  }
  return failed.length === 0 ? 0 : 1;
}
