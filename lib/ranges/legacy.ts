/**
 * The legacy request form: a `Content-Range` header on a download (`bytes 12-30/32`), which
 * Glance honoured before `Range` and still does. It keeps working, and every answer to such a
 * request says that it is deprecated (RFC 9745 `Deprecation`, RFC 8594 `Sunset`, a `Link` to the
 * docs, and `Warning: 299` for older clients).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { edgeData } from '../http/body';
import { checkOptions, option, type OptionChecks } from '../options';
import { legacyToRange } from './decide';

export interface LegacyUse {
  /** The legacy header as the client sent it. */
  readonly contentRange: string;
  /** The `Range` it was rewritten into, or null (a `Range` was present too, or the form is invalid). */
  readonly rewrittenTo: string | null;
  readonly userAgent: string | undefined;
  readonly method: string | undefined;
  readonly url: string | undefined;
  /** The request itself (e.g. for its id). */
  readonly req: IncomingMessage;
}

export interface DeprecationOptions {
  /** When the legacy form was deprecated. Default: Glance Ocata's release, 2017-02-22. */
  readonly deprecatedOn?: Date;
  /** When it will stop working, if decided (adds `Sunset`). Default: none. */
  readonly sunset?: Date;
  /** Where to read about it (`Link: <…>; rel="deprecation"`). */
  readonly link?: string;
  /** Told of every use, e.g. to log it or count it by client. */
  readonly onUse?: (use: LegacyUse) => void;
}

export const DEFAULT_DEPRECATION_LINK = 'https://docs.openstack.org/api-ref/image/v2/#download-binary-image-data';
const OCATA = new Date('2017-02-22T00:00:00Z');
const WARNING = '299 - "The Content-Range request header is deprecated; send Range: bytes=first-last"';

/** The checks of the deprecation options, for legacyContentRange and serveImage's `deprecation`. */
export const DEPRECATION_OPTIONS: OptionChecks<DeprecationOptions> = {
  deprecatedOn: option.date,
  sunset: option.date,
  link: { expected: 'a URL (no blanks or angle brackets)', test: (v) => typeof v === 'string' && !/[\s<>]/.test(v) },
  onUse: option.function('(use) => void'),
};

export type NextFunction = (err?: unknown) => void;

/** The headers to set and the hook, from deprecation options already checked against DEPRECATION_OPTIONS. */
export function deprecationSignal(options: DeprecationOptions): { headers: [string, string][]; onUse: ((use: LegacyUse) => void) | undefined } {
  const deprecatedOn = options.deprecatedOn ?? OCATA;
  const link = options.link ?? DEFAULT_DEPRECATION_LINK;
  const headers: [string, string][] = [
    ['Deprecation', `@${Math.floor(deprecatedOn.getTime() / 1000)}`],
    ['Link', `<${link}>; rel="deprecation"; type="text/html"`],
  ];
  if (options.sunset !== undefined) headers.push(['Sunset', options.sunset.toUTCString()]);
  headers.push(['Warning', WARNING]);
  return { headers, onUse: options.onUse };
}

/**
 * Note a legacy request on `req`, put the deprecation headers on `res` and report the use.
 * Returns the `Range` header the legacy form stands for (null when `Range` was sent too, or the
 * form is invalid).
 */
export function signalLegacy(req: IncomingMessage, res: ServerResponse, signal: ReturnType<typeof deprecationSignal>): string | null {
  const contentRange = req.headers['content-range'] as string;
  edgeData(req).legacyContentRange = contentRange;
  for (const [name, value] of signal.headers) {
    if (name === 'Link' && res.hasHeader('Link')) res.appendHeader('Link', value);
    else res.setHeader(name, value);
  }
  const rewrittenTo = req.headers.range === undefined ? legacyToRange(contentRange) : null;
  signal.onUse?.({ contentRange, rewrittenTo, userAgent: req.headers['user-agent'], method: req.method, url: req.url, req });
  return rewrittenTo;
}

/**
 * Turn a legacy `Content-Range` download request into `Range` for whatever handler follows
 * (your own, express.static, a proxy), and signal the deprecation on the answer. `Range` wins
 * when both are sent. An invalid legacy form is left for the handler: {@link serveImage} answers it
 * with Glance's 416; another handler sees no `Range` and sends the whole image.
 */
export function legacyContentRange(options: DeprecationOptions = {}) {
  const signal = deprecationSignal(checkOptions('legacyContentRange', options, DEPRECATION_OPTIONS));
  return function legacyContentRange(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    if ((req.method === 'GET' || req.method === 'HEAD') && req.headers['content-range'] !== undefined) {
      const range = signalLegacy(req, res, signal);
      if (range !== null) {
        req.headers.range = range;
        edgeData(req).rangeFromLegacy = range;
      }
    }
    next();
  };
}
