// The catalog as the rater sees it: a plain-data snapshot (customers, their subscriptions,
// the subscribed prices and their metrics) read from the ledger's tables at one catalog
// version. Plain data so it can be handed to worker threads.
import type { Queryable } from '@drawdown/pg';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import type { BillingCadence } from './periods';

export { addLocal, billingPeriods, periodAt, zonedTimeToUtc, localParts, isTimeZone, CADENCE_MONTHS } from './periods';
export type { BillingCadence, Period } from './periods';
export { PriceConfigError, configDecimal, matrixDimensions, matrixUnitAmount, type PropertyValue } from './pricing';

export type Aggregation = 'count' | 'sum' | 'max' | 'unique_count' | 'latest';

export interface PropertyFilter {
  property: string;
  /** The event matches when the property equals one of these (compared as strings). */
  values: string[];
}

export interface MetricDefinition {
  event_name: string;
  aggregation: Aggregation;
  /** The summed (or maxed, ...) property; absent for count. */
  property?: string;
  filters: PropertyFilter[];
  group_by?: string;
}

export interface MetricSnap extends MetricDefinition {
  id: string;
}

export interface PriceSnap {
  id: string;
  metricId: string | null;
  /** Pricing unit (e.g. credits) or fiat currency the amount is in. */
  currency: string;
  /** Orb's model_type: unit, tiered, package, matrix. */
  modelType: string;
  /**
   * The model's config in Orb's shape, keyed by Orb's name, decimals as strings:
   * {unit_config: {unit_amount}} | {tiered_config: {tiers: [{first_unit, last_unit, unit_amount}]}}
   * | {package_config: {package_amount, package_size}}
   * | {matrix_config: {dimensions, default_unit_amount, matrix_values: [{dimension_values, unit_amount}]}}
   */
  config: Record<string, unknown>;
  /** The price applies to events with timestamp in [effectiveFromMs, effectiveToMs); null = open. */
  effectiveFromMs?: number | null;
  effectiveToMs?: number | null;
}

/** A custom currency (pricing unit) and its exact conversion to fiat. */
export interface PricingUnitSnap {
  /** e.g. credits */
  name: string;
  /** Fiat currency it converts to, e.g. USD. */
  currency: string;
  /** Fiat per one unit, decimal string, e.g. "0.01". */
  conversionRate: string;
}

export interface SubscriptionSnap {
  id: string;
  startMs: number;
  endMs: number | null;
  /** Prices in force for this subscription (plan prices, or its overrides in their place). */
  priceIds: string[];
  /** Billing periods: anchored at start, this cadence, in the customer's time zone. */
  billingCadence?: 'monthly' | 'quarterly' | 'annual';
  timezone?: string;
  planId?: string;
  /**
   * Fiat per one unit of the plan's currency when usage runs past the credits (overage):
   * the subscription's per_credit_overage_amount, else the plan's, else the pricing unit's
   * conversion rate; null when the plan is in fiat. Decimal string.
   */
  overageRate?: string | null;
}

export interface CatalogSnapshot {
  version: number;
  /** External id -> customer id. */
  byExternalId: Record<string, string>;
  /** Customer id -> external id ('' when none). */
  customers: Record<string, string>;
  subscriptions: Record<string, SubscriptionSnap[]>;
  prices: Record<string, PriceSnap>;
  metrics: Record<string, MetricSnap>;
  /** Pricing units by name. A price whose currency is a pricing unit is debited in real time; fiat prices are invoiced at settlement. */
  pricingUnits?: Record<string, PricingUnitSnap>;
}

export async function catalogVersion(db: Queryable): Promise<number> {
  const r = await db.query('SELECT version FROM catalog_version');
  return Number(r.rows[0]?.version ?? 0);
}

/** Bumps the catalog version inside the caller's transaction; returns the new version. */
export async function bumpCatalogVersion(db: Queryable): Promise<number> {
  const r = await db.query('UPDATE catalog_version SET version = version + 1, changed_at = now() RETURNING version');
  return Number(r.rows[0].version);
}

export async function loadCatalog(db: Queryable): Promise<CatalogSnapshot> {
  // One repeatable snapshot: the caller may pass a client inside REPEATABLE READ; the version
  // is read first, so a change racing this load makes the next reload happen.
  const version = await catalogVersion(db);
  const snap: CatalogSnapshot = { version, byExternalId: {}, customers: {}, subscriptions: {}, prices: {}, metrics: {}, pricingUnits: {} };
  const customers = await db.query('SELECT id, external_customer_id FROM customers');
  for (const row of customers.rows as { id: string; external_customer_id: string | null }[]) {
    snap.customers[row.id] = row.external_customer_id ?? '';
    if (row.external_customer_id) snap.byExternalId[row.external_customer_id] = row.id;
  }
  const metrics = await db.query('SELECT id, definition FROM metrics');
  for (const row of metrics.rows as { id: string; definition: MetricDefinition }[]) {
    snap.metrics[row.id] = { id: row.id, ...row.definition };
  }
  const units = await db.query('SELECT name, currency, conversion_rate::text AS rate FROM pricing_units');
  for (const row of units.rows as { name: string; currency: string; rate: string }[]) {
    snap.pricingUnits![row.name] = { name: row.name, currency: row.currency, conversionRate: formatDecimal(parseDecimal(row.rate)) };
  }
  const prices = await db.query(
    `SELECT id, metric_id, currency, model_type, config, effective_from, effective_to FROM prices WHERE plan_id IS NOT NULL`,
  );
  for (const row of prices.rows as { id: string; metric_id: string | null; currency: string; model_type: string; config: Record<string, unknown>; effective_from: Date | null; effective_to: Date | null }[]) {
    snap.prices[row.id] = {
      id: row.id, metricId: row.metric_id, currency: row.currency, modelType: row.model_type, config: row.config,
      effectiveFromMs: row.effective_from ? row.effective_from.getTime() : null,
      effectiveToMs: row.effective_to ? row.effective_to.getTime() : null,
    };
  }
  // A subscription's prices: every version of its plan's prices, except the lineages it
  // replaces with its own (negotiated) prices, plus those.
  const subs = await db.query(
    `SELECT s.id, s.customer_id, s.plan_id, s.start_date, s.end_date, s.billing_cadence, c.timezone,
            s.per_credit_overage_amount::text AS sub_overage, pl.per_credit_overage_amount::text AS plan_overage, pl.currency AS plan_currency,
            coalesce((SELECT array_agg(p.id ORDER BY p.id) FROM prices p
                       WHERE (p.plan_id = s.plan_id AND p.subscription_id IS NULL
                              AND NOT EXISTS (SELECT 1 FROM prices o WHERE o.subscription_id = s.id AND o.replaces_lineage_id = p.lineage_id))
                          OR p.subscription_id = s.id), '{}') AS price_ids
       FROM subscriptions s JOIN customers c ON c.id = s.customer_id JOIN plans pl ON pl.id = s.plan_id`,
  );
  for (const row of subs.rows as SubRow[]) {
    const overage = row.sub_overage ?? row.plan_overage ?? snap.pricingUnits![row.plan_currency]?.conversionRate ?? null;
    (snap.subscriptions[row.customer_id] ??= []).push({
      id: row.id,
      startMs: row.start_date.getTime(),
      endMs: row.end_date ? row.end_date.getTime() : null,
      priceIds: row.price_ids,
      billingCadence: row.billing_cadence,
      timezone: row.timezone,
      planId: row.plan_id,
      overageRate: overage === null ? null : formatDecimal(parseDecimal(overage)),
    });
  }
  return snap;
}

interface SubRow {
  id: string;
  customer_id: string;
  plan_id: string;
  start_date: Date;
  end_date: Date | null;
  billing_cadence: BillingCadence;
  timezone: string;
  sub_overage: string | null;
  plan_overage: string | null;
  plan_currency: string;
  price_ids: string[];
}
