import { describe, expect, it } from 'vitest';
import { DedupMemory, dedupKey, hash64, hashHi, hashKey, hashLo } from './dedup';

describe('DedupMemory', () => {
  it('holds what was added, evicts oldest first and remembers the newest evicted timestamp', () => {
    const m = new DedupMemory(1000);
    for (let i = 0; i < 1000; i++) m.add(dedupKey('c', `k${i}`), i);
    for (let i = 0; i < 1000; i++) expect(m.has(dedupKey('c', `k${i}`))).toBe(true);
    expect(m.has(dedupKey('c', 'k1000'))).toBe(false);
    expect(m.evictedUpToMs).toBe(-Infinity);
    for (let i = 1000; i < 1500; i++) m.add(dedupKey('c', `k${i}`), i);
    expect(m.size).toBe(1000);
    for (let i = 0; i < 500; i++) expect(m.has(dedupKey('c', `k${i}`))).toBe(false);
    for (let i = 500; i < 1500; i++) expect(m.has(dedupKey('c', `k${i}`))).toBe(true);
    expect(m.evictedUpToMs).toBe(499);
    expect(m.needsStoreCheck(499)).toBe(true);
    expect(m.needsStoreCheck(500)).toBe(false);
  });

  it('stays consistent through many wrap-arounds (index deletions)', () => {
    const m = new DedupMemory(257);
    for (let i = 0; i < 20_000; i++) {
      m.add(`x${i}`, i);
      if (i % 997 === 0) {
        for (let j = Math.max(0, i - 256); j <= i; j++) expect(m.has(`x${j}`)).toBe(true);
        if (i >= 257) expect(m.has(`x${i - 257}`)).toBe(false);
      }
    }
    expect(m.bytes).toBeLessThan(257 * 40);
  });

  it('distinguishes customers with the same key', () => {
    const m = new DedupMemory(10);
    m.add(dedupKey('a', 'k'), 1);
    expect(m.has(dedupKey('b', 'k'))).toBe(false);
  });
});

describe('hashKey', () => {
  it('is hash64 of the dedup key, without building it', () => {
    for (const [c, k] of [['cus_1', 'k'], ['', ''], ['x:é', 'ключ\u0000'], ['c'.repeat(300), 'k'.repeat(40)]] as const) {
      hash64(dedupKey(c, k));
      const want = [hashHi, hashLo];
      hashKey(c, k);
      expect([hashHi, hashLo]).toEqual(want);
    }
  });
});
