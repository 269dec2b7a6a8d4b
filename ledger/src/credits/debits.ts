// Applying debit batches: one transaction for many batches and customers, set-based SQL,
// idempotent by batch id. Usage is drawn from blocks in draw-down order (soonest expiry,
// then lowest cost basis, then oldest) by overlapping cumulative intervals: each debit line
// covers [d_start, d_end) of its customer's usage, each block [b_start, b_end) of its
// customer's available credits; what a line takes from a block is their overlap. Usage
// beyond every block is overage.
import type { DebitBatch } from '@drawdown/debits';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { withTx, type Pool, type PoolClient } from '@drawdown/pg';
import { newId } from '../ids';
import { lockBalances, readBalances, balanceKey } from './balances';
import { writeOutbox } from '../outbox/outbox';
import { evaluateTopUps } from '../topups/topups';

export interface ApplyResult {
  applied: string[];
  skipped: string[];
  customers: number;
  depleted: number;
}

interface Line {
  customerId: string;
  pricingUnit: string;
  priceId: string;
  day: string;
  amount: bigint;
}

export async function applyDebitBatches(pool: Pool, batches: DebitBatch[]): Promise<ApplyResult> {
  return withTx(pool, (c) => applyInTx(c, batches));
}

async function applyInTx(c: PoolClient, batches: DebitBatch[]): Promise<ApplyResult> {
  const ids = batches.map((b) => b.id);
  const fresh = await c.query<{ batch_id: string }>(
    'INSERT INTO applied_batches (batch_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING batch_id',
    [ids],
  );
  const freshIds = new Set(fresh.rows.map((r) => r.batch_id));
  const skipped = ids.filter((id) => !freshIds.has(id));

  // Merge lines of the fresh batches per (customer, unit, price, day).
  const merged = new Map<string, Line>();
  for (const b of batches) {
    if (!freshIds.has(b.id)) continue;
    freshIds.delete(b.id); // a batch id twice in one call counts once
    for (const l of b.lines) {
      const key = `${l.customerId}\u0000${l.pricingUnit}\u0000${l.priceId}\u0000${l.day}`;
      const amount = BigInt(l.amountPicos);
      const cur = merged.get(key);
      if (cur) cur.amount += amount;
      else merged.set(key, { customerId: l.customerId, pricingUnit: l.pricingUnit, priceId: l.priceId, day: l.day, amount });
    }
  }
  const lines = [...merged.values()].filter((l) => l.amount > 0n);
  const applied = ids.filter((id) => !skipped.includes(id));
  if (lines.length === 0) return { applied, skipped, customers: 0, depleted: 0 };

  const pairs = new Map<string, { customerId: string; pricingUnit: string }>();
  for (const l of lines) pairs.set(balanceKey(l.customerId, l.pricingUnit), { customerId: l.customerId, pricingUnit: l.pricingUnit });
  const pairList = [...pairs.values()];
  await lockBalances(c, pairList, true);
  const before = await readBalances(c, pairList);

  const cols = {
    customer: lines.map((l) => l.customerId),
    unit: lines.map((l) => l.pricingUnit),
    price: lines.map((l) => l.priceId),
    day: lines.map((l) => l.day),
    amount: lines.map((l) => formatDecimal(l.amount)),
  };

  // Draw down: one statement computes every line's take from every block.
  const takes = await c.query<{ customer_id: string; pricing_unit: string; price_id: string; day: string; block_id: string | null; take: string }>(
    `WITH d AS (
       SELECT customer_id, pricing_unit, price_id, day, amount,
              sum(amount) OVER w - amount AS d_start, sum(amount) OVER w AS d_end
         FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::numeric[]) AS t(customer_id, pricing_unit, price_id, day, amount)
       WINDOW w AS (PARTITION BY customer_id, pricing_unit ORDER BY day, price_id ROWS UNBOUNDED PRECEDING)
     ), b AS (
       SELECT k.id, k.customer_id, k.pricing_unit,
              sum(k.remaining) OVER w - k.remaining AS b_start, sum(k.remaining) OVER w AS b_end
         FROM credit_blocks k
        WHERE (k.customer_id, k.pricing_unit) IN (SELECT DISTINCT customer_id, pricing_unit FROM d)
          AND k.remaining > 0 AND k.status = 'active' AND k.effective_date <= now()
          AND (k.expiry_date IS NULL OR k.expiry_date > now())
       WINDOW w AS (PARTITION BY k.customer_id, k.pricing_unit
                    ORDER BY k.expiry_date ASC NULLS LAST, coalesce(k.per_unit_cost_basis, 0), k.created_at, k.id
                    ROWS UNBOUNDED PRECEDING)
     ), total AS (
       SELECT customer_id, pricing_unit, max(b_end) AS available FROM b GROUP BY 1, 2
     )
     SELECT d.customer_id, d.pricing_unit, d.price_id, d.day::text AS day, b.id AS block_id,
            (least(d.d_end, b.b_end) - greatest(d.d_start, b.b_start))::text AS take
       FROM d JOIN b ON b.customer_id = d.customer_id AND b.pricing_unit = d.pricing_unit
                    AND b.b_start < d.d_end AND d.d_start < b.b_end
     UNION ALL
     SELECT d.customer_id, d.pricing_unit, d.price_id, d.day::text, NULL,
            (d.d_end - greatest(d.d_start, coalesce(t.available, 0)))::text
       FROM d LEFT JOIN total t ON t.customer_id = d.customer_id AND t.pricing_unit = d.pricing_unit
      WHERE d.d_end > coalesce(t.available, 0)`,
    [cols.customer, cols.unit, cols.price, cols.day, cols.amount],
  );

  const fromBlocks = takes.rows.filter((r) => r.block_id !== null);
  const overage = takes.rows.filter((r) => r.block_id === null);

  if (fromBlocks.length > 0) {
    await c.query(
      `UPDATE credit_blocks k SET remaining = k.remaining - s.take
         FROM (SELECT block_id, sum(take) AS take FROM unnest($1::text[], $2::numeric[]) AS t(block_id, take) GROUP BY block_id) s
        WHERE k.id = s.block_id`,
      [fromBlocks.map((r) => r.block_id), fromBlocks.map((r) => r.take)],
    );
  }
  if (overage.length > 0) {
    await c.query(
      `INSERT INTO usage_overage (customer_id, pricing_unit, price_id, usage_day, amount)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::numeric[])
       ON CONFLICT (customer_id, pricing_unit, price_id, usage_day) DO UPDATE SET amount = usage_overage.amount + excluded.amount`,
      [overage.map((r) => r.customer_id), overage.map((r) => r.pricing_unit), overage.map((r) => r.price_id), overage.map((r) => r.day), overage.map((r) => r.take)],
    );
    await c.query(
      `UPDATE credit_balances cb SET overage = cb.overage + s.amount, updated_at = now()
         FROM (SELECT customer_id, pricing_unit, sum(amount) AS amount
                 FROM unnest($1::text[], $2::text[], $3::numeric[]) AS t(customer_id, pricing_unit, amount) GROUP BY 1, 2) s
        WHERE cb.customer_id = s.customer_id AND cb.pricing_unit = s.pricing_unit`,
      [overage.map((r) => r.customer_id), overage.map((r) => r.pricing_unit), overage.map((r) => r.take)],
    );
  }

  const after = await readBalances(c, pairList);
  // Threshold top-ups: decided here, under the balance row locks (issue 8).
  await evaluateTopUps(c, before, after);

  // Usage decrements, grouped per customer, block, price and day: grow the day's entry, or
  // start it with the next sequence numbers of the customer's ledger.
  if (fromBlocks.length > 0) {
    const endBalance = fromBlocks.map((r) => formatDecimal(after.get(balanceKey(r.customer_id, r.pricing_unit))!.balance));
    const startBalance = fromBlocks.map((r) => formatDecimal(before.get(balanceKey(r.customer_id, r.pricing_unit))!.balance));
    await c.query(
      `WITH t AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::numeric[], $7::numeric[], $8::numeric[], $9::text[])
           AS t(customer_id, pricing_unit, block_id, price_id, usage_day, take, start_balance, end_balance, new_id)
       ), upd AS (
         UPDATE ledger_entries e SET amount = e.amount + t.take, ending_balance = t.end_balance
           FROM t
          WHERE e.entry_type = 'decrement' AND e.customer_id = t.customer_id AND e.pricing_unit = t.pricing_unit
            AND e.block_id = t.block_id AND e.price_id = t.price_id AND e.usage_day = t.usage_day
         RETURNING e.customer_id, e.pricing_unit, e.block_id, e.price_id, e.usage_day
       ), ins AS (
         SELECT t.*, row_number() OVER (PARTITION BY t.customer_id, t.pricing_unit ORDER BY t.usage_day, t.price_id, t.block_id) AS n
           FROM t WHERE NOT EXISTS (
             SELECT 1 FROM upd WHERE upd.customer_id = t.customer_id AND upd.pricing_unit = t.pricing_unit
               AND upd.block_id = t.block_id AND upd.price_id = t.price_id AND upd.usage_day = t.usage_day)
       ), seq AS (
         UPDATE credit_balances cb SET next_entry_seq = cb.next_entry_seq + x.cnt
           FROM (SELECT customer_id, pricing_unit, count(*) AS cnt FROM ins GROUP BY 1, 2) x
          WHERE cb.customer_id = x.customer_id AND cb.pricing_unit = x.pricing_unit
         RETURNING cb.customer_id, cb.pricing_unit, cb.next_entry_seq - x.cnt AS first_seq
       )
       INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount,
                                   starting_balance, ending_balance, description, price_id, usage_day)
       SELECT ins.new_id, ins.customer_id, ins.pricing_unit, seq.first_seq + ins.n - 1, 'decrement', ins.block_id, ins.take,
              ins.start_balance, ins.end_balance, 'usage', ins.price_id, ins.usage_day
         FROM ins JOIN seq ON seq.customer_id = ins.customer_id AND seq.pricing_unit = ins.pricing_unit`,
      [
        fromBlocks.map((r) => r.customer_id), fromBlocks.map((r) => r.pricing_unit), fromBlocks.map((r) => r.block_id),
        fromBlocks.map((r) => r.price_id), fromBlocks.map((r) => r.day), fromBlocks.map((r) => r.take),
        startBalance, endBalance, fromBlocks.map(() => newId()),
      ],
    );
  }

  // Balance crossings: depleted when a positive balance reaches zero or below.
  let depleted = 0;
  const depletedRows: { customerId: string; pricingUnit: string; balance: bigint }[] = [];
  for (const [key, b] of after) {
    const was = before.get(key)!;
    if (was.balance > 0n && b.balance <= 0n) {
      depletedRows.push({ customerId: b.customerId, pricingUnit: b.pricingUnit, balance: b.balance });
    }
  }
  if (depletedRows.length > 0) {
    depleted = depletedRows.length;
    await c.query(
      `UPDATE credit_balances cb SET depleted = true FROM unnest($1::text[], $2::text[]) AS t(customer_id, pricing_unit)
        WHERE cb.customer_id = t.customer_id AND cb.pricing_unit = t.pricing_unit`,
      [depletedRows.map((r) => r.customerId), depletedRows.map((r) => r.pricingUnit)],
    );
    await writeOutbox(
      c,
      depletedRows.map((r) => ({
        topic: 'customer.credit_balance_depleted',
        customerId: r.customerId,
        payload: { customer_id: r.customerId, pricing_unit: r.pricingUnit, balance: formatDecimal(r.balance) },
      })),
    );
  }
  return { applied, skipped, customers: pairList.length, depleted };
}

export { parseDecimal };
