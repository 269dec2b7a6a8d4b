import { describe, expect, it } from 'vitest';
import { addMonths, periodAt, periodN } from './periods';

describe('billing periods', () => {
  it('clamps month ends from the anchor without drift', () => {
    const a = new Date('2026-01-31T00:00:00Z');
    expect(addMonths(a, 1).toISOString()).toBe('2026-02-28T00:00:00.000Z');
    expect(addMonths(a, 2).toISOString()).toBe('2026-03-31T00:00:00.000Z');
    expect(addMonths(a, 13).toISOString()).toBe('2027-02-28T00:00:00.000Z');
  });
  it('finds the period containing a time', () => {
    const a = new Date('2026-01-15T12:00:00Z');
    const p = periodAt(a, 'monthly', new Date('2026-03-15T11:59:59Z'));
    expect([p.index, p.start.toISOString(), p.end.toISOString()]).toEqual([1, '2026-02-15T12:00:00.000Z', '2026-03-15T12:00:00.000Z']);
    expect(periodAt(a, 'monthly', new Date('2026-03-15T12:00:00Z')).index).toBe(2);
    expect(periodAt(a, 'quarterly', new Date('2026-12-01T00:00:00Z'))).toEqual(periodN(a, 'quarterly', 3));
    expect(periodAt(a, 'monthly', a).index).toBe(0);
  });
});
