// Piscina worker: prices one batch of events per task (never one task per event).
import type { CatalogSnapshot } from '@drawdown/catalog';
import { priceBatch, type PricingEvent, type PricingResult } from './price';

export interface PricingTask {
  snapshot: CatalogSnapshot;
  events: PricingEvent[];
  partition: number;
  batchId: string;
}

export default function price(task: PricingTask): PricingResult {
  return priceBatch(task.snapshot, task.events, task.partition, task.batchId);
}
