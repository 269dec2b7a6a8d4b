// Piscina worker: prices one batch of events per task (never one task per event) and writes
// the batch's ClickHouse payload. The main thread hands over the batch's raw msgpack messages
// (one transferred buffer); the worker decodes them (the only decode of a batch, but for rare
// cases), leaves out the copies inside the batch (exact keys), prices the rest and returns
// RowBinary bytes and every event's key fingerprint, with which the main thread checks its
// dedup memory. No event or row object is cloned between threads. The catalog snapshot arrives
// as JSON bytes in a SharedArrayBuffer, encoded once per catalog version by the main thread:
// posting it shares the memory instead of cloning the snapshot per task, and each worker
// decodes it once per version.
import type { CatalogSnapshot } from '@drawdown/catalog';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { decodeBatch, type AcceptedEvent } from '@drawdown/events';
import { dedupKey, hashKey, hashHi, hashLo } from '../dedup';
import { encodeDebitBatch, type DebitBatch } from '@drawdown/debits';
import { resolveCustomer, type RatedPayload, type RatedRow, type ResolvedCustomer } from './price';
import { rateBatch } from './write';

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
  /** Indexes of the re-rating messages: their events are not deduplicated here (the main thread decides). */
  rerate: number[];
  /** Positions (ascending, counted over the batch's decoded events in order) of more events not to price: copies of earlier batches. */
  skip: number[];
  /** Payload buffers of earlier batches, moved back here to be written again (see `spent`). */
  spare?: ArrayBuffer[];
}

/** What the worker learnt about the batch's events, for the main thread's dedup. */
export interface BatchKeys {
  /** Decoded events per message (0 for an undecodable message). */
  perMessage: number[];
  /** Indexes of the messages that are not event batches (left out; the main thread reports them). */
  undecodable: number[];
  /** Positions (ascending) of copies of an earlier event of the same batch (re-rating messages aside): not priced. */
  copies: number[];
  /** Per position: fingerprint of the event's dedup key (hash64) and its timestamp. */
  hi: Uint32Array;
  lo: Uint32Array;
  t: Float64Array;
  /** Latest `received_at` among the batch's events (re-rating messages and copies aside). */
  receivedAtMax: number;
}

export interface PricingOutput extends BatchKeys {
  /** rated_events payload (RATED_COLUMNS), without the amounts of the `cumulative` rows: joinRated puts them in. */
  payload: RatedPayload;
  /** Rows in the payload. */
  rows: number;
  /** Tiered/package rows in stream order, amounts still to be set (applyCumulative). */
  cumulative: RatedRow[];
  /**
   * The debit batch of the stand-alone (unit, matrix) rows, encoded (encodeDebitBatch) as the
   * main thread publishes it (undefined: no lines). Encoded here, its lines are not cloned
   * between threads; the main thread decodes them only to add the cumulative rows' lines.
   */
  debitBatch: Uint8Array | undefined;
  /** Unpriced events by reason. */
  unpriced: Record<string, number>;
  /**
   * The task's data buffer, moved back for the main thread to reuse. Buffers go back and forth
   * instead of being made (and zero-filled) per batch: each new one also counts as external
   * memory, which drives V8's collections. Measured alone it changed little: the main thread
   * still ran a full collection about every 0.4 s (27 before, 24 after, one bench run each).
   */
  spent: ArrayBuffer | undefined;
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

/** The events of a task to price, in stream order (copies and skipped ones left out), each with its stream sequence and customer, and the batch's keys. */
export interface TaskEvents {
  events: AcceptedEvent[];
  seqs: number[];
  /** The customer each event names (null: unknown to the snapshot). */
  customers: (ResolvedCustomer | null)[];
  keys: BatchKeys;
}

export function taskEvents(snap: CatalogSnapshot, task: Pick<PricingTask, 'data' | 'ends' | 'seqs' | 'rerate' | 'skip'>): TaskEvents {
  const decoded: ReturnType<typeof decodeBatch>[] = [];
  const undecodable: number[] = [];
  let total = 0;
  for (let i = 0; i < task.ends.length; i++) {
    let events: ReturnType<typeof decodeBatch> = [];
    try {
      events = decodeBatch(task.data.subarray(task.ends[i - 1] ?? 0, task.ends[i]));
    } catch {
      undecodable.push(i);
    }
    decoded.push(events);
    total += events.length;
  }
  const keys: BatchKeys = { perMessage: decoded.map((m) => m.length), undecodable, copies: [], hi: new Uint32Array(total), lo: new Uint32Array(total), t: new Float64Array(total), receivedAtMax: 0 };
  const rerate = new Set(task.rerate);
  // Copies inside the batch, exactly: the first event per fingerprint (30 bits of it), its key
  // compared in full on a hit; keys sharing those bits with another key go to an exact set
  // (rare). The first events are held in an open-addressing table of positions + 1 (linear
  // probing, at most half full), sized once per batch: a Map grown event by event cost more.
  let bits = 4;
  while (1 << bits < 2 * total) bits++;
  const firstByPrint = new Int32Array(1 << bits);
  const mask = (1 << bits) - 1;
  const refs: string[] = [];
  const idKeys: string[] = [];
  let shared: Set<string> | undefined;
  const out: AcceptedEvent[] = [];
  const seqs: number[] = [];
  const customers: (ResolvedCustomer | null)[] = [];
  let pos = 0;
  let s = 0;
  for (let i = 0; i < decoded.length; i++) {
    const seq = task.seqs[i]!;
    const isRerate = rerate.has(i);
    for (const e of decoded[i]!) {
      const at = pos++;
      const customer = resolveCustomer(snap, e.c) ?? null;
      const ref = customer?.id ?? e.c; // canonicalRef
      hashKey(ref, e.k);
      keys.hi[at] = hashHi;
      keys.lo[at] = hashLo;
      keys.t[at] = e.t;
      if (!isRerate) {
        refs[at] = ref;
        idKeys[at] = e.k;
        const print = hashHi & 0x3fffffff;
        let prev = -1;
        for (let slot = print & mask; ; slot = (slot + 1) & mask) {
          const v = firstByPrint[slot]!;
          if (v === 0) {
            firstByPrint[slot] = at + 1;
            break;
          }
          if ((keys.hi[v - 1]! & 0x3fffffff) === print) {
            prev = v - 1;
            break;
          }
        }
        let copy = false;
        if (prev >= 0) {
          if (refs[prev] === ref && idKeys[prev] === e.k) copy = true;
          else {
            const key = dedupKey(ref, e.k);
            shared ??= new Set();
            copy = shared.has(key);
            shared.add(key);
          }
        }
        if (copy) {
          keys.copies.push(at);
          continue;
        }
        if (e.r > keys.receivedAtMax) keys.receivedAtMax = e.r;
      }
      if (task.skip[s] === at) {
        s++;
        continue;
      }
      out.push(e);
      seqs.push(seq);
      customers.push(customer);
    }
  }
  return { events: out, seqs, customers, keys };
}

// Payload buffers to write into, at most SPARE_MAX (largest last).
const spares: ArrayBuffer[] = [];
const SPARE_MAX = 2;

export function priceTask(task: PricingTask): PricingOutput {
  const snap = snapshotOf(task);
  for (const b of task.spare ?? []) {
    spares.push(b);
    spares.sort((x, y) => x.byteLength - y.byteLength);
    if (spares.length > SPARE_MAX) spares.shift();
  }
  const { events, seqs, customers, keys } = taskEvents(snap, task);
  const result = rateBatch(snap, events, seqs, customers, task.partition, task.batchId, spares.pop());
  let debitBatch: Uint8Array | undefined;
  if (result.debits.length > 0) {
    const batch: DebitBatch = { id: task.batchId, partition: task.partition, firstSeq: task.seqs[0]!, lastSeq: task.seqs[task.seqs.length - 1]!, receivedAtMax: keys.receivedAtMax, lines: result.debits };
    // A copy: the encoder's bytes are a view of its own reused buffer, which must not be moved.
    debitBatch = encodeDebitBatch(batch).slice();
  }
  return { ...keys, payload: result.payload, rows: result.rows, cumulative: result.cumulative, debitBatch, unpriced: result.unpriced, spent: task.data.buffer instanceof ArrayBuffer ? task.data.buffer : undefined };
}

/** The pool's task: the output with its buffers moved to the main thread, not copied. */
export default function price(task: PricingTask): unknown {
  const out = priceTask(task);
  const buffers = [out.payload.body.buffer, out.hi.buffer, out.lo.buffer, out.t.buffer];
  if (out.debitBatch) buffers.push(out.debitBatch.buffer);
  if (out.spent) buffers.push(out.spent);
  return move({ [transferableSymbol]: buffers, [valueSymbol]: out });
}
