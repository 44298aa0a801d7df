/**
 * Glance's error bodies, as webob renders them.
 *
 * Every error the suite answers is an `http-errors` object with a stable `type` and is written by
 * {@link sendGlanceError}, which negotiates webob's three forms (plain text, JSON, HTML) on `Accept`
 * and reproduces them byte for byte.
 */
import createError, { isHttpError, type HttpError } from 'http-errors';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pythonJson as pyJsonString } from './http/json';
import { lingerBeforeClosing } from './http/linger';

/** webob's status titles (they differ from Node's for 413 and 416). */
const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  411: 'Length Required',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  416: 'Request Range Not Satisfiable',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** webob's stock sentence for each status: the `explanation` when Glance gives only a `detail`. */
const EXPLANATIONS: Readonly<Record<number, string>> = {
  400: 'The server could not comply with the request since it is either malformed or otherwise incorrect.',
  401: 'This server could not verify that you are authorized to access the document you requested.  Either you supplied the wrong credentials (e.g., bad password), or your browser does not understand how to supply the credentials required.',
  403: 'Access was denied to this resource.',
  404: 'The resource could not be found.',
  405: 'The method is not allowed for this resource.',
  409: 'There was a conflict when trying to complete your request.',
  413: 'The body of your request was too large for this server.',
  415: 'The request media type is not supported by this server.',
  416: 'The Range requested is not available.',
  500: 'The server has either erred or is incapable of performing the requested operation.',
  502: 'Bad gateway.',
  503: 'The server is currently unavailable. Please try again at a later time.',
  504: 'The gateway has timed out.',
};

/** The error type of the suite: an http-errors object with a stable `type` and webob's two texts. */
export interface GlanceError extends HttpError {
  /** Stable identifier, e.g. `location.conflict`; match on this, not on the text. */
  type: string;
  /** webob's first sentence. */
  explanation: string;
  /** webob's second sentence ('' when Glance gives only one). */
  detail: string;
  /** Headers that must ride on the answer (e.g. `Content-Range` on a 416). */
  headers?: Record<string, string>;
}

export interface GlanceErrorOptions {
  /**
   * Glance raised this one with the message as webob's `detail`, so webob's stock sentence for the
   * status comes first (as for `Cannot set locations to empty list.` and every 416).
   */
  readonly afterStockSentence?: boolean;
  readonly headers?: Record<string, string>;
}

/** Make an error that renders exactly as Glance's for the same condition. */
export function glanceError(status: number, type: string, message: string, options: GlanceErrorOptions = {}): GlanceError {
  const stock = options.afterStockSentence === true;
  const props: Record<string, unknown> = {
    type,
    explanation: stock ? (EXPLANATIONS[status] ?? message) : message,
    detail: stock ? message : '',
  };
  if (options.headers) props['headers'] = { ...options.headers };
  return createError(status, message, props) as GlanceError;
}

/** Whether `err` is one of the suite's errors of the given type. */
export function isGlanceError(err: unknown, type?: string): err is GlanceError {
  return isHttpError(err) && typeof (err as Partial<GlanceError>).type === 'string' && (type === undefined || (err as GlanceError).type === type);
}

/** Turn anything thrown into a renderable error; unknown failures become a plain 500 that reveals nothing. */
export function toGlanceError(err: unknown): GlanceError {
  if (isHttpError(err)) {
    const e = err as Partial<GlanceError> & HttpError;
    const status = e.status >= 400 && e.status < 600 ? e.status : 500;
    if (typeof e.explanation === 'string' && typeof e.detail === 'string') return e as GlanceError;
    // Another http-errors object (e.g. from body-parser): keep its status, type and headers.
    const message = e.expose ? e.message : (EXPLANATIONS[status] ?? e.message);
    const options = e.headers ? { headers: e.headers as Record<string, string> } : {};
    return glanceError(status, typeof e.type === 'string' ? e.type : 'http.error', message, options);
  }
  return glanceError(500, 'internal', EXPLANATIONS[500] as string);
}

type Form = 'plain' | 'json' | 'html';

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const MEDIA_RANGE = new RegExp(`^${TOKEN}/${TOKEN}$`);
const QVALUE = /^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/;

/**
 * webob's choice between its offers `text/html` and `application/json` (in that order): the offer
 * with the highest quality wins, ties go to the earlier offer, and no match means plain text. An
 * `Accept` header webob cannot parse counts as accepting anything, so HTML.
 */
export function negotiateErrorForm(accept: string | undefined): Form {
  if (accept === undefined || accept.trim() === '') return 'plain';
  if (!acceptIsValid(accept)) return 'html';
  let html = -1;
  let htmlSpec = -1;
  let json = -1;
  let jsonSpec = -1;
  for (const part of accept.split(',')) {
    const [range = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (!range) continue;
    let q = 1;
    let extra = false;
    for (const p of params) {
      const [k, v] = p.split('=').map((s) => s.trim());
      if (k === 'q') q = Number(v);
      else extra = true; // a range with media-type parameters matches no parameterless offer
    }
    if (extra || !Number.isFinite(q)) continue;
    const specHtml = specificity(range, 'text', 'html');
    if (specHtml > htmlSpec) [html, htmlSpec] = [q, specHtml];
    const specJson = specificity(range, 'application', 'json');
    if (specJson > jsonSpec) [json, jsonSpec] = [q, specJson];
  }
  if (html <= 0 && json <= 0) return 'plain';
  return html >= json ? 'html' : 'json';
}

function acceptIsValid(accept: string): boolean {
  return accept.split(',').every((part) => {
    if (part.trim() === '') return true;
    const [range = '', ...params] = part.split(';').map((s) => s.trim());
    if (!MEDIA_RANGE.test(range)) return false;
    return params.every((p) => {
      const eq = p.indexOf('=');
      if (eq <= 0) return false;
      return p.slice(0, eq).trim().toLowerCase() !== 'q' || QVALUE.test(p.slice(eq + 1).trim());
    });
  });
}

function specificity(range: string, type: string, subtype: string): number {
  if (range === '*/*') return 0;
  if (range === `${type}/*`) return 1;
  if (range === `${type}/${subtype}`) return 2;
  return -1;
}

/**
 * webob's `html_escape`: Python's `html.escape(s, quote=True)`, then every character past ASCII as
 * a decimal character reference (`encode('ascii', 'xmlcharrefreplace')`), code point by code point.
 */
export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#x27;')
    .replace(/[\u0080-\u{10ffff}]/gu, (ch) => `&#${ch.codePointAt(0) as number};`);
}

/** webob's `strip_tags`, used for the plain-text form. */
function stripTags(s: string): string {
  return s
    .replace(/\n/g, ' ')
    .replace(/\r/g, '')
    .replace(/<br.*?>/gis, '\n')
    .replace(/<!--|-->/g, '')
    .replace(/<.*?>/gs, '');
}


/** The body and content type Glance would send for `err` to a client that sent `accept`. */
export function renderGlanceError(err: GlanceError, accept: string | undefined): { contentType: string; body: string } {
  const status = `${err.status} ${TITLES[err.status] ?? 'Error'}`;
  const title = TITLES[err.status] ?? 'Error';
  const body = (explanation: string, detail: string) => `${explanation}<br /><br />\n${detail}\n\n`;
  switch (negotiateErrorForm(accept)) {
    case 'json':
      return {
        contentType: 'application/json',
        body: `{"message": ${pyJsonString(body(err.explanation, err.detail))}, "code": ${pyJsonString(status)}, "title": ${pyJsonString(title)}}`,
      };
    case 'html':
      return {
        contentType: 'text/html; charset=UTF-8',
        body: `<html>\n <head>\n  <title>${status}</title>\n </head>\n <body>\n  <h1>${status}</h1>\n  ${body(escapeHtml(err.explanation), escapeHtml(err.detail))}\n </body>\n</html>`,
      };
    default:
      return { contentType: 'text/plain; charset=UTF-8', body: `${status}\n\n${stripTags(body(err.explanation, err.detail))}` };
  }
}

/**
 * Answer `req` with `error` in Glance's format. If the answer has already begun, the connection is
 * cut instead: a client must never take a truncated body for a complete one.
 */
export function sendGlanceError(req: IncomingMessage, res: ServerResponse, error: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const err = toGlanceError(error);
  const { contentType, body } = renderGlanceError(err, req.headers.accept);
  for (const name of res.getHeaderNames()) {
    if (/^content-|^etag$|^last-modified$|^accept-ranges$/.test(name)) res.removeHeader(name);
  }
  for (const [name, value] of Object.entries(err.headers ?? {})) res.setHeader(name, value);
  // Refused before its body was read (an upload cut short upstream, say): close the connection
  // rather than have the server read and discard the rest, which may be gigabytes.
  if (!req.complete) {
    res.setHeader('Connection', 'close');
    lingerBeforeClosing(req);
  }
  res.statusCode = err.status;
  res.statusMessage = TITLES[err.status] ?? res.statusMessage;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Express error handler that answers every error in Glance's format. Mount it last. */
export function glanceErrorHandler() {
  return function glanceErrorHandler(err: unknown, req: IncomingMessage, res: ServerResponse, _next: (err?: unknown) => void): void {
    sendGlanceError(req, res, err);
  };
}
