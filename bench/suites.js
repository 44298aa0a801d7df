// The harness's parameters: settings, suites (their peers and workloads) and the targets the
// report checks. bench/run.js reads this file; command-line flags override `settings`.
'use strict';

// The image of the small and patch workloads (any Glance image id).
const IMAGE_ID = '11111111-1111-4111-8111-111111111111';

module.exports = {
  IMAGE_ID,

  settings: {
    rounds: 3, // measured rounds per peer and workload, interleaved across peers; the median is reported
    duration: 10, // seconds of one measured run
    warmup: 2, // seconds of load right before each measured run, not counted
    imageMiB: 256, // the image of the download and ranges suites (random bytes)
    serverCpu: 1, // servers under test (and the proxies' upstream); the client in the clients suite
    loadCpu: 0, // wrk; the server in the clients suite
  },
  // --quick: short runs on a small image, one round (about two minutes in all).
  quick: { rounds: 1, duration: 3, warmup: 1, imageMiB: 32 },

  suites: {
    small: {
      title: 'small JSON through proxies in front of a bare node:http upstream',
      // Peers are set up in bench/run.js (PEERS); all on serverCpu with the upstream.
      peers: ['sidecar', 'hpm', 'node', 'undici', 'nginx'],
      workloads: {
        get: { what: 'GET /v2/images/{id}', conns: 32 },
        // The sidecar looks the image up (GET) before forwarding a PATCH touching locations.
        patch: {
          what: 'PATCH /v2/images/{id} removing /locations/1',
          conns: 32,
          body: '[{"op": "remove", "path": "/locations/1"}]',
        },
      },
    },
    download: {
      title: 'whole downloads of the image through the same proxies and upstream',
      // tcp: what Node's socket reads and writes alone cost (bench/peers/tcp-relay.js).
      peers: ['sidecar', 'hpm', 'node', 'undici', 'tcp', 'nginx'],
      workloads: {
        download: { what: 'GET /v2/images/{id}/file (whole image)', conns: 4 },
      },
    },
    ranges: {
      title: '1 MiB ranges at random offsets of the image, served from disk',
      peers: [
        'demo',
        'static',
        // What Node alone costs: bench/peers/range-server.js.
        'node-ranges',
        'nginx-static',
        // Two processes of each on every CPU (shared with the load): the demo as a primary and two
        // workers, measured only when `glance-edge demo --help` lists the flag; nginx with two workers.
        { name: 'demo-2', peer: 'demo', args: ['--workers', '2'], when: '--workers', processes: 3, cpus: 'all' },
        { name: 'nginx-static-2', peer: 'nginx-static-2', cpus: 'all' },
      ],
      workloads: {
        ranges: { what: 'GET with Range: bytes=o-(o+1 MiB-1), o random', conns: 8, rangeBytes: 1 << 20 },
      },
    },
    clients: {
      title: 'upstream HTTP clients: keep-alive GETs of a small JSON from a bare node:http server',
      // bench/peers/client.js --kind NAME; the client on serverCpu, the server on loadCpu.
      peers: ['http', 'undici-request', 'undici-stream', 'undici-dispatch'],
      workloads: {
        get: { what: 'GET /v2/images/{id}, answer read to its end', conns: 32 },
      },
    },
    workers: {
      title: 'the sidecar as one process and as a primary with two workers (node:cluster), small GETs; each sidecar on every CPU',
      // Each sidecar may run on every CPU (shared with the upstream and the load), as a sidecar
      // with a worker per core runs: with both workers pinned to one CPU the figure would count
      // what time-sharing one core costs, not what coordination costs. The figure that counts is
      // the CPU time per answer of the whole sidecar (primary + workers); throughput on two
      // shared cores cannot show it. `processes`: checked when the peer is up.
      peers: [
        { name: 'sidecar', peer: 'sidecar', processes: 1, cpus: 'all' },
        { name: 'sidecar-2', peer: 'sidecar', args: ['--workers', '2'], when: '--workers', processes: 3, cpus: 'all' },
      ],
      workloads: {
        // cpu: utime + stime of the peer's processes over the measured run, per answer.
        get: { what: 'GET /v2/images/{id}', conns: 32, cpu: true },
      },
    },
    registry: {
      title: 'the guarded PATCH with the race registry in the sidecar vs in Redis (--store)',
      // A redis-server of the harness's own on serverCpu; its URL is known only at run time.
      peers: [
        { name: 'sidecar', peer: 'sidecar', processes: 1 },
        { name: 'sidecar-redis', peer: 'sidecar', args: (ctx) => ['--store', ctx.redisUrl], when: '--store', processes: 1 },
      ],
      // Peers whose rounds check that Redis ran the registry's scripts, then time PINGs.
      redisPeers: ['sidecar-redis'],
      rttSeconds: 2, // PINGs after each measured round of those peers, with no load
      workloads: {
        // Every PATCH is of the same image: changes of one image take its lease one at a time, so
        // with 8 connections most wait for their turn (in Redis: asking again, 5 ms then more apart).
        patch: { what: 'PATCH /v2/images/{id} removing /locations/1', kind: 'patch', conns: 8, body: '[{"op": "remove", "path": "/locations/1"}]' },
        // One at a time: no waiting, the lease's own cost.
        'patch-1': { what: 'PATCH /v2/images/{id} removing /locations/1', kind: 'patch', conns: 1, body: '[{"op": "remove", "path": "/locations/1"}]' },
      },
    },
  },

  // Checked by the report, each shown met / missed. ratio: a's median over b's (min: >=, atMost:
  // <=); rss: peak MB (max: <); budget: a's median <= b's + rtts × the median of `rtt` (a figure of
  // a's rounds) + ms.
  targets: [
    { suite: 'small', workload: 'get', metric: 'rps', a: 'sidecar', b: 'hpm', min: 2 },
    { suite: 'small', workload: 'get', metric: 'rps', a: 'sidecar', b: 'node', min: 1 },
    { suite: 'download', workload: 'download', metric: 'mbps', a: 'sidecar', b: 'nginx', min: 0.9 },
    { suite: 'download', metric: 'rss', a: 'sidecar', max: 100 },
    { suite: 'ranges', workload: 'ranges', metric: 'rps', a: 'demo', b: 'nginx-static', min: 0.9 },
    { suite: 'workers', workload: 'get', metric: 'cpu_us_per_req', a: 'sidecar-2', b: 'sidecar', atMost: 1.1 },
    { suite: 'registry', workload: 'patch', metric: 'p99_ms', a: 'sidecar-redis', b: 'sidecar', budget: { rtts: 2, rtt: 'redis_rtt_p50_ms', ms: 1 } },
    { suite: 'registry', workload: 'patch-1', metric: 'p99_ms', a: 'sidecar-redis', b: 'sidecar', budget: { rtts: 2, rtt: 'redis_rtt_p50_ms', ms: 1 } },
  ],
  // Shown for reading the figures, no target.
  ratios: [
    { suite: 'small', workload: 'get', metric: 'rps', a: 'sidecar', b: 'nginx' },
    { suite: 'small', workload: 'get', metric: 'rps', a: 'undici', b: 'node' },
    { suite: 'small', workload: 'patch', metric: 'rps', a: 'sidecar', b: 'node' },
    { suite: 'small', workload: 'patch', metric: 'rps', a: 'undici', b: 'node' },
    { suite: 'download', workload: 'download', metric: 'mbps', a: 'undici', b: 'node' },
    { suite: 'download', workload: 'download', metric: 'mbps', a: 'tcp', b: 'nginx' },
    { suite: 'download', workload: 'download', metric: 'mbps', a: 'sidecar', b: 'tcp' },
    { suite: 'ranges', workload: 'ranges', metric: 'rps', a: 'static', b: 'nginx-static' },
    { suite: 'ranges', workload: 'ranges', metric: 'rps', a: 'node-ranges', b: 'nginx-static' },
    { suite: 'ranges', workload: 'ranges', metric: 'rps', a: 'demo', b: 'node-ranges' },
    { suite: 'ranges', workload: 'ranges', metric: 'rps', a: 'demo-2', b: 'nginx-static-2' },
    { suite: 'clients', workload: 'get', metric: 'rps', a: 'undici-request', b: 'http' },
    { suite: 'clients', workload: 'get', metric: 'rps', a: 'undici-stream', b: 'http' },
    { suite: 'clients', workload: 'get', metric: 'rps', a: 'undici-dispatch', b: 'http' },
    { suite: 'workers', workload: 'get', metric: 'rps', a: 'sidecar-2', b: 'sidecar' },
    { suite: 'registry', workload: 'patch', metric: 'rps', a: 'sidecar-redis', b: 'sidecar' },
    { suite: 'registry', workload: 'patch-1', metric: 'rps', a: 'sidecar-redis', b: 'sidecar' },
  ],
};
