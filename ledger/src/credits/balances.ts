// Balances: per (customer, pricing unit), the sum of what active, effective, unexpired blocks
// have left, minus the overage (usage that found no block). Every change to a balance first
// locks its credit_balances row, always in (customer_id, pricing_unit) order, so concurrent
// writers queue instead of deadlocking.
import type { Queryable } from '@drawdown/pg';

export interface Balance {
  customerId: string;
  pricingUnit: string;
  available: bigint;
  overage: bigint;
  balance: bigint;
}

export const balanceKey = (customerId: string, pricingUnit: string) => `${customerId}\u0000${pricingUnit}`;

/** Creates missing balance rows and locks all of them in a fixed order; returns each locked
 *  row's overage (the row as locked: current, whatever committed before the lock was granted). */
export async function lockBalances(db: Queryable, pairs: { customerId: string; pricingUnit: string }[], create: boolean): Promise<Map<string, bigint>> {
  // The rows are locked in the order of the statements' ORDER BY (the lock is taken above the
  // sort), so the list itself need not be sorted.
  const customers = pgTextArray(pairs.map((p) => p.customerId));
  const units = pgTextArray(pairs.map((p) => p.pricingUnit));
  const lock = () =>
    db.query<{ customer_id: string; pricing_unit: string; overage: string }>(
      `SELECT cb.customer_id, cb.pricing_unit, cb.overage::text FROM credit_balances cb JOIN unnest($1::text[], $2::text[]) AS t(customer_id, pricing_unit)
          ON cb.customer_id = t.customer_id AND cb.pricing_unit = t.pricing_unit
        ORDER BY cb.customer_id, cb.pricing_unit FOR UPDATE OF cb`,
      [customers, units],
    );
  let r = await lock();
  if (create && r.rows.length < pairs.length) {
    // Some rows are missing (a customer's first use of a unit): insert them, then lock the whole
    // list again in the same order (rows already held are no wait).
    await insertMissingBalances(db, customers, units);
    r = await lock();
  }
  return new Map(r.rows.map((x) => [balanceKey(x.customer_id, x.pricing_unit), toPicos(x.overage)]));
}

/** Like `lockBalances`, for callers that read the overage in their next statement anyway:
 *  locks the same rows in the same order, but returns only the locked rows whose overage is
 *  not zero (most have none), so a large lock list does not travel back row by row. */
export async function lockBalancesSparse(db: Queryable, pairs: { customerId: string; pricingUnit: string }[], create: boolean): Promise<Map<string, bigint>> {
  const customers = pgTextArray(pairs.map((p) => p.customerId));
  const units = pgTextArray(pairs.map((p) => p.pricingUnit));
  // MATERIALIZED: the locking SELECT runs once, in full (the count reads every row), in the
  // order of its ORDER BY, as lockBalances' statement does. The row with NULL names is the count.
  const lock = () =>
    db.query<{ customer_id: string | null; pricing_unit: string | null; overage: string }>(
      `WITH l AS MATERIALIZED (
         SELECT cb.customer_id, cb.pricing_unit, cb.overage FROM credit_balances cb JOIN unnest($1::text[], $2::text[]) AS t(customer_id, pricing_unit)
             ON cb.customer_id = t.customer_id AND cb.pricing_unit = t.pricing_unit
           ORDER BY cb.customer_id, cb.pricing_unit FOR UPDATE OF cb
       )
       SELECT NULL AS customer_id, NULL AS pricing_unit, count(*)::text AS overage FROM l
       UNION ALL
       SELECT customer_id, pricing_unit, overage::text FROM l WHERE overage <> 0`,
      [customers, units],
    );
  const locked = (rows: { customer_id: string | null; overage: string }[]) => Number(rows.find((x) => x.customer_id === null)!.overage);
  let r = await lock();
  if (create && locked(r.rows) < pairs.length) {
    await insertMissingBalances(db, customers, units);
    r = await lock();
  }
  const out = new Map<string, bigint>();
  for (const x of r.rows) if (x.customer_id !== null) out.set(balanceKey(x.customer_id, x.pricing_unit!), toPicos(x.overage));
  return out;
}

/** Inserts the credit_balances rows missing among the pairs (a customer's first use of a unit).
 *  Rows for unknown customers would fail the foreign key; the rater only debits known customers. */
async function insertMissingBalances(db: Queryable, customers: string | readonly string[], units: string | readonly string[]): Promise<void> {
  await db.query(
    `INSERT INTO credit_balances (customer_id, pricing_unit)
     SELECT t.customer_id, t.pricing_unit FROM unnest($1::text[], $2::text[]) AS t(customer_id, pricing_unit)
      WHERE NOT EXISTS (SELECT 1 FROM credit_balances cb WHERE cb.customer_id = t.customer_id AND cb.pricing_unit = t.pricing_unit)
      ORDER BY 1, 2 ON CONFLICT DO NOTHING`,
    [customers, units],
  );
}

export async function readBalances(db: Queryable, pairs: { customerId: string; pricingUnit: string }[]): Promise<Map<string, Balance>> {
  const r = await db.query<{ customer_id: string; pricing_unit: string; overage: string; available: string }>(
    `SELECT cb.customer_id, cb.pricing_unit, cb.overage::text,
            coalesce((SELECT sum(k.remaining) FROM credit_blocks k
                       WHERE k.customer_id = cb.customer_id AND k.pricing_unit = cb.pricing_unit
                         AND k.remaining > 0 AND k.status = 'active' AND k.effective_date <= now()
                         AND (k.expiry_date IS NULL OR k.expiry_date > now())), 0)::text AS available
       FROM credit_balances cb JOIN unnest($1::text[], $2::text[]) AS t(customer_id, pricing_unit)
         ON cb.customer_id = t.customer_id AND cb.pricing_unit = t.pricing_unit`,
    [pgTextArray(pairs.map((p) => p.customerId)), pgTextArray(pairs.map((p) => p.pricingUnit))],
  );
  const out = new Map<string, Balance>();
  for (const row of r.rows) {
    const available = toPicos(row.available);
    const overage = toPicos(row.overage);
    out.set(balanceKey(row.customer_id, row.pricing_unit), { customerId: row.customer_id, pricingUnit: row.pricing_unit, available, overage, balance: available - overage });
  }
  return out;
}

/** numeric(38,12) text from Postgres -> picos. */
export function toPicos(text: string): bigint {
  // numeric(38,12) columns and their sums print exactly 12 decimals: drop the point.
  const dot = text.indexOf('.');
  if (dot >= 0 && text.length - dot === 13) return BigInt(text.slice(0, dot) + text.slice(dot + 1));
  const neg = text.startsWith('-');
  const t = neg ? text.slice(1) : text;
  const [int = '0', frac = ''] = t.split('.');
  const v = BigInt(int + frac.padEnd(12, '0').slice(0, 12));
  return neg ? -v : v;
}

/** A Postgres array literal of text values, built in one join: node-postgres escapes each
 *  element on its own, which costs more than the query for the debit path's large arrays.
 *  Values holding a quote or backslash take node-postgres' own serialization. */
export function pgTextArray(values: readonly string[]): string | readonly string[] {
  if (values.length === 0) return '{}';
  // Test the values, not the literal: its separators hold quotes.
  if (values.some((v) => v.includes('"') || v.includes('\\'))) return values;
  return `{"${values.join('","')}"}`;
}
