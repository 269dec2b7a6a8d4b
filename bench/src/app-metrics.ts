// Readings of the process's own Prometheus registry, for the bench's `stats` requests (server.ts),
// which run inside the service's process.
import { registry } from '@drawdown/metrics';
import type { AppStats } from './server';
import { round } from './util';

/** Sum of a counter's or gauge's values over the series `filter` keeps (0 when the metric is not registered). */
export async function metricSum(name: string, filter: (labels: Record<string, string | number>) => boolean = () => true): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const v = await m.get();
  return v.values.filter((x) => filter(x.labels as Record<string, string | number>)).reduce((a, x) => a + x.value, 0);
}

/** A histogram's running count and sum. */
export async function histogramTotals(name: string): Promise<{ count: number; sum: number }> {
  const m = registry.getSingleMetric(name);
  if (!m) return { count: 0, sum: 0 };
  const v = await m.get();
  const total = (suffix: string) => v.values.filter((x) => (x as { metricName?: string }).metricName === `${name}${suffix}`).reduce((a, x) => a + x.value, 0);
  return { count: total('_count'), sum: total('_sum') };
}

/** The pipeline's two batching stages over a step: rater batches (one ClickHouse insert and one
 *  debit batch each) and ledger transactions (many debit batches each). An event waits about one
 *  batch time to be taken, then one to be processed, in each stage: with the marker poll, these
 *  make up its freshness. */
export interface StageFigures {
  raterBatchesPerS: number;
  raterBatchMsAvg: number;
  raterEventsPerBatch: number;
  ledgerTxPerS: number;
  ledgerTxMsAvg: number;
  ledgerBatchesPerTx: number;
}

export function stageFigures(a: AppStats, b: AppStats): StageFigures | undefined {
  const s = (b.atMs - a.atMs) / 1000;
  if (!(s > 0)) return undefined;
  const rb = b.raterBatches - a.raterBatches;
  const lt = b.ledgerTxs - a.ledgerTxs;
  return {
    raterBatchesPerS: round(rb / s, 2),
    raterBatchMsAvg: rb > 0 ? round((1000 * (b.raterBatchSeconds - a.raterBatchSeconds)) / rb, 1) : 0,
    raterEventsPerBatch: rb > 0 ? Math.round((b.eventsProcessed - a.eventsProcessed) / rb) : 0,
    ledgerTxPerS: round(lt / s, 2),
    ledgerTxMsAvg: lt > 0 ? round((1000 * (b.ledgerTxSeconds - a.ledgerTxSeconds)) / lt, 1) : 0,
    ledgerBatchesPerTx: lt > 0 ? round((b.ledgerBatches - a.ledgerBatches) / lt, 1) : 0,
  };
}
