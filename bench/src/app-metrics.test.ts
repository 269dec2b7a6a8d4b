import { describe, expect, it } from 'vitest';
import { counter, histogram } from '@drawdown/metrics';
import { histogramTotals, metricSum, stageFigures } from './app-metrics';
import type { AppStats } from './server';

describe('readings of the registry', () => {
  it('sums a counter over the series the filter keeps, 0 for a metric not registered', async () => {
    const c = counter('bench_test_outcomes_total', 'test', ['outcome']);
    c.inc({ outcome: 'a' }, 3);
    c.inc({ outcome: 'b' }, 4);
    expect(await metricSum('bench_test_outcomes_total')).toBe(7);
    expect(await metricSum('bench_test_outcomes_total', (l) => l.outcome === 'b')).toBe(4);
    expect(await metricSum('bench_test_not_there')).toBe(0);
  });
  it("reads a histogram's count and sum (not its buckets)", async () => {
    const h = histogram('bench_test_seconds', 'test');
    h.observe(0.25);
    h.observe(1.5);
    expect(await histogramTotals('bench_test_seconds')).toEqual({ count: 2, sum: 1.75 });
    expect(await histogramTotals('bench_test_absent_seconds')).toEqual({ count: 0, sum: 0 });
  });
});

const stats = (atMs: number, o: Partial<AppStats>): AppStats => ({
  atMs, eventsBacklog: 0, eventsAccepted: 0, eventsProcessed: 0, partitionsBehind: 0, seqLag: 0, debitsPending: 0, stalenessS: 0,
  raterBatches: 0, raterBatchSeconds: 0, ledgerTxs: 0, ledgerTxSeconds: 0, ledgerBatches: 0, ...o,
});

describe('stageFigures', () => {
  it('gives each stage its rate, mean time and size over the interval between two readings', () => {
    const a = stats(10_000, { eventsProcessed: 1000, raterBatches: 5, raterBatchSeconds: 2, ledgerTxs: 3, ledgerTxSeconds: 1, ledgerBatches: 4 });
    const b = stats(14_000, { eventsProcessed: 81_000, raterBatches: 13, raterBatchSeconds: 6, ledgerTxs: 5, ledgerTxSeconds: 2.5, ledgerBatches: 12 });
    expect(stageFigures(a, b)).toEqual({ raterBatchesPerS: 2, raterBatchMsAvg: 500, raterEventsPerBatch: 10_000, ledgerTxPerS: 0.5, ledgerTxMsAvg: 750, ledgerBatchesPerTx: 4 });
  });
  it('reports zeros for a stage that did nothing and nothing for an empty interval', () => {
    const a = stats(10_000, {});
    expect(stageFigures(a, stats(12_000, {}))).toEqual({ raterBatchesPerS: 0, raterBatchMsAvg: 0, raterEventsPerBatch: 0, ledgerTxPerS: 0, ledgerTxMsAvg: 0, ledgerBatchesPerTx: 0 });
    expect(stageFigures(a, a)).toBeUndefined();
  });
});
