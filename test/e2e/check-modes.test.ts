/**
 * `glance-edge check` where it can only partly test (locations hidden, no right to deactivate,
 * locations it may not give, no address to serve data on, no right to create), on one existing
 * image (`--image`), keeping and cleaning up its images (`--keep`, `--cleanup`), and stopped by
 * SIGTERM and SIGINT: it says what it could not test and why, and leaves nothing behind.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FIXTURE, startCli, startDemo } from '../helpers/processes';
import { startGlanceUpstream, type GlanceUpstream } from '../fixtures/glance-upstream';
import { check, checkImagesLeft, report, results } from './check-helpers';

const LOCATION_ROWS = [
  'locations.remove.queued',
  'locations.remove.saving',
  'locations.remove.deactivated',
  'locations.replace.deactivated',
  'locations.add.deactivated',
  'locations.replace.queued',
  'locations.add.active',
  'locations.replace.active',
  'locations.remove.active',
];
const DEACTIVATED_ROWS = ['locations.remove.deactivated', 'locations.replace.deactivated', 'locations.add.deactivated'];
const ALLOWED_ROWS = ['locations.replace.queued', 'locations.add.active', 'locations.replace.active', 'locations.remove.active'];

/** The rows whose result is not ok, with why. */
function notOk(doc: ReturnType<typeof report>): Record<string, string> {
  return Object.fromEntries(Object.entries(results(doc)).filter(([, r]) => r !== 'ok'));
}

const each = (ids: readonly string[], result: string) => Object.fromEntries(ids.map((id) => [id, result]));

/** What a gate does with a request: pass it on, hold it unanswered, or answer it itself. */
type Rule = (req: http.IncomingMessage) => 'forward' | 'hold' | { status: number; body: string };

interface Gate {
  readonly url: string;
  /** The requests held so far. */
  held(): number;
  close(): Promise<void>;
}

/** A pass-through in front of `target` that can refuse or hold requests, standing for a service's policy or a slow answer. */
function startGate(target: string, rule: Rule): Promise<Gate> {
  const upstream = new URL(target);
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    const verdict = rule(req);
    if (verdict === 'hold') {
      held.push(res);
      req.resume();
      return;
    }
    if (verdict !== 'forward') {
      req.resume();
      res.writeHead(verdict.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(verdict.body) }).end(verdict.body);
      return;
    }
    const out = http.request({ hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        held: () => held.length,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

const glanceJson = (status: string, message: string) => JSON.stringify({ message: `${message}<br /><br />\n\n\n`, code: status, title: status.slice(4) });

async function until(what: string, test: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('glance-edge check against a service it can only partly test', () => {
  it('should, with locations hidden, find them refused alike and say the location rows could not be tested', async () => {
    const demo = await startDemo(['--show-multiple-locations', 'false']);
    try {
      const run = await check([demo.url, '--json']);
      const doc = report(run);
      expect(notOk(doc)).toEqual(each(LOCATION_ROWS, 'could not test (locations are hidden (show_multiple_locations is off): every location change is refused alike)'));
      expect(doc.row('locations.visible').seen).toBe("hidden: a remove answered 403 It's not allowed to remove locations if locations are invisible.; locations listed all the same (0)");
      expect(run.status).toBe(0);
      expect(await checkImagesLeft(demo.url)).toEqual([]);
    } finally {
      await demo.close();
    }
  });

  it('should say the deactivated rows could not be tested when deactivating is refused', async () => {
    const demo = await startDemo();
    const gate = await startGate(demo.url, (req) =>
      req.method === 'POST' && req.url?.endsWith('/actions/deactivate') ? { status: 403, body: glanceJson('403 Forbidden', 'You are not authorized to complete deactivate action.') } : 'forward',
    );
    try {
      const run = await check([gate.url, '--json']);
      const doc = report(run);
      expect(notOk(doc)).toEqual(
        each(DEACTIVATED_ROWS, "could not test (deactivating the check's image answered 403 You are not authorized to complete deactivate action. (an admin's right by default))"),
      );
      expect(run.status).toBe(0);
      expect(await checkImagesLeft(demo.url)).toEqual([]);
    } finally {
      await gate.close();
      await demo.close();
    }
  });

  it('should say the allowed rows could not be tested when the service refuses the check\'s location', async () => {
    const demo = await startDemo(['--allowed-location-hosts', '']);
    try {
      const run = await check([demo.url, '--json']);
      const doc = report(run);
      const why = "the service refused the check's own location (400 Invalid location): it needs an http store that reaches the check's data server (--serve-on)";
      expect(notOk(doc)).toEqual({
        'locations.replace.queued': `could not test (${why})`,
        ...each(ALLOWED_ROWS.slice(1), `could not test (needs the image active at the check's location, which the replace on queued did not give (${why}))`),
      });
      expect(run.status).toBe(0);
      expect(await checkImagesLeft(demo.url)).toEqual([]);
    } finally {
      await demo.close();
    }
  });

  it('should say the allowed rows could not be tested when it cannot serve their data on --serve-on', async () => {
    const demo = await startDemo();
    try {
      // 192.0.2.1 (TEST-NET-1) is no address of this machine.
      const run = await check([demo.url, '--json', '--serve-on', '192.0.2.1:0']);
      const doc = report(run);
      expect(notOk(doc)).toEqual(each(ALLOWED_ROWS, "could not test (could not serve the check's location data on 192.0.2.1:0 (EADDRNOTAVAIL): see --serve-on)"));
      expect(run.status).toBe(0);
      expect(await checkImagesLeft(demo.url)).toEqual([]);
    } finally {
      await demo.close();
    }
  });

  it('should exit 2 with one line when it may not create an image', async () => {
    const demo = await startDemo();
    const gate = await startGate(demo.url, (req) =>
      req.method === 'POST' && req.url === '/v2/images' ? { status: 403, body: glanceJson('403 Forbidden', 'You are not authorized to complete add_image action.') } : 'forward',
    );
    try {
      const run = await check([gate.url, '--json']);
      expect(run).toEqual({
        status: 2,
        signal: null,
        stdout: '',
        stderr: `glance-edge: ${gate.url} answered 403 You are not authorized to complete add_image action. to creating an image; check one image with --image ID\n`,
      });
    } finally {
      await gate.close();
      await demo.close();
    }
  });
});

describe('glance-edge check --image ID', () => {
  it('should check the read-only rows of an image of the demo and create nothing', async () => {
    const demo = await startDemo();
    try {
      const created = await fetch(`${demo.url}/v2/images`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'mine', disk_format: 'raw', container_format: 'bare' }) });
      const { id } = (await created.json()) as { id: string };
      expect((await fetch(`${demo.url}/v2/images/${id}/file`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: FIXTURE })).status).toBe(204);
      const run = await check([demo.url, '--image', id, '--json']);
      const doc = report(run);
      expect(notOk(doc)).toEqual({
        ...each(['locations.visible', ...LOCATION_ROWS], "could not test (--image: the location rows need images of the check's own)"),
        'formats.ploop.create': 'could not test (--image: the check creates nothing)',
      });
      expect(doc.image).toBe(id);
      expect(doc.images).toEqual({ created: [], deleted: [], kept: [], notDeleted: [] });
      expect(run.status).toBe(0);
      expect(run.stderr).toBe(
        `glance-edge check: ${demo.url}, image ${id} (the read-only rows; nothing is created)\nformats: ploop in the image schema and on create\nmetadefs: vz in OS::Compute::Hypervisor\nranges: ${id} (32 bytes)\n`,
      );
      const list = (await (await fetch(`${demo.url}/v2/images`)).json()) as { images: { id: string }[] };
      expect(list.images.map((i) => i.id)).toEqual([id]);
    } finally {
      await demo.close();
    }
  });

  describe('on a pre-Ocata service read with Glance\'s own routing (test/fixtures/glance_upstream.py)', () => {
    let upstream: GlanceUpstream;
    const ID = '7d1e5d0a-0000-4000-8000-00000000c4ec';
    beforeAll(async () => {
      upstream = await startGlanceUpstream();
      await upstream.addImage({ id: ID, status: 'active', visibleTo: ['owner'], data: FIXTURE });
    });
    afterAll(async () => {
      await upstream?.stop();
    });

    it('should find the ranges missing and exit 1, with the token given', async () => {
      const before = Math.max(-1, ...(await upstream.log()).map((e) => e.seq));
      const run = await check([upstream.url, '--image', ID, '--token', 'owner', '--json']);
      const doc = report(run);
      expect(run.status).toBe(1);
      expect(Object.fromEntries(doc.rows.filter((r) => r.id.startsWith('ranges.') || r.id.startsWith('legacy.')).map((r) => [r.id, r.result]))).toEqual({
        'ranges.single': 'missing',
        'ranges.suffix': 'missing',
        'ranges.clamped': 'missing',
        'ranges.unsatisfiable': 'missing',
        'ranges.unsatisfiable.content-range': 'could not test',
        'ranges.zero-suffix': 'missing',
        'ranges.several': 'missing',
        'ranges.if-range': 'missing',
        'ranges.accept-ranges': 'missing',
        'legacy.form': 'missing',
        'legacy.deprecated': 'missing',
      });
      expect(doc.row('legacy.form').seen).toBe('200, 32 bytes: the range ignored');
      // Every request carried the token, and none changed anything.
      const log = (await upstream.log()).filter((e) => e.image_id !== null);
      expect(log.filter((e) => e.seq > before)).toHaveLength(10);
      expect(log.every((e) => e.token === 'owner' && e.method === 'GET')).toBe(true);
      expect(await upstream.image(ID)).toMatchObject({ status: 'active', locations: [] });
    });

    it('should find every read-only row ok through the sidecar in front of it, exit 0', async () => {
      const sidecar = await startCli(['proxy', '--upstream', upstream.url, '--port', '0', '--host', '127.0.0.1']);
      try {
        const run = await check([sidecar.url, '--image', ID, '--token', 'owner', '--json']);
        const doc = report(run);
        expect(notOk(doc)).toEqual({
          ...each(['locations.visible', ...LOCATION_ROWS], "could not test (--image: the location rows need images of the check's own)"),
          'formats.ploop.create': 'could not test (--image: the check creates nothing)',
        });
        expect(doc.row('ranges.suffix').seen).toBe('206 Content-Range: bytes 27-31/32, "rstuv"');
        expect(run.status).toBe(0);
      } finally {
        await sidecar.stop();
      }
    });

    it('should exit 2 with one line when no identity is given', async () => {
      const run = await check([upstream.url, '--image', ID]);
      expect(run).toEqual({
        status: 2,
        signal: null,
        stdout: '',
        stderr: `glance-edge: ${upstream.url} answered 401 This server could not verify that you are authorized to access the document you requested. Either you supplied the wrong credentials (e.g., bad password), or your browser does not understand how … to GET /v2/images/${ID}: give an identity (--token, OS_AUTH_TOKEN or --header)\n`,
      });
    });

    it('should take the token from OS_AUTH_TOKEN and the URL from OS_IMAGE_URL', async () => {
      const run = await check(['--image', ID, '--json'], { OS_AUTH_TOKEN: 'owner', OS_IMAGE_URL: `${upstream.url}/v2` });
      expect(run.status).toBe(1);
      expect(report(run).url).toBe(upstream.url);
    });
  });
});

describe('glance-edge check --keep and --cleanup', () => {
  it('should keep its images with --keep, and --cleanup should delete those and nothing else', async () => {
    const demo = await startDemo();
    try {
      const make = async (name: string) => {
        const res = await fetch(`${demo.url}/v2/images`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
        expect(res.status).toBe(201);
      };
      await make('cirros');
      await make('glance-edge-check-notmine');
      await make('glance-edge-check-0123abcd-backup');
      const kept = report(await check([demo.url, '--keep', '--json']));
      expect(kept.exitStatus).toBe(0);
      expect(kept.images.kept).toHaveLength(3);
      expect(kept.images.deleted).toEqual([]);
      const names = ['data', 'locations', 'ploop'].map((role) => `glance-edge-check-${kept.run ?? ''}-${role}`);
      expect((await checkImagesLeft(demo.url)).sort()).toEqual(['glance-edge-check-0123abcd-backup', ...names, 'glance-edge-check-notmine'].sort());

      const cleanup = await check([demo.url, '--cleanup', '--json']);
      expect(cleanup.status).toBe(0);
      expect(cleanup.stderr).toBe('');
      const doc = JSON.parse(cleanup.stdout) as { found: { id: string; name: string }[]; deleted: string[]; notDeleted: string[] };
      expect(doc.found.map((f) => f.name).sort()).toEqual(names);
      expect([...doc.deleted].sort()).toEqual([...kept.images.kept].sort());
      expect(doc.notDeleted).toEqual([]);
      expect((await checkImagesLeft(demo.url)).sort()).toEqual(['glance-edge-check-0123abcd-backup', 'glance-edge-check-notmine']);

      const again = await check([demo.url, '--cleanup']);
      expect(again).toEqual({ status: 0, signal: null, stdout: `no image named glance-edge-check-… at ${demo.url}\n`, stderr: '' });
    } finally {
      await demo.close();
    }
  });
});

describe('glance-edge check stopped by a signal', () => {
  it.each([
    ['SIGTERM', 1, 'a remove on a queued image', 2],
    ['SIGINT', 2, 'a remove while the upload is held open', 2],
  ] as const)('should, on %s at location change number %d (%s), delete its images and exit 2', async (signal, nth, _what, images) => {
    const demo = await startDemo();
    let patches = 0;
    const gate = await startGate(demo.url, (req) => (req.method === 'PATCH' && ++patches === nth ? 'hold' : 'forward'));
    try {
      const run = await check([gate.url, '--json'], {}, 30_000, (child) => {
        void until('the held change', () => gate.held() === 1).then(() => child.kill(signal));
      });
      expect(run.status).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain(`\nglance-edge: ${signal}: stopping and deleting the check's images\ncleanup: deleted ${images} images\n`);
      await until('the upload cut off to be undone', async () => (await checkImagesLeft(demo.url)).length === 0);
      expect(await checkImagesLeft(demo.url)).toEqual([]);
    } finally {
      await gate.close();
      await demo.close();
    }
  });
});
