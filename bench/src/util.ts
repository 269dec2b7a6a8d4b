// Small helpers shared by the benchmark scenarios: percentiles, process CPU and RSS from
// /proc, machine facts. Nothing here talks to a service.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Percentile (0..100) of an unsorted sample; NaN when empty. Sorts a copy. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export const round = (x: number, digits = 0) => {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

const CLK_TCK = 100; // Linux USER_HZ; /proc times are in these ticks.
const PAGE = 4096;

export interface ProcSample {
  /** CPU seconds (user + system) since the process started. */
  cpuS: number;
  rssBytes: number;
}

/** The fields of a /proc/.../stat line after the command name (which may contain spaces and
 *  parentheses: it ends at the last ')'); field i here is field i + 3 of proc(5). */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU time and RSS of one process, from /proc; undefined when it is gone. */
export function procSample(pid: number): ProcSample | undefined {
  try {
    const f = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const utime = Number(f[11]);
    const stime = Number(f[12]);
    const rssPages = Number(f[21]);
    return { cpuS: (utime + stime) / CLK_TCK, rssBytes: rssPages * PAGE };
  } catch {
    return undefined;
  }
}

/** CPU seconds of this process and of the children it (and theirs, recursively) waited for, from /proc. */
export function treeCpuS(): number {
  const f = statFields(readFileSync('/proc/self/stat', 'utf8'));
  // utime, stime, cutime, cstime
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}

/** Pids of every process whose command name is `comm` (e.g. postgres, nats-server). */
export function pidsByComm(comm: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) out.push(Number(d));
    } catch {
      // raced with exit
    }
  }
  return out;
}

/** Sum of CPU seconds and RSS over a set of processes. */
export function groupSample(pids: number[]): ProcSample {
  let cpuS = 0;
  let rssBytes = 0;
  for (const p of pids) {
    const s = procSample(p);
    if (s) {
      cpuS += s.cpuS;
      rssBytes += s.rssBytes;
    }
  }
  return { cpuS, rssBytes };
}

/** Total busy and idle jiffies of the machine, for the whole-machine load during a scenario. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const idle = (line[3] ?? 0) + (line[4] ?? 0);
  const total = line.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function tryRun(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 }).trim();
  } catch {
    return 'unknown';
  }
}

export interface MachineFacts {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  node: string;
  postgres: string;
  natsServer: string;
  chdb: string;
  loadAverageAtStart: number[];
}

export function machineFacts(postgresVersion: string, chdbVersion: string): MachineFacts {
  const cpu = os.cpus()[0];
  return {
    cpuModel: cpu?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: postgresVersion,
    natsServer: tryRun('nats-server', ['--version']),
    chdb: chdbVersion,
    loadAverageAtStart: os.loadavg().map((x) => round(x, 2)),
  };
}

export const MB = 1024 * 1024;

/** The promise's value, or undefined when it takes longer than `ms` (the work goes on unobserved). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise<undefined>((res) => (timer = setTimeout(() => res(undefined), ms)))]);
  clearTimeout(timer);
  return r;
}

/** CPU seconds per process of a group, to measure a group whose members come and go (Postgres backends). */
export function cpuByPid(comm: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pidsByComm(comm)) {
    const s = procSample(pid);
    if (s) out.set(pid, s.cpuS);
  }
  return out;
}

/** A process's CPU seconds per thread group: `main` (its first thread: the JS event loop of a
 *  Node process), `named` (threads that set a name of their own, e.g. the embedded ClickHouse
 *  engine's pools and merges) and `other` (the rest: Node worker threads such as the pricing
 *  workers, V8's GC helpers, libuv's pool). Threads that exited are missed. */
export function threadGroupCpuS(pid: number): Map<number, { group: 'main' | 'named' | 'other'; name: string; cpuS: number }> {
  const out = new Map<number, { group: 'main' | 'named' | 'other'; name: string; cpuS: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  // A new thread starts with the name of the thread that made it: unnamed threads carry the
  // process's name ('node', or the title a process set before starting them).
  let processComm = 'node';
  try {
    processComm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = statFields(stat);
      const tid = Number(t);
      out.set(tid, { group: tid === pid ? 'main' : comm === processComm || comm === 'node' ? 'other' : 'named', name: comm, cpuS: (Number(f[11]) + Number(f[12])) / CLK_TCK });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** CPU seconds per thread group between two threadGroupCpuS readings. */
export function threadGroupsBetween(before: ReturnType<typeof threadGroupCpuS>, after: ReturnType<typeof threadGroupCpuS>): Record<'main' | 'named' | 'other', number> {
  const out = { main: 0, named: 0, other: 0 };
  for (const [tid, a] of after) out[a.group] += Math.max(0, a.cpuS - (before.get(tid)?.cpuS ?? 0));
  return out;
}

/**
 * CPU seconds per thread name between two threadGroupCpuS readings, the names' trailing numbers
 * dropped (a pool's threads are `Pool1`, `Pool2`, ...: one figure for the pool), the first
 * thread as `main`. Names under `minS` seconds are left out.
 */
export function threadNamesBetween(before: ReturnType<typeof threadGroupCpuS>, after: ReturnType<typeof threadGroupCpuS>, minS = 0): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [tid, a] of after) {
    const name = a.group === 'main' ? 'main' : a.name.replace(/[\s_:#-]*\d+$/, '') || a.name;
    out[name] = (out[name] ?? 0) + Math.max(0, a.cpuS - (before.get(tid)?.cpuS ?? 0));
  }
  for (const [k, v] of Object.entries(out)) if (v < minS) delete out[k];
  return out;
}

/** CPU seconds the group used between two cpuByPid readings (processes that exited in between are missed). */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, cpu] of after) total += Math.max(0, cpu - (before.get(pid) ?? 0));
  return total;
}

/**
 * The machine's speed now, as the milliseconds one thread takes for a fixed piece of work
 * (hashing, a JS loop, short-lived objects): the best of `reps` tries, so a try that shared its
 * core with other work does not count. A long run reads it between windows, beside its rates:
 * on a shared machine a slower window may be the machine, not the stored data.
 */
export function calibrationMs(reps = 3): number {
  const buf = Buffer.alloc(1 << 20, 7);
  let best = Infinity;
  let sink = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) sink += createHash('sha256').update(buf).digest()[0]!;
    for (let i = 0; i < 2e7; i++) sink = (sink + i * 7) % 1_000_003;
    const objs: { a: number; b: string }[] = [];
    for (let i = 0; i < 2e5; i++) objs.push({ a: i, b: `k${i}` });
    sink += objs.length;
    best = Math.min(best, performance.now() - t0);
  }
  if (sink < 0) throw new Error('unreachable');
  return round(best, 1);
}
