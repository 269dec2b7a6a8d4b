// Setting up a benchmark's stores: an isolated environment (own Postgres database, NATS
// namespace and chDB directory, from the test kit), the catalog through the billing API, and
// many customers with subscriptions and credits through the ledger's set-based seeding
// (seedCustomers; the API would take minutes for 100,000 customers).
import pg from 'pg';
import { SETTINGS, type Config } from '@drawdown/config';
import { startHttpServer } from '@drawdown/http';
import { startLedger, LEDGER_MIGRATIONS, seedCustomers } from '@drawdown/ledger';
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

/** Settings the bench's isolation sets itself: never taken from the environment. */
const ISOLATION = new Set(['DRAWDOWN_NAMESPACE', 'DRAWDOWN_DATA_DIR', 'DRAWDOWN_HTTP_PORT', 'DRAWDOWN_ADMIN_API_KEY']);

/** The DRAWDOWN_* settings of the bench's environment (`DRAWDOWN_RATER_WORKERS=2 pnpm bench`), isolation aside. */
export function settingsFromEnv(): Record<string, string> {
  const known = new Set(Object.values(SETTINGS).map((x) => x.env));
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => known.has(e[0]) && e[0].startsWith('DRAWDOWN_') && !ISOLATION.has(e[0]) && e[1] !== undefined));
}

export function benchEnv(overrides: Record<string, string> = {}): TestEnv {
  // The product's defaults (the test kit's 8 partitions are for exercising partitioned paths),
  // and the settings of the bench's environment.
  return testEnv({ DRAWDOWN_LOG_LEVEL: 'error', DRAWDOWN_PARTITIONS: SETTINGS.partitions.default, ...settingsFromEnv(), ...overrides });
}

/**
 * Set by the bench's main process for the scenario processes it starts: a database with the
 * ledger's migrations applied, made once per run. Each scenario's database is a copy of it
 * (CREATE DATABASE ... TEMPLATE, a file copy) instead of running the migrations again.
 */
export const TEMPLATE_ENV = 'BENCH_TEMPLATE_DB';

function adminUrl(url: string): { admin: string; name: string } {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.slice(1));
  u.pathname = '/postgres';
  return { admin: u.toString(), name };
}

/** Creates the database of `url`: a copy of the run's migrated template when there is one. */
export async function createBenchDatabase(url: string): Promise<void> {
  const template = process.env[TEMPLATE_ENV];
  if (!template) return ensureDatabase(url);
  const { admin, name } = adminUrl(url);
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE "${name.replace(/"/g, '""')}" TEMPLATE "${template.replace(/"/g, '""')}"`);
  } catch (err) {
    // Exists already (42P04), or another process (startApp's ensureDatabase) created it at the same moment (23505).
    const code = (err as { code?: string }).code;
    if (code !== '42P04' && code !== '23505') throw err;
  } finally {
    await c.end();
  }
}

/** The run's template (see TEMPLATE_ENV): a migrated database named after `baseUrl`'s server; drop() removes it. */
export async function createTemplate(baseUrl: string, name: string): Promise<{ name: string; drop(): Promise<void> }> {
  const u = new URL(baseUrl);
  u.pathname = `/${name}`;
  await ensureDatabase(u.toString());
  const pool = createPool(u.toString(), { max: 1, application: 'bench-template' });
  try {
    await migrate(pool, [LEDGER_MIGRATIONS]);
  } finally {
    await pool.end();
  }
  return {
    name,
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl(u.toString()).admin });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name.replace(/"/g, '""')}" WITH (FORCE)`).finally(() => c.end());
    },
  };
}

/** Database (migrated), streams; the caller closes (and cleans up with env.cleanup()). */
export async function openStores(env: TestEnv): Promise<Stores> {
  const { config } = env;
  await createBenchDatabase(config.databaseUrl);
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
export async function createCatalog(s: Stores, api?: { baseUrl: string; adminKey: string }): Promise<{ planId: string; priceId: string }> {
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
    return { planId: plan.id as string, priceId: (plan.prices as { id: string }[])[0]!.id };
  } finally {
    await stop();
  }
}

/**
 * Customers [first, first + count) through the ledger's seeding (seedCustomers): customer
 * `bc<n>` (external id `ext-<n>`), one active credit block `bb<n>` of GRANT credits with its
 * increment entry, and (with a plan) an active subscription; two slices in parallel.
 */
export async function createCustomers(pool: Pool, opts: { first?: number; count: number; planId?: string }): Promise<void> {
  await seedCustomers(pool, {
    first: opts.first,
    count: opts.count,
    ids: { customer: customerId(0).replace(/0$/, ''), external: externalId(0).replace(/0$/, ''), block: 'bb' },
    grant: GRANT,
    planId: opts.planId,
    parallel: 2,
  });
}
