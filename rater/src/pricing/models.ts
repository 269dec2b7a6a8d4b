// Price models, exact: quantities and amounts are bigint picos (@drawdown/money, scale 12).
// Unit and matrix price one event alone; tiered and package depend on the cumulative quantity
// of the (subscription, price, billing period), so an event is charged the increment of the
// period's total: amount = F(cum + q) - F(cum), each F rounded once (half-even to 12 places).
// The amounts of a period therefore sum to exactly F(period total), whatever the batching.
import { PriceConfigError, configDecimal, matrixUnitAmount, periodAt, type PriceSnap, type SubscriptionSnap } from '@drawdown/catalog';
import { ONE, ceilDivQuantity, divRoundInt, mul } from '@drawdown/money';

export class Unpriceable extends Error {
  override readonly name = 'Unpriceable';
  readonly code = 'unpriceable';
}

export type PropertyValue = string | number | boolean | null;

/** Whether a model's amount depends on the period's cumulative quantity. */
export function isCumulative(modelType: string): boolean {
  return modelType === 'tiered' || modelType === 'package';
}

/** A price config's problem as the rater's reason for leaving an event unpriced. */
function unpriceable<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof PriceConfigError) throw new Unpriceable(err.message);
    throw err;
  }
}

/** A decimal of a price config (@drawdown/catalog's configDecimal). */
const dec = (v: unknown, field: string): bigint => unpriceable(() => configDecimal(v, field));

interface Tier {
  first: bigint;
  last: bigint | null;
  unit: bigint;
}

// Parsed configs are cached per price object: a snapshot's prices are immutable.
const tierCache = new WeakMap<PriceSnap, Tier[]>();
const unitCache = new WeakMap<PriceSnap, bigint>();

function tiersOf(price: PriceSnap): Tier[] {
  let t = tierCache.get(price);
  if (t) return t;
  const cfg = price.config.tiered_config as { tiers?: { first_unit: unknown; last_unit?: unknown; unit_amount: unknown }[] } | undefined;
  if (!cfg || !Array.isArray(cfg.tiers) || cfg.tiers.length === 0) throw new Unpriceable(`price ${price.id}: tiered_config.tiers missing`);
  t = cfg.tiers.map((x, i) => ({
    first: dec(x.first_unit, `tiered_config.tiers[${i}].first_unit`),
    last: x.last_unit === null || x.last_unit === undefined ? null : dec(x.last_unit, `tiered_config.tiers[${i}].last_unit`),
    unit: dec(x.unit_amount, `tiered_config.tiers[${i}].unit_amount`),
  }));
  tierCache.set(price, t);
  return t;
}

/** Graduated tiered amount of a cumulative quantity q, at scale 24 (unrounded). */
function tieredRaw(tiers: Tier[], q: bigint): bigint {
  let total = 0n;
  for (const t of tiers) {
    if (q <= t.first) continue;
    const top = t.last === null || q < t.last ? q : t.last;
    if (top > t.first) total += (top - t.first) * t.unit;
  }
  return total;
}

function tieredTotal(price: PriceSnap, q: bigint): bigint {
  return divRoundInt(tieredRaw(tiersOf(price), q), ONE, 'half_even');
}

function packageTotal(price: PriceSnap, q: bigint): bigint {
  const cfg = price.config.package_config as { package_amount?: unknown; package_size?: unknown } | undefined;
  if (!cfg) throw new Unpriceable(`price ${price.id}: package_config missing`);
  const amount = dec(cfg.package_amount, 'package_config.package_amount');
  const size = dec(cfg.package_size, 'package_config.package_size');
  if (size <= 0n) throw new Unpriceable('package_config.package_size: must be positive');
  return ceilDivQuantity(q, size) * amount;
}

/** Total amount for a period's cumulative quantity (tiered, package). */
export function cumulativeTotal(price: PriceSnap, q: bigint): bigint {
  if (price.modelType === 'tiered') return tieredTotal(price, q);
  if (price.modelType === 'package') return packageTotal(price, q);
  throw new Unpriceable(`price model ${price.modelType} is not cumulative`);
}

/** The amount one event adds: F(before + q) - F(before). */
export function cumulativeIncrement(price: PriceSnap, before: bigint, q: bigint): bigint {
  return cumulativeTotal(price, before + q) - cumulativeTotal(price, before);
}

/** Amount of a stand-alone model (unit, matrix) for quantity q of one event. */
export function standaloneAmount(price: PriceSnap, q: bigint, props: Record<string, PropertyValue>): bigint {
  switch (price.modelType) {
    case 'unit': {
      let unit = unitCache.get(price);
      if (unit === undefined) {
        const cfg = price.config.unit_config as { unit_amount?: unknown } | undefined;
        if (!cfg) throw new Unpriceable(`price ${price.id}: unit_config missing`);
        unitCache.set(price, (unit = dec(cfg.unit_amount, 'unit_config.unit_amount')));
      }
      // A count is one unit: the product is the unit amount itself.
      return q === ONE ? unit : mul(q, unit);
    }
    case 'matrix':
      return mul(q, matrixUnit(price, props));
    default:
      throw new Unpriceable(`price model ${price.modelType} is not supported by the rater`);
  }
}

/** Matrix: the unit amount for the event's property values (@drawdown/catalog's matrixUnitAmount, shared with settlement). */
export function matrixUnit(price: PriceSnap, props: Record<string, PropertyValue>): bigint {
  return unpriceable(() => matrixUnitAmount(price.config, props, price.id));
}

const zoneOk = new Map<string, boolean>();
function validZone(tz: string | undefined): string {
  if (!tz || tz === 'UTC' || tz === 'Etc/UTC') return 'UTC';
  let ok = zoneOk.get(tz);
  if (ok === undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      ok = true;
    } catch {
      ok = false;
    }
    zoneOk.set(tz, ok);
  }
  return ok ? tz : 'UTC'; // an unknown zone must not make events unpriceable
}

/**
 * Start (epoch ms) of the billing period holding `t`: the catalog's billing periods
 * (`periodAt` of @drawdown/catalog, the same periods settlement invoices and the subscriptions
 * API shows): the first from the subscription's start instant, later ones from local midnight
 * of the anchor day in the subscription's `timezone` (UTC when absent or unknown), a day past a
 * month's end clamped to its last day. Before the start: the start; past the end: the last period.
 */
export function periodStartMs(sub: Pick<SubscriptionSnap, 'startMs' | 'billingCadence' | 'timezone'> & { endMs?: number | null }, t: number): number {
  if (t < sub.startMs) return sub.startMs;
  const cached = lastPeriod.get(sub);
  if (cached && cached.fromMs <= t && t < cached.toMs) return cached.startMs;
  const span = periodSpan(sub, t);
  lastPeriod.set(sub, span);
  return span.startMs;
}

/** periodStartMs(sub, t) and the times [fromMs, toMs) for which periodStartMs gives the same (maybe none but t). */
export interface PeriodSpan {
  startMs: number;
  fromMs: number;
  toMs: number;
}

// The span found last, per subscription: most events fall in the current period.
const lastPeriod = new WeakMap<object, PeriodSpan>();

/** periodStartMs without its cache, with the span of times sharing the answer (for callers that cache it). */
export function periodSpan(sub: Pick<SubscriptionSnap, 'startMs' | 'billingCadence' | 'timezone'> & { endMs?: number | null }, t: number): PeriodSpan {
  if (t < sub.startMs) return { startMs: sub.startMs, fromMs: -Infinity, toMs: sub.startMs };
  const endMs = sub.endMs ?? null;
  const at = endMs !== null && t >= endMs ? Math.max(sub.startMs, endMs - 1) : t;
  const p = periodAt(sub.startMs, sub.billingCadence ?? 'monthly', validZone(sub.timezone), at, endMs);
  if (!p) return { startMs: sub.startMs, fromMs: t, toMs: t };
  // Past the end every time falls back on the last period, which periodAt ends at endMs.
  return { startMs: p.startMs, fromMs: p.startMs, toMs: endMs !== null && p.endMs >= endMs ? Infinity : p.endMs };
}
