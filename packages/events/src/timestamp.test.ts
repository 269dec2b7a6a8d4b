import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { daysFromCivil } from './timestamp';
import { formatDuration, parseTimestamp } from './index';

describe('parseTimestamp', () => {
  it('agrees with Date for every millisecond-precision UTC instant of years 0-9999', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('0000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }), (d) => {
        const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
        expect(parseTimestamp(iso)).toBe(d.getTime());
      }),
      { numRuns: 2000 },
    );
  });

  it('applies offsets like Date does', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }),
        fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 }),
        (d, offset) => {
          const abs = Math.abs(offset);
          const zone = `${offset < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
          const text = d.toISOString().slice(0, 23) + zone;
          expect(parseTimestamp(text)).toBe(Date.parse(text));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('knows leap years', () => {
    expect(parseTimestamp('2024-02-29T00:00:00Z')).toBe(Date.parse('2024-02-29T00:00:00Z'));
    expect(parseTimestamp('2000-02-29T00:00:00Z')).toBe(Date.parse('2000-02-29T00:00:00Z'));
    expect(parseTimestamp('1900-02-29T00:00:00Z')).toBe('February 1900 has 28 days');
  });

  it('never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 50 }), (s) => {
        const r = parseTimestamp(s);
        expect(typeof r === 'string' || Number.isInteger(r)).toBe(true);
      }),
    );
  });

  it('daysFromCivil counts from 1970-01-01', () => {
    expect(daysFromCivil(1970, 1, 1)).toBe(0);
    expect(daysFromCivil(1969, 12, 31)).toBe(-1);
    expect(daysFromCivil(2026, 11, 25)).toBe(Date.UTC(2026, 10, 25) / 86_400_000);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [1, '1ms'],
    [0.2, '1ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1999, '1s'],
    [61_000, '1m1s'],
    [3_600_000, '1h'],
    [5 * 3_600_000 + 12 * 60_000, '5h12m'],
    [12 * 3_600_000, '12h'],
    [86_400_000 + 30_000, '1d30s'],
    [3 * 86_400_000 + 4 * 3_600_000 + 5 * 60_000 + 6_000, '3d4h5m6s'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
