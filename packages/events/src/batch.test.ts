import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  BatchDecodeError,
  batchLength,
  batchMessageId,
  decodeBatch,
  encodeBatch,
  fnv1a32,
  joinBatches,
  groupByPartition,
  partitionOf,
  sortByRefThenKey,
  type AcceptedEvent,
  type EventKey,
} from './index';

const event = (k: string, c: string, p: AcceptedEvent['p'] = {}): AcceptedEvent => ({
  k,
  c,
  n: 'api_call',
  t: 1_795_604_400_123,
  p,
  r: 1_795_608_000_000,
});

const scalar = fc.oneof(
  fc.string(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0)),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
);
const accepted: fc.Arbitrary<AcceptedEvent> = fc.record({
  k: fc.string({ minLength: 1 }),
  c: fc.string({ minLength: 1 }),
  n: fc.string({ minLength: 1 }),
  t: fc.integer({ min: 0, max: 253_402_300_799_999 }),
  p: fc.dictionary(fc.string().filter((k) => k !== '__proto__'), scalar, { maxKeys: 10 }),
  r: fc.integer({ min: 0, max: 253_402_300_799_999 }),
});

/** What encodeBatch must write: msgpackr's own encoding of the events. */
const packr = new Packr({ useRecords: false });
const pack = (v: unknown): Uint8Array => packr.pack(v);

/** Strings of every UTF-8 width and msgpack string header, lone surrogates included. */
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', minLength: 20, maxLength: 120 }),
  fc.constantFrom('\ud800', 'a\udc00b', '\ud83d\ude00'.repeat(20), 'é'.repeat(31), 'é'.repeat(32), 'é'.repeat(40), 'a'.repeat(255), 'é'.repeat(200), '€'.repeat(90), 'a'.repeat(70_000), 'é'.repeat(33_000)),
);
const number = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0)),
  fc.constantFrom(127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, -32, -33, -128, -129, -32_768, -32_769, -(2 ** 31), -(2 ** 31) - 1, 0.5, 2 ** 53),
);

describe('encodeBatch / decodeBatch', () => {
  it('writes the bytes msgpackr writes for the same events', () => {
    const value = fc.oneof(text, number, fc.boolean(), fc.constant(null));
    const ev: fc.Arbitrary<AcceptedEvent> = fc.record({
      k: text, c: text, n: text, t: number,
      p: fc.dictionary(text.filter((k) => k !== '__proto__'), value, { maxKeys: 6 }), r: number,
    });
    fc.assert(
      fc.property(fc.oneof(fc.array(ev, { maxLength: 20 }), fc.array(ev, { minLength: 15, maxLength: 17 })), (events) => {
        expect(Buffer.from(encodeBatch(events)).toString('hex')).toBe(Buffer.from(pack(events)).toString('hex'));
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips', () => {
    fc.assert(
      fc.property(fc.array(accepted, { maxLength: 20 }), (events) => {
        expect(decodeBatch(encodeBatch(events))).toEqual(events);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps earlier payloads intact when encoding more', () => {
    const first = encodeBatch([event('a', 'x:1')]);
    const copy = Uint8Array.from(first);
    // Enough bytes to fill the shared buffer payloads are written into several times.
    for (let i = 0; i < 10_000; i++) encodeBatch([event(`k${i}`, 'x:2', { s: 'y'.repeat(i % 50) })]);
    expect(Uint8Array.from(first)).toEqual(copy);
  });

  it('is plain msgpack: an array of maps with one-letter keys', () => {
    const bytes = encodeBatch([event('a', 'c')]);
    expect([...bytes.subarray(0, 6)]).toEqual([0x91, 0xde, 0x00, 0x06, 0xa1, 0x6b]); // [ {(map16 of 6) "k": ...
  });

  it.each([
    ['garbage', Uint8Array.from([0xc1, 0xff, 0x00])],
    ['truncated', encodeBatch([event('a', 'c')]).subarray(0, 10)],
    ['not an array', pack({ k: 'a' })],
    ['an event without k', pack([{ c: 'c', n: 'n', t: 1, p: {}, r: 1 }])],
    ['t a string', pack([{ ...event('a', 'c'), t: '1' }])],
    ['p an array', pack([{ ...event('a', 'c'), p: [] }])],
    ['an element null', pack([event('a', 'c'), null])],
  ])('throws BatchDecodeError on %s', (_name, bytes) => {
    expect(() => decodeBatch(bytes)).toThrow(BatchDecodeError);
  });

  it('never throws anything but BatchDecodeError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeBatch(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(BatchDecodeError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('joinBatches', () => {
  it('gives the bytes encodeBatch gives for the concatenated lists (array headers of every size)', () => {
    fc.assert(
      fc.property(fc.array(fc.array(accepted, { maxLength: 12 }), { minLength: 1, maxLength: 6 }), (lists) => {
        const joined = joinBatches(lists.map((l) => encodeBatch(l)));
        expect(Buffer.from(joined).equals(Buffer.from(encodeBatch(lists.flat())))).toBe(true);
        expect(decodeBatch(joined)).toEqual(lists.flat());
      }),
      { numRuns: 300 },
    );
    // Past 15 and 65,535 elements the array header grows (fixarray, array 16, array 32).
    const many = Array.from({ length: 70_000 }, (_, i) => event(`k${i}`, 'x:1'));
    for (const parts of [[many.slice(0, 10), many.slice(10, 20)], [many.slice(0, 40_000), many.slice(40_000)]]) {
      expect(Buffer.from(joinBatches(parts.map((l) => encodeBatch(l)))).equals(Buffer.from(encodeBatch(parts.flat())))).toBe(true);
    }
  });

  it('refuses what encodeBatch did not write', () => {
    expect(() => joinBatches([encodeBatch([event('a', 'c')]), Uint8Array.of(0x81, 0xa1, 0x6b, 0x01)])).toThrow(/not a msgpack array/);
  });
});

describe('batchLength', () => {
  it('reads the event count from the header (every header size), 0 for anything else', () => {
    const many = Array.from({ length: 70_000 }, (_, i) => event(`k${i}`, 'x:1'));
    for (const n of [0, 1, 15, 16, 65_535, 65_536, 70_000]) expect(batchLength(encodeBatch(many.slice(0, n)))).toBe(n);
    expect(batchLength(Uint8Array.of(0x81, 0xa1, 0x6b, 0x01))).toBe(0);
    expect(batchLength(new Uint8Array(0))).toBe(0);
  });
});

describe('partitionOf', () => {
  it('is FNV-1a 32 (published test vectors)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('hashes the UTF-8 bytes, lone surrogates as U+FFFD', () => {
    const reference = (s: string) => {
      let h = 0x811c9dc5;
      for (const b of new TextEncoder().encode(s)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
      return h;
    };
    expect(fnv1a32('é😀\ud800x\udc00')).toBe(reference('é😀\ud800x\udc00'));
    fc.assert(
      fc.property(fc.string({ unit: fc.oneof(fc.constant('a'), fc.constant('é'), fc.constant('€'), fc.constant('😀'), fc.constant('\ud800'), fc.constant('\udc00'), fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))) }), (s) => {
        expect(fnv1a32(s)).toBe(reference(s));
      }),
      { numRuns: 2000 },
    );
  });

  it('gives stable partitions (changing these moves every customer)', () => {
    // Values computed independently (Python, over str.encode()).
    expect(fnv1a32('x:acme')).toBe(0x6246d53d);
    expect(fnv1a32('x:cust_1')).toBe(0xd44cfcf0);
    expect(fnv1a32('Xa9gPqR')).toBe(0x6ff7aa55);
    expect([partitionOf('x:acme', 8), partitionOf('x:cust_1', 8), partitionOf('Xa9gPqR', 8)]).toEqual([5, 0, 5]);
    expect([partitionOf('x:acme', 64), partitionOf('x:cust_1', 64), partitionOf('Xa9gPqR', 64)]).toEqual([61, 48, 21]);
    expect(partitionOf('x:acme', 1)).toBe(0);
  });

  it('spreads customers evenly', () => {
    for (const partitions of [8, 13, 64]) {
      const counts = new Array<number>(partitions).fill(0);
      const n = 20_000;
      for (let i = 0; i < n; i++) {
        const p = partitionOf(`x:customer-${i}`, partitions);
        counts[p] = (counts[p] ?? 0) + 1;
      }
      const expected = n / partitions;
      for (const c of counts) expect(Math.abs(c - expected) / expected).toBeLessThan(0.15);
    }
  });

  it('refuses a bad partition count', () => {
    expect(() => partitionOf('x:a', 0)).toThrow(RangeError);
    expect(() => partitionOf('x:a', 2.5)).toThrow(RangeError);
  });

  it('groups accepted events by partition, in order', () => {
    const events = Array.from({ length: 50 }, (_, i) => event(`k${i}`, `x:c${i % 7}`));
    const groups = groupByPartition(events, 4);
    expect([...groups.values()].flat()).toHaveLength(50);
    for (const [p, list] of groups) {
      for (const e of list) expect(partitionOf(e.c, 4)).toBe(p);
      expect(list).toEqual(events.filter((e) => partitionOf(e.c, 4) === p));
    }
  });
});

describe('batchMessageId', () => {
  const batch = [event('k1', 'x:a'), event('k2', 'x:a'), event('k1', 'x:b'), event('z', 'c9')];

  it('is stable: the first 32 hex characters of sha256 over the partition and sorted, length-prefixed pairs', () => {
    // Computed independently (Python hashlib); a change would defeat dedup of retries across a deploy.
    expect(batchMessageId(3, batch)).toBe('5a4f918fd509c139f099877dd8753b40');
  });

  it('does not depend on event order', () => {
    const id = batchMessageId(3, batch);
    fc.assert(
      fc.property(fc.shuffledSubarray(batch, { minLength: batch.length, maxLength: batch.length }), (shuffled) => {
        expect(batchMessageId(3, shuffled)).toBe(id);
      }),
      { numRuns: 100 },
    );
  });

  it('depends only on the partition and the (ref, key) pairs', () => {
    const id = batchMessageId(3, batch);
    expect(batchMessageId(4, batch)).not.toBe(id);
    expect(batchMessageId(3, batch.slice(1))).not.toBe(id);
    expect(batchMessageId(3, [...batch.slice(0, 3), event('z', 'c8')])).not.toBe(id);
    // other fields (a retry's new received-at, say) do not change it
    expect(batchMessageId(3, batch.map((e) => ({ ...e, r: e.r + 1000, p: { x: 1 } })))).toBe(id);
  });

  it('cannot confuse where a ref ends and a key begins', () => {
    expect(batchMessageId(0, [event('c', 'ab')])).not.toBe(batchMessageId(0, [event('bc', 'a')]));
  });

  it('does not reorder the caller array', () => {
    const copy = batch.slice();
    batchMessageId(0, copy);
    expect(copy).toEqual(batch);
  });
});

describe('sortByRefThenKey', () => {
  const byRefThenKey = (a: EventKey, b: EventKey): number => (a.c !== b.c ? (a.c < b.c ? -1 : 1) : a.k < b.k ? -1 : a.k > b.k ? 1 : 0);
  const pairs = (list: readonly EventKey[]) => list.map((e) => [e.c, e.k]);
  // Refs that share long prefixes, differ past the 4 units the sort key holds, end inside them,
  // hold units above 254 (capped), NUL, lone surrogates; keys that tie refs.
  const unit = fc.constantFrom('a', 'b', '0', '9', '\u0000', '\u00fe', '\u00ff', '\u0100', '\uffff', '\ud800', '\udc00', 'é', '😀');
  const ref = fc.tuple(fc.constantFrom('', 'x:', 'x:ext-', 'cust_'), fc.array(unit, { maxLength: 7 })).map(([p, u]) => p + u.join(''));
  const key = fc.array(unit, { maxLength: 3 }).map((u) => u.join(''));
  const events = fc.array(fc.record({ c: ref, k: key }), { maxLength: 300 });

  it('orders as a comparator sort by ref, then key', () => {
    fc.assert(
      fc.property(events, (list) => {
        expect(pairs(sortByRefThenKey(list))).toEqual(pairs(list.slice().sort(byRefThenKey)));
      }),
      { numRuns: 500 },
    );
  });

  it('orders a message of the bench\'s shape (4 of 5 refs share 4 units past their prefix)', () => {
    const list: EventKey[] = [];
    for (let i = 0; i < 450; i++) list.push({ c: `x:ext-${(i * 7919) % 10_000}`, k: `k${(i * 31) % 97}` });
    const sorted = sortByRefThenKey(list);
    expect(pairs(sorted)).toEqual(pairs(list.slice().sort(byRefThenKey)));
    expect(sorted).toHaveLength(450);
  });

  it('leaves its input alone', () => {
    const list = Array.from({ length: 20 }, (_, i) => ({ c: `c${20 - i}`, k: 'k' }));
    const copy = list.slice();
    sortByRefThenKey(list);
    expect(list).toEqual(copy);
  });

  it('gives batchMessageId the ids of a comparator sort', () => {
    const reference = (partition: number, list: readonly EventKey[]): string => {
      let text = `drawdown.events.v1\n${partition}\n`;
      for (const e of list.slice().sort(byRefThenKey)) text += `${e.c.length}:${e.c}${e.k.length}:${e.k}`;
      return createHash('sha256').update(text).digest('hex').slice(0, 32);
    };
    fc.assert(
      fc.property(events, fc.nat(1023), (list, partition) => {
        expect(batchMessageId(partition, list)).toBe(reference(partition, list));
      }),
      { numRuns: 200 },
    );
  });
});
