import { describe, expect, it } from 'vitest';
import { longRunTenths, nextLongRate, nextSearchRate, roundRate, slopePerS } from './search';

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
  it('takes the best sustained window of each tenth of the run by events stored before it, ignoring failed windows', () => {
    const w = (storedEventsBefore: number, achieved: number, ok = true) => ({ storedEventsBefore, achieved, ok });
    const tenths = longRunTenths([w(0, 2000), w(120_000, 2400), w(264_000, 5000, false), w(500_000, 2200), w(990_000, 1900), w(999_999, 2100)], 1_000_000);
    expect(tenths.map((t) => t.capacity)).toEqual([2000, 2400, 0, 0, 0, 2200, 0, 0, 0, 2100]);
    expect(tenths[5]!.from).toBe(500_000);
  });
  it('puts a window that starts past the planned total in the last tenth', () => {
    expect(longRunTenths([w2(1_050_000, 3000)], 1_000_000)[9]!.capacity).toBe(3000);
  });
});
const w2 = (storedEventsBefore: number, achieved: number) => ({ storedEventsBefore, achieved, ok: true });

describe('nextLongRate', () => {
  it('rises 20 % per good window before the first failure, then 5 %, then 10 % from the third good window in a row', () => {
    expect(nextLongRate(10_000, { ok: true, achieved: 10_000, processed: 10_000, failedOnce: false, goodRun: 1 })).toBe(12_000);
    expect(nextLongRate(10_000, { ok: true, achieved: 10_000, processed: 10_000, failedOnce: true, goodRun: 2 })).toBe(10_500);
    expect(nextLongRate(10_000, { ok: true, achieved: 10_000, processed: 10_000, failedOnce: true, goodRun: 3 })).toBe(11_000);
  });
  it('after a failed window aims at 90 % of what it processed, never above 90 % of the offered rate', () => {
    expect(nextLongRate(20_000, { ok: false, achieved: 20_000, processed: 15_000, failedOnce: true, goodRun: 0 })).toBe(13_500);
    expect(nextLongRate(20_000, { ok: false, achieved: 20_000, processed: 25_000, failedOnce: true, goodRun: 0 })).toBe(18_000);
    expect(nextLongRate(20_000, { ok: false, achieved: 12_000, processed: NaN, failedOnce: true, goodRun: 0 })).toBe(10_200);
    expect(nextLongRate(1_000, { ok: false, achieved: 100, processed: 50, failedOnce: true, goodRun: 0 })).toBe(1_000);
  });
});
