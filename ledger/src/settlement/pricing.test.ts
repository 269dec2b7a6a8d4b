import { describe, expect, it } from 'vitest';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { priceMatrix, priceQuantity } from './pricing';

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
    expect(() => priceQuantity('bulk', {}, q('1'))).toThrow(/bulk/);
    expect(() => priceQuantity('matrix', {}, q('1'))).toThrow(/per combination of property values/);
  });
});

describe('priceMatrix', () => {
  const config = { matrix_config: { dimensions: ['region', 'tier'], default_unit_amount: '0.07', matrix_values: [
    { dimension_values: ['eu', 'gold'], unit_amount: '0.000123456789' },
    { dimension_values: ['eu', null], unit_amount: '1.1' },
    { dimension_values: ['us', 3], unit_amount: '0.333333333333' },
  ] } };
  const g = (values: string[], quantity: string) => ({ values, quantity: q(quantity) });

  it('prices each combination of property values at its unit amount, each product rounded once (half-even, 12 places)', () => {
    const r = priceMatrix('p1', config, [
      g(['"eu"', '"gold"'], '1234.567890123001'), // x 0.000123456789 = 0.152415787517 (0.15241578751653...)
      g(['"eu"', '"silver"'], '2.5'), // the ['eu', null] entry: 2.75
      g(['"us"', '3'], '3'), // a number matches the entry's 3: 0.999999999999
      g(['"us"', '"3"'], '0.000000000003'), // the string "3" too: 0.000000000000999999999999 -> 0.000000000001
      g(['', ''], '10'), // no properties: the default 0.07 -> 0.7
    ]);
    expect([f(r.quantity), f(r.amount), r.unitAmount]).toEqual(['1250.067890123004', '4.602415787517', null]);
  });

  it('gives the unit amount when every group has the same one; a null property takes the default', () => {
    const r = priceMatrix('p1', config, [g(['"ap"', '"gold"'], '0.1'), g(['null', '"x"'], '0.2')]);
    expect([f(r.quantity), f(r.amount), f(r.unitAmount!)]).toEqual(['0.3', '0.021', '0.07']);
    expect(f(priceMatrix('p1', config, []).amount)).toBe('0');
  });

  it('names the field of a broken config', () => {
    expect(() => priceMatrix('p1', { matrix_config: {} }, [])).toThrow(/price p1: matrix_config.dimensions missing/);
    expect(() => priceMatrix('p1', { matrix_config: { dimensions: ['a'] } }, [g(['"b"'], '1')])).toThrow(/matrix_config.default_unit_amount/);
  });
});
