/**
 * BEHAVIOUR.md §1 and §5, told by Glance itself: parseImagePatch must read every patch body as
 * Glance 25.1's RequestDeserializer.update does (test/helpers/glance_patch.py runs Glance's own
 * code), or the guard can be walked around by a body that the two read differently.
 *
 * The property test draws bodies from a grammar biased toward where JavaScript and Python part:
 * location pointers with Python-only and JavaScript-only whitespace, Unicode digits, escapes and
 * lone surrogates; NaN and Infinity, odd numbers, duplicate keys, scalars, deep nesting, a BOM and
 * invalid UTF-8; both patch media types. For each body the two must agree: the same status and
 * message, or the same ops (name, decoded path, values as JSON) and the same reading of every
 * `/locations/N` position.
 *
 *   PATCH_GLANCE_RUNS  bodies (default 3000)
 *   PATCH_SCHEMA_RUNS  bodies of the schema property (default 1000)
 *   PATCH_GLANCE_SEED  fast-check seed of both (default: test/helpers/seed.ts; printed)
 *
 * Glance also checks values against its image schema (the deserializer's _validate_change, change
 * by change, before any status check). parseImagePatch reads what a body says whatever its values
 * (the helper's permissive reading); the guard's reading of a patch it judges, readLocationPatch,
 * also checks values as Glance does and answers Glance's schema 400 with its exact text: the
 * second property draws patches with location ops and other ops, valid and invalid values, and
 * holds it to Glance's whole answer.
 */
import fc from 'fast-check';
import { isGlanceError, type GlanceError } from '../../lib/errors';
import { PY_WHITESPACE, pyDecimal, pyIsDigitChar, pyIsPrintable, pyIsSpace, pyStrRepr, pyFloatRepr } from '../../lib/locations/python';
import { locationPosition } from '../../lib/locations/decide';
import { locationOps, parseImagePatch, type PatchOp } from '../../lib/locations/patch';
import { PRINTABLE_NESTING, readLocationPatch } from '../../lib/locations/schema';
import { envInt } from '../helpers/env';
import { testSeed } from '../helpers/seed';
import { POSITION_COUNTS, PYTHON, startGlancePatchReader, type GlanceChange, type GlancePatchReader, type GlanceReading, type GlanceValue } from '../helpers/glance-patch';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const RUNS = envInt('PATCH_GLANCE_RUNS', 3000);
const SCHEMA_RUNS = envInt('PATCH_SCHEMA_RUNS', 1000);
const SEED = testSeed('PATCH_GLANCE_SEED');

const V21 = 'application/openstack-images-v2.1-json-patch';
const V20 = 'application/openstack-images-v2.0-json-patch';
type MediaType = typeof V21 | typeof V20;
const MALFORMED = 'Malformed JSON in request body.';
const SCALAR = 'Unexpected body type. Expected list/dict.';
const NOT_ARRAY = 'Request body must be a JSON array of operation objects.';
const GLANCE_500 = 'The server has either erred or is incapable of performing the requested operation.';

/** Characters Python's str.strip() removes and JavaScript's trim() keeps. */
const PYTHON_ONLY_SPACE = ['\u001c', '\u001d', '\u001e', '\u001f', '\u0085'];
/** Characters JavaScript (or somebody's idea of whitespace) strips and Python keeps. */
const NOT_PYTHON_SPACE = ['\ufeff', '\u180e', '\u200b', '\u2060'];
/** Every character of Python's whitespace, written out here rather than taken from the code under test. */
const PYTHON_SPACE = [
  '\t', '\n', '\u000b', '\f', '\r', '\u001c', '\u001d', '\u001e', '\u001f', ' ', '\u0085', '\u00a0', '\u1680', '\u2000', '\u2001', '\u2002',
  '\u2003', '\u2004', '\u2005', '\u2006', '\u2007', '\u2008', '\u2009', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000',
];

// ---------------------------------------------------------------------------------------------
// Comparing the two readings.

type Reading =
  | { ok: true; changes: { op: string; path: string[]; hasValue: boolean; value?: unknown; positions?: unknown[] }[] }
  | { ok: false; status: number; explanation: string; detail: string };

const numberKey = (n: number) => (Object.is(n, -0) ? '-0' : String(n));
const byKey = (a: [string, unknown], b: [string, unknown]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** A JavaScript value in a form that compares numbers exactly and objects without regard to key order. */
function canonJs(v: unknown): unknown {
  if (typeof v === 'number') return { $n: numberKey(v) };
  if (Array.isArray(v)) return v.map(canonJs);
  if (typeof v === 'object' && v !== null) {
    return { $d: Object.keys(v).map((k): [string, unknown] => [k, canonJs((v as Record<string, unknown>)[k])]).sort(byKey) };
  }
  return v;
}

/** Python's float repr read back as JavaScript reads a number. */
function pyNumber(repr: string): number {
  if (repr === 'nan') return NaN;
  if (repr === 'inf') return Infinity;
  if (repr === '-inf') return -Infinity;
  return Number(repr);
}

function canonPy(v: GlanceValue): unknown {
  if (Array.isArray(v)) return v.map(canonPy);
  if (typeof v === 'object' && v !== null) {
    if ('$n' in v) return { $n: numberKey(pyNumber(v.$n)) };
    return { $d: v.$d.map(([k, x]): [string, unknown] => [k, canonPy(x)]).sort(byKey) };
  }
  return v;
}

function tsPositions(op: PatchOp): unknown[] | undefined {
  if (op.path[0] !== 'locations' || op.path.length !== 2 || op.op === 'replace') return undefined;
  return POSITION_COUNTS.map((count) => {
    try {
      const pos = locationPosition(op.path[1], count, op.op === 'add');
      return pos === null ? null : String(pos);
    } catch (err) {
      if (isGlanceError(err) && err.type === 'patch.unreadable') return { error: 'ValueError' };
      throw err;
    }
  });
}

/** The deepest bracket nesting of `body`, strings not told apart (enough to tell a deep body). */
function nesting(body: Buffer): number {
  let depth = 0;
  let deepest = 0;
  for (const byte of body) {
    if (byte === 0x5b || byte === 0x7b) deepest = Math.max(deepest, ++depth);
    else if (byte === 0x5d || byte === 0x7d) depth--;
  }
  return deepest;
}

function ours(body: Buffer, type: MediaType): Reading {
  let ops: PatchOp[];
  try {
    ops = parseImagePatch(body, type);
  } catch (err) {
    if (!isGlanceError(err)) throw err;
    const e = err as GlanceError;
    // Where Glance's deserializer raises and Glance answers a bare 500, the suite answers 400 (ours).
    if (e.type === 'patch.unreadable') {
      expect(e.status).toBe(400);
      return { ok: false, status: 500, explanation: GLANCE_500, detail: '' };
    }
    return { ok: false, status: e.status, explanation: e.explanation, detail: e.detail };
  }
  return {
    ok: true,
    changes: ops.map((op) => {
      const hasValue = Object.hasOwn(op, 'value');
      const positions = tsPositions(op);
      return { op: op.op, path: [...op.path], hasValue, ...(hasValue ? { value: canonJs(op.value) } : {}), ...(positions ? { positions } : {}) };
    }),
  };
}

function glances(r: GlanceReading): Reading {
  if (!r.ok) return { ok: false, status: r.status, explanation: r.explanation, detail: r.detail };
  return {
    ok: true,
    changes: r.changes.map((c: GlanceChange) => ({
      op: c.op,
      path: c.path,
      hasValue: c.hasValue,
      ...(c.hasValue ? { value: canonPy(c.value as GlanceValue) } : {}),
      ...(c.positions
        ? { positions: c.positions.map((p) => (typeof p === 'string' ? String(Number(BigInt(p))) : p)) }
        : {}),
    })),
  };
}

let glance: GlancePatchReader;
beforeAll(async () => {
  glance = await startGlancePatchReader();
}, 60_000);
afterAll(async () => {
  await glance?.close();
});

/** Both readings of `body`; they must be equal. */
async function both(body: Buffer | string, type: MediaType): Promise<Reading> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const mine = ours(bytes, type);
  expect(mine).toEqual(glances(await glance.read(type, bytes)));
  return mine;
}

/** The op of a one-op patch that both read alike. */
async function onlyOp(body: string, type: MediaType = V21) {
  const r = await both(body, type);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(body)} to parse, got ${r.status} ${r.explanation}`);
  expect(r.changes).toHaveLength(1);
  return r.changes[0];
}

async function refused(body: Buffer | string, type: MediaType = V21) {
  const r = await both(body, type);
  if (r.ok) throw new Error(`expected ${JSON.stringify(body.toString())} to be refused`);
  return r;
}

const change = (path: string, op = 'replace', value = '[{"url": "http://a/b", "metadata": {}}]') => `[{"op": "${op}", "path": ${path}, "value": ${value}}]`;
const esc = (s: string) => JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

// ---------------------------------------------------------------------------------------------

describe("1. Location changes: PATCH /v2/images/{id}, read as Glance's own deserializer reads it", () => {
  describe("Python's character tables", () => {
    it('should hold the same whitespace, printable, digit and decimal classes as /usr/bin/python3, code point by code point', () => {
      const out = execFileSync(PYTHON, [path.join(__dirname, '..', 'helpers', 'glance_patch.py'), '--unicode'], { maxBuffer: 64 * 1024 * 1024 }).toString();
      const py = JSON.parse(out) as Record<string, unknown>;
      const ranges = (pred: (c: number) => boolean) => {
        const r: [number, number][] = [];
        for (let c = 0; c <= 0x110000; c++) {
          const yes = c < 0x110000 && pred(c);
          const last = r[r.length - 1];
          if (yes && last && last[1] === c - 1) last[1] = c;
          else if (yes) r.push([c, c]);
        }
        return r;
      };
      expect(py['unidata']).toBe('14.0.0');
      expect(ranges(pyIsSpace)).toEqual(py['isspace']);
      expect(ranges(pyIsSpace)).toEqual(py['reSpace']);
      expect(ranges((c) => !pyIsPrintable(c))).toEqual(py['notPrintable']);
      expect(ranges(pyIsDigitChar)).toEqual(py['isdigit']);
      expect(ranges((c) => pyDecimal(c) >= 0)).toEqual(py['isdecimal']);
      expect((py['decimalValues'] as [number, number][]).every(([c, v]) => pyDecimal(c) === v)).toBe(true);
      expect([...PY_WHITESPACE].sort()).toEqual([...PYTHON_SPACE].sort());
    });

    it("should write floats and strings as Python's repr()", () => {
      expect([1, 1.5e-7, 1e16, 1e15, 0.0001, 1e-5, 123456789012345680, -0, NaN, -Infinity, 1e22, 2.5].map(pyFloatRepr)).toEqual([
        '1.0', '1.5e-07', '1e+16', '1000000000000000.0', '0.0001', '1e-05', '1.2345678901234568e+17', '-0.0', 'nan', '-inf', '1e+22', '2.5',
      ]);
      expect(["it's", 'a"b', 'a\'b"c', '\u0085\u2028\ud800\ud83d\ude00\udb40\udc01\t\u0000'].map(pyStrRepr)).toEqual([
        '"it\'s"', "'a\"b'", "'a\\'b\"c'", "'\\x85\\u2028\\ud800\ud83d\ude00\\U000e0001\\t\\x00'",
      ]);
    });
  });

  describe('whitespace in pointers: Python strips what JavaScript keeps', () => {
    it.each(PYTHON_SPACE.map((c) => [`U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`, c]))(
      'should read replace "/locations%s" as a locations replace, as Glance does',
      async (_name, c) => {
        expect(await onlyOp(change(esc(`/locations${c}`)))).toMatchObject({ op: 'replace', path: ['locations'] });
        expect(await onlyOp(change(esc(`/${c}locations`)))).toMatchObject({ op: 'replace', path: ['locations'] });
        expect(await onlyOp(change(esc(`/locations/${c}0${c}`), 'remove'))).toMatchObject({ op: 'remove', path: ['locations', '0'] });
      },
    );

    it('should read "/locations\\u001f" as locations also when the character is sent as raw UTF-8', async () => {
      expect(await onlyOp(`[{"op": "replace", "path": "/locations\u001f\u2028\u3000", "value": [{"url": "u", "metadata": {}}]}]`.replace('\u001f', '\\u001f'))).toMatchObject({
        path: ['locations'],
      });
    });

    it.each(NOT_PYTHON_SPACE.map((c) => [`U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`, c]))('should read "/locations%s" as another property, as Glance does', async (_name, c) => {
      expect(await onlyOp(change(esc(`/locations${c}`), 'replace', '"x"'))).toMatchObject({ op: 'replace', path: [`locations${c}`] });
    });

    it.each(PYTHON_ONLY_SPACE)('should 400 for adjacent slashes around Python whitespace %j', async (c) => {
      const r = await refused(change(esc(`/locations/${c}/0`), 'remove'));
      expect(r).toMatchObject({ status: 400, explanation: `Pointer \`/locations/${c}/0\` contains adjacent "/".` });
    });

    it('should 400 for a pointer of one slash and Python whitespace', async () => {
      expect(await refused(change(esc('/\u3000/')))).toMatchObject({ status: 400, explanation: 'Pointer `/\u3000/` end with "/".' });
    });
  });

  describe('the JSON Python reads', () => {
    it.each([
      ['NaN', 'NaN', NaN],
      ['Infinity', 'Infinity', Infinity],
      ['-Infinity', '-Infinity', -Infinity],
      ['an integer of 30 digits', '123456789012345678901234567890', Number('123456789012345678901234567890')],
      ['1E400', '1E400', Infinity],
      ['-0', '-0', 0],
      ['-0.0', '-0.0', -0],
    ])('should accept %s as a value', async (_name, literal, value) => {
      const op = await onlyOp(`[{"op": "add", "path": "/locations/-", "value": {"url": "u", "metadata": {"n": ${literal}}}}]`);
      expect(op).toMatchObject({ op: 'add', path: ['locations', '-'], hasValue: true, value: canonJs({ url: 'u', metadata: { n: value } }) });
    });

    it.each([
      ['NaN', 'NaN'],
      ['Infinity', 'Infinity'],
      ['-Infinity', '-Infinity'],
      ['5', '5'],
      ['"x"', '"x"'],
      ['null', 'null'],
      ['true', 'true'],
    ])('should 400 for the scalar body %s with Glance\'s "Unexpected body type"', async (_name, body) => {
      expect(await refused(body)).toEqual({ ok: false, status: 400, explanation: SCALAR, detail: '' });
      expect(await refused(body, V20)).toEqual({ ok: false, status: 400, explanation: SCALAR, detail: '' });
    });

    it('should 400 for an object body as not an array', async () => {
      expect(await refused('{}')).toEqual({ ok: false, status: 400, explanation: NOT_ARRAY, detail: '' });
      expect(await refused('{"op": "remove", "path": "/locations/0"}', V20)).toEqual({ ok: false, status: 400, explanation: NOT_ARRAY, detail: '' });
    });

    it.each([
      ['a lone continuation byte', Buffer.from([0x5b, 0x80, 0x5d])],
      ['0xff', Buffer.concat([Buffer.from('[{"op": "remove", "path": "/locations/0'), Buffer.from([0xff]), Buffer.from('"}]')])],
      ['an overlong slash', Buffer.concat([Buffer.from('[{"op": "remove", "path": "'), Buffer.from([0xc0, 0xaf]), Buffer.from('locations/0"}]')])],
      ['an encoded surrogate', Buffer.concat([Buffer.from('[{"op": "replace", "path": "/locations'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('", "value": []}]')])],
      ['a truncated sequence at the end', Buffer.concat([Buffer.from('[]'), Buffer.from([0xe2, 0x82])])],
      ['a code point past U+10FFFF', Buffer.concat([Buffer.from('["'), Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from('"]')])],
    ])('should 400 for invalid UTF-8 (%s) as malformed JSON', async (_name, body) => {
      expect(await refused(body)).toEqual({ ok: false, status: 400, explanation: MALFORMED, detail: '' });
    });

    it('should 400 for a body that starts with a UTF-8 BOM, or holds one outside a string', async () => {
      expect(await refused(Buffer.from('\ufeff[{"op": "remove", "path": "/locations/0"}]'))).toMatchObject({ status: 400, explanation: MALFORMED });
      expect(await refused(Buffer.from(' \ufeff[]'))).toMatchObject({ status: 400, explanation: MALFORMED });
      expect(await refused(Buffer.from('[]\ufeff'))).toMatchObject({ status: 400, explanation: MALFORMED });
    });

    it('should 400 for an integer of more than 4300 digits, and read one of 4300', async () => {
      expect(await refused(`[{"op": "add", "path": "/x", "value": ${'7'.repeat(4301)}}]`)).toMatchObject({ status: 400, explanation: MALFORMED });
      expect(await onlyOp(`[{"op": "add", "path": "/x", "value": -${'7'.repeat(4300)}}]`)).toMatchObject({ value: { $n: '-Infinity' } });
    });

    it('should read duplicate keys as Python does: the last value wins', async () => {
      expect(await onlyOp('[{"op": "add", "op": "remove", "path": "/name", "path": "/locations/1"}]')).toEqual({ op: 'remove', path: ['locations', '1'], hasValue: false, positions: [null, null, '1', '1'] });
      expect(await onlyOp('[{"remove": "/name", "remove": "/locations/-"}]', V20)).toMatchObject({ op: 'remove', path: ['locations', '-'] });
      expect(await onlyOp('[{"op": "replace", "path": "/locations", "value": [{"url": "u", "metadata": {}}], "value": []}]')).toMatchObject({ value: [] });
    });

    it('should keep lone surrogates of \\u escapes as Python does', async () => {
      expect(await onlyOp(change('"/locations\\ud800"', 'replace', '"x"'))).toMatchObject({ path: ['locations\ud800'] });
      expect(await onlyOp(change('"/locations\\udfff\\ud800"', 'replace', '"x"'))).toMatchObject({ path: ['locations\udfff\ud800'] });
      expect(await onlyOp(change('"/x"', 'add', '"\\ud83d\\ude00\\ud83d"'))).toMatchObject({ value: '\ud83d\ude00\ud83d' });
      expect(await refused('[{"op": "\\ud800", "path": "/x"}]')).toMatchObject({ status: 400, explanation: 'Invalid operation: `\ud800`. It must be one of the following: add, remove, replace.' });
    });

    it('should 500 as Glance does for nesting past Python\'s recursion limit, and read shallower bodies', async () => {
      const nested = (depth: number) => `[{"op": "add", "path": "/locations/-", "value": {"url": "u", "metadata": {"deep": ${'['.repeat(depth)}${']'.repeat(depth)}}}}]`;
      expect(await onlyOp(nested(200))).toMatchObject({ op: 'add', path: ['locations', '-'] });
      expect(await refused(nested(1000))).toEqual({ ok: false, status: 500, explanation: GLANCE_500, detail: '' });
      expect(await refused('['.repeat(100_000))).toEqual({ ok: false, status: 500, explanation: GLANCE_500, detail: '' });
      expect(await refused(`${'{"a": '.repeat(1000)}1${'}'.repeat(1000)}`)).toEqual({ ok: false, status: 500, explanation: GLANCE_500, detail: '' });
    });
  });

  describe('what Glance makes of odd ops and pointers', () => {
    it.each([
      ['1.0', '1.0'],
      ['1.5e-7', '1.5e-07'],
      ['1E16', '1e+16'],
      ['NaN', 'nan'],
      ['-Infinity', '-inf'],
      ['123456789012345678901234567890', '123456789012345678901234567890'],
      ['-0', '0'],
      ['false', 'False'],
      ['[1, "a\'b", {"k": null, "2": 1, "1": 2.0}]', '[1, "a\'b", {\'k\': None, \'2\': 1, \'1\': 2.0}]'],
      ['{}', '{}'],
    ])('should 400 for op %s with Glance\'s str() of it', async (literal, shown) => {
      expect(await refused(`[{"op": ${literal}, "path": "/locations/0"}]`)).toEqual({
        ok: false,
        status: 400,
        explanation: `Invalid operation: \`${shown}\`. It must be one of the following: add, remove, replace.`,
        detail: '',
      });
    });

    it.each([['5'], ['null'], ['["/locations/0"]'], ['{"p": "/locations/0"}'], ['true']])('should 500 for the pointer %s, which is not a string, as Glance does', async (pointer) => {
      expect(await refused(`[{"op": "remove", "path": ${pointer}}]`)).toEqual({ ok: false, status: 500, explanation: GLANCE_500, detail: '' });
      expect(await refused(`[{"remove": ${pointer}}]`, V20)).toEqual({ ok: false, status: 500, explanation: GLANCE_500, detail: '' });
    });

    it.each([
      ['٣ (Arabic-Indic three)', '\u0663', [null, null, null, '3'], ['3', '3', '3', '3']],
      ['𝟘 (double-struck zero)', '\ud835\udfd8', [null, '0', '0', '0'], ['0', '0', '0', '0']],
      ['١٠ (Arabic-Indic ten)', '\u0661\u0660', [null, null, null, null], ['10', '10', '10', '10']],
      ['0003', '0003', [null, null, null, '3'], ['3', '3', '3', '3']],
      ['² (superscript two, a digit int() refuses)', '\u00b2', [{ error: 'ValueError' }, { error: 'ValueError' }, { error: 'ValueError' }, { error: 'ValueError' }], null],
      ['Ⅳ (a numeral, not a digit)', '\u2163', [null, null, null, null], [null, null, null, null]],
      ['-', '-', [null, '0', '1', '4'], ['0', '1', '2', '5']],
      ['-1', '-1', [null, null, null, null], [null, null, null, null]],
    ])('should read the location position %s as Glance\'s controller does', async (_name, token, removes, adds) => {
      const remove = await onlyOp(change(esc(`/locations/${token}`), 'remove'));
      expect(remove).toMatchObject({ op: 'remove', path: ['locations', token], positions: removes });
      const add = await onlyOp(change(esc(`/locations/${token}`), 'add', '{"url": "u", "metadata": {}}'));
      expect(add).toMatchObject({ op: 'add', path: ['locations', token], positions: adds ?? removes });
    });

    it('should 500 for a position of more than 4300 digits, which int() refuses', async () => {
      expect(await onlyOp(change(`"/locations/${'1'.repeat(4301)}"`, 'remove'))).toMatchObject({ positions: POSITION_COUNTS.map(() => ({ error: 'ValueError' })) });
    });
  });

  describe('any body', () => {
    it(`should be read as Glance reads it (${RUNS} bodies, seed ${SEED})`, async () => {
      const started = Date.now();
      let schemaRefusals = 0;
      let parsed = 0;
      let locationOps = 0;
      await fc.assert(
        fc.asyncProperty(body(), async ([type, bytes]) => {
          const mine = ours(bytes, type);
          const reading = await glance.read(type, bytes);
          if (reading.schema) schemaRefusals++;
          if (mine.ok) {
            parsed++;
            locationOps += mine.changes.filter((c) => c.path[0] === 'locations').length;
          }
          const theirs = glances(reading);
          // Near Python's recursion limit, where Glance runs out of stack depends on how deep its own
          // call stack already is: a body nested that deep is refused either way (a 500 there, 400 here).
          const deepRefusal = !theirs.ok && theirs.status === 500 && !mine.ok && mine.status === 400 && nesting(bytes) >= 900;
          expect({ type, body: bytes.toString('latin1'), reading: deepRefusal ? theirs : mine }).toEqual({ type, body: bytes.toString('latin1'), reading: theirs });
        }),
        { numRuns: RUNS, seed: SEED },
      );
      process.stdout.write(
        `patch-glance: ${RUNS} bodies agreed in ${((Date.now() - started) / 1000).toFixed(1)} s: ${parsed} parsed, ${locationOps} location ops, ${schemaRefusals} Glance's image schema would also refuse\n`,
      );
    }, 120_000);
  });
});

// ---------------------------------------------------------------------------------------------
// The grammar of bodies.

/** A small deterministic generator, so that one drawn integer decides a string's escapes. */
function prng(seed: number): () => number {
  let x = seed | 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

/** A JSON string literal for `s`: each character raw or escaped as the seed says (lone surrogates and controls always escaped). */
function jsonString(s: string, seed: number): string {
  const rnd = prng(seed);
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const high = c >= 0xd800 && c <= 0xdbff;
    const pair = high && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff;
    const lone = (c >= 0xd800 && c <= 0xdfff && !pair) || false;
    const unit = (n: number) => {
      const h = n.toString(16).padStart(4, '0');
      return `\\u${rnd() < 0.5 ? h : h.toUpperCase()}`;
    };
    if (pair) {
      if (rnd() < 0.5) out += s[i] + (s[i + 1] as string);
      else out += unit(c) + unit(s.charCodeAt(i + 1));
      i++;
    } else if (lone || c < 0x20 || rnd() < 0.15) {
      const short: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r', '\b': '\\b', '\f': '\\f', '/': '\\/' };
      out += short[s[i] as string] !== undefined && rnd() < 0.5 ? short[s[i] as string] : unit(c);
    } else if (s[i] === '"' || s[i] === '\\') {
      out += `\\${s[i] as string}`;
    } else {
      out += s[i];
    }
  }
  return `${out}"`;
}

const str = (content: fc.Arbitrary<string>) => fc.tuple(content, fc.integer()).map(([s, seed]) => jsonString(s, seed));

const ws = fc.constantFrom('', '', '', ' ', '\n', '\t ', '\r\n');
const oddChar = fc.constantFrom(...PYTHON_SPACE, ...NOT_PYTHON_SPACE, '~', '/', '0', '1', '\u0663', '\u00b2', '\ud835\udfd8', '\ud800', '\udc00', '\ud83d\ude00', 'é', '"', '\\', '\u0000', '-');
const spaces = fc.array(fc.constantFrom(...PYTHON_SPACE, ...PYTHON_ONLY_SPACE, ...NOT_PYTHON_SPACE), { maxLength: 2 }).map((a) => a.join(''));

const word = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('locations', 'locations', 'locations', 'name', 'status', 'os_glance_x', 'tags', 'location', 'x', '') },
  { weight: 4, arbitrary: fc.constantFrom('-', '0', '1', '2', '4', '-1', '00', '99999999999999999999', '\u0663', '\u0661\u0660', '\ud835\udfd8', '\u00b2', '\u2460', '\u2163', '\u3007', '١') },
  { weight: 2, arbitrary: fc.string({ unit: fc.oneof(oddChar, fc.constantFrom('a', 'l', 'o', 'c')), maxLength: 4 }) },
  { weight: 1, arbitrary: fc.constantFrom('loc~1ations', 'locations~0', '~01', 'a~2', '~', 'loca~tions') },
);
/** Mostly no whitespace; otherwise one or two characters, Python's or not. */
const around = fc.oneof({ weight: 3, arbitrary: fc.constant('') }, { weight: 2, arbitrary: spaces });
const token = fc.tuple(around, word, around).map(([a, w, b]) => a + w + b);
const position = fc.constantFrom('-', '0', '1', '2', '4', '-1', '00', 'x', '99999999999999999999', '\u0663', '\u0661\u0660', '\ud835\udfd8', '\u00b2', '\u2460', '\u2163', '\u3007', '');
/** `/locations`, `/locations/N`: what the guard exists for, spelled every way. */
const locationPointer = fc
  .tuple(fc.constantFrom('/', '/', '/', '//'), around, fc.constantFrom('locations', 'locations', 'locations', 'loc~1ations', 'Locations'), around, fc.option(fc.tuple(around, position, around), { freq: 2 }))
  .map(([lead, a, name, b, pos]) => `${lead}${a}${name}${b}${pos === null ? '' : `/${pos.join('')}`}`);
const pointer = fc.oneof(
  { weight: 8, arbitrary: locationPointer },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom('/', '/', '/', '//', ''), fc.array(token, { minLength: 1, maxLength: 3 }), fc.constantFrom('', '', '', '/', '~')).map(([lead, t, tail]) => lead + t.join('/') + tail) },
  { weight: 1, arbitrary: fc.constantFrom('', '/', '//', '/ /', '/\u3000/', '/\u001f/', 'locations/0', '/locations/', '/locations//0', '/locations/\u2028/0') },
);

const numberText = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('0', '-0', '1', '1.0', '-1.5e-7', '1e16', '1E400', '-1e400', '123456789012345678901234567890', '0.0001', '1e-5', '2.0', 'NaN', 'Infinity', '-Infinity', '1e+2') },
  { weight: 4, arbitrary: fc.integer().map(String) },
  { weight: 4, arbitrary: fc.double().map((d) => (Number.isFinite(d) ? String(d) : 'NaN')) },
  // Not numbers to either reader.
  { weight: 1, arbitrary: fc.constantFrom('01', '1.', '.5', '-', '+1', 'nan', '-NaN', 'True', 'None') },
);
const scalarText = fc.oneof(
  { weight: 6, arbitrary: numberText },
  { weight: 4, arbitrary: fc.constantFrom('null', 'true', 'false') },
  { weight: 1, arbitrary: fc.constantFrom('True', 'None', 'undefined') },
  { weight: 6, arbitrary: str(fc.string({ unit: fc.oneof(oddChar, fc.constantFrom('a', 'b')), maxLength: 6 })) },
);

const { valueText } = fc.letrec<{ valueText: string; arrayText: string; objectText: string }>((tie) => ({
  valueText: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalarText, tie('arrayText'), tie('objectText')),
  arrayText: fc.tuple(ws, fc.array(tie('valueText'), { maxLength: 3 })).map(([w, items]) => `[${w}${items.join(`,${w}`)}]`),
  objectText: fc
    .array(fc.tuple(str(fc.constantFrom('url', 'metadata', 'a', '1', '__proto__', 'op', 'value')), tie('valueText')), { maxLength: 3 })
    .map((members) => `{${members.map(([k, v]) => `${k}: ${v}`).join(', ')}}`),
}));

const locationValue = fc.constantFrom('[]', '{}', '[{"url": "http://a/b", "metadata": {}}]', '{"url": "http://a/b", "metadata": {"k": NaN}}', 'null', '0', '""', 'NaN', '[NaN]');
const anyValue = fc.oneof({ weight: 2, arbitrary: locationValue }, { weight: 2, arbitrary: valueText }, { weight: 1, arbitrary: scalarText });
const pointerValue = fc.oneof({ weight: 10, arbitrary: str(pointer) }, { weight: 1, arbitrary: fc.oneof(numberText, fc.constantFrom('null', '["/locations/0"]', '{}', 'true')) });
const opName = fc.oneof(
  { weight: 10, arbitrary: str(fc.constantFrom('add', 'remove', 'replace')) },
  { weight: 1, arbitrary: str(fc.constantFrom('move', 'REMOVE', '', 'add ', '\ud800', 'test')) },
  { weight: 1, arbitrary: fc.oneof(numberText, fc.constantFrom('null', 'true', '[]', '["add"]', '{"a": 1}', '[1, "a\'b", {"k": null, "2": 1}]')) },
);

/** v2.1's operation object: op, path, value; sometimes without op or with a second path. */
const changeD10: fc.Arbitrary<[string, string][]> = fc.tuple(fc.constantFrom(0, 1, 1, 1, 1, 1, 2), opName, pointerValue, fc.option(anyValue, { freq: 4 })).map(([extra, op, p, value]) => {
  const members: [string, string][] = [
    ['"op"', op],
    ['"path"', p],
  ];
  if (value !== null) members.push(['"value"', value]);
  if (extra === 0) members.shift();
  if (extra === 2) members.push(['"path"', '"/locations/0"']);
  return members;
});

/** v2.0's: a member named after the op; sometimes a second op member, or v2.1's op too. */
const changeD4: fc.Arbitrary<[string, string][]> = fc
  .tuple(fc.constantFrom('add', 'remove', 'replace'), fc.constantFrom('', '', '', '', '', 'add', 'op'), pointerValue, fc.option(anyValue, { freq: 4 }))
  .map(([op, second, p, value]) => {
    const members: [string, string][] = [[`"${op}"`, p]];
    if (second === 'add') members.push(['"add"', '"/x"']);
    if (second === 'op') members.push(['"op"', `"${op}"`]);
    if (value !== null) members.push(['"value"', value]);
    return members;
  });

/** A location op as Glance takes it (right op, right depth, a value where one is needed), its pointer spelled every way. */
const locationChange = (draft: 4 | 10): fc.Arbitrary<[string, string][]> =>
  fc
    .tuple(fc.constantFrom('add', 'remove', 'replace'), fc.constantFrom('/', '/', '//'), around, around, fc.tuple(around, position, around), locationValue, fc.integer())
    .map(([op, lead, a, b, pos, value, seed]) => {
      const pointer = `${lead}${a}locations${b}${op === 'replace' ? '' : `/${pos.join('')}`}`;
      const members: [string, string][] = draft === 10 ? [['"op"', jsonString(op, seed)], ['"path"', jsonString(pointer, seed + 1)]] : [[`"${op}"`, jsonString(pointer, seed)]];
      if (op !== 'remove' || seed % 3 === 0) members.push(['"value"', value]);
      return members;
    });

/** An operation object, mostly in the draft of the media type, members in either order. */
const changeText = (draft: 4 | 10) =>
  fc
    .tuple(
      fc.oneof(
        { weight: 6, arbitrary: locationChange(draft) },
        { weight: 8, arbitrary: draft === 10 ? changeD10 : changeD4 },
        { weight: 1, arbitrary: draft === 10 ? changeD4 : changeD10 },
      ),
      fc.boolean(),
      ws,
    )
    .map(([members, reverse, w]) => `{${w}${(reverse ? [...members].reverse() : members).map(([k, v]) => `${k}:${w}${v}`).join(`,${w}`)}${w}}`);

const deep = fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1000, max: 1400 }));

const bodyText = (draft: 4 | 10) => fc.oneof(
  { weight: 12, arbitrary: fc.tuple(ws, fc.array(fc.oneof({ weight: 12, arbitrary: changeText(draft) }, { weight: 1, arbitrary: scalarText }), { maxLength: 3 })).map(([w, ops]) => `${w}[${ops.join(`,${w}`)}]${w}`) },
  { weight: 2, arbitrary: valueText },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '[', '[]]', '[],', '[{}]', '{}', '5', '"x"', 'null', 'NaN', '-Infinity', '[{"op": "remove", "path": "/locations/0"},]') },
  {
    weight: 1,
    arbitrary: fc.tuple(deep, fc.boolean()).map(([d, inValue]) =>
      inValue ? `[{"op": "add", "path": "/locations/-", "value": ${'['.repeat(d)}${']'.repeat(d)}}]` : `${'['.repeat(d)}${']'.repeat(d)}`,
    ),
  },
);

const INVALID_UTF8 = [[0xff], [0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xef, 0xbb, 0xbf]];

/** The bytes: the text's UTF-8, sometimes after a BOM or with an invalid sequence (or a BOM) inside. */
const bodyBytes = (draft: 4 | 10) => fc.tuple(bodyText(draft), fc.oneof({ weight: 24, arbitrary: fc.constant(null) }, { weight: 2, arbitrary: fc.tuple(fc.nat(), fc.constantFrom(...INVALID_UTF8)) }, { weight: 1, arbitrary: fc.constant('bom' as const) })).map(
  ([text, mutation]) => {
    const bytes = Buffer.from(text, 'utf8');
    if (mutation === null) return bytes;
    if (mutation === 'bom') return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]);
    const [at, seq] = mutation;
    const i = bytes.length === 0 ? 0 : at % bytes.length;
    return Buffer.concat([bytes.subarray(0, i), Buffer.from(seq), bytes.subarray(i)]);
  },
);

function body(): fc.Arbitrary<[MediaType, Buffer]> {
  return fc.oneof(fc.tuple(fc.constant<MediaType>(V21), bodyBytes(10)), fc.tuple(fc.constant<MediaType>(V20), bodyBytes(4)));
}

// ---------------------------------------------------------------------------------------------
// Glance's schema 400s: the guard's reading of a patch it judges (readLocationPatch).

/** What the guard answers for a body before it asks any status: Glance's refusal, or the location ops it goes on to judge. */
type GuardReading = { refused: true; status: number; explanation: string } | { refused: false; ops: PatchOp[] };

function guardReads(body: Buffer, type: MediaType): GuardReading {
  try {
    return { refused: false, ops: readLocationPatch(body, type) };
  } catch (err) {
    if (!isGlanceError(err)) throw err;
    const e = err as GlanceError;
    // Where Glance answers a bare 500, the suite answers a 400 of its own.
    if (e.type === 'patch.unreadable') return { refused: true, status: 500, explanation: GLANCE_500 };
    return { refused: true, status: e.status, explanation: e.explanation };
  }
}

/** Glance's whole answer to the body's reading: its refusal, or null when its deserializer takes it. */
function glanceRefusal(r: GlanceReading): { status: number; explanation: string } | null {
  if (r.schema) return { status: r.schema[0], explanation: r.schema[1] };
  if (r.schema === null) return null;
  return r.ok ? null : { status: r.status, explanation: r.explanation };
}

/** Whether `body` holds location ops as Glance reads it whatever its values. */
function hasLocationOps(body: Buffer, type: MediaType): boolean {
  try {
    return locationOps(parseImagePatch(body, type)).length > 0;
  } catch {
    return false;
  }
}

/** Glance's answer for `body`, which must be the guard's. */
async function schemaRefusal(body: string, type: MediaType = V21): Promise<{ status: number; explanation: string }> {
  const bytes = Buffer.from(body, 'utf8');
  const theirs = glanceRefusal(await glance.read(type, bytes));
  const mine = guardReads(bytes, type);
  expect(mine).toEqual(theirs === null ? mine : { refused: true, ...theirs });
  if (theirs === null) throw new Error(`Glance takes ${body}`);
  return theirs;
}

const SCHEMA_400 = "Provided object does not match schema 'image': ";
const locationItemSchema = [
  "{'properties': {'metadata': {'type': 'object'},",
  "                'url': {'maxLength': 255, 'type': 'string'},",
  "                'validation_data': {'additionalProperties': False,",
  "                                    'description': 'Values to be used '",
  "                                                   'to populate the '",
  "                                                   'corresponding '",
  "                                                   'image properties. '",
  "                                                   'If the image '",
  "                                                   'status is not '",
  "                                                   \"'queued', values \"",
  "                                                   'must exactly match '",
  "                                                   'those already '",
  "                                                   'contained in the '",
  "                                                   'image properties.',",
  "                                    'properties': {'checksum': {'maxLength': 32,",
  "                                                                'minLength': 32,",
  "                                                                'type': 'string'},",
  "                                                   'os_hash_algo': {'maxLength': 64,",
  "                                                                    'type': 'string'},",
  "                                                   'os_hash_value': {'maxLength': 128,",
  "                                                                     'type': 'string'}},",
  "                                    'required': ['os_hash_algo',",
  "                                                 'os_hash_value'],",
  "                                    'type': 'object',",
  "                                    'writeOnly': True}},",
  " 'required': ['url', 'metadata'],",
  " 'type': 'object'}",
];
const locationsSchema = [
  "    {'description': 'A set of URLs to access the image file kept in '",
  "                    'external store',",
  "     'items': {'properties': {'metadata': {'type': 'object'},",
  "                              'url': {'maxLength': 255, 'type': 'string'},",
  "                              'validation_data': {'additionalProperties': False,",
  "                                                  'description': 'Values '",
  "                                                                 'to be '",
  "                                                                 'used to '",
  "                                                                 'populate '",
  "                                                                 'the '",
  "                                                                 'corresponding '",
  "                                                                 'image '",
  "                                                                 'properties. '",
  "                                                                 'If the '",
  "                                                                 'image '",
  "                                                                 'status '",
  "                                                                 'is not '",
  "                                                                 \"'queued', \"",
  "                                                                 'values '",
  "                                                                 'must '",
  "                                                                 'exactly '",
  "                                                                 'match '",
  "                                                                 'those '",
  "                                                                 'already '",
  "                                                                 'contained '",
  "                                                                 'in the '",
  "                                                                 'image '",
  "                                                                 'properties.',",
  "                                                  'properties': {'checksum': {'maxLength': 32,",
  "                                                                              'minLength': 32,",
  "                                                                              'type': 'string'},",
  "                                                                 'os_hash_algo': {'maxLength': 64,",
  "                                                                                  'type': 'string'},",
  "                                                                 'os_hash_value': {'maxLength': 128,",
  "                                                                                   'type': 'string'}},",
  "                                                  'required': ['os_hash_algo',",
  "                                                               'os_hash_value'],",
  "                                                  'type': 'object',",
  "                                                  'writeOnly': True}},",
  "               'required': ['url', 'metadata'],",
  "               'type': 'object'},",
  "     'type': 'array'}",
];
/** Four spaces before each line, as str(ValidationError) indents the schema and the instance. */
const shown = (lines: string[]) => lines.map((l) => `    ${l}`).join('\n');

describe("1. Location changes: Glance's schema 400s, answered by the guard before any status", () => {
  it.each([
    [
      'replace /locations with a non-list',
      '[{"op": "replace", "path": "/locations", "value": "x"}]',
      `'x' is not of type 'array'\n\nFailed validating 'type' in schema['properties']['locations']:\n${locationsSchema.join('\n')}\n\nOn instance['locations']:\n    'x'`,
    ],
    [
      'add /locations/- with a non-object',
      '[{"op": "add", "path": "/locations/-", "value": 5}]',
      `5 is not of type 'object'\n\nFailed validating 'type' in schema['properties']['locations']['items']:\n${shown(locationItemSchema)}\n\nOn instance['locations'][0]:\n    5`,
    ],
    [
      'a location without url',
      '[{"op": "add", "path": "/locations/0", "value": {"metadata": {}}}]',
      `'url' is a required property\n\nFailed validating 'required' in schema['properties']['locations']['items']:\n${shown(locationItemSchema)}\n\nOn instance['locations'][0]:\n    {'metadata': {}}`,
    ],
    [
      'a location without metadata',
      '[{"op": "add", "path": "/locations/-", "value": {"url": "http://a/b"}}]',
      `'metadata' is a required property\n\nFailed validating 'required' in schema['properties']['locations']['items']:\n${shown(locationItemSchema)}\n\nOn instance['locations'][0]:\n    {'url': 'http://a/b'}`,
    ],
    [
      'metadata not an object',
      '[{"op": "replace", "path": "/locations", "value": [{"url": "http://a/b", "metadata": [1.0]}]}]',
      "[1.0] is not of type 'object'\n\nFailed validating 'type' in schema['properties']['locations']['items']['properties']['metadata']:\n    {'type': 'object'}\n\nOn instance['locations'][0]['metadata']:\n    [1.0]",
    ],
    [
      'a url of 256 characters',
      `[{"op": "add", "path": "/locations/-", "value": {"url": "${'u'.repeat(256)}", "metadata": {}}}]`,
      `'${'u'.repeat(256)}' is too long\n\nFailed validating 'maxLength' in schema['properties']['locations']['items']['properties']['url']:\n    {'maxLength': 255, 'type': 'string'}\n\nOn instance['locations'][0]['url']:\n    '${'u'.repeat(256)}'`,
    ],
    [
      'a name of the wrong type before a location op',
      '[{"op": "replace", "path": "/name", "value": {"b": 1, "a": true}}, {"op": "remove", "path": "/locations/0"}]',
      "{'b': 1, 'a': True} is not of type 'null', 'string'\n\nFailed validating 'type' in schema['properties']['name']:\n    {'description': 'Descriptive name for the image',\n     'maxLength': 255,\n     'type': ['null', 'string']}\n\nOn instance['name']:\n    {'a': True, 'b': 1}",
    ],
    [
      'a custom property that is not a string, after a location op',
      '[{"op": "remove", "path": "/locations/0"}, {"op": "add", "path": "/x_y", "value": 12345678901234567890}]',
      "12345678901234567890 is not of type 'string'\n\nFailed validating 'type' in schema['additionalProperties']:\n    {'type': 'string'}\n\nOn instance['x_y']:\n    12345678901234567890",
    ],
  ])('should answer %s with Glance\'s 400 and text', async (_name, body, text) => {
    for (const type of [V21, V20] as MediaType[]) {
      const sent = type === V21 ? body : body.replace(/"op": "(\w+)", "path"/g, '"$1"');
      expect(await schemaRefusal(sent, type)).toEqual({ status: 400, explanation: SCHEMA_400 + text });
    }
  });

  it.each([['5'], ['"x"'], ['null'], ['1.5'], ['NaN']])("should 400 for the scalar body %s with Glance's \"Unexpected body type\"", async (body) => {
    expect(await schemaRefusal(body)).toEqual({ status: 400, explanation: SCALAR });
    expect(await schemaRefusal(body, V20)).toEqual({ status: 400, explanation: SCALAR });
  });

  it("should answer the first change's schema 400 before a later change that cannot be read", async () => {
    const r = await schemaRefusal('[{"op": "replace", "path": "/min_ram", "value": "1"}, {"op": "move", "path": "/locations/0"}]');
    expect(r.explanation).toMatch(/^Provided object does not match schema 'image': '1' is not of type 'integer'/);
  });

  it('should leave a patch without location ops to the service, whatever its values', () => {
    expect(guardReads(Buffer.from('[{"op": "replace", "path": "/name", "value": 5}]'), V21)).toEqual({ refused: false, ops: [] });
  });

  it(`should answer every body as Glance does where its deserializer refuses, and judge the same ops otherwise (${SCHEMA_RUNS} bodies, seed ${SEED})`, async () => {
    const started = Date.now();
    const counts = { schema: 0, otherRefusals: 0, judged: 0, leftToService: 0, deep: 0 };
    await fc.assert(
      fc.asyncProperty(schemaBody(), async ([type, text]) => {
        const bytes = Buffer.from(text, 'utf8');
        const reading = await glance.read(type, bytes);
        const theirs = glanceRefusal(reading);
        const mine = guardReads(bytes, type);
        const label = { type, body: text };
        if (theirs === null) {
          // Glance's deserializer takes it: the guard judges the same location ops as before.
          counts.judged++;
          let before: PatchOp[];
          try {
            before = locationOps(parseImagePatch(bytes, type));
          } catch {
            before = [];
          }
          expect({ ...label, mine }).toEqual({ ...label, mine: { refused: false, ops: before } });
          return;
        }
        if (reading.schema) counts.schema++;
        else counts.otherRefusals++;
        if (!mine.refused) {
          // Only a schema 400 of a patch without location ops is left to the service behind.
          counts.leftToService++;
          expect({ ...label, schema: Boolean(reading.schema), locationOps: hasLocationOps(bytes, type) }).toEqual({ ...label, schema: true, locationOps: false });
          return;
        }
        // Past the nesting the suite shows, Glance's pprint may or may not run out of stack: refused either way.
        if (mine.status === 500 && nesting(bytes) > PRINTABLE_NESTING) {
          counts.deep++;
          return;
        }
        expect({ ...label, answer: { status: mine.status, explanation: mine.explanation } }).toEqual({ ...label, answer: theirs });
      }),
      { numRuns: SCHEMA_RUNS, seed: SEED },
    );
    process.stdout.write(
      `patch-glance schema: ${SCHEMA_RUNS} bodies agreed in ${((Date.now() - started) / 1000).toFixed(1)} s (seed ${SEED}): ${counts.schema} schema 400s, ${counts.otherRefusals} other refusals, ` +
        `${counts.judged} taken by Glance's deserializer, ${counts.leftToService} schema 400s without location ops left to the service, ${counts.deep} too deep to show\n`,
    );
    expect(counts.schema).toBeGreaterThan(SCHEMA_RUNS / 5);
  }, 180_000);
});

// The grammar of patches with values of every kind.

const jsonText = (v: unknown) => JSON.stringify(v);
/** Text with what makes pprint wrap and repr escape: spaces, newlines, quotes, non-ASCII, controls. */
const oddText = fc.string({ unit: fc.constantFrom('a', 'b', ' ', ' ', '\n', "'", '"', 'é', '\u3000', '\u0085', '\ud83d\ude00', '\u0000', '\\', 'x'), maxLength: 12 });
const longText = fc.tuple(fc.integer({ min: 240, max: 300 }), fc.constantFrom('u', 'a b ', 'x\n', "it's ", 'é')).map(([n, unit]) => unit.repeat(Math.ceil(n / unit.length)).slice(0, n));
const scalarValue = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('0', '1', '-1', '1.0', '0.0', '5', '2.5', '1e400', 'NaN', '-Infinity', '12345678901234567890', 'true', 'false', 'null', '""') },
  { weight: 4, arbitrary: fc.constantFrom('"x"', '"public"', '"private"', '"qcow2"', '"bare"', '"raw "', '"on_image_deletion"', '"01234567-89ab-cdef-0123-456789abcdef"', '"01234567-89ab-cdef-0123-456789abcdef\\n"', '"http://a/b"') },
  { weight: 3, arbitrary: oddText.map(jsonText) },
  { weight: 1, arbitrary: longText.map(jsonText) },
  { weight: 1, arbitrary: fc.integer().map(String) },
);
const { junk } = fc.letrec<{ junk: string }>((tie) => ({
  junk: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalarValue,
    fc.array(tie('junk'), { maxLength: 3 }).map((items) => `[${items.join(', ')}]`),
    fc.array(fc.tuple(fc.constantFrom('url', 'metadata', 'a', 'b', 'k', 'validation_data', 'checksum', 'os_hash_algo', 'zz', 'é', '\ud83d\ude00'), tie('junk')), { maxLength: 3 }).map((m) => `{${m.map(([k, v]) => `${jsonText(k)}: ${v}`).join(', ')}}`),
  ),
}));
const urlValue = fc.oneof({ weight: 4, arbitrary: fc.constant('"http://a/b"') }, { weight: 2, arbitrary: longText.map(jsonText) }, { weight: 2, arbitrary: scalarValue }, { weight: 1, arbitrary: junk });
const metadataValue = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('{}', '{"k": "v"}', '{"n": NaN, "l": [1, 2.0]}') }, { weight: 2, arbitrary: junk });
const validationData = fc.oneof(
  fc.constantFrom('{"os_hash_algo": "sha512", "os_hash_value": "ab"}', '{}', '{"checksum": "short", "os_hash_algo": "sha512", "os_hash_value": "ab"}', '{"os_hash_algo": 1, "zz": 1, "aa": 2}', '{"os_hash_algo": "sha512", "os_hash_value": "ab", "b": 1}'),
  junk,
);
/** A location: mostly an object, with or without each member, in either order. */
const locationObject = fc
  .tuple(fc.option(urlValue, { freq: 5 }), fc.option(metadataValue, { freq: 5 }), fc.option(validationData, { freq: 1 }), fc.option(junk, { freq: 1 }), fc.boolean())
  .map(([url, metadata, vd, extra, reverse]) => {
    const members: string[] = [];
    if (url !== null) members.push(`"url": ${url}`);
    if (metadata !== null) members.push(`"metadata": ${metadata}`);
    if (vd !== null) members.push(`"validation_data": ${vd}`);
    if (extra !== null) members.push(`"other": ${extra}`);
    return `{${(reverse ? members.reverse() : members).join(', ')}}`;
  });
const locationItem = fc.oneof({ weight: 5, arbitrary: locationObject }, { weight: 1, arbitrary: junk });
const locationList = fc.oneof({ weight: 4, arbitrary: fc.array(locationItem, { minLength: 1, maxLength: 3 }).map((items) => `[${items.join(', ')}]`) }, { weight: 1, arbitrary: junk });

const PROPERTIES = ['name', 'visibility', 'tags', 'min_ram', 'min_disk', 'protected', 'os_hidden', 'owner', 'disk_format', 'container_format', 'kernel_id', 'description', 'cinder_encryption_key_deletion_policy', 'x_custom', 'stores', 'status'];
const propertyValue = fc.oneof(
  { weight: 3, arbitrary: scalarValue },
  { weight: 2, arbitrary: fc.array(fc.oneof(scalarValue, junk), { maxLength: 3 }).map((a) => `[${a.join(', ')}]`) },
  { weight: 1, arbitrary: junk },
);

/** One change as [op, pointer, value text or null]. */
const schemaChange: fc.Arbitrary<[string, string, string | null]> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('/locations/-', '/locations/0', '/locations/1', '/ locations/-'), locationItem).map(([p, v]): [string, string, string | null] => ['add', p, v]) },
  { weight: 2, arbitrary: locationList.map((v): [string, string, string | null] => ['replace', '/locations', v]) },
  { weight: 1, arbitrary: fc.constantFrom('/locations/0', '/locations/-').map((p): [string, string, string | null] => ['remove', p, null]) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom('add', 'replace'), fc.constantFrom(...PROPERTIES), propertyValue).map(([op, p, v]): [string, string, string | null] => [op, `/${p}`, v]) },
  { weight: 1, arbitrary: fc.constantFrom(...PROPERTIES).map((p): [string, string, string | null] => ['remove', `/${p}`, null]) },
  { weight: 1, arbitrary: fc.constantFrom<[string, string, string | null]>(['move', '/locations/0', null], ['add', '/locations', '[]'], ['replace', '/locations/0', '{}'], ['add', '/name', null]) },
);

function schemaBody(): fc.Arbitrary<[MediaType, string]> {
  return fc.tuple(fc.constantFrom<MediaType>(V21, V20), fc.array(schemaChange, { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 40 })).map(([type, changes, oddBody]) => {
    if (oddBody === 0) return [type, '5'];
    const ops = changes.map(([op, p, v]) => {
      const value = v === null ? '' : `, "value": ${v}`;
      return type === V21 ? `{"op": ${jsonText(op)}, "path": ${jsonText(p)}${value}}` : `{${jsonText(op)}: ${jsonText(p)}${value}}`;
    });
    return [type, `[${ops.join(', ')}]`];
  });
}
