import { describe, expect, it } from 'vitest';
import { envelope, retryDelayMs } from './dispatcher';

describe('retryDelayMs', () => {
  it('doubles per attempt, is capped, and jitters between half and all of it', () => {
    expect(retryDelayMs(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(retryDelayMs(4, 1000, 60_000, () => 1)).toBe(8000);
    expect(retryDelayMs(4, 1000, 60_000, () => 0)).toBe(4000);
    expect(retryDelayMs(30, 1000, 60_000, () => 1)).toBe(60_000);
  });
  it('retries for at least three days with the defaults before the window closes', () => {
    // Worst case (all jitter at its minimum): attempts needed to span 3 days stay finite and few.
    let t = 0;
    let n = 0;
    while (t < 3 * 86_400_000) t += retryDelayMs(++n, 10_000, 6 * 3600_000, () => 0);
    expect(n).toBeLessThan(40);
  });
});

describe('envelope', () => {
  it("has Orb's shape: id, created_at, type, the resource and properties", () => {
    const e = envelope('evt_1', { id: '7', type: 'customer.credit_balance_dropped', created_at: '2026-01-01T00:00:00.000Z', customer_id: 'c', properties: { customer_id: 'c', balance_threshold: '10' } }, { id: 'c' });
    expect(e).toEqual({ id: 'evt_1', created_at: '2026-01-01T00:00:00.000Z', type: 'customer.credit_balance_dropped', customer: { id: 'c' }, properties: { balance_threshold: '10' } });
    const s = envelope('evt_2', { id: '8', type: 'subscription.cost_exceeded', created_at: 'x', customer_id: 'c', properties: { customer_id: 'c', subscription_id: 's' } }, { id: 'c' });
    expect(s.subscription).toEqual({ id: 's', customer: { id: 'c' } });
  });
});
