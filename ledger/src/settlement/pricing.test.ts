import { describe, expect, it } from 'vitest';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { priceQuantity } from './pricing';

const q = (s: string) => parseDecimal(s);
const f = (v: bigint) => formatDecimal(v);

describe('priceQuantity', () => {
  it('unit', () => {
    expect(f(priceQuantity('unit', { unit_config: { unit_amount: '0.003' } }, q('1234.5')))).toBe('3.7035');
  });
  it('tiered: each tier prices its own slice', () => {
    const cfg = { tiered_config: { tiers: [{ first_unit: 0, last_unit: 100, unit_amount: '1' }, { first_unit: 100, last_unit: 1000, unit_amount: '0.5' }, { first_unit: 1000, unit_amount: '0.1' }] } };
    expect(f(priceQuantity('tiered', cfg, q('50')))).toBe('50');
    expect(f(priceQuantity('tiered', cfg, q('150')))).toBe('125');
    expect(f(priceQuantity('tiered', cfg, q('2000')))).toBe('650');
  });
  it('package rounds packages up', () => {
    expect(f(priceQuantity('package', { package_config: { package_amount: '5', package_size: 100 } }, q('101')))).toBe('10');
    expect(f(priceQuantity('package', { package_config: { package_amount: '5', package_size: 100 } }, q('0')))).toBe('0');
  });
  it('refuses a model it cannot price', () => {
    expect(() => priceQuantity('matrix', {}, q('1'))).toThrow(/matrix/);
  });
});
