import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot } from '@drawdown/catalog';
import { encodeBatch, type AcceptedEvent } from '@drawdown/events';
import { dedupKey, hash64, hashHi, hashKey, hashLo } from '../dedup';
import { decodeDebitBatch } from '@drawdown/debits';
import { priceBatch } from './price';
import { encodeSnapshot, priceTask, taskEvents } from './worker';
import { rateBatch } from './write';

const snap = { byExternalId: { acme: 'cus_1' }, customers: { cus_1: 'acme' }, subscriptions: {} } as unknown as CatalogSnapshot;
const ev = (k: string, c: string, r = 1): AcceptedEvent => ({ k, c, n: 'call', t: 1000 + r, r, p: {} });

function task(messages: Uint8Array[], rerate: number[] = [], skip: number[] = []) {
  const data = new Uint8Array(messages.reduce((a, m) => a + m.byteLength, 0));
  const ends: number[] = [];
  let at = 0;
  for (const m of messages) {
    data.set(m, at);
    ends.push((at += m.byteLength));
  }
  return { data, ends, seqs: messages.map((_, i) => 10 + i), rerate, skip };
}

describe('taskEvents (the worker side of dedup)', () => {
  it('leaves out copies inside the batch by canonical key (id or external id), keeps re-rating copies, skips what it is told', () => {
    const { events, seqs, keys } = taskEvents(snap, task([
      encodeBatch([ev('a', 'x:acme', 5), ev('b', 'cus_1', 2)]),
      Uint8Array.of(0x81, 0xa1, 0x6b, 0x01), // not an event batch
      encodeBatch([ev('a', 'cus_1', 9), ev('c', 'x:other', 3)]), // a copy of 'a' (same customer by id)
      encodeBatch([ev('a', 'x:acme', 7)]), // re-rating copy: priced unless the main thread drops it
    ], [3], [3]));
    expect(keys.perMessage).toEqual([2, 0, 2, 1]);
    expect(keys.undecodable).toEqual([1]);
    expect(keys.copies).toEqual([2]);
    expect(keys.receivedAtMax).toBe(5); // copies and re-rating messages aside
    expect(events.map((e, i) => [seqs[i], e.k, e.c])).toEqual([[10, 'a', 'x:acme'], [10, 'b', 'cus_1'], [13, 'a', 'x:acme']]);
    hash64(dedupKey('cus_1', 'b'));
    expect([keys.hi[1], keys.lo[1], keys.t[1]]).toEqual([hashHi, hashLo, 1002]);
    hash64(dedupKey('x:other', 'c'));
    expect([keys.hi[3], keys.lo[3]]).toEqual([hashHi, hashLo]);
  });

  it('tells apart keys whose fingerprints share the bits the batch map uses, and still catches their copies', () => {
    // Two idempotency keys of one customer whose hashes agree on the 30 bits (birthday search).
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      hashKey('cus_1', `k${i}`);
      const bits = hashHi & 0x3fffffff;
      const other = seen.get(bits);
      if (other !== undefined) pair = [other, `k${i}`];
      else seen.set(bits, `k${i}`);
    }
    const [a, b] = pair;
    const { events, keys } = taskEvents(snap, task([encodeBatch([ev(a, 'cus_1'), ev(b, 'cus_1'), ev(b, 'x:acme'), ev(a, 'cus_1'), ev('c', 'cus_1')])]));
    expect(keys.copies).toEqual([2, 3]);
    expect(events.map((e) => e.k)).toEqual([a, b, 'c']);
  });

  it('sizes its keys by the decoded events: a header claiming more events than its message holds is not believed', () => {
    // An array32 header of 2^32 - 1 elements, then garbage: undecodable, and no 4-billion-slot keys.
    const corrupt = Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02);
    const { events, keys } = taskEvents(snap, task([corrupt, encodeBatch([ev('a', 'cus_1', 4)])]));
    expect(keys.undecodable).toEqual([0]);
    expect(keys.perMessage).toEqual([0, 1]);
    expect([keys.hi.length, keys.lo.length, keys.t.length]).toEqual([1, 1, 1]);
    expect(events.map((e) => e.k)).toEqual(['a']);
    expect(keys.t[0]).toBe(1004);
  });
});

describe('priceTask', () => {
  it('returns the debit batch encoded as the main thread publishes it: the batch range, its newest receive time and the stand-alone lines', () => {
    const priced = {
      version: 2, byExternalId: { acme: 'cus_1' }, customers: { cus_1: 'acme', cus_2: '' },
      subscriptions: {
        cus_1: [{ id: 'sub_1', startMs: 0, endMs: null, priceIds: ['p1'], billingCadence: 'monthly' }],
        cus_2: [{ id: 'sub_2', startMs: 0, endMs: null, priceIds: ['p1'], billingCadence: 'monthly' }],
      },
      prices: { p1: { id: 'p1', metricId: 'm1', currency: 'credits', modelType: 'unit', config: { unit_config: { unit_amount: '0.25' } } } },
      metrics: { m1: { id: 'm1', event_name: 'call', aggregation: 'count', filters: [] } },
    } as unknown as CatalogSnapshot;
    const msgs = [encodeBatch([ev('a', 'x:acme', 5), ev('b', 'cus_2', 9)]), encodeBatch([ev('c', 'cus_1', 7), ev('a', 'cus_1', 11)])];
    const out = priceTask({ ...task(msgs), snapshotVersion: 2, snapshotJson: encodeSnapshot(priced), partition: 3, batchId: '3:10-11' });
    const b = decodeDebitBatch(out.debitBatch!);
    expect([b.id, b.partition, b.firstSeq, b.lastSeq, b.receivedAtMax]).toEqual(['3:10-11', 3, 10, 11, 9]);
    const want = priceBatch(priced, [ev('a', 'x:acme', 5), ev('b', 'cus_2', 9), ev('c', 'cus_1', 7)].map((e, i) => ({ ...e, seq: i < 2 ? 10 : 11 })), 3, '3:10-11').debits;
    expect(b.lines).toEqual(want);
    expect(b.lines.map((l) => [l.customerId, l.amountPicos, l.events])).toEqual([['cus_1', '500000000000', 2], ['cus_2', '250000000000', 1]]);
    // A spare buffer from an earlier batch is written into; the task's data buffer goes back.
    const spare = new ArrayBuffer(1 << 20);
    new Uint8Array(spare).fill(0x41);
    const t2 = { ...task(msgs), snapshotVersion: 2, snapshotJson: encodeSnapshot(priced), partition: 3, batchId: '3:10-11', spare: [spare] };
    const again = priceTask(t2);
    expect(again.payload.body.buffer).toBe(spare);
    expect(Buffer.from(again.payload.body).equals(Buffer.from(out.payload.body))).toBe(true);
    expect(again.spent).toBe(t2.data.buffer);
    // Nothing to debit: no batch.
    const none = priceTask({ ...task([encodeBatch([ev('z', 'x:nobody')])]), snapshotVersion: 2, snapshotJson: encodeSnapshot(priced), partition: 3, batchId: '3:10-10' });
    expect(none.debitBatch).toBeUndefined();
  });

  it('gives the same payload, rows, debits and keys as taskEvents then rateBatch over the whole batch (copies, skips, re-rating and undecodable messages)', () => {
    const priced = {
      version: 3, byExternalId: { acme: 'cus_1' }, customers: { cus_1: 'acme', cus_2: '' },
      subscriptions: { cus_1: [{ id: 'sub_1', startMs: 0, endMs: null, priceIds: ['p1'], billingCadence: 'monthly' }] },
      prices: { p1: { id: 'p1', metricId: 'm1', currency: 'credits', modelType: 'unit', config: { unit_config: { unit_amount: '0.25' } } } },
      metrics: { m1: { id: 'm1', event_name: 'call', aggregation: 'count', filters: [] } },
    } as unknown as CatalogSnapshot;
    const msgs = [
      encodeBatch([ev('a', 'x:acme', 5), ev('b', 'cus_2', 9), ev('z', 'x:nobody', 1)]),
      Uint8Array.of(0x92, 0x01, 0x02), // an array, not of events: undecodable
      encodeBatch([ev('a', 'cus_1', 7), ev('c', 'cus_1', 11), ev('d', 'cus_1', 12)]), // 'a' a copy; 'd' skipped below
      encodeBatch([ev('a', 'x:acme', 3)]), // re-rating
    ];
    // Version 3: the worker keeps one snapshot per version, and the test above sent another as 2.
    const t = { ...task(msgs, [3], [5]), snapshotVersion: 3, snapshotJson: encodeSnapshot(priced), partition: 1, batchId: '1:10-13' };
    const streamed = priceTask(t);
    const whole = taskEvents(priced, task(msgs, [3], [5]));
    const ref = rateBatch(priced, whole.events, whole.seqs, whole.customers, 1, '1:10-13');
    expect(Buffer.from(streamed.payload.body).toString('hex')).toBe(Buffer.from(ref.payload.body).toString('hex'));
    expect([streamed.rows, streamed.unpriced, streamed.payload.cuts]).toEqual([ref.rows, ref.unpriced, ref.payload.cuts]);
    expect(decodeDebitBatch(streamed.debitBatch!).lines).toEqual(ref.debits);
    expect(whole.events.map((e) => e.k)).toEqual(['a', 'b', 'z', 'c', 'a']);
    expect([streamed.perMessage, streamed.undecodable, streamed.copies, [...streamed.hi], [...streamed.t]]).toEqual([whole.keys.perMessage, whole.keys.undecodable, whole.keys.copies, [...whole.keys.hi], [...whole.keys.t]]);
  });
});
