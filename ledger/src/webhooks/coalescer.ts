// credit_balance.updated, coalesced: every balance change marks the (customer, pricing unit)
// snapshot pending (ledger/src/alerts/evaluate.ts); this worker emits one outbox row per
// pending pair whose last emission is at least `intervalMs` old, with the latest balance. So a
// customer's first consumption is announced at once and later ones at most once per interval.
// Ordering with the ledger: both sides lock the snapshot row before writing outbox rows, so a
// pair's outbox rows are in commit order.
import type { Logger } from '@drawdown/log';
import { counter } from '@drawdown/metrics';
import { withTx, type Pool } from '@drawdown/pg';
import { formatDecimal } from '@drawdown/money';
import { writeOutbox } from '../outbox/outbox';
import { toPicos } from '../credits/balances';

const emitted = counter('drawdown_balance_updated_emitted_total', 'credit_balance.updated outbox rows written');

/** Most pairs emitted per transaction. */
const BATCH = 1000;
/** balance_feed rows (migrations 310) older than this are pruned, at most every PRUNE_EVERY_MS. */
const FEED_HORIZON_MS = 3_600_000;
const PRUNE_EVERY_MS = 60_000;

export interface Coalescer {
  /** Emits what is due now; returns how many (tests). */
  tick(): Promise<number>;
  stop(): Promise<void>;
}

export function startBalanceUpdatedCoalescer(opts: { pool: Pool; intervalMs: number; log: Logger; autoStart?: boolean }): Coalescer {
  const tickMs = Math.min(5_000, Math.max(50, Math.floor(opts.intervalMs / 4)));
  let stopped = false;
  let running: Promise<number> | undefined;
  let lastPrune = 0;

  const once = () =>
    withTx(opts.pool, async (c) => {
      const r = await c.query<{ customer_id: string; pricing_unit: string; balance: string; changed_at: Date }>(
        `WITH due AS (
           SELECT customer_id, pricing_unit FROM balance_snapshots
            WHERE update_pending AND (update_emitted_at IS NULL OR update_emitted_at <= now() - $1 * interval '1 millisecond')
            ORDER BY customer_id, pricing_unit LIMIT $2 FOR UPDATE SKIP LOCKED
         )
         UPDATE balance_snapshots s SET update_pending = false, update_emitted_at = now()
           FROM due WHERE s.customer_id = due.customer_id AND s.pricing_unit = due.pricing_unit
         RETURNING s.customer_id, s.pricing_unit, s.balance::text, s.changed_at`,
        [opts.intervalMs, BATCH],
      );
      r.rows.sort((a, b) => (a.customer_id < b.customer_id ? -1 : 1));
      await writeOutbox(c, r.rows.map((x) => ({
        topic: 'credit_balance.updated',
        customerId: x.customer_id,
        payload: { customer_id: x.customer_id, pricing_unit: x.pricing_unit, balance: formatDecimal(toPicos(x.balance)), balance_as_of: x.changed_at.toISOString() },
      })));
      emitted.inc(r.rows.length);
      // The access cache's balance feed keeps FEED_HORIZON; a cache behind the prune reloads.
      if (Date.now() - lastPrune >= PRUNE_EVERY_MS) {
        lastPrune = Date.now();
        await c.query(
          `WITH d AS (DELETE FROM balance_feed WHERE at < now() - $1 * interval '1 millisecond' RETURNING txid)
           UPDATE balance_feed_pruned SET upto = greatest(upto, (SELECT max(txid) FROM d)) WHERE EXISTS (SELECT 1 FROM d)`,
          [FEED_HORIZON_MS],
        );
      }
      return r.rows.length;
    });

  const tick = async () => {
    while (running) await running.catch(() => 0);
    running = once();
    try {
      return await running;
    } finally {
      running = undefined;
    }
  };
  const timer = opts.autoStart === false ? undefined : setInterval(() => {
    if (stopped || running) return;
    tick().catch((err) => opts.log.warn('balance update coalescer failed; will retry', { err }));
  }, tickMs);

  return {
    tick,
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      while (running) await running.catch(() => 0);
    },
  };
}
