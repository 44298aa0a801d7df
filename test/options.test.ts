/**
 * Every factory of the suite throws a TypeError at construction that names itself and the key, for
 * an unknown (misspelt) option and for a value of the wrong kind.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { imageSchemas } from '../lib/defaults/documents';
import { imageFormats } from '../lib/defaults/middleware';
import { createDemoApp } from '../server/demo/app';
import { DiskImageStore } from '../server/demo/store';
import { httpImageLookup } from '../lib/images/lookup';
import { locationGuard } from '../lib/locations/guard';
import { createLogger } from '../server/observe/logs';
import { createMetrics } from '../server/observe/metrics';
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
];

describe('options: every factory checks its options at construction', () => {
  it.each(FACTORIES)('%s should throw a TypeError naming the key for showMultipleLocatoins', (name, factory, valid) => {
    expect(() => factory({ ...valid, showMultipleLocatoins: false })).toThrow(new TypeError(`${name}: unknown option 'showMultipleLocatoins'`));
  });

  it.each(FACTORIES)('%s should build with valid options', (_name, factory, valid) => {
    expect(factory(valid)).toBeDefined();
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
  ])('%s should throw a TypeError naming the option for a value of the wrong kind', (_name, build, message) => {
    expect(build).toThrow(new TypeError(message));
  });
});
