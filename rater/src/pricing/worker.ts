// Piscina worker: prices one batch of events per task (never one task per event). The catalog
// snapshot arrives as JSON bytes in a SharedArrayBuffer, encoded once per catalog version by
// the main thread: posting it shares the memory instead of cloning the snapshot per task, and
// each worker decodes it once per version.
import type { CatalogSnapshot } from '@drawdown/catalog';
import { priceBatch, type PricingEvent, type PricingResult } from './price';

export interface PricingTask {
  snapshotVersion: number;
  /** JSON of the snapshot, shared (not copied) with every worker. */
  snapshotJson: SharedArrayBuffer;
  events: PricingEvent[];
  partition: number;
  batchId: string;
}

export function encodeSnapshot(snap: CatalogSnapshot): SharedArrayBuffer {
  const bytes = new TextEncoder().encode(JSON.stringify(snap));
  const sab = new SharedArrayBuffer(bytes.byteLength);
  new Uint8Array(sab).set(bytes);
  return sab;
}

let cached: { version: number; snap: CatalogSnapshot } | undefined;

export function snapshotOf(task: Pick<PricingTask, 'snapshotVersion' | 'snapshotJson'>): CatalogSnapshot {
  if (!cached || cached.version !== task.snapshotVersion) {
    // TextDecoder refuses shared memory: copy the bytes once per version.
    const text = new TextDecoder().decode(new Uint8Array(task.snapshotJson).slice());
    cached = { version: task.snapshotVersion, snap: JSON.parse(text) as CatalogSnapshot };
  }
  return cached.snap;
}

export default function price(task: PricingTask): PricingResult {
  return priceBatch(snapshotOf(task), task.events, task.partition, task.batchId);
}
