/**
 * The README's code compiles as written: every `ts` and `js` block is type-checked (strict) against
 * the package's own entry points, `glance-edge` and `glance-edge/server`. A block that names what a
 * reader supplies (`app`, `yourStore`, `myLookup`, …) gets those declared, and nothing else: an
 * import a block forgets is an error here.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** What the reader of a snippet supplies: declared for every block, used or not. */
const READER = `
import type { Express, RequestHandler } from 'express';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { ImageData, ImageLookup, Lease } from 'glance-edge';
declare const app: Express;
declare const yourImageApi: RequestHandler;
declare const yourStore: { data(req: IncomingMessage): ImageData | null };
declare const myStore: { get(id: string | null): Promise<{ hasData: boolean; size: number; md5: string }>; read(image: unknown, range: unknown): Readable };
declare const myLookup: ImageLookup;
declare const source: (req: IncomingMessage) => ImageData | null;
export type { Lease };
`;

interface Block {
  readonly line: number;
  readonly lang: 'ts' | 'js';
  readonly code: string;
}

function blocks(markdown: string): Block[] {
  const found: Block[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|js)\s*$/.exec(lines[i] as string);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !(lines[i] as string).startsWith('```'); i++) body.push(lines[i] as string);
    found.push({ line: start + 1, lang: open[1] as 'ts' | 'js', code: body.join('\n') });
  }
  return found;
}

/** The library's names, for a fragment that shows no imports of its own. */
const LIBRARY = "import { glanceError, hypervisorMetadefs, imageFormats, imageSchemas, locationGuard, readRequest, serveImage } from 'glance-edge';\n";

/**
 * A block as a module. A block that imports or requires anything must be complete as it stands; a
 * fragment without imports gets the library's names. Either way the reader's declarations come
 * first (but `app` when the block makes its own).
 */
function source(block: Block): string {
  const ownApp = /\bconst app\b/.test(block.code);
  const reader = ownApp ? READER.replace('declare const app: Express;\n', '') : READER;
  const complete = /^\s*import\s|require\(/m.test(block.code);
  // The README's `js` blocks use require(): typed from the same entry points.
  const code = block.code.replace(/require\('(glance-edge(?:\/server)?)'\)/g, "(await import('$1'))");
  return `${complete ? '' : LIBRARY}${reader}\n${code}\nexport {};\n`;
}

describe('the README: its code compiles as written', () => {
  const found = blocks(README);

  it('should find the code blocks', () => {
    expect(found.length).toBeGreaterThanOrEqual(5);
  });

  it('should type-check every ts and js block against glance-edge and glance-edge/server', () => {
    const files = new Map(found.map((b, i) => [path.join(ROOT, 'readme-blocks', `block-${i}-line-${b.line}.mts`), source(b)]));
    const options: ts.CompilerOptions = {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      types: ['node'],
      skipLibCheck: true,
      baseUrl: ROOT,
      paths: { 'glance-edge': ['lib/index.ts'], 'glance-edge/server': ['server/index.ts'] },
    };
    const host = ts.createCompilerHost(options);
    const read = host.readFile.bind(host);
    host.readFile = (file) => files.get(file) ?? read(file);
    const exists = host.fileExists.bind(host);
    host.fileExists = (file) => files.has(file) || exists(file);
    const program = ts.createProgram([...files.keys()], options, host);
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file !== undefined && files.has(d.file.fileName))
      .map((d) => `${path.basename(d.file?.fileName ?? '')}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(problems).toEqual([]);
  }, 60_000);
});
