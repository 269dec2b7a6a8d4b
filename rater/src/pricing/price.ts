// Pricing a batch of events against a catalog snapshot: pure and deterministic, run in
// worker threads. Every amount is exact (picos, bigint); one rounding per event and price
// (half-even to 12 places), sums exact.
import type { CatalogSnapshot, MetricSnap, PriceSnap } from '@drawdown/catalog';
import { mul, parseDecimal, formatDecimal, ONE } from '@drawdown/money';

export interface PricingEvent {
  seq: number;
  k: string;
  c: string;
  n: string;
  t: number;
  r: number;
  p: Record<string, string | number | boolean | null>;
}

export interface RatedRow {
  partition: number;
  seq: number;
  batch_id: string;
  customer_id: string;
  external_customer_id: string;
  idempotency_key: string;
  event_name: string;
  timestamp: number;
  received_at: number;
  properties: string;
  subscription_id: string;
  price_id: string;
  metric_id: string;
  quantity: string;
  amount: string;
  pricing_unit: string;
  status: 'rated' | 'unpriced';
  reason: string;
  catalog_version: number;
}

export interface DebitLineOut {
  customerId: string;
  pricingUnit: string;
  priceId: string;
  day: string;
  /** Decimal strings of picos (structured-clone friendly). */
  amountPicos: string;
  quantityPicos: string;
  events: number;
}

export interface PricingResult {
  rows: RatedRow[];
  debits: DebitLineOut[];
  /** Unpriced events by reason. */
  unpriced: Record<string, number>;
}

/** ISO 4217-style codes (three capitals) are fiat and billed at settlement; anything else is a pricing unit debited in real time. */
export function isFiat(currency: string): boolean {
  return /^[A-Z]{3}$/.test(currency);
}

export function resolveCustomer(snap: CatalogSnapshot, ref: string): { id: string; externalId: string } | undefined {
  if (ref.startsWith('x:')) {
    const ext = ref.slice(2);
    const id = snap.byExternalId[ext];
    return id === undefined ? undefined : { id, externalId: ext };
  }
  const ext = snap.customers[ref];
  return ext === undefined ? undefined : { id: ref, externalId: ext };
}

function matches(metric: MetricSnap, e: PricingEvent): boolean {
  if (metric.event_name !== e.n) return false;
  for (const f of metric.filters) {
    const v = e.p[f.property];
    if (v === undefined || v === null) return false;
    if (!f.values.includes(String(v))) return false;
  }
  return true;
}

class Unpriceable extends Error {}

function quantityOf(metric: MetricSnap, e: PricingEvent): bigint {
  if (metric.aggregation === 'count') return ONE;
  if (metric.aggregation === 'sum') {
    const v = e.p[metric.property!];
    if (v === undefined || v === null) return 0n;
    if (typeof v !== 'number' && typeof v !== 'string') throw new Unpriceable(`property ${metric.property} is not a number`);
    try {
      return parseDecimal(v, `properties.${metric.property}`);
    } catch (err) {
      throw new Unpriceable((err as Error).message);
    }
  }
  // max, unique_count, latest: not decomposable per event; charged at settlement from ClickHouse.
  return 0n;
}

function amountOf(price: PriceSnap, quantity: bigint): bigint {
  switch (price.modelType) {
    case 'unit': {
      const unit = (price.config.unit_config as { unit_amount: string }).unit_amount;
      return mul(quantity, parseDecimal(unit));
    }
    default:
      throw new Unpriceable(`price model ${price.modelType} is not supported by this rater`);
  }
}

function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

interface Acc {
  customerId: string;
  pricingUnit: string;
  priceId: string;
  day: string;
  amount: bigint;
  quantity: bigint;
  events: number;
}

export function priceBatch(snap: CatalogSnapshot, events: PricingEvent[], partition: number, batchId: string): PricingResult {
  const rows: RatedRow[] = [];
  const acc = new Map<string, Acc>();
  const unpriced: Record<string, number> = {};
  const base = (e: PricingEvent, customerId: string, externalId: string) => ({
    partition, seq: e.seq, batch_id: batchId, customer_id: customerId, external_customer_id: externalId,
    idempotency_key: e.k, event_name: e.n, timestamp: e.t, received_at: e.r, properties: JSON.stringify(e.p), catalog_version: snap.version,
  });
  const skip = (e: PricingEvent, customerId: string, externalId: string, reason: string, detail = '') => {
    unpriced[reason] = (unpriced[reason] ?? 0) + 1;
    rows.push({ ...base(e, customerId, externalId), subscription_id: '', price_id: '', metric_id: '', quantity: '0', amount: '0', pricing_unit: '', status: 'unpriced', reason: detail ? `${reason}: ${detail}` : reason });
  };

  for (const e of events) {
    const customer = resolveCustomer(snap, e.c);
    if (!customer) {
      const ext = e.c.startsWith('x:');
      skip(e, ext ? '' : e.c, ext ? e.c.slice(2) : '', 'unknown_customer');
      continue;
    }
    const subs = (snap.subscriptions[customer.id] ?? []).filter((s) => s.startMs <= e.t && (s.endMs === null || e.t < s.endMs));
    if (subs.length === 0) {
      skip(e, customer.id, customer.externalId, 'no_active_subscription');
      continue;
    }
    const out: RatedRow[] = [];
    const pending: { price: PriceSnap; amount: bigint; quantity: bigint }[] = [];
    try {
      for (const sub of subs) {
        for (const priceId of sub.priceIds) {
          const price = snap.prices[priceId];
          if (!price || !price.metricId) continue;
          const metric = snap.metrics[price.metricId];
          if (!metric || !matches(metric, e)) continue;
          const quantity = quantityOf(metric, e);
          const amount = amountOf(price, quantity);
          out.push({
            ...base(e, customer.id, customer.externalId), subscription_id: sub.id, price_id: price.id, metric_id: metric.id,
            quantity: formatDecimal(quantity), amount: formatDecimal(amount), pricing_unit: price.currency, status: 'rated', reason: '',
          });
          if (!isFiat(price.currency) && amount !== 0n) pending.push({ price, amount, quantity });
        }
      }
    } catch (err) {
      if (!(err instanceof Unpriceable)) throw err;
      skip(e, customer.id, customer.externalId, 'invalid_event', err.message);
      continue;
    }
    if (out.length === 0) {
      skip(e, customer.id, customer.externalId, 'no_matching_price');
      continue;
    }
    rows.push(...out);
    const day = utcDay(e.t);
    for (const { price, amount, quantity } of pending) {
      const key = `${customer.id}\u0000${price.currency}\u0000${price.id}\u0000${day}`;
      const a = acc.get(key);
      if (a) {
        a.amount += amount;
        a.quantity += quantity;
        a.events++;
      } else acc.set(key, { customerId: customer.id, pricingUnit: price.currency, priceId: price.id, day, amount, quantity, events: 1 });
    }
  }
  const debits = [...acc.values()].map((a) => ({
    customerId: a.customerId, pricingUnit: a.pricingUnit, priceId: a.priceId, day: a.day,
    amountPicos: a.amount.toString(), quantityPicos: a.quantity.toString(), events: a.events,
  }));
  return { rows, debits, unpriced };
}
