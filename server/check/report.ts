/**
 * The check's report: the rows as they are judged, then a table for people (stdout) or JSON for
 * machines (`--json`).
 */
import { ROWS, SECTIONS, exitStatus, rowSpec, type Judged, type Kind, type Result, type Row } from './rows';

export class Report {
  private readonly judged = new Map<string, Judged>();

  set(id: string, judged: Judged): void {
    rowSpec(id);
    this.judged.set(id, judged);
  }

  has(id: string): boolean {
    return this.judged.has(id);
  }

  /** Every row of `ids` not judged yet could not be tested, for `why`. */
  skip(ids: readonly string[], why: string): void {
    for (const id of ids) if (!this.judged.has(id)) this.set(id, { result: 'could not test', seen: '', why });
  }

  rows(): Row[] {
    return ROWS.map((spec) => {
      const judged = this.judged.get(spec.id) ?? { result: 'could not test' as const, seen: '', why: 'not reached' };
      return { ...spec, expected: judged.expected ?? spec.expected, seen: judged.seen, result: judged.result, ...(judged.why === undefined ? {} : { why: judged.why }) };
    });
  }
}

type Counts = Record<'ok' | 'missing' | 'differs' | 'couldNotTest', number>;

export function summary(rows: readonly Row[]): Record<Kind, Counts> {
  const count = (kind: Kind): Counts => {
    const of = (result: Result) => rows.filter((r) => r.kind === kind && r.result === result).length;
    return { ok: of('ok'), missing: of('missing'), differs: of('differs'), couldNotTest: of('could not test') };
  };
  return { required: count('required'), recommended: count('recommended') };
}

export function summaryLine(rows: readonly Row[]): string {
  const s = summary(rows);
  const part = (c: Counts) => `${c.ok} ok, ${c.missing} missing, ${c.differs} differ, ${c.couldNotTest} could not test`;
  return `required: ${part(s.required)}; recommended: ${part(s.recommended)}`;
}

/** `text` cut into lines of at most `width` characters, at blanks where it can. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter((w) => w !== '')) {
    while (word.length > width) {
      if (line !== '') {
        lines.push(line);
        line = '';
      }
      lines.push(word.slice(0, width));
      word = word.slice(width);
    }
    if (line === '') line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== '' || lines.length === 0) lines.push(line);
  return lines;
}

const COLUMNS = [
  { title: 'behaviour', width: 30 },
  { title: 'kind', width: 11 },
  { title: 'expected', width: 32 },
  { title: 'seen', width: 32 },
  { title: 'result', width: 24 },
] as const;

function resultCell(row: Row): string {
  return row.result === 'could not test' ? `could not test (${row.why ?? 'no reason given'})` : row.result;
}

/** The table: one block of rows per section of docs/behaviour.md, each cell wrapped to its column. */
export function renderTable(rows: readonly Row[]): string {
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(COLUMNS[i]?.width ?? 0)).join('  ').trimEnd();
  const out = [line(COLUMNS.map((c) => c.title)), line(COLUMNS.map((c) => '-'.repeat(c.width)))];
  for (const section of Object.values(SECTIONS)) {
    const inSection = rows.filter((r) => r.section === section);
    if (inSection.length === 0) continue;
    out.push(section);
    for (const row of inSection) {
      const cells = [row.behaviour, row.kind, row.expected, row.seen === '' ? '-' : row.seen, resultCell(row)].map((text, i) => wrap(text, COLUMNS[i]?.width ?? 1));
      const height = Math.max(...cells.map((c) => c.length));
      for (let k = 0; k < height; k++) out.push(line(cells.map((c) => c[k] ?? '')));
    }
  }
  out.push('', summaryLine(rows));
  return `${out.join('\n')}\n`;
}

export interface ImagesOutcome {
  readonly created: readonly string[];
  readonly deleted: readonly string[];
  readonly kept: readonly string[];
  /** `id: why` for each image that could not be deleted. */
  readonly notDeleted: readonly string[];
}

/** The report for `--json`. */
export function renderJson(url: string, image: string | null, run: string | null, rows: readonly Row[], images: ImagesOutcome): string {
  const doc = {
    url,
    image,
    run,
    rows: rows.map((r) => ({ id: r.id, section: r.section, behaviour: r.behaviour, kind: r.kind, expected: r.expected, seen: r.seen, result: r.result, ...(r.why === undefined ? {} : { why: r.why }) })),
    summary: summary(rows),
    images,
    exitStatus: exitStatus(rows),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
