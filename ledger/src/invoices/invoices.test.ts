import { describe, expect, it } from 'vitest';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { Problems } from '@drawdown/http';
import { dueDate, money, roundLines, type LineInput } from './invoices';
import { parseInvoiceSettings } from './purchase';

const line = (amount: string): LineInput => ({ kind: 'usage', name: 'x', quantity: 0n, unitAmount: null, amount: parseDecimal(amount), start: new Date(0), end: new Date(0) });

describe('invoice rounding', () => {
  it('rounds each line half-even to the minor unit and sums the rounded lines', () => {
    const r = roundLines('USD', [line('0.125'), line('0.135'), line('0.80555'), line('3.4965')]);
    expect(r.amounts.map(formatDecimal)).toEqual(['0.12', '0.14', '0.81', '3.5']);
    expect(formatDecimal(r.total)).toBe('4.57');
  });
  it('uses the currency minor unit (JPY 0, KWD 3)', () => {
    expect(formatDecimal(roundLines('JPY', [line('2.5'), line('3.5')]).total)).toBe('6');
    expect(formatDecimal(roundLines('KWD', [line('1.0005')]).total)).toBe('1');
    expect(money(parseDecimal('1234.5'), 'USD')).toBe('1234.50');
    expect(money('7.000000000000', 'JPY')).toBe('7');
  });
  it('counts net terms in days from the invoice date', () => {
    expect(dueDate(new Date('2026-01-31T09:00:00Z'), 30, 'UTC').toISOString()).toBe('2026-03-02T09:00:00.000Z');
    expect(dueDate(new Date('2026-01-31T09:00:00Z'), 0, 'UTC').toISOString()).toBe('2026-01-31T09:00:00.000Z');
  });
  it('counts net terms as calendar days on the customer\'s calendar across a DST change', () => {
    // New York local midnight of Mar 1 2026 (EST, -05:00); 30 days later is Mar 31 (EDT, -04:00).
    expect(dueDate(new Date('2026-03-01T05:00:00Z'), 30, 'America/New_York').toISOString()).toBe('2026-03-31T04:00:00.000Z');
    // Back across November's change: Oct 15 00:00 EDT + 30 days = Nov 14 00:00 EST.
    expect(dueDate(new Date('2026-10-15T04:00:00.250Z'), 30, 'America/New_York').toISOString()).toBe('2026-11-14T05:00:00.250Z');
  });
});

describe('invoice_settings', () => {
  it('names every bad field at once', () => {
    const p = new Problems();
    parseInvoiceSettings(p, { auto_collection: 'yes', net_terms: -1, memo: 5, require_successful_payment: 'no' }, null);
    expect(p.list.map((x) => x.field)).toEqual([
      'invoice_settings.auto_collection', 'invoice_settings.net_terms', 'invoice_settings.memo', 'invoice_settings.require_successful_payment', 'per_unit_cost_basis',
    ]);
  });
  it('accepts Orb\'s shape and fills the optional fields', () => {
    const p = new Problems();
    expect(parseInvoiceSettings(p, { auto_collection: true, net_terms: 15 }, '0.1')).toEqual({ auto_collection: true, net_terms: 15, memo: null, require_successful_payment: false });
    expect(parseInvoiceSettings(p, undefined, null)).toBeNull();
    expect(p.list).toEqual([]);
  });
});
