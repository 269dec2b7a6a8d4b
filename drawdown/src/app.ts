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
import { startLedger, LEDGER_MIGRATIONS, type Ledger, type UsageSource } from '@drawdown/ledger';
import type { Logger } from '@drawdown/log';
import { collectProcessMetrics } from '@drawdown/metrics';
import { connectNats, ensureStreams, jetstreamManager, names, type NatsConnection } from '@drawdown/nats';
import { createPool, ensureDatabase, migrate, type Pool } from '@drawdown/pg';
import { startRater, type Rater } from '@drawdown/rater';

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

/** Subscription usage per metric and local day, from rated events (one row per event and metric). */
function subscriptionUsage(ch: Ch): UsageSource {
  return async (q) => {
    const rows = await queryRows<{ metric_id: string; day: string; quantity: string }>(
      ch,
      `SELECT metric_id, toString(day) AS day, toString(sum(q)) AS quantity FROM (
         SELECT metric_id, idempotency_key, any(quantity) AS q, toUnixTimestamp(toStartOfDay(any(timestamp), {tz:String})) AS day
           FROM rated_events
          WHERE subscription_id = {sid:String} AND metric_id IN {mids:Array(String)} AND status = 'rated'
            AND timestamp >= fromUnixTimestamp64Milli({from:Int64}) AND timestamp < fromUnixTimestamp64Milli({to:Int64})
          GROUP BY metric_id, idempotency_key)
       GROUP BY metric_id, day`,
      { sid: q.subscriptionId, mids: q.metricIds, from: q.fromMs, to: q.toMs, tz: q.timezone },
    );
    return rows.map((r) => ({ metricId: r.metric_id, startMs: Number(r.day) * 1000, quantity: r.quantity }));
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
  await migrateClickHouse(ch);

  const adminKey = await bootstrapAdminKey(pool, config, log);
  const verifier = createKeyVerifier(pool);

  const ledger = await startLedger({ config, pool, nc, log, usage: subscriptionUsage(ch) });
  const rater = await startRater({ config, nc, ch, pool, log });
  const ingest = createIngest({ config, nc, log });

  let ready = true;
  const http = await startHttpServer({
    host: config.httpHost,
    port: config.httpPort,
    routes: [...ingest.routes, ...ledger.routes],
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
      let last = 0;
      try {
        const m = await jsm.streams.getMessage(n.eventsStream, { last_by_subj: `${n.eventsSubjectPrefix}.${runner.partition}` });
        last = m?.seq ?? 0;
      } catch {
        last = 0; // no message on this partition
      }
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
