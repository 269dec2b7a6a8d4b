import { describe, expect, it } from 'vitest';
import { partitionOf } from '@drawdown/events';
import { debitBatches } from './scenarios/common';

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
