import { describe, expect, it } from 'vitest';
import { pairedReading, pairSchedule, type PairWindow } from './long-pairs';

describe('pairSchedule', () => {
  it("starts with the fresh instance's warm-up, then alternates which side goes first", () => {
    expect(pairSchedule(3).map((s) => `${s.side[0]}${s.pair}${s.warmup ? 'w' : ''}`)).toEqual(['f0w', 'a1', 'f1', 'f2', 'a2', 'a3', 'f3']);
    expect(pairSchedule(0)).toEqual([]);
  });

  it('refuses a count that is not a whole number of at least 0', () => {
    expect(() => pairSchedule(-1)).toThrow(/pairs: expected a whole number of at least 0, got -1/);
    expect(() => pairSchedule(1.5)).toThrow(/got 1.5/);
  });
});

const w = (side: 'aged' | 'fresh', pair: number, processedPerS: number, ownCpu: number, otherCpu: number, warmup = false): PairWindow => ({ side, pair, warmup, processedPerS, ownCpu, otherCpu });

describe('pairedReading', () => {
  it("compares the sides' mean rates, pair by pair too, leaving the warm-up out", () => {
    const r = pairedReading([
      w('fresh', 0, 10_000, 1.9, 0.3, true),
      w('aged', 1, 45_000, 1.9, 0.02),
      w('fresh', 1, 50_000, 1.8, 0.2),
      w('fresh', 2, 60_000, 1.9, 0.02),
      w('aged', 2, 54_000, 1.95, 0.05),
    ]);
    expect(r.pairs).toBe(2);
    expect(r.agedPerS).toBe(49_500);
    expect(r.freshPerS).toBe(55_000);
    expect(r.agedVsFresh).toBe(0.9);
    expect(r.perPair).toEqual([0.9, 0.9]);
    expect(r.otherCpuDuringAged).toBe(0.035);
    expect(r.otherCpuDuringFresh).toBe(0.11);
  });

  it("charges an instance what it spent while the other was measured (its merges), not the warm-up's", () => {
    const r = pairedReading([
      w('fresh', 0, 10_000, 1.9, 0.5, true),
      w('aged', 1, 40_000, 1.6, 0.1),
      w('fresh', 1, 50_000, 1.7, 0.4),
    ]);
    // Aged: (1.6 + 0.4) cores over 40,000 events/s = 50 µs; fresh: (1.7 + 0.1) over 50,000 = 36 µs.
    expect(r.agedUsPerEvent).toBe(50);
    expect(r.freshUsPerEvent).toBe(36);
    expect(r.freshVsAgedCost).toBe(0.72);
  });

  it("gives each part of a side's own CPU per event, over its counted windows", () => {
    const part = (x: PairWindow, parts: Record<string, number>): PairWindow => ({ ...x, parts });
    const r = pairedReading([
      part(w('fresh', 0, 10_000, 1.9, 0, true), { main: 0.9, merges: 0.9 }),
      part(w('aged', 1, 40_000, 1.6, 0), { main: 0.4, merges: 0.2 }),
      part(w('aged', 2, 60_000, 1.6, 0), { main: 0.6, merges: 0.1 }),
      part(w('fresh', 1, 50_000, 1.7, 0), { main: 0.5, merges: 0.05 }),
    ]);
    // Aged: (0.4 + 0.6) cores over 100,000 events/s = 10 µs main, 0.3 over 100,000 = 3 µs merges.
    expect(r.agedUsByPart).toEqual({ main: 10, merges: 3 });
    expect(r.freshUsByPart).toEqual({ main: 10, merges: 1 });
  });

  it('counts a pair only when both of its windows processed events', () => {
    const r = pairedReading([w('aged', 1, NaN, 1.9, 0), w('fresh', 1, 50_000, 1.9, 0), w('fresh', 2, 50_000, 1.9, 0), w('aged', 2, 52_000, 1.9, 0)]);
    expect(r.pairs).toBe(1);
    expect(r.perPair).toEqual([1.04]);
    expect(r.agedVsFresh).toBe(1.04);
    expect(pairedReading([w('fresh', 1, 50_000, 1.9, 0)]).agedVsFresh).toBeNull();
  });
});
