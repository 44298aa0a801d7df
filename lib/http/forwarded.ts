/**
 * The headers of a request the suite sends on the caller's behalf (the forwarded request, a lookup,
 * a read of the image data), built in one place so that the service reads the same identity in
 * each: the caller's end-to-end headers as a flat [name, value, ...] list, in the client's order
 * and spelling, then `Host` and the X-Forwarded headers a proxy adds.
 */
import type { IncomingMessage } from 'node:http';

/** Headers that go no further than the next hop (RFC 9110 §7.6.1, and the proxy ones in use). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection']);

/** The names `Connection` lists, lower-cased; null for the usual message without one. */
export function connectionNamed(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  return new Set(
    String(value)
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
}

/** Whether a header of this lower-cased name goes no further than the next hop. */
export function hopByHop(name: string, named: Set<string> | null): boolean {
  return HOP_BY_HOP.has(name) || (named !== null && named.has(name));
}

/**
 * `req`'s end-to-end headers for a request to `host`, less those `skip` names (lower-cased), then
 * `Host`, `X-Forwarded-For` (the client's added to any it sent), `-Proto` and `-Host`.
 */
export function forwardedHeaders(req: IncomingMessage, host: string, skip?: (lower: string) => boolean): string[] {
  const raw = req.rawHeaders;
  const named = connectionNamed(req.headers.connection);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'x-forwarded-proto' || lower === 'x-forwarded-host' || hopByHop(lower, named) || skip?.(lower) === true) continue;
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? (raw[i + 1] as string) : `${forwardedFor}, ${raw[i + 1] as string}`;
      continue;
    }
    out.push(name, raw[i + 1] as string);
  }
  const socket = req.socket as IncomingMessage['socket'] | null;
  const client = socket?.remoteAddress ?? '';
  const proto = socket !== null && 'encrypted' in socket && socket.encrypted ? 'https' : 'http';
  out.push('Host', host, 'X-Forwarded-For', forwardedFor === undefined ? client : `${forwardedFor}, ${client}`, 'X-Forwarded-Proto', proto);
  if (req.headers.host) out.push('X-Forwarded-Host', req.headers.host);
  return out;
}
