// Shared set-up of the rater's integration tests: a ledger (Postgres, debit consumer, billing
// routes over HTTP) to create the catalog and apply debits, and helpers to publish events
// straight into the EVENTS stream (bypassing ingest, so the rater's own dedup is what is tested).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createApiKey, createKeyVerifier } from '@drawdown/auth';
import { SETTINGS, type Config } from '@drawdown/config';
import { encodeBatch, partitionOf, type AcceptedEvent } from '@drawdown/events';
import { startHttpServer, type HttpServer, type Route } from '@drawdown/http';
import { startLedger, balancesOf, LEDGER_MIGRATIONS, type Ledger } from '@drawdown/ledger';
import { createLogger, type Logger } from '@drawdown/log';
import { connectNats, ensureStreams, jetstream, names, type NatsConnection } from '@drawdown/nats';
import { createPool, ensureDatabase, migrate, type Pool } from '@drawdown/pg';
import { api } from '@drawdown/testkit';

export interface LedgerSide {
  pool: Pool;
  nc: NatsConnection;
  ledger: Ledger;
  http: HttpServer;
  call: ReturnType<typeof api>;
  log: Logger;
  stop(): Promise<void>;
}

export async function startLedgerSide(config: Config, extraRoutes: () => Route[] = () => []): Promise<LedgerSide> {
  const log = createLogger({ test: 'rater' }, { level: config.logLevel as 'error' });
  await ensureDatabase(config.databaseUrl);
  const pool = createPool(config.databaseUrl, { max: 8 });
  await migrate(pool, [LEDGER_MIGRATIONS], log);
  const nc = await connectNats(config.natsUrl, 'rater-test', log);
  await ensureStreams(nc, names(config.namespace));
  const ledger = await startLedger({ config, pool, nc, log });
  const key = (await createApiKey(pool, 'test admin', ['admin'])).key;
  const verifier = createKeyVerifier(pool);
  // Routes are looked up at start; the extra ones (the rater's) may be created later.
  const late: Route[] = ['GET /v1/unpriced_events', 'POST /v1/unpriced_events/rerate'].map((x) => {
    const [method, path] = x.split(' ') as [Route['method'], string];
    return { method, path, scope: 'read', handler: async (req) => {
      const r = extraRoutes().find((e) => e.method === method && e.path === path);
      if (!r) return { status: 503, body: { detail: 'rater not started' } };
      return r.handler(req);
    } } satisfies Route;
  });
  const http = await startHttpServer({ host: '127.0.0.1', port: 0, routes: [...ledger.routes, ...late], authenticate: (h) => verifier.authenticate(h), log, ready: () => true });
  const call = api(`http://127.0.0.1:${http.port}`, key);
  return {
    pool, nc, ledger, http, call, log,
    async stop() {
      await http.close(1000);
      await ledger.stop();
      await nc.drain().catch(() => {});
      await pool.end();
    },
  };
}

export interface Catalog {
  priceId: string;
  ids: Map<string, string>;
}

/** Customers `ext` each subscribed to one credits plan (count of `api_call`, unit price) with `grant` credits. */
export async function createCatalog(call: LedgerSide['call'], externals: string[], unitAmount: string, grant = 1000): Promise<Catalog> {
  const item = await call('POST', '/v1/items', { name: 'API calls' });
  const metric = await call('POST', '/v1/metrics', { name: 'calls', item_id: item.body.id, sql: "SELECT count(*) FROM events WHERE event_name = 'api_call'" });
  const plan = await call('POST', '/v1/plans', {
    name: 'Credits', currency: 'credits',
    prices: [{ price: { name: 'API call', item_id: item.body.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: unitAmount }, billable_metric_id: metric.body.id } }],
  });
  if (plan.status !== 201) throw new Error(`plan: ${JSON.stringify(plan.body)}`);
  const ids = new Map<string, string>();
  for (const ext of externals) ids.set(ext, await addCustomer(call, ext, plan.body.id as string, grant));
  return { priceId: (plan.body.prices as { id: string }[])[0]!.id, ids };
}

export async function addCustomer(call: LedgerSide['call'], ext: string, planId: string | undefined, grant = 1000): Promise<string> {
  const c = await call('POST', '/v1/customers', { name: ext, email: `${ext}@example.com`, external_customer_id: ext });
  if (c.status !== 201) throw new Error(`customer: ${JSON.stringify(c.body)}`);
  if (planId) {
    const s = await call('POST', '/v1/subscriptions', { external_customer_id: ext, plan_id: planId, start_date: new Date(Date.now() - 30 * 86_400_000).toISOString() });
    if (s.status !== 201) throw new Error(`subscription: ${JSON.stringify(s.body)}`);
  }
  const g = await call('POST', `/v1/customers/external_customer_id/${ext}/credits/ledger_entry`, { entry_type: 'increment', amount: grant, currency: 'credits', description: 'grant' });
  if (g.status !== 201) throw new Error(`grant: ${JSON.stringify(g.body)}`);
  return c.body.id as string;
}

export const event = (ext: string, key: string, t = Date.now() - 60_000, p: AcceptedEvent['p'] = {}): AcceptedEvent => ({ k: key, c: `x:${ext}`, n: 'api_call', t, r: Date.now(), p });

/** Publishes events to their partitions, `perMessage` to a message, in order. */
export async function publish(nc: NatsConnection, config: Config, events: AcceptedEvent[], perMessage = 50): Promise<void> {
  const js = jetstream(nc);
  const n = names(config.namespace);
  const byP = new Map<number, AcceptedEvent[]>();
  for (const e of events) {
    const p = partitionOf(e.c, config.partitions);
    const l = byP.get(p);
    if (l) l.push(e);
    else byP.set(p, [e]);
  }
  for (const [p, list] of byP) {
    for (let i = 0; i < list.length; i += perMessage) {
      await js.publish(`${n.eventsSubjectPrefix}.${p}`, encodeBatch(list.slice(i, i + perMessage)));
    }
  }
}

/** Credits used per customer according to the ledger (granted - balance), as decimal strings. */
export async function ledgerUsed(pool: Pool, ids: Map<string, string>, grant: bigint): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [ext, id] of ids) {
    const b = await balancesOf(pool, id);
    const bal = b.find((x) => x.pricing_unit === 'credits')?.balance ?? grant;
    out.set(ext, (grant - bal).toString());
  }
  return out;
}

/** The environment that gives a child process this exact configuration. */
export function configEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, s] of Object.entries(SETTINGS)) env[s.env] = String(config[k as keyof Config]);
  return env;
}

export interface Child {
  proc: ChildProcess;
  lines: string[];
  /** Resolves with the first stdout JSON line having this field. */
  waitFor(field: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/** Runs rater/test/child-rater.ts in a child process (its own chDB owner). */
export function spawnRater(config: Config, extraEnv: Record<string, string> = {}): Child {
  const script = fileURLToPath(new URL('./child-rater.ts', import.meta.url));
  const proc = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { PATH: process.env.PATH ?? '', ...configEnv(config), ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buf = '';
  const waiters: (() => void)[] = [];
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  return {
    proc, lines, exited,
    async waitFor(field, timeoutMs = 90_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        for (const l of lines) {
          try {
            const o = JSON.parse(l) as Record<string, unknown>;
            if (field in o) return o;
          } catch {
            // a log line
          }
        }
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`child exited (${proc.exitCode ?? proc.signalCode}) before "${field}"; stderr: ${stderr}`);
        if (Date.now() > until) throw new Error(`timeout waiting for "${field}"; stderr: ${stderr}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 200);
        });
      }
    },
  };
}
