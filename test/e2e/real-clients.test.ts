/**
 * BEHAVIOUR.md §2 end to end: real download clients (curl, wget, aria2c) against the demo server
 * as a process reproduce an image byte for byte, with ranges, suffixes, resumed downloads and
 * several connections. The clients are Debian packages; a missing one fails the test, naming it.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startDemo, type Demo } from '../helpers/processes';

const SIZE = 8 * 1024 * 1024;
const IMAGE = randomBytes(SIZE);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The absolute path of `binary` on PATH, or a failure that names the Debian package to install. */
function client(binary: string, debianPackage: string): string {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`'${binary}' is not installed: install the Debian package '${debianPackage}' (apt-get install -y --no-install-recommends ${debianPackage})`);
}

interface Run {
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a client to completion; a non-zero exit fails with everything it printed. */
function run(binary: string, args: string[]): Promise<Run> {
  return new Promise<Run>((resolve, reject) => {
    execFile(binary, args, { timeout: 60000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(binary)} ${args.join(' ')} failed: ${err.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

describe('2. Image data: real download clients against the demo server', () => {
  let demo: Demo;
  let dir: string;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'glance-edge-clients-'));
    demo = await startDemo();
    const created = await fetch(`${demo.url}/v2/images`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'c', disk_format: 'raw', container_format: 'bare' }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const put = await fetch(`${demo.url}/v2/images/${id}/file`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: IMAGE,
    });
    expect(put.status).toBe(204);
    url = `${demo.url}/v2/images/${id}/file`;
  }, 60000);

  afterAll(async () => {
    await demo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('should 206 bytes 1000-2999 to curl -r 1000-2999, byte for byte', async () => {
    const curl = client('curl', 'curl');
    const out = path.join(dir, 'curl-range');
    const { stdout } = await run(curl, ['-sS', '-f', '-r', '1000-2999', '-o', out, '-w', '%{http_code} %{size_download}', url]);
    expect(stdout).toBe('206 2000');
    expect(sha256(readFileSync(out))).toBe(sha256(IMAGE.subarray(1000, 3000)));
  });

  it('should 206 the last 500 bytes to curl -r -500, byte for byte', async () => {
    const curl = client('curl', 'curl');
    const out = path.join(dir, 'curl-suffix');
    const { stdout } = await run(curl, ['-sS', '-f', '-r', '-500', '-o', out, '-w', '%{http_code} %{size_download}', url]);
    expect(stdout).toBe('206 500');
    expect(sha256(readFileSync(out))).toBe(sha256(IMAGE.subarray(SIZE - 500)));
  });

  it('should 206 the rest of the image to curl -C - resuming a partial file, which then is the whole image', async () => {
    const curl = client('curl', 'curl');
    const out = path.join(dir, 'curl-resumed');
    const partial = 3 * 1024 * 1024 + 123;
    writeFileSync(out, IMAGE.subarray(0, partial));
    const { stdout } = await run(curl, ['-sS', '-f', '-C', '-', '-o', out, '-w', '%{http_code} %{size_download}', url]);
    // 206 shows that curl sent Range: bytes=<partial>- and got only the rest.
    expect(stdout).toBe(`206 ${SIZE - partial}`);
    expect(sha256(readFileSync(out))).toBe(sha256(IMAGE));
  });

  it('should 206 the rest of the image to wget -c resuming a partial file, which then is the whole image', async () => {
    const wget = client('wget', 'wget');
    const out = path.join(dir, 'wget-resumed');
    const partial = 5 * 1024 * 1024 + 7;
    writeFileSync(out, IMAGE.subarray(0, partial));
    const { stderr } = await run(wget, ['-c', '-S', '--no-verbose', '-O', out, url]);
    // wget -S prints the answers it got: a resumed download is a 206 for bytes <partial>-<end>.
    expect(stderr).toMatch(/HTTP\/1\.1 206 Partial Content/);
    expect(stderr).toContain(`Content-Range: bytes ${partial}-${SIZE - 1}/${SIZE}`);
    expect(stderr).not.toMatch(/HTTP\/1\.1 200/);
    expect(sha256(readFileSync(out))).toBe(sha256(IMAGE));
  });

  it('should 206 segments on several connections to aria2c -x 4 -s 4 -k 1M, which reproduces the whole image byte for byte', async () => {
    const aria2c = client('aria2c', 'aria2');
    const name = 'aria2c-image';
    const log = path.join(dir, 'aria2c.log');
    await run(aria2c, [
      '-x', '4', '-s', '4', '-k', '1M',
      '--allow-overwrite=true', '--auto-file-renaming=false', '--file-allocation=none',
      '--console-log-level=warn', '--summary-interval=0', '--show-console-readout=false',
      // On loopback one connection could fetch all 8 MiB before the others are answered: at 4 MiB/s
      // a connection, each of the 4 still has its segment to fetch (about two seconds in all).
      '--max-download-limit=4M',
      `--log=${log}`, '--log-level=info',
      '-d', dir, '-o', name, url,
    ]);
    // aria2c logs every request and answer: it asked for segments on several connections, each got its 206.
    const text = readFileSync(log, 'utf8');
    const asked = [...text.matchAll(/^Range: bytes=(\d+)-(\d+)\r?$/gm)].map((m) => `${m[1]}-${m[2]}`);
    const answered = [...text.matchAll(/^Content-Range: bytes (\d+)-(\d+)\/(\d+)\r?$/gm)].map((m) => `${m[1]}-${m[2]}`);
    expect(new Set(asked).size).toBeGreaterThanOrEqual(2);
    expect(new Set(answered).size).toBeGreaterThanOrEqual(2);
    for (const range of answered) expect(asked).toContain(range);
    expect(text).not.toMatch(/HTTP\/1\.1 (?!20[06])\d{3}/);
    const out = path.join(dir, name);
    expect(existsSync(`${out}.aria2`)).toBe(false); // the control file is removed when the download is complete
    const data = readFileSync(out);
    expect(data.length).toBe(SIZE);
    expect(sha256(data)).toBe(sha256(IMAGE));
  });
});
