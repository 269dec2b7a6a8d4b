// What every scenario returns, and the debit workload shared by the Postgres ceiling and the
// ledger stage (the same debit batches a rater would publish).
import type { DebitBatch } from '@drawdown/debits';
import { partitionOf } from '@drawdown/events';
import { customerId, customerSampler, type Shape } from '../workload';
import { round } from '../util';

export interface ScenarioResult {
  name: string;
  title: string;
  figures: Record<string, unknown>;
  notes?: string[];
  /** Per-second series for the plots. */
  series?: Record<string, number[] | string[]>;
}

/** One event's price in picos (0.001 credits). */
export const EVENT_PICOS = 1_000_000_000n;

/** Per (customers, partitions): each bench customer's partition, a hash of its id as ingest
 *  hashes a customer's ref (only which customers share a partition matters here). */
const partitionCache = new Map<string, Uint16Array>();

/**
 * Debit batches shaped like a rater's: each covers `eventsPerBatch` events of one partition,
 * summed per customer (one line per customer, price and day). With `partitions`, batch b is
 * partition b mod `partitions` and its events are those of that partition's customers only, as
 * a rater's are (events are partitioned by customer); without, batch b is labelled partition
 * b mod 8 and its customers are drawn from all.
 */
export function debitBatches(opts: { count: number; customers: number; eventsPerBatch: number; shape: Shape; seed: number; tag: string; priceId?: string; partitions?: number }): DebitBatch[] {
  const draw = customerSampler(opts.customers, opts.shape, opts.seed);
  const day = new Date().toISOString().slice(0, 10);
  const parts = opts.partitions;
  let partOf: Uint16Array | undefined;
  if (parts !== undefined && parts > 1) {
    const key = `${opts.customers}/${parts}`;
    partOf = partitionCache.get(key);
    if (!partOf) {
      partOf = new Uint16Array(opts.customers);
      for (let i = 0; i < opts.customers; i++) partOf[i] = partitionOf(customerId(i), parts);
      partitionCache.set(key, partOf);
    }
    for (let p = 0; p < Math.min(parts, opts.count); p++) {
      if (!partOf.includes(p)) throw new Error(`debitBatches: partition ${p} of ${parts} has none of the ${opts.customers} customers`);
    }
  }
  const out: DebitBatch[] = [];
  for (let b = 0; b < opts.count; b++) {
    const partition = parts === undefined ? b % 8 : b % parts;
    const perCustomer = new Map<number, number>();
    for (let e = 0; e < opts.eventsPerBatch; e++) {
      let c = draw();
      while (partOf && partOf[c] !== partition) c = draw();
      perCustomer.set(c, (perCustomer.get(c) ?? 0) + 1);
    }
    out.push({
      id: `${opts.tag}:${b}`,
      partition,
      firstSeq: b * 1000 + 1,
      lastSeq: b * 1000 + 1000,
      receivedAtMax: Date.now(),
      lines: [...perCustomer].map(([c, n]) => ({
        customerId: customerId(c),
        pricingUnit: 'credits',
        priceId: opts.priceId ?? 'bench-price',
        day,
        amountPicos: String(BigInt(n) * EVENT_PICOS),
        quantityPicos: String(BigInt(n) * 1_000_000_000_000n),
        events: n,
      })),
    });
  }
  return out;
}

/**
 * Whether a consumer kept up, from its lag readings (seconds, in order): the first third is
 * warm-up (transactions grow until they take what arrives while they run); the rate is
 * sustained when the lag of the last third is not above the middle third's (their means; at
 * most 1.25 times plus 0.5 s, for noise), i.e. the lag levels off instead of growing. At least
 * six readings. How high it levels off is reported apart (`lastThird`): the balances' delay.
 */
export function judgeLag(series: readonly number[]): { sustained: boolean; lastThird: number | null; why: string } {
  if (series.length < 6) return { sustained: false, lastThird: null, why: `${series.length} lag readings, at least 6 needed` };
  const third = Math.floor(series.length / 3);
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const middle = mean(series.slice(third, series.length - third));
  const last = mean(series.slice(series.length - third));
  const limit = 1.25 * middle + 0.5;
  const lastThird = round(last, 2);
  return last <= limit
    ? { sustained: true, lastThird, why: `lag levels off: last third ${lastThird} s, middle ${round(middle, 2)} s` }
    : { sustained: false, lastThird, why: `lag grows: last third ${lastThird} s, above 1.25 x the middle third's ${round(middle, 2)} s + 0.5 s` };
}
