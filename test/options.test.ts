/**
 * Every factory of the suite throws a TypeError at construction that names itself and the key, for
 * an unknown (misspelt) option and for a value of the wrong kind: every factory of `glance-edge`
 * (lib/index.ts) and `glance-edge/server` (server/index.ts) that takes options, and the one that
 * the demo is built from.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { hypervisorMetadefs, imageSchemas } from '../lib/defaults/documents';
import { imageFormats, resolveFormats } from '../lib/defaults/middleware';
import { DISK_FORMATS } from '../lib/defaults/formats';
import { checkArgument, checkOptions, option } from '../lib/options';
import { createDemoApp } from '../server/demo/app';
import { imageService } from '../server/demo/service';
import { DiskImageStore } from '../server/demo/store';
import { httpImageLookup } from '../lib/images/lookup';
import { locationGuard } from '../lib/locations/guard';
import { accessLog, createLogger } from '../server/observe/logs';
import { createMetrics, metricsEndpoint } from '../server/observe/metrics';
import { reclaimStreamedData } from '../server/perf/reclaim';
import { FileCache } from '../lib/ranges/file';
import { legacyContentRange } from '../lib/ranges/legacy';
import { serveImage } from '../lib/ranges/serve';
import { createSidecar } from '../server/sidecar/app';
import { forward } from '../server/sidecar/forward';

const dir = mkdtempSync(path.join(tmpdir(), 'glance-edge-options-'));
let store: DiskImageStore;
beforeAll(async () => {
  store = await DiskImageStore.open(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Factory = (options: Record<string, unknown>) => unknown;
const upstream = 'http://127.0.0.1:1';
const lookup = async () => null;
const logger = () => createLogger({ destination: { write: () => undefined } });

const FACTORIES: [string, Factory, Record<string, unknown>][] = [
  ['locationGuard', (o) => locationGuard(o as never), { lookup }],
  ['createSidecar', (o) => createSidecar(o as never), { upstream }],
  ['createDemoApp', (o) => createDemoApp({ store, ...o } as never), {}],
  ['httpImageLookup', (o) => httpImageLookup(o as never), { url: upstream }],
  ['forward', (o) => forward(o as never), { upstream }],
  ['serveImage', (o) => serveImage(o as never), { source: () => null }],
  ['imageFormats', (o) => imageFormats(o as never), {}],
  ['imageSchemas', (o) => imageSchemas(o as never), {}],
  ['legacyContentRange', (o) => legacyContentRange(o as never), {}],
  ['createMetrics', (o) => createMetrics(o as never), {}],
  ['createLogger', (o) => createLogger(o as never), {}],
  ['hypervisorMetadefs', (o) => hypervisorMetadefs(o as never), {}],
  ['accessLog', (o) => accessLog(logger(), o as never), {}],
  ['imageService', (o) => imageService({ store, ...o } as never), {}],
];

/** A factory, options it builds with, and an option given a value of the wrong kind. */
type BadValue = [string, Factory, Record<string, unknown>, string, unknown];

/** Every factory above (and reclaimStreamedData, which changes the process) with a bad value of one of its options. */
const BAD_VALUES: BadValue[] = [
  ['locationGuard', (o) => locationGuard(o as never), { lookup }, 'showMultipleLocations', 'yes'],
  ['createSidecar', (o) => createSidecar(o as never), { upstream }, 'timeout', 0],
  ['createDemoApp', (o) => createDemoApp({ store, ...o } as never), {}, 'diskFormats', 'raw'],
  ['httpImageLookup', (o) => httpImageLookup(o as never), { url: upstream }, 'timeout', -1],
  ['forward', (o) => forward(o as never), { upstream }, 'timeout', '10s'],
  ['serveImage', (o) => serveImage(o as never), { source: () => null }, 'maxRanges', 0],
  ['serveImage', (o) => serveImage(o as never), { source: () => null }, 'deprecation', 'yes'],
  ['imageFormats', (o) => imageFormats(o as never), {}, 'limit', 0],
  ['imageFormats', (o) => imageFormats(o as never), {}, 'containerFormats', [1]],
  ['imageSchemas', (o) => imageSchemas(o as never), {}, 'diskFormats', 'raw'],
  ['legacyContentRange', (o) => legacyContentRange(o as never), {}, 'sunset', '2030-01-01'],
  ['createMetrics', (o) => createMetrics(o as never), {}, 'registry', {}],
  ['createMetrics', (o) => createMetrics(o as never), {}, 'prefix', '1st_'],
  ['createLogger', (o) => createLogger(o as never), {}, 'level', 'loud'],
  ['accessLog', (o) => accessLog(logger(), o as never), {}, 'setHeader', 'no'],
  ['reclaimStreamedData', (o) => reclaimStreamedData(o as never), {}, 'every', 1000],
  ['imageService', (o) => imageService({ store, ...o } as never), {}, 'locationTimeout', 0],
];

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('options: every factory checks its options at construction', () => {
  it.each(FACTORIES)('%s should throw a TypeError naming the key for showMultipleLocatoins', (name, factory, valid) => {
    expect(() => factory({ ...valid, showMultipleLocatoins: false })).toThrow(new TypeError(`${name}: unknown option 'showMultipleLocatoins'`));
  });

  it('should throw for an unknown key of reclaimStreamedData before it changes anything', () => {
    expect(() => reclaimStreamedData({ evrey: 1 } as never)).toThrow(new TypeError("reclaimStreamedData: unknown option 'evrey'"));
  });

  it.each(FACTORIES)('%s should build with valid options', (_name, factory, valid) => {
    expect(factory(valid)).toBeDefined();
  });

  it.each(BAD_VALUES)('%s should throw a TypeError naming the factory and the key for a bad %s', (name, factory, valid, key, value) => {
    expect(() => factory({ ...valid, [key]: value })).toThrow(TypeError);
    expect(() => factory({ ...valid, [key]: value })).toThrow(new RegExp(`^${escape(name)}: option '${escape(key)}' must be \\S`));
  });

  // (createDemoApp and imageService are given their store here, so their options are always an object.)
  it.each(FACTORIES.filter(([name]) => name !== 'createDemoApp' && name !== 'imageService'))('%s should throw a TypeError for options that are not an object', (name, factory) => {
    expect(() => factory([] as never)).toThrow(new TypeError(`${name}: options must be an object`));
  });

  it.each([
    ['locationGuard', () => locationGuard({ lookup, showMultipleLocations: 'yes' } as never), "locationGuard: option 'showMultipleLocations' must be true or false"],
    ['locationGuard', () => locationGuard({ lookup, patchMediaTypes: 'any' } as never), "locationGuard: option 'patchMediaTypes' must be 'json' or 'glance'"],
    ['createSidecar', () => createSidecar({ upstream, showMultipleLocations: 'false' } as never), "createSidecar: option 'showMultipleLocations' must be true or false"],
    ['createSidecar', () => createSidecar({ upstream: 'ftp://x' }), "createSidecar: option 'upstream' must be an absolute http(s) URL"],
    ['createSidecar', () => createSidecar({} as never), "createSidecar: option 'upstream' is required (an absolute http(s) URL)"],
    ['createSidecar', () => createSidecar({ upstream, store: new Map() } as never), "createSidecar: option 'store' must be a Store (acquire, renew, release, local)"],
    ['createDemoApp', () => createDemoApp({ store, maxRanges: 0 }), "createDemoApp: option 'maxRanges' must be a whole number of ranges from 1 to 1000"],
    ['createLogger', () => createLogger({ level: 'loud' }), "createLogger: option 'level' must be 'fatal' or 'error' or 'warn' or 'info' or 'debug' or 'trace' or 'silent'"],
    ['serveImage', () => serveImage({} as never), "serveImage: option 'source' is required (a function (req) => ImageData | null)"],
    ['serveImage', () => serveImage({ source: () => null, deprecation: { sunSet: new Date() } as never }), "serveImage: unknown option 'deprecation.sunSet'"],
    ['serveImage', () => serveImage({ source: () => null, deprecation: { link: 'a b' } }), "serveImage: option 'deprecation.link' must be a URL (no blanks or angle brackets)"],
    ['legacyContentRange', () => legacyContentRange({ deprecatedOn: new Date(Number.NaN) }), "legacyContentRange: option 'deprecatedOn' must be a valid Date"],
    ['imageFormats', () => imageFormats({ diskFormats: { add: ['raw'], plus: ['x'] } as never }), "imageFormats: unknown option 'diskFormats.plus'"],
    ['imageSchemas', () => imageSchemas({ containerFormats: { remove: [''] } }), "imageSchemas: option 'containerFormats.remove' must be a list of non-empty strings"],
    ['createDemoApp', () => createDemoApp({ store, diskFormats: { add: 'ploop' } as never }), "createDemoApp: option 'diskFormats.add' must be a list of non-empty strings"],
    ['createDemoApp', () => createDemoApp({ store, allowedLocationHosts: ['10.0.0.0/33'] }), "createDemoApp: option 'allowedLocationHosts': '10.0.0.0/33' has no valid prefix length"],
    ['createMetrics', () => createMetrics({ legacyClients: 1.5 }), "createMetrics: option 'legacyClients' must be a whole number of clients, at least 0"],
    ['reclaimStreamedData', () => reclaimStreamedData({ every: 65535 }), "reclaimStreamedData: option 'every' must be a whole number of bytes, at least 65536"],
    ['hypervisorMetadefs', () => hypervisorMetadefs({ namespace: 'x' } as never), "hypervisorMetadefs: unknown option 'namespace'"],
  ])('%s should throw a TypeError naming the option for a value of the wrong kind', (_name, build, message) => {
    expect(build).toThrow(new TypeError(message));
  });
});

describe('options: factories that take a value check it at construction', () => {
  it.each([
    ['FileCache', () => new FileCache(0), "FileCache: argument 'maxOpen' must be a whole number of open files, at least 1"],
    ['FileCache', () => new FileCache('8' as never), "FileCache: argument 'maxOpen' must be a whole number of open files, at least 1"],
    ['metricsEndpoint', () => metricsEndpoint({} as never), "metricsEndpoint: argument 'registry' must be a prom-client Registry"],
    ['accessLog', () => accessLog(undefined as never), "accessLog: argument 'logger' must be a pino logger (createLogger)"],
  ])('%s should throw a TypeError naming the argument for a value of the wrong kind', (_name, build, message) => {
    expect(build).toThrow(new TypeError(message));
  });

  it('should build them with good values', () => {
    expect(new FileCache()).toBeInstanceOf(FileCache);
    expect(new FileCache(1)).toBeInstanceOf(FileCache);
    expect(metricsEndpoint(new Registry())).toBeInstanceOf(Function);
  });
});

describe('options: the checks themselves', () => {
  it('should name nested keys after their option', () => {
    const checks = { outer: { ...option.object('an object'), keys: { inner: option.boolean } } };
    expect(() => checkOptions('f', { outer: { inner: 1 } }, checks)).toThrow(new TypeError("f: option 'outer.inner' must be true or false"));
    expect(() => checkOptions('f', { outer: { innr: true } }, checks)).toThrow(new TypeError("f: unknown option 'outer.innr'"));
    expect(checkOptions('f', { outer: { inner: true } }, checks)).toEqual({ outer: { inner: true } });
  });

  it('should pass an undefined argument only when it is optional', () => {
    expect(checkArgument('f', 'n', undefined, option.boolean, true)).toBeUndefined();
    expect(() => checkArgument('f', 'n', undefined, option.boolean)).toThrow(new TypeError("f: argument 'n' must be true or false"));
  });

  it('should name the factory whose format list resolveFormats refuses', () => {
    expect(() => resolveFormats('raw' as never, DISK_FORMATS, 'diskFormats', 'someFactory')).toThrow(/^someFactory: option 'diskFormats' must be a list/);
    expect(resolveFormats({ add: ['x'], remove: ['raw'] }, DISK_FORMATS, 'diskFormats', 'someFactory')).toEqual([...DISK_FORMATS.filter((f) => f !== 'raw'), 'x']);
  });

  it('should keep accepting every format list the factories took before', () => {
    for (const value of [[], ['raw'], {}, { add: [] }, { remove: ['ploop'] }, { add: ['vz'], remove: [] }]) {
      expect(() => imageFormats({ diskFormats: value, containerFormats: value })).not.toThrow();
      expect(() => imageSchemas({ diskFormats: value })).not.toThrow();
    }
  });
});
