// CPU per event of the ingest edge alone, for comparing versions of it on a busy machine:
// throughput there says little, the edge process's CPU seconds per accepted event much more.
// Each given checkout's edge (its bench/src/server.ts, kind 'edge', DRAWDOWN_INGEST_THREADS=1
// unless set) runs in its own process against this machine's NATS and Postgres, driven by this
// checkout's load generator (100-event requests, 32 connections, closed loop), the checkouts
// alternated A, B, A, B, ... per round and format. Reported per run: edge CPU µs per accepted
// event (from /proc/PID/stat over the measured seconds), events/s, events per JetStream message;
// then the median per checkout and format. With --together the checkouts' edges run at the same
// time, each with its own load generator (same contention for each, on a busy machine).
//
//   nice -n 19 node --import tsx bench/src/ingest-cpu.ts [--rounds=3] [--seconds=6] [--formats=json,msgpack] [--together] ROOT_A[::NODE_FLAGS] [ROOT_B ...]
import { fork } from 'node:child_process';
import { resolve } from 'node:path';
import { SETTINGS } from '@drawdown/config';
import { startLoadGen, type LoadGen } from './procs';
import { benchEnv } from './setup';
import { procSample, round } from './util';
import type { Format } from './workload';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt;
// ROOT or ROOT::NODE_FLAGS (space-separated, for the edge process only: e.g. '/tmp/a::--max-semi-space-size=64').
const roots = args.filter((a) => !a.startsWith('--')).map((r) => (r.includes('::') ? `${resolve(r.slice(0, r.indexOf('::')))}${r.slice(r.indexOf('::'))}` : resolve(r)));
const rounds = Number(opt('rounds', '3'));
const seconds = Number(opt('seconds', '6'));
const formats = opt('formats', 'json,msgpack').split(',') as Format[];
if (roots.length === 0) {
  process.stderr.write('usage: node --import tsx bench/src/ingest-cpu.ts [--rounds=3] [--seconds=6] [--formats=json,msgpack] [--together] ROOT_A [ROOT_B ...]\n');
  process.exit(2);
}

interface Edge {
  pid: number;
  port: number;
  key: string;
  stop(): Promise<void>;
}

/** The edge of the checkout at `root`, through its own bench/src/server.ts. */
function startEdge(rootAndFlags: string, config: unknown): Promise<Edge> {
  const [root, flags = ''] = rootAndFlags.split('::');
  const proc = fork(`${root}/bench/src/server.ts`, [JSON.stringify({ kind: 'edge', config })], {
    cwd: root,
    execArgv: ['--import', 'tsx', ...`${process.env.BENCH_CHILD_NODE_ARGS ?? ''} ${flags}`.split(' ').filter(Boolean)],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((ok, fail) => {
    proc.once('exit', (code) => fail(new Error(`edge of ${root} exited with ${code}`)));
    proc.on('message', (m: { type: string; port: number; adminKey: string; pid: number }) => {
      if (m.type !== 'ready') return;
      ok({
        pid: m.pid, port: m.port, key: m.adminKey,
        stop: async () => {
          const exited = new Promise((r) => proc.once('exit', r));
          proc.send({ type: 'stop', id: 1 });
          const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
          await exited;
          clearTimeout(t);
        },
      });
    });
  });
}

async function messageEvents(port: number): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const v = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 'NaN');
  return { sum: v('drawdown_ingest_message_events_sum'), count: v('drawdown_ingest_message_events_count') };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** One measured run of each edge, for the checkouts given: in turn (alternated), or all at once (--together). */
interface Measured {
  us: number;
  line: string;
}

async function measure(edge: Edge, gen: LoadGen, format: Format, root: string): Promise<Measured> {
  const spec = {
    host: '127.0.0.1', port: edge.port, path: '/v1/ingest', authorization: `Bearer ${edge.key}`,
    templates: { count: 200, eventsPerRequest: 100, customers: 10_000, shape: 'uniform' as const, format, seed: 3 },
    connections: 32, mode: 'closed' as const,
  };
  // Warm-up (JIT, pools), then the measured run.
  await gen.run({ ...spec, durationMs: 2000, warmupMs: 500 });
  const m0 = await messageEvents(edge.port);
  const c0 = procSample(edge.pid)!.cpuS;
  const r = await gen.run({ ...spec, durationMs: seconds * 1000, warmupMs: 0 });
  const c1 = procSample(edge.pid)!.cpuS;
  const m1 = await messageEvents(edge.port);
  const us = ((c1 - c0) * 1e6) / r.okEvents;
  const bad = r.requests - r.okRequests;
  return {
    us,
    line: `${format} ${root}: ${round(us, 2)} µs/event, ${r.okEvents} events in ${round(r.durationS, 1)} s (${Math.round(r.eventsPerS)}/s), edge ${round((c1 - c0) / r.durationS, 2)} cores, ${round((m1.sum - m0.sum) / Math.max(1, m1.count - m0.count), 0)} events/message${bad ? `, ${bad} not ok ${JSON.stringify(r.byStatus)} ${r.errorSample.slice(0, 200)}` : ''}`,
  };
}

const together = args.includes('--together');
const gens: LoadGen[] = [];
for (let i = 0; i < (together ? roots.length : 1); i++) gens.push(await startLoadGen());
const results = new Map<string, number[]>();
const record = (root: string, format: Format, m: Measured, round_: number) => {
  const key = `${root} ${format}`;
  results.set(key, [...(results.get(key) ?? []), m.us]);
  process.stdout.write(`round ${round_ + 1} ${m.line}\n`);
};
try {
  for (let round_ = 0; round_ < rounds; round_++) {
    for (const format of formats) {
      const order = roots; // A, B, A, B, ...
      const envs = order.map(() => benchEnv({ DRAWDOWN_INGEST_THREADS: process.env.DRAWDOWN_INGEST_THREADS ?? '1', DRAWDOWN_PARTITIONS: process.env.DRAWDOWN_PARTITIONS ?? SETTINGS.partitions.default }));
      if (together) {
        const edges = await Promise.all(order.map((root, i) => startEdge(root, envs[i]!.config)));
        try {
          const ms = await Promise.all(edges.map((e, i) => measure(e, gens[i]!, format, order[i]!)));
          ms.forEach((m, i) => record(order[i]!, format, m, round_));
        } finally {
          for (const e of edges) await e.stop();
          for (const env of envs) await env.cleanup();
        }
        continue;
      }
      for (let i = 0; i < order.length; i++) {
        const edge = await startEdge(order[i]!, envs[i]!.config);
        try {
          record(order[i]!, format, await measure(edge, gens[0]!, format, order[i]!), round_);
        } finally {
          await edge.stop();
          await envs[i]!.cleanup();
        }
      }
    }
  }
} catch (err) {
  process.stderr.write(`ingest-cpu: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  for (const g of gens) await g.stop().catch(() => {});
}
for (const [key, xs] of results) process.stdout.write(`median ${key}: ${round(median(xs), 2)} µs/event (${xs.map((x) => round(x, 2)).join(', ')})\n`);
