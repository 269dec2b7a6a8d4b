import { describe, expect, it } from 'vitest';
import { partitionOf } from '@drawdown/events';
import { debitBatches, judgeLag } from './scenarios/common';

describe('debitBatches', () => {
  it('with partitions, draws each batch from its own partition\'s customers only', () => {
    const batches = debitBatches({ count: 6, customers: 1000, eventsPerBatch: 500, shape: 'zipf', seed: 3, tag: 't', partitions: 2 });
    expect(batches.map((b) => b.partition)).toEqual([0, 1, 0, 1, 0, 1]);
    for (const b of batches) {
      expect(b.lines.reduce((a, l) => a + l.events, 0)).toBe(500);
      for (const l of b.lines) expect(partitionOf(l.customerId, 2)).toBe(b.partition);
    }
  });
  it('without, labels batch b partition b mod 8 and draws from every customer', () => {
    const batches = debitBatches({ count: 9, customers: 1000, eventsPerBatch: 500, shape: 'uniform', seed: 3, tag: 't' });
    expect(batches.map((b) => b.partition)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 0]);
    expect(new Set(batches[0]!.lines.map((l) => partitionOf(l.customerId, 2))).size).toBe(2);
  });
  it('refuses a partition that holds none of the customers', () => {
    expect(() => debitBatches({ count: 2, customers: 1, eventsPerBatch: 10, shape: 'uniform', seed: 1, tag: 't', partitions: 2 })).toThrow(/has none of the 1 customers/);
  });
});

describe('judgeLag', () => {
  it('calls a lag that rises during warm-up and then levels off sustained, and reports its level', () => {
    // The 100,000-customer run of 2026-11-26 (60 s, one reading per 3 s).
    const r = judgeLag([2.54, 3.46, 4.05, 7.07, 6.49, 5.95, 5.27, 4.88, 4.05, 5.36, 6.68, 6.05, 5.75, 5.61, 5.36, 4.63, 4.39, 4.05, 3.9, 3.41]);
    expect(r.sustained).toBe(true);
    expect(r.lastThird).toBe(4.29);
    expect(r.why).toMatch(/levels off/);
  });

  it('calls a lag that keeps growing not sustained, however small it still is', () => {
    const growing = Array.from({ length: 20 }, (_, i) => 0.2 + 0.15 * i);
    const r = judgeLag(growing);
    expect(r.sustained).toBe(false);
    expect(r.why).toMatch(/grows/);
  });

  it('allows noise: a last third within 1.25 times the middle third plus 0.5 s', () => {
    expect(judgeLag([1, 1, 2, 2, 2, 2, 3, 3, 3]).sustained).toBe(true); // middle 2, last 3 = 1.25 * 2 + 0.5
    expect(judgeLag([1, 1, 2, 2, 2, 2, 3, 3, 3.1]).sustained).toBe(false);
  });

  it('refuses to judge fewer than six readings', () => {
    const r = judgeLag([0.1, 0.1, 0.1, 0.1, 0.1]);
    expect(r).toEqual({ sustained: false, lastThird: null, why: '5 lag readings, at least 6 needed' });
  });
});
