/**
 * The rows of `glance-edge check`: every behaviour it probes, in the order of the report, and what
 * a row holds once judged. Pure data.
 *
 * A row is **required** when Glance does it since Ocata (docs/behaviour.md, the rows not marked
 * ours) and **recommended** when RFC 9110 or the suite adds it on top (the rows marked ours).
 */

export type Kind = 'required' | 'recommended';
export type Result = 'ok' | 'missing' | 'differs' | 'could not test';

export const SECTIONS = {
  locations: '1. Location changes',
  data: '2. Image data',
  formats: '3. Formats and metadefs',
} as const;
export type Section = (typeof SECTIONS)[keyof typeof SECTIONS];

export interface RowSpec {
  readonly id: string;
  readonly section: Section;
  readonly behaviour: string;
  readonly kind: Kind;
  /** What is expected, as the report says it when the probe could not say it more exactly. */
  readonly expected: string;
}

/** A judged row. `why` says, for a row that could not be tested, why not. */
export interface Row extends RowSpec {
  readonly seen: string;
  readonly result: Result;
  readonly why?: string;
}

/** The outcome of one probe: the verdict, what the service did, and the exact expectation when known. */
export interface Judged {
  readonly result: Result;
  readonly seen: string;
  readonly expected?: string;
  readonly why?: string;
}

const L = SECTIONS.locations;
const D = SECTIONS.data;
const F = SECTIONS.formats;
const row = (id: string, section: Section, behaviour: string, kind: Kind, expected: string): RowSpec => ({ id, section, behaviour, kind, expected });
const refused = (op: string, status: string) => `409 It's not allowed to ${op} locations if image status is ${status}.`;

/** Every row, in the report's order. */
export const ROWS: readonly RowSpec[] = [
  row('locations.visible', L, 'locations shown on images (show_multiple_locations)', 'required', 'listed on every image, or hidden with every location change refused 403'),
  row('locations.remove.queued', L, 'remove a location of a queued image', 'required', refused('remove', 'queued')),
  row('locations.remove.saving', L, 'remove a location while the image is saving (upload held open)', 'required', refused('remove', 'saving')),
  row('locations.remove.deactivated', L, 'remove a location of a deactivated image', 'required', refused('remove', 'deactivated')),
  row('locations.replace.deactivated', L, 'replace the locations of a deactivated image', 'required', refused('replace', 'deactivated')),
  row('locations.add.deactivated', L, 'add a location to a deactivated image', 'required', refused('add', 'deactivated')),
  row('locations.replace.queued', L, 'replace the locations of a queued image (allowed)', 'required', '200, the image active at the new location'),
  row('locations.add.active', L, 'add a location to an active image (allowed)', 'required', '200, a second location'),
  row('locations.replace.active', L, 'replace the locations of an active image, same URLs (allowed)', 'required', '200, the same URLs'),
  row('locations.remove.active', L, 'remove one of two locations of an active image (allowed)', 'required', '200, one location left'),
  row('ranges.single', D, 'Range: one range', 'required', '206 Content-Range: bytes 0-9/32, those 10 bytes'),
  row('ranges.suffix', D, 'Range: the last bytes (bytes=-N)', 'required', '206 Content-Range: bytes 27-31/32'),
  row('ranges.clamped', D, 'Range: an end past the image, brought back', 'required', '206 Content-Range: bytes 12-31/32'),
  row('ranges.unsatisfiable', D, 'Range: a start past the image', 'required', '416 Invalid start position in Range header. …'),
  row('ranges.unsatisfiable.content-range', D, 'the 416 names the size: Content-Range: bytes */N', 'recommended', 'Content-Range: bytes */32'),
  row('ranges.zero-suffix', D, 'Range: bytes=-0 asks for no byte', 'recommended', '416 Invalid Range header.'),
  row('ranges.several', D, 'Range: several ranges', 'required', "400 Requests with multiple ranges are not supported in Glance. … (or 206 multipart/byteranges)"),
  row('ranges.if-range', D, 'If-Range, compared strongly with the ETag', 'recommended', 'the current ETag: 206; a stale or weak one: 200 and the whole image'),
  row('ranges.accept-ranges', D, 'Accept-Ranges: bytes on image data', 'recommended', 'Accept-Ranges: bytes on the 200 and the 206'),
  row('legacy.form', D, 'the legacy Content-Range request form', 'required', '206 Content-Range: bytes 12-30/32, those 19 bytes'),
  row('legacy.deprecated', D, 'the legacy form flagged deprecated', 'recommended', 'Deprecation, Link rel="deprecation" and Warning 299 on the answer'),
  row('formats.ploop.schema', F, 'ploop among the disk formats of the image schema', 'required', "'ploop' in disk_format's enum of GET /v2/schemas/image"),
  row('formats.ploop.create', F, 'an image created with disk_format ploop', 'required', '201'),
  row('metadefs.vz', F, "vz in OS::Compute::Hypervisor's hypervisor_type", 'required', "'vz' in the enum, and the VZ line in the description"),
];

export function rowSpec(id: string): RowSpec {
  const spec = ROWS.find((r) => r.id === id);
  if (!spec) throw new Error(`no row ${id}`);
  return spec;
}

/** The ids of the rows of one kind of probe, by prefix. */
export function rowIds(prefix: string): string[] {
  return ROWS.filter((r) => r.id.startsWith(prefix)).map((r) => r.id);
}

/**
 * The exit status of a check: 1 when a required row is missing or differs, 2 when no required row
 * could be tested, 0 otherwise (every required row it could test is ok). Recommended rows never
 * change it.
 */
export function exitStatus(rows: readonly Row[]): 0 | 1 | 2 {
  const required = rows.filter((r) => r.kind === 'required');
  if (required.some((r) => r.result === 'missing' || r.result === 'differs')) return 1;
  if (!required.some((r) => r.result === 'ok')) return 2;
  return 0;
}
