import { describe, expect, it } from 'vitest';
import { longRunTenths, longRunTrend, nextLongRate, nextSearchRate, roundRate, slopePerS } from './search';

const opts = { growth: 1.5, precision: 1.2 };

describe('nextSearchRate', () => {
  it('rises by the growth factor until a step fails', () => {
    expect(nextSearchRate({ rate: 4000, ok: true, processed: 4000, lo: 4000 }, opts)).toBe(6000);
  });
  it('aims just under what a failed first step processed, within 30-90 % of its rate', () => {
    expect(nextSearchRate({ rate: 10_000, ok: false, processed: 6000, hi: 10_000 }, opts)).toBe(5400);
    expect(nextSearchRate({ rate: 10_000, ok: false, processed: 9900, hi: 10_000 }, opts)).toBe(8900);
    expect(nextSearchRate({ rate: 10_000, ok: false, processed: 100, hi: 10_000 }, opts)).toBe(3000);
    expect(nextSearchRate({ rate: 10_000, ok: false, processed: NaN, hi: 10_000 }, opts)).toBe(5400);
  });
  it('bisects between the best sustained and the lowest failed rate, then stops within the precision', () => {
    expect(nextSearchRate({ rate: 6000, ok: false, processed: 5000, lo: 4000, hi: 6000 }, opts)).toBe(4900);
    expect(nextSearchRate({ rate: 4900, ok: true, processed: 4900, lo: 4900, hi: 5800 }, opts)).toBeUndefined();
    // Nothing left between them at whole hundreds.
    expect(nextSearchRate({ rate: 300, ok: false, processed: 200, lo: 200, hi: 300 }, { growth: 1.5, precision: 1.01 })).toBeUndefined();
  });
  it('with stopAtBracket, stops at the first sustained step below a failed one, and only then', () => {
    const quick = { growth: 1.5, precision: 2, stopAtBracket: true };
    expect(nextSearchRate({ rate: 4000, ok: true, processed: 4400, lo: 4000, hi: 20_000 }, quick)).toBeUndefined();
    expect(nextSearchRate({ rate: 4000, ok: true, processed: 4400, lo: 4000, hi: 20_000 }, { ...quick, stopAtBracket: false })).toBe(8900);
    // No bracket yet: rising after a sustained step, aiming under what a failed one processed.
    expect(nextSearchRate({ rate: 4000, ok: true, processed: 4000, lo: 4000 }, quick)).toBe(6000);
    expect(nextSearchRate({ rate: 10_000, ok: false, processed: 6000, hi: 10_000 }, quick)).toBe(5400);
  });
});

describe('slopePerS', () => {
  it('is the least-squares slope, 0 for fewer than two points', () => {
    expect(slopePerS([[0, 100], [1, 300], [2, 500]])).toBeCloseTo(200);
    expect(slopePerS([[0, 5], [0.5, 4], [1, 6], [1.5, 5]])).toBeCloseTo(0.4);
    expect(slopePerS([[1, 7]])).toBe(0);
  });
  it('rounds rates to whole hundreds, at least 100', () => {
    expect(roundRate(149)).toBe(100);
    expect(roundRate(12_345)).toBe(12_300);
    expect(roundRate(0)).toBe(100);
  });
});

describe('longRunTenths', () => {
  const w = (storedEventsBefore: number, processedPerS: number, seconds = 20, counted = true) => ({ storedEventsBefore, processedPerS, seconds, counted });
  it('averages what the counted windows of each tenth processed, weighted by their length, by events stored before them', () => {
    const tenths = longRunTenths([w(0, 9000, 20, false), w(100, 2000), w(50_000, 2600, 10), w(264_000, 5000), w(300_000, 9000, 20, false), w(990_000, 1900), w(999_999, 2100)], 1_000_000);
    expect(tenths.map((t) => t.rate)).toEqual([2200, 0, 5000, 0, 0, 0, 0, 0, 0, 2000]);
    expect(tenths.map((t) => t.windows)).toEqual([2, 0, 1, 0, 0, 0, 0, 0, 0, 2]);
    expect(tenths[2]!.from).toBe(200_000);
  });
  it('leaves windows without a figure out, and puts a window past the planned total in the last tenth', () => {
    expect(longRunTenths([w(10, NaN)], 1_000_000)[0]!.rate).toBe(0);
    expect(longRunTenths([w(1_050_000, 3000)], 1_000_000)[9]!.rate).toBe(3000);
  });
});

describe('nextLongRate', () => {
  it('offers 15 % more than the last window processed, whether it kept up or not', () => {
    expect(nextLongRate({ processed: 97_340, acked: 115_000, reached: true })).toBe(111_900);
    expect(nextLongRate({ processed: 114_000, acked: 115_000, reached: true })).toBe(131_100);
  });
  it('climbs 40 % a window until a window finds the capacity', () => {
    expect(nextLongRate({ processed: 50_000, acked: 50_000, reached: false })).toBe(70_000);
  });
  it('without a figure for what was processed, starts from 85 % of what was acknowledged, never under 1,000', () => {
    expect(nextLongRate({ processed: NaN, acked: 60_000, reached: true })).toBe(58_600);
    expect(nextLongRate({ processed: 0, acked: 100, reached: true })).toBe(1000);
  });
});

describe('longRunTrend', () => {
  const w = (storedEventsBefore: number, processedPerS: number, counted = true) => ({ storedEventsBefore, processedPerS, counted });
  it('reads the least-squares line through the counted windows at the first and the last of them', () => {
    // 100,000 events/s at 5 million stored, falling 1,000 per million: 55,000 at 50 million.
    const t = longRunTrend([w(0, 500_000, false), w(5e6, 100_000), w(20e6, 82_000), w(30e6, 78_000), w(50e6, 55_000)]);
    expect(t.perTenMillion).toBe(-9_719);
    expect(t.atStart).toBe(99_404);
    expect(t.atEnd).toBe(55_667);
    expect(t.endVsStart).toBe(0.56);
  });
  it('stays flat for a flat run with one window dipping in the middle, and is empty with fewer than two counted windows', () => {
    const flat = longRunTrend([w(1e6, 100_000), w(11e6, 100_000), w(21e6, 70_000), w(31e6, 100_000), w(41e6, 100_000)]);
    expect(flat.endVsStart).toBe(1);
    expect(longRunTrend([w(1e6, 100_000)]).endVsStart).toBe(0);
  });
});
