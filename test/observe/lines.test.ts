/**
 * lineBuffer, the default destination of createLogger: every line written whole and in order,
 * whatever its size and characters, at the threshold, on flush, every 200 ms and at exit.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lineBuffer } from '../../server/observe/logs';
import { ROOT } from '../helpers/processes';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'lines-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function withFile(run: (fd: number, read: () => string) => void): void {
  const file = path.join(dir, 'out');
  const fd = openSync(file, 'w');
  try {
    run(fd, () => readFileSync(file, 'utf8'));
  } finally {
    closeSync(fd);
  }
}

describe('lineBuffer', () => {
  it('should hold lines until flushAt bytes, then write them all, in order', () => {
    withFile((fd, read) => {
      const out = lineBuffer(fd, 4096, 1024);
      const lines = Array.from({ length: 100 }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(i % 37)}"}\n`);
      let written = '';
      for (const line of lines) {
        out.write(line);
        written += line;
        // Never more than flushAt (plus the line that crossed it) held back.
        expect(written.length - read().length).toBeLessThan(1024);
        expect(written.startsWith(read())).toBe(true);
      }
      out.flush();
      expect(read()).toBe(lines.join(''));
    });
  });

  it('should write UTF-8 whole, and a line larger than the buffer after what came before it', () => {
    withFile((fd, read) => {
      const out = lineBuffer(fd, 1024, 512);
      const small = '{"msg":"é 中 🐧"}\n';
      const huge = `{"msg":"${'ü'.repeat(2000)}"}\n`;
      out.write(small);
      out.write(huge);
      out.write(small);
      let called = false;
      out.flush(() => {
        called = true;
      });
      expect(called).toBe(true);
      expect(read()).toBe(small + huge + small);
    });
  });

  it('should write what it holds every 200 ms', async () => {
    const file = path.join(dir, 'out');
    const fd = openSync(file, 'w');
    try {
      lineBuffer(fd).write('{"a":1}\n');
      expect(readFileSync(file, 'utf8')).toBe('');
      await new Promise((r) => setTimeout(r, 450));
      expect(readFileSync(file, 'utf8')).toBe('{"a":1}\n');
    } finally {
      closeSync(fd);
    }
  });

  it('should drop lines, say so once on stderr and go on when its reader is gone', () => {
    const logs = path.join(ROOT, 'dist', 'server', 'observe', 'logs.js');
    // stdout a pipe whose reader has closed: every write is EPIPE.
    const script = `process.stdout.destroy(); const { lineBuffer } = require(${JSON.stringify(logs)}); const out = lineBuffer(1, 1024, 64);
      for (let i = 0; i < 100; i++) out.write('{"i":' + i + '}\\n'); out.flush(); process.stderr.write('still here\\n');`;
    const { spawnSync } = jest.requireActual<typeof import('node:child_process')>('node:child_process');
    const run = spawnSync('sh', ['-c', `"${process.execPath}" -e '${script.replace(/'/g, "'\\''")}' | true`], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stderr.match(/log lines are no longer written/g)).toHaveLength(1);
    expect(run.stderr).toContain('still here');
  });

  it('should write what it holds when the process exits, through createLogger on stdout', () => {
    const logs = path.join(ROOT, 'dist', 'server', 'observe', 'logs.js');
    const out = execFileSync(process.execPath, ['-e', `const { createLogger } = require(${JSON.stringify(logs)}); const l = createLogger(); for (let i = 0; i < 3; i++) l.info({ i }, 'line'); process.exit(0);`], {
      encoding: 'utf8',
    });
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l['i'], l['msg'], l['level'], l['name']])).toEqual([
      [0, 'line', 'info', 'glance-edge'],
      [1, 'line', 'info', 'glance-edge'],
      [2, 'line', 'info', 'glance-edge'],
    ]);
  });
});
