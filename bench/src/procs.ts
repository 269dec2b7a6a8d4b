// Child processes of the bench: services under test, load generators and scenarios each run
// in their own Node process (own CPU and RSS figures; chDB allows one data directory per
// process). They start from the run's bundles (see bundle.ts) with plain `node` when the main
// process made them (BUNDLE_DIR_ENV), otherwise from the TypeScript sources through tsx.
import { fork, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult, LoadSpec, SecondStats } from './loadgen';
import type { ServerSpec } from './server';

export interface Child<R = Record<string, unknown>> {
  pid: number;
  proc: ChildProcess;
  ready: R;
  call<T>(type: string, extra?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

let nextId = 1;

/** Set by the bench's main process for every child: the directory of the run's bundles (bundle.ts). */
export const BUNDLE_DIR_ENV = 'BENCH_BUNDLE_DIR';

/** A child's entry: its TypeScript source (relative to this file) and its bundle's name. */
export interface ChildEntry {
  ts: string;
  bundle: string;
}

export const scenarioBundleName = (name: string) => `scenario-${name}`;

export function forkChild<R = Record<string, unknown>>(entry: ChildEntry, args: string[], opts: { execArgv?: string[]; readyTimeoutMs?: number } = {}): Promise<Child<R>> {
  const file = entry.ts;
  const bundles = process.env[BUNDLE_DIR_ENV];
  const proc = fork(bundles ? resolve(bundles, `${entry.bundle}.mjs`) : fileURLToPath(new URL(entry.ts, import.meta.url)), args, {
    // BENCH_CHILD_NODE_ARGS adds Node flags to every child (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`
    // to profile the services under the benchmark's load; NODE_OPTIONS refuses --cpu-prof).
    execArgv: [...(bundles ? [] : ['--import', 'tsx']), ...(opts.execArgv ?? []), ...(process.env.BENCH_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean)],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env },
  });
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file}: not ready within ${opts.readyTimeoutMs ?? 120_000} ms`)), opts.readyTimeoutMs ?? 120_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited with ${code} before it was ready`));
      for (const w of waiting.values()) w.reject(new Error(`${file} exited with ${code}`));
    });
    proc.on('message', (m: { type: string; id?: number; result?: unknown; error?: string }) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolve({
          pid: proc.pid!,
          proc,
          ready: m as R,
          call<T>(type: string, extra: Record<string, unknown> = {}) {
            const id = nextId++;
            return new Promise<T>((res, rej) => {
              waiting.set(id, { resolve: res as (v: unknown) => void, reject: rej });
              proc.send({ type, id, ...extra });
            });
          },
          async stop() {
            if (proc.exitCode !== null) return;
            const exited = new Promise((r) => proc.once('exit', r));
            proc.send({ type: 'stop', id: nextId++ });
            const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
            await exited;
            clearTimeout(t);
          },
        });
      } else if (m.id !== undefined && waiting.has(m.id) && (m.type === 'answer' || m.type === 'result' || m.type === 'error')) {
        const w = waiting.get(m.id)!;
        waiting.delete(m.id);
        if (m.error) w.reject(new Error(m.error));
        else w.resolve(m.result);
      }
    });
  });
}

export interface Server extends Child<{ port: number; adminKey: string; pid: number }> {
  port: number;
  adminKey: string;
}

export async function startServer(spec: ServerSpec): Promise<Server> {
  const c = await forkChild<{ port: number; adminKey: string; pid: number }>({ ts: './server.ts', bundle: 'server' }, [JSON.stringify(spec)]);
  return Object.assign(c, { port: c.ready.port, adminKey: c.ready.adminKey });
}

export interface LoadGen {
  pid: number;
  run(spec: LoadSpec, onSecond?: (s: SecondStats) => void): Promise<LoadResult>;
  stop(): Promise<void>;
}

export async function startLoadGen(): Promise<LoadGen> {
  const c = await forkChild({ ts: './loadgen.ts', bundle: 'loadgen' }, ['--child']);
  const listeners = new Map<number, (s: SecondStats) => void>();
  c.proc.on('message', (m: { type: string; id?: number; s?: SecondStats }) => {
    if (m.type === 'second' && m.id !== undefined) listeners.get(m.id)?.(m.s!);
  });
  return {
    pid: c.pid,
    run(spec, onSecond) {
      const id = nextId++;
      if (onSecond) listeners.set(id, onSecond);
      return new Promise<LoadResult>((resolve, reject) => {
        const onMsg = (m: { type: string; id?: number; result?: LoadResult; error?: string }) => {
          if (m.id !== id) return;
          if (m.type === 'result') {
            c.proc.off('message', onMsg);
            listeners.delete(id);
            resolve(m.result!);
          } else if (m.type === 'error') {
            c.proc.off('message', onMsg);
            listeners.delete(id);
            reject(new Error(m.error));
          }
        };
        c.proc.on('message', onMsg);
        c.proc.send({ type: 'run', id, spec });
      });
    },
    async stop() {
      c.proc.send({ type: 'exit' });
      await new Promise((r) => (c.proc.exitCode !== null ? r(null) : c.proc.once('exit', r)));
    },
  };
}

/**
 * A scenario's process (bench/src/scenarios/<name>.ts), started ahead of its run: it loads the
 * scenario's modules and then waits, idle, for runScenario.
 */
export function startScenario(name: string): Promise<Child> {
  return forkChild({ ts: './child.ts', bundle: scenarioBundleName(name) }, [name]);
}

/**
 * The body of a scenario's process (child.ts, or the scenario's bundle): says it is ready once
 * the scenario's module has loaded (or failed to: reported when the run is asked for), runs
 * its `run(opts)` when asked and sends back the result.
 */
export function serveScenario(scenario: Promise<{ run: (o: never) => Promise<unknown> }>): void {
  const loaded = () => process.send!({ type: 'ready' });
  scenario.then(loaded, loaded);
  // Ended by SIGTERM (runScenario): exit through Node, so that a --cpu-prof given through
  // BENCH_CHILD_NODE_ARGS writes the main thread's profile too.
  process.once('SIGTERM', () => process.exit(0));
  process.on('message', (m: { type: string; id: number; opts: never }) => {
    if (m.type !== 'run') return;
    scenario
      .then((mod) => mod.run(m.opts))
      .then(
        (result) => process.send!({ type: 'answer', id: m.id, result }),
        (err: Error) => process.send!({ type: 'answer', id: m.id, error: err.stack ?? String(err) }),
      );
  });
}

/** Runs a started scenario once `ready` resolves, returns its result and ends its process. */
export async function runScenario<T>(started: Promise<Child>, opts: unknown, ready?: Promise<unknown>): Promise<T> {
  const c = await started;
  try {
    await ready;
    return await c.call<T>('run', { opts });
  } finally {
    c.proc.kill('SIGTERM');
    await new Promise((r) => (c.proc.exitCode !== null ? r(null) : c.proc.once('exit', r)));
  }
}
