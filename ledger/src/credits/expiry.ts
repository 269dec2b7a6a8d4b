// Background jobs of the credit ledger, started by startLedger:
// - expiry: blocks whose expiry time has passed lose what they have left, with a
//   credit_block_expiry entry dated at the expiry time (even when the job runs late). The
//   balance already leaves such blocks out from their expiry time on (balances.ts), so a
//   late job changes no balance; it makes the ledger say so.
// - starting: blocks created to take effect later settle overage when they do (see startDueBlocks).
// - voids: a void initiated on a block whose invoice was open completes once it closes (completeVoids).
// - pruning: applied debit batch ids older than the replay horizon (a batch cannot be
//   redelivered after DEBITS dropped it), and Idempotency-Key records past their TTL.
import type { Logger } from '@drawdown/log';
import { counter } from '@drawdown/metrics';
import { withTx, type Pool } from '@drawdown/pg';
import { toPicos } from './balances';
import { BalanceTracker } from './crossings';
import { completeVoids, insertEntries, settleOverage } from './entries';

const expired = counter('drawdown_ledger_blocks_expired_total', 'Credit blocks expired by the expiry job');
const pruned = counter('drawdown_ledger_pruned_total', 'Rows pruned by the ledger maintenance job', ['table']);

/** Expires due blocks of up to `maxPairs` (customer, unit) pairs, one transaction per pair. */
export async function expireDueBlocks(pool: Pool, maxPairs: number): Promise<number> {
  const due = await pool.query<{ customer_id: string; pricing_unit: string }>(
    `SELECT DISTINCT customer_id, pricing_unit FROM credit_blocks
      WHERE expiry_date IS NOT NULL AND NOT expiry_done AND expiry_date <= now() LIMIT $1`,
    [maxPairs],
  );
  let n = 0;
  for (const row of due.rows) {
    n += await withTx(pool, async (c) => {
      const pair = { customerId: row.customer_id, pricingUnit: row.pricing_unit };
      const t = new BalanceTracker(c, 'expiry');
      await t.lock([pair], false);
      const blocks = await c.query<{ id: string; remaining: string; expiry_date: Date; counted: boolean }>(
        `SELECT id, remaining::text, expiry_date, (status = 'active' AND effective_date <= expiry_date) AS counted
           FROM credit_blocks WHERE customer_id = $1 AND pricing_unit = $2 AND remaining > 0 AND expiry_date <= now()
          ORDER BY expiry_date, id`,
        [pair.customerId, pair.pricingUnit],
      );
      // Blocks already empty at their expiry have nothing to expire: settled without an entry.
      await c.query(
        `UPDATE credit_blocks SET expiry_done = true
          WHERE customer_id = $1 AND pricing_unit = $2 AND expiry_date <= now() AND NOT expiry_done AND remaining = 0`,
        [pair.customerId, pair.pricingUnit],
      );
      if (blocks.rows.length === 0) return 0;
      const now = (await t.current(pair)).balance;
      let bal = now + blocks.rows.filter((b) => b.counted).reduce((a, b) => a + toPicos(b.remaining), 0n);
      t.setBefore(pair, bal);
      for (const b of blocks.rows) {
        const r = toPicos(b.remaining);
        const ending = b.counted ? bal - r : bal;
        await c.query('UPDATE credit_blocks SET remaining = 0, expiry_done = true WHERE id = $1', [b.id]);
        await insertEntries(c, [{ pair, type: 'credit_block_expiry', blockId: b.id, amount: -r, starting: bal, ending, description: 'credits expired', createdAt: b.expiry_date }]);
        bal = ending;
      }
      await t.finish();
      return blocks.rows.length;
    });
  }
  expired.inc({}, n);
  return n;
}

/** Blocks whose effective date has passed since they were created: their credits count now;
 *  they settle overage first, and the balance change goes through the crossing hooks. */
export async function startDueBlocks(pool: Pool, maxPairs: number): Promise<number> {
  const due = await pool.query<{ customer_id: string; pricing_unit: string }>(
    'SELECT DISTINCT customer_id, pricing_unit FROM credit_blocks WHERE starts_pending AND effective_date <= now() LIMIT $1',
    [maxPairs],
  );
  let n = 0;
  for (const row of due.rows) {
    n += await withTx(pool, async (c) => {
      const pair = { customerId: row.customer_id, pricingUnit: row.pricing_unit };
      const t = new BalanceTracker(c, 'block_effective');
      await t.lock([pair], false);
      const blocks = await c.query<{ id: string; remaining: string; counts: boolean }>(
        `SELECT id, remaining::text, (status = 'active' AND (expiry_date IS NULL OR expiry_date > now())) AS counts
           FROM credit_blocks WHERE customer_id = $1 AND pricing_unit = $2 AND starts_pending AND effective_date <= now()
          ORDER BY effective_date, id`,
        [pair.customerId, pair.pricingUnit],
      );
      const counting = blocks.rows.filter((b) => b.counts);
      const now = await t.current(pair);
      // The balance before: without the credits that just started to count.
      t.setBefore(pair, now.balance - counting.reduce((a, b) => a + toPicos(b.remaining), 0n));
      for (const b of counting) await settleOverage(c, t, pair, b.id, toPicos(b.remaining), now.balance);
      await c.query('UPDATE credit_blocks SET starts_pending = false WHERE id = ANY($1::text[])', [blocks.rows.map((b) => b.id)]);
      await t.finish();
      return blocks.rows.length;
    });
  }
  return n;
}

export async function pruneLedger(pool: Pool, opts: { replayHorizonMs: number; idempotencyTtlMs: number }): Promise<{ batches: number; idempotencyKeys: number }> {
  const a = await pool.query("DELETE FROM applied_batches WHERE applied_at < now() - $1 * interval '1 millisecond'", [opts.replayHorizonMs]);
  const b = await pool.query("DELETE FROM idempotency_keys WHERE created_at < now() - $1 * interval '1 millisecond'", [opts.idempotencyTtlMs]);
  pruned.inc({ table: 'applied_batches' }, a.rowCount ?? 0);
  pruned.inc({ table: 'idempotency_keys' }, b.rowCount ?? 0);
  return { batches: a.rowCount ?? 0, idempotencyKeys: b.rowCount ?? 0 };
}

export interface CreditJobs {
  /** One expiry pass and one prune (tests; the timer does the same). */
  runOnce(): Promise<void>;
  stop(): Promise<void>;
}

export function startCreditJobs(opts: { pool: Pool; log: Logger; intervalMs: number; maxPairs: number; replayHorizonMs: number; idempotencyTtlMs: number }): CreditJobs {
  let running: Promise<void> | undefined;
  const runOnce = async () => {
    while (running) await running.catch(() => {});
    running = (async () => {
      await startDueBlocks(opts.pool, opts.maxPairs);
      await expireDueBlocks(opts.pool, opts.maxPairs);
      await completeVoids(opts.pool, opts.maxPairs);
      await pruneLedger(opts.pool, opts);
    })();
    try {
      await running;
    } finally {
      running = undefined;
    }
  };
  const timer = setInterval(() => {
    if (running) return;
    runOnce().catch((err) => opts.log.warn('credit ledger jobs failed; will retry', { err }));
  }, opts.intervalMs);
  timer.unref();
  return {
    runOnce,
    async stop() {
      clearInterval(timer);
      while (running) await running.catch(() => {});
    },
  };
}
