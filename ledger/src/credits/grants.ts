// Increments made by billing jobs (top-ups, recurring allocations, scheduled purchases) inside
// their own transaction: the same path as an API increment (entries.ts), with its balance
// tracking, crossing hooks and purchase invoice.
import type { PoolClient } from '@drawdown/pg';
import type { InvoiceSettings } from '../invoices/purchase';
import { BalanceTracker } from './crossings';
import { incrementInTx as incrementBlockInTx, type IncrementOptions } from './entries';
import { entriesById, type LedgerEntryDto } from './queries';

export interface JobIncrement {
  amount: bigint;
  currency: string;
  description: string | null;
  effectiveDate: Date;
  expiryDate: Date | null;
  perUnitCostBasis: string | null;
  metadata: Record<string, string>;
  /** Orb's invoice_settings: the increment is a purchase, invoiced at per_unit_cost_basis. */
  invoiceSettings?: InvoiceSettings | null;
  source?: IncrementOptions['source'];
}

export async function incrementInTx(c: PoolClient, customer: { id: string; external_customer_id: string | null }, input: JobIncrement): Promise<LedgerEntryDto> {
  const pair = { customerId: customer.id, pricingUnit: input.currency };
  const t = new BalanceTracker(c, input.source ?? 'manual');
  await t.lock([pair], true);
  const ids = await incrementBlockInTx(c, t, pair, {
    entryType: 'increment',
    currency: input.currency,
    description: input.description,
    metadata: input.metadata,
    amount: input.amount,
    effectiveDate: input.effectiveDate,
    expiryDate: input.expiryDate,
    perUnitCostBasis: input.perUnitCostBasis,
    filters: [],
    invoiceSettings: input.invoiceSettings ?? null,
  }, { source: input.source ?? 'manual' });
  await t.finish();
  return (await entriesById(c, [ids[0]!]))[0]!;
}
