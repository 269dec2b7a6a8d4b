// The ledger alone: debit batches shaped like a rater's (2,500 events of one partition,
// summed per customer), applied by applyDebitBatches 8 at a time (one transaction), one
// applier like the ledger's consumer, with 10,000 and 100,000 customers; then as many per
// transaction as the consumer takes when it has a backlog (DRAWDOWN_LEDGER_BATCH_MAX). Where one
// 8-batch transaction cannot reach every customer (100,000), most of its debits start the
// customer's grouped usage entry of the day, as on a fresh day; a separate figure
// (steadyCustomerDebitsPerS) measures the same loop after every customer's entry of the day
// exists (the debits grow them), as later in a ledger's day.
import type { DebitBatch } from '@drawdown/debits';
import { applyDebitBatches } from '@drawdown/ledger';
import { benchEnv, createCatalog, createCustomers, openStores } from '../setup';
import { debitBatches, EVENT_PICOS, type ScenarioResult } from './common';
import { customerId } from '../workload';
import { round } from '../util';

export interface LedgerOpts {
  seconds: number;
  customerCounts: number[];
  batchesPerTx: number;
  /** Backlog-sized transactions are measured up to this many customers (quick mode: the smaller count only). */
  backlogMaxCustomers: number;
}

export async function run(opts: LedgerOpts): Promise<ScenarioResult[]> {
  const out: ScenarioResult[] = [];
  for (const customers of opts.customerCounts) {
    const env = benchEnv();
    const s = await openStores(env);
    try {
      const t0 = performance.now();
      // Every customer subscribes to a plan whose price the debit lines carry, as a rater's
      // debits always do: the ledger then also adds each line to its subscription's usage.
      const { planId, priceId } = await createCatalog(s);
      await createCustomers(s.pool, { count: customers, planId });
      const setupS = (performance.now() - t0) / 1000;
      // Fresh batch ids every time (a replayed id is skipped, which would flatter the figure).
      let k = 0;
      const until = performance.now() + opts.seconds * 1000;
      const start = performance.now();
      let batches = 0, lines = 0, events = 0;
      const txMs: number[] = [];
      while (performance.now() < until) {
        const group = debitBatches({ count: opts.batchesPerTx, customers, eventsPerBatch: 2500, shape: 'uniform', seed: 100 + k, tag: `l${k}`, priceId });
        k++;
        const a = performance.now();
        const r = await applyDebitBatches(s.pool, group);
        txMs.push(performance.now() - a);
        if (r.applied.length !== group.length) throw new Error(`ledger bench: ${group.length - r.applied.length} batches not applied`);
        batches += group.length;
        for (const b of group) {
          lines += b.lines.length;
          events += b.lines.reduce((x, l) => x + l.events, 0);
        }
      }
      // Generating batches is inside the loop but tiny next to the transaction; count only applying time too.
      const secs = (performance.now() - start) / 1000;
      const applySecs = txMs.reduce((a, b) => a + b, 0) / 1000;
      // With a backlog the ledger's consumer applies up to DRAWDOWN_LEDGER_BATCH_MAX batches per
      // transaction: the same loop at that size (a customer debited by several batches is one row update).
      const backlogPerTx = env.config.ledgerBatchMax;
      let backlogLines = 0, backlogMs = 0;
      const backlogUntil = performance.now() + opts.seconds * 1000;
      while (customers <= opts.backlogMaxCustomers && performance.now() < backlogUntil) {
        const group = debitBatches({ count: backlogPerTx, customers, eventsPerBatch: 2500, shape: 'uniform', seed: 100 + k, tag: `l${k}`, priceId });
        k++;
        const a = performance.now();
        const r = await applyDebitBatches(s.pool, group);
        backlogMs += performance.now() - a;
        if (r.applied.length !== group.length) throw new Error(`ledger bench: ${group.length - r.applied.length} batches not applied`);
        for (const b of group) backlogLines += b.lines.length;
      }
      // Steady state: first one debit for every customer (the day's grouped entries exist, in
      // transactions of 20,000 lines, not measured), then the 8-batch loop again.
      let steadyLines = 0, steadyMs = 0, steadyTxs = 0;
      if (customers > opts.batchesPerTx * 2500) {
        const day = new Date().toISOString().slice(0, 10);
        for (let first = 0; first < customers; first += 20_000) {
          const n = Math.min(20_000, customers - first);
          const warm: DebitBatch = {
            id: `steady-warm:${first}`, partition: 0, firstSeq: first + 1, lastSeq: first + n, receivedAtMax: Date.now(),
            lines: Array.from({ length: n }, (_, i) => ({ customerId: customerId(first + i), pricingUnit: 'credits', priceId, day, amountPicos: String(EVENT_PICOS), quantityPicos: '1000000000000', events: 1 })),
          };
          await applyDebitBatches(s.pool, [warm]);
        }
        const steadyUntil = performance.now() + opts.seconds * 1000;
        while (performance.now() < steadyUntil) {
          const group = debitBatches({ count: opts.batchesPerTx, customers, eventsPerBatch: 2500, shape: 'uniform', seed: 100 + k, tag: `l${k}`, priceId });
          k++;
          const a = performance.now();
          const r = await applyDebitBatches(s.pool, group);
          steadyMs += performance.now() - a;
          steadyTxs++;
          if (r.applied.length !== group.length) throw new Error(`ledger bench: ${group.length - r.applied.length} batches not applied`);
          for (const b of group) steadyLines += b.lines.length;
        }
      }
      out.push({
        name: `ledger_${customers}`,
        title: `Ledger alone: applyDebitBatches with ${customers.toLocaleString('en')} customers`,
        figures: {
          customers,
          batchesPerTx: opts.batchesPerTx,
          eventsPerBatch: 2500,
          avgLinesPerBatch: Math.round(lines / Math.max(1, batches)),
          batchesPerS: round(batches / applySecs, 1),
          customerDebitsPerS: Math.round(lines / applySecs),
          eventsCoveredPerS: Math.round(events / applySecs),
          txMsAvg: round((applySecs * 1000) / Math.max(1, txMs.length), 1),
          backlogBatchesPerTx: backlogPerTx,
          ...(backlogMs > 0 ? { backlogCustomerDebitsPerS: Math.round(backlogLines / (backlogMs / 1000)) } : {}),
          // The same 8-batch loop once every customer's grouped entry of the day exists (debits grow entries instead of starting them).
          ...(steadyMs > 0 ? { steadyCustomerDebitsPerS: Math.round(steadyLines / (steadyMs / 1000)), steadyTxMsAvg: round(steadyMs / steadyTxs, 1) } : {}),
          wallSeconds: round(secs, 1),
          setupSeconds: round(setupS, 1),
        },
      });
    } finally {
      await s.close();
      await env.cleanup();
    }
  }
  return out;
}
