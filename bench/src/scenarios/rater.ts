// The rater alone: a pre-filled EVENTS stream (published as the edge publishes: 100-event
// requests split per partition), then startRater in this process until every partition's
// position reaches the stream's end: events/s into ClickHouse and DEBITS. Also the memory of
// one dedup fingerprint, measured on a DedupMemory of real keys with the heap before/after.
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { migrateClickHouse, openClickHouse, queryRows } from '@drawdown/clickhouse';
import { encodeBatch, groupByPartition } from '@drawdown/events';
import { jetstream, jetstreamManager, names, lastEventSeq } from '@drawdown/nats';
import { startRater, DedupMemory } from '@drawdown/rater';
import { registry } from '@drawdown/metrics';
import { acceptedEvents } from '../workload';
import { benchEnv, createCatalog, createCustomers, log, openStores } from '../setup';
import type { ScenarioResult } from './common';
import { MB, procSample, round, sleep, threadGroupCpuS, threadGroupsBetween, within } from '../util';

export interface RaterOpts {
  events: number;
  customers: number;
  dedupSample: number;
  /** Stop after this long and report the events processed so far. */
  maxSeconds: number;
}

// The scenario process runs without --expose-gc: get the collector for the memory sample.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function dedupBytesPerKey(count: number): { bytesPerFingerprint: number; keys: number } {
  // The fingerprints live in typed arrays, outside the JS heap: count both (as
  // rater/scripts/dedup-memory.ts does).
  const used = () => {
    gc();
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const before = used();
  const d = new DedupMemory(count);
  const now = Date.now();
  for (let i = 0; i < count; i++) d.add(`x:ext-${i % 10_000}\u0000req${String(i).padStart(12, '0')}-${i % 100}`, now + i);
  const after = used();
  if (d.size !== count) throw new Error('dedup sample lost keys');
  return { bytesPerFingerprint: Math.round((after - before) / count), keys: count };
}

const progress = (msg: string) => process.stderr.write(`  rater ${new Date().toISOString().slice(11, 19)} ${msg}\n`);

export async function run(opts: RaterOpts): Promise<ScenarioResult[]> {
  // One pricing worker unless DRAWDOWN_RATER_WORKERS asks for more (to measure the difference).
  const env = benchEnv({ DRAWDOWN_RATER_WORKERS: process.env.DRAWDOWN_RATER_WORKERS ?? '1' });
  const s = await openStores(env);
  try {
    const { planId } = await createCatalog(s);
    await createCustomers(s.pool, { count: opts.customers, planId });
    const n = names(s.config.namespace);
    const js = jetstream(s.nc);
    const P = s.config.partitions;
    // Pre-fill: 100-event requests, split per partition as the edge does.
    const t0 = performance.now();
    const inflight = new Set<Promise<unknown>>();
    for (let i = 0; i < opts.events; i += 10_000) {
      const chunk = acceptedEvents({ count: Math.min(10_000, opts.events - i), customers: opts.customers, shape: 'uniform', seed: 11 + i, tag: 'rt', timestampMs: Date.now() - 60_000, first: i });
      for (let r = 0; r < chunk.length; r += 100) {
        for (const [p, group] of groupByPartition(chunk.slice(r, r + 100), P)) {
          const pr = js.publish(`${n.eventsSubjectPrefix}.${p}`, encodeBatch(group));
          inflight.add(pr);
          void pr.finally(() => inflight.delete(pr));
          if (inflight.size >= 256) await Promise.race(inflight);
        }
      }
    }
    await Promise.all(inflight);
    const prefillS = (performance.now() - t0) / 1000;
    progress(`pre-filled ${opts.events} events in ${round(prefillS, 1)} s`);
    const jsm = await jetstreamManager(s.nc);
    const lastSeq: number[] = [];
    for (let p = 0; p < P; p++) lastSeq.push(await lastEventSeq(jsm, n, p));

    const ch = await openClickHouse({ url: '', dataDir: join(s.config.dataDir, 'chdb') }, log);
    await migrateClickHouse(ch);
    gc();
    const rssBefore = procSample(process.pid)!.rssBytes;
    const cpuBefore = process.cpuUsage();
    // CPU per thread group (main, chDB's named threads, other: the pricing worker, V8's GC
    // helpers, libuv): every reading is merged into the last, so threads that ended keep theirs.
    const threads0 = threadGroupCpuS(process.pid);
    const threads = new Map(threads0);
    const sampleThreads = () => {
      for (const [tid, t] of threadGroupCpuS(process.pid)) threads.set(tid, t);
    };
    progress('starting the rater');
    const start = performance.now();
    const rater = await startRater({ config: s.config, nc: s.nc, ch, pool: s.pool, log });
    const startedS = (performance.now() - start) / 1000;
    let firstBatchS = 0;
    // Events counted by the rater so far (every outcome but undecodable messages).
    const processedSoFar = async () => ((await registry.getSingleMetric('drawdown_rater_events_total')?.get())?.values ?? [])
      .filter((v) => v.labels.outcome !== 'undecodable_message').reduce((a, v) => a + v.value, 0);
    let processedAtFirstBatch = 0;
    let rssMax = rssBefore;
    let timedOut = false;
    let loops = 0;
    for (;;) {
      rssMax = Math.max(rssMax, procSample(process.pid)!.rssBytes);
      if (++loops % 25 === 0) sampleThreads(); // every 0.5 s: the readings cost CPU in this process
      if (!firstBatchS && rater.runners.some((r) => r.position > 0)) {
        firstBatchS = (performance.now() - start) / 1000;
        processedAtFirstBatch = await processedSoFar();
      }
      if (rater.runners.every((r) => r.position >= lastSeq[r.partition]!)) break;
      if (performance.now() - start > opts.maxSeconds * 1000) {
        timedOut = true;
        break;
      }
      await sleep(20);
    }
    const secs = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    sampleThreads();
    const byGroup = threadGroupsBetween(threads0, threads);
    progress(`rater ${timedOut ? 'stopped at the time limit' : 'done'} after ${round(secs, 1)} s; stopping`);
    const counted = await registry.getSingleMetric('drawdown_rater_events_total')?.get();
    const processed = timedOut ? (counted?.values ?? []).filter((v) => v.labels.outcome !== 'undecodable_message').reduce((a, v) => a + v.value, 0) : opts.events;
    const notes: string[] = [];
    // A stop or a count that does not return is reported, not waited for forever.
    const stoppedOk = await within(rater.stop().then(() => true), 30_000);
    const dedup = dedupBytesPerKey(opts.dedupSample);
    if (!stoppedOk) notes.push('rater.stop() did not return within 30 s (a batch in flight did not finish)');
    progress(stoppedOk ? 'rater stopped' : 'rater.stop() timed out');
    const rows = stoppedOk ? await within(queryRows<{ n: string }>(ch, "SELECT count() AS n FROM rated_events WHERE status = 'rated'"), 30_000) : undefined;
    const debits = await jsm.streams.info(n.debitsStream);
    if (stoppedOk) await within(ch.close(), 10_000);
    const rated = rows ? Number(rows[0]?.n ?? 0) : -1;
    if (rated >= 0 && rated !== processed) notes.push(`rated rows ${rated} differ from events processed ${processed}${timedOut ? ' (stopped at the time limit: batches in flight were not committed)' : ''}`);
    return [{
      name: 'rater',
      title: 'Rater alone: pre-filled EVENTS stream to ClickHouse (chDB) and DEBITS',
      figures: {
        events: opts.events,
        processed,
        stoppedAtTimeLimit: timedOut,
        eventsPerS: Math.round(processed / secs),
        // Past start-up (worker load, first chDB insert): from the first committed batch to the end.
        eventsPerSAfterFirstBatch: secs > firstBatchS && processed > processedAtFirstBatch ? Math.round((processed - processedAtFirstBatch) / (secs - firstBatchS)) : null,
        seconds: round(secs, 2),
        startRaterSeconds: round(startedS, 2),
        firstBatchSeconds: round(firstBatchS, 2),
        ratedRows: rated,
        debitBatches: debits.state.messages,
        partitions: P,
        pricingWorkers: s.config.raterWorkers,
        batchMaxEvents: s.config.raterBatchMaxEvents,
        processCpuS: round((cpu.user + cpu.system) / 1e6, 2),
        processCpuShare: round(((cpu.user + cpu.system) / 1e6) / secs, 2),
        processCpuUsPerEvent: round(((cpu.user + cpu.system) / processed), 2),
        // Per thread group (/proc task times, 10 ms ticks): main thread, chDB's threads, the rest.
        mainThreadCpuUsPerEvent: round((byGroup.main * 1e6) / processed, 2),
        clickhouseThreadsCpuUsPerEvent: round((byGroup.named * 1e6) / processed, 2),
        otherThreadsCpuUsPerEvent: round((byGroup.other * 1e6) / processed, 2),
        rssBeforeMB: round(rssBefore / MB),
        rssMaxMB: round(rssMax / MB),
        prefillSeconds: round(prefillS, 1),
        dedupBytesPerFingerprint: dedup.bytesPerFingerprint,
        dedupSampleKeys: dedup.keys,
        dedupMemoryForDefaultCapacityMB: round((dedup.bytesPerFingerprint * s.config.raterDedupMemoryEvents) / MB),
      },
      notes,
    }];
  } finally {
    await within(s.close(), 10_000);
    await within(env.cleanup(), 30_000);
  }
}
