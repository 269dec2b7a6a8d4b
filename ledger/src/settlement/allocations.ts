// Recurring allocations: a plan price that allocates credits (model_type 'allocation', or a
// config with allocation_config / credit_allocation) grants `amount` of its currency at each
// billing period start, at zero cost basis. The block expires at the period's end, or, with
// allows_rollover, at the end of the next period (what is unused carries over once). One grant
// per (subscription, price, period start): a unique key, so running the job twice is harmless.
import { parseDecimal } from '@drawdown/money';
import { withTx, type Pool } from '@drawdown/pg';
import { counter } from '@drawdown/metrics';
import { incrementInTx } from '../credits/grants';
import { currentPeriod, loadSubscription } from './compute';
import { periodN } from './periods';

const granted = counter('drawdown_allocations_granted_total', 'Recurring credit allocations granted');

interface AllocationConfig {
  amount: string | number;
  currency?: string;
  allows_rollover?: boolean;
  expires_at_end_of_cadence?: boolean;
}

export function allocationOf(modelType: string, currency: string, config: Record<string, unknown>): { amount: bigint; currency: string; rollover: boolean } | null {
  const c = (config.allocation_config ?? config.credit_allocation ?? (modelType === 'allocation' ? config : undefined)) as AllocationConfig | undefined;
  if (!c || c.amount === undefined) return null;
  return { amount: parseDecimal(c.amount, 'allocation_config.amount'), currency: c.currency ?? currency, rollover: c.allows_rollover === true && c.expires_at_end_of_cadence !== true };
}

/** Grants the allocations of the period containing `now` that are not granted yet. */
export async function grantAllocations(pool: Pool, opts: { now: Date; limit: number }): Promise<number> {
  const rows = await pool.query<{ subscription_id: string; price_id: string; model_type: string; currency: string; config: Record<string, unknown> }>(
    `SELECT s.id AS subscription_id, pr.id AS price_id, pr.model_type, pr.currency, pr.config
       FROM subscriptions s JOIN prices pr ON pr.plan_id = s.plan_id
      WHERE s.start_date <= $1 AND (s.end_date IS NULL OR s.end_date > $1)
        AND (pr.model_type = 'allocation' OR pr.config ? 'allocation_config' OR pr.config ? 'credit_allocation')
        AND NOT EXISTS (SELECT 1 FROM allocation_grants g WHERE g.subscription_id = s.id AND g.price_id = pr.id AND g.period_start <= $1 AND g.next_period_start > $1)
     UNION ALL
     -- Allocations set up with the plan's allocation_price (catalog: credit_allocations, with
     -- a subscription's negotiated replacements in its place).
     SELECT a.subscription_id, a.price_id, 'allocation', a.currency,
            jsonb_build_object('allocation_config', jsonb_build_object('amount', a.amount::text, 'currency', a.currency,
              'expires_at_end_of_cadence', a.expires_at_end_of_cadence, 'allows_rollover', NOT a.expires_at_end_of_cadence))
       FROM subscription_credit_allocations a JOIN subscriptions s ON s.id = a.subscription_id
      WHERE s.start_date <= $1 AND (s.end_date IS NULL OR s.end_date > $1) AND a.cadence <> 'one_time'
        AND NOT EXISTS (SELECT 1 FROM allocation_grants g WHERE g.subscription_id = s.id AND g.price_id = a.price_id AND g.period_start <= $1 AND g.next_period_start > $1)
      ORDER BY 1, 2 LIMIT $2`,
    [opts.now, opts.limit],
  );
  let n = 0;
  for (const r of rows.rows) {
    if (n >= opts.limit) break;
    const alloc = allocationOf(r.model_type, r.currency, r.config);
    if (!alloc || alloc.amount <= 0n) continue;
    const sub = await loadSubscription(pool, r.subscription_id);
    const period = currentPeriod(sub, opts.now);
    const done = await withTx(pool, async (c) => {
      const claim = await c.query(
        'INSERT INTO allocation_grants (subscription_id, price_id, period_start, next_period_start, block_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
        [sub.id, r.price_id, period.start, period.end, ''],
      );
      if (claim.rowCount === 0) return false;
      const expiry = alloc.rollover ? periodN(sub.start, sub.cadence, period.index + 1).end : period.end;
      const entry = await incrementInTx(c, { id: sub.customerId, external_customer_id: sub.externalCustomerId }, {
        amount: alloc.amount,
        currency: alloc.currency,
        description: `allocation for ${period.start.toISOString().slice(0, 10)}`,
        effectiveDate: period.start,
        expiryDate: expiry,
        perUnitCostBasis: '0',
        metadata: { subscription_id: sub.id, price_id: r.price_id },
        source: 'allocation',
      });
      await c.query('UPDATE allocation_grants SET block_id = $4 WHERE subscription_id = $1 AND price_id = $2 AND period_start = $3', [sub.id, r.price_id, period.start, entry.credit_block.id]);
      return true;
    });
    if (done) {
      n++;
      granted.inc();
    }
  }
  return n;
}
