/**
 * The built `glance-edge` command as a user runs it (`npm run build` first): what each wrong
 * command line answers (exit status, stdout and stderr exactly), the usage, and that valid
 * command lines still start.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const CLI = path.resolve(__dirname, '..', '..', 'dist', 'server', 'cli.js');
const UPSTREAM = 'http://127.0.0.1:1';

let work = '';
beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'glance-edge-cli-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The environment of the test without any GLANCE_EDGE_ setting, plus `env`. */
function cleanEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GLANCE_EDGE_')));
  return { ...clean, ...env };
}

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: readonly string[], env: NodeJS.ProcessEnv = {}): Run {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 15000, env: cleanEnv(env), cwd: work });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A file in the test's folder holding `content`; its path. */
function file(name: string, content: string): string {
  const at = path.join(work, name);
  writeFileSync(at, content);
  return at;
}

/** One line on stderr, nothing on stdout, exit status 2. */
function usageError(line: string): Run {
  return { status: 2, stdout: '', stderr: `glance-edge: ${line}\n` };
}

describe('The command line: help and usage', () => {
  let usage = '';
  beforeAll(() => {
    usage = run(['help']).stdout;
  });

  it('should print the usage on stdout and exit 0 for help', () => {
    expect(run(['help'])).toEqual({ status: 0, stdout: usage, stderr: '' });
    expect(usage.startsWith('Usage: glance-edge <command> [options]\n       glance-edge help | --help | -h\n\nCommands:\n  demo    ')).toBe(true);
    expect(usage.endsWith('Exit status: 2 when the command line is wrong (one line on stderr says what), 1 when the command\ncannot start (its port taken, its data folder unwritable), 0 once stopped by SIGINT or SIGTERM.\n')).toBe(true);
    expect(usage).toContain('BOOL is true or false, nothing else.');
    for (const flag of ['--data DIR', '--port N', '--host H', '--show-multiple-locations BOOL', '--max-ranges N', '--header-timeout MS', '--idle-timeout MS', '--allowed-location-hosts LIST', '--max-image-size BYTES', '--max-connections N', '--upstream URL', '--legacy-upstream BOOL', '--timeout MS', '--config FILE']) {
      expect(usage).toContain(flag);
    }
  });

  it.each([[['--help']], [['-h']], [['help', 'demo']], [['help', 'proxy']], [['demo', '--help']], [['proxy', '-h']], [['demo', '--port', '0', '-h']], [['demo', '--prot', '1', '--help']], [['proxy', '--help', 'stray']]])(
    'should print the same usage on stdout and exit 0 for %j',
    (args) => {
      expect(run(args)).toEqual({ status: 0, stdout: usage, stderr: '' });
    },
  );

  it('should print the usage on stderr and exit 2 when the command is missing', () => {
    expect(run([])).toEqual({ status: 2, stdout: '', stderr: usage });
  });
});

describe('The command line: commands and flags', () => {
  it.each<[string[], string]>([
    [['serve'], "unknown command 'serve' (the commands are demo, proxy, check and help)"],
    [['dmeo'], "unknown command 'dmeo' (did you mean 'demo'?)"],
    [['--port', '0'], "unknown command '--port' (the commands are demo, proxy, check and help)"],
    [['help', 'serve'], "unknown command 'serve' (the commands are demo, proxy, check and help)"],
    [['help', 'demo', 'proxy'], "help takes one command at most, got 'proxy'"],
    [['demo', '--prot', '0'], "unknown flag '--prot' for demo (did you mean '--port'?)"],
    [['demo', '--max_ranges', '2'], "unknown flag '--max_ranges' for demo (did you mean '--max-ranges'?)"],
    [['proxy', '--upstream', UPSTREAM, '--showMultipleLocations', 'true'], "unknown flag '--showMultipleLocations' for proxy (did you mean '--show-multiple-locations'?)"],
    [['demo', '--upstream', UPSTREAM], "unknown flag '--upstream' for demo (it is a flag of proxy)"],
    [['proxy', '--upstream', UPSTREAM, '--data', 'd'], "unknown flag '--data' for proxy (it is a flag of demo)"],
    [['demo', '-p', '0'], "unknown flag '-p' for demo"],
    [['demo', '--verbose'], "unknown flag '--verbose' for demo"],
    [['demo', '--port'], '--port needs a value'],
    [['demo', '--port', '--host', '127.0.0.1'], '--port needs a value'],
    [['demo', 'data'], "demo takes no arguments, got 'data'"],
    [['demo', '--', 'data'], "demo takes no arguments, got 'data'"],
    [['demo', '--help=yes'], "--help takes no value, got '--help=yes'"],
    [['demo', '--port', '0', '--prot', '1', 'x'], "unknown flag '--prot' for demo (did you mean '--port'?)"],
  ])('should exit 2 with one line for %j', (args, line) => {
    expect(run(args)).toEqual(usageError(line));
  });
});

describe('The command line: booleans are exactly true or false', () => {
  it.each(['yes', 'no', 'TRUE', 'False', '1', '0', 'on', ''])("should exit 2 naming the flag for --show-multiple-locations '%s'", (value) => {
    expect(run(['demo', '--show-multiple-locations', value])).toEqual(usageError(`--show-multiple-locations must be true or false, got '${value}'`));
  });

  it('should exit 2 naming the flag for proxy --legacy-upstream=yes', () => {
    expect(run(['proxy', '--upstream', UPSTREAM, '--legacy-upstream=yes'])).toEqual(usageError("--legacy-upstream must be true or false, got 'yes'"));
  });

  it.each<[string, string]>([
    ['GLANCE_EDGE_SHOW_MULTIPLE_LOCATIONS', 'yes'],
    ['GLANCE_EDGE_LEGACY_UPSTREAM', 'on'],
    ['GLANCE_EDGE_LEGACY_UPSTREAM', 'True'],
  ])('should exit 2 naming the variable for %s=%s', (variable, value) => {
    expect(run(['proxy', '--upstream', UPSTREAM], { [variable]: value })).toEqual(usageError(`${variable} must be true or false, got '${value}'`));
  });

  it.each<[string, string]>([
    ['{"showMultipleLocations": "true"}', 'showMultipleLocations in %s must be true or false, got the string "true"'],
    ['{"legacyUpstream": 1}', 'legacyUpstream in %s must be true or false, got 1'],
    ['{"legacyUpstream": null}', 'legacyUpstream in %s must be true or false, got null'],
  ])('should exit 2 naming the key and the file for %s', (json, line) => {
    const conf = file('booleans.json', json);
    expect(run(['proxy', '--upstream', UPSTREAM, '--config', conf])).toEqual(usageError(line.replace('%s', conf)));
  });
});

describe('The command line: numbers are integers in range', () => {
  it.each<[string[], string]>([
    [['demo', '--port', '65536'], "--port must be an integer from 0 to 65535, got '65536'"],
    [['demo', '--port=-1'], "--port must be an integer from 0 to 65535, got '-1'"],
    [['demo', '--port', '1.5'], "--port must be an integer from 0 to 65535, got '1.5'"],
    [['demo', '--port', ''], "--port must be an integer from 0 to 65535, got ''"],
    [['demo', '--port', '1e3'], "--port must be an integer from 0 to 65535, got '1e3'"],
    [['demo', '--port', '0x50'], "--port must be an integer from 0 to 65535, got '0x50'"],
    [['demo', '--port', ' 80'], "--port must be an integer from 0 to 65535, got ' 80'"],
    [['demo', '--max-ranges', '0'], "--max-ranges must be an integer from 1 to 1000, got '0'"],
    [['demo', '--max-ranges', '1001'], "--max-ranges must be an integer from 1 to 1000, got '1001'"],
    [['demo', '--header-timeout', '0'], "--header-timeout must be an integer from 1 to 86400000, got '0'"],
    [['demo', '--idle-timeout', '86400001'], "--idle-timeout must be an integer from 1 to 86400000, got '86400001'"],
    [['demo', '--idle-timeout', '10s'], "--idle-timeout must be an integer from 1 to 86400000, got '10s'"],
    [['demo', '--max-image-size', '0'], "--max-image-size must be an integer from 1 to 9007199254740991, got '0'"],
    [['demo', '--max-image-size', '9007199254740992'], "--max-image-size must be an integer from 1 to 9007199254740991, got '9007199254740992'"],
    [['demo', '--max-connections', '0'], "--max-connections must be an integer from 1 to 1048576, got '0'"],
    [['demo', '--max-connections', 'many'], "--max-connections must be an integer from 1 to 1048576, got 'many'"],
    [['proxy', '--upstream', UPSTREAM, '--timeout', '0'], "--timeout must be an integer from 1 to 86400000, got '0'"],
    [['proxy', '--upstream', UPSTREAM, '--port', '99999'], "--port must be an integer from 0 to 65535, got '99999'"],
  ])('should exit 2 naming the flag and the range for %j', (args, line) => {
    expect(run(args)).toEqual(usageError(line));
  });

  it.each<[string, string, string]>([
    ['GLANCE_EDGE_PORT', 'abc', 'from 0 to 65535'],
    ['GLANCE_EDGE_PORT', '', 'from 0 to 65535'],
    ['GLANCE_EDGE_TIMEOUT', '0', 'from 1 to 86400000'],
    ['GLANCE_EDGE_MAX_RANGES', '5000', 'from 1 to 1000'],
    ['GLANCE_EDGE_HEADER_TIMEOUT', '-5', 'from 1 to 86400000'],
    ['GLANCE_EDGE_IDLE_TIMEOUT', '1.5', 'from 1 to 86400000'],
  ])('should exit 2 naming the variable for %s=%j', (variable, value, range) => {
    expect(run(['proxy', '--upstream', UPSTREAM], { [variable]: value })).toEqual(usageError(`${variable} must be an integer ${range}, got '${value}'`));
  });

  it.each<[string, string]>([
    ['{"port": "9393"}', 'port in %s must be an integer from 0 to 65535, got the string "9393"'],
    ['{"port": 70000}', 'port in %s must be an integer from 0 to 65535, got 70000'],
    ['{"maxRanges": 2.5}', 'maxRanges in %s must be an integer from 1 to 1000, got 2.5'],
    ['{"timeout": [1000]}', 'timeout in %s must be an integer from 1 to 86400000, got an array'],
  ])('should exit 2 naming the key and the file for %s', (json, line) => {
    const conf = file('numbers.json', json);
    expect(run(['proxy', '--upstream', UPSTREAM, '--config', conf])).toEqual(usageError(line.replace('%s', conf)));
  });

  it('should name the variable, not the file, when the variable wins', () => {
    const conf = file('port.json', '{"port": 0}');
    expect(run(['proxy', '--upstream', UPSTREAM, '--config', conf], { GLANCE_EDGE_PORT: 'x' })).toEqual(usageError("GLANCE_EDGE_PORT must be an integer from 0 to 65535, got 'x'"));
  });

  it.each<[string[], NodeJS.ProcessEnv, string]>([
    [['--idle-timeout', '30000'], {}, '--idle-timeout (30000) must be longer than the default --timeout (60000): a client waits idle while the upstream answers'],
    [['--timeout', '5000', '--idle-timeout', '5000'], {}, '--idle-timeout (5000) must be longer than --timeout (5000): a client waits idle while the upstream answers'],
    [[], { GLANCE_EDGE_TIMEOUT: '90000', GLANCE_EDGE_IDLE_TIMEOUT: '60000' }, 'GLANCE_EDGE_IDLE_TIMEOUT (60000) must be longer than GLANCE_EDGE_TIMEOUT (90000): a client waits idle while the upstream answers'],
  ])('should exit 2 naming both when the idle timeout is not longer than the upstream timeout (%j %j)', (args, env, line) => {
    expect(run(['proxy', '--upstream', UPSTREAM, ...args], env)).toEqual(usageError(line));
  });
});

describe('The command line: strings, lists and the config file', () => {
  it.each<[string[], NodeJS.ProcessEnv, string]>([
    [['proxy'], {}, 'proxy needs --upstream URL (or GLANCE_EDGE_UPSTREAM, or upstream in a --config file)'],
    [['proxy', '--upstream', 'ftp://127.0.0.1'], {}, "--upstream must be an http:// or https:// URL, got 'ftp://127.0.0.1'"],
    [['proxy', '--upstream', '127.0.0.1:9292'], {}, "--upstream must be an http:// or https:// URL, got '127.0.0.1:9292'"],
    [['proxy'], { GLANCE_EDGE_UPSTREAM: 'glance:9292' }, "GLANCE_EDGE_UPSTREAM must be an http:// or https:// URL, got 'glance:9292'"],
    [['proxy', '--upstream', UPSTREAM], { GLANCE_EDGE_HOST: '' }, "GLANCE_EDGE_HOST must be a non-empty string, got ''"],
    [['demo', '--host', ''], {}, "--host must be a non-empty string, got ''"],
    [['demo', '--data='], {}, "--data must be a non-empty string, got ''"],
    [['demo', '--allowed-location-hosts', '10.0.0.0/99'], {}, "--allowed-location-hosts: '10.0.0.0/99' has no valid prefix length"],
    [['demo', '--allowed-location-hosts', 'bad host!'], {}, "--allowed-location-hosts: 'bad host!' is not a CIDR, an address or a host name"],
  ])('should exit 2 with one line for %j %j', (args, env, line) => {
    expect(run(args, env)).toEqual(usageError(line));
  });

  it.each<[string, string]>([
    ['{"upstream": "glance:9292"}', 'upstream in %s must be an http:// or https:// URL, got the string "glance:9292"'],
    ['{"upstream": 9292}', 'upstream in %s must be an http:// or https:// URL, got 9292'],
    ['{"upstream": "http://127.0.0.1:1", "host": 127}', 'host in %s must be a non-empty string, got 127'],
    ['{"upstream": "http://127.0.0.1:1", "diskFormats": "raw"}', 'diskFormats in %s must be an array of format names or an object of "add" and "remove" arrays, got the string "raw"'],
    ['{"upstream": "http://127.0.0.1:1", "containerFormats": {"add": ["x"], "drop": ["bare"]}}', 'containerFormats in %s must be an array of format names or an object of "add" and "remove" arrays, got an object'],
    ['{"upstream": "http://127.0.0.1:1", "show-multiple-locations": true}', "unknown key 'show-multiple-locations' in %s (did you mean 'showMultipleLocations'?)"],
    ['{"upstream": "http://127.0.0.1:1", "verbose": true}', "unknown key 'verbose' in %s"],
    ['["upstream"]', '--config %s must hold a JSON object, got an array'],
    ['{"port": }', '--config %s is not JSON: '],
  ])('should exit 2 naming the file for %s', (json, line) => {
    const conf = file('config.json', json);
    const result = run(['proxy', '--config', conf]);
    const expected = usageError(line.replace('%s', conf));
    if (line.endsWith('is not JSON: ')) {
      // The parser's own words differ between Node versions: one line that starts so.
      expect(result.status).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr.startsWith(expected.stderr.slice(0, -1))).toBe(true);
      expect(result.stderr.indexOf('\n')).toBe(result.stderr.length - 1);
    } else {
      expect(result).toEqual(expected);
    }
  });

  it('should exit 2 naming --config and the file when there is no such file', () => {
    const missing = path.join(work, 'missing.json');
    expect(run(['proxy', '--upstream', UPSTREAM, '--config', missing])).toEqual(usageError(`--config ${missing}: no such file`));
  });
});

describe('The command line: a valid command line that cannot start', () => {
  it('should exit 1 with one line naming --data when the data folder is a file', () => {
    const data = file('not-a-folder', '');
    expect(run(['demo', '--port', '0', '--data', data])).toEqual({ status: 1, stdout: '', stderr: `glance-edge: --data ${data}: ENOTDIR: not a directory, mkdir '${data}/images'\n` });
  });

  it('should exit 1 with one line when the port is taken', async () => {
    const taken = http.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const result = await new Promise<Run>((resolve, reject) => {
        // Asynchronous: the port's server must go on answering while the command runs.
        const child = spawn(process.execPath, [CLI, 'proxy', '--upstream', UPSTREAM, '--port', String(port)], { env: cleanEnv({}), cwd: work });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
        child.once('error', reject);
        child.once('close', (status) => {
          clearTimeout(timer);
          resolve({ status, stdout, stderr });
        });
      });
      expect(result).toEqual({ status: 1, stdout: '', stderr: `glance-edge: listen EADDRINUSE: address already in use 127.0.0.1:${port}\n` });
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

/** Start the command, wait for its "listening on" line, and stop it by its pid. */
async function startsAndListens(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ readonly line: Record<string, unknown>; readonly stderr: string }> {
  const child: ChildProcess = spawn(process.execPath, [CLI, ...args], { env: cleanEnv(env), cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  try {
    const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`glance-edge ${args.join(' ')} did not start:\n${stdout}${stderr}`)), 15000);
      child.stdout?.on('data', (d: Buffer) => {
        stdout += d.toString();
        const found = stdout.split('\n').find((l) => l.includes('listening on'));
        if (found !== undefined) {
          clearTimeout(timer);
          resolve(JSON.parse(found) as Record<string, unknown>);
        }
      });
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`glance-edge ${args.join(' ')} exited with ${code}:\n${stdout}${stderr}`));
      });
    });
    return { line, stderr };
  } finally {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
  }
}

describe('The command line: valid command lines still start', () => {
  it('should start demo --port 0 and say where it listens', async () => {
    const data = path.join(work, 'demo-data');
    const { line, stderr } = await startsAndListens(['demo', '--port', '0', '--data', data]);
    expect(stderr).toBe('');
    expect(line.msg).toMatch(/^glance-edge demo listening on http:\/\/127\.0\.0\.1:\d+$/);
    expect(line.data).toBe(data);
  });

  it('should start demo with every flag given in the --flag=value form', async () => {
    const data = path.join(work, 'demo-every-flag');
    const { line } = await startsAndListens([
      'demo',
      `--data=${data}`,
      '--port=0',
      '--host=127.0.0.1',
      '--show-multiple-locations=false',
      '--max-ranges=8',
      '--header-timeout=5000',
      '--idle-timeout=86400000',
      '--allowed-location-hosts=',
      '--max-image-size=1048576',
      '--max-connections=1048576',
    ]);
    expect(line.msg).toMatch(/^glance-edge demo listening on http:\/\/127\.0\.0\.1:\d+$/);
  });

  it(`should start proxy --upstream ${UPSTREAM} --port 0 and say where it listens`, async () => {
    const { line, stderr } = await startsAndListens(['proxy', '--upstream', UPSTREAM, '--port', '0']);
    expect(stderr).toBe('');
    expect(line.msg).toMatch(/^glance-edge proxy listening on http:\/\/127\.0\.0\.1:\d+$/);
    expect(line.upstream).toBe(UPSTREAM);
  });

  it('should start proxy from the environment and a config file, a flag winning over a bad variable', async () => {
    const conf = file('valid.json', JSON.stringify({ upstream: 'http://127.0.0.1:2', port: 65535, showMultipleLocations: false, maxRanges: 4, legacyUpstream: true, timeout: 1000, headerTimeout: 1000, idleTimeout: 2000, diskFormats: { add: ['ploop'], remove: ['vhd'] }, containerFormats: ['bare'] }));
    const { line } = await startsAndListens(['proxy', '--config', conf, '--port', '0'], { GLANCE_EDGE_UPSTREAM: UPSTREAM, GLANCE_EDGE_PORT: 'not a port', GLANCE_EDGE_LEGACY_UPSTREAM: 'false' });
    expect(line.msg).toMatch(/^glance-edge proxy listening on http:\/\/127\.0\.0\.1:\d+$/);
    expect(line.upstream).toBe(UPSTREAM);
  });
});
