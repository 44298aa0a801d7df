/**
 * `glance-edge proxy --peers true`: a sidecar told that other sidecars front the same service warns
 * once, at start, when its race registry is not shared with them (its own, or its workers' through
 * the primary), and not when it is (--store).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startCli, type RunningProcess } from '../helpers/processes';
import { startRedis, type RedisServer } from '../helpers/redis';

let upstream: http.Server;
let url: string;
let redis: RedisServer;
const started: RunningProcess[] = [];

beforeAll(async () => {
  upstream = http.createServer((_req, res) => res.end('{}'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  redis = await startRedis();
});
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
  await new Promise((r) => upstream.close(r));
  await redis?.stop();
});

async function warnings(...args: string[]): Promise<string[]> {
  const proc = await startCli(['proxy', '--upstream', url, '--port', '0', ...args]);
  started.push(proc);
  // Anything a worker would say at start has been said by the time the primary announces the port.
  return proc
    .output()
    .split('\n')
    .filter((line) => line.includes('"event":"store.local"'))
    .map((line) => (JSON.parse(line) as { level: string; msg: string }).level);
}

it.each<[string, string[], string[]]>([
  ['one process, its own registry', ['--peers', 'true'], ['warn']],
  ['two workers sharing the primary’s registry', ['--peers', 'true', '--workers', '2'], ['warn']],
  ['a registry in Redis', ['--peers', 'true', '--store', 'REDIS'], []],
  ['two workers on Redis', ['--peers', 'true', '--workers', '2', '--store', 'REDIS'], []],
  ['no peers', [], []],
])('should warn once at start (%s)', async (_name, args, expected) => {
  expect(await warnings(...args.map((a) => (a === 'REDIS' ? `${redis.url}/0` : a)))).toEqual(expected);
}, 30_000);
