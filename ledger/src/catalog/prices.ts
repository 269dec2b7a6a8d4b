// Prices: Orb's NewPlan*Price / NewSubscription*Price inputs for the models the rater prices
// (unit, tiered, package, matrix), validated field by field and normalized (decimals as minimal
// exact strings), fixed fees, and recurring credit allocations (Orb's allocation_price).
import { Problems } from '@drawdown/http';
import { parseDecimal } from '@drawdown/money';
import type { Queryable } from '@drawdown/pg';
import { badRef, bool, checkCurrency, cleanMetadata, decimal, DEFAULT_LIMITS, given, isFiat, metadata, str, type CatalogLimits, type Json } from './input';

export const PRICE_CADENCES = ['monthly', 'quarterly', 'annual', 'one_time'] as const;
export type PriceCadence = (typeof PRICE_CADENCES)[number];
export const MODELS = ['unit', 'tiered', 'package', 'matrix'] as const;
const CADENCE_MONTHS: Record<string, number> = { monthly: 1, quarterly: 3, annual: 12, one_time: 1 };

export interface PriceInput {
  name: string;
  itemId: string;
  metricId: string | null;
  cadence: PriceCadence;
  modelType: (typeof MODELS)[number];
  /** {<model>_config: {...}} normalized. */
  config: Json;
  currency: string;
  /** The price named its currency (else it is the plan's, checked there). */
  ownCurrency?: boolean;
  priceType: 'usage_price' | 'fixed_price';
  fixedQuantity: string | null;
  billedInAdvance: boolean;
  externalPriceId: string | null;
  metadata: Record<string, string>;
}

export interface AllocationInput {
  amount: string;
  cadence: PriceCadence;
  currency: string;
  expiresAtEndOfCadence: boolean;
  customExpiration: { duration: number; duration_unit: 'day' | 'month' } | null;
  itemId: string;
  perUnitCostBasis: string;
  metadata: Record<string, string>;
}

function cadence(p: Problems, v: unknown, at: string): PriceCadence | undefined {
  if (typeof v === 'string' && (PRICE_CADENCES as readonly string[]).includes(v)) return v as PriceCadence;
  if (v === 'semi_annual' || v === 'custom') p.add(at, `"${v}" is not supported; use ${PRICE_CADENCES.join(', ')}`);
  else if (given(v)) p.add(at, `must be one of ${PRICE_CADENCES.join(', ')}`);
  else p.add(at, `is required: one of ${PRICE_CADENCES.join(', ')}`);
  return undefined;
}

/** A tier bound or package size: a non-negative JSON number with at most 12 decimals. */
function quantity(p: Problems, v: unknown, at: string, opts: { integer?: boolean; min?: number } = {}): number | undefined {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    p.add(at, `is required: a number${opts.integer ? ' (integer)' : ''}`);
    return undefined;
  }
  try {
    parseDecimal(v, at);
  } catch (err) {
    p.add(at, (err as Error).message.replace(`${at}: `, ''));
    return undefined;
  }
  if (opts.integer && !Number.isInteger(v)) p.add(at, 'must be an integer');
  else if (v < (opts.min ?? 0)) p.add(at, `must be at least ${opts.min ?? 0}`);
  else return v;
  return undefined;
}

function configObject(p: Problems, price: Json, key: string, at: string): Json | undefined {
  const v = price[key];
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    p.add(`${at}.${key}`, `is required for model_type ${String(price.model_type)}`);
    return undefined;
  }
  return v as Json;
}

/** Validates the model config; returns {<model>_config: normalized}. */
export function modelConfig(p: Problems, price: Json, at: string, limits: CatalogLimits = DEFAULT_LIMITS): Json | undefined {
  switch (price.model_type) {
    case 'unit': {
      const c = configObject(p, price, 'unit_config', at);
      if (!c) return undefined;
      const unit = decimal(p, c.unit_amount, `${at}.unit_config.unit_amount`, { required: true, min: 'zero' });
      const out: Json = { unit_amount: unit };
      if (given(c.prorated)) out.prorated = bool(p, c, 'prorated', `${at}.unit_config.prorated`);
      return { unit_config: out };
    }
    case 'package': {
      const c = configObject(p, price, 'package_config', at);
      if (!c) return undefined;
      const amount = decimal(p, c.package_amount, `${at}.package_config.package_amount`, { required: true, min: 'zero' });
      const size = quantity(p, c.package_size, `${at}.package_config.package_size`, { integer: true, min: 1 });
      return { package_config: { package_amount: amount, package_size: size } };
    }
    case 'tiered': {
      const c = configObject(p, price, 'tiered_config', at);
      if (!c) return undefined;
      const tiers = c.tiers;
      const tat = `${at}.tiered_config.tiers`;
      if (!Array.isArray(tiers) || tiers.length === 0) {
        p.add(tat, 'is required: a non-empty array of {first_unit, last_unit, unit_amount}');
        return undefined;
      }
      if (tiers.length > limits.maxPriceEntries) {
        p.add(tat, `must hold at most ${limits.maxPriceEntries} tiers`);
        return undefined;
      }
      const out: Json[] = [];
      let prevLast: number | null | undefined;
      tiers.forEach((t: Json, i: number) => {
        const ti = `${tat}[${i}]`;
        if (!t || typeof t !== 'object') {
          p.add(ti, 'must be an object {first_unit, last_unit, unit_amount}');
          return;
        }
        const first = quantity(p, t.first_unit, `${ti}.first_unit`);
        const last = given(t.last_unit) ? quantity(p, t.last_unit, `${ti}.last_unit`) : null;
        const unit = decimal(p, t.unit_amount, `${ti}.unit_amount`, { required: true, min: 'zero' });
        if (i === 0 && first !== undefined && first !== 0) p.add(`${ti}.first_unit`, 'the first tier must start at 0');
        if (i > 0 && first !== undefined && prevLast !== undefined && first !== prevLast) {
          p.add(`${ti}.first_unit`, prevLast === null ? 'only the last tier may be open-ended (last_unit null)' : `must equal the previous tier's last_unit (${prevLast}): tiers are contiguous`);
        }
        if (first !== undefined && last != null && last <= first) p.add(`${ti}.last_unit`, 'must be greater than first_unit');
        prevLast = last;
        out.push({ first_unit: first, last_unit: last, unit_amount: unit });
      });
      const norm: Json = { tiers: out };
      if (given(c.prorated)) norm.prorated = bool(p, c, 'prorated', `${at}.tiered_config.prorated`);
      return { tiered_config: norm };
    }
    case 'matrix': {
      const c = configObject(p, price, 'matrix_config', at);
      if (!c) return undefined;
      const mat = `${at}.matrix_config`;
      const dims = c.dimensions;
      if (!Array.isArray(dims) || dims.length < 1 || dims.length > 2 || dims.some((d) => typeof d !== 'string' || d === '')) {
        p.add(`${mat}.dimensions`, 'is required: one or two event property names');
        return undefined;
      }
      if (new Set(dims).size !== dims.length) p.add(`${mat}.dimensions`, 'must name different properties');
      const def = decimal(p, c.default_unit_amount, `${mat}.default_unit_amount`, { required: true, min: 'zero' });
      if (!Array.isArray(c.matrix_values)) {
        p.add(`${mat}.matrix_values`, 'is required: an array of {dimension_values, unit_amount}');
        return undefined;
      }
      if (c.matrix_values.length > limits.maxPriceEntries) {
        p.add(`${mat}.matrix_values`, `must hold at most ${limits.maxPriceEntries} values`);
        return undefined;
      }
      const seen = new Set<string>();
      const values = (c.matrix_values as Json[]).map((v, i) => {
        const vat = `${mat}.matrix_values[${i}]`;
        const dv = v?.dimension_values;
        if (!Array.isArray(dv) || dv.length !== dims.length || dv.some((x) => x !== null && typeof x !== 'string')) {
          p.add(`${vat}.dimension_values`, `must be an array of ${dims.length} value(s), one per dimension (${dims.join(', ')})`);
        } else {
          const key = JSON.stringify(dv);
          if (seen.has(key)) p.add(`${vat}.dimension_values`, `duplicates an earlier entry ${key}`);
          seen.add(key);
        }
        const unit = decimal(p, v?.unit_amount, `${vat}.unit_amount`, { required: true, min: 'zero' });
        return { dimension_values: dv, unit_amount: unit };
      });
      return { matrix_config: { dimensions: dims, default_unit_amount: def, matrix_values: values } };
    }
    default:
      p.add(`${at}.model_type`, `${price.model_type === undefined ? 'is required' : `"${String(price.model_type)}" is not supported`}: use ${MODELS.join(', ')}`);
      return undefined;
  }
}

/** Checks a price body (shape only); `references` collects the ids to check in the database. */
export function parsePrice(p: Problems, price: unknown, at: string, defaultCurrency: string, limits: CatalogLimits = DEFAULT_LIMITS): PriceInput | undefined {
  if (!price || typeof price !== 'object' || Array.isArray(price)) {
    p.add(at, 'must be a price object');
    return undefined;
  }
  const b = price as Json;
  const before = p.list.length;
  const name = str(p, b, 'name', { required: true, max: 500, at: `${at}.name` });
  const itemId = str(p, b, 'item_id', { required: true, at: `${at}.item_id` });
  const metricId = given(b.billable_metric_id) ? str(p, b, 'billable_metric_id', { at: `${at}.billable_metric_id` }) ?? null : null;
  const cad = cadence(p, b.cadence, `${at}.cadence`);
  const config = modelConfig(p, b, at, limits);
  if (given(b.currency) && (typeof b.currency !== 'string' || b.currency === '')) p.add(`${at}.currency`, 'must be a currency code or a pricing unit');
  const currency = typeof b.currency === 'string' && b.currency !== '' ? b.currency : defaultCurrency;
  const priceType = metricId ? 'usage_price' : 'fixed_price';
  let fixedQuantity: string | null = null;
  if (priceType === 'fixed_price') {
    fixedQuantity = given(b.fixed_price_quantity) ? decimal(p, b.fixed_price_quantity, `${at}.fixed_price_quantity`, { min: 'zero' }) ?? null : '1';
    if (b.model_type === 'matrix') p.add(`${at}.model_type`, 'a fixed fee (no billable_metric_id) cannot use the matrix model');
  } else {
    if (given(b.fixed_price_quantity)) p.add(`${at}.fixed_price_quantity`, 'applies to fixed fees only (prices without billable_metric_id)');
    if (cad === 'one_time') p.add(`${at}.cadence`, 'a usage price bills per period: monthly, quarterly or annual');
  }
  const billedInAdvance = bool(p, b, 'billed_in_advance', `${at}.billed_in_advance`) ?? priceType === 'fixed_price';
  const ext = given(b.external_price_id) ? str(p, b, 'external_price_id', { at: `${at}.external_price_id`, max: 256 }) ?? null : null;
  const meta = metadata(p, b, 'metadata', `${at}.metadata`);
  if (p.list.length > before || !name || !itemId || !cad || !config) return undefined;
  return {
    name, itemId, metricId, cadence: cad, modelType: b.model_type as PriceInput['modelType'], config, currency, ownCurrency: given(b.currency), priceType,
    fixedQuantity, billedInAdvance, externalPriceId: ext, metadata: cleanMetadata(meta),
  };
}

export function parseAllocation(p: Problems, v: unknown, at: string): AllocationInput | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    p.add(at, 'must be an object {amount, cadence, currency, expires_at_end_of_cadence}');
    return undefined;
  }
  const b = v as Json;
  const before = p.list.length;
  const amount = decimal(p, b.amount, `${at}.amount`, { required: true, min: 'positive' });
  const cad = cadence(p, b.cadence, `${at}.cadence`);
  const currency = str(p, b, 'currency', { required: true, at: `${at}.currency` });
  const expires = bool(p, b, 'expires_at_end_of_cadence', `${at}.expires_at_end_of_cadence`) ?? false;
  let custom: AllocationInput['customExpiration'] = null;
  if (given(b.custom_expiration)) {
    const c = b.custom_expiration as Json;
    if (typeof c !== 'object' || !Number.isInteger(c.duration) || (c.duration as number) < 1 || (c.duration_unit !== 'day' && c.duration_unit !== 'month')) {
      p.add(`${at}.custom_expiration`, 'must be {duration: a positive integer, duration_unit: day or month}');
    } else custom = { duration: c.duration as number, duration_unit: c.duration_unit };
    if (expires) p.add(`${at}.custom_expiration`, 'give expires_at_end_of_cadence or custom_expiration, not both');
  }
  const itemId = given(b.item_id) ? str(p, b, 'item_id', { at: `${at}.item_id` }) : 'credit_allocation';
  const basis = given(b.per_unit_cost_basis) ? decimal(p, b.per_unit_cost_basis, `${at}.per_unit_cost_basis`, { min: 'zero' }) : '0';
  if (given(b.filters) && Array.isArray(b.filters) && b.filters.length > 0) p.add(`${at}.filters`, 'allocation filters are not supported');
  const meta = metadata(p, b, 'metadata', `${at}.metadata`);
  if (p.list.length > before || !amount || !cad || !currency || !itemId || basis === undefined) return undefined;
  return { amount, cadence: cad, currency, expiresAtEndOfCadence: expires, customExpiration: custom, itemId, perUnitCostBasis: basis, metadata: cleanMetadata(meta) };
}

/** The database checks of a parsed price: item, metric and currency exist. */
export async function checkPriceRefs(db: Queryable, p: Problems, price: PriceInput, at: string): Promise<void> {
  if ((await db.query('SELECT 1 FROM items WHERE id = $1', [price.itemId])).rowCount === 0) p.add(`${at}.item_id`, `no item with id "${price.itemId}"`);
  if (price.metricId && (await db.query('SELECT 1 FROM metrics WHERE id = $1', [price.metricId])).rowCount === 0) p.add(`${at}.billable_metric_id`, `no metric with id "${price.metricId}"`);
  if (price.ownCurrency) await checkCurrency(db, p, price.currency, `${at}.currency`);
}

export async function checkAllocationRefs(db: Queryable, p: Problems, a: AllocationInput, at: string): Promise<void> {
  if ((await db.query('SELECT 1 FROM items WHERE id = $1', [a.itemId])).rowCount === 0) p.add(`${at}.item_id`, `no item with id "${a.itemId}"`);
  await checkCurrency(db, p, a.currency, `${at}.currency`);
}

export interface InsertPrice {
  planId: string;
  subscriptionId?: string | null;
  lineageId?: string;
  replacesPriceId?: string | null;
  replacesLineageId?: string | null;
  effectiveFrom?: Date | null;
}

export async function insertPrice(db: Queryable, id: string, price: PriceInput, where: InsertPrice, creditAllocation: Json | null = null): Promise<void> {
  await db.query(
    `INSERT INTO prices (id, plan_id, subscription_id, item_id, metric_id, name, model_type, cadence, currency, config, price_type,
       fixed_price_quantity, billed_in_advance, external_price_id, metadata, lineage_id, replaces_price_id, replaces_lineage_id, effective_from, credit_allocation, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, clock_timestamp())`, // clock_timestamp: prices keep the order given
    [id, where.planId, where.subscriptionId ?? null, price.itemId, price.metricId, price.name, price.modelType, price.cadence, price.currency,
      JSON.stringify(price.config), price.priceType, price.fixedQuantity, price.billedInAdvance, price.externalPriceId, JSON.stringify(price.metadata),
      where.lineageId ?? id, where.replacesPriceId ?? null, where.replacesLineageId ?? null, where.effectiveFrom ?? null, creditAllocation ? JSON.stringify(creditAllocation) : null],
  );
}

/** An allocation is a fixed price (quantity = credits per period, unit amount = cost basis) plus its grant terms. */
export async function insertAllocation(db: Queryable, priceId: string, a: AllocationInput, invoicingCurrency: string, where: InsertPrice & { replacesAllocationId?: string | null }): Promise<string> {
  const price: PriceInput = {
    name: `${a.amount} ${a.currency} allocation`, itemId: a.itemId, metricId: null, cadence: a.cadence, modelType: 'unit',
    config: { unit_config: { unit_amount: a.perUnitCostBasis } }, currency: invoicingCurrency, priceType: 'fixed_price',
    fixedQuantity: a.amount, billedInAdvance: true, externalPriceId: null, metadata: a.metadata,
  };
  await insertPrice(db, priceId, price, where, { allows_rollover: !a.expiresAtEndOfCadence, currency: a.currency, custom_expiration: a.customExpiration });
  const id = `${priceId}_alloc`;
  await db.query(
    `INSERT INTO credit_allocations (id, plan_id, subscription_id, price_id, replaces_allocation_id, amount, currency, cadence, expires_at_end_of_cadence, custom_expiration, per_unit_cost_basis)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [id, where.planId, where.subscriptionId ?? null, priceId, where.replacesAllocationId ?? null, a.amount, a.currency, a.cadence, a.expiresAtEndOfCadence,
      a.customExpiration ? JSON.stringify(a.customExpiration) : null, a.perUnitCostBasis],
  );
  return id;
}

export interface PriceRow {
  id: string;
  plan_id: string;
  subscription_id: string | null;
  item_id: string;
  item_name: string;
  metric_id: string | null;
  name: string;
  model_type: string;
  cadence: string;
  currency: string;
  config: Json;
  price_type: string;
  fixed_price_quantity: string | null;
  billed_in_advance: boolean;
  external_price_id: string | null;
  credit_allocation: Json | null;
  metadata: Record<string, string>;
  lineage_id: string;
  replaces_price_id: string | null;
  replaces_lineage_id: string | null;
  effective_from: Date | null;
  effective_to: Date | null;
  created_at: Date;
}

export const PRICE_SELECT = 'SELECT p.*, p.fixed_price_quantity::text AS fixed_price_quantity, i.name AS item_name FROM prices p JOIN items i ON i.id = p.item_id';

export function priceDto(r: PriceRow): Json {
  const months = CADENCE_MONTHS[r.cadence] ?? 1;
  return {
    ...r.config,
    id: r.id,
    name: r.name,
    model_type: r.model_type,
    price_type: r.price_type,
    cadence: r.cadence,
    currency: r.currency,
    billable_metric: r.metric_id ? { id: r.metric_id } : null,
    item: { id: r.item_id, name: r.item_name },
    billing_cycle_configuration: { duration: months, duration_unit: 'month' },
    invoicing_cycle_configuration: null,
    billing_mode: r.billed_in_advance ? 'in_advance' : 'in_arrear',
    composite_price_filters: null,
    conversion_rate: null,
    conversion_rate_config: null,
    credit_allocation: r.credit_allocation,
    discount: null,
    external_price_id: r.external_price_id,
    // bigint picos: written as an exact JSON number.
    fixed_price_quantity: r.fixed_price_quantity === null ? null : parseDecimal(r.fixed_price_quantity),
    invoice_grouping_key: null,
    maximum: null,
    maximum_amount: null,
    minimum: null,
    minimum_amount: null,
    metadata: r.metadata,
    plan_phase_order: null,
    replaces_price_id: r.replaces_price_id,
    dimensional_price_configuration: null,
    effective_from: r.effective_from ? r.effective_from.toISOString() : null,
    effective_to: r.effective_to ? r.effective_to.toISOString() : null,
    created_at: r.created_at.toISOString(),
  };
}

export { isFiat, badRef };
