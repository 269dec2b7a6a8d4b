// Credit blocks bought with require_successful_payment wait in status 'pending_payment'
// (not in the balance) until their invoice is paid; then they become active and, like any
// increment, first fill the customer's overage (credits/entries.ts activateBlockInTx, which
// runs the crossing hooks). A voided invoice voids its pending blocks.
import type { PoolClient, Queryable } from '@drawdown/pg';
import { activateBlockInTx } from '../credits/entries';

export async function activatePendingBlocks(db: Queryable, invoiceId: string, _paidAt: Date): Promise<number> {
  // Always called inside a transaction (withTx hands a PoolClient).
  const c = db as PoolClient;
  const blocks = await c.query<{ id: string }>(
    "SELECT id FROM credit_blocks WHERE invoice_id = $1 AND status = 'pending_payment' ORDER BY id",
    [invoiceId],
  );
  for (const b of blocks.rows) await activateBlockInTx(c, b.id);
  return blocks.rows.length;
}

/** The block never counted in the balance, so voiding it changes no balance; the ledger keeps its increment entry (append-only). */
export async function voidPendingBlocks(c: Queryable, invoiceId: string): Promise<number> {
  const r = await c.query("UPDATE credit_blocks SET status = 'void', remaining = 0 WHERE invoice_id = $1 AND status = 'pending_payment' RETURNING id", [invoiceId]);
  return r.rowCount ?? 0;
}
