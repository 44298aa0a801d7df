/**
 * Python 3.11's reading of text and values, where Glance's reading of a patch relies on it:
 * `str.strip()` and `re`'s `\s`, `str.isdigit()` and `int()` (any Unicode decimal digit), and
 * `str()`/`repr()` of what `json.loads` makes (a {@link PyValue}, read by `readPythonJson`). The Unicode tables are Python's own
 * (./python-unicode.ts), not the running Node's, so that every Node reads a patch alike.
 */
import type { PyValue } from '../http/json';
import { DECIMAL_ZEROS, NOT_PRINTABLE, OTHER_DIGITS } from './python-unicode';

/** Python's `str.isspace()` characters, which `str.strip()` removes and `re`'s `\s` matches (all in the BMP). */
export const PY_WHITESPACE =
  '\t\n\v\f\r\u001c\u001d\u001e\u001f \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';
const SPACES = new Set(PY_WHITESPACE);

/** Python's `str.isspace()` for one code point. */
export function pyIsSpace(codePoint: number): boolean {
  return codePoint < 0x10000 && SPACES.has(String.fromCharCode(codePoint));
}

/** Python's `s.strip()`: whitespace as Python knows it, which is not JavaScript's `trim()`. */
export function pyStrip(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && SPACES.has(s[start] as string)) start++;
  while (end > start && SPACES.has(s[end - 1] as string)) end--;
  return s.slice(start, end);
}

/** Sorted `[first, last]` code point ranges of a table of ./python-unicode.ts. */
function ranges(table: string): [number, number][] {
  const out: [number, number][] = [];
  let previous = -1;
  for (const pair of table.split(',')) {
    const [gap = '', length = ''] = pair.split('.');
    const first = previous + 1 + parseInt(gap, 36);
    previous = first + parseInt(length, 36);
    out.push([first, previous]);
  }
  return out;
}

function inRanges(table: readonly (readonly [number, number])[], codePoint: number): boolean {
  let lo = 0;
  let hi = table.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [first, last] = table[mid] as readonly [number, number];
    if (codePoint < first) hi = mid - 1;
    else if (codePoint > last) lo = mid + 1;
    else return true;
  }
  return false;
}

let notPrintable: [number, number][] | undefined;
let otherDigits: [number, number][] | undefined;
const decimalRuns: readonly [number, number][] = DECIMAL_ZEROS.map((zero) => [zero, zero + 9]);

/** The value of a decimal digit (`str.isdecimal()`), or -1. */
export function pyDecimal(codePoint: number): number {
  let lo = 0;
  let hi = DECIMAL_ZEROS.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const zero = DECIMAL_ZEROS[mid] as number;
    if (codePoint < zero) hi = mid - 1;
    else if (codePoint > zero + 9) lo = mid + 1;
    else return codePoint - zero;
  }
  return -1;
}

/** Python's `str.isdigit()` for one code point: decimal digits and the other digits (superscripts, circled...). */
export function pyIsDigitChar(codePoint: number): boolean {
  return inRanges(decimalRuns, codePoint) || inRanges((otherDigits ??= ranges(OTHER_DIGITS)), codePoint);
}

/** Python's `str.isprintable()` for one code point. */
export function pyIsPrintable(codePoint: number): boolean {
  return !inRanges((notPrintable ??= ranges(NOT_PRINTABLE)), codePoint);
}

/** Python's `s.isdigit()`: not empty, and every code point a digit. */
export function pyIsDigit(s: string): boolean {
  if (s.length === 0) return false;
  for (const ch of s) if (!pyIsDigitChar(ch.codePointAt(0) as number)) return false;
  return true;
}

/** Python 3.11's default `sys.get_int_max_str_digits()`: longer strings are refused by `int()`. */
export const PY_INT_MAX_STR_DIGITS = 4300;

/**
 * Python's `int(s)` of a string that `isdigit()` accepts, or undefined where it raises
 * `ValueError`: a digit that is not decimal (`'²'`), or more than 4300 digits.
 */
export function pyIntOfDigits(s: string): bigint | undefined {
  let digits = '';
  for (const ch of s) {
    const d = pyDecimal(ch.codePointAt(0) as number);
    if (d < 0) return undefined;
    digits += String(d);
  }
  if (digits.length === 0 || digits.length > PY_INT_MAX_STR_DIGITS) return undefined;
  return BigInt(digits);
}

/** Python's `repr()` of a float. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  // toExponential() gives the shortest digits that read back as x, as Python's repr does.
  const [mantissa = '', exponent = ''] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const exp = Number(exponent);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0] ?? ''}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

/** Python's `repr()` of a str: its choice of quotes, its escapes, Python's idea of printable. */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += `\\x${hex(c, 2)}`;
    else if (c < 0x7f || pyIsPrintable(c)) out += ch;
    else if (c <= 0xff) out += `\\x${hex(c, 2)}`;
    else if (c <= 0xffff) out += `\\u${hex(c, 4)}`;
    else out += `\\U${hex(c, 8)}`;
  }
  return out + quote;
}

const hex = (c: number, width: number) => c.toString(16).padStart(width, '0');

/** Python's `repr()` of a value read by `json.loads` ({@link PyValue}). */
export function pyRepr(v: PyValue): string {
  return repr(v, false);
}

/** Python's `str()`: a str as it is, anything else as `repr()`. */
export function pyStrOf(v: PyValue): string {
  return typeof v === 'string' ? v : repr(v, false);
}

/**
 * Python's `str()` of a plain JavaScript value as JSON.parse makes it from Glance's JSON: objects
 * as dicts, and a number as an int when it is integral (as it was in the JSON), else as a float.
 */
export function pyStrOfJs(v: unknown): string {
  return typeof v === 'string' ? v : repr(v, true);
}

function repr(v: unknown, jsNumbers: boolean): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return jsNumbers && Number.isInteger(v) ? BigInt(v).toString() : pyFloatRepr(v);
  if (typeof v === 'string') return pyStrRepr(v);
  if (Array.isArray(v)) return `[${v.map((x: unknown) => repr(x, jsNumbers)).join(', ')}]`;
  const entries = v instanceof Map ? [...(v as Map<string, unknown>).entries()] : Object.entries(v as object);
  return `{${entries.map(([k, x]) => `${pyStrRepr(k)}: ${repr(x, jsNumbers)}`).join(', ')}}`;
}

/**
 * The JavaScript value of a {@link PyValue}, as `JSON.parse` makes it: ints become numbers (as
 * close as a double gets), dicts plain objects (a `__proto__` key an own property).
 */
export function toJsValue(v: PyValue): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(toJsValue);
  if (v instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of v) {
      if (k === '__proto__') Object.defineProperty(out, k, { value: toJsValue(x), writable: true, enumerable: true, configurable: true });
      else out[k] = toJsValue(x);
    }
    return out;
  }
  return v;
}

/** Python's `len()` of a str: code points (a lone surrogate is one). */
export function pyLen(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** Python's `a < b` of two strs, -1, 0 or 1: code point by code point (not UTF-16 unit by unit). */
export function pyCompareStr(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = (x[i] as string).codePointAt(0) as number;
    const q = (y[i] as string).codePointAt(0) as number;
    if (p !== q) return p < q ? -1 : 1;
  }
  return x.length === y.length ? 0 : x.length < y.length ? -1 : 1;
}

/** pprint's `_safe_repr` with `sort_dicts=True`: `repr()`, a dict's items sorted by key. */
export function pySortedRepr(v: PyValue): string {
  if (Array.isArray(v)) return `[${v.map(pySortedRepr).join(', ')}]`;
  if (v instanceof Map) return `{${sortedItems(v).map(([k, x]) => `${pyStrRepr(k)}: ${pySortedRepr(x)}`).join(', ')}}`;
  return pyRepr(v);
}

const sortedItems = (d: Map<string, PyValue>) => [...d.entries()].sort((a, b) => pyCompareStr(a[0], b[0]));

/** `str.splitlines(True)`: the line breaks Python knows, each kept with its line. */
function pySplitLinesKeep(s: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (!LINE_BREAKS.has(s[i] as string)) continue;
    if (s[i] === '\r' && s[i + 1] === '\n') i++;
    out.push(s.slice(start, i + 1));
    start = i + 1;
  }
  if (start < s.length) out.push(s.slice(start));
  return out;
}

const LINE_BREAKS = new Set('\n\r\v\f\u001c\u001d\u001e\u0085\u2028\u2029');

/** `re.findall(r'\S*\s*', line)` without its empty last match: runs of non-space, each with the space after it. */
function pyWordsWithSpace(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    const start = i;
    while (i < line.length && !SPACES.has(line[i] as string)) i++;
    while (i < line.length && SPACES.has(line[i] as string)) i++;
    out.push(line.slice(start, i));
  }
  return out;
}

/**
 * Python 3.11's `pprint.pformat(v, width=width)` (indent 1, `sort_dicts=True`, not compact) of a
 * value read by `json.loads` or written as one: what jsonschema's `str(ValidationError)` shows.
 */
export function pyPformat(value: PyValue, width = 80): string {
  let out = '';
  const format = (v: PyValue, indent: number, allowance: number, level: number): void => {
    const rep = pySortedRepr(v);
    if (pyLen(rep) > width - indent - allowance) {
      if (typeof v === 'string') return formatStr(v, indent, allowance, level + 1);
      if (Array.isArray(v)) {
        out += '[';
        formatItems(v, indent, allowance + 1, level + 1);
        out += ']';
        return;
      }
      if (v instanceof Map) {
        out += '{';
        if (v.size > 0) formatDictItems(sortedItems(v), indent, allowance + 1, level + 1);
        out += '}';
        return;
      }
    }
    out += rep;
  };
  const formatItems = (items: PyValue[], indent: number, allowance: number, level: number): void => {
    indent += 1;
    const delimnl = `,\n${' '.repeat(indent)}`;
    items.forEach((item, i) => {
      if (i > 0) out += delimnl;
      format(item, indent, i === items.length - 1 ? allowance : 1, level);
    });
  };
  const formatDictItems = (items: [string, PyValue][], indent: number, allowance: number, level: number): void => {
    indent += 1;
    const delimnl = `,\n${' '.repeat(indent)}`;
    items.forEach(([key, item], i) => {
      const rep = pyStrRepr(key);
      out += `${rep}: `;
      format(item, indent + pyLen(rep) + 2, i === items.length - 1 ? allowance : 1, level);
      if (i < items.length - 1) out += delimnl;
    });
  };
  const formatStr = (s: string, indent: number, allowance: number, level: number): void => {
    if (s.length === 0) {
      out += pyStrRepr(s);
      return;
    }
    const chunks: string[] = [];
    const lines = pySplitLinesKeep(s);
    if (level === 1) {
      indent += 1;
      allowance += 1;
    }
    const maxWidth = width - indent;
    let maxWidth1 = maxWidth;
    lines.forEach((line, i) => {
      const rep = pyStrRepr(line);
      const lastLine = i === lines.length - 1;
      if (lastLine) maxWidth1 -= allowance;
      if (pyLen(rep) <= maxWidth1) {
        chunks.push(rep);
        return;
      }
      const parts = pyWordsWithSpace(line);
      let maxWidth2 = maxWidth;
      let current = '';
      parts.forEach((part, j) => {
        const candidate = current + part;
        if (j === parts.length - 1 && lastLine) maxWidth2 -= allowance;
        if (pyLen(pyStrRepr(candidate)) > maxWidth2) {
          if (current) chunks.push(pyStrRepr(current));
          current = part;
        } else {
          current = candidate;
        }
      });
      if (current) chunks.push(pyStrRepr(current));
    });
    if (chunks.length === 1) {
      out += pyStrRepr(lines[lines.length - 1] as string);
      return;
    }
    if (level === 1) out += '(';
    out += chunks.join(`\n${' '.repeat(indent)}`);
    if (level === 1) out += ')';
  };
  format(value, 0, 0, 0);
  return out;
}
