// The ingest edge alone: startHttpServer + createIngest (with API-key auth) in its own process
// against JetStream, driven by the load generator (another process) with 100-event requests in
// JSON and msgpack over many keep-alive connections. Peak: closed loop; latency: open loop at
// half the peak.
import { SETTINGS } from '@drawdown/config';
import { startLoadGen, startServer } from '../procs';
import { benchEnv } from '../setup';
import type { ScenarioResult } from './common';
import { MB, procSample, round, sleep } from '../util';
import type { Format } from '../workload';
import type { LoadResult } from '../loadgen';

export interface IngestOpts {
  seconds: number;
  connections: number;
  customers: number;
  /** Also an open-loop run at half the peak for request latency (quick mode leaves it out). */
  halfLoad: boolean;
}

/** The edge's events-per-JetStream-message histogram (sum, count), from its /metrics. */
async function messageEvents(port: number): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const v = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 'NaN');
  return { sum: v('drawdown_ingest_message_events_sum'), count: v('drawdown_ingest_message_events_count') };
}

export async function run(opts: IngestOpts): Promise<ScenarioResult[]> {
  // DRAWDOWN_INGEST_THREADS from the bench's environment (default: the product's), to compare thread counts.
  const env = benchEnv({ DRAWDOWN_INGEST_THREADS: process.env.DRAWDOWN_INGEST_THREADS ?? SETTINGS.ingestThreads.default });
  // The edge and the load generator start at once (set-up only).
  const [serverStarted, genStarted] = await Promise.allSettled([startServer({ kind: 'edge', config: env.config }), startLoadGen()]);
  if (serverStarted.status === 'rejected' || genStarted.status === 'rejected') {
    if (serverStarted.status === 'fulfilled') await serverStarted.value.stop();
    if (genStarted.status === 'fulfilled') await genStarted.value.stop();
    await env.cleanup();
    throw serverStarted.status === 'rejected' ? serverStarted.reason : (genStarted as PromiseRejectedResult).reason;
  }
  const server = serverStarted.value;
  const gen = genStarted.value;
  const out: ScenarioResult[] = [];
  try {
    for (const format of ['json', 'msgpack'] as Format[]) {
      const base = {
        host: '127.0.0.1', port: server.port, path: '/v1/ingest', authorization: `Bearer ${server.adminKey}`,
        templates: { count: 200, eventsPerRequest: 100, customers: opts.customers, shape: 'uniform' as const, format, seed: 3 },
        connections: opts.connections,
      };
      let rssMax = 0;
      const watch = setInterval(() => (rssMax = Math.max(rssMax, procSample(server.pid)?.rssBytes ?? 0)), 250);
      const measure = async (f: () => Promise<LoadResult>) => {
        const s0 = procSample(server.pid)!;
        const g0 = procSample(gen.pid)!;
        const t0 = performance.now();
        const r = await f();
        const secs = (performance.now() - t0) / 1000;
        const s1 = procSample(server.pid)!;
        const g1 = procSample(gen.pid)!;
        return { r, edgeCpuShare: round((s1.cpuS - s0.cpuS) / secs, 2), loadgenCpuShare: round((g1.cpuS - g0.cpuS) / secs, 2) };
      };
      const m0 = await messageEvents(server.port);
      const peak = await measure(() => gen.run({ ...base, mode: 'closed', durationMs: opts.seconds * 1000, warmupMs: 500 }));
      const m1 = await messageEvents(server.port);
      let half: Awaited<ReturnType<typeof measure>> | undefined;
      if (opts.halfLoad) {
        await sleep(500);
        const halfRps = Math.max(1, Math.round(peak.r.requestsPerS / 2));
        half = await measure(() => gen.run({ ...base, mode: 'open', rateRps: halfRps, durationMs: opts.seconds * 1000, warmupMs: 500 }));
      }
      clearInterval(watch);
      out.push({
        name: `ingest_${format}`,
        title: `Ingest edge alone: 100-event requests, ${format === 'json' ? 'JSON' : 'msgpack'}`,
        figures: {
          edgeThreads: env.config.ingestThreads,
          connections: opts.connections,
          peakEventsPerS: peak.r.eventsPerS,
          peakRequestsPerS: peak.r.requestsPerS,
          peakLatencyMs: peak.r.latencyMs,
          peakStatus: peak.r.byStatus,
          // JetStream messages the edge published during the peak (warm-up included): requests share them.
          peakEventsPerJetStreamMessage: round((m1.sum - m0.sum) / Math.max(1, m1.count - m0.count), 1),
          ...(half && { halfLoadEventsPerS: half.r.eventsPerS, halfLoadLatencyMs: half.r.latencyMs, halfLoadStatus: half.r.byStatus, halfLoadDropped: half.r.dropped }),
          edgeRssMaxMB: round(rssMax / MB),
          edgeCpuShareAtPeak: peak.edgeCpuShare,
          loadgenCpuShareAtPeak: peak.loadgenCpuShare,
          ...(half && { loadgenCpuShareAtHalf: half.loadgenCpuShare }),
          sampleResponse: peak.r.firstBody.slice(0, 120),
        },
      });
    }
    return out;
  } finally {
    await gen.stop();
    await server.stop();
    await env.cleanup();
  }
}
