/**
 * The processes of a command run with --workers, and connections to it each known to be served by
 * a given worker, as /proc shows them: the worker among whose open sockets is the server's end of
 * it. Connections are opened, sorted by worker, and only then used, so that a test knows which
 * worker answered what.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { parseAnswer, type RawAnswer } from '../fixtures/glance-upstream';

export function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state = '', ppid = ''] = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state, ppid: Number(ppid) };
  } catch {
    return null;
  }
}

/** Whether `pid` runs (exists and is not a zombie). */
export function running(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== null && stat.state !== 'Z';
}

/** The running children of `ppid`: a primary's workers. */
export function childrenOf(ppid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => procStat(pid)?.ppid === ppid && running(pid))
    .sort((a, b) => a - b);
}

/** For each client port of a connection to 127.0.0.1:`port`, which of `pids` holds its server end. */
export function servedBy(port: number, pids: readonly number[]): Map<number, number> {
  const clientOf = new Map<string, number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = Number.parseInt((f[1] ?? '').split(':').pop() ?? '', 16);
      const remote = Number.parseInt((f[2] ?? '').split(':').pop() ?? '', 16);
      const inode = f[9] ?? '0';
      if (local === port && remote !== 0 && inode !== '0') clientOf.set(inode, remote);
    }
  }
  const owners = new Map<number, number>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      const client = inode === undefined ? undefined : clientOf.get(inode);
      if (client !== undefined) owners.set(client, pid);
    }
  }
  return owners;
}

/** An open connection to the sidecar, the worker serving it, and its answer once the server closes it. */
export interface Conn {
  readonly socket: net.Socket;
  readonly worker: number;
  readonly answer: Promise<RawAnswer>;
}

export function open(port: number): Promise<{ socket: net.Socket; answer: Promise<RawAnswer> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    const answer = new Promise<RawAnswer>((done, fail) => {
      socket.on('close', () => {
        const raw = Buffer.concat(chunks);
        const parsed = parseAnswer(raw);
        if (parsed) done({ ...parsed, raw, ms: 0 });
        else fail(new Error(`no complete answer: ${JSON.stringify(raw.toString('latin1'))}`));
      });
    });
    answer.catch(() => undefined);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => undefined);
      resolve({ socket, answer });
    });
  });
}

/**
 * `perWorker` connections to each of `workers`, each known to be served by it: connections are
 * opened in batches until every worker has enough; the ones left over are closed unused.
 */
export async function connectionsTo(port: number, workers: readonly number[], perWorker: number): Promise<Map<number, Conn[]>> {
  const pending: { socket: net.Socket; answer: Promise<RawAnswer> }[] = [];
  const byWorker = new Map<number, Conn[]>(workers.map((w) => [w, []]));
  const until = Date.now() + 15_000;
  const enough = () => [...byWorker.values()].every((list) => list.length >= perWorker);
  while (!enough()) {
    if (Date.now() > until) {
      const counts = [...byWorker.entries()].map(([w, l]) => `${w}: ${l.length}`).join(', ');
      throw new Error(`within 15 s, not every worker served ${perWorker} of the connections opened (${counts}; ${pending.length} not seen in any worker)`);
    }
    if (pending.length < perWorker) pending.push(...(await Promise.all(Array.from({ length: Math.max(4, perWorker) }, () => open(port)))));
    await sleep(20);
    const owners = servedBy(port, workers);
    for (let i = pending.length - 1; i >= 0; i--) {
      const c = pending[i] as { socket: net.Socket; answer: Promise<RawAnswer> };
      const worker = owners.get(c.socket.localPort ?? -1);
      if (worker === undefined) continue;
      pending.splice(i, 1);
      const list = byWorker.get(worker) as Conn[];
      if (list.length < perWorker) list.push({ ...c, worker });
      else c.socket.destroy();
    }
  }
  for (const c of pending) c.socket.destroy();
  return byWorker;
}

/** Alternately one connection of each worker. */
export function interleave(byWorker: Map<number, Conn[]>): Conn[] {
  const lists = [...byWorker.values()];
  const longest = Math.max(...lists.map((l) => l.length));
  return Array.from({ length: longest }, (_, i) => lists.map((l) => l[i]).filter((c): c is Conn => c !== undefined)).flat();
}

/** Send `request` (with `Connection: close`) on `conn` and read its answer. */
export function ask(conn: Conn, request: Buffer): Promise<RawAnswer> {
  conn.socket.write(request);
  return conn.answer;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Whether a connection to 127.0.0.1:`port` is refused. */
export function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

