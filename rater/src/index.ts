// The rater service: owns partitions of the EVENTS stream, dedups and prices events in
// worker threads, writes rated events to ClickHouse and debit batches to DEBITS.
import { Piscina } from 'piscina';
import type { Config } from '@drawdown/config';
import { loadCatalog, catalogVersion, type CatalogSnapshot } from '@drawdown/catalog';
import type { Ch } from '@drawdown/clickhouse';
import type { Logger } from '@drawdown/log';
import { jetstream, names, openKv, type NatsConnection } from '@drawdown/nats';
import type { Pool } from '@drawdown/pg';
import { DedupMemory } from './dedup';
import { PartitionRunner } from './partition';

export { priceBatch, isFiat } from './pricing/price';
export type { PricingEvent, PricingResult, RatedRow } from './pricing/price';
export { DedupMemory } from './dedup';

export interface Rater {
  runners: PartitionRunner[];
  stop(): Promise<void>;
}

export async function startRater(opts: { config: Config; nc: NatsConnection; ch: Ch; pool: Pool; log: Logger; partitions?: number[] }): Promise<Rater> {
  const { config } = opts;
  const log = opts.log.child({ service: 'rater' });
  const n = names(config.namespace);
  const js = jetstream(opts.nc);
  const kv = await openKv(opts.nc, n.raterStateBucket);
  const pool = new Piscina({
    filename: new URL('./pricing/worker-entry.mjs', import.meta.url).href,
    minThreads: 1,
    maxThreads: config.raterWorkers,
    idleTimeout: 60_000,
  });

  // The catalog snapshot: reloaded when the version in Postgres moved. Checked per batch
  // (one indexed read), and NATS announcements make the check happen promptly.
  let snapshot: CatalogSnapshot | undefined;
  let loading: Promise<CatalogSnapshot> | undefined;
  const catalog = async (): Promise<CatalogSnapshot> => {
    const v = await catalogVersion(opts.pool);
    if (snapshot && snapshot.version >= v) return snapshot;
    loading ??= loadCatalog(opts.pool).finally(() => (loading = undefined));
    snapshot = await loading;
    log.info('catalog loaded', { version: snapshot.version });
    return snapshot;
  };

  const dedup = new DedupMemory(config.raterDedupMemoryEvents);
  const partitions = opts.partitions ?? Array.from({ length: config.partitions }, (_, i) => i);
  const runners = partitions.map(
    (p) =>
      new PartitionRunner({
        partition: p,
        js,
        kv,
        ch: opts.ch,
        pool,
        eventsStream: n.eventsStream,
        subject: `${n.eventsSubjectPrefix}.${p}`,
        debitsSubject: `${n.debitsSubjectPrefix}.${p}`,
        batchMaxEvents: config.raterBatchMaxEvents,
        batchMaxWaitMs: config.raterBatchMaxWaitMs,
        dedup,
        graceMs: config.ingestGraceMs,
        catalog,
        log,
      }),
  );
  for (const r of runners) r.start();
  log.info('rater started', { partitions, workers: config.raterWorkers });
  return {
    runners,
    async stop() {
      await Promise.all(runners.map((r) => r.stop()));
      await pool.destroy();
    },
  };
}
