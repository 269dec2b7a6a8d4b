// What every scenario returns, and the debit workload shared by the Postgres ceiling and the
// ledger stage (the same debit batches a rater would publish).
import type { DebitBatch } from '@drawdown/debits';
import { customerId, customerSampler, type Shape } from '../workload';

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

/**
 * Debit batches shaped like a rater's: each covers `eventsPerBatch` events of one partition,
 * summed per customer (one line per customer, price and day).
 */
export function debitBatches(opts: { count: number; customers: number; eventsPerBatch: number; shape: Shape; seed: number; tag: string; priceId?: string }): DebitBatch[] {
  const draw = customerSampler(opts.customers, opts.shape, opts.seed);
  const day = new Date().toISOString().slice(0, 10);
  const out: DebitBatch[] = [];
  for (let b = 0; b < opts.count; b++) {
    const perCustomer = new Map<number, number>();
    for (let e = 0; e < opts.eventsPerBatch; e++) {
      const c = draw();
      perCustomer.set(c, (perCustomer.get(c) ?? 0) + 1);
    }
    out.push({
      id: `${opts.tag}:${b}`,
      partition: b % 8,
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
