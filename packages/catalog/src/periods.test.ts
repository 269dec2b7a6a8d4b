import { describe, expect, it } from 'vitest';
import { billingPeriods, localParts, periodAt, zonedTimeToUtc } from './periods';

const iso = (ms: number) => new Date(ms).toISOString();
const at = (s: string) => Date.parse(s);

describe('zonedTimeToUtc', () => {
  it.each([
    ['UTC', [2026, 1, 1, 0, 0, 0], '2026-01-01T00:00:00.000Z'],
    ['America/New_York', [2026, 1, 1, 0, 0, 0], '2026-01-01T05:00:00.000Z'],
    ['America/New_York', [2026, 7, 1, 0, 0, 0], '2026-07-01T04:00:00.000Z'],
    ['Asia/Kolkata', [2026, 3, 15, 0, 0, 0], '2026-03-14T18:30:00.000Z'],
    // 02:30 does not exist on 2026-03-08 in New York: the first instant after the gap.
    ['America/New_York', [2026, 3, 8, 2, 30, 0], '2026-03-08T07:00:00.000Z'],
    // 01:30 happens twice on 2026-11-01: the earlier (EDT).
    ['America/New_York', [2026, 11, 1, 1, 30, 0], '2026-11-01T05:30:00.000Z'],
    // Midnight skipped: Sao Paulo moved 00:00 -> 01:00 on 2018-11-04.
    ['America/Sao_Paulo', [2018, 11, 4, 0, 0, 0], '2018-11-04T03:00:00.000Z'],
  ] as const)('%s %j', (tz, [y, mo, d, h, mi, s], want) => {
    expect(iso(zonedTimeToUtc(y, mo, d, h, mi, s, tz))).toBe(want);
  });
});

describe('billingPeriods', () => {
  it('monthly in UTC from a midnight start', () => {
    const p = billingPeriods(at('2026-01-01T00:00:00Z'), 'monthly', 'UTC', { untilMs: at('2026-03-15T00:00:00Z') });
    expect(p.map((x) => [iso(x.startMs), iso(x.endMs)])).toEqual([
      ['2026-01-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
      ['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
      ['2026-03-01T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
    ]);
  });

  it('keeps local midnight across DST in New York (EST -> EDT -> EST)', () => {
    const p = billingPeriods(at('2026-02-01T05:00:00Z'), 'monthly', 'America/New_York', { untilMs: at('2026-11-15T00:00:00Z') });
    const ends = p.map((x) => iso(x.endMs));
    expect(ends[0]).toBe('2026-03-01T05:00:00.000Z'); // EST
    expect(ends[1]).toBe('2026-04-01T04:00:00.000Z'); // EDT: the period is an hour shorter
    expect(ends[8]).toBe('2026-11-01T04:00:00.000Z'); // still EDT at midnight Nov 1
    expect(ends[9]).toBe('2026-12-01T05:00:00.000Z'); // EST again
    expect(p[1]!.endMs - p[1]!.startMs).toBe(31 * 86_400_000 - 3_600_000);
  });

  it('anchors on the 31st: clamps to month ends, returns to the 31st', () => {
    const p = billingPeriods(at('2026-01-31T00:00:00Z'), 'monthly', 'UTC', { untilMs: at('2026-06-01T00:00:00Z') });
    expect(p.map((x) => iso(x.endMs).slice(0, 10))).toEqual(['2026-02-28', '2026-03-31', '2026-04-30', '2026-05-31', '2026-06-30']);
  });

  it('leap years: Feb 29 anchor, annual', () => {
    const p = billingPeriods(at('2028-02-29T00:00:00Z'), 'annual', 'UTC', { untilMs: at('2032-03-01T00:00:00Z') });
    expect(p.map((x) => iso(x.endMs).slice(0, 10))).toEqual(['2029-02-28', '2030-02-28', '2031-02-28', '2032-02-29', '2033-02-28']);
  });

  it('quarterly in Tokyo; the first period starts at the start instant, later ones at local midnight', () => {
    // 2026-01-15 10:30 in Tokyo.
    const start = at('2026-01-15T01:30:00Z');
    const p = billingPeriods(start, 'quarterly', 'Asia/Tokyo', { untilMs: at('2026-08-01T00:00:00Z') });
    expect(p.map((x) => [iso(x.startMs), iso(x.endMs)])).toEqual([
      ['2026-01-15T01:30:00.000Z', '2026-04-14T15:00:00.000Z'],
      ['2026-04-14T15:00:00.000Z', '2026-07-14T15:00:00.000Z'],
      ['2026-07-14T15:00:00.000Z', '2026-10-14T15:00:00.000Z'],
    ]);
  });

  it('a customer zone moves the boundary: same instant, other local day', () => {
    // 2026-03-01T02:00Z is still Feb 28 in Los Angeles: anchor day 28.
    const p = billingPeriods(at('2026-03-01T02:00:00Z'), 'monthly', 'America/Los_Angeles', { untilMs: at('2026-05-01T00:00:00Z') });
    expect(p.map((x) => iso(x.endMs))).toEqual(['2026-03-28T07:00:00.000Z', '2026-04-28T07:00:00.000Z', '2026-05-28T07:00:00.000Z']);
  });

  it('cuts the last period at the end date', () => {
    const p = billingPeriods(at('2026-01-01T00:00:00Z'), 'monthly', 'UTC', { untilMs: at('2027-01-01T00:00:00Z'), endMs: at('2026-02-10T00:00:00Z') });
    expect(p.map((x) => iso(x.endMs))).toEqual(['2026-02-01T00:00:00.000Z', '2026-02-10T00:00:00.000Z']);
  });
});

describe('periodAt', () => {
  it('matches billingPeriods for every day over three years, in several zones and cadences', () => {
    for (const tz of ['UTC', 'America/New_York', 'Europe/London', 'Australia/Lord_Howe', 'Asia/Kolkata']) {
      for (const cadence of ['monthly', 'quarterly', 'annual'] as const) {
        const start = at('2025-01-31T13:17:00Z');
        const until = at('2028-02-01T00:00:00Z');
        const all = billingPeriods(start, cadence, tz, { untilMs: until });
        for (let t = start; t < until; t += 4 * 86_400_000 + 3_599_000) {
          const want = all.find((x) => x.startMs <= t && t < x.endMs)!;
          expect(periodAt(start, cadence, tz, t)).toEqual(want);
        }
        // Boundaries: contiguous, each ends where the next starts.
        for (let i = 1; i < all.length; i++) expect(all[i]!.startMs).toBe(all[i - 1]!.endMs);
      }
    }
  });

  it('null before the start and after the end', () => {
    expect(periodAt(at('2026-01-01T00:00:00Z'), 'monthly', 'UTC', at('2025-12-31T00:00:00Z'))).toBeNull();
    expect(periodAt(at('2026-01-01T00:00:00Z'), 'monthly', 'UTC', at('2026-03-01T00:00:00Z'), at('2026-02-01T00:00:00Z'))).toBeNull();
  });
});

describe('UTC fast path', () => {
  it('gives the time zone data\'s answer (Etc/UTC goes through Intl)', () => {
    for (const s of ['1970-01-01T00:00:00Z', '2026-02-28T23:59:59.999Z', '2028-02-29T12:34:56Z', '2026-12-31T00:00:01Z']) {
      expect(localParts(at(s), 'UTC')).toEqual(localParts(at(s), 'Etc/UTC'));
    }
    expect(zonedTimeToUtc(2026, 1, 32, 25, 0, 0, 'UTC')).toBe(zonedTimeToUtc(2026, 1, 32, 25, 0, 0, 'Etc/UTC'));
    expect(billingPeriods(at('2026-01-31T10:00:00Z'), 'monthly', 'UTC', { untilMs: at('2027-01-01T00:00:00Z') }))
      .toEqual(billingPeriods(at('2026-01-31T10:00:00Z'), 'monthly', 'Etc/UTC', { untilMs: at('2027-01-01T00:00:00Z') }));
  });
});
