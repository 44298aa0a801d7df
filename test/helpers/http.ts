/** Small pieces shared by the middleware tests. */
import http from 'node:http';
import express from 'express';
// @ts-expect-error -- express4 is an npm alias of express@4 and ships no types; its API is the one @types/express describes.
import express4Untyped from 'express4';

/** Express 4, to check that the middlewares work mounted in an Express 4 app too. */
export const express4 = express4Untyped as typeof express;

/** Collect a supertest response body as the exact bytes that came over the wire. */
export function rawBody(res: unknown, callback: (err: Error | null, body: Buffer) => void): void {
  const stream = res as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => callback(null, Buffer.concat(chunks)));
  stream.on('error', (err: Error) => callback(err, Buffer.concat(chunks)));
}

/** Glance's plain-text error body (no Accept header, or text/plain). */
export const plainError = (status: string, message: string) => `${status}\n\n${message}\n\n   `;

/** One request with the exact answer bytes; asks for plain-text errors unless told otherwise. */
export async function call(base: string, method: string, p: string, body?: string | Buffer, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { accept: 'text/plain', ...headers } };
  if (body !== undefined) init.body = body;
  const res = await fetch(`${base}${p}`, init);
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** An answer read whole. */
export interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * One request exactly as given (no Accept unless given) to 127.0.0.1:`to` (a port) or to the
 * server of a base URL, on a connection of its own, the target sent as it is, its answer read whole.
 */
export function send(to: number | string, method: string, target: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Answer> {
  const { hostname, port } = typeof to === 'number' ? { hostname: '127.0.0.1', port: String(to) } : new URL(to);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, method, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
