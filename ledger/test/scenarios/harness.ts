// Scenario harness: a customer's months under a controlled clock, on real Postgres (and chDB
// where usage is priced in fiat or non-decomposable).
//
// The clock: the scenario database gets a `public.now()` that reads `test_clock` (falling back
// to the real time) and a search_path that puts `public` before `pg_catalog`, so every `now()`
// the ledger's SQL evaluates (block effective and expiry dates, top-up active_from) is the
// scenario's time; the billing code reads the same time through setBillingDefaults({now}).
// Column defaults (created_at) were bound to pg_catalog.now() by the migrations and stay real:
// snapshots replace them.
import { readFileSync } from 'node:fs';
import { createPool, ensureDatabase, migrate, type Pool } from '@drawdown/pg';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { LEDGER_MIGRATIONS, applyDebitBatches, setBillingDefaults } from '../../src/index';
import { newId } from '../../src/ids';
import { invoiceDtoById } from '../../src/invoices/invoices';
import { balancesOf } from '../../src/credits/queries';

export interface Scenario {
  env: TestEnv;
  pool: Pool;
  now(): Date;
  setClock(iso: string): Promise<void>;
  close(): Promise<void>;
}

export async function openScenario(overrides: Record<string, string> = {}): Promise<Scenario> {
  const env = testEnv(overrides);
  await ensureDatabase(env.config.databaseUrl);
  const boot = createPool(env.config.databaseUrl, { max: 2 });
  await migrate(boot, [LEDGER_MIGRATIONS]);
  const db = new URL(env.config.databaseUrl).pathname.slice(1);
  await boot.query(`CREATE TABLE test_clock (singleton boolean PRIMARY KEY DEFAULT true, t timestamptz)`);
  await boot.query(`INSERT INTO test_clock (t) VALUES (NULL)`);
  await boot.query(`CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT coalesce((SELECT t FROM public.test_clock), pg_catalog.now()) $$`);
  await boot.query(`ALTER DATABASE "${db}" SET search_path = public, pg_catalog`);
  await boot.end();
  const pool = createPool(env.config.databaseUrl, { max: 6 });
  let clock = new Date();
  setBillingDefaults({ currency: 'USD', netTerms: 0, autoIssue: true, now: () => clock });
  return {
    env,
    pool,
    now: () => clock,
    async setClock(iso: string) {
      clock = new Date(iso);
      await pool.query('UPDATE test_clock SET t = $1', [clock]);
    },
    async close() {
      await pool.end();
      setBillingDefaults({ now: () => new Date() });
      await env.cleanup();
    },
  };
}

// ---- catalog rows, written directly (the catalog API is another domain's; these are its tables)

export async function customer(pool: Pool, ext: string, extra: { auto_issuance?: boolean; net_terms?: number; auto_collection?: boolean; timezone?: string } = {}): Promise<{ id: string; external_customer_id: string }> {
  const id = newId();
  await pool.query(
    // auto_collection is NOT NULL (default true, catalog migration): an absent choice means off here, as the scenarios were written.
    `INSERT INTO customers (id, external_customer_id, name, email, auto_issuance, net_terms, auto_collection, timezone)
     VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, false), coalesce($8, 'UTC'))`,
    [id, ext, `Customer ${ext}`, `${ext}@example.com`, extra.auto_issuance ?? null, extra.net_terms ?? null, extra.auto_collection ?? null, extra.timezone ?? null],
  );
  return { id, external_customer_id: ext };
}

export interface PriceSpec {
  name: string;
  currency: string;
  model_type: string;
  config: Record<string, unknown>;
  metric?: { event_name: string; aggregation: string; property?: string };
}

export async function planWith(pool: Pool, currency: string, prices: PriceSpec[], netTerms: number | null = null): Promise<{ planId: string; priceIds: string[] }> {
  const item = newId();
  await pool.query('INSERT INTO items (id, name) VALUES ($1, $2)', [item, 'usage']);
  const planId = newId();
  await pool.query('INSERT INTO plans (id, name, currency, net_terms) VALUES ($1, $2, $3, $4)', [planId, 'plan', currency, netTerms]);
  const priceIds: string[] = [];
  for (const p of prices) {
    let metricId: string | null = null;
    if (p.metric) {
      metricId = newId();
      await pool.query('INSERT INTO metrics (id, name, item_id, sql, definition) VALUES ($1, $2, $3, $4, $5)',
        [metricId, p.name, item, '-- scenario', JSON.stringify({ ...p.metric, filters: [] })]);
    }
    const id = newId();
    await pool.query('INSERT INTO prices (id, lineage_id, plan_id, item_id, metric_id, name, model_type, cadence, currency, config) VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $9)',
      [id, planId, item, metricId, p.name, p.model_type, 'monthly', p.currency, JSON.stringify(p.config)]);
    priceIds.push(id);
  }
  return { planId, priceIds };
}

export async function subscribe(pool: Pool, customerId: string, planId: string, start: string): Promise<string> {
  const id = newId();
  await pool.query('INSERT INTO subscriptions (id, customer_id, plan_id, start_date) VALUES ($1, $2, $3, $4)', [id, customerId, planId, start]);
  return id;
}

let batchSeq = 0;
/** Usage in credits drawn down as the ledger's debit consumer would (one batch). */
export async function debit(pool: Pool, customerId: string, priceId: string, day: string, credits: string, id = `s:${++batchSeq}`): Promise<void> {
  const amount = parseDecimal(credits);
  await applyDebitBatches(pool, [{ id, partition: 0, firstSeq: batchSeq, lastSeq: batchSeq, receivedAtMax: 0, lines: [{ customerId, pricingUnit: 'credits', priceId, day, amountPicos: amount.toString(), quantityPicos: amount.toString(), events: 1 }] }]);
}

// ---- what a snapshot holds

export async function ledgerOf(pool: Pool, customerId: string): Promise<Record<string, unknown>[]> {
  const r = await pool.query(
    `SELECT e.ledger_sequence_number AS seq, e.entry_type, e.entry_status, e.amount::text, e.starting_balance::text, e.ending_balance::text,
            e.description, e.block_id, b.source AS block_source, b.status AS block_status, b.expiry_date
       FROM ledger_entries e LEFT JOIN credit_blocks b ON b.id = e.block_id
      WHERE e.customer_id = $1 ORDER BY e.pricing_unit, e.ledger_sequence_number`,
    [customerId],
  );
  const d = (s: string) => formatDecimal(parseDecimal(s));
  return r.rows.map((x) => ({ ...x, seq: Number(x.seq), amount: d(x.amount), starting_balance: d(x.starting_balance), ending_balance: d(x.ending_balance), expiry_date: x.expiry_date ? (x.expiry_date as Date).toISOString() : null }));
}

export async function balanceOf(pool: Pool, customerId: string): Promise<string> {
  const b = (await balancesOf(pool, customerId)).find((x) => x.pricing_unit === 'credits');
  return formatDecimal(b?.balance ?? 0n);
}

export async function invoicesOf(pool: Pool, customerId: string): Promise<Record<string, unknown>[]> {
  const r = await pool.query<{ id: string }>('SELECT id FROM invoices WHERE customer_id = $1 ORDER BY invoice_date, invoice_number', [customerId]);
  const out = [];
  for (const row of r.rows) out.push(compactInvoice(await invoiceDtoById(pool, row.id)));
  return out;
}

/** The fields a reviewer reads; the always-empty Orb fields are left out of snapshots. */
export function compactInvoice(inv: Record<string, unknown>): Record<string, unknown> {
  const keep = ['id', 'invoice_number', 'invoice_kind', 'status', 'currency', 'subtotal', 'total', 'amount_due', 'invoice_date', 'due_date', 'issued_at', 'paid_at', 'voided_at', 'memo', 'period_start', 'period_end', 'will_auto_issue', 'auto_collection', 'line_items'];
  const out: Record<string, unknown> = {};
  for (const k of keep) out[k] = inv[k];
  out.line_items = (inv.line_items as Record<string, unknown>[]).map((l) => ({ name: l.name, line_type: l.line_type, quantity: l.quantity, unit_amount: l.unit_amount, amount: l.amount, pricing_unit: l.pricing_unit, start_date: l.start_date, end_date: l.end_date }));
  return out;
}

/**
 * Stable snapshot text: every database id becomes <id:N> in order of first appearance,
 * real-time `created_at` values become <created_at> and invoice numbers <invoice_number>. Bigints are written as exact decimals.
 */
export async function normalize(pool: Pool, value: unknown): Promise<string> {
  const ids = new Set<string>();
  for (const t of ['customers', 'invoices', 'invoice_line_items', 'credit_blocks', 'ledger_entries', 'subscriptions', 'prices', 'plans', 'top_ups', 'top_up_intents', 'metrics', 'items']) {
    for (const r of (await pool.query<{ id: string }>(`SELECT id FROM ${t}`)).rows) ids.add(r.id);
  }
  const seen = new Map<string, string>();
  const walk = (v: unknown, key?: string): unknown => {
    if (typeof v === 'bigint') return formatDecimal(v);
    if (typeof v === 'string') {
      if (key === 'created_at') return '<created_at>';
      // Invoice numbers count across the scenarios of a file; their order is not the point.
      if (key === 'invoice_number' && v !== '') return '<invoice_number>';
      const name = (id: string) => {
        if (!seen.has(id)) seen.set(id, `<id:${seen.size + 1}>`);
        return seen.get(id)!;
      };
      if (ids.has(v)) return name(v);
      if (v.startsWith('upcoming_') && ids.has(v.slice(9))) return `upcoming_${name(v.slice(9))}`;
      return v;
    }
    if (Array.isArray(v)) return v.map((x) => walk(x));
    if (v && typeof v === 'object' && !(v instanceof Date)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
    if (v instanceof Date) return v.toISOString();
    return v;
  };
  return JSON.stringify(walk(value), null, 2) + '\n';
}

export function readSnapshot(path: string): string {
  return readFileSync(path, 'utf8');
}
