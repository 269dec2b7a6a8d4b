// Recurring allocations: credits granted at the start of each allocation period, on the
// customer's calendar (the catalog's billing periods: local midnight of the anchor day). Two
// sources:
//  - a plan price that allocates credits (model_type 'allocation', or a config with
//    allocation_config / credit_allocation), at the subscription's billing cadence;
//  - the catalog's allocation_price (view subscription_credit_allocations: the plan's, or a
//    subscription's negotiated replacement), at the allocation's own cadence, with its cost
//    basis (zero unless given).
// The block expires at the period's end (expires_at_end_of_cadence), at the end of the next
// period when it rolls over (what is unused carries over once), or after custom_expiration
// (days or months of the customer's calendar from the period start).
// One grant per (subscription, price, period start): a unique key, so running the job twice is
// harmless.
import { addLocal } from '@drawdown/catalog';
import { parseDecimal } from '@drawdown/money';
import { withTx, type Pool } from '@drawdown/pg';
import { counter } from '@drawdown/metrics';
import { incrementInTx } from '../credits/grants';
import { loadSubscription } from './compute';
import { asCadence, localDate, periodAfter, periodAt, type Period, type PeriodBasis } from './periods';

const granted = counter('drawdown_allocations_granted_total', 'Recurring credit allocations granted');

interface AllocationConfig {
  amount: string | number;
  currency?: string;
  allows_rollover?: boolean;
  expires_at_end_of_cadence?: boolean;
  custom_expiration?: { duration: number; duration_unit: 'day' | 'month' } | null;
  per_unit_cost_basis?: string;
}

export interface Allocation {
  amount: bigint;
  currency: string;
  rollover: boolean;
  customExpiration: { duration: number; duration_unit: 'day' | 'month' } | null;
  perUnitCostBasis: string;
}

export function allocationOf(modelType: string, currency: string, config: Record<string, unknown>): Allocation | null {
  const c = (config.allocation_config ?? config.credit_allocation ?? (modelType === 'allocation' ? config : undefined)) as AllocationConfig | undefined;
  if (!c || c.amount === undefined) return null;
  return {
    amount: parseDecimal(c.amount, 'allocation_config.amount'),
    currency: c.currency ?? currency,
    rollover: c.allows_rollover === true && c.expires_at_end_of_cadence !== true && !c.custom_expiration,
    customExpiration: c.custom_expiration ?? null,
    perUnitCostBasis: c.per_unit_cost_basis ?? '0',
  };
}

/** When the block granted for `period` expires. */
export function allocationExpiry(alloc: Allocation, basis: PeriodBasis, period: Period): Date {
  if (alloc.customExpiration) return new Date(addLocal(period.start.getTime(), alloc.customExpiration.duration, alloc.customExpiration.duration_unit, basis.timeZone));
  if (!alloc.rollover) return period.end;
  return periodAfter(basis, period)?.end ?? period.end;
}

/** Grants the allocations of the period containing `now` that are not granted yet. */
export async function grantAllocations(pool: Pool, opts: { now: Date; limit: number }): Promise<number> {
  const rows = await pool.query<{ subscription_id: string; price_id: string; model_type: string; currency: string; cadence: string | null; config: Record<string, unknown> }>(
    `SELECT s.id AS subscription_id, pr.id AS price_id, pr.model_type, pr.currency, NULL AS cadence, pr.config
       FROM subscriptions s JOIN prices pr ON pr.plan_id = s.plan_id AND (pr.subscription_id IS NULL OR pr.subscription_id = s.id)
      WHERE s.start_date <= $1 AND (s.end_date IS NULL OR s.end_date > $1)
        AND (pr.model_type = 'allocation' OR pr.config ? 'allocation_config' OR pr.config ? 'credit_allocation')
        AND NOT EXISTS (SELECT 1 FROM allocation_grants g WHERE g.subscription_id = s.id AND g.price_id = pr.id AND g.period_start <= $1 AND g.next_period_start > $1)
     UNION ALL
     -- Allocations set up with the plan's allocation_price (catalog: credit_allocations, with
     -- a subscription's negotiated replacements in its place).
     SELECT a.subscription_id, a.price_id, 'allocation', a.currency, a.cadence,
            jsonb_build_object('allocation_config', jsonb_build_object('amount', a.amount::text, 'currency', a.currency,
              'expires_at_end_of_cadence', a.expires_at_end_of_cadence, 'allows_rollover', NOT a.expires_at_end_of_cadence,
              'custom_expiration', a.custom_expiration, 'per_unit_cost_basis', a.per_unit_cost_basis::text))
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
    // The allocation's own cadence (catalog allocation_price), else the subscription's.
    const basis: PeriodBasis = { ...sub, cadence: r.cadence ? asCadence(r.cadence) : sub.cadence };
    const period = periodAt(basis, opts.now);
    if (!period) continue;
    const done = await withTx(pool, async (c) => {
      const claim = await c.query(
        'INSERT INTO allocation_grants (subscription_id, price_id, period_start, next_period_start, block_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
        [sub.id, r.price_id, period.start, period.end, ''],
      );
      if (claim.rowCount === 0) return false;
      const entry = await incrementInTx(c, { id: sub.customerId, external_customer_id: sub.externalCustomerId }, {
        amount: alloc.amount,
        currency: alloc.currency,
        description: `allocation for ${localDate(period.start, sub.timeZone)}`,
        effectiveDate: period.start,
        expiryDate: allocationExpiry(alloc, basis, period),
        perUnitCostBasis: alloc.perUnitCostBasis,
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
