/**
 * `glance-edge check` against a real Glance 25.1 (test/glance/start.sh): every required row ok,
 * the recommended ones Glance lacks shown as such; through the sidecar in front of it, every row ok.
 */
import { startRealGlance, type RealGlance } from '../helpers/glance';
import { startCli, type RunningProcess } from '../helpers/processes';
import { check, checkImagesLeft, report, results } from './check-helpers';

let glance: RealGlance;
beforeAll(async () => {
  glance = await startRealGlance();
}, 120_000);
afterAll(async () => {
  await glance?.stop();
}, 60_000);

describe('glance-edge check against a real Glance 25.1', () => {
  it('should find every required row ok, exit 0, and show the recommended rows Glance lacks', async () => {
    const run = await check([glance.url, '--json']);
    const doc = report(run);
    const required = doc.rows.filter((r) => r.kind === 'required');
    expect(required.filter((r) => r.result !== 'ok')).toEqual([]);
    expect(required).toHaveLength(19);
    expect(run.status).toBe(0);
    expect(doc.exitStatus).toBe(0);
    const recommended = doc.rows.filter((r) => r.kind === 'recommended');
    expect(Object.fromEntries(recommended.map((r) => [r.id, [r.result, r.seen]]))).toEqual({
      'ranges.unsatisfiable.content-range': ['missing', '416 without Content-Range'],
      'ranges.zero-suffix': ['differs', '206 Content-Range: bytes 0-31/32, "0123456789abcdefghijklmnopqrstuv"'],
      'ranges.if-range': ['missing', 'no ETag; If-Range stale → 206'],
      'ranges.accept-ranges': ['missing', 'Accept-Ranges on 200: none, 206: none'],
      'legacy.deprecated': ['missing', '206 without any deprecation header'],
    });
    // Glance's own words, as the contract records them.
    expect(doc.row('locations.remove.saving').seen).toBe("409 It's not allowed to remove locations if image status is saving.");
    expect(doc.row('locations.replace.deactivated').seen).toBe("409 It's not allowed to replace locations if image status is deactivated.");
    expect(doc.row('locations.remove.active').seen).toBe('200, active, 1 location');
    expect(doc.row('ranges.several').seen).toBe('400 Requests with multiple ranges are not supported in Glance. You may make multiple single-range requests instead.');
    expect(doc.row('legacy.form').seen).toBe('206 Content-Range: bytes 12-30/32, "cdefghijklmnopqrstu"');
    expect(doc.images.created).toHaveLength(3);
    expect(doc.images.notDeleted).toEqual([]);
    expect(await checkImagesLeft(glance.url)).toEqual([]);
  }, 60_000);

  it('should find every row ok through the sidecar in front of it', async () => {
    const sidecar: RunningProcess = await startCli(['proxy', '--upstream', glance.url, '--port', '0', '--host', '127.0.0.1']);
    try {
      const run = await check([sidecar.url, '--json']);
      const doc = report(run);
      expect(Object.values(results(doc)).filter((r) => r !== 'ok')).toEqual([]);
      expect(doc.rows).toHaveLength(24);
      expect(run.status).toBe(0);
      expect(doc.row('ranges.zero-suffix').seen).toBe('416 Invalid Range header.');
      expect(doc.images.notDeleted).toEqual([]);
      expect(await checkImagesLeft(glance.url)).toEqual([]);
    } finally {
      await sidecar.stop();
    }
  }, 60_000);
});
