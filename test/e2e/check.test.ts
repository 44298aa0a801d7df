/**
 * `glance-edge check URL` against the services the suite is held to: the demo and the sidecar in
 * front of a pre-Ocata stand-in have every row; the stand-in itself lacks the location guard,
 * ranges, ploop and vz; an unreachable URL cannot be checked. Each run's rows come from its
 * `--json` report, and no image of the check's is left behind.
 */
import { startCli, startDemo, type Demo, type RunningProcess } from '../helpers/processes';
import { startOldGlance, type OldGlance } from '../fixtures/old-glance';
import { check, checkImagesLeft, report, results } from './check-helpers';

/** Every row of the report, in its order. */
const ROW_IDS = [
  'locations.visible',
  'locations.remove.queued',
  'locations.remove.saving',
  'locations.remove.deactivated',
  'locations.replace.deactivated',
  'locations.add.deactivated',
  'locations.replace.queued',
  'locations.add.active',
  'locations.replace.active',
  'locations.remove.active',
  'ranges.single',
  'ranges.suffix',
  'ranges.clamped',
  'ranges.unsatisfiable',
  'ranges.unsatisfiable.content-range',
  'ranges.zero-suffix',
  'ranges.several',
  'ranges.if-range',
  'ranges.accept-ranges',
  'legacy.form',
  'legacy.deprecated',
  'formats.ploop.schema',
  'formats.ploop.create',
  'metadefs.vz',
];
const allOk = Object.fromEntries(ROW_IDS.map((id) => [id, 'ok']));

describe('glance-edge check against the demo', () => {
  let demo: Demo;
  beforeAll(async () => {
    demo = await startDemo();
  });
  afterAll(async () => {
    await demo?.close();
  });

  it('should find every row ok and exit 0, and leave no image behind', async () => {
    const run = await check([demo.url, '--json']);
    const doc = report(run);
    expect(results(doc)).toEqual(allOk);
    expect(doc.rows.map((r) => r.id)).toEqual(ROW_IDS);
    expect(run.status).toBe(0);
    expect(doc.exitStatus).toBe(0);
    expect(doc.summary).toEqual({ required: { ok: 19, missing: 0, differs: 0, couldNotTest: 0 }, recommended: { ok: 5, missing: 0, differs: 0, couldNotTest: 0 } });
    // What the rows saw, word for word where the contract words it.
    expect(doc.row('locations.remove.saving').seen).toBe("409 It's not allowed to remove locations if image status is saving.");
    expect(doc.row('locations.add.deactivated').seen).toBe("409 It's not allowed to add locations if image status is deactivated.");
    expect(doc.row('ranges.clamped').seen).toBe('206 Content-Range: bytes 12-31/32, "cdefghijklmnopqrstuv"');
    expect(doc.row('ranges.unsatisfiable').seen).toBe('416 Invalid start position in Range header. Start position MUST be in the inclusive range [0, 31].');
    expect(doc.row('ranges.unsatisfiable.content-range').seen).toBe('416 Content-Range: bytes */32');
    expect(doc.row('legacy.form').seen).toBe('206 Content-Range: bytes 12-30/32, "cdefghijklmnopqrstu"');
    expect(doc.row('legacy.deprecated').seen).toBe('206, Deprecation: @1487721600, Link rel="deprecation", Warning 299');
    expect(doc.row('metadefs.vz').seen).toBe('hypervisor_type: baremetal, hyperv, kvm, lxc, powervm, qemu, uml, vmware, vz, xen');
    // Three images of its own, each deleted; nothing of the check's is left.
    expect(doc.images.created).toHaveLength(3);
    expect([...doc.images.deleted].sort()).toEqual([...doc.images.created].sort());
    expect(doc.images.notDeleted).toEqual([]);
    expect(await checkImagesLeft(demo.url)).toEqual([]);
    // One progress line per group on stderr, the cleanup last.
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^glance-edge check: http:\/\/127\.0\.0\.1:\d+, images named glance-edge-check-[0-9a-f]{8}-\*$/);
    expect(lines.slice(1)).toEqual([
      'formats: ploop in the image schema and on create',
      'metadefs: vz in OS::Compute::Hypervisor',
      'locations: shown on images?, a remove on a queued image',
      'upload: the data held back half-way, a location removed while the image is saving',
      expect.stringMatching(/^ranges: [0-9a-f-]{36} \(32 bytes\)$/),
      'locations: a deactivated image',
      expect.stringMatching(/^locations: the allowed changes, with data from http:\/\/127\.0\.0\.1:\d+$/),
      'cleanup: deleted 3 images',
    ]);
  });

  it('should print the same verdicts as a table on stdout', async () => {
    const run = await check([demo.url]);
    expect(run.status).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toMatch(/^behaviour +kind +expected +seen +result$/);
    expect(lines).toContain('1. Location changes');
    expect(lines).toContain('2. Image data');
    expect(lines).toContain('3. Formats and metadefs');
    expect(run.stdout).toMatch(/^remove a location of a queued +required +409 It's not allowed to remove +409 It's not allowed to remove +ok$/m);
    expect(run.stdout).toContain('\nrequired: 19 ok, 0 missing, 0 differ, 0 could not test; recommended: 5 ok, 0 missing, 0 differ, 0 could not test\n');
    expect(await checkImagesLeft(demo.url)).toEqual([]);
  });
});

describe('glance-edge check against the sidecar in front of a pre-Ocata service', () => {
  let old: OldGlance;
  let sidecar: RunningProcess;
  beforeAll(async () => {
    old = await startOldGlance();
    sidecar = await startCli(['proxy', '--upstream', old.url, '--legacy-upstream', 'true', '--port', '0', '--host', '127.0.0.1']);
  });
  afterAll(async () => {
    await sidecar?.stop();
    await old?.close();
  });

  it('should find every row ok and exit 0, and leave no image behind', async () => {
    const run = await check([sidecar.url, '--json']);
    const doc = report(run);
    expect(results(doc)).toEqual(allOk);
    expect(run.status).toBe(0);
    expect(doc.row('locations.remove.saving').seen).toBe("409 It's not allowed to remove locations if image status is saving.");
    expect(doc.row('ranges.suffix').seen).toBe('206 Content-Range: bytes 27-31/32, "rstuv"');
    expect(doc.images.created).toHaveLength(3);
    expect(doc.images.notDeleted).toEqual([]);
    expect(await checkImagesLeft(sidecar.url)).toEqual([]);
    expect(old.store.list().filter((r) => r.name?.startsWith('glance-edge-check-'))).toEqual([]);
  });
});

describe('glance-edge check against the pre-Ocata service itself', () => {
  let old: OldGlance;
  beforeAll(async () => {
    old = await startOldGlance();
  });
  afterAll(async () => {
    await old?.close();
  });

  it('should find the location guard, ranges, ploop and vz missing or different, and exit 1', async () => {
    const run = await check([old.url, '--json']);
    const doc = report(run);
    expect(run.status).toBe(1);
    expect(doc.exitStatus).toBe(1);
    expect(results(doc)).toEqual({
      'locations.visible': 'ok',
      // No guard: Glance's finer checks answer where the status should.
      'locations.remove.queued': 'differs',
      'locations.remove.saving': 'differs',
      'locations.remove.deactivated': 'differs',
      'locations.replace.deactivated': 'differs',
      'locations.add.deactivated': 'missing',
      // What the contract allows, it allows too.
      'locations.replace.queued': 'ok',
      'locations.add.active': 'ok',
      'locations.replace.active': 'ok',
      'locations.remove.active': 'ok',
      // Range ignored: the whole image, 200.
      'ranges.single': 'missing',
      'ranges.suffix': 'missing',
      'ranges.clamped': 'missing',
      'ranges.unsatisfiable': 'missing',
      'ranges.unsatisfiable.content-range': 'could not test (the service answered 200, not 416)',
      'ranges.zero-suffix': 'missing',
      'ranges.several': 'missing',
      'ranges.if-range': 'missing',
      'ranges.accept-ranges': 'missing',
      // The legacy form honoured, but its 206 does not say which bytes it holds.
      'legacy.form': 'differs',
      'legacy.deprecated': 'missing',
      'formats.ploop.schema': 'missing',
      'formats.ploop.create': 'ok',
      'metadefs.vz': 'missing',
    });
    expect(doc.row('locations.remove.deactivated').seen).toBe('403 Cannot remove last location in the image.');
    expect(doc.row('locations.add.deactivated').seen).toBe('200: the change was made');
    expect(doc.row('ranges.single').seen).toBe('200, 32 bytes: the range ignored');
    expect(doc.row('legacy.form').seen).toBe('206 without Content-Range, "cdefghijklmnopqrstu"');
    expect(doc.row('formats.ploop.schema').seen).toBe('disk_format: null, ami, ari, aki, vhd, vhdx, vmdk, raw, qcow2, vdi, iso');
    expect(doc.row('metadefs.vz').seen).toBe('hypervisor_type: baremetal, hyperv, kvm, lxc, powervm, qemu, uml, vmware, xen');
    expect(doc.images.notDeleted).toEqual([]);
    expect(old.store.list().filter((r) => r.name?.startsWith('glance-edge-check-'))).toEqual([]);
  });
});

describe('glance-edge check against a URL nothing answers', () => {
  it('should exit 2 with one line naming the URL', async () => {
    const run = await check(['http://127.0.0.1:1', '--json']);
    expect(run).toEqual({ status: 2, signal: null, stdout: '', stderr: 'glance-edge: http://127.0.0.1:1 could not be reached (ECONNREFUSED)\n' });
  });
});
