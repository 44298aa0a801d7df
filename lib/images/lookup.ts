/**
 * Asking the backing image service what an image is, with the caller's own credentials.
 *
 * A lookup answers the facts the decisions need, or `null` when the caller may not see the image
 * (404, 401, 403): the suite then lets the request go on unchanged, so the caller gets the backing
 * service's own answer and learns nothing from the suite. Any other failure throws a 502 (503 when
 * the service says it is unavailable): a guarded change never goes through unchecked.
 */
import http, { type IncomingMessage } from 'node:http';
import { glanceError } from '../errors';
import { forwardedHeaders } from '../http/forwarded';
import { checkOptions, option, type OptionChecks } from '../options';
import { readRequest } from '../request/read';
import { AnswerUnread, UpstreamFailure, upstreamClient } from '../upstream/client';

/** Image statuses Glance knows. */
export const IMAGE_STATUSES = ['queued', 'saving', 'active', 'killed', 'deleted', 'pending_delete', 'deactivated', 'uploading', 'importing'] as const;
export type ImageStatus = (typeof IMAGE_STATUSES)[number];

/** What the suite needs to know about an image. */
export interface ImageFacts {
  readonly id: string;
  readonly status: string;
  /** Bytes of image data, or null when none has been uploaded. */
  readonly size: number | null;
  /** MD5 of the image data (Glance's `checksum`), or null. */
  readonly checksum: string | null;
  /** How many locations the image has, or null when the service does not show them. */
  readonly locations: number | null;
  /** The image document the service answered (a Glance v2 image), when the lookup read one. */
  readonly document?: Readonly<Record<string, unknown>>;
}

/** "What is image `id`, asked with the credentials of `req`?" `null`: not visible to that caller. */
export type ImageLookup = (id: string, req: IncomingMessage) => Promise<ImageFacts | null>;

/**
 * Request headers a lookup does not carry, besides the hop-by-hop ones: those that describe the
 * request's body, those that would make the lookup's answer conditional, partial or negotiated, and
 * those some frameworks take as the method. Every other header may identify the caller
 * (keystonemiddleware reads `X-Auth-Token`, else `X-Storage-Token`, and eventlet reads
 * `X_Auth_Token` as `X-Auth-Token`; other services use `Authorization`, cookies or headers of their
 * own), so the lookup carries it exactly as the forwarded request does.
 */
const NOT_FOR_LOOKUP = /^(?:content-.*|expect|if-.*|range|accept.*|x-http-method-override|x-http-method|x-method-override)$/;
const notForLookup = (lower: string) => NOT_FOR_LOOKUP.test(lower);

/**
 * The headers of a lookup made for `req`, as a flat `[name, value, ...]` list: the caller's headers
 * as a forwarded request carries them ({@link forwardedHeaders}), less those above, then `Accept`
 * (the request's own when it selects the API version, as Glance's version negotiation reads it).
 */
export function lookupHeaders(req: IncomingMessage, host: string): string[] {
  const out = forwardedHeaders(req, host, notForLookup);
  const routing = readRequest(req).routingHeaders;
  if (routing.length > 0) for (const [name, value] of routing) out.push(name, value);
  else out.push('Accept', 'application/json');
  return out;
}

/** The facts of a Glance v2 image document, or null if `doc` is not one. */
export function factsFromGlanceImage(doc: unknown): ImageFacts | null {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return null;
  const d = doc as Record<string, unknown>;
  if (typeof d['id'] !== 'string' || typeof d['status'] !== 'string') return null;
  const size = typeof d['size'] === 'number' ? d['size'] : null;
  const checksum = typeof d['checksum'] === 'string' ? d['checksum'] : null;
  const locations = Array.isArray(d['locations']) ? d['locations'].length : null;
  return { id: d['id'], status: d['status'], size, checksum, locations, document: d };
}

export interface HttpImageLookupOptions {
  /** Base URL of the Glance v2 API, e.g. `http://127.0.0.1:9292` (a path prefix is kept). */
  readonly url: string;
  /** Milliseconds to wait for the answer. Default 10000. */
  readonly timeout?: number;
  /** Agent for the lookups; by default a keep-alive agent of the lookup's own. */
  readonly agent?: http.Agent;
  /**
   * Ask at the image record as the request spelt it (`/v2.1/images/{id}`, `/v2//images/{id}`, an
   * upper-case literal), so that the service reads the lookup as it reads the request: a spelling
   * it does not route to an image is not one to it. Default false: `{url}/v2/images/{id}`.
   */
  readonly asRequested?: boolean;
}

const LOOKUP_OPTIONS: OptionChecks<HttpImageLookupOptions> = {
  url: option.url,
  timeout: option.integer(1, 2_147_483_647, 'milliseconds'),
  agent: option.object('an http.Agent', (v) => v instanceof http.Agent),
  asRequested: option.boolean,
};

/** The largest image document a lookup reads. */
const DOCUMENT_LIMIT = 4 * 1024 * 1024;

/** A lookup over HTTP against any Glance v2 API: `GET {url}/v2/images/{id}`. */
export function httpImageLookup(options: HttpImageLookupOptions): ImageLookup {
  checkOptions('httpImageLookup', options, LOOKUP_OPTIONS, ['url']);
  const timeout = options.timeout ?? 10_000;
  const client = upstreamClient({ url: options.url, timeout, agent: options.agent });
  const asRequested = options.asRequested ?? false;
  const failed = (message: string) => glanceError(502, 'lookup.failed', message);

  return async function httpLookup(id: string, req: IncomingMessage): Promise<ImageFacts | null> {
    // With the request's query (a service may read the caller's identity there too), never its
    // method override; as requested, at the record the request names.
    const reading = readRequest(req);
    const record = asRequested ? reading.recordTarget : null;
    const query = reading.lookupQuery !== '' ? `?${reading.lookupQuery}` : '';
    const path = `${record ?? `/v2/images/${encodeURIComponent(id)}`}${query}`;
    let answer;
    try {
      answer = await client.fetch({ method: 'GET', path, headers: lookupHeaders(req, client.host) }, DOCUMENT_LIMIT);
    } catch (err) {
      if (err instanceof UpstreamFailure) {
        throw failed(
          err.kind === 'timeout'
            ? `The image service did not answer within ${timeout} ms when asked for the image status.`
            : `The image service could not be reached (${err.detail}).`,
        );
      }
      if (err instanceof AnswerUnread && err.reason === 'too large') throw failed('The image service sent an image document too large to be one.');
      throw failed('The image service broke off its answer about the image status.');
    }
    const { status } = answer;
    // 300: the service routes this spelling to its version list, not to an image.
    if (status === 300 || status === 401 || status === 403 || status === 404) return null;
    if (status === 503) throw glanceError(503, 'lookup.unavailable', 'The image service is unavailable, so the image status could not be checked.');
    if (status !== 200) throw failed(`The image service answered ${status} when asked for the image status.`);
    let facts: ImageFacts | null;
    try {
      facts = factsFromGlanceImage(JSON.parse(answer.body.toString('utf8')));
    } catch {
      facts = null;
    }
    if (!facts) throw failed('The image service did not answer with an image document.');
    return facts;
  };
}

/** Accept either a lookup function or the base URL of a Glance v2 API. */
export function toImageLookup(option: string | ImageLookup, name: string): ImageLookup {
  if (typeof option === 'function') return option;
  if (typeof option === 'string') return httpImageLookup({ url: option });
  throw new TypeError(`${name}: option 'lookup' must be a function (id, req) => Promise<ImageFacts | null> or the URL of a Glance v2 API`);
}
