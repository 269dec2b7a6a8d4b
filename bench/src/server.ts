// A service under test, in its own process so its CPU and RSS are its own: the ingest edge
// alone, the all-in-one app, or the baseline. Started by the bench with fork(); reports its
// port over IPC and answers `stats` (backlog figures) and `verify` requests.
import type { Config } from '@drawdown/config';
import { createApiKey } from '@drawdown/auth';
import { queryRows } from '@drawdown/clickhouse';
import { startApp, type App } from '@drawdown/drawdown';
import { startIngestEdge } from '@drawdown/ingest';
import { LEDGER_MIGRATIONS } from '@drawdown/ledger';
import { jetstreamManager, names, lastEventSeq } from '@drawdown/nats';
import { createPool, migrate } from '@drawdown/pg';
import { histogramTotals, metricSum } from './app-metrics';
import { startBaseline } from './baseline/server';
import { createBenchDatabase, log } from './setup';

export interface ServerSpec {
  kind: 'edge' | 'app' | 'baseline';
  config: Config;
  /** Baseline only. */
  baseline?: { databaseUrl: string; apiKey: string; poolMax: number };
}

export interface AppStats {
  atMs: number;
  /** Events the edge accepted (counter) minus events the rater processed (all outcomes). */
  eventsBacklog: number;
  eventsAccepted: number;
  eventsProcessed: number;
  /** Partitions whose rater position is behind the partition's last message. */
  partitionsBehind: number;
  /** Sum over partitions of (last stream sequence of the partition - rater position). */
  seqLag: number;
  /** DEBITS batches not yet applied by the ledger (pending + unacked). */
  debitsPending: number;
  /** Ledger staleness gauge: ingest time of the newest applied event, behind now. */
  stalenessS: number;
  /** Rater batches committed so far and their processing seconds in all (drawdown_rater_batch_seconds). */
  raterBatches: number;
  raterBatchSeconds: number;
  /** Ledger transactions of debit batches so far, their seconds in all (drawdown_ledger_apply_seconds) and the batches they applied. */
  ledgerTxs: number;
  ledgerTxSeconds: number;
  ledgerBatches: number;
}

async function appStats(app: App): Promise<AppStats> {
  const n = names(app.config.namespace);
  const jsm = await jetstreamManager(app.nc);
  let partitionsBehind = 0;
  let seqLag = 0;
  for (const r of app.rater.runners) {
    const last = await lastEventSeq(jsm, n, r.partition);
    if (last > r.position) {
      partitionsBehind++;
      seqLag += last - r.position;
    }
  }
  let debitsPending = 0;
  try {
    const info = await jsm.consumers.info(n.debitsStream, 'ledger');
    debitsPending = info.num_pending + info.num_ack_pending;
  } catch {
    debitsPending = -1;
  }
  const eventsAccepted = await metricSum('drawdown_ingest_events_total', (l) => l.outcome === 'accepted');
  const eventsProcessed = await metricSum('drawdown_rater_events_total', (l) => l.outcome !== 'undecodable_message');
  return {
    atMs: Date.now(),
    eventsBacklog: Math.max(0, eventsAccepted - eventsProcessed),
    eventsAccepted,
    eventsProcessed,
    partitionsBehind,
    seqLag,
    debitsPending,
    stalenessS: await metricSum('drawdown_ledger_staleness_seconds'),
    ...(await histogramTotals('drawdown_rater_batch_seconds').then((h) => ({ raterBatches: h.count, raterBatchSeconds: h.sum }))),
    ...(await histogramTotals('drawdown_ledger_apply_seconds').then((h) => ({ ledgerTxs: h.count, ledgerTxSeconds: h.sum }))),
    ledgerBatches: await metricSum('drawdown_ledger_debit_batches_total', (l) => l.outcome === 'applied'),
  };
}

/** The embedded ClickHouse engine's state, for the long run's windows: active parts and rows per
 *  table, merges under way, and the engine's running totals of merge work and inserted rows. */
export interface ChStats {
  atMs: number;
  tables: Record<string, { parts: number; rows: number; bytesOnDisk: number; largestPartRows: number }>;
  mergesRunning: number;
  /** system.events (CH_EVENTS; 0 when the engine does not count one). */
  events: Record<string, number>;
  /** drawdown_rater_dedup_store_checks_total: keys the rater checked against ClickHouse. */
  dedupStoreChecks: number;
}

/** Merges done, rows they wrote and their milliseconds (summed over merges); inserts, their rows and microseconds; rows reads selected. */
export const CH_EVENTS = ['Merge', 'MergedRows', 'MergeTotalMilliseconds', 'InsertQuery', 'InsertedRows', 'InsertQueryTimeMicroseconds', 'SelectedRows'];

async function chStats(app: App): Promise<ChStats> {
  const parts = await queryRows<{ table: string; parts: string; total: string; bytes: string; largest: string }>(app.ch, 'SELECT table, count() AS parts, sum(rows) AS total, sum(bytes_on_disk) AS bytes, max(rows) AS largest FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table');
  const merges = await queryRows<{ n: string }>(app.ch, 'SELECT count() AS n FROM system.merges');
  const events = await queryRows<{ event: string; value: string }>(app.ch, 'SELECT event, value FROM system.events WHERE event IN {names:Array(String)}', { names: CH_EVENTS });
  return {
    atMs: Date.now(),
    tables: Object.fromEntries(parts.map((p) => [p.table, { parts: Number(p.parts), rows: Number(p.total), bytesOnDisk: Number(p.bytes), largestPartRows: Number(p.largest) }])),
    mergesRunning: Number(merges[0]?.n ?? 0),
    events: Object.fromEntries(CH_EVENTS.map((e) => [e, Number(events.find((x) => x.event === e)?.value ?? 0)])),
    dedupStoreChecks: await metricSum('drawdown_rater_dedup_store_checks_total'),
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]!) as ServerSpec;
  const { config } = spec;
  if (spec.kind === 'app') {
    const app = await startApp(config, log);
    process.on('message', (m: { type: string; id: number; timeoutMs?: number }) => {
      const answer = (p: Promise<unknown>) => p.then((r) => process.send!({ type: 'answer', id: m.id, result: r }), (err: Error) => process.send!({ type: 'answer', id: m.id, error: err.message }));
      if (m.type === 'stats') answer(appStats(app));
      else if (m.type === 'chStats') answer(chStats(app));
      else if (m.type === 'verify') {
        answer((async () => {
          await app.waitIdle(m.timeoutMs ?? 600_000);
          const rows = await queryRows<{ n: string; k: string }>(app.ch, "SELECT count() AS n, uniqExact(customer_id, idempotency_key) AS k FROM rated_events WHERE status = 'rated'");
          const unpriced = await queryRows<{ n: string }>(app.ch, "SELECT count() AS n FROM rated_events WHERE status <> 'rated'");
          const debited = await app.pool.query<{ s: string }>("SELECT coalesce(-sum(amount), 0)::text AS s FROM ledger_entries WHERE entry_type = 'decrement'");
          return { ratedRows: Number(rows[0]?.n ?? 0), uniqueKeys: Number(rows[0]?.k ?? 0), unpricedRows: Number(unpriced[0]?.n ?? 0), debitedCredits: debited.rows[0]?.s ?? '0' };
        })());
      } else if (m.type === 'stop') answer(app.stop().then(() => process.exit(0)));
    });
    process.send!({ type: 'ready', port: app.port, adminKey: app.adminKey, pid: process.pid });
    return;
  }
  if (spec.kind === 'edge') {
    await createBenchDatabase(config.databaseUrl);
    const pool = createPool(config.databaseUrl, { max: 1, application: 'bench-edge' });
    await migrate(pool, [LEDGER_MIGRATIONS]);
    const key = await createApiKey(pool, 'bench ingest', ['ingest']);
    await pool.end();
    const edge = await startIngestEdge({ config: { ...config, httpHost: '127.0.0.1', httpPort: 0 }, log });
    process.on('message', (m: { type: string; id: number }) => {
      if (m.type === 'stop') void edge.close(2000).then(() => process.send!({ type: 'answer', id: m.id, result: true })).then(() => process.exit(0));
    });
    process.send!({ type: 'ready', port: edge.port, adminKey: key.key, pid: process.pid });
    return;
  }
  const b = spec.baseline!;
  const server = await startBaseline({ databaseUrl: b.databaseUrl, host: '127.0.0.1', port: 0, apiKey: b.apiKey, poolMax: b.poolMax });
  process.on('message', (m: { type: string; id: number }) => {
    if (m.type === 'stop') void server.close().then(() => process.send!({ type: 'answer', id: m.id, result: true })).then(() => process.exit(0));
  });
  process.send!({ type: 'ready', port: server.port, adminKey: b.apiKey, pid: process.pid });
}

main().catch((err: Error) => {
  process.stderr.write(`bench server failed: ${err.stack ?? String(err)}\n`);
  process.exit(1);
});
