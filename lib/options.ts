/**
 * Checking a factory's options, in one place: every factory of the suite throws a `TypeError` at
 * construction that names itself and the option, for an unknown key (a misspelling such as
 * `showMultipleLocatoins`) or a value of the wrong kind; nothing that depends on options is
 * checked per request. (helmet's and body-parser's habit.)
 */

/** A check of one option's value: what it must be, and whether `value` is that. Not called for undefined. */
export interface OptionCheck {
  readonly expected: string;
  readonly test: (value: unknown) => boolean;
  /**
   * The checks of the keys of a value that is a plain object (one that passed `test`): such a
   * value's keys are checked as options in turn, named `option.key` (e.g. `deprecation.sunset`).
   */
  readonly keys?: { readonly [key: string]: OptionCheck };
}

/** The checks of a factory's options, one per key it takes. */
export type OptionChecks<T> = { readonly [K in keyof Required<T>]: OptionCheck };

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Check the keys of `options` against `checks`, naming each key after `prefix`. */
function checkKeys(factory: string, options: object, checks: { readonly [key: string]: OptionCheck }, required: readonly string[], prefix: string): void {
  for (const key of Object.keys(options)) {
    if (!Object.hasOwn(checks, key)) throw new TypeError(`${factory}: unknown option '${prefix}${key}'`);
  }
  for (const [key, check] of Object.entries(checks)) {
    const value = (options as Record<string, unknown>)[key];
    if (value === undefined) {
      if (required.includes(key)) throw new TypeError(`${factory}: option '${prefix}${key}' is required (${check.expected})`);
      continue;
    }
    if (!check.test(value)) throw new TypeError(`${factory}: option '${prefix}${key}' must be ${check.expected}`);
    if (check.keys && isPlainObject(value)) checkKeys(factory, value, check.keys, [], `${prefix}${key}.`);
  }
}

/**
 * Throw a `TypeError` naming `factory` and the option unless `options` is an object whose every key
 * is one of `checks` and whose every defined value passes its check. Returns `options`.
 */
export function checkOptions<T extends object>(factory: string, options: T | undefined, checks: OptionChecks<T>, required: readonly (keyof T)[] = []): T {
  if (options === undefined && required.length === 0) return {} as T;
  if (!isPlainObject(options)) throw new TypeError(`${factory}: options must be an object`);
  checkKeys(factory, options, checks as { readonly [key: string]: OptionCheck }, required as readonly string[], '');
  return options;
}

/**
 * Throw a `TypeError` naming `factory` and the argument `name` unless `value` passes `check`
 * (undefined passes when `optional`), for a factory that takes a value rather than options.
 * Returns `value`.
 */
export function checkArgument<T>(factory: string, name: string, value: T, check: OptionCheck, optional = false): T {
  if (value === undefined && optional) return value;
  if (!check.test(value)) throw new TypeError(`${factory}: argument '${name}' must be ${check.expected}`);
  return value;
}

/** A list of non-empty strings. */
const isNameList = (v: unknown): boolean => Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0);

/** The checks the factories share. */
export const option = {
  boolean: { expected: 'true or false', test: (v: unknown) => typeof v === 'boolean' },
  function: (what: string): OptionCheck => ({ expected: `a function ${what}`, test: (v) => typeof v === 'function' }),
  /** A whole number from `min` to `max`, of `unit`. */
  integer: (min: number, max: number, unit: string): OptionCheck => ({
    expected: max === Number.MAX_SAFE_INTEGER ? `a whole number of ${unit}, at least ${min}` : `a whole number of ${unit} from ${min} to ${max}`,
    test: (v) => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max,
  }),
  /** An absolute http or https URL. */
  url: {
    expected: 'an absolute http(s) URL',
    test: (v: unknown) => {
      if (typeof v !== 'string') return false;
      try {
        const u = new URL(v);
        return u.protocol === 'http:' || u.protocol === 'https:';
      } catch {
        return false;
      }
    },
  },
  oneOf: (...values: readonly string[]): OptionCheck => ({ expected: values.map((v) => `'${v}'`).join(' or '), test: (v) => typeof v === 'string' && values.includes(v) }),
  /** Anything, checked where it is used (a nested options object, a list with its own rules). */
  any: (expected: string): OptionCheck => ({ expected, test: () => true }),
  /** An object of the given kind, checked by `test`. */
  object: (expected: string, test: (v: unknown) => boolean = (v) => typeof v === 'object' && v !== null): OptionCheck => ({ expected, test }),
  /** A Date that is a valid time. */
  date: { expected: 'a valid Date', test: (v: unknown) => v instanceof Date && !Number.isNaN(v.getTime()) },
  /** A format list: the whole list, or `{ add, remove }` against the defaults (FormatListOption). */
  formatList: {
    expected: 'a list of non-empty strings, or { add, remove } with such lists',
    test: (v: unknown) => isNameList(v) || isPlainObject(v),
    keys: {
      add: { expected: 'a list of non-empty strings', test: isNameList },
      remove: { expected: 'a list of non-empty strings', test: isNameList },
    },
  },
  /** A pino logger, as createLogger makes. */
  logger: { expected: 'a pino logger (createLogger)', test: (v: unknown) => typeof v === 'object' && v !== null && typeof (v as { info?: unknown }).info === 'function' },
} as const satisfies Record<string, OptionCheck | ((...args: never[]) => OptionCheck)>;
