/**
 * The demo's one client of http(s) image locations: which URLs are locations at all, which
 * addresses the demo may connect to for them, and the requests themselves.
 *
 * A URL is read as Glance's http store reads it (scheme http or https, in any case; a host), and
 * then as WHATWG's URL parser reads it, which is also what the request is made from: the address
 * that is judged is the address that is connected to. A host name is resolved once, the first
 * address is judged, and the connection goes only to the addresses allowed then (a `lookup` that
 * answers them), so a name that resolves elsewhere a moment later (DNS rebinding) changes nothing.
 *
 * Never connected to, whatever the configuration: the demo itself (a local address on the port the
 * request came in on), link-local addresses (169.254/16, where cloud metadata services answer,
 * and fe80::/10), unspecified, multicast, broadcast and reserved addresses. Loopback and private
 * addresses only when the allowed list names them (a CIDR, an address, or the URL's host name).
 * IPv4 addresses inside IPv6 ones (::ffff:a.b.c.d, NAT64, 6to4) are judged as the IPv4 address.
 */
import dns from 'node:dns';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import os from 'node:os';
import { exchange } from '../../lib/upstream/client';

/** The loopback addresses: allowed by default, so that the demo works with a blob server beside it. */
export const DEFAULT_ALLOWED_LOCATION_HOSTS: readonly string[] = ['127.0.0.0/8', '::1'];

/** A location URL as the demo connects to it. */
export interface LocationTarget {
  readonly protocol: 'http:' | 'https:';
  /** Host name or address, without IPv6 brackets, lower case, without a trailing dot. */
  readonly host: string;
  readonly port: number;
  /** Path and query. */
  readonly path: string;
  /** `user:password` when the URL carries credentials. */
  readonly auth: string | null;
}

const SCHEME = /^(https?):\/\//i;
// What WHATWG's parser would silently drop or reinterpret, and Python's urlparse reads otherwise.
// eslint-disable-next-line no-control-regex
const AMBIGUOUS = /[\s\x00-\x1f\x7f\\]/;

/**
 * The target of a location URL, or null when it is not a valid http(s) location: empty, another
 * scheme, no host (`http://`, `http:///x`), an unparsable host or port, or a spelling that two
 * parsers would read as different hosts (backslashes, whitespace, several `@`).
 */
export function parseLocationUrl(url: string): LocationTarget | null {
  const scheme = SCHEME.exec(url);
  if (!scheme || AMBIGUOUS.test(url)) return null;
  const authority = url.slice(scheme[0].length).split(/[/?#]/, 1)[0] ?? '';
  const at = authority.split('@');
  if (at.length > 2) return null;
  const hostPort = at[at.length - 1] ?? '';
  if (hostPort === '' || hostPort.startsWith(':')) return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase();
  if (host === '') return null;
  const protocol = parsed.protocol === 'https:' ? 'https:' : 'http:';
  const auth = parsed.username || parsed.password ? `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}` : null;
  return {
    protocol,
    host,
    port: parsed.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(parsed.port),
    path: `${parsed.pathname}${parsed.search}`,
    auth,
  };
}

/** Where an address stands, before any allowed list is consulted. */
export type AddressKind = 'public' | 'loopback' | 'private' | 'link-local' | 'unspecified' | 'multicast' | 'reserved';

function blockList(subnets: readonly (readonly [string, number, 'ipv4' | 'ipv6'])[]): BlockList {
  const list = new BlockList();
  for (const [net, prefix, family] of subnets) list.addSubnet(net, prefix, family);
  return list;
}

const KINDS: readonly (readonly [Exclude<AddressKind, 'public'>, BlockList])[] = [
  ['unspecified', blockList([['0.0.0.0', 8, 'ipv4'], ['::', 128, 'ipv6']])],
  ['loopback', blockList([['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']])],
  ['link-local', blockList([['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']])],
  ['multicast', blockList([['224.0.0.0', 4, 'ipv4'], ['ff00::', 8, 'ipv6']])],
  // 240/4 holds the broadcast address; ::/96 the deprecated IPv4-compatible form.
  ['reserved', blockList([['240.0.0.0', 4, 'ipv4'], ['::', 96, 'ipv6']])],
  [
    'private',
    blockList([
      ['10.0.0.0', 8, 'ipv4'],
      ['172.16.0.0', 12, 'ipv4'],
      ['192.168.0.0', 16, 'ipv4'],
      ['100.64.0.0', 10, 'ipv4'],
      ['fc00::', 7, 'ipv6'],
      ['fec0::', 10, 'ipv6'],
    ]),
  ],
];

/** The 8 groups of an IPv6 address (which isIP has accepted), or null. */
function groups(address: string): number[] | null {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const first = part(head);
  const last = part(tail);
  const all = tail === undefined ? first : [...first, ...new Array<number>(8 - first.length - last.length).fill(0), ...last];
  return all.length === 8 ? all : null;
}

const dotted = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;

/**
 * The IPv4 address an IPv6 address stands for, if any: IPv4-mapped (::ffff:a.b.c.d), NAT64
 * (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::). Otherwise the address itself.
 */
export function effectiveAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  const g = groups(address);
  if (!g) return address;
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [number, number, number, number, number, number, number, number];
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0xffff) return dotted(g6, g7);
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return dotted(g6, g7);
  if (g0 === 0x2002) return dotted(g1, g2);
  return address;
}

/** What kind of address `address` (an IPv4 or IPv6 literal) is. */
export function addressKind(address: string): AddressKind {
  const effective = effectiveAddress(address);
  const family = isIP(effective) === 4 ? 'ipv4' : 'ipv6';
  for (const [kind, list] of KINDS) if (list.check(effective, family)) return kind;
  return 'public';
}

/** The demo's rules for location addresses. */
export interface LocationPolicy {
  /** Loopback and private addresses in these subnets may be connected to. */
  readonly subnets: BlockList;
  /** Host names (lower case, no trailing dot) whose loopback and private addresses may be connected to. */
  readonly names: ReadonlySet<string>;
}

/**
 * The policy for an allowed list of CIDRs (`10.0.0.0/8`, `fd00::/8`), addresses and host names.
 * Throws a TypeError naming `option` for an entry that is none of these.
 */
export function locationPolicy(allowed: readonly string[], option: string): LocationPolicy {
  const subnets = new BlockList();
  const names = new Set<string>();
  for (const raw of allowed) {
    const entry = raw.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
    const [net = '', prefix, extra] = entry.split('/');
    const family = isIP(net);
    if (extra === undefined && family !== 0) {
      const max = family === 4 ? 32 : 128;
      if (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max)) throw new TypeError(`${option}: '${raw}' has no valid prefix length`);
      // Addresses are judged by the IPv4 address they hold: such a subnet is written as IPv4.
      if (effectiveAddress(net) !== net) throw new TypeError(`${option}: '${raw}' holds an IPv4 address; write it as IPv4`);
      subnets.addSubnet(net, prefix === undefined ? max : Number(prefix), family === 4 ? 'ipv4' : 'ipv6');
      continue;
    }
    if (prefix !== undefined || !/^[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*\.?$/.test(entry)) {
      throw new TypeError(`${option}: '${raw}' is not a CIDR, an address or a host name`);
    }
    names.add(entry.replace(/\.$/, ''));
  }
  return { subnets, names };
}

/** The demo as a location must never reach it: its port, and the addresses that are this machine. */
export interface SelfAddress {
  readonly port: number;
  /** Addresses of this machine besides loopback (every interface's). Default: os.networkInterfaces(). */
  readonly local?: readonly string[];
}

function localAddresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address.replace(/%.*$/, '')));
}

/**
 * Why the demo must not connect to `address`:`port` for a URL naming `host`, or null when it may.
 * Pure apart from reading this machine's interface addresses when `self.local` is not given.
 */
export function addressRefusal(address: string, port: number, host: string, policy: LocationPolicy, self: SelfAddress): string | null {
  const effective = effectiveAddress(address);
  const kind = addressKind(effective);
  if (kind === 'link-local' || kind === 'unspecified' || kind === 'multicast' || kind === 'reserved') return `${kind} address`;
  if (port === self.port && (kind === 'loopback' || (self.local ?? localAddresses()).some((a) => effectiveAddress(a) === effective))) {
    return 'the demo itself';
  }
  if (kind === 'public') return null;
  const family = isIP(effective) === 4 ? 'ipv4' : 'ipv6';
  if (policy.names.has(host) || policy.subnets.check(effective, family)) return null;
  return `${kind} address not in the allowed location hosts`;
}

export interface LocationClientOptions {
  readonly policy: LocationPolicy;
  /** Milliseconds for resolving, connecting and the answer's status line and headers. */
  readonly timeout: number;
}

/** Why a location could not be reached: the request was never made, or it failed. */
export interface LocationFailure {
  readonly reason: string;
}

/** An http.Agent whose pool keeps connections apart by the address they were checked for. */
function pinnedAgent<T extends http.Agent>(agent: T): T {
  const getName = agent.getName.bind(agent);
  agent.getName = (options) => `${getName(options)}:${(options as { pinned?: string } | undefined)?.pinned ?? ''}`;
  return agent;
}

/** Resolve `host` as the system would, within `ms`. */
function resolve(host: string, ms: number): Promise<dns.LookupAddress[]> {
  if (isIP(host)) return Promise.resolve([{ address: host, family: isIP(host) }]);
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error('resolving timed out')), ms);
    dns.lookup(host, { all: true, verbatim: true }, (err, addresses) => {
      clearTimeout(timer);
      if (err) fail(err);
      else done(addresses);
    });
  });
}

/**
 * The client: opens a location URL for the demo, at an address the policy allows, without
 * following redirects. `openLocation` answers the response (200 or 206), or why there is none.
 */
export function locationClient(options: LocationClientOptions) {
  const { policy, timeout } = options;
  const agents = { 'http:': pinnedAgent(new http.Agent({ keepAlive: true })), 'https:': pinnedAgent(new https.Agent({ keepAlive: true })) };

  return async function openLocation(url: string, method: 'GET' | 'HEAD', self: SelfAddress, headers: Record<string, string> = {}): Promise<IncomingMessage | LocationFailure> {
    const target = parseLocationUrl(url);
    if (!target) return { reason: 'not a valid http(s) URL' };
    const started = Date.now();
    let addresses: dns.LookupAddress[];
    try {
      addresses = await resolve(target.host, timeout);
    } catch (err) {
      return { reason: `cannot resolve ${target.host}: ${err instanceof Error ? err.message : String(err)}` };
    }
    const refusals = addresses.map((a) => addressRefusal(a.address, target.port, target.host, policy, self));
    const pinned = addresses.filter((_a, i) => refusals[i] === null);
    const [first] = pinned;
    if (!first) return { reason: `refused: ${refusals.join(', ') || 'no address'}` };
    // Node tries each address it is given (happy eyeballs): only those allowed are given.
    const lookup: LookupFunction = (_host, opts, callback) => {
      if (opts.all) callback(null, pinned);
      else callback(null, first.address, first.family);
    };
    const remaining = Math.max(timeout - (Date.now() - started), 1);
    const sent = exchange(
      {
        protocol: target.protocol,
        hostname: target.host,
        port: String(target.port),
        agent: agents[target.protocol],
        lookup,
        // The pool keeps connections apart by the addresses they were pinned to.
        requestOptions: { pinned: pinned.map((a) => a.address).join(' ') },
        ...(target.auth === null ? {} : { auth: target.auth }),
      },
      { method, path: target.path, headers },
      remaining,
    );
    // The deadline covers resolving too; reading the body is the caller's affair.
    try {
      const res = await sent.answer;
      if (res.statusCode === 200 || res.statusCode === 206) return res;
      // Redirects are not followed; anything else is not the image's data.
      res.resume();
      return { reason: `answered ${res.statusCode ?? 0}` };
    } catch (err) {
      return { reason: err instanceof Error ? err.message : String(err) };
    }
  };
}

/** Whether `opened` is a response rather than a failure. */
export function isResponse(opened: IncomingMessage | LocationFailure): opened is IncomingMessage {
  return opened instanceof http.IncomingMessage;
}
