import { describe, expect, it } from 'vitest';
import { parseTopUp } from './topups';

const now = new Date('2026-01-01T00:00:00Z');
const ok = { currency: 'credits', threshold: '10', amount: '100', per_unit_cost_basis: '0.01', invoice_settings: { auto_collection: false, net_terms: 0 } };

describe('parseTopUp', () => {
  it('reads Orb\'s fields', () => {
    const t = parseTopUp({ ...ok, active_from: '2026-02-01T00:00:00Z', expires_after: 3, expires_after_unit: 'month' }, now);
    expect([t.threshold, t.amount, t.activeFrom.toISOString(), t.expiresAfter, t.expiresAfterUnit]).toEqual([10n * 10n ** 12n, 100n * 10n ** 12n, '2026-02-01T00:00:00.000Z', 3, 'month']);
    expect(parseTopUp(ok, now).activeFrom).toEqual(now);
  });
  it('names each bad field', () => {
    try {
      parseTopUp({ currency: '', threshold: '-1', amount: '0', per_unit_cost_basis: 'x', expires_after: 2 }, now);
      expect.unreachable();
    } catch (err) {
      expect((err as { errors: { field: string }[] }).errors.map((e) => e.field)).toEqual(['currency', 'threshold', 'amount', 'per_unit_cost_basis', 'invoice_settings', 'expires_after_unit']);
    }
  });
});
