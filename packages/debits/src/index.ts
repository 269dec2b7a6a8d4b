// The debit batch: what a rater publishes to the DEBITS stream and the ledger applies.
// Amounts travel as decimal strings of picos (bigint at @drawdown/money's scale), never floats.
import { Packr } from 'msgpackr';

export interface DebitLine {
  customerId: string;
  pricingUnit: string;
  priceId: string;
  /** UTC day of the events' timestamps, YYYY-MM-DD (usage decrements are grouped by day). */
  day: string;
  /** Sum of the rated amounts, picos as a decimal string. */
  amountPicos: string;
  /** Sum of the quantities, picos as a decimal string. */
  quantityPicos: string;
  events: number;
}

export interface DebitBatch {
  /** Deterministic: `${partition}:${firstSeq}-${lastSeq}` of the source events. */
  id: string;
  partition: number;
  firstSeq: number;
  lastSeq: number;
  /** Newest ingest receive time among the batch's events (epoch ms), for freshness. */
  receivedAtMax: number;
  lines: DebitLine[];
}

export function batchId(partition: number, firstSeq: number, lastSeq: number): string {
  return `${partition}:${firstSeq}-${lastSeq}`;
}

const packr = new Packr({ useRecords: false });

export function encodeDebitBatch(b: DebitBatch): Uint8Array {
  return packr.pack(b);
}

export class DebitBatchError extends Error {
  override readonly name = 'DebitBatchError';
  readonly code = 'invalid_debit_batch';
}

export function decodeDebitBatch(payload: Uint8Array): DebitBatch {
  const b = packr.unpack(payload) as DebitBatch;
  if (!b || typeof b.id !== 'string' || !Array.isArray(b.lines)) throw new DebitBatchError('not a debit batch');
  for (const l of b.lines) {
    if (typeof l.customerId !== 'string' || typeof l.amountPicos !== 'string' || !/^-?\d+$/.test(l.amountPicos)) {
      throw new DebitBatchError(`debit batch ${b.id}: malformed line`);
    }
  }
  return b;
}
