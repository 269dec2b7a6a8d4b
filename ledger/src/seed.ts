// Bulk seeding: many customers, each with one prepaid credit grant and (optionally) an active
// subscription, written set-based (one INSERT ... SELECT FROM generate_series per table) for
// benchmarks and load tests, where creating 100,000 customers through the API would take
// minutes. It writes the rows the API writes for the same steps (POST /v1/customers, an
// increment ledger entry, POST /v1/subscriptions): customer, balance row, active block,
// increment entry, balance snapshot and subscription, and bumps the catalog version once.
// It writes no outbox rows: seeded grants announce nothing (no credit_balance.created
// webhooks). test/seed.test.ts checks the rows against the API path, so this cannot drift from
// the schema unnoticed.
import { bumpCatalogVersion } from '@drawdown/catalog';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { withTx, type Pool } from '@drawdown/pg';
import { invoicingCurrency } from './catalog/plans';
import { DEFAULT_PRICING_UNIT } from './credits/parse';

export interface SeedCustomersOptions {
  /** Customers numbered n in [first, first + count). */
  first?: number;
  count: number;
  /**
   * Id prefixes: customer n gets id `${customer}${n}`, external_customer_id `${external}${n}`,
   * credit block `${block}${n}` (its entry `${block}${n}-grant`, its subscription `${customer}${n}-sub`).
   */
  ids: { customer: string; external: string; block: string };
  /** Credits granted to each customer (a decimal string > 0): one active block, effective a day ago, no expiry. */
  grant: string;
  /** Pricing unit of the grant (default credits). */
  pricingUnit?: string;
  /** Each customer also gets an active subscription to this plan, started two days ago. */
  planId?: string;
  /** Slices seeded in parallel, each in its own transaction on its own connection (default 1). */
  parallel?: number;
}

function check(opts: SeedCustomersOptions): void {
  const int = (v: number | undefined, field: string, min: number) => {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) throw new Error(`seedCustomers: ${field} must be an integer >= ${min}, got ${v}`);
  };
  int(opts.first, 'first', 0);
  int(opts.count, 'count', 0);
  int(opts.parallel, 'parallel', 1);
  for (const k of ['customer', 'external', 'block'] as const) {
    if (typeof opts.ids?.[k] !== 'string' || opts.ids[k] === '') throw new Error(`seedCustomers: ids.${k} must be a non-empty string`);
  }
  let grant: bigint;
  try {
    grant = parseDecimal(opts.grant);
  } catch {
    throw new Error(`seedCustomers: grant must be a decimal string, got ${JSON.stringify(opts.grant)}`);
  }
  if (grant <= 0n) throw new Error('seedCustomers: grant must be above zero');
}

/** Seeds customers [first, first + count); see the file comment for what it writes. */
export async function seedCustomers(pool: Pool, opts: SeedCustomersOptions): Promise<void> {
  check(opts);
  const first = opts.first ?? 0;
  if (opts.count === 0) return;
  const unit = opts.pricingUnit ?? DEFAULT_PRICING_UNIT;
  const grant = formatDecimal(parseDecimal(opts.grant));
  let currency: string | null = null;
  let cadence: string | null = null;
  if (opts.planId) {
    const r = await pool.query<{ currency: string; invoicing_currency: string | null; billing_cadence: string }>('SELECT currency, invoicing_currency, billing_cadence FROM plans WHERE id = $1', [opts.planId]);
    const plan = r.rows[0];
    if (!plan) throw new Error(`seedCustomers: planId: no plan "${opts.planId}"`);
    currency = plan.invoicing_currency ?? (await invoicingCurrency(pool, plan.currency));
    cadence = plan.billing_cadence;
  }
  const parallel = Math.min(opts.parallel ?? 1, opts.count);
  const slices: [number, number][] = [];
  for (let i = 0; i < parallel; i++) {
    const a = first + Math.floor((opts.count * i) / parallel);
    const b = first + Math.floor((opts.count * (i + 1)) / parallel) - 1;
    if (b >= a) slices.push([a, b]);
  }
  const { customer, external, block } = opts.ids;
  await Promise.all(slices.map(([a, b]) => withTx(pool, async (c) => {
    // $1..$2: the slice; $3: customer id prefix; $4: block prefix; $5: pricing unit; $6: grant.
    const series = 'FROM generate_series($1::int, $2::int) AS n';
    await c.query(
      `INSERT INTO customers (id, external_customer_id, name, email, currency)
       SELECT $3 || n, $4 || n, 'Customer ' || n, 'customer' || n || '@seed.invalid', $5::text ${series}`,
      [a, b, customer, external, currency],
    );
    await c.query(`INSERT INTO credit_balances (customer_id, pricing_unit) SELECT $3 || n, $4 ${series}`, [a, b, customer, unit]);
    await c.query(
      `INSERT INTO credit_blocks (id, customer_id, pricing_unit, initial_amount, remaining, effective_date, source, status)
       SELECT $4 || n, $3 || n, $5, $6::numeric, $6::numeric, now() - interval '1 day', 'manual', 'active' ${series}`,
      [a, b, customer, block, unit, grant],
    );
    await c.query(
      `INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount, starting_balance, ending_balance, entry_status)
       SELECT $4 || n || '-grant', $3 || n, $5, 1, 'increment', $4 || n, $6::numeric, 0, $6::numeric, 'committed' ${series}`,
      [a, b, customer, block, unit, grant],
    );
    await c.query(`INSERT INTO balance_snapshots (customer_id, pricing_unit, balance, update_pending) SELECT $3 || n, $4, $5::numeric, false ${series}`, [a, b, customer, unit, grant]);
    if (opts.planId) {
      await c.query(
        `INSERT INTO subscriptions (id, customer_id, plan_id, start_date, billing_cadence) SELECT $3 || n || '-sub', $3 || n, $4, now() - interval '2 days', $5 ${series}`,
        [a, b, customer, opts.planId, cadence],
      );
    }
  })));
  // Customers and subscriptions are part of the catalog snapshot raters load.
  await bumpCatalogVersion(pool);
  await Promise.all(['customers', 'credit_balances', 'credit_blocks', 'ledger_entries', 'balance_snapshots', ...(opts.planId ? ['subscriptions'] : [])].map((t) => pool.query(`ANALYZE ${t}`)));
}
