// The invoice of one subscription period, computed from the data as it is now. Period
// settlement stores what this returns; the upcoming invoice shows it without storing: one
// function, so the two cannot disagree for the same data.
//
// Lines, in order:
//  - fixed fees: prices without a metric (unit_amount x fixed_price_quantity, default 1), each
//    time the price's own cadence falls due in the period; a catalog allocation_price is one,
//    for its credits at their cost basis;
// The prices are the subscription's (its plan's, minus those it replaced, plus its own), in
// the versions whose windows overlap the period.
//  - usage in fiat: metered prices whose currency is fiat (three capitals), the period's
//    quantity (count/sum from the rollups; max/unique_count/latest from ClickHouse) priced with
//    the price model; a matrix price on its quantity per combination of property values;
//  - non-decomposable usage in a pricing unit (max/unique_count/latest cannot be debited per
//    event): priced in the unit, then converted at the unit's rate;
//  - overage: the customer's negative balance (credit_balances.overage) per pricing unit the
//    plan uses, converted at the unit's conversion rate.
// Each line is exact; the invoice rounds each line half-even to the currency's minor unit.
import { mul, parseDecimal, type Picos } from '@drawdown/money';
import type { Queryable } from '@drawdown/pg';
import { ApiError } from '@drawdown/http';
import { toPicos } from '../credits/balances';
import type { LineInput } from '../invoices/invoices';
import { billingDefaults } from '../invoices/defaults';
import { asCadence, periodAt, type Cadence, type Period, type PeriodBasis } from './periods';
import { priceMatrix, priceQuantity, PricingError, type MatrixGroup } from './pricing';
import { billingPeriods, matrixDimensions } from '@drawdown/catalog';

/** Usage read from the analytics store (ClickHouse); implemented by the reporter. */
export interface UsageSource {
  /** Rated quantity and amount per price over [start, end) for the customer (count and sum metrics). */
  sums(q: { customerId: string; priceIds: string[]; start: Date; end: Date }): Promise<Map<string, { quantity: Picos; amount: Picos }>>;
  /** A non-decomposable metric's period quantity over [start, end). */
  aggregate(q: { customerId: string; priceId: string; eventName: string; aggregation: 'max' | 'unique_count' | 'latest'; property: string; start: Date; end: Date }): Promise<Picos>;
  /**
   * A metric's period quantity over [start, end) per combination of the `dimensions`
   * properties' values (raw JSON, '' when absent): what a matrix price is priced on.
   */
  grouped(q: { customerId: string; priceId: string; eventName: string; aggregation: Aggregation; property: string; dimensions: string[]; start: Date; end: Date }): Promise<MatrixGroup[]>;
}

type Aggregation = 'count' | 'sum' | 'max' | 'unique_count' | 'latest';

export const isFiat = (currency: string) => /^[A-Z]{3}$/.test(currency);

export interface SubscriptionInfo extends PeriodBasis {
  id: string;
  customerId: string;
  externalCustomerId: string | null;
  planId: string;
  planCurrency: string;
  start: Date;
  end: Date | null;
  cadence: Cadence;
  /** The customer's IANA time zone: periods start at its local midnight. */
  timeZone: string;
  netTerms: number;
  autoIssue: boolean;
  autoCollection: boolean;
  customerCurrency: string | null;
}

interface PriceRow {
  id: string;
  name: string;
  metric_id: string | null;
  model_type: string;
  currency: string;
  config: Record<string, unknown>;
  cadence: string;
  fixed_quantity: string | null;
  credit_allocation: Record<string, unknown> | null;
  lineage_id: string;
  effective_from: Date | null;
  definition: { event_name: string; aggregation: string; property?: string } | null;
}

/**
 * The prices a subscription is billed on in a period: its plan's (minus the lineages it
 * replaces with negotiated prices) plus its own, each version whose window overlaps the period.
 */
async function periodPrices(db: Queryable, sub: SubscriptionInfo, period: Period): Promise<PriceRow[]> {
  const r = await db.query<PriceRow>(
    `SELECT pr.id, pr.name, pr.metric_id, pr.model_type, pr.currency, pr.config, pr.cadence, pr.fixed_price_quantity::text AS fixed_quantity,
            pr.credit_allocation, coalesce(pr.lineage_id, pr.id) AS lineage_id, pr.effective_from, m.definition
       FROM prices pr LEFT JOIN metrics m ON m.id = pr.metric_id
      WHERE ((pr.plan_id = $1 AND pr.subscription_id IS NULL
              AND NOT EXISTS (SELECT 1 FROM prices o WHERE o.subscription_id = $2 AND o.replaces_lineage_id = pr.lineage_id))
             OR pr.subscription_id = $2)
        AND (pr.effective_from IS NULL OR pr.effective_from < $4)
        AND (pr.effective_to IS NULL OR pr.effective_to > $3)
      -- In the plan's order: a later version or a negotiated price takes its lineage's place.
      ORDER BY coalesce((SELECT min(l.created_at) FROM prices l WHERE l.lineage_id = coalesce(pr.replaces_lineage_id, pr.lineage_id) AND l.subscription_id IS NULL), pr.created_at),
               pr.created_at, pr.id`,
    [sub.planId, sub.id, period.start, period.end],
  );
  return r.rows;
}

/**
 * How many times a fixed fee of `cadence` falls due in the billing period: the starts of its
 * own periods (same anchor, the customer's calendar) inside it. Equal cadences: once; a
 * quarterly fee on a monthly plan: every third period; one_time: the first period only.
 */
function timesDue(sub: SubscriptionInfo, cadence: string, period: Period): bigint {
  if (cadence === 'one_time') return period.index === 0 ? 1n : 0n;
  const own = asCadence(cadence);
  if (own === sub.cadence) return 1n;
  const starts = billingPeriods(sub.start.getTime(), own, sub.timeZone, { untilMs: period.end.getTime(), endMs: sub.end?.getTime() ?? null, maxPeriods: Number.MAX_SAFE_INTEGER })
    .filter((p) => p.startMs >= period.start.getTime() && p.startMs < period.end.getTime());
  return BigInt(starts.length);
}

/** Of a fixed fee's versions overlapping the period, the one in force at its start (else the first). */
function versionAtStart(rows: PriceRow[], period: Period): PriceRow[] {
  const byLineage = new Map<string, PriceRow>();
  for (const p of rows) {
    const cur = byLineage.get(p.lineage_id);
    const from = (x: PriceRow) => x.effective_from?.getTime() ?? -Infinity;
    const inForce = (x: PriceRow) => from(x) <= period.start.getTime();
    if (!cur || (inForce(p) && (!inForce(cur) || from(p) > from(cur))) || (!inForce(p) && !inForce(cur) && from(p) < from(cur))) byLineage.set(p.lineage_id, p);
  }
  return rows.filter((p) => byLineage.get(p.lineage_id) === p);
}

export async function loadSubscription(db: Queryable, id: string): Promise<SubscriptionInfo> {
  const r = await db.query(
    `SELECT s.id, s.customer_id, cu.external_customer_id, s.plan_id, p.currency AS plan_currency, s.start_date, s.end_date,
            to_jsonb(s) AS s_json, to_jsonb(p) AS p_json, cu.net_terms AS customer_net_terms, p.net_terms AS plan_net_terms,
            cu.auto_issuance, cu.auto_collection, cu.payment_provider_id, cu.currency AS customer_currency, cu.timezone
       FROM subscriptions s JOIN plans p ON p.id = s.plan_id JOIN customers cu ON cu.id = s.customer_id WHERE s.id = $1`,
    [id],
  );
  const row = r.rows[0];
  if (!row) throw new ApiError('not_found', `no subscription with id "${id}"`);
  const d = billingDefaults();
  // Cadence: the subscription's billing cadence (the catalog copies the plan's), else monthly.
  const cadence = asCadence(row.s_json.billing_cadence ?? row.p_json.billing_cadence);
  return {
    id: row.id,
    customerId: row.customer_id,
    externalCustomerId: row.external_customer_id,
    planId: row.plan_id,
    planCurrency: row.plan_currency,
    start: row.start_date,
    end: row.end_date,
    cadence,
    timeZone: row.timezone ?? 'UTC',
    netTerms: row.customer_net_terms ?? row.plan_net_terms ?? d.netTerms,
    autoIssue: row.auto_issuance ?? d.autoIssue,
    // Collected automatically when the customer says so, else when a payment method is on file with a provider.
    autoCollection: row.auto_collection ?? row.payment_provider_id !== null,
    customerCurrency: row.customer_currency,
  };
}

/** The billing period containing `at` (the first before the start, the last after the end). */
export function currentPeriod(sub: SubscriptionInfo, at: Date): Period {
  const p = periodAt(sub, at);
  if (!p) throw new ApiError('unprocessable', `subscription "${sub.id}" ends where it starts: it has no billing period`);
  return p;
}

async function conversion(db: Queryable, unit: string): Promise<{ currency: string; rate: Picos }> {
  const r = await db.query<{ currency: string; rate: string }>('SELECT currency, conversion_rate::text AS rate FROM pricing_units WHERE name = $1', [unit]);
  const row = r.rows[0];
  if (!row) throw new ApiError('unprocessable', `pricing unit "${unit}" has no conversion rate to a currency; create it under /v1/pricing_units first`);
  return { currency: row.currency, rate: toPicos(row.rate) };
}

export interface ComputedInvoice {
  currency: string;
  period: Period;
  lines: LineInput[];
  /** Overage quantities by pricing unit that the invoice charges (settlement clears them). */
  overage: { pricingUnit: string; quantity: Picos; rate: Picos }[];
}

export async function computePeriodInvoice(db: Queryable, usage: UsageSource, sub: SubscriptionInfo, period: Period): Promise<ComputedInvoice> {
  const prices = { rows: await periodPrices(db, sub, period) };
  const units = [...new Set(prices.rows.map((p) => p.currency).filter((c) => !isFiat(c)))].sort();
  const rates = new Map<string, { currency: string; rate: Picos }>();
  for (const u of units) {
    const r = await db.query<{ currency: string; rate: string }>('SELECT currency, conversion_rate::text AS rate FROM pricing_units WHERE name = $1', [u]);
    if (r.rows[0]) rates.set(u, { currency: r.rows[0].currency, rate: toPicos(r.rows[0].rate) });
  }
  const currency = isFiat(sub.planCurrency) ? sub.planCurrency
    : rates.get(sub.planCurrency)?.currency ?? (sub.customerCurrency && isFiat(sub.customerCurrency) ? sub.customerCurrency : billingDefaults().currency);
  const rateOf = async (unit: string) => rates.get(unit) ?? conversion(db, unit);

  const lines: LineInput[] = [];
  const base = { start: period.start, end: period.end };
  const isAllocation = (p: PriceRow) => p.model_type === 'allocation' || 'allocation_config' in p.config || 'credit_allocation' in p.config;

  // Fixed fees: the price's quantity (fixed_price_quantity, default 1) each time it falls due
  // in the period. A catalog allocation_price is a fixed fee of its credits at their cost basis
  // (free allocations add no line).
  for (const p of versionAtStart(prices.rows.filter((x) => x.metric_id === null && !isAllocation(x)), period)) {
    const times = timesDue(sub, p.cadence, period);
    if (times === 0n) continue;
    const each = parseDecimal(p.fixed_quantity ?? (p.config.fixed_price_quantity as string | number | undefined) ?? 1, 'fixed_price_quantity');
    const qty = each * times;
    let amount = priceQuantity(p.model_type, p.config, each) * times;
    if (p.credit_allocation && amount === 0n) continue;
    let unitAmount: Picos | null = qty === 0n ? null : p.model_type === 'unit' ? parseDecimal((p.config.unit_config as { unit_amount: string }).unit_amount) : null;
    if (!isFiat(p.currency)) {
      const { rate } = await rateOf(p.currency);
      amount = mul(amount, rate);
      unitAmount = unitAmount === null ? null : mul(unitAmount, rate);
    }
    lines.push({ kind: 'fixed_fee', name: p.name, priceId: p.id, quantity: qty, unitAmount, amount, ...base });
  }

  // Usage.
  const metered = prices.rows.filter((p) => p.metric_id !== null && p.definition !== null);
  const decomposable = (p: PriceRow) => p.definition!.aggregation === 'count' || p.definition!.aggregation === 'sum';
  const fiatSums = metered.filter((p) => isFiat(p.currency) && decomposable(p) && p.model_type !== 'matrix');
  const sums = fiatSums.length > 0 ? await usage.sums({ customerId: sub.customerId, priceIds: fiatSums.map((p) => p.id), start: period.start, end: period.end }) : new Map();
  for (const p of metered) {
    const def = p.definition!;
    if (decomposable(p) && !isFiat(p.currency)) continue; // debited from credits in real time
    let qty: Picos;
    let amount: Picos;
    let unitAmount: Picos | null;
    if (p.model_type === 'matrix') {
      // Each combination of property values at its own unit amount, as the rater prices events.
      let dimensions: string[];
      try {
        dimensions = matrixDimensions(p.config, p.id);
      } catch (err) {
        throw new PricingError((err as Error).message);
      }
      const groups = await usage.grouped({
        customerId: sub.customerId, priceId: p.id, eventName: def.event_name, aggregation: def.aggregation as Aggregation, property: def.property ?? '', dimensions, start: period.start, end: period.end,
      });
      ({ quantity: qty, amount, unitAmount } = priceMatrix(p.id, p.config, groups));
    } else {
      qty = decomposable(p) ? sums.get(p.id)?.quantity ?? 0n
        : await usage.aggregate({ customerId: sub.customerId, priceId: p.id, eventName: def.event_name, aggregation: def.aggregation as 'max', property: def.property ?? '', start: period.start, end: period.end });
      amount = priceQuantity(p.model_type, p.config, qty);
      unitAmount = p.model_type === 'unit' ? parseDecimal((p.config.unit_config as { unit_amount: string }).unit_amount) : null;
    }
    const pricingUnit = isFiat(p.currency) ? null : p.currency;
    if (pricingUnit) {
      const { rate } = await rateOf(pricingUnit);
      amount = mul(amount, rate);
      unitAmount = unitAmount === null ? null : mul(unitAmount, rate);
    }
    lines.push({ kind: 'usage', name: p.name, priceId: p.id, pricingUnit, quantity: qty, unitAmount, amount, ...base });
  }

  // Overage: the negative balance in each pricing unit the plan uses.
  const overage: ComputedInvoice['overage'] = [];
  if (units.length > 0) {
    const ov = await db.query<{ pricing_unit: string; overage: string }>(
      'SELECT pricing_unit, overage::text FROM credit_balances WHERE customer_id = $1 AND pricing_unit = ANY($2::text[]) AND overage > 0 ORDER BY pricing_unit',
      [sub.customerId, units],
    );
    for (const row of ov.rows) {
      const qty = toPicos(row.overage);
      const { rate } = await rateOf(row.pricing_unit);
      overage.push({ pricingUnit: row.pricing_unit, quantity: qty, rate });
      lines.push({ kind: 'overage', name: `Overage (${row.pricing_unit})`, pricingUnit: row.pricing_unit, quantity: qty, unitAmount: rate, amount: mul(qty, rate), ...base });
    }
  }
  return { currency, period, lines, overage };
}
