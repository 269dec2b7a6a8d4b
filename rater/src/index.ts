// The rater service: leases partitions of the EVENTS stream (NATS KV), dedups and prices
// events in worker threads, writes rated events to ClickHouse and debit batches to DEBITS,
// keeps unpriced events listed and re-rates them when the catalog can price them.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { Piscina } from 'piscina';
import type { Config } from '@drawdown/config';
import { loadCatalog, catalogVersion, type CatalogSnapshot } from '@drawdown/catalog';
import type { Ch } from '@drawdown/clickhouse';
import type { Route } from '@drawdown/http';
import type { Logger } from '@drawdown/log';
import { jetstream, names, openKv, type KV, type NatsConnection } from '@drawdown/nats';
import type { Pool } from '@drawdown/pg';
import { LeaseManager } from './lease';
import { PartitionRunner, type PriceFn } from './partition';
import { encodeSnapshot, type PricingOutput, type PricingTask } from './pricing/worker';
import { unpricedRoutes } from './routes';
import { rerateUnpriced } from './unpriced';

export { priceBatch, applyCumulative, isFiat, isPricingUnit, encodeRated, RATED_COLUMNS } from './pricing/price';
export type { PricingEvent, PricingResult, RatedRow } from './pricing/price';
export { DedupMemory } from './dedup';
export { listUnpriced, rerateUnpriced } from './unpriced';
export { readCheckpoint, checkpointKey, FencedError } from './partition';
export type { LeaseManager } from './lease';

/** Buffers the main thread keeps for reuse (see `recycle` below). */
const SPARE_BUFFERS = 4;

/** Young generation of a pricing worker's heap (see the pool below). */
const WORKER_YOUNG_GENERATION_MB = 128;

export interface Rater {
  /** This process's id in the lease table. */
  owner: string;
  leases: LeaseManager;
  /** Runners of the partitions this process currently owns. */
  readonly runners: PartitionRunner[];
  routes: Route[];
  /** Re-reads the catalog now (also done per batch and on the catalog announcement). */
  reloadCatalog(): Promise<CatalogSnapshot>;
  /** Graceful stop: finish the batch in hand, free the leases. `abandon` leaves the leases to expire, as a crash would (tests). */
  stop(opts?: { abandon?: boolean }): Promise<void>;
}

export interface RaterOptions {
  config: Config;
  nc: NatsConnection;
  ch: Ch;
  pool: Pool;
  log: Logger;
  /** Partitions this process may lease (default: all). */
  partitions?: number[];
  /** Lease owner id (default: DRAWDOWN_RATER_ID, else host and data directory). */
  owner?: string;
}

export async function startRater(opts: RaterOptions): Promise<Rater> {
  const { config } = opts;
  const owner = opts.owner ?? (config.raterId || `${hostname()}:${resolve(config.dataDir)}`);
  const log = opts.log.child({ service: 'rater', owner });
  const n = names(config.namespace);
  const js = jetstream(opts.nc);
  const kv = await openKv(opts.nc, n.raterStateBucket);
  await checkPartitionCount(kv, config.partitions);
  const pool = new Piscina({
    filename: new URL('./pricing/worker-entry.mjs', import.meta.url).href,
    minThreads: 1,
    maxThreads: config.raterWorkers,
    idleTimeout: 60_000,
    // A batch's decoded events and rows live until its task ends: with V8's default young
    // generation they outgrow it and are promoted, and collecting them took a quarter of the
    // worker's time (profiled, 20,000-event batches). With room for a whole batch they die young.
    resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
  });

  // The catalog snapshot, versioned: reloaded when Postgres has a newer version (checked per
  // batch, one indexed read, and at once on the NATS announcement). Workers get it as shared
  // bytes, encoded once per version.
  let snapshot: CatalogSnapshot | undefined;
  let loading: Promise<CatalogSnapshot> | undefined;
  const shared = new WeakMap<CatalogSnapshot, SharedArrayBuffer>();
  let rerating: Promise<unknown> = Promise.resolve();
  const catalog = async (): Promise<CatalogSnapshot> => {
    const v = await catalogVersion(opts.pool);
    if (snapshot && snapshot.version >= v) return snapshot;
    loading ??= loadCatalog(opts.pool)
      .then((s) => {
        const previous = snapshot;
        if (!previous || s.version > previous.version) {
          snapshot = s;
          log.info('catalog loaded', { version: s.version });
          if (previous) rerating = rerating.then(() => autoRerate(s)).catch((err) => log.error('automatic re-rating failed', { err }));
        }
        return snapshot!;
      })
      .finally(() => (loading = undefined));
    return loading;
  };
  // Buffers made once and reused (see PricingOutput.spent): task data buffers the worker moved
  // back, and payloads ClickHouse has taken (the runners recycle them). The smallest that fits
  // carries the next task's data; the largest goes to the worker for its next payload.
  const spares: ArrayBuffer[] = [];
  const recycle = (b: ArrayBuffer | undefined) => {
    if (!b || b.byteLength < 65_536) return;
    spares.push(b);
    spares.sort((x, y) => x.byteLength - y.byteLength);
    if (spares.length > SPARE_BUFFERS) spares.splice(spares.length >> 1, 1);
  };
  const price: PriceFn = async (snap, msgs, skip, partition, batchId) => {
    let sab = shared.get(snap);
    if (!sab) shared.set(snap, (sab = encodeSnapshot(snap)));
    // The payloads back to back in one buffer, moved (not copied) to the worker. A message's
    // data may be a view into a larger buffer: only its bytes are copied here.
    let size = 0;
    for (const m of msgs) size += m.data.byteLength;
    const fit = spares.findIndex((b) => b.byteLength >= size);
    const data = fit >= 0 ? new Uint8Array(spares.splice(fit, 1)[0]!, 0, size) : new Uint8Array(size);
    const spare = spares.length > 0 ? [spares.pop()!] : [];
    const ends: number[] = [];
    let at = 0;
    for (const m of msgs) {
      data.set(m.data, at);
      ends.push((at += m.data.byteLength));
    }
    const rerate: number[] = [];
    msgs.forEach((m, i) => m.rerateOf !== undefined && rerate.push(i));
    const task: PricingTask = { snapshotVersion: snap.version, snapshotJson: sab, partition, batchId, data, ends, seqs: msgs.map((m) => m.seq), rerate, skip, spare };
    const out = (await pool.run(task, { transferList: [data.buffer, ...spare] })) as PricingOutput;
    recycle(out.spent);
    return out;
  };

  const rerateDeps = { ch: opts.ch, js, eventsSubjectPrefix: n.eventsSubjectPrefix };
  // Within the accept window a catalog change re-rates, per owned partition, the unpriced
  // events the new catalog can price; older ones wait for the command.
  async function autoRerate(snap: CatalogSnapshot): Promise<void> {
    for (const p of leases.partitions) {
      const r = await rerateUnpriced(rerateDeps, { partition: p, fromMs: Date.now() - config.ingestGraceMs }, {
        maxEvents: config.raterRerateMaxEvents, tag: `v${snap.version}`, trigger: 'catalog', snapshot: snap,
      });
      if (r.events > 0) log.info('unpriced events sent for re-rating', { partition: p, events: r.events, catalogVersion: snap.version });
    }
  }

  const all = Array.from({ length: config.partitions }, (_, i) => i);
  const allowed = opts.partitions ?? all;
  const dedupCapacity = Math.max(1000, Math.floor(config.raterDedupMemoryEvents / config.partitions));
  const runners = new Map<number, PartitionRunner>();
  const leases: LeaseManager = new LeaseManager({
    kv,
    owner,
    partitions: allowed,
    ttlMs: config.raterLeaseTtlMs,
    log,
    acquired(p) {
      const runner = new PartitionRunner({
        partition: p,
        owner,
        js,
        kv,
        ch: opts.ch,
        price,
        recycle,
        eventsStream: n.eventsStream,
        subject: `${n.eventsSubjectPrefix}.${p}`,
        debitsSubject: `${n.debitsSubjectPrefix}.${p}`,
        batchMaxEvents: config.raterBatchMaxEvents,
        batchMaxWaitMs: config.raterBatchMaxWaitMs,
        dedupCapacity,
        graceMs: config.ingestGraceMs,
        catalog,
        log,
        onExit(err) {
          if (runners.get(p) !== runner) return;
          runners.delete(p);
          if (err) leases.lost(p);
        },
      });
      runners.set(p, runner);
      runner.start();
    },
    async release(p) {
      const r = runners.get(p);
      runners.delete(p);
      await r?.stop();
    },
  });

  await catalog();
  await leases.start();
  const sub = opts.nc.subscribe(n.catalogSubject, {
    callback: () => void catalog().catch((err) => log.error('catalog reload failed', { err })),
  });
  log.info('rater started', { partitions: leases.partitions, workers: config.raterWorkers, leaseTtlMs: config.raterLeaseTtlMs });
  return {
    owner,
    leases,
    get runners() {
      return [...runners.values()].sort((a, b) => a.partition - b.partition);
    },
    routes: unpricedRoutes(rerateDeps, { rerateMaxEvents: config.raterRerateMaxEvents }),
    reloadCatalog: catalog,
    async stop(stopOpts = {}) {
      sub.unsubscribe();
      // Every runner stops now, not once the lease round in flight has finished: a runner still
      // starting would otherwise finish starting (and report itself started) during that wait.
      const halting = [...runners.values()].map((r) => r.stop().catch(() => {}));
      await leases.stop(stopOpts);
      await Promise.all(halting);
      await rerating;
      await pool.destroy();
    },
  };
}

/** DRAWDOWN_PARTITIONS differs from what this deployment's events were partitioned into. */
export class PartitionCountError extends Error {
  override readonly name = 'PartitionCountError';
  readonly code = 'partition_count_changed';
}

const PARTITIONS_KEY = 'partitions';

/**
 * The partition count is fixed for the life of a deployment (a customer's events must stay in
 * one partition for ordering and dedup). The first rater records it in the state bucket; a
 * later start with another count refuses to run. A deployment from before the record existed
 * is recognised by its partition checkpoints (p0, p1, ...).
 */
export async function checkPartitionCount(kv: KV, partitions: number): Promise<void> {
  const refuse = (stored: string) => {
    throw new PartitionCountError(
      `DRAWDOWN_PARTITIONS is ${partitions}, but this deployment's events are partitioned into ${stored}; ` +
        `set DRAWDOWN_PARTITIONS to that (changing it would move customers to other partitions and break per-customer ordering and dedup)`,
    );
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    const e = await kv.get(PARTITIONS_KEY);
    if (e && e.operation === 'PUT' && e.length > 0) {
      const stored = Number(e.string());
      if (stored !== partitions) refuse(String(stored));
      return;
    }
    let highest = -1;
    for await (const key of await kv.keys()) {
      const m = /^p(\d+)$/.exec(key);
      if (m) highest = Math.max(highest, Number(m[1]));
    }
    if (highest >= partitions) refuse(`at least ${highest + 1}`);
    try {
      await kv.create(PARTITIONS_KEY, String(partitions));
      return;
    } catch {
      // Another rater recorded it first: read it again.
    }
  }
}
