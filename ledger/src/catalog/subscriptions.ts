// Subscriptions: a customer on a plan from a start date, with negotiated price overrides
// (Orb's replace_prices / price_overrides) stored as subscription prices that replace the plan
// price's lineage for this subscription only. Billing periods are computed in the customer's
// time zone at the plan's billing cadence.
import { billingPeriods, bumpCatalogVersion, periodAt, zonedTimeToUtc, type Aggregation, type BillingCadence, type MetricDefinition } from '@drawdown/catalog';
import { ApiError, Problems } from '@drawdown/http';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { withTx, type Pool, type Queryable } from '@drawdown/pg';
import { newId } from '../ids';
import { customerView, findCustomer } from '../customers/customers';
import {
  bool, cleanMetadata, date, decimal, DEFAULT_LIMITS, type CatalogLimits, given, int, metadata, notFound, obj, pageFilters, pageKey, pageQuery, str, toPage, type Json,
} from './input';
import { findPlan, invoicingCurrency, planDto, planPrices } from './plans';
import {
  checkAllocationRefs, checkPriceRefs, insertAllocation, insertPrice, modelConfig, parseAllocation, parsePrice, priceDto, PRICE_SELECT,
  type AllocationInput, type PriceInput, type PriceRow,
} from './prices';

export interface SubscriptionRow {
  id: string;
  customer_id: string;
  plan_id: string;
  name: string | null;
  start_date: Date;
  end_date: Date | null;
  status: string;
  metadata: Record<string, string>;
  net_terms: number | null;
  auto_collection: boolean | null;
  auto_issuance: boolean | null;
  billing_cadence: BillingCadence;
  per_credit_overage_amount: string | null;
  invoicing_threshold: string | null;
  default_invoice_memo: string | null;
  cancel_option: string | null;
  cancelled_at: Date | null;
  created_at: Date;
}

const SUB_SELECT = `SELECT s.*, s.per_credit_overage_amount::text AS per_credit_overage_amount, s.invoicing_threshold::text AS invoicing_threshold FROM subscriptions s`;

/**
 * A metric's usage by a subscription from the analytics store (ClickHouse), when the process has
 * one: the metric's aggregation over the subscription's rated events in each bucket
 * [previous end (or fromMs), bucketEndsMs[i]); one decimal string per bucket.
 */
export type UsageSource = (q: {
  subscriptionId: string;
  metric: { id: string; aggregation: Aggregation; property?: string };
  fromMs: number;
  bucketEndsMs: number[];
}) => Promise<string[]>;

export function statusOf(s: Pick<SubscriptionRow, 'start_date' | 'end_date'>, nowMs: number): 'active' | 'ended' | 'upcoming' {
  if (s.start_date.getTime() > nowMs) return 'upcoming';
  if (s.end_date && s.end_date.getTime() <= nowMs) return 'ended';
  return 'active';
}

/** The prices in force for a subscription: its plan's minus the lineages it replaces, plus its own. */
export async function subscriptionPrices(db: Queryable, s: Pick<SubscriptionRow, 'id' | 'plan_id'>): Promise<PriceRow[]> {
  const r = await db.query<PriceRow>(
    `${PRICE_SELECT}
      WHERE ((p.plan_id = $2 AND p.subscription_id IS NULL
              AND NOT EXISTS (SELECT 1 FROM prices o WHERE o.subscription_id = $1 AND o.replaces_lineage_id = p.lineage_id))
             OR p.subscription_id = $1)
        AND (p.effective_to IS NULL OR p.effective_to > now())
      ORDER BY p.created_at, p.id`,
    [s.id, s.plan_id],
  );
  return r.rows;
}

export async function subscriptionView(db: Queryable, s: SubscriptionRow): Promise<Json> {
  const nowMs = Date.now();
  const customer = await findCustomer(db, { id: s.customer_id });
  const plan = await findPlan(db, { id: s.plan_id });
  const prices = await subscriptionPrices(db, s);
  const status = statusOf(s, nowMs);
  const period = status === 'active' ? periodAt(s.start_date.getTime(), s.billing_cadence, customer.timezone, nowMs, s.end_date?.getTime()) : null;
  const iso = (ms: number | null | undefined) => (ms == null ? null : new Date(ms).toISOString());
  const local = new Intl.DateTimeFormat('en-US', { timeZone: customer.timezone, year: 'numeric', month: 'numeric', day: 'numeric' }).formatToParts(s.start_date);
  const part = (t: string) => Number(local.find((x) => x.type === t)?.value);
  return {
    id: s.id,
    name: s.name ?? plan.name,
    status,
    start_date: s.start_date.toISOString(),
    end_date: iso(s.end_date?.getTime()),
    created_at: s.created_at.toISOString(),
    customer: await customerView(db, customer),
    plan: planDto(plan, await planPrices(db, plan.id)),
    metadata: s.metadata,
    // The most specific terms win: the subscription's, the customer's contract, the plan's.
    net_terms: s.net_terms ?? customer.net_terms ?? plan.net_terms ?? 0,
    auto_collection: s.auto_collection,
    auto_issuance: s.auto_issuance,
    billing_cadence: s.billing_cadence,
    billing_cycle_day: part('day'),
    billing_cycle_anchor_configuration: { day: part('day'), month: part('month'), year: part('year') },
    current_billing_period_start_date: iso(period?.startMs),
    current_billing_period_end_date: iso(period?.endMs),
    per_credit_overage_amount: s.per_credit_overage_amount === null ? null : formatDecimal(parseDecimal(s.per_credit_overage_amount)),
    invoicing_threshold: s.invoicing_threshold === null ? null : formatDecimal(parseDecimal(s.invoicing_threshold)),
    default_invoice_memo: s.default_invoice_memo,
    price_intervals: prices.map((pr) => ({
      id: pr.id,
      billing_cycle_day: part('day'),
      can_defer_billing: false,
      current_billing_period_start_date: iso(period?.startMs),
      current_billing_period_end_date: iso(period?.endMs),
      start_date: new Date(Math.max(s.start_date.getTime(), pr.effective_from?.getTime() ?? 0)).toISOString(),
      end_date: iso(Math.min(s.end_date?.getTime() ?? Infinity, pr.effective_to?.getTime() ?? Infinity) === Infinity ? null : Math.min(s.end_date?.getTime() ?? Infinity, pr.effective_to?.getTime() ?? Infinity)),
      filter: null,
      fixed_fee_quantity_transitions: null,
      price: priceDto(pr),
      usage_customer_ids: null,
    })),
    fixed_fee_quantity_schedule: prices.filter((pr) => pr.price_type === 'fixed_price').map((pr) => ({
      price_id: pr.id, quantity: parseDecimal(pr.fixed_price_quantity ?? '1'), start_date: s.start_date.toISOString(), end_date: iso(s.end_date?.getTime()),
    })),
    adjustment_intervals: [],
    discount_intervals: [],
    maximum_intervals: [],
    minimum_intervals: [],
    active_plan_phase_order: null,
    pending_subscription_change: null,
    redeemed_coupon: null,
    trial_info: { end_date: null },
    changed_resources: null,
  };
}

export async function findSubscription(db: Queryable, id: string, forUpdate = false): Promise<SubscriptionRow> {
  const r = await db.query<SubscriptionRow>(`${SUB_SELECT} WHERE s.id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [id]);
  if (!r.rows[0]) throw notFound('subscription', 'id', id);
  return r.rows[0];
}

interface Replacement {
  at: string;
  replacesPriceId: string;
  price?: PriceInput;
  allocation?: AllocationInput;
  /** price_overrides: the model config only; the rest comes from the replaced price. */
  override?: { modelType: PriceInput['modelType']; config: Json };
}

const UNSUPPORTED = ['add_prices', 'remove_prices', 'add_adjustments', 'remove_adjustments', 'replace_adjustments', 'usage_customer_ids'];

export async function createSubscription(pool: Pool, body: unknown, limits: CatalogLimits = DEFAULT_LIMITS): Promise<Json> {
  const b = obj(body);
  const p = new Problems();
  if (given(b.customer_id) === given(b.external_customer_id)) p.add('customer_id', 'give exactly one of customer_id and external_customer_id');
  const customerId = given(b.customer_id) ? str(p, b, 'customer_id') : undefined;
  const externalCustomerId = given(b.external_customer_id) ? str(p, b, 'external_customer_id') : undefined;
  if (given(b.plan_id) === given(b.external_plan_id)) p.add('plan_id', 'give exactly one of plan_id and external_plan_id');
  const planId = given(b.plan_id) ? str(p, b, 'plan_id') : undefined;
  const externalPlanId = given(b.external_plan_id) ? str(p, b, 'external_plan_id') : undefined;
  const start = date(p, b.start_date, 'start_date');
  const end = date(p, b.end_date, 'end_date');
  if (start && end && end.getTime() <= start.getTime()) p.add('end_date', 'must be after start_date');
  const netTerms = int(p, b, 'net_terms', 0, 365);
  const autoCollection = bool(p, b, 'auto_collection');
  const autoIssuance = bool(p, b, 'auto_issuance');
  const overage = decimal(p, b.per_credit_overage_amount, 'per_credit_overage_amount', { min: 'zero' });
  const threshold = decimal(p, b.invoicing_threshold, 'invoicing_threshold', { min: 'positive' });
  const name = given(b.name) ? str(p, b, 'name', { max: 500 }) : undefined;
  if (given(b.default_invoice_memo) && typeof b.default_invoice_memo !== 'string') p.add('default_invoice_memo', 'must be a string');
  if (given(b.currency) && typeof b.currency !== 'string') p.add('currency', 'must be a currency code');
  if (given(b.billing_cycle_anchor_configuration)) p.add('billing_cycle_anchor_configuration', 'is not supported: periods are anchored at start_date in the customer\'s time zone');
  for (const k of UNSUPPORTED) if (Array.isArray(b[k]) && (b[k] as unknown[]).length > 0) p.add(k, 'is not supported');
  const meta = metadata(p, b);
  const replacements: Replacement[] = [];
  if (given(b.replace_prices)) {
    if (!Array.isArray(b.replace_prices)) p.add('replace_prices', 'must be an array of {replaces_price_id, price | allocation_price}');
    else if (b.replace_prices.length > limits.maxPricesPerPlan) p.add('replace_prices', `must hold at most ${limits.maxPricesPerPlan} entries`);
    else {
      (b.replace_prices as Json[]).forEach((r, i) => {
        const at = `replace_prices[${i}]`;
        if (!r || typeof r !== 'object') return p.add(at, 'must be an object {replaces_price_id, price | allocation_price}');
        const replaces = str(p, r, 'replaces_price_id', { required: true, at: `${at}.replaces_price_id` });
        if (given(r.price_id)) p.add(`${at}.price_id`, 'is not supported; give the new price in price');
        if (given(r.price) === given(r.allocation_price)) p.add(at, 'give exactly one of price and allocation_price');
        // The price's currency defaults to the replaced price's: resolved after the lookup.
        const price = given(r.price) ? parsePrice(p, r.price, `${at}.price`, '', limits) : undefined;
        const allocation = given(r.allocation_price) ? parseAllocation(p, r.allocation_price, `${at}.allocation_price`) : undefined;
        if (replaces) replacements.push({ at, replacesPriceId: replaces, price, allocation });
      });
    }
  }
  if (given(b.price_overrides)) {
    if (!Array.isArray(b.price_overrides)) p.add('price_overrides', 'must be an array of {id, model_type, <model>_config}');
    else if (b.price_overrides.length > limits.maxPricesPerPlan) p.add('price_overrides', `must hold at most ${limits.maxPricesPerPlan} entries`);
    else {
      (b.price_overrides as Json[]).forEach((o, i) => {
        const at = `price_overrides[${i}]`;
        if (!o || typeof o !== 'object') return p.add(at, 'must be an object {id, model_type, <model>_config}');
        const id = str(p, o, 'id', { required: true, at: `${at}.id` });
        const config = modelConfig(p, o, at, limits);
        if (id && config) replacements.push({ at, replacesPriceId: id, override: { modelType: o.model_type as PriceInput['modelType'], config } });
      });
    }
  }
  p.throwIfAny('subscription');

  return withTx(pool, async (c) => {
    const customer = await findCustomer(c, customerId !== undefined ? { id: customerId } : { externalId: externalCustomerId! }, true).catch((err) => {
      throw refError(err, customerId !== undefined ? 'customer_id' : 'external_customer_id');
    });
    const plan = await findPlan(c, planId !== undefined ? { id: planId } : { externalId: externalPlanId! }).catch((err) => {
      throw refError(err, planId !== undefined ? 'plan_id' : 'external_plan_id');
    });
    const q = new Problems();
    const planField = planId !== undefined ? 'plan_id' : 'external_plan_id';
    if (plan.status !== 'active') q.add(planField, `the plan is ${plan.status}; only active plans take subscriptions`);
    const invoicing = plan.invoicing_currency ?? (await invoicingCurrency(c, plan.currency));
    if (customer.currency && customer.currency !== invoicing) q.add(planField, `the plan invoices in ${invoicing} but the customer's currency is ${customer.currency}`);
    if (given(b.currency) && b.currency !== invoicing && b.currency !== plan.currency) q.add('currency', `must be the plan's currency (${plan.currency}) or its invoicing currency (${invoicing})`);
    if (overage !== undefined && /^[A-Z]{3}$/.test(plan.currency)) q.add('per_credit_overage_amount', 'applies to plans in a pricing unit (credits)');
    const planRows = await planPrices(c, plan.id, { all: true });
    const seen = new Set<string>();
    const resolved: { r: Replacement; old: PriceRow }[] = [];
    for (const r of replacements) {
      const old = planRows.find((x) => x.id === r.replacesPriceId);
      const field = r.override ? `${r.at}.id` : `${r.at}.replaces_price_id`;
      if (!old) {
        q.add(field, `no price with id "${r.replacesPriceId}" on this plan`);
        continue;
      }
      if (seen.has(old.lineage_id)) q.add(field, 'this price is replaced twice');
      seen.add(old.lineage_id);
      if (r.allocation && !old.credit_allocation) q.add(`${r.at}.allocation_price`, 'replaces a price that is not a credit allocation; give price');
      if ((r.price || r.override) && old.credit_allocation) q.add(field, 'is a credit allocation; replace it with allocation_price');
      if (r.price) {
        if (!r.price.ownCurrency) r.price.currency = old.currency;
        await checkPriceRefs(c, q, r.price, `${r.at}.price`);
      }
      if (r.allocation) await checkAllocationRefs(c, q, r.allocation, `${r.at}.allocation_price`);
      if (r.override && old.metric_id === null && r.override.modelType === 'matrix') q.add(`${r.at}.model_type`, 'a fixed fee cannot use the matrix model');
      resolved.push({ r, old });
    }
    q.throwIfAny('subscription');

    const nowRow = await c.query<{ now: Date }>('SELECT now() AS now');
    // A bare date is midnight in the customer's time zone (where its periods are anchored).
    const startDate = start ? inZone(b.start_date, start, customer.timezone) : nowRow.rows[0]!.now;
    const endDate = end ? inZone(b.end_date, end, customer.timezone) : undefined;
    if (endDate && endDate.getTime() <= startDate.getTime()) throw new ApiError('validation_failed', 'end_date: must be after start_date', [{ field: 'end_date', message: 'must be after start_date' }]);
    if (!customer.currency) await c.query('UPDATE customers SET currency = $2, updated_at = now() WHERE id = $1', [customer.id, invoicing]);
    const id = newId();
    await c.query(
      `INSERT INTO subscriptions (id, customer_id, plan_id, name, start_date, end_date, metadata, net_terms, auto_collection, auto_issuance,
         billing_cadence, per_credit_overage_amount, invoicing_threshold, default_invoice_memo)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
      [id, customer.id, plan.id, name ?? null, startDate, endDate ?? null, JSON.stringify(cleanMetadata(meta)), netTerms ?? null, autoCollection ?? null,
        autoIssuance ?? null, plan.billing_cadence, overage ?? null, threshold ?? null, b.default_invoice_memo ?? null],
    );
    for (const { r, old } of resolved) {
      const where = { planId: plan.id, subscriptionId: id, replacesPriceId: old.id, replacesLineageId: old.lineage_id };
      if (r.price) await insertPrice(c, newId(), r.price, where);
      if (r.override) {
        await insertPrice(c, newId(), {
          name: old.name, itemId: old.item_id, metricId: old.metric_id, cadence: old.cadence as PriceInput['cadence'], modelType: r.override.modelType,
          config: r.override.config, currency: old.currency, priceType: old.price_type as PriceInput['priceType'], fixedQuantity: old.fixed_price_quantity,
          billedInAdvance: old.billed_in_advance, externalPriceId: null, metadata: old.metadata,
        }, where);
      }
      if (r.allocation) {
        const replaced = await c.query<{ id: string }>('SELECT id FROM credit_allocations WHERE price_id = $1', [old.id]);
        await insertAllocation(c, newId(), r.allocation, invoicing, { ...where, replacesAllocationId: replaced.rows[0]?.id ?? null });
      }
    }
    await bumpCatalogVersion(c);
    return subscriptionView(c, await findSubscription(c, id));
  });
}

/** A bare date (YYYY-MM-DD) means its midnight in `timeZone`; a date-time is taken as given. */
function inZone(raw: unknown, parsed: Date, timeZone: string): Date {
  const m = typeof raw === 'string' ? /^(\d{4})-(\d{2})-(\d{2})$/.exec(raw) : null;
  return m ? new Date(zonedTimeToUtc(Number(m[1]), Number(m[2]), Number(m[3]), 0, 0, 0, timeZone)) : parsed;
}

/** A missing customer or plan named in the body is a 400 naming the field, not a 404. */
function refError(err: unknown, field: string): unknown {
  if (err instanceof ApiError && err.code === 'not_found') return new ApiError('validation_failed', `${field}: ${err.message}`, [{ field, message: err.message }]);
  return err;
}

export async function cancelSubscription(pool: Pool, id: string, body: unknown): Promise<Json> {
  const b = obj(body);
  const p = new Problems();
  const option = b.cancel_option;
  if (option !== 'immediate' && option !== 'end_of_subscription_term' && option !== 'requested_date') p.add('cancel_option', 'is required: immediate, end_of_subscription_term or requested_date');
  const requested = date(p, b.cancellation_date, 'cancellation_date');
  if (option === 'requested_date' && !requested) p.add('cancellation_date', 'is required with cancel_option requested_date');
  if (option !== 'requested_date' && given(b.cancellation_date)) p.add('cancellation_date', 'applies only to cancel_option requested_date');
  p.throwIfAny('cancellation');
  return withTx(pool, async (c) => {
    const s = await findSubscription(c, id, true);
    const now = (await c.query<{ now: Date }>('SELECT now() AS now')).rows[0]!.now;
    if (s.end_date && s.end_date.getTime() <= now.getTime()) throw new ApiError('conflict', `subscription ${id} ended at ${s.end_date.toISOString()}; it cannot be cancelled`);
    const customer = await findCustomer(c, { id: s.customer_id });
    let end: Date;
    if (option === 'immediate') end = new Date(Math.max(now.getTime(), s.start_date.getTime()));
    else if (option === 'end_of_subscription_term') {
      const at = Math.max(now.getTime(), s.start_date.getTime());
      const period = periodAt(s.start_date.getTime(), s.billing_cadence, customer.timezone, at, s.end_date?.getTime());
      end = new Date(period ? period.endMs : at);
    } else {
      end = inZone(b.cancellation_date, requested!, customer.timezone);
      const q = new Problems();
      if (end.getTime() < now.getTime() - 1000) q.add('cancellation_date', 'must not be in the past: usage already priced stays priced');
      if (end.getTime() < s.start_date.getTime()) q.add('cancellation_date', 'must not be before the start_date');
      q.throwIfAny('cancellation');
    }
    if (s.end_date && end.getTime() > s.end_date.getTime()) end = s.end_date;
    await c.query('UPDATE subscriptions SET end_date = $2, cancel_option = $3, cancelled_at = $4 WHERE id = $1', [id, end, option, now]);
    await bumpCatalogVersion(c);
    return subscriptionView(c, await findSubscription(c, id));
  });
}

function multi(query: URLSearchParams, name: string): string[] {
  return [...query.getAll(name), ...query.getAll(`${name}[]`)].filter((x) => x !== '');
}

export async function listSubscriptions(db: Queryable, query: URLSearchParams): Promise<Json> {
  const pq = pageQuery(query);
  const params: unknown[] = [];
  const where = pageFilters(pq, query, 's', params);
  const customerIds = multi(query, 'customer_id');
  if (customerIds.length) {
    params.push(customerIds);
    where.push(`s.customer_id = ANY($${params.length})`);
  }
  const externalIds = multi(query, 'external_customer_id');
  if (externalIds.length) {
    params.push(externalIds);
    where.push(`s.customer_id IN (SELECT id FROM customers WHERE external_customer_id = ANY($${params.length}))`);
  }
  const planId = query.get('plan_id');
  if (planId) {
    params.push(planId);
    where.push(`s.plan_id = $${params.length}`);
  }
  const extPlan = query.get('external_plan_id');
  if (extPlan) {
    params.push(extPlan);
    where.push(`s.plan_id IN (SELECT id FROM plans WHERE external_plan_id = $${params.length})`);
  }
  const status = query.get('status');
  if (status !== null) {
    const cond = { active: 's.start_date <= now() AND (s.end_date IS NULL OR s.end_date > now())', ended: 's.end_date <= now()', upcoming: 's.start_date > now()' }[status];
    if (!cond) throw new ApiError('validation_failed', 'status: must be active, ended or upcoming', [{ field: 'status', message: 'must be active, ended or upcoming' }]);
    where.push(cond);
  }
  params.push(pq.limit + 1);
  const r = await db.query<SubscriptionRow & { page_us: string }>(
    `${SUB_SELECT.replace('SELECT s.*', `SELECT s.*, ${pageKey('s')}`)} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY s.created_at DESC, s.id DESC LIMIT $${params.length}`,
    params,
  );
  const page = toPage(r.rows, pq.limit, (x) => x);
  const data = [];
  for (const s of page.data) data.push(await subscriptionView(db, s));
  return { data, pagination_metadata: page.pagination_metadata };
}

/**
 * Orb's subscription usage, ungrouped: per billable metric of the subscription's prices, the
 * quantity per billing period (or per day with granularity=day) in [timeframe_start,
 * timeframe_end), default the current period. Quantities come from `usage` (ClickHouse) when
 * the process has it, else they are 0.
 */
export async function fetchUsage(db: Queryable, id: string, query: URLSearchParams, usage?: UsageSource, limits: CatalogLimits = DEFAULT_LIMITS): Promise<Json> {
  const s = await findSubscription(db, id);
  const customer = await findCustomer(db, { id: s.customer_id });
  const p = new Problems();
  const from = date(p, query.get('timeframe_start'), 'timeframe_start');
  const to = date(p, query.get('timeframe_end'), 'timeframe_end');
  const granularity = query.get('granularity');
  if (granularity !== null && granularity !== 'day') p.add('granularity', 'must be day');
  const viewMode = query.get('view_mode') ?? 'periodic';
  if (viewMode !== 'periodic' && viewMode !== 'cumulative') p.add('view_mode', 'must be periodic or cumulative');
  for (const k of ['group_by', 'first_dimension_key', 'second_dimension_key']) if (query.get(k)) p.add(k, 'grouped usage is not supported');
  p.throwIfAny('query');
  const nowMs = Date.now();
  const current = periodAt(s.start_date.getTime(), s.billing_cadence, customer.timezone, Math.min(Math.max(nowMs, s.start_date.getTime()), (s.end_date?.getTime() ?? Infinity) - 1), s.end_date?.getTime());
  const fromMs = from?.getTime() ?? current?.startMs ?? s.start_date.getTime();
  const toMs = to?.getTime() ?? current?.endMs ?? nowMs;
  if (toMs <= fromMs) throw new ApiError('validation_failed', 'timeframe_end: must be after timeframe_start', [{ field: 'timeframe_end', message: 'must be after timeframe_start' }]);
  const metricFilter = query.get('billable_metric_id');
  const prices = (await subscriptionPrices(db, s)).filter((pr) => pr.metric_id && (!metricFilter || pr.metric_id === metricFilter));
  const metricIds = [...new Set(prices.map((pr) => pr.metric_id!))];
  const metrics = metricIds.length ? (await db.query<{ id: string; name: string; definition: MetricDefinition }>('SELECT id, name, definition FROM metrics WHERE id = ANY($1)', [metricIds])).rows : [];
  // Buckets: days (local midnights) or billing periods, clipped to the timeframe.
  const buckets: { startMs: number; endMs: number }[] = [];
  if (granularity === 'day') {
    let t = fromMs;
    while (t < toMs && buckets.length <= limits.maxUsageBuckets) {
      const next = Math.min(toMs, nextLocalMidnight(t, customer.timezone));
      buckets.push({ startMs: t, endMs: next });
      t = next;
    }
  } else {
    for (const per of billingPeriods(s.start_date.getTime(), s.billing_cadence, customer.timezone, { untilMs: toMs, endMs: s.end_date?.getTime(), maxPeriods: limits.maxUsageBuckets + 1 })) {
      if (per.endMs <= fromMs) continue;
      buckets.push({ startMs: Math.max(per.startMs, fromMs), endMs: Math.min(per.endMs, toMs) });
    }
    if (buckets.length === 0) buckets.push({ startMs: fromMs, endMs: toMs });
  }
  if (buckets.length > limits.maxUsageBuckets) {
    throw new ApiError('validation_failed', `timeframe_start: the timeframe spans more than ${limits.maxUsageBuckets} ${granularity === 'day' ? 'days' : 'billing periods'}; ask for a shorter one`, [{ field: 'timeframe_start', message: `the timeframe spans more than ${limits.maxUsageBuckets} ${granularity === 'day' ? 'days' : 'billing periods'}` }]);
  }
  const data = [];
  for (const m of metrics.sort((a, b) => metricIds.indexOf(a.id) - metricIds.indexOf(b.id))) {
    const quantities = usage
      ? await usage({ subscriptionId: s.id, metric: { id: m.id, aggregation: m.definition.aggregation, property: m.definition.property }, fromMs, bucketEndsMs: buckets.map((bk) => bk.endMs) })
      : buckets.map(() => '0');
    let running = 0n;
    const series = buckets.map((bk, i) => {
      // bigint picos: written as exact JSON numbers.
      const q = parseDecimal(quantities[i] ?? '0');
      running += q;
      return { timeframe_start: new Date(bk.startMs).toISOString(), timeframe_end: new Date(bk.endMs).toISOString(), quantity: viewMode === 'cumulative' ? running : q };
    });
    data.push({ billable_metric: { id: m.id, name: m.name }, usage: series, view_mode: viewMode });
  }
  return { data };
}

function nextLocalMidnight(ms: number, timeZone: string): number {
  // The first billing-period boundary of a daily walk: next local calendar day at 00:00.
  const f = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric' }).formatToParts(new Date(ms));
  const n = (t: string) => Number(f.find((x) => x.type === t)!.value);
  const d = new Date(Date.UTC(n('year'), n('month') - 1, n('day') + 1));
  return zoned(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), timeZone);
}

const zoned = (y: number, m: number, d: number, tz: string) => zonedTimeToUtc(y, m, d, 0, 0, 0, tz);
