// Plans: prices per metric (unit, tiered, package, matrix) in a pricing unit or fiat, fixed
// fees, recurring credit allocations, a billing cadence and the overage rate from credits to
// the invoicing currency. Price changes are versions: a new row effective from a date, the
// previous one closed at that date, so events are priced by the version in force.
import { bumpCatalogVersion } from '@drawdown/catalog';
import { ApiError, Problems } from '@drawdown/http';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { withTx, type Pool, type Queryable } from '@drawdown/pg';
import { newId } from '../ids';
import {
  checkCurrency, cleanMetadata, date, decimal, DEFAULT_LIMITS, type CatalogLimits, given, int, isFiat, mergeMetadata, metadata, notFound, obj, pageFilters, pageKey, pageQuery, str, toPage, type Json,
} from './input';
import {
  checkAllocationRefs, checkPriceRefs, insertAllocation, insertPrice, modelConfig, parseAllocation, parsePrice, priceDto, PRICE_SELECT,
  type AllocationInput, type PriceInput, type PriceRow,
} from './prices';

export const BILLING_CADENCES = ['monthly', 'quarterly', 'annual'] as const;
const ORDER: Record<string, number> = { monthly: 1, quarterly: 3, annual: 12 };

export interface PlanRow {
  id: string;
  external_plan_id: string | null;
  name: string;
  currency: string;
  invoicing_currency: string | null;
  status: string;
  net_terms: number | null;
  description: string | null;
  default_invoice_memo: string | null;
  metadata: Record<string, string>;
  version: number;
  billing_cadence: 'monthly' | 'quarterly' | 'annual';
  per_credit_overage_amount: string | null;
  created_at: Date;
}

const PLAN_SELECT = 'SELECT pl.*, pl.per_credit_overage_amount::text AS per_credit_overage_amount FROM plans pl';

/** The invoicing (fiat) currency of a plan: its own, or its pricing unit's. */
export async function invoicingCurrency(db: Queryable, currency: string): Promise<string> {
  if (isFiat(currency)) return currency;
  const r = await db.query<{ currency: string }>('SELECT currency FROM pricing_units WHERE name = $1', [currency]);
  return r.rows[0]?.currency ?? currency;
}

/** Prices of a plan in force now or scheduled (plan-level rows, not subscription overrides). */
export async function planPrices(db: Queryable, planId: string, opts: { all?: boolean } = {}): Promise<PriceRow[]> {
  const r = await db.query<PriceRow>(
    `${PRICE_SELECT} WHERE p.plan_id = $1 AND p.subscription_id IS NULL ${opts.all ? '' : 'AND (p.effective_to IS NULL OR p.effective_to > now())'}
      ORDER BY p.created_at, p.id`,
    [planId],
  );
  return r.rows;
}

export function planDto(pl: PlanRow, prices: PriceRow[]): Json {
  return {
    id: pl.id,
    name: pl.name,
    description: pl.description ?? '',
    currency: pl.currency,
    invoicing_currency: pl.invoicing_currency ?? pl.currency,
    external_plan_id: pl.external_plan_id,
    status: pl.status,
    net_terms: pl.net_terms,
    default_invoice_memo: pl.default_invoice_memo,
    metadata: pl.metadata,
    version: pl.version,
    billing_cadence: pl.billing_cadence,
    per_credit_overage_amount: pl.per_credit_overage_amount === null ? null : formatDecimal(parseDecimal(pl.per_credit_overage_amount)),
    prices: prices.map(priceDto),
    adjustments: [],
    base_plan: null,
    base_plan_id: null,
    discount: null,
    maximum: null,
    maximum_amount: null,
    minimum: null,
    minimum_amount: null,
    plan_phases: null,
    product: { id: pl.id, name: pl.name, created_at: pl.created_at.toISOString() },
    trial_config: { trial_period: null, trial_period_unit: 'days' },
    created_at: pl.created_at.toISOString(),
  };
}

export async function findPlan(db: Queryable, ref: { id?: string; externalId?: string }, forUpdate = false): Promise<PlanRow> {
  const lock = forUpdate ? ' FOR UPDATE' : '';
  const r = ref.id !== undefined
    ? await db.query<PlanRow>(`${PLAN_SELECT} WHERE pl.id = $1${lock}`, [ref.id])
    : await db.query<PlanRow>(`${PLAN_SELECT} WHERE pl.external_plan_id = $1${lock}`, [ref.externalId]);
  if (!r.rows[0]) throw ref.id !== undefined ? notFound('plan', 'id', ref.id) : notFound('plan', 'external_plan_id', ref.externalId!);
  return r.rows[0];
}

export async function fetchPlan(db: Queryable, ref: { id?: string; externalId?: string }): Promise<Json> {
  const pl = await findPlan(db, ref);
  return planDto(pl, await planPrices(db, pl.id));
}

interface PlanEntry {
  price?: PriceInput;
  allocation?: AllocationInput;
}

export async function createPlan(pool: Pool, body: unknown, limits: CatalogLimits = DEFAULT_LIMITS): Promise<Json> {
  const b = obj(body);
  const p = new Problems();
  const name = str(p, b, 'name', { required: true, max: 500 });
  const currency = str(p, b, 'currency', { required: true, max: 63 });
  const ext = given(b.external_plan_id) ? str(p, b, 'external_plan_id', { max: 256 }) : undefined;
  if (given(b.description) && typeof b.description !== 'string') p.add('description', 'must be a string');
  if (given(b.default_invoice_memo) && typeof b.default_invoice_memo !== 'string') p.add('default_invoice_memo', 'must be a string');
  const netTerms = int(p, b, 'net_terms', 0, 365);
  const meta = metadata(p, b);
  const status = b.status ?? 'active';
  if (status !== 'active' && status !== 'draft') p.add('status', 'must be active or draft');
  let cadence: string | undefined;
  if (given(b.billing_cadence)) {
    if (!(BILLING_CADENCES as readonly unknown[]).includes(b.billing_cadence)) p.add('billing_cadence', `must be one of ${BILLING_CADENCES.join(', ')}`);
    else cadence = b.billing_cadence as string;
  }
  const overage = decimal(p, b.per_credit_overage_amount, 'per_credit_overage_amount', { min: 'zero' });
  for (const k of ['adjustments', 'plan_phases']) if (Array.isArray(b[k]) && (b[k] as unknown[]).length > 0) p.add(k, 'is not supported');
  const entries: PlanEntry[] = [];
  if (!Array.isArray(b.prices)) p.add('prices', 'is required: an array of {price} or {allocation_price}');
  else if (b.prices.length > limits.maxPricesPerPlan) p.add('prices', `must hold at most ${limits.maxPricesPerPlan} prices`);
  else {
    (b.prices as unknown[]).forEach((e, i) => {
      const at = `prices[${i}]`;
      const entry = (e ?? {}) as Json;
      if (given(entry.price) && given(entry.allocation_price)) p.add(at, 'give price or allocation_price, not both');
      else if (given(entry.price)) entries.push({ price: parsePrice(p, entry.price, `${at}.price`, currency ?? '', limits) });
      else if (given(entry.allocation_price)) entries.push({ allocation: parseAllocation(p, entry.allocation_price, `${at}.allocation_price`) });
      else p.add(at, 'must hold price or allocation_price');
    });
  }
  p.throwIfAny('plan');
  return withTx(pool, async (c) => {
    const q = new Problems();
    const kind = await checkCurrency(c, q, currency!, 'currency');
    for (const [i, e] of entries.entries()) {
      if (e.price) await checkPriceRefs(c, q, e.price, `prices[${i}].price`);
      if (e.allocation) await checkAllocationRefs(c, q, e.allocation, `prices[${i}].allocation_price`);
    }
    if (overage !== undefined && kind === 'fiat') q.add('per_credit_overage_amount', 'applies to plans in a pricing unit (credits), not in a fiat currency');
    q.throwIfAny('plan');
    const invoicing = await invoicingCurrency(c, currency!);
    // The billing period: given, else the shortest recurring cadence of the plan's prices.
    const recurring = entries.map((e) => (e.price ?? e.allocation)!.cadence).filter((x) => x !== 'one_time');
    const billing = cadence ?? (recurring.sort((x, y) => ORDER[x]! - ORDER[y]!)[0] ?? 'monthly');
    const id = newId();
    try {
      await c.query(
        `INSERT INTO plans (id, external_plan_id, name, currency, invoicing_currency, status, net_terms, description, default_invoice_memo, metadata, billing_cadence, per_credit_overage_amount)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [id, ext ?? null, name, currency, invoicing, status, netTerms ?? null, b.description ?? null, b.default_invoice_memo ?? null, JSON.stringify(cleanMetadata(meta)), billing, overage ?? null],
      );
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new ApiError('conflict', `external_plan_id: a plan with external_plan_id "${ext}" exists already`, [{ field: 'external_plan_id', message: 'is taken' }]);
      throw err;
    }
    for (const e of entries) {
      if (e.price) await insertPrice(c, newId(), e.price, { planId: id });
      if (e.allocation) await insertAllocation(c, newId(), e.allocation, invoicing, { planId: id });
    }
    await bumpCatalogVersion(c);
    return fetchPlan(c, { id });
  });
}

/** Orb's plan update: description, external_plan_id, metadata (plus our default_invoice_memo, overage rate). */
export async function updatePlan(pool: Pool, ref: { id?: string; externalId?: string }, body: unknown): Promise<Json> {
  const b = obj(body);
  const p = new Problems();
  if (b.description !== undefined && b.description !== null && typeof b.description !== 'string') p.add('description', 'must be a string');
  const ext = given(b.external_plan_id) ? str(p, b, 'external_plan_id', { max: 256 }) : undefined;
  const meta = metadata(p, b);
  const overage = decimal(p, b.per_credit_overage_amount, 'per_credit_overage_amount', { min: 'zero' });
  for (const k of ['name', 'currency', 'prices']) if (b[k] !== undefined) p.add(k, k === 'prices' ? 'change prices with POST /v1/plans/{plan_id}/prices/{price_id}/versions' : 'cannot be changed; create a new plan');
  p.throwIfAny('plan');
  return withTx(pool, async (c) => {
    const pl = await findPlan(c, ref, true);
    if (overage !== undefined && isFiat(pl.currency)) throw new ApiError('validation_failed', 'per_credit_overage_amount: applies to plans in a pricing unit', [{ field: 'per_credit_overage_amount', message: 'applies to plans in a pricing unit' }]);
    try {
      await c.query(
        `UPDATE plans SET description = $2, external_plan_id = $3, metadata = $4, per_credit_overage_amount = $5, updated_at = now() WHERE id = $1`,
        [pl.id, b.description !== undefined ? b.description : pl.description, ext ?? pl.external_plan_id, JSON.stringify(mergeMetadata(pl.metadata, meta)), overage ?? pl.per_credit_overage_amount],
      );
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new ApiError('conflict', `external_plan_id: a plan with external_plan_id "${ext}" exists already`, [{ field: 'external_plan_id', message: 'is taken' }]);
      throw err;
    }
    await bumpCatalogVersion(c);
    return fetchPlan(c, { id: pl.id });
  });
}

/**
 * A new version of a plan price: same item, metric, cadence and currency; a new model config,
 * in force from `effective_from` (default now, never in the past). The version it follows is
 * closed at that instant. Subscriptions of the plan pick it up; their overrides stay.
 */
export async function createPriceVersion(pool: Pool, planId: string, priceId: string, body: unknown, limits: CatalogLimits = DEFAULT_LIMITS): Promise<Json> {
  const b = obj(body);
  const p = new Problems();
  const config = modelConfig(p, b, 'price', limits);
  const from = given(b.effective_from) ? date(p, b.effective_from, 'effective_from') : undefined;
  const name = given(b.name) ? str(p, b, 'name', { max: 500 }) : undefined;
  p.throwIfAny('price');
  const fixedModel = b.model_type === 'matrix';
  return withTx(pool, async (c) => {
    const pl = await findPlan(c, { id: planId }, true);
    const cur = await c.query<PriceRow>(`${PRICE_SELECT} WHERE p.id = $1 AND p.plan_id = $2 AND p.subscription_id IS NULL`, [priceId, pl.id]);
    const old = cur.rows[0];
    if (!old) throw notFound('price', 'id', priceId);
    if (old.credit_allocation) throw new ApiError('validation_failed', 'price_id: a credit allocation is not versioned this way', [{ field: 'price_id', message: 'is a credit allocation' }]);
    if (fixedModel && old.metric_id === null) throw new ApiError('validation_failed', 'model_type: a fixed fee cannot use the matrix model', [{ field: 'model_type', message: 'a fixed fee cannot use the matrix model' }]);
    // The open version of the lineage (the latest).
    const open = (await c.query<PriceRow>(`${PRICE_SELECT} WHERE p.lineage_id = $1 AND p.subscription_id IS NULL AND p.effective_to IS NULL FOR UPDATE OF p`, [old.lineage_id])).rows[0]!;
    const now = (await c.query<{ now: Date }>('SELECT now() AS now')).rows[0]!.now;
    const effective = from ?? now;
    const q = new Problems();
    if (effective.getTime() < now.getTime() - 1000) q.add('effective_from', 'must not be in the past: events already priced keep their price');
    if (open.effective_from && effective.getTime() <= open.effective_from.getTime()) q.add('effective_from', `must be after the latest version's effective_from (${open.effective_from.toISOString()})`);
    q.throwIfAny('price');
    await c.query('UPDATE prices SET effective_to = $2 WHERE id = $1', [open.id, effective]);
    const id = newId();
    await insertPrice(c, id, {
      name: name ?? open.name, itemId: open.item_id, metricId: open.metric_id, cadence: open.cadence as PriceInput['cadence'],
      modelType: b.model_type as PriceInput['modelType'], config: config!, currency: open.currency, priceType: open.price_type as PriceInput['priceType'],
      fixedQuantity: open.fixed_price_quantity, billedInAdvance: open.billed_in_advance, externalPriceId: open.external_price_id, metadata: open.metadata,
    }, { planId: pl.id, lineageId: open.lineage_id, effectiveFrom: effective });
    await c.query('UPDATE plans SET version = version + 1, updated_at = now() WHERE id = $1', [pl.id]);
    await bumpCatalogVersion(c);
    return fetchPlan(c, { id: pl.id });
  });
}

export async function listPlans(db: Queryable, query: URLSearchParams): Promise<Json> {
  const pq = pageQuery(query);
  const params: unknown[] = [];
  const where = pageFilters(pq, query, 'pl', params);
  const status = query.get('status');
  if (status !== null) {
    if (!['active', 'archived', 'draft'].includes(status)) throw new ApiError('validation_failed', 'status: must be active, archived or draft', [{ field: 'status', message: 'must be active, archived or draft' }]);
    params.push(status);
    where.push(`pl.status = $${params.length}`);
  }
  params.push(pq.limit + 1);
  const r = await db.query<PlanRow & { page_us: string }>(
    `${PLAN_SELECT.replace('SELECT pl.*', `SELECT pl.*, ${pageKey('pl')}`)} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY pl.created_at DESC, pl.id DESC LIMIT $${params.length}`,
    params,
  );
  const page = toPage(r.rows, pq.limit, (x) => x);
  const data = [];
  for (const pl of page.data) data.push(planDto(pl, await planPrices(db, pl.id)));
  return { data, pagination_metadata: page.pagination_metadata };
}
