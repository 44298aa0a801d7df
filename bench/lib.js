// The harness's plumbing: processes (started pinned to a CPU, ready when their own output says so,
// all stopped however the run ends), free ports, VmHWM and CPU time of process trees, bounded HTTP
// probes, wrk runs.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const HOST = '127.0.0.1';
const ROOT = path.resolve(__dirname, '..');

const log = (msg) => process.stderr.write(`  .. ${msg}\n`);
const warn = (msg) => process.stderr.write(`WARNING: ${msg}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects after `ms` with `what` in the message, unless `promise` settles first. */
function bounded(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]);
}

// --- Processes ----------------------------------------------------------------------------------

const running = new Set(); // every process started and not yet seen to exit

/**
 * A started process. Its stdout and stderr go straight to its log file (not through the harness,
 * which stays out of the way of a server logging every request); its lines are read back from it.
 */
class Proc {
  constructor(name, child, logFile) {
    this.name = name;
    this.child = child;
    this.pid = child.pid;
    this.logFile = logFile;
    this.exited = false;
    this.exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exited = true;
        running.delete(this);
        resolve({ code, signal });
      });
    });
  }

  /** The first `max` bytes of its output, as lines. */
  get lines() {
    return this.head().split('\n').filter(Boolean);
  }

  head(max = 1 << 20) {
    try {
      const fd = fs.openSync(this.logFile, 'r');
      try {
        const buf = Buffer.alloc(max);
        return buf.subarray(0, fs.readSync(fd, buf, 0, max, 0)).toString('utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return '';
    }
  }

  /** The last lines of its output, for error messages. */
  lastLines(n = 15) {
    try {
      const fd = fs.openSync(this.logFile, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        const len = Math.min(size, 16384);
        const buf = Buffer.alloc(len);
        fs.readSync(fd, buf, 0, len, size - len);
        return buf.toString('utf8').trimEnd().split('\n').slice(-n).join('\n');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return '';
    }
  }

  /** Nothing to do any more: output goes to the file. Kept for readability at call sites. */
  quiet() {}

  /** The first line of the process's output matching `re` (its match), within `ms`. */
  async waitFor(re, ms = 20_000) {
    const until = Date.now() + ms;
    for (;;) {
      const m = this.lines.map((l) => l.match(re)).find(Boolean);
      if (m) return m;
      if (this.exited) {
        const { code, signal } = await this.exit;
        throw new Error(`${this.name} exited (${signal ?? code}) before printing ${re}; its output:\n${this.lastLines()}`);
      }
      if (Date.now() > until) throw new Error(`${this.name} (pid ${this.pid}): no line matching ${re} within ${ms} ms; its output:\n${this.lastLines()}`);
      await sleep(50);
    }
  }

  /** SIGTERM to the process group, SIGKILL after `ms`. */
  async stop(ms = 5_000) {
    if (this.exited) return;
    signalGroup(this.pid, 'SIGTERM');
    const gone = await Promise.race([this.exit.then(() => true), sleep(ms).then(() => false)]);
    if (!gone) {
      warn(`${this.name} (pid ${this.pid}) did not stop within ${ms} ms of SIGTERM: killing it`);
      signalGroup(this.pid, 'SIGKILL');
      await Promise.race([this.exit, sleep(2_000)]);
    }
    // What is left of its group (nginx workers outlive their master for a moment).
    signalGroup(this.pid, 'SIGKILL');
  }
}

function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}

/**
 * Starts `cmd args` pinned to `cpu` (taskset), in a process group of its own (so that nginx's
 * workers go with it and a terminal's Ctrl-C reaches only the harness, which stops it).
 */
function start(name, cpu, cmd, args, { logDir, env, cwd } = {}) {
  // A file of its own (the same peer started again, in another suite, gets the next number).
  const base = path.join(logDir, name.replace(/[^\w.-]+/g, '_'));
  let logFile = `${base}.log`;
  for (let i = 2; fs.existsSync(logFile); i++) logFile = `${base}-${i}.log`;
  const fd = fs.openSync(logFile, 'wx');
  let child;
  try {
    child = spawn('taskset', ['-c', String(cpu), cmd, ...args], {
      cwd: cwd ?? ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', fd, fd],
      detached: true,
    });
  } finally {
    fs.closeSync(fd);
  }
  const proc = new Proc(name, child, logFile);
  running.add(proc);
  child.once('error', (err) => fs.appendFileSync(logFile, `spawn error: ${err.message}\n`));
  return proc;
}

/** Stops every process still running, last started first. */
async function stopAll() {
  for (const p of [...running].reverse()) await p.stop();
}

let stopping = false;
function installCleanup(onSignal) {
  // Last resort when the harness itself ends abruptly: no waiting possible, kill the groups.
  process.once('exit', () => {
    for (const p of running) signalGroup(p.pid, 'SIGKILL');
  });
  const bail = (signal, code) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping everything started\n`);
    Promise.resolve(onSignal?.())
      .catch(() => {})
      .then(() => bounded(stopAll(), 15_000, 'stopping'))
      .catch(() => {})
      .finally(() => process.exit(code));
  };
  process.on('SIGINT', () => bail('SIGINT', 130));
  process.on('SIGTERM', () => bail('SIGTERM', 143));
}

/** The direct children of `pid` (nginx's master → its workers). */
function childrenOf(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    const kids = [];
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid) kids.push(Number(d));
      } catch {
        /* gone */
      }
    }
    return kids;
  }
}

/** `pid` and its descendants (a cluster primary and its workers), `pid` first. */
function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const kid of childrenOf(out[i])) if (!out.includes(kid)) out.push(kid);
  return out;
}

let clockTicks = null;
/** Clock ticks per second of /proc/PID/stat's times (USER_HZ, `getconf CLK_TCK`). */
function ticksPerSecond() {
  if (clockTicks === null) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 });
    const n = Number(String(r.stdout ?? '').trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/**
 * CPU time used so far by `pid` and its descendants: the sum of utime + stime (fields 14 and 15 of
 * /proc/PID/stat) over the tree, in ms; with the pids it was read from.
 */
function treeCpu(pid) {
  const pids = processTree(pid);
  let ticks = 0;
  for (const p of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* gone */
    }
  }
  return { ms: (ticks * 1000) / ticksPerSecond(), pids };
}

/** VmHWM (peak resident set) of `pid` in MB (10^6 bytes), or null when it cannot be read. */
function vmHWM(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+)\s+kB/m);
    return m ? Math.round((Number(m[1]) * 1024) / 1e5) / 10 : null;
  } catch {
    return null;
  }
}

/**
 * The sum of the VmHWM of `pid` and its descendants in MB: the peak of a single process, and for a
 * cluster primary with its workers the sum of each one's own peak (peaks that may not coincide).
 */
function treeVmHWM(pid) {
  const all = processTree(pid).map(vmHWM).filter((x) => x !== null);
  return all.length ? Math.round(all.reduce((a, b) => a + b, 0) * 10) / 10 : null;
}

/** A port free right now on 127.0.0.1 (bound on port 0, then released): for nginx. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on `port`, within `ms`. */
async function waitPort(port, ms = 20_000, proc) {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, HOST);
      s.setTimeout(1_000, () => {
        s.destroy();
        resolve(false);
      });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (proc?.exited) throw new Error(`${proc.name} exited before listening on ${port}; its output:\n${proc.lastLines()}`);
    if (Date.now() > until) throw new Error(`nothing listens on ${HOST}:${port} after ${ms} ms`);
    await sleep(100);
  }
}

// --- HTTP probes --------------------------------------------------------------------------------

/**
 * One request on a fresh connection, bounded by `ms`. The answer's body is kept whole when it is
 * at most `keep` bytes; its bytes are counted and hashed (sha256) in any case.
 */
function request(url, { method = 'GET', headers = {}, body, ms = 30_000, keep = 1 << 20 } = {}) {
  return bounded(
    new Promise((resolve, reject) => {
      const req = http.request(url, { method, headers, agent: false }, (res) => {
        const hash = crypto.createHash('sha256');
        const chunks = [];
        let bytes = 0;
        res.on('data', (c) => {
          hash.update(c);
          bytes += c.length;
          if (bytes <= keep) chunks.push(c);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, bytes, sha256: hash.digest('hex'), body: bytes <= keep ? Buffer.concat(chunks) : null }),
        );
        res.on('error', reject);
      });
      req.on('error', reject);
      if (body && typeof body.pipe === 'function') body.pipe(req);
      else req.end(body);
    }),
    ms,
    `${method} ${url}`,
  );
}

// --- Files --------------------------------------------------------------------------------------

/** `bytes` random bytes into `file`; their sha256 and md5 (hex). */
function randomFile(file, bytes) {
  const hash = crypto.createHash('sha256');
  const md5 = crypto.createHash('md5');
  const fd = fs.openSync(file, 'w', 0o644);
  const chunk = Buffer.allocUnsafe(1 << 20);
  for (let left = bytes; left > 0; ) {
    const n = Math.min(left, chunk.length);
    crypto.randomFillSync(chunk, 0, n);
    fs.writeSync(fd, chunk, 0, n);
    hash.update(chunk.subarray(0, n));
    md5.update(chunk.subarray(0, n));
    left -= n;
  }
  fs.closeSync(fd);
  return { sha256: hash.digest('hex'), md5: md5.digest('hex') };
}

/** Fills `{{NAME}}` in a template file with `values[NAME]`; fails on a name left unknown. */
function fillTemplate(file, values) {
  return fs.readFileSync(file, 'utf8').replace(/\{\{(\w+)\}\}/g, (_, k) => {
    if (!(k in values)) throw new Error(`${file}: no value for {{${k}}}`);
    return String(values[k]);
  });
}

// --- wrk ----------------------------------------------------------------------------------------

const WRK_LUA = path.join(__dirname, 'wrk.lua');

/**
 * One wrk run on `cpu`: `conns` connections, one thread, `seconds` long, the bench's wrk.lua with
 * `luaArgs`. Resolves to the figures of the RESULT line wrk.lua prints.
 */
function wrk({ cpu, url, conns, seconds, luaArgs = [], logDir }) {
  const args = ['-c', String(cpu), 'wrk', '-t1', `-c${conns}`, `-d${seconds}s`, '--timeout', '30s', '-s', WRK_LUA, url, '--', ...luaArgs];
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const proc = { name: 'wrk', pid: child.pid, exited: false };
    const fake = { ...proc, stop: async () => signalGroup(child.pid, 'SIGKILL') };
    running.add(fake);
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const timer = setTimeout(() => {
      signalGroup(child.pid, 'SIGKILL');
      reject(new Error(`wrk ${url}: still running ${seconds + 60} s after start`));
    }, (seconds + 60) * 1000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      running.delete(fake);
      if (logDir) fs.appendFileSync(path.join(logDir, 'wrk.log'), `$ taskset ${args.join(' ')}\n${out}\n`);
      const m = out.match(/^RESULT (.*)$/m);
      if (code !== 0 || !m) return reject(new Error(`wrk ${url} exited ${code}:\n${out.slice(-2000)}`));
      const r = {};
      for (const kv of m[1].trim().split(/\s+/)) {
        const [k, v] = kv.split('=');
        r[k] = Number(v);
      }
      resolve(r);
    });
  });
}

// --- Machine ------------------------------------------------------------------------------------

function tryRun(cmd, args) {
  // stdout and stderr together: nginx -v answers on stderr.
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  if (r.error) return null;
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() || null;
}

function distBuilt() {
  try {
    return fs.statSync(path.join(ROOT, 'dist/server/cli.js')).mtime.toISOString();
  } catch {
    return null;
  }
}

function machine(nginxBin) {
  const cpus = os.cpus();
  const undiciVersion = (() => {
    try {
      return require('undici/package.json').version;
    } catch {
      return null;
    }
  })();
  return {
    cpu: cpus[0]?.model ?? null,
    cores: os.availableParallelism ? os.availableParallelism() : cpus.length,
    memory_mb: Math.round(os.totalmem() / 1e6),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    nginx: nginxBin ? (tryRun(nginxBin, ['-v']) || '').replace(/^nginx version:\s*/, '') : null,
    wrk: (tryRun('wrk', ['-v']) || '').split('\n')[0].replace(/\s*Copyright.*$/, '') || null,
    undici: undiciVersion,
    express: require('express/package.json').version,
    http_proxy_middleware: require('http-proxy-middleware/package.json').version,
    commit: tryRun('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
    // What is measured is dist/ as last built, which may differ from the commit.
    dist_built: distBuilt(),
    loadavg_at_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

machine.distBuilt = distBuilt;

module.exports = {
  HOST,
  ROOT,
  log,
  warn,
  sleep,
  bounded,
  start,
  stopAll,
  installCleanup,
  childrenOf,
  processTree,
  treeCpu,
  vmHWM,
  treeVmHWM,
  freePort,
  waitPort,
  request,
  randomFile,
  fillTemplate,
  wrk,
  machine,
};
