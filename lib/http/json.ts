/**
 * JSON as Glance (Python's `json.dumps`) writes it: `", "` and `": "` separators, non-ASCII
 * escaped (images, errors) or not (`ascii` false: metadefs). A client that compares bytes sees the
 * demo and Glance alike. And JSON as Glance reads it ({@link readPythonJson}): Python's `json.loads`.
 */
export function pythonJson(value: unknown, ascii = true): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return ascii ? JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (Array.isArray(value)) return `[${value.map((v) => pythonJson(v, ascii)).join(', ')}]`;
      return `{${Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${pythonJson(k, ascii)}: ${pythonJson(v, ascii)}`)
        .join(', ')}}`;
    default:
      return 'null';
  }
}

/** Glance's timestamp form: `2026-11-25T06:51:37Z`. */
export function glanceTimestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** What Python's `json.loads` makes of a JSON text: ints are `bigint`, floats `number`, objects `Map`s in Python's key order. */
export type PyValue = null | boolean | string | number | bigint | PyValue[] | PyDict;
export type PyDict = Map<string, PyValue>;

/** Why {@link readPythonJson} could not read a body, as Python fails: `ValueError` (decode, syntax) or `RecursionError` (depth). */
export type PythonJsonFailure = 'decode' | 'syntax' | 'depth';

export class PythonJsonError extends Error {
  constructor(
    readonly reason: PythonJsonFailure,
    message: string,
    readonly position = 0,
  ) {
    super(message);
    this.name = 'PythonJsonError';
  }
}

/**
 * Python's default recursion limit. `json.loads` counts one level per array or object on top of
 * the frames of its caller, so Glance fails (500) on somewhat less; no body nested this deep can
 * be read by Glance whatever its stack.
 */
export const PYTHON_RECURSION_LIMIT = 1000;

/** Python 3.11's default `sys.get_int_max_str_digits()`: a longer integer literal is a `ValueError`. */
export const PYTHON_INT_MAX_STR_DIGITS = 4300;

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

type Frame = { readonly list: PyValue[] } | { readonly dict: PyDict; key: string };

/**
 * `json.loads(body.decode('utf-8'))` as oslo's jsonutils calls it: strict UTF-8 (a BOM stays a
 * character, which Python then refuses), NaN, Infinity and -Infinity accepted, any value at the
 * top, duplicate keys the last value in the first key's place, integers exact (`bigint`, at most
 * 4300 digits), nesting below {@link PYTHON_RECURSION_LIMIT}. Iterative, so no body can exhaust the stack.
 */
export function readPythonJson(body: Uint8Array): PyValue {
  let text: string;
  try {
    text = STRICT_UTF8.decode(body);
  } catch {
    throw new PythonJsonError('decode', "'utf-8' codec can't decode the body");
  }
  return new PythonJsonReader(text).read();
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

class PythonJsonReader {
  private i = 0;
  constructor(private readonly s: string) {}

  private fail(message: string): never {
    throw new PythonJsonError('syntax', message, this.i);
  }

  private ws(): void {
    for (let c = this.s.charCodeAt(this.i); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = this.s.charCodeAt(this.i)) this.i++;
  }

  read(): PyValue {
    if (this.s.startsWith('\ufeff')) this.fail('Unexpected UTF-8 BOM (decode using utf-8-sig)');
    this.ws();
    const stack: Frame[] = [];
    for (;;) {
      let value: PyValue | undefined;
      const c = this.s[this.i];
      if (c === '[' || c === '{') {
        if (stack.length + 1 >= PYTHON_RECURSION_LIMIT) throw new PythonJsonError('depth', 'maximum recursion depth exceeded', this.i);
        this.i++;
        this.ws();
        if (c === '[') {
          if (this.s[this.i] === ']') {
            this.i++;
            value = [];
          } else {
            stack.push({ list: [] });
            continue;
          }
        } else if (this.s[this.i] === '}') {
          this.i++;
          value = new Map();
        } else {
          stack.push({ dict: new Map(), key: this.key() });
          continue;
        }
      } else {
        value = this.scalar();
      }
      // Hand the value to the containers it completes, until one wants another value.
      for (;;) {
        const top = stack[stack.length - 1];
        if (top === undefined) {
          this.ws();
          if (this.i !== this.s.length) this.fail('Extra data');
          return value;
        }
        this.ws();
        const next = this.s[this.i++];
        if ('list' in top) {
          top.list.push(value);
          if (next === ',') break;
          if (next !== ']') this.fail("Expecting ',' delimiter");
          value = top.list;
        } else {
          top.dict.set(top.key, value);
          if (next === ',') {
            this.ws();
            top.key = this.key();
            break;
          }
          if (next !== '}') this.fail("Expecting ',' delimiter");
          value = top.dict;
        }
        stack.pop();
      }
      this.ws();
    }
  }

  /** A member name and its colon; the value follows. */
  private key(): string {
    if (this.s[this.i] !== '"') this.fail('Expecting property name enclosed in double quotes');
    const key = this.string();
    this.ws();
    if (this.s[this.i++] !== ':') this.fail("Expecting ':' delimiter");
    this.ws();
    return key;
  }

  private literal(word: string, value: PyValue): PyValue {
    if (!this.s.startsWith(word, this.i)) this.fail('Expecting value');
    this.i += word.length;
    return value;
  }

  private scalar(): PyValue {
    switch (this.s[this.i]) {
      case '"':
        return this.string();
      case 'n':
        return this.literal('null', null);
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'N':
        return this.literal('NaN', NaN);
      case 'I':
        return this.literal('Infinity', Infinity);
      case '-':
        if (this.s.startsWith('-Infinity', this.i)) return this.literal('-Infinity', -Infinity);
        return this.number();
      default:
        return this.number();
    }
  }

  /** Python's number pattern: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, ints exact. */
  private number(): PyValue {
    const s = this.s;
    const start = this.i;
    let i = start;
    if (s[i] === '-') i++;
    const intStart = i;
    if (s[i] === '0') i++;
    else if (isDigit(s.charCodeAt(i))) while (isDigit(s.charCodeAt(i))) i++;
    else this.fail('Expecting value');
    const intDigits = i - intStart;
    let float = false;
    if (s[i] === '.' && isDigit(s.charCodeAt(i + 1))) {
      float = true;
      i += 2;
      while (isDigit(s.charCodeAt(i))) i++;
    }
    if (s[i] === 'e' || s[i] === 'E') {
      let j = i + 1;
      if (s[j] === '+' || s[j] === '-') j++;
      const digits = j;
      while (isDigit(s.charCodeAt(j))) j++;
      if (j > digits) {
        float = true;
        i = j;
      }
    }
    this.i = i;
    const text = s.slice(start, i);
    if (float) return Number(text);
    if (intDigits > PYTHON_INT_MAX_STR_DIGITS) this.fail(`Exceeds the limit (${PYTHON_INT_MAX_STR_DIGITS} digits) for integer string conversion`);
    return BigInt(text);
  }

  /** A string from its opening quote: strict (no raw control characters), `\u` escapes kept as UTF-16 units as Python pairs them. */
  private string(): string {
    const s = this.s;
    let i = this.i + 1;
    let out = '';
    let run = i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (Number.isNaN(c)) {
        this.i = i;
        this.fail('Unterminated string starting at');
      }
      if (c === 0x22) break;
      if (c < 0x20) {
        this.i = i;
        this.fail('Invalid control character at');
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += s.slice(run, i);
      const e = s[i + 1];
      if (e === 'u') {
        const digits = s.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(digits)) {
          this.i = i;
          this.fail('Invalid \\uXXXX escape');
        }
        out += String.fromCharCode(parseInt(digits, 16));
        i += 6;
      } else if (e !== undefined && Object.hasOwn(ESCAPES, e)) {
        out += ESCAPES[e] as string;
        i += 2;
      } else {
        this.i = i;
        this.fail('Invalid \\escape');
      }
      run = i;
    }
    this.i = i + 1;
    return out + s.slice(run, i);
  }
}
