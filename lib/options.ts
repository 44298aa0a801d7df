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
}

/** The checks of a factory's options, one per key it takes. */
export type OptionChecks<T> = { readonly [K in keyof Required<T>]: OptionCheck };

/**
 * Throw a `TypeError` naming `factory` and the option unless `options` is an object whose every key
 * is one of `checks` and whose every defined value passes its check. Returns `options`.
 */
export function checkOptions<T extends object>(factory: string, options: T | undefined, checks: OptionChecks<T>, required: readonly (keyof T)[] = []): T {
  if (options === undefined && required.length === 0) return {} as T;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new TypeError(`${factory}: options must be an object`);
  for (const key of Object.keys(options)) {
    if (!Object.hasOwn(checks, key)) throw new TypeError(`${factory}: unknown option '${key}'`);
  }
  for (const key of Object.keys(checks) as (keyof T & string)[]) {
    const value = options[key];
    if (value === undefined) {
      if (required.includes(key)) throw new TypeError(`${factory}: option '${key}' is required (${checks[key].expected})`);
      continue;
    }
    const check = checks[key];
    if (!check.test(value)) throw new TypeError(`${factory}: option '${key}' must be ${check.expected}`);
  }
  return options;
}

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
} as const;
