// Paid credits: an increment with Orb's invoice_settings is a purchase. Its invoice has one
// line (credit quantity x per-unit cost basis), is issued at once with a due date from the net
// terms, and is collected automatically when auto_collection is on. Called by the credits
// domain inside the increment's transaction, so block and invoice commit together.
import { formatDecimal, mul, parseDecimal } from '@drawdown/money';
import type { Queryable } from '@drawdown/pg';
import type { Problems } from '@drawdown/http';
import { insertInvoice, issueInvoice, type InvoiceKind } from './invoices';
import { billingDefaults } from './defaults';

export interface InvoiceSettings {
  auto_collection: boolean;
  net_terms: number | null;
  memo: string | null;
  require_successful_payment: boolean;
}

/** Parses Orb's invoice_settings; adds problems naming `invoice_settings.<field>`. */
export function parseInvoiceSettings(p: Problems, v: unknown, perUnitCostBasis: string | null, field = 'invoice_settings'): InvoiceSettings | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) {
    p.add(field, 'must be an object: {auto_collection, net_terms, memo, require_successful_payment}');
    return null;
  }
  const s = v as Record<string, unknown>;
  if (typeof s.auto_collection !== 'boolean') p.add(`${field}.auto_collection`, 'is required: true or false');
  if (s.net_terms !== undefined && s.net_terms !== null && (typeof s.net_terms !== 'number' || !Number.isInteger(s.net_terms) || s.net_terms < 0 || s.net_terms > 365)) {
    p.add(`${field}.net_terms`, 'must be a whole number of days from 0 to 365');
  }
  if (s.memo !== undefined && s.memo !== null && typeof s.memo !== 'string') p.add(`${field}.memo`, 'must be a string');
  if (s.require_successful_payment !== undefined && s.require_successful_payment !== null && typeof s.require_successful_payment !== 'boolean') {
    p.add(`${field}.require_successful_payment`, 'must be true or false');
  }
  if (perUnitCostBasis === null) p.add('per_unit_cost_basis', 'is required with invoice_settings: the invoice charges amount x per_unit_cost_basis');
  return {
    auto_collection: s.auto_collection === true,
    net_terms: typeof s.net_terms === 'number' ? s.net_terms : null,
    memo: typeof s.memo === 'string' ? s.memo : null,
    require_successful_payment: s.require_successful_payment === true,
  };
}

export interface PurchaseInput {
  customerId: string;
  blockId: string;
  pricingUnit: string;
  amount: bigint;
  perUnitCostBasis: string;
  settings: InvoiceSettings;
  /** manual | top_up | scheduled_purchase */
  source: string;
  now?: Date;
}

/** Invoice currency of a purchase: the customer's, else the pricing unit's fiat, else the default. */
async function purchaseCurrency(c: Queryable, customerId: string, pricingUnit: string): Promise<{ currency: string; netTerms: number | null }> {
  const r = await c.query<{ currency: string | null; net_terms: number | null; unit_currency: string | null }>(
    `SELECT cu.currency, cu.net_terms, (SELECT pu.currency FROM pricing_units pu WHERE pu.name = $2) AS unit_currency
       FROM customers cu WHERE cu.id = $1`,
    [customerId, pricingUnit],
  );
  const row = r.rows[0];
  const fiat = (x: string | null | undefined) => (x && /^[A-Z]{3}$/.test(x) ? x : null);
  return { currency: fiat(row?.currency) ?? fiat(row?.unit_currency) ?? billingDefaults().currency, netTerms: row?.net_terms ?? null };
}

export async function createPurchaseInvoice(c: Queryable, input: PurchaseInput): Promise<string> {
  const now = input.now ?? billingDefaults().now();
  const { currency, netTerms } = await purchaseCurrency(c, input.customerId, input.pricingUnit);
  const unit = parseDecimal(input.perUnitCostBasis, 'per_unit_cost_basis');
  const kind: InvoiceKind = input.source === 'top_up' ? 'top_up' : input.source === 'scheduled_purchase' ? 'scheduled_purchase' : 'credit_purchase';
  const id = await insertInvoice(c, {
    customerId: input.customerId,
    kind,
    currency,
    invoiceDate: now,
    netTerms: input.settings.net_terms ?? netTerms ?? billingDefaults().netTerms,
    memo: input.settings.memo,
    autoCollection: input.settings.auto_collection,
    issue: false,
    willAutoIssue: true,
    lines: [{
      kind: 'credit_purchase',
      name: `${formatDecimal(input.amount)} ${input.pricingUnit}`,
      pricingUnit: input.pricingUnit,
      quantity: input.amount,
      unitAmount: unit,
      amount: mul(input.amount, unit, 'half_even'),
      start: now,
      end: now,
    }],
    metadata: { credit_block_id: input.blockId },
  });
  // Linked before issuing: a zero total is paid at issue, which activates the block.
  await c.query('UPDATE credit_blocks SET invoice_id = $2 WHERE id = $1', [input.blockId, id]);
  await issueInvoice(c, id, now);
  return id;
}
