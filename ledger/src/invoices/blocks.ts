// Credit blocks bought with require_successful_payment wait in status 'pending_payment'
// (not in the balance) until their invoice is paid; then they become active and, like any
// increment, first fill the customer's overage. A voided invoice voids its pending blocks.
import { formatDecimal, min } from '@drawdown/money';
import type { Queryable } from '@drawdown/pg';
import { newId } from '../ids';
import { balanceKey, lockBalances, readBalances, toPicos } from '../credits/balances';
import { writeOutbox } from '../outbox/outbox';

export async function activatePendingBlocks(c: Queryable, invoiceId: string, _paidAt: Date): Promise<number> {
  const blocks = await c.query<{ id: string; customer_id: string; pricing_unit: string; remaining: string }>(
    "SELECT id, customer_id, pricing_unit, remaining::text FROM credit_blocks WHERE invoice_id = $1 AND status = 'pending_payment' ORDER BY id",
    [invoiceId],
  );
  for (const b of blocks.rows) {
    const pair = { customerId: b.customer_id, pricingUnit: b.pricing_unit };
    await lockBalances(c, [pair], true);
    const before = (await readBalances(c, [pair])).get(balanceKey(b.customer_id, b.pricing_unit))!;
    const amount = toPicos(b.remaining);
    const fill = min(before.overage, amount);
    await c.query("UPDATE credit_blocks SET status = 'active', remaining = remaining - $2 WHERE id = $1", [b.id, formatDecimal(fill)]);
    const ending = before.balance + amount;
    // The pending increment entry is committed now; its balances are those at payment.
    await c.query(
      "UPDATE ledger_entries SET entry_status = 'committed', starting_balance = $2, ending_balance = $3 WHERE block_id = $1 AND entry_type = 'increment' AND entry_status = 'pending'",
      [b.id, formatDecimal(before.balance), formatDecimal(ending)],
    );
    if (fill > 0n) {
      await c.query('UPDATE credit_balances SET overage = overage - $3 WHERE customer_id = $1 AND pricing_unit = $2', [b.customer_id, b.pricing_unit, formatDecimal(fill)]);
      const seq = await c.query<{ seq: string }>(
        'UPDATE credit_balances SET next_entry_seq = next_entry_seq + 1 WHERE customer_id = $1 AND pricing_unit = $2 RETURNING (next_entry_seq - 1)::text AS seq',
        [b.customer_id, b.pricing_unit],
      );
      await c.query(
        `INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount, starting_balance, ending_balance, description)
         VALUES ($1, $2, $3, $4, 'decrement', $5, $6, $7, $7, 'earlier overage settled from this block')`,
        [newId(), b.customer_id, b.pricing_unit, Number(seq.rows[0]!.seq), b.id, formatDecimal(fill), formatDecimal(ending)],
      );
    }
    if (before.balance <= 0n && ending > 0n) {
      await c.query('UPDATE credit_balances SET depleted = false WHERE customer_id = $1 AND pricing_unit = $2', [b.customer_id, b.pricing_unit]);
    }
    await writeOutbox(c, [{ topic: 'credit_balance.updated', customerId: b.customer_id, payload: { customer_id: b.customer_id, credit_block_id: b.id, pricing_unit: b.pricing_unit, reason: 'payment_received', balance: formatDecimal(ending) } }]);
  }
  return blocks.rows.length;
}

export async function voidPendingBlocks(c: Queryable, invoiceId: string): Promise<number> {
  const r = await c.query("UPDATE credit_blocks SET status = 'void', remaining = 0 WHERE invoice_id = $1 AND status = 'pending_payment' RETURNING id", [invoiceId]);
  if ((r.rowCount ?? 0) > 0) {
    await c.query("UPDATE ledger_entries SET entry_status = 'void' WHERE block_id = ANY($1::text[]) AND entry_type = 'increment' AND entry_status = 'pending'", [r.rows.map((x) => x.id as string)]);
  }
  return r.rowCount ?? 0;
}
