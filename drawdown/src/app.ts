// The all-in-one process: every service in one Node process against local Postgres, local
// NATS JetStream and embedded chDB, one HTTP port for the whole API.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '@drawdown/config';
import { redacted } from '@drawdown/config';
import { createApiKey, createKeyVerifier, hashKey } from '@drawdown/auth';
import { openClickHouse, migrateClickHouse, queryRows, type Ch } from '@drawdown/clickhouse';
import { startHttpServer, type HttpServer } from '@drawdown/http';
import { createIngest } from '@drawdown/ingest';
import { startLedger, LEDGER_MIGRATIONS, type Ledger, type SubscriptionUsageSource } from '@drawdown/ledger';
import type { Logger } from '@drawdown/log';
import { collectProcessMetrics } from '@drawdown/metrics';
import { connectNats, ensureStreams, jetstreamManager, names, type NatsConnection, lastEventSeq } from '@drawdown/nats';
import { createPool, ensureDatabase, migrate, type Pool } from '@drawdown/pg';
import { startRater, type Rater } from '@drawdown/rater';
import { clickhouseUsageSource } from '@drawdown/reporter';

export interface App {
  config: Config;
  port: number;
  baseUrl: string;
  adminKey: string;
  pool: Pool;
  nc: NatsConnection;
  ch: Ch;
  ledger: Ledger;
  rater: Rater;
  http: HttpServer;
  /** Resolves when every event published so far is rated, debited and its notifications published. */
  waitIdle(timeoutMs?: number): Promise<void>;
  /** Graceful stop: stop accepting, drain in-flight requests, let raters and the ledger finish their batches. */
  stop(): Promise<void>;
}

async function bootstrapAdminKey(pool: Pool, config: Config, log: Logger): Promise<string> {
  if (config.adminApiKey) {
    const r = await pool.query('SELECT 1 FROM api_keys WHERE key_hash = $1', [hashKey(config.adminApiKey)]);
    if (r.rowCount === 0) await createApiKey(pool, 'admin (DRAWDOWN_ADMIN_API_KEY)', ['admin'], config.adminApiKey);
    return config.adminApiKey;
  }
  const file = resolve(join(config.dataDir, 'admin-api-key'));
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim();
    const r = await pool.query('SELECT 1 FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL', [hashKey(key)]);
    if (r.rowCount === 1) {
      log.info('admin API key', { file });
      return key;
    }
  }
  const created = await createApiKey(pool, 'admin (generated at first start)', ['admin']);
  mkdirSync(config.dataDir, { recursive: true });
  writeFileSync(file, created.key + '\n', { mode: 0o600 });
  log.info('admin API key created; it is in this file', { file });
  return created.key;
}

/**
 * Subscription usage of one metric per bucket, from rated events (deduplicated per event):
 * count and sum add the rated quantities; max, unique_count and latest read the property.
 */
function subscriptionUsage(ch: Ch): SubscriptionUsageSource {
  const value = `toDecimal128OrNull(replaceAll(JSONExtractRaw(properties, {prop:String}), '"', ''), 12)`;
  const AGG = {
    count: 'sum(quantity)',
    sum: 'sum(quantity)',
    max: `ifNull(max(${value}), toDecimal128(0, 12))`,
    latest: `ifNull(argMax(${value}, ts), toDecimal128(0, 12))`,
    unique_count: `uniqExactIf(JSONExtractRaw(properties, {prop:String}), JSONExtractRaw(properties, {prop:String}) != '')`,
  } as const;
  return async (q) => {
    const ends = q.bucketEndsMs;
    if (ends.length === 0) return [];
    const rows = await queryRows<{ b: string; q: string }>(
      ch,
      `SELECT arrayFirstIndex(e -> toUnixTimestamp64Milli(ts) < e, {ends:Array(Int64)}) AS b, toString(${AGG[q.metric.aggregation]}) AS q FROM (
         SELECT idempotency_key, any(timestamp) AS ts, any(quantity) AS quantity, any(properties) AS properties
           FROM rated_events
          WHERE subscription_id = {sid:String} AND metric_id = {mid:String} AND status = 'rated'
            AND timestamp >= fromUnixTimestamp64Milli({from:Int64}) AND timestamp < fromUnixTimestamp64Milli({to:Int64})
          GROUP BY idempotency_key)
       GROUP BY b`,
      { sid: q.subscriptionId, mid: q.metric.id, prop: q.metric.property ?? '', from: q.fromMs, to: ends[ends.length - 1]!, ends },
    );
    const out = ends.map(() => '0');
    for (const r of rows) if (Number(r.b) >= 1) out[Number(r.b) - 1] = r.q;
    return out;
  };
}

export async function startApp(config: Config, log: Logger): Promise<App> {
  collectProcessMetrics();
  log.info('starting drawdown (all-in-one)', { config: redacted(config) });
  await ensureDatabase(config.databaseUrl);
  const pool = createPool(config.databaseUrl, { max: 16 });
  await migrate(pool, [LEDGER_MIGRATIONS], log);

  const nc = await connectNats(config.natsUrl, 'drawdown', log);
  await ensureStreams(nc, names(config.namespace), { eventsDuplicateWindowMs: 10 * 60_000 });

  const ch = await openClickHouse({ url: config.clickhouseUrl, dataDir: join(config.dataDir, 'chdb') }, log);
  await migrateClickHouse(ch, { mergeSelectorBase: config.clickhouseMergeSelectorBase });

  const adminKey = await bootstrapAdminKey(pool, config, log);
  const verifier = createKeyVerifier(pool, {
    cacheTtlMs: config.apiKeyCacheTtlMs,
    maxEntries: config.apiKeyCacheMaxEntries,
    bus: nc,
    namespace: config.namespace,
  });

  const ledger = await startLedger({ config, pool, nc, log, usage: clickhouseUsageSource(ch), subscriptionUsage: subscriptionUsage(ch) });
  const rater = await startRater({ config, nc, ch, pool, log });
  const ingest = createIngest({ config, nc, log });

  let ready = true;
  const http = await startHttpServer({
    host: config.httpHost,
    port: config.httpPort,
    routes: [...ingest.routes, ...ledger.routes, ...rater.routes],
    authenticate: (h) => verifier.authenticate(h),
    log,
    ready: () => ready && !nc.isClosed(),
  });
  const baseUrl = `http://${config.httpHost}:${http.port}`;
  log.info('drawdown ready', { baseUrl });

  const n = names(config.namespace);
  const waitIdle = async (timeoutMs = 60_000) => {
    const until = Date.now() + timeoutMs;
    const jsm = await jetstreamManager(nc);
    for (const runner of rater.runners) {
      const last = await lastEventSeq(jsm, n, runner.partition);
      while (runner.position < last) {
        if (Date.now() > until) throw new Error(`partition ${runner.partition} is at ${runner.position}, behind ${last}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await ledger.consumer.idle();
    await ledger.outbox.flush();
  };

  let stopping: Promise<void> | undefined;
  return {
    config, port: http.port, baseUrl, adminKey, pool, nc, ch, ledger, rater, http, waitIdle,
    stop() {
      stopping ??= (async () => {
        ready = false;
        log.info('stopping: draining in-flight requests');
        await http.close(config.shutdownTimeoutMs);
        await rater.stop();
        await ledger.stop();
        await nc.drain().catch(() => {});
        await ch.close().catch(() => {});
        await pool.end().catch(() => {});
        log.info('stopped');
      })();
      return stopping;
    },
  };
}
