// Period usage from real chDB: the hourly rollup and the rated events agree, windows are
// half-open, and max / unique_count / latest are computed over the period only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDecimal } from '@drawdown/money';
import { silentLogger } from '@drawdown/log';
import { openClickHouse, migrateClickHouse, insertRows, type Ch } from '@drawdown/clickhouse';
import { clickhouseUsageSource } from '../src/index';

describe('clickhouseUsageSource', () => {
  let dir: string;
  let ch: Ch;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'drawdown-reporter-'));
    ch = await openClickHouse({ url: '', dataDir: join(dir, 'chdb') }, silentLogger);
    await migrateClickHouse(ch);
    const row = (seq: number, t: string, price: string, props: Record<string, unknown>, quantity: string, amount: string, status = 'rated') => ({
      partition: 0, seq, batch_id: 'b', customer_id: 'c1', external_customer_id: '', idempotency_key: `k${seq}`, event_name: price === 'p-max' ? 'm' : 'e',
      timestamp: Date.parse(t), received_at: Date.parse(t), properties: JSON.stringify(props), subscription_id: 's', price_id: price, metric_id: '',
      quantity, amount, pricing_unit: 'USD', status, reason: '', catalog_version: 1,
    });
    await insertRows(ch, 'rated_events', [
      row(1, '2026-03-01T00:00:00.000Z', 'p-sum', {}, '1.5', '0.15'),
      row(2, '2026-03-01T10:30:00.000Z', 'p-sum', {}, '2.25', '0.225'),
      row(3, '2026-03-31T23:59:59.999Z', 'p-sum', {}, '0.000000000001', '0.000000000001'),
      row(4, '2026-04-01T00:00:00.000Z', 'p-sum', {}, '100', '10'), // next period
      row(5, '2026-03-02T00:00:00.000Z', 'p-sum', {}, '7', '7', 'unpriced'),
      row(6, '2026-03-03T00:00:00.000Z', 'p-max', { v: 3, u: 'a' }, '0', '0'),
      row(7, '2026-03-04T00:00:00.000Z', 'p-max', { v: '9.5', u: 'b' }, '0', '0'),
      row(8, '2026-03-05T00:00:00.000Z', 'p-max', { v: 4, u: 'a' }, '0', '0'),
      row(9, '2026-04-02T00:00:00.000Z', 'p-max', { v: 50, u: 'z' }, '0', '0'),
    ]);
  });

  afterAll(async () => {
    await ch?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const march = { start: new Date('2026-03-01T00:00:00Z'), end: new Date('2026-04-01T00:00:00Z') };

  it('sums count/sum metrics over a half-open period, from the rollup or the events alike', async () => {
    const u = clickhouseUsageSource(ch);
    const aligned = await u.sums({ customerId: 'c1', priceIds: ['p-sum'], ...march });
    expect([formatDecimal(aligned.get('p-sum')!.quantity), formatDecimal(aligned.get('p-sum')!.amount)]).toEqual(['3.750000000001', '0.375000000001']);
    // A period not on whole hours reads the rated events: 10:30 is inside [10:00:00.001, ...).
    const odd = await u.sums({ customerId: 'c1', priceIds: ['p-sum'], start: new Date('2026-03-01T00:00:00.001Z'), end: new Date('2026-04-01T00:00:00.001Z') });
    expect(formatDecimal(odd.get('p-sum')!.quantity)).toBe('102.250000000001');
    expect((await u.sums({ customerId: 'c2', priceIds: ['p-sum'], ...march })).size).toBe(0);
  });

  it('computes max, unique count and latest over the period only', async () => {
    const u = clickhouseUsageSource(ch);
    const q = { customerId: 'c1', priceId: 'p-max', eventName: 'm', ...march };
    expect(formatDecimal(await u.aggregate({ ...q, aggregation: 'max', property: 'v' }))).toBe('9.5');
    expect(formatDecimal(await u.aggregate({ ...q, aggregation: 'unique_count', property: 'u' }))).toBe('2');
    expect(formatDecimal(await u.aggregate({ ...q, aggregation: 'latest', property: 'v' }))).toBe('4');
    expect(formatDecimal(await u.aggregate({ ...q, aggregation: 'max', property: 'v', start: new Date('2027-01-01T00:00:00Z'), end: new Date('2027-02-01T00:00:00Z') }))).toBe('0');
  });
});
