// rateBatch: priceBatch and encodeRated in one pass, for the pricing worker. Each row goes
// straight into the RowBinary payload: no RatedRow object per row (but for the tiered and
// package rows, whose amounts the main thread sets), and what rows repeat is encoded once: per
// batch the partition, batch id and catalog version; per customer (and snapshot) its ids, its
// (subscription, price) lines with their ids, price window, unit amount and last billing period.
// The output is the same, byte for byte, as encodeRated over priceBatch's rows, with the same
// debits, cumulative rows and unpriced counts (write.test.ts compares them on generated batches).
import type { CatalogSnapshot, MetricSnap, PriceSnap, SubscriptionSnap } from '@drawdown/catalog';
import { RowBinaryWriter } from '@drawdown/clickhouse';
import { ONE } from '@drawdown/money';
import { Unpriceable, isCumulative, periodSpan, standaloneAmount } from './models';
import { DebitAccumulator, decimalTexts, isPricingUnit, metricMatches, quantityOf, resolveCustomer, type DebitLineOut, type DebitSum, type RateEvent, type RatedPayload, type RatedRow, type ResolvedCustomer } from './price';

export type { RateEvent } from './price';

export interface RateResult {
  /** rated_events payload (RATED_COLUMNS), without the amounts of the `cumulative` rows. */
  payload: RatedPayload;
  /** Rows in the payload. */
  rows: number;
  /** Tiered/package rows in stream order, amounts still to be set (applyCumulative). */
  cumulative: RatedRow[];
  /** Debit lines of the stand-alone (unit, matrix) rows. */
  debits: DebitLineOut[];
  /** Unpriced events by reason. */
  unpriced: Record<string, number>;
}

/** One price of one subscription whose price (with a metric) and metric exist in the snapshot. */
interface Line {
  price: PriceSnap;
  metric: MetricSnap;
  /** The price's effective window (priceBatch's `effective`). */
  fromMs: number;
  toMs: number;
  cumulative: boolean;
  /** Debited in real time (isPricingUnit). */
  debited: boolean;
  /** A unit price's amount for a quantity of one (undefined: not a unit price, or its config is broken). */
  unitAmount: bigint | undefined;
  /** `subscription_id`, `price_id`, `metric_id` columns. */
  ids: Uint8Array;
  /** `pricing_unit`, `status` ('rated'), `reason` (none), `catalog_version` columns, after the amount. */
  tail: Uint8Array;
  /** The debit sum this line's rows went to last, in batch `sumBatch`, on day `sumDay` (days since the epoch). */
  sum: DebitSum | undefined;
  sumBatch: number;
  sumDay: number;
}

interface SubPlan {
  sub: SubscriptionSnap;
  lines: Line[];
  /** The billing period found last (periodSpan). */
  period: { startMs: number; fromMs: number; toMs: number };
}

interface CustomerPlan {
  /** The snapshot the plan was made from. */
  snap: CatalogSnapshot;
  /** `customer_id`, `external_customer_id` columns. */
  head: Uint8Array;
  subs: SubPlan[];
  /** Times at which every subscription is active (the usual case: the list needs no filtering). */
  allFromMs: number;
  allToMs: number;
}

function encoded(write: (w: RowBinaryWriter) => void): Uint8Array {
  const w = new RowBinaryWriter(64);
  write(w);
  return w.bytes().slice();
}

// The same test as priceBatch's activeSubscriptions.
const active = (s: SubscriptionSnap, t: number) => s.startMs <= t && (s.endMs === null || t < s.endMs);

function planOf(snap: CatalogSnapshot, customer: ResolvedCustomer): CustomerPlan {
  const subs: SubPlan[] = [];
  let allFromMs = -Infinity;
  let allToMs = Infinity;
  for (const sub of customer.subscriptions ?? []) {
    allFromMs = Math.max(allFromMs, sub.startMs);
    allToMs = Math.min(allToMs, sub.endMs === null ? Infinity : sub.endMs); // NaN (never all active) if not a number
    const lines: Line[] = [];
    for (const priceId of sub.priceIds) {
      const price = snap.prices[priceId];
      if (!price || !price.metricId) continue;
      const metric = snap.metrics[price.metricId];
      if (!metric) continue;
      let unitAmount: bigint | undefined;
      if (price.modelType === 'unit') {
        try {
          unitAmount = standaloneAmount(price, ONE, {});
        } catch (err) {
          if (!(err instanceof Unpriceable)) throw err;
        }
      }
      lines.push({
        price, metric,
        fromMs: price.effectiveFromMs ?? -Infinity,
        toMs: price.effectiveToMs ?? Infinity,
        cumulative: isCumulative(price.modelType),
        debited: isPricingUnit(snap, price.currency),
        unitAmount,
        ids: encoded((w) => w.string(sub.id).string(price.id).string(metric.id)),
        tail: encoded((w) => w.string(price.currency).string('rated').string('').u64(snap.version)),
        sum: undefined,
        sumBatch: 0,
        sumDay: 0,
      });
    }
    subs.push({ sub, lines, period: { startMs: 0, fromMs: 0, toMs: 0 } });
  }
  return { snap, head: encoded((w) => w.string(customer.id).string(customer.externalId)), subs, allFromMs, allToMs };
}

// Plans are kept on the snapshot's own customer objects (ResolvedCustomer.plan): the event's one
// lookup finds both. A snapshot's index lives in one thread, so a plan is never shared.
function customerPlan(snap: CatalogSnapshot, customer: ResolvedCustomer): CustomerPlan {
  const known = customer.plan as CustomerPlan | undefined;
  if (known !== undefined && known.snap === snap) return known;
  const plan = planOf(snap, customer);
  customer.plan = plan;
  return plan;
}

// Scratch of one event's rated rows, reused: their lines, amounts, quantities and cut rows.
const matchedLines: Line[] = [];
const matchedAmounts: bigint[] = [];
const matchedQuantities: bigint[] = [];
const matchedCuts: number[] = [];
const matchedRows: (RatedRow | undefined)[] = [];

let batches = 0;

/**
 * priceBatch + encodeRated: the events (in stream order, `seqs[i]` the stream sequence of
 * events[i], `customers[i]` its customer when already resolved: null unknown, undefined not
 * looked up) priced against the snapshot and written as rated_events rows (into `reuse` when
 * it is large enough: a payload buffer of an earlier batch).
 */
export function rateBatch(snap: CatalogSnapshot, events: readonly RateEvent[], seqs: ArrayLike<number>, customers: readonly (ResolvedCustomer | null | undefined)[] | undefined, partition: number, batchId: string, reuse?: ArrayBuffer): RateResult {
  const batch = ++batches;
  const w = new RowBinaryWriter(events.length * 240 + 1024, reuse);
  const cuts: number[] = [];
  const cumulative: RatedRow[] = [];
  const debits = new DebitAccumulator();
  const unpriced: Record<string, number> = {};
  const nameFields = new Map<string, Uint8Array>();
  let rows = 0;
  // The batch id encoded once per batch, the event name once per name.
  const batchField = encoded((x) => x.string(batchId));
  let lastName: string | undefined, nameField: Uint8Array = new Uint8Array(0);
  const decimalText = decimalTexts();
  // A row's first columns (partition, seq, batch_id), then after the customer's two its next
  // four (idempotency_key, event_name, timestamp, received_at).
  const start = (seq: number) => {
    w.u16(partition).u64(seq).chunk(batchField);
  };
  const middle = (e: RateEvent) => {
    if (e.n !== lastName) {
      const name = (lastName = e.n);
      let f = nameFields.get(name);
      if (!f) nameFields.set(name, (f = encoded((x) => x.string(name))));
      nameField = f;
    }
    w.string(e.k).chunk(nameField).dateTime64(e.t).dateTime64(e.r);
  };
  const skip = (e: RateEvent, seq: number, customerId: string, externalId: string, reason: string, detail = '') => {
    unpriced[reason] = (unpriced[reason] ?? 0) + 1;
    start(seq);
    w.string(customerId).string(externalId);
    middle(e);
    if (!w.json(e.p)) w.string(JSON.stringify(e.p));
    // No subscription, price, metric or group (empty strings); period 0, quantity and amount 0, no pricing unit.
    w.byte(0).byte(0).byte(0).byte(0).dateTime64(0).decimal128(0n).decimal128(0n).byte(0)
      .string('unpriced').string(detail ? `${reason}: ${detail}` : reason).u64(snap.version);
    rows++;
  };

  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    const seq = seqs[i]!;
    const known = customers?.[i];
    const customer = known !== undefined ? known : resolveCustomer(snap, e.c);
    if (!customer) {
      const ext = e.c.startsWith('x:');
      skip(e, seq, ext ? '' : e.c, ext ? e.c.slice(2) : '', 'unknown_customer');
      continue;
    }
    const plan = customerPlan(snap, customer);
    const t = e.t;
    const all = plan.allFromMs <= t && t < plan.allToMs;
    let anyActive = all && plan.subs.length > 0;
    if (!all) for (const s of plan.subs) anyActive ||= active(s.sub, t);
    if (!anyActive) {
      skip(e, seq, customer.id, customer.externalId, 'no_active_subscription');
      continue;
    }
    // The event's rows go straight into the payload (cut back if the event turns out invalid).
    const mark = w.length;
    let n = 0;
    try {
      for (const s of plan.subs) {
        if (!all && !active(s.sub, t)) continue;
        for (const line of s.lines) {
          if (t < line.fromMs || t >= line.toMs) continue;
          if (!metricMatches(line.metric, e)) continue;
          const quantity = quantityOf(line.metric, e);
          const amount = line.cumulative ? 0n : line.unitAmount !== undefined && quantity === ONE ? line.unitAmount : standaloneAmount(line.price, quantity, e.p);
          const g = line.metric.group_by ? e.p[line.metric.group_by] : undefined;
          const groupKey = g === undefined || g === null ? '' : String(g);
          const period = s.period;
          if (!(period.fromMs <= t && t < period.toMs)) {
            const span = periodSpan(s.sub, t);
            period.startMs = span.startMs;
            period.fromMs = span.fromMs;
            period.toMs = span.toMs;
          }
          start(seq);
          w.chunk(plan.head);
          middle(e);
          // Properties as JSON.stringify writes them, without the text (but for odd values).
          if (!w.json(e.p)) w.string(JSON.stringify(e.p));
          w.chunk(line.ids).string(groupKey).dateTime64(period.startMs).decimal128(quantity);
          matchedLines[n] = line;
          matchedAmounts[n] = amount;
          matchedQuantities[n] = quantity;
          if (line.cumulative) {
            matchedCuts[n] = w.length;
            w.decimal128(0n);
            const qText = decimalText(quantity);
            const aText = decimalText(amount);
            matchedRows[n] = {
              partition, seq, batch_id: batchId, customer_id: customer.id, external_customer_id: customer.externalId,
              idempotency_key: e.k, event_name: e.n, timestamp: t, received_at: e.r, properties: JSON.stringify(e.p),
              subscription_id: s.sub.id, price_id: line.price.id, metric_id: line.metric.id, group_key: groupKey, period_start: period.startMs,
              quantity: qText, amount: aText, pricing_unit: line.price.currency, status: 'rated', reason: '', catalog_version: snap.version,
            };
          } else w.decimal128(amount);
          w.chunk(line.tail);
          n++;
        }
      }
    } catch (err) {
      if (!(err instanceof Unpriceable)) throw err;
      w.truncate(mark);
      skip(e, seq, customer.id, customer.externalId, 'invalid_event', err.message);
      continue;
    }
    if (n === 0) {
      skip(e, seq, customer.id, customer.externalId, 'no_matching_price');
      continue;
    }
    rows += n;
    for (let j = 0; j < n; j++) {
      const line = matchedLines[j]!;
      if (line.cumulative) {
        cuts.push(matchedCuts[j]!);
        cumulative.push(matchedRows[j]!);
      } else if (line.debited && matchedAmounts[j] !== 0n) {
        // The line's sum of this batch and day, found once (DebitAccumulator.sum keeps the order of first use).
        const day = Math.floor(t / 86_400_000);
        let sum = line.sum;
        if (sum === undefined || line.sumBatch !== batch || line.sumDay !== day) {
          line.sum = sum = debits.sum(customer.id, line.price.currency, line.price.id, t);
          line.sumBatch = batch;
          line.sumDay = day;
        }
        DebitAccumulator.addTo(sum, matchedAmounts[j]!, matchedQuantities[j]!);
      }
    }
  }
  matchedLines.length = 0;
  matchedRows.length = 0;
  return { payload: { body: w.bytes(), cuts }, rows, cumulative, debits: debits.lines(), unpriced };
}
