import { describe, expect, it } from 'vitest';
import { addMonths, localDate, periodAfter, periodAt, periodsUntil, type PeriodBasis } from './periods';

const iso = (d: Date) => d.toISOString();

describe('settlement periods (the catalog billing periods)', () => {
  it('clamps month ends from the anchor without drift (UTC schedules)', () => {
    const a = new Date('2026-01-31T00:00:00Z');
    expect(addMonths(a, 1).toISOString()).toBe('2026-02-28T00:00:00.000Z');
    expect(addMonths(a, 2).toISOString()).toBe('2026-03-31T00:00:00.000Z');
    expect(addMonths(a, 13).toISOString()).toBe('2027-02-28T00:00:00.000Z');
  });

  it('starts at the start instant, then at local midnights of the anchor day', () => {
    // 2026-01-15 07:00 in New York (12:00Z): later periods start at New York midnight, across the March DST change.
    const b: PeriodBasis = { start: new Date('2026-01-15T12:00:00Z'), end: null, cadence: 'monthly', timeZone: 'America/New_York' };
    const p0 = periodAt(b, b.start)!;
    expect([p0.index, iso(p0.start), iso(p0.end)]).toEqual([0, '2026-01-15T12:00:00.000Z', '2026-02-15T05:00:00.000Z']);
    const p2 = periodAt(b, new Date('2026-03-20T00:00:00Z'))!;
    expect([p2.index, iso(p2.start), iso(p2.end)]).toEqual([2, '2026-03-15T04:00:00.000Z', '2026-04-15T04:00:00.000Z']);
    // The boundary instant belongs to the later period.
    expect(periodAt(b, new Date('2026-03-15T04:00:00Z'))!.index).toBe(2);
    expect(periodAt(b, new Date('2026-03-15T03:59:59.999Z'))!.index).toBe(1);
    expect(periodAfter(b, p2)!.index).toBe(3);
    expect(localDate(p2.start, b.timeZone)).toBe('2026-03-15');
  });

  it('clamps to the first period before the start and to the last at or after the end', () => {
    const b: PeriodBasis = { start: new Date('2026-01-31T00:00:00Z'), end: new Date('2026-03-10T00:00:00Z'), cadence: 'monthly', timeZone: 'UTC' };
    expect(periodAt(b, new Date('2025-12-01T00:00:00Z'))!.index).toBe(0);
    const last = periodAt(b, new Date('2026-06-01T00:00:00Z'))!;
    expect([last.index, iso(last.start), iso(last.end)]).toEqual([1, '2026-02-28T00:00:00.000Z', '2026-03-10T00:00:00.000Z']);
    expect(periodAfter(b, last)).toBeNull();
    expect(periodAt({ ...b, end: b.start }, b.start)).toBeNull();
  });

  it('lists the periods ended by a time and the next one', () => {
    const b: PeriodBasis = { start: new Date('2026-01-01T00:00:00Z'), end: null, cadence: 'quarterly', timeZone: 'Asia/Tokyo' };
    const { done, next } = periodsUntil(b, new Date('2026-07-01T00:00:00Z'), 1);
    expect(done.map((p) => [p.index, iso(p.start), iso(p.end)])).toEqual([[1, '2026-03-31T15:00:00.000Z', '2026-06-30T15:00:00.000Z']]);
    expect([next!.index, iso(next!.start)]).toEqual([2, '2026-06-30T15:00:00.000Z']);
    const ended = periodsUntil({ ...b, end: new Date('2026-02-01T00:00:00Z') }, new Date('2026-07-01T00:00:00Z'));
    expect([ended.done.length, ended.next]).toEqual([1, null]);
  });
});
