import { describe, expect, it } from 'vitest';
import { Problems } from '@drawdown/http';
import { modelConfig, parseAllocation, parsePrice } from './prices';

describe('price configs are normalized exactly', () => {
  it.each([
    [{ model_type: 'unit', unit_config: { unit_amount: '0.250' } }, { unit_config: { unit_amount: '0.25' } }],
    [{ model_type: 'unit', unit_config: { unit_amount: 0.1 } }, { unit_config: { unit_amount: '0.1' } }],
    [{ model_type: 'unit', unit_config: { unit_amount: '5e-7' } }, { unit_config: { unit_amount: '0.0000005' } }],
    [{ model_type: 'package', package_config: { package_amount: '10.00', package_size: 1000 } }, { package_config: { package_amount: '10', package_size: 1000 } }],
    [
      { model_type: 'tiered', tiered_config: { tiers: [{ first_unit: 0, last_unit: 1e3, unit_amount: '1.50' }, { first_unit: 1000, unit_amount: '1.2E0' }] } },
      { tiered_config: { tiers: [{ first_unit: 0, last_unit: 1000, unit_amount: '1.5' }, { first_unit: 1000, last_unit: null, unit_amount: '1.2' }] } },
    ],
    [
      { model_type: 'matrix', matrix_config: { dimensions: ['region'], default_unit_amount: '0', matrix_values: [{ dimension_values: ['eu'], unit_amount: '00.5' }] } },
      { matrix_config: { dimensions: ['region'], default_unit_amount: '0', matrix_values: [{ dimension_values: ['eu'], unit_amount: '0.5' }] } },
    ],
  ])('%j', (input, want) => {
    const p = new Problems();
    expect(modelConfig(p, input, 'price')).toEqual(want);
    expect(p.list).toEqual([]);
  });

  it('a price without a metric is a fixed fee of quantity 1, billed in advance, in the plan currency', () => {
    const p = new Problems();
    const price = parsePrice(p, { name: 'Platform', item_id: 'i', cadence: 'annual', model_type: 'unit', unit_config: { unit_amount: '1200' } }, 'price', 'USD');
    expect(p.list).toEqual([]);
    expect(price).toMatchObject({ priceType: 'fixed_price', fixedQuantity: '1', billedInAdvance: true, currency: 'USD', ownCurrency: false, metricId: null, cadence: 'annual' });
  });

  it('an allocation defaults to zero cost basis, rolling over, on the credit allocation item', () => {
    const p = new Problems();
    expect(parseAllocation(p, { amount: 1000, cadence: 'monthly', currency: 'credits' }, 'a')).toEqual({
      amount: '1000', cadence: 'monthly', currency: 'credits', expiresAtEndOfCadence: false, customExpiration: null, itemId: 'credit_allocation', perUnitCostBasis: '0', metadata: {},
    });
    expect(p.list).toEqual([]);
  });

  it('reports every problem of a price at once', () => {
    const p = new Problems();
    expect(parsePrice(p, { model_type: 'package', package_config: { package_amount: 'x', package_size: 0 } }, 'prices[2].price', 'credits')).toBeUndefined();
    expect(p.list.map((x) => x.field)).toEqual([
      'prices[2].price.name', 'prices[2].price.item_id', 'prices[2].price.cadence', 'prices[2].price.package_config.package_amount', 'prices[2].price.package_config.package_size',
    ]);
  });
});
