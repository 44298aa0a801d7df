/**
 * The path spellings of a location removal through the sidecar in front of a real Glance 25:
 * every spelling of a remove on a queued image is answered by the suite (409, or 400 when it cannot
 * be read unambiguously) or, where Glance does not route the spelling to the image, by Glance's
 * own refusal; never a 2xx. Glance's access log (eventlet's lines in glance-api.log) shows that
 * the suite looked the image up before any PATCH of it went on.
 */
import { readFileSync } from 'node:fs';
import { startRealGlance, type RealGlance } from '../helpers/glance';
import { startCli, type RunningProcess } from '../helpers/processes';
import { locationAttacks, OWNER, rawRequest, sendRaw } from '../fixtures/glance-upstream';

jest.setTimeout(60_000);

let glance: RealGlance;
let sidecar: RunningProcess;

beforeAll(async () => {
  glance = await startRealGlance();
  sidecar = await startCli(['proxy', '--upstream', glance.url, '--port', '0', '--host', '127.0.0.1']);
}, 180_000);

afterAll(async () => {
  await sidecar?.stop();
  await glance?.stop();
}, 60_000);

/** Glance's access lines naming image `id` (in any case), as `METHOD target status`. */
function accessLines(id: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync(glance.logFile, 'utf8').split('\n')) {
    const m = /"([A-Z]+) (\S+) HTTP\/1\.[01]" (\d{3})/.exec(line);
    if (m && decodeURIComponent(m[2] as string).toLowerCase().includes(id.toLowerCase())) out.push(`${m[1]} ${m[2]} ${m[3]}`);
  }
  return out;
}

async function linesAfter(id: string, settle: (lines: string[]) => boolean, ms = 3000): Promise<string[]> {
  const until = Date.now() + ms;
  let lines = accessLines(id);
  while (!settle(lines) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    lines = accessLines(id);
  }
  return lines;
}

describe('1. every path spelling of a location removal, through the sidecar in front of a real Glance', () => {
  for (const attack of locationAttacks().filter((a) => a.cls === 'path' || a.name === 'the token in X_Auth_Token' || a.name === 'chunked PATCH')) {
    it(`should never 2xx ${attack.cls}: ${attack.name} on a queued image, and look it up before any PATCH`, async () => {
      const created = await sendRaw(sidecar.port, rawRequest('POST', '/v2/images', [['Content-Type', 'application/json']], '{"name": "attack", "disk_format": "raw", "container_format": "bare"}'));
      expect(created.status).toBe(201);
      const id = (JSON.parse(created.body.toString()) as { id: string }).id;
      const answer = await sendRaw(sidecar.port, attack.build(id, [['X-Auth-Token', OWNER]]));
      expect(answer.status).toBeGreaterThanOrEqual(300);
      const changes = (l: string) => /^(PATCH|POST|PUT|DELETE) /.test(l) && !l.startsWith('POST /v2/images ');
      if (answer.status === 409) {
        expect(answer.body.toString()).toContain("It's not allowed to remove locations if image status is queued.");
        const lines = await linesAfter(id, (ls) => ls.some((l) => l.startsWith('GET ')));
        expect(lines.some((l) => l.startsWith('GET '))).toBe(true);
        expect(lines.filter(changes)).toEqual([]);
      } else if (answer.status === 400) {
        expect(answer.body.toString()).toMatch(/This request cannot be read unambiguously|request/);
        expect((await linesAfter(id, () => false, 300)).filter(changes)).toEqual([]);
      } else {
        // Glance's own refusal of a spelling it does not route to the image: looked up first all the same.
        const lines = await linesAfter(id, (ls) => ls.some(changes));
        const firstChange = lines.findIndex(changes);
        const firstLookup = lines.findIndex((l) => l.startsWith('GET '));
        expect({ lines, lookedUpFirst: firstLookup !== -1 && (firstChange === -1 || firstLookup < firstChange) }).toEqual({ lines, lookedUpFirst: true });
      }
      const image = await sendRaw(sidecar.port, rawRequest('GET', `/v2/images/${id}`, [['Accept', 'application/json']]));
      expect((JSON.parse(image.body.toString()) as { status: string }).status).toBe('queued');
    });
  }
});
