// Piscina worker: prices one batch of events per task (never one task per event) and writes
// the batch's ClickHouse payload. The main thread hands over the batch's raw msgpack messages
// (one transferred buffer) and which events to leave out (copies it found); the worker decodes
// them, prices them and returns TabSeparated text, so no event or row object is cloned between
// threads. The catalog snapshot arrives as JSON bytes in a SharedArrayBuffer, encoded once per
// catalog version by the main thread: posting it shares the memory instead of cloning the
// snapshot per task, and each worker decodes it once per version.
import type { CatalogSnapshot } from '@drawdown/catalog';
import { decodeBatch } from '@drawdown/events';
import { encodeRated, priceBatch, type DebitLineOut, type PricingEvent, type RatedRow } from './price';

export interface PricingTask {
  snapshotVersion: number;
  /** JSON of the snapshot, shared (not copied) with every worker. */
  snapshotJson: SharedArrayBuffer;
  partition: number;
  batchId: string;
  /** The batch's message payloads back to back: message i is data[ends[i - 1] ?? 0, ends[i]). */
  data: Uint8Array;
  ends: number[];
  /** Stream sequence of each message. */
  seqs: number[];
  /** Positions (ascending, counted over the batch's decoded events in order) of the events not to price: copies. */
  skip: number[];
}

export interface PricingOutput {
  /** rated_events payload (RATED_COLUMNS) cut before the amount of each `cumulative` row: joinRated puts them in. */
  segments: string[];
  /** Rows in the payload. */
  rows: number;
  /** Tiered/package rows in stream order, amounts still to be set (applyCumulative). */
  cumulative: RatedRow[];
  /** Debit lines of the stand-alone (unit, matrix) rows. */
  debits: DebitLineOut[];
  /** Unpriced events by reason. */
  unpriced: Record<string, number>;
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

/** The events of a task to price, in stream order, the skipped ones left out. An undecodable message has none (the main thread reports it). */
export function taskEvents(task: Pick<PricingTask, 'data' | 'ends' | 'seqs' | 'skip'>): PricingEvent[] {
  const out: PricingEvent[] = [];
  let pos = 0;
  let s = 0;
  for (let i = 0; i < task.ends.length; i++) {
    let events: ReturnType<typeof decodeBatch> = [];
    try {
      events = decodeBatch(task.data.subarray(task.ends[i - 1] ?? 0, task.ends[i]));
    } catch {
      // counted and logged by the main thread, which decoded the same bytes
    }
    const seq = task.seqs[i]!;
    for (const e of events) {
      if (task.skip[s] === pos++) {
        s++;
        continue;
      }
      out.push({ seq, k: e.k, c: e.c, n: e.n, t: e.t, r: e.r, p: e.p });
    }
  }
  return out;
}

export default function price(task: PricingTask): PricingOutput {
  const result = priceBatch(snapshotOf(task), taskEvents(task), task.partition, task.batchId);
  return {
    segments: encodeRated(result.rows, result.cumulative),
    rows: result.rows.length,
    cumulative: result.cumulative.map((i) => result.rows[i]!),
    debits: result.debits,
    unpriced: result.unpriced,
  };
}
