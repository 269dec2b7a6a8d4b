import { describe, expect, it } from 'vitest';
import { parseLedgerEntry } from './parse';

const fields = (body: unknown): string[] => {
  try {
    parseLedgerEntry(body);
  } catch (err) {
    return ((err as { errors?: { field: string }[] }).errors ?? []).map((e) => e.field).sort();
  }
  return [];
};

describe('parseLedgerEntry', () => {
  it('parses each entry type with exact amounts', () => {
    const inc = parseLedgerEntry({ entry_type: 'increment', amount: 0.1, per_unit_cost_basis: '0.20', expiry_date: '2999-01-01', metadata: { a: 'x', b: null }, invoice_settings: { auto_collection: true, net_terms: 30 } });
    expect(inc).toMatchObject({ entryType: 'increment', amount: 100_000_000_000n, perUnitCostBasis: '0.2', metadata: { a: 'x' }, invoiceSettings: { auto_collection: true, net_terms: 30 } });
    expect(parseLedgerEntry({ entry_type: 'decrement', amount: '12.5' })).toMatchObject({ entryType: 'decrement', amount: 12_500_000_000_000n });
    expect(parseLedgerEntry({ entry_type: 'void', amount: 1, block_id: 'b', void_reason: 'refund' })).toMatchObject({ blockId: 'b', voidReason: 'refund' });
    expect(parseLedgerEntry({ entry_type: 'amendment', amount: -2, block_id: 'b' })).toMatchObject({ amount: -2_000_000_000_000n });
    expect(parseLedgerEntry({ entry_type: 'expiration_change', block_id: 'b', target_expiry_date: '2999-01-01' })).toMatchObject({ amount: null, blockId: 'b' });
  });

  it('names every bad field at once', () => {
    expect(fields({ entry_type: 'nope' })).toEqual(['entry_type']);
    expect(fields({ entry_type: 'increment', amount: 0, expiry_date: 'soon', filters: [{ field: 'price_id', operator: 'is', values: [] }] }))
      .toEqual(['amount', 'expiry_date', 'filters[0].field', 'filters[0].operator', 'filters[0].values']);
    expect(fields({ entry_type: 'void', amount: 1, void_reason: 'oops' })).toEqual(['block_id', 'void_reason']);
    expect(fields({ entry_type: 'amendment', amount: 0, block_id: 'b' })).toEqual(['amount']);
    expect(fields({ entry_type: 'expiration_change', target_expiry_date: '2000-01-01' })).toEqual(['block_id', 'target_expiry_date']);
    expect(fields({ entry_type: 'increment', amount: 1, invoice_settings: { net_terms: 3 }, metadata: { k: 1 } })).toEqual(['invoice_settings.auto_collection', 'metadata.k', 'per_unit_cost_basis']);
    expect(fields({ entry_type: 'decrement', amount: '1.0000000000001' })).toEqual(['amount']);
  });
});
