/**
 * The check's client of the image service, on the suite's one upstream client
 * (lib/upstream/client.ts): every request carries the identity given (`--token`, `--header`), asks
 * for errors as JSON, and reads at most a limit of its answer, within the timeout.
 */
import http from 'node:http';
import https from 'node:https';
import { PassThrough } from 'node:stream';
import { upstreamClient, UpstreamFailure, type UpstreamClient } from '../../lib/upstream/client';
import type { Answer } from './expect';

/** Bytes of an answer kept at most: documents are small; image data beyond it is not read. */
export const READ_LIMIT = 1024 * 1024;

export interface ServiceClientOptions {
  readonly url: string;
  /** Headers sent on every request: the caller's identity. */
  readonly identity: Readonly<Record<string, string>>;
  /** Milliseconds a request may take, its answer read included. */
  readonly timeout: number;
  /** PEM certificates to trust for https (instead of Node's). */
  readonly ca?: string;
  /** Do not verify the service's certificate. */
  readonly insecure?: boolean;
}

export interface RequestOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
  /** Read at most this many bytes of the answer, then stop reading it. */
  readonly limit?: number;
}

/** An upload whose body is sent in two parts: what it sent so far waits for `finish`. */
export interface HeldUpload {
  /** Send the rest of the body. */
  finish(): void;
  /** Give the upload up: the connection is closed. */
  abort(): void;
  readonly answer: Promise<Answer>;
}

export interface ServiceClient {
  /** The URL as given, for messages. */
  readonly url: string;
  request(method: string, path: string, options?: RequestOptions): Promise<Answer>;
  /** Send `data`'s first `first` bytes of a `PUT` of `data` and hold the rest back. */
  holdUpload(path: string, data: Buffer, first: number): HeldUpload;
  close(): void;
}

/** Read an answer's body, at most `limit` bytes (then destroy it). */
function readAnswer(res: http.IncomingMessage, limit: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let done = false;
    const finish = (complete: boolean) => {
      if (done) return;
      done = true;
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).subarray(0, limit), complete });
    };
    res.on('data', (c: Buffer) => {
      chunks.push(c);
      length += c.length;
      if (length > limit) {
        finish(false);
        res.destroy();
      }
    });
    res.on('end', () => finish(true));
    res.on('error', (err) => {
      if (!done) {
        done = true;
        reject(new UpstreamFailure('unreachable', err.message));
      }
    });
    res.on('aborted', () => {
      if (!done) {
        done = true;
        reject(new UpstreamFailure('unreachable', 'the answer was cut off'));
      }
    });
  });
}

/** Reject with a timeout unless `work` settles within `ms`; `cancel` ends the request. */
function within<T>(work: Promise<T>, ms: number, cancel: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      cancel();
      reject(new UpstreamFailure('timeout', 'timeout', ms));
    }, ms);
    work.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

export function serviceClient(options: ServiceClientOptions): ServiceClient {
  const secure = new URL(options.url).protocol === 'https:';
  const agent = secure
    ? new https.Agent({ keepAlive: true, timeout: 4000, ...(options.ca === undefined ? {} : { ca: options.ca }), rejectUnauthorized: options.insecure !== true })
    : new http.Agent({ keepAlive: true, timeout: 4000 });
  const client: UpstreamClient = upstreamClient({ url: options.url, timeout: options.timeout, agent });
  const headersOf = (extra: Readonly<Record<string, string>> = {}) => ({ Accept: 'application/json', ...options.identity, ...extra });

  return {
    url: options.url,
    request(method, path, request = {}) {
      const body = request.body === undefined ? undefined : Buffer.from(request.body);
      const headers: Record<string, string> = headersOf(request.headers);
      if (body !== undefined) headers['Content-Length'] = String(body.length);
      const stream = body === undefined ? undefined : new PassThrough().end(body);
      const sent = client.send({ method, path, headers, ...(stream === undefined ? {} : { body: stream }) });
      const work = sent.answer.then((res) => readAnswer(res, request.limit ?? READ_LIMIT));
      return within(work, options.timeout, () => sent.abort());
    },
    holdUpload(path, data, first) {
      const body = new PassThrough();
      body.write(data.subarray(0, first));
      const headers = headersOf({ 'Content-Type': 'application/octet-stream', 'Content-Length': String(data.length) });
      const sent = client.send({ method: 'PUT', path, headers, body });
      const read = sent.answer.then((res) => readAnswer(res, READ_LIMIT));
      read.catch(() => undefined);
      // The answer, read whole, is due within the timeout from the moment the body is complete.
      let finished!: () => void;
      const answer = new Promise<void>((resolve) => (finished = resolve)).then(() => within(read, options.timeout, () => sent.abort()));
      return {
        finish: () => {
          body.end(data.subarray(first));
          finished();
        },
        abort: () => sent.abort(),
        answer,
      };
    },
    close: () => agent.destroy(),
  };
}
