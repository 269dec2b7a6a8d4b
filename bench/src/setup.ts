// Setting up a benchmark's stores: an isolated environment (own Postgres database, NATS
// namespace and chDB directory, from the test kit), the catalog through the billing API, and
// many customers with subscriptions and credits by direct SQL (the API would take minutes
// for 100,000 customers; the rows are what a grant through the API writes).
import type { Config } from '@drawdown/config';
import { startHttpServer } from '@drawdown/http';
import { startLedger, LEDGER_MIGRATIONS } from '@drawdown/ledger';
import { createLogger, type Logger } from '@drawdown/log';
import { connectNats, ensureStreams, names, type NatsConnection } from '@drawdown/nats';
import { createPool, ensureDatabase, migrate, type Pool } from '@drawdown/pg';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { EVENT_NAME, customerId, externalId } from './workload';

export const log: Logger = createLogger({ service: 'bench' }, { level: (process.env.BENCH_LOG_LEVEL as 'error') ?? 'error' });

/** Price of one event in the benchmark's plan, in credits. */
export const UNIT_PRICE = '0.001';
/** Credits granted to each customer: enough that no one runs out during a run. */
export const GRANT = '1000000000';

export interface Stores {
  env: TestEnv;
  config: Config;
  pool: Pool;
  nc: NatsConnection;
  close(): Promise<void>;
}

export function benchEnv(overrides: Record<string, string> = {}): TestEnv {
  return testEnv({ DRAWDOWN_LOG_LEVEL: 'error', ...overrides });
}

/** Database (migrated), streams; the caller closes (and cleans up with env.cleanup()). */
export async function openStores(env: TestEnv): Promise<Stores> {
  const { config } = env;
  await ensureDatabase(config.databaseUrl);
  const pool = createPool(config.databaseUrl, { max: 8, application: 'bench' });
  await migrate(pool, [LEDGER_MIGRATIONS]);
  const nc = await connectNats(config.natsUrl, 'bench', log);
  await ensureStreams(nc, names(config.namespace));
  return {
    env, config, pool, nc,
    async close() {
      await nc.drain().catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

async function post(base: string, path: string, body: unknown, key?: string): Promise<Record<string, unknown>> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  const out = (await res.json()) as Record<string, unknown>;
  if (res.status >= 300) throw new Error(`set-up: POST ${path} answered ${res.status}: ${JSON.stringify(out)}`);
  return out;
}

/**
 * Item, metric (count of api_call) and a plan with a unit price in credits, through the
 * billing API: through an app's base URL, or (no URL) a ledger started just for this.
 */
export async function createCatalog(s: Stores, api?: { baseUrl: string; adminKey: string }): Promise<{ planId: string }> {
  let base = api?.baseUrl;
  let stop = async () => {};
  if (!base) {
    const ledger = await startLedger({ config: s.config, pool: s.pool, nc: s.nc, log });
    const http = await startHttpServer({
      host: '127.0.0.1', port: 0, routes: ledger.routes, log, ready: () => true,
      authenticate: async () => ({ keyId: 'bench-setup', scopes: ['admin', 'read', 'ingest'] }),
    });
    base = `http://127.0.0.1:${http.port}`;
    stop = async () => {
      await http.close(1000);
      await ledger.stop();
    };
  }
  try {
    const key = api?.adminKey;
    const item = await post(base, '/v1/items', { name: 'API calls' }, key);
    const metric = await post(base, '/v1/metrics', { name: 'API calls', item_id: item.id, sql: `SELECT count(*) FROM events WHERE event_name = '${EVENT_NAME}'` }, key);
    const plan = await post(base, '/v1/plans', {
      name: 'Bench credits', currency: 'credits',
      prices: [{ price: { name: 'API call', item_id: item.id, billable_metric_id: metric.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: UNIT_PRICE } } }],
    }, key);
    return { planId: plan.id as string };
  } finally {
    await stop();
  }
}

/**
 * Customers [first, first + count): customer, credit balance row, one credit block of GRANT
 * credits with its increment entry, and (with a plan) an active subscription. Set-based SQL.
 */
export async function createCustomers(pool: Pool, opts: { first?: number; count: number; planId?: string }): Promise<void> {
  const first = opts.first ?? 0;
  const last = first + opts.count - 1;
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const series = `FROM generate_series(${first}, ${last}) AS i`;
    const cid = `'${customerId(0).replace(/0$/, '')}' || i`;
    const ext = `'${externalId(0).replace(/0$/, '')}' || i`;
    await c.query(`INSERT INTO customers (id, external_customer_id, name, email) SELECT ${cid}, ${ext}, 'Customer ' || i, 'c' || i || '@bench.test' ${series}`);
    await c.query(`INSERT INTO credit_balances (customer_id, pricing_unit, next_entry_seq) SELECT ${cid}, 'credits', 2 ${series}`);
    await c.query(
      `INSERT INTO credit_blocks (id, customer_id, pricing_unit, initial_amount, remaining, effective_date, source)
       SELECT 'bb' || i, ${cid}, 'credits', ${GRANT}, ${GRANT}, now() - interval '1 day', 'manual' ${series}`,
    );
    await c.query(
      `INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount, starting_balance, ending_balance, description)
       SELECT 'be' || i, ${cid}, 'credits', 1, 'increment', 'bb' || i, ${GRANT}, 0, ${GRANT}, 'bench grant' ${series}`,
    );
    if (opts.planId) {
      await c.query(`INSERT INTO subscriptions (id, customer_id, plan_id, start_date) SELECT 'bs' || i, ${cid}, $1, now() - interval '2 days' ${series}`, [opts.planId]);
    }
    // The rater reloads its catalog snapshot when the version moves.
    await c.query('UPDATE catalog_version SET version = version + 1, changed_at = now()');
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
  await pool.query('ANALYZE customers; ANALYZE credit_balances; ANALYZE credit_blocks; ANALYZE ledger_entries');
}
