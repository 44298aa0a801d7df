/**
 * The demo's location decisions, by table: which URLs are http(s) locations (Glance's http store
 * and WHATWG's parser agreeing), what kind an address is, and which addresses the demo connects to.
 */
import { addressKind, addressRefusal, DEFAULT_ALLOWED_LOCATION_HOSTS, effectiveAddress, locationPolicy, parseLocationUrl } from '../../server/demo/location';

describe('1. Location changes: which URLs are http(s) locations', () => {
  it.each([
    ['http://example.com/a?b=1', { protocol: 'http:', host: 'example.com', port: 80, path: '/a?b=1', auth: null }],
    ['HTTP://Example.COM./a', { protocol: 'http:', host: 'example.com', port: 80, path: '/a', auth: null }],
    ['HTTPS://example.com:8443/', { protocol: 'https:', host: 'example.com', port: 8443, path: '/', auth: null }],
    ['hTtPs://example.com', { protocol: 'https:', host: 'example.com', port: 443, path: '/', auth: null }],
    ['http://127.1/x', { protocol: 'http:', host: '127.0.0.1', port: 80, path: '/x', auth: null }],
    ['http://0x7f.1:9292/x', { protocol: 'http:', host: '127.0.0.1', port: 9292, path: '/x', auth: null }],
    ['http://2130706433/', { protocol: 'http:', host: '127.0.0.1', port: 80, path: '/', auth: null }],
    ['http://[::ffff:127.0.0.1]:1/', { protocol: 'http:', host: '::ffff:7f00:1', port: 1, path: '/', auth: null }],
    ['http://[::1]/', { protocol: 'http:', host: '::1', port: 80, path: '/', auth: null }],
    ['http://u:p%40ss@example.com/', { protocol: 'http:', host: 'example.com', port: 80, path: '/', auth: 'u:p@ss' }],
    ['http://host:/x', { protocol: 'http:', host: 'host', port: 80, path: '/x', auth: null }],
  ])('should read %s as a location', (url, target) => {
    expect(parseLocationUrl(url)).toEqual(target);
  });

  it.each([
    ['empty', ''],
    ['no scheme', 'example.com/x'],
    ['another scheme', 'file:///etc/passwd'],
    ['ftp', 'ftp://example.com/x'],
    ['no slashes', 'http:example.com'],
    ['one slash', 'http:/example.com'],
    ['no host', 'http://'],
    ['no host before the path', 'http:///x'],
    ['only a port', 'http://:80/x'],
    ['only credentials', 'http://u:p@/x'],
    ['a port that is not a number', 'http://example.com:port/'],
    ['a port too large', 'http://example.com:65536/'],
    ['an unparsable IPv6 host', 'http://[::1/'],
    ['an IPv4 host out of range', 'http://256.1.1.1/'],
    ['a backslash', 'http://example.com\\@127.0.0.1/'],
    ['several @', 'http://a@b@127.0.0.1/'],
    ['a leading space', ' http://example.com/'],
    ['a tab in the host', 'http://exa\tmple.com/'],
    ['a newline', 'http://example.com/\n'],
  ])('should not read a URL with %s as a location', (_why, url) => {
    expect(parseLocationUrl(url)).toBeNull();
  });
});

describe('1. Location changes: the kind of an address', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['2002:7f00:1::', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['febf::1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::7f00:1', 'reserved'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['fd00::1', 'private'],
    ['::ffff:10.0.0.1', 'private'],
    ['172.32.0.1', 'public'],
    ['8.8.8.8', 'public'],
    ['2001:db8::1', 'public'],
    ['2606:4700::1111', 'public'],
  ])('should take %s for %s', (address, kind) => {
    expect(addressKind(address)).toBe(kind);
  });

  it.each([
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['0:0:0:0:0:ffff:a00:1', '10.0.0.1'],
    ['2002:a9fe:a9fe::1', '169.254.169.254'],
    ['2001:db8::1', '2001:db8::1'],
    ['8.8.8.8', '8.8.8.8'],
  ])('should judge %s as %s', (address, effective) => {
    expect(effectiveAddress(address)).toBe(effective);
  });
});

describe('1. Location changes: which addresses the demo connects to', () => {
  const defaults = locationPolicy(DEFAULT_ALLOWED_LOCATION_HOSTS, 'test');
  const none = locationPolicy([], 'test');
  const self = { port: 9292, local: ['127.0.0.1', '::1', '192.0.2.10', 'fe80::1'] };

  it.each([
    ['127.0.0.1', 8080, 'blob.local', defaults, null],
    ['::1', 8080, 'blob.local', defaults, null],
    ['::ffff:127.0.0.1', 8080, 'x', defaults, null],
    ['127.0.0.1', 9292, 'x', defaults, 'the demo itself'],
    ['127.0.0.2', 9292, 'x', defaults, 'the demo itself'],
    ['::ffff:127.0.0.1', 9292, 'x', defaults, 'the demo itself'],
    ['::1', 9292, 'x', defaults, 'the demo itself'],
    ['192.0.2.10', 9292, 'x', defaults, 'the demo itself'],
    ['192.0.2.10', 9293, 'x', defaults, null],
    ['169.254.169.254', 80, 'x', defaults, 'link-local address'],
    ['169.254.169.254', 80, 'x', locationPolicy(['169.254.0.0/16', 'x'], 'test'), 'link-local address'],
    ['fe80::1', 80, 'x', defaults, 'link-local address'],
    ['0.0.0.0', 8080, 'x', defaults, 'unspecified address'],
    ['::', 8080, 'x', defaults, 'unspecified address'],
    ['224.0.0.1', 80, 'x', defaults, 'multicast address'],
    ['10.0.0.5', 80, 'x', defaults, 'private address not in the allowed location hosts'],
    ['10.0.0.5', 80, 'x', locationPolicy(['10.0.0.0/8'], 'test'), null],
    ['10.0.0.5', 80, 'images.internal', locationPolicy(['images.internal'], 'test'), null],
    ['::ffff:10.0.0.5', 80, 'x', locationPolicy(['10.0.0.5'], 'test'), null],
    ['fd12::5', 80, 'x', locationPolicy(['fd00::/8'], 'test'), null],
    ['127.0.0.1', 8080, 'x', none, 'loopback address not in the allowed location hosts'],
    ['8.8.8.8', 80, 'x', none, null],
  ])('should judge %s port %d (host %s)', (address, port, host, policy, refusal) => {
    expect(addressRefusal(address, port, host, policy, self)).toBe(refusal);
  });

  it.each([
    ['10.0.0.0/33'],
    ['10.0.0.0/x'],
    ['fd00::/129'],
    ['10.0.0.0/8/8'],
    ['::ffff:10.0.0.0/104'],
    ['not a host!'],
    ['host_name'],
  ])("should throw a TypeError naming the option for the allowed entry '%s'", (entry) => {
    expect(() => locationPolicy([entry], "option 'allowedLocationHosts'")).toThrow(new RegExp(`^option 'allowedLocationHosts': '${entry.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}'`));
    expect(() => locationPolicy([entry], 'x')).toThrow(TypeError);
  });
});
