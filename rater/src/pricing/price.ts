// Pricing a batch of events against a catalog snapshot: pure and deterministic, run in
// worker threads. Every amount is exact (picos, bigint). Unit and matrix prices are final here;
// tiered and package prices depend on the period's cumulative quantity, which lives with the
// partition (main thread): their rows leave with amount '0' and are listed in `cumulative`,
// and `applyCumulative` fills them in stream order.
import type { CatalogSnapshot, MetricSnap, PriceSnap, SubscriptionSnap } from '@drawdown/catalog';
import { RowBinaryWriter, putDecimal128 } from '@drawdown/clickhouse';
import { ONE, parseDecimal, formatDecimal } from '@drawdown/money';
import { Unpriceable, cumulativeIncrement, isCumulative, periodStartMs, standaloneAmount, type PropertyValue } from './models';

/** An event as the pricing reads it (an AcceptedEvent: key, customer reference, name, time, receive time, properties). */
export interface RateEvent {
  k: string;
  c: string;
  n: string;
  t: number;
  r: number;
  p: Record<string, PropertyValue>;
}

export interface PricingEvent extends RateEvent {
  seq: number;
  /** The customer `c` names, when already looked up (resolveCustomer; null: unknown). */
  customer?: ResolvedCustomer | null;
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
  /** Value of the metric's group_by property ('' when none). */
  group_key: string;
  /** Start of the billing period the event falls in (epoch ms; 0 when unpriced). */
  period_start: number;
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
  /** Debit lines of the stand-alone (unit, matrix) rows; cumulative rows are added by applyCumulative. */
  debits: DebitLineOut[];
  /** Indexes into rows of tiered/package rows whose amount is still to be set, in stream order. */
  cumulative: number[];
  /** Unpriced events by reason. */
  unpriced: Record<string, number>;
}

/** ISO 4217-style codes (three capitals) are fiat and billed at settlement; anything else is a pricing unit debited in real time. */
export function isFiat(currency: string): boolean {
  return /^[A-Z]{3}$/.test(currency);
}

/** Whether amounts in `currency` are debited from credits in real time (a pricing unit) rather than invoiced (fiat). */
export function isPricingUnit(snap: Pick<CatalogSnapshot, 'pricingUnits'>, currency: string): boolean {
  if (snap.pricingUnits && currency in snap.pricingUnits) return true;
  return !isFiat(currency);
}

export interface ResolvedCustomer {
  id: string;
  externalId: string;
  subscriptions: SubscriptionSnap[] | undefined;
  /** What rateBatch (write.ts) keeps per customer and snapshot, made on first use. */
  plan?: unknown;
}

// Per snapshot (immutable), every way an event may name a known customer: its id and `x:` +
// its external id. One lookup of the event's reference, no string cut per event.
const customerIndexes = new WeakMap<CatalogSnapshot, Map<string, ResolvedCustomer>>();

let lastIndexed: { snap: CatalogSnapshot; index: Map<string, ResolvedCustomer> } | undefined;

function customerIndex(snap: CatalogSnapshot): Map<string, ResolvedCustomer> {
  if (lastIndexed?.snap === snap) return lastIndexed.index;
  let index = customerIndexes.get(snap);
  if (!index) {
    index = new Map();
    for (const [id, externalId] of Object.entries(snap.customers)) if (!id.startsWith('x:')) index.set(id, { id, externalId, subscriptions: snap.subscriptions[id], plan: undefined });
    for (const [externalId, id] of Object.entries(snap.byExternalId)) {
      // One object per customer when both references agree (they do in loaded catalogs).
      const byId = index.get(id);
      index.set(`x:${externalId}`, byId && byId.id === id && byId.externalId === externalId ? byId : { id, externalId, subscriptions: snap.subscriptions[id], plan: undefined });
    }
    customerIndexes.set(snap, index);
  }
  lastIndexed = { snap, index };
  return index;
}

/** The customer an event's reference (a customer id, or `x:` and an external id) names, if the snapshot knows it. */
export function resolveCustomer(snap: CatalogSnapshot, ref: string): ResolvedCustomer | undefined {
  return customerIndex(snap).get(ref);
}

export function metricMatches(metric: MetricSnap, e: Pick<PricingEvent, 'n' | 'p'>): boolean {
  if (metric.event_name !== e.n) return false;
  for (const f of metric.filters ?? []) {
    const v = e.p[f.property];
    if (v === undefined || v === null) return false;
    if (!f.values.includes(String(v))) return false;
  }
  return true;
}

export function quantityOf(metric: MetricSnap, e: Pick<PricingEvent, 'p'>): bigint {
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

function effective(price: PriceSnap, t: number): boolean {
  if (price.effectiveFromMs !== undefined && price.effectiveFromMs !== null && t < price.effectiveFromMs) return false;
  if (price.effectiveToMs !== undefined && price.effectiveToMs !== null && t >= price.effectiveToMs) return false;
  return true;
}

function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** One debit line being summed (DebitAccumulator). */
export interface DebitSum {
  customerId: string;
  pricingUnit: string;
  priceId: string;
  day: string;
  amount: bigint;
  quantity: bigint;
  events: number;
  // Adds not yet summed: `reps` more of (repAmount, repQuantity). Most events of a sum repeat
  // the previous amount and quantity: counting them spares two bigint additions (allocations)
  // per event, and n equal amounts sum exactly to n times one.
  repAmount: bigint;
  repQuantity: bigint;
  reps: number;
}

function fold(a: DebitSum): void {
  if (a.reps === 0) return;
  const n = BigInt(a.reps);
  a.amount += a.repAmount * n;
  a.quantity += a.repQuantity * n;
  a.reps = 0;
}

/** Sums debit amounts per (customer, pricing unit, price, day). */
export class DebitAccumulator {
  // Per customer, its few (unit, price, day) sums: no key string built per event.
  private readonly acc = new Map<string, DebitSum[]>();

  private lastDayN = NaN;
  private lastDay = '';

  add(customerId: string, pricingUnit: string, priceId: string, t: number, amount: bigint, quantity: bigint): void {
    DebitAccumulator.addTo(this.sum(customerId, pricingUnit, priceId, t), amount, quantity);
  }

  /** The sum an add of these would go to (made, empty, on first use: lines keep that order), for callers that keep it at hand. */
  sum(customerId: string, pricingUnit: string, priceId: string, t: number): DebitSum {
    const dayN = Math.floor(t / 86_400_000);
    if (dayN !== this.lastDayN) this.lastDay = utcDay((this.lastDayN = dayN) * 86_400_000);
    const day = this.lastDay;
    let sums = this.acc.get(customerId);
    if (!sums) this.acc.set(customerId, (sums = []));
    for (const a of sums) if (a.pricingUnit === pricingUnit && a.priceId === priceId && a.day === day) return a;
    const a: DebitSum = { customerId, pricingUnit, priceId, day, amount: 0n, quantity: 0n, events: 0, repAmount: 0n, repQuantity: 0n, reps: 0 };
    sums.push(a);
    return a;
  }

  /** `add` to a sum found with `sum`. */
  static addTo(a: DebitSum, amount: bigint, quantity: bigint): void {
    a.events++;
    if (a.reps > 0 && amount === a.repAmount && quantity === a.repQuantity) a.reps++;
    else {
      fold(a);
      a.repAmount = amount;
      a.repQuantity = quantity;
      a.reps = 1;
    }
  }

  lines(): DebitLineOut[] {
    const out: DebitLineOut[] = [];
    for (const sums of this.acc.values()) {
      for (const a of sums) {
        fold(a);
        out.push({
          customerId: a.customerId, pricingUnit: a.pricingUnit, priceId: a.priceId, day: a.day,
          amountPicos: a.amount.toString(), quantityPicos: a.quantity.toString(), events: a.events,
        });
      }
    }
    return out;
  }
}

const NO_SUBSCRIPTIONS: SubscriptionSnap[] = [];

/** The subscriptions active at t (the list itself when all are, as is usual). */
function activeSubscriptions(subs: SubscriptionSnap[] | undefined, t: number): SubscriptionSnap[] {
  if (!subs) return NO_SUBSCRIPTIONS;
  for (const s of subs) if (!(s.startMs <= t && (s.endMs === null || t < s.endMs))) return subs.filter((x) => x.startMs <= t && (x.endMs === null || t < x.endMs));
  return subs;
}

// Scratch of priceBatch: the prices, amounts and quantities of the current event's rows.
const matchedPrices: PriceSnap[] = [];
const matchedAmounts: bigint[] = [];
const matchedQuantities: bigint[] = [];

/** formatDecimal remembering its last two values: most rows repeat the previous row's quantity and amount, so each is formatted once. */
export function decimalTexts(): (v: bigint) => string {
  let lastQ = 0n, lastQText = '0', lastA = 0n, lastAText = '0';
  return (v) => {
    if (v === lastQ) return lastQText;
    if (v === lastA) return lastAText;
    const text = formatDecimal(v);
    lastA = lastQ;
    lastAText = lastQText;
    lastQ = v;
    lastQText = text;
    return text;
  };
}

export function priceBatch(snap: CatalogSnapshot, events: PricingEvent[], partition: number, batchId: string): PricingResult {
  const rows: RatedRow[] = [];
  const debits = new DebitAccumulator();
  const cumulative: number[] = [];
  const unpriced: Record<string, number> = {};
  // Rows are written as whole object literals: spreading a shared base into each row costs
  // tens of microseconds per row (the object goes to dictionary mode).
  const row = (e: PricingEvent, properties: string, customerId: string, externalId: string, subscriptionId: string, priceId: string, metricId: string, groupKey: string, periodStart: number, quantity: string, amount: string, pricingUnit: string, status: RatedRow['status'], reason: string): RatedRow => ({
    partition, seq: e.seq, batch_id: batchId, customer_id: customerId, external_customer_id: externalId,
    idempotency_key: e.k, event_name: e.n, timestamp: e.t, received_at: e.r, properties,
    subscription_id: subscriptionId, price_id: priceId, metric_id: metricId, group_key: groupKey, period_start: periodStart,
    quantity, amount, pricing_unit: pricingUnit, status, reason, catalog_version: snap.version,
  });
  const decimalText = decimalTexts();
  const skip = (e: PricingEvent, customerId: string, externalId: string, reason: string, detail = '') => {
    unpriced[reason] = (unpriced[reason] ?? 0) + 1;
    rows.push(row(e, JSON.stringify(e.p), customerId, externalId, '', '', '', '', 0, '0', '0', '', 'unpriced', detail ? `${reason}: ${detail}` : reason));
  };

  for (const e of events) {
    const customer = e.customer !== undefined ? e.customer : resolveCustomer(snap, e.c);
    if (!customer) {
      const ext = e.c.startsWith('x:');
      skip(e, ext ? '' : e.c, ext ? e.c.slice(2) : '', 'unknown_customer');
      continue;
    }
    const subs = activeSubscriptions(customer.subscriptions, e.t);
    if (subs.length === 0) {
      skip(e, customer.id, customer.externalId, 'no_active_subscription');
      continue;
    }
    // The event's rows go straight into `rows` (dropped again if the event turns out invalid);
    // what the debit step needs of each is kept in scratch arrays reused for every event.
    const start = rows.length;
    let properties: string | undefined;
    try {
      for (const sub of subs) {
        for (const priceId of sub.priceIds) {
          const price = snap.prices[priceId];
          if (!price || !price.metricId || !effective(price, e.t)) continue;
          const metric = snap.metrics[price.metricId];
          if (!metric || !metricMatches(metric, e)) continue;
          const quantity = quantityOf(metric, e);
          const amount = isCumulative(price.modelType) ? 0n : standaloneAmount(price, quantity, e.p);
          const g = metric.group_by ? e.p[metric.group_by] : undefined;
          const i = rows.length - start;
          matchedPrices[i] = price;
          matchedAmounts[i] = amount;
          matchedQuantities[i] = quantity;
          rows.push(row(e, properties ??= JSON.stringify(e.p), customer.id, customer.externalId, sub.id, price.id, metric.id,
            g === undefined || g === null ? '' : String(g), periodStartMs(sub, e.t), decimalText(quantity), decimalText(amount), price.currency, 'rated', ''));
        }
      }
    } catch (err) {
      if (!(err instanceof Unpriceable)) throw err;
      rows.length = start;
      skip(e, customer.id, customer.externalId, 'invalid_event', err.message);
      continue;
    }
    if (rows.length === start) {
      skip(e, customer.id, customer.externalId, 'no_matching_price');
      continue;
    }
    for (let r = start; r < rows.length; r++) {
      const price = matchedPrices[r - start]!;
      const amount = matchedAmounts[r - start]!;
      if (isCumulative(price.modelType)) cumulative.push(r);
      else if (isPricingUnit(snap, price.currency) && amount !== 0n) debits.add(customer.id, price.currency, price.id, e.t, amount, matchedQuantities[r - start]!);
    }
  }
  matchedPrices.length = 0;
  return { rows, debits: debits.lines(), cumulative, unpriced };
}

/** Cumulative quantity per (subscription, price, period start), the state tiered and package prices need. */
export type CumulativeState = Map<string, bigint>;

export const cumulativeKey = (subscriptionId: string, priceId: string, periodStart: number) => `${subscriptionId}\u0000${priceId}\u0000${periodStart}`;

/**
 * Sets the amounts of the tiered/package rows in stream order against `state` and adds their
 * debit lines. Returns the updated entries without touching `state`: the caller commits them
 * only once the batch is durable, so a retried batch starts from the same quantities.
 */
export function applyCumulative(snap: CatalogSnapshot, result: Pick<PricingResult, 'rows' | 'cumulative' | 'debits'>, state: CumulativeState): Map<string, bigint> {
  const updates = new Map<string, bigint>();
  if (result.cumulative.length === 0) return updates;
  const debits = new DebitAccumulator();
  for (const i of result.cumulative) {
    const row = result.rows[i]!;
    const price = snap.prices[row.price_id]!;
    const key = cumulativeKey(row.subscription_id, row.price_id, row.period_start);
    const before = updates.get(key) ?? state.get(key) ?? 0n;
    const q = parseDecimal(row.quantity);
    const amount = cumulativeIncrement(price, before, q);
    updates.set(key, before + q);
    row.amount = formatDecimal(amount);
    if (isPricingUnit(snap, price.currency) && amount !== 0n) debits.add(row.customer_id, price.currency, price.id, row.timestamp, amount, q);
  }
  result.debits.push(...debits.lines());
  return updates;
}

/** rated_events columns, in the order encodeRated writes them. */
export const RATED_COLUMNS = [
  'partition', 'seq', 'batch_id', 'customer_id', 'external_customer_id', 'idempotency_key', 'event_name', 'timestamp', 'received_at',
  'properties', 'subscription_id', 'price_id', 'metric_id', 'group_key', 'period_start', 'quantity', 'amount', 'pricing_unit', 'status',
  'reason', 'catalog_version',
] as const satisfies readonly (keyof RatedRow)[];

/** A rated_events payload: RowBinary bytes (RATED_COLUMNS), `cuts[i]` the offset of the amount (16 bytes, Decimal128) of cut row i. */
export interface RatedPayload {
  body: Uint8Array;
  cuts: number[];
}

/**
 * The rows as RowBinary bytes (RATED_COLUMNS), the amount of each row listed in `cut`
 * (ascending: the cumulative rows, whose amounts are set later in stream order) left zero:
 * joinRated puts them in.
 */
export function encodeRated(rows: readonly RatedRow[], cut: readonly number[]): RatedPayload {
  const w = new RowBinaryWriter(rows.length * 256);
  const cuts: number[] = [];
  let next = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    w.u16(r.partition).u64(r.seq).string(r.batch_id)
      .string(r.customer_id).string(r.external_customer_id).string(r.idempotency_key).string(r.event_name)
      .dateTime64(r.timestamp).dateTime64(r.received_at).string(r.properties)
      .string(r.subscription_id).string(r.price_id).string(r.metric_id).string(r.group_key)
      .dateTime64(r.period_start).decimal128(parseDecimal(r.quantity));
    if (cut[next] === i) {
      cuts.push(w.length);
      next++;
      w.decimal128(0n);
    } else w.decimal128(parseDecimal(r.amount));
    w.string(r.pricing_unit).string(r.status).string(r.reason).u64(r.catalog_version);
  }
  return { body: w.bytes(), cuts };
}

/** The payload with the amounts of the cut rows put in (in place: the payload's body, returned). */
export function joinRated(p: RatedPayload, amounts: readonly string[]): Uint8Array {
  if (p.cuts.length !== amounts.length) throw new Error(`joinRated: ${p.cuts.length} cuts for ${amounts.length} amounts`);
  if (amounts.length === 0) return p.body;
  const view = new DataView(p.body.buffer, p.body.byteOffset, p.body.byteLength);
  for (let i = 0; i < amounts.length; i++) putDecimal128(view, p.cuts[i]!, parseDecimal(amounts[i]!));
  return p.body;
}
