// Manual ledger entries from the API. The skeleton supports increments; the other entry
// types (decrement, expiration_change, void, amendment) arrive with the full ledger.
import { formatDecimal, parseDecimal, min } from '@drawdown/money';
import { withTx, type Pool, type Queryable } from '@drawdown/pg';
import { ApiError, Problems } from '@drawdown/http';
import { newId } from '../ids';
import { lockBalances, readBalances, balanceKey, toPicos } from './balances';
import { writeOutbox } from '../outbox/outbox';
import { createPurchaseInvoice, parseInvoiceSettings, type InvoiceSettings } from '../invoices/purchase';

export const DEFAULT_PRICING_UNIT = 'credits';

export interface LedgerEntryDto {
  id: string;
  ledger_sequence_number: number;
  entry_type: string;
  entry_status: string;
  amount: bigint;
  starting_balance: bigint;
  ending_balance: bigint;
  created_at: string;
  description: string | null;
  metadata: Record<string, string>;
  credit_block: { id: string; expiry_date: string | null; per_unit_cost_basis: string | null };
  customer: { id: string; external_customer_id: string | null };
  currency: string;
}

interface IncrementInput {
  amount: bigint;
  currency: string;
  description: string | null;
  expiryDate: Date | null;
  effectiveDate: Date;
  perUnitCostBasis: string | null;
  metadata: Record<string, string>;
  /** Orb's invoice_settings: the increment is a purchase, invoiced at per_unit_cost_basis (issue 8). */
  invoiceSettings?: InvoiceSettings | null;
  /** Block source (manual, top_up, allocation, scheduled_purchase, ...). */
  source?: string;
}

function parseDate(p: Problems, field: string, v: unknown): Date | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) {
    p.add(field, 'must be an ISO 8601 date or date-time');
    return null;
  }
  return new Date(v);
}

export function parseLedgerEntry(body: unknown): { entryType: 'increment'; input: IncrementInput } {
  const p = new Problems();
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('invalid_body', 'request body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (b.entry_type !== 'increment') {
    if (typeof b.entry_type !== 'string') p.add('entry_type', 'is required: increment, decrement, expiration_change, void or amendment');
    else p.add('entry_type', `"${b.entry_type}" is not supported yet; supported: increment`);
  }
  let amount = 0n;
  if (typeof b.amount !== 'number' && typeof b.amount !== 'string') p.add('amount', 'is required: a positive number');
  else {
    try {
      amount = parseDecimal(b.amount, 'amount');
      if (amount <= 0n) p.add('amount', 'must be greater than 0 for an increment');
    } catch (err) {
      p.add('amount', (err as Error).message.replace(/^amount: /, ''));
    }
  }
  const currency = b.currency === undefined || b.currency === null ? DEFAULT_PRICING_UNIT : b.currency;
  if (typeof currency !== 'string' || currency.length === 0 || currency.length > 64) p.add('currency', 'must be a pricing unit or currency code');
  if (b.description !== undefined && b.description !== null && typeof b.description !== 'string') p.add('description', 'must be a string');
  const expiryDate = parseDate(p, 'expiry_date', b.expiry_date);
  const effectiveDate = parseDate(p, 'effective_date', b.effective_date) ?? new Date();
  if (expiryDate && expiryDate <= effectiveDate) p.add('expiry_date', 'must be after effective_date');
  let perUnitCostBasis: string | null = null;
  if (b.per_unit_cost_basis !== undefined && b.per_unit_cost_basis !== null) {
    try {
      perUnitCostBasis = formatDecimal(parseDecimal(b.per_unit_cost_basis as string, 'per_unit_cost_basis'));
    } catch (err) {
      p.add('per_unit_cost_basis', (err as Error).message.replace(/^per_unit_cost_basis: /, ''));
    }
  }
  const invoiceSettings = parseInvoiceSettings(p, b.invoice_settings, perUnitCostBasis);
  const metadata = (b.metadata ?? {}) as Record<string, string>;
  if (typeof metadata !== 'object' || Array.isArray(metadata)) p.add('metadata', 'must be an object of strings');
  p.throwIfAny('ledger entry');
  return {
    entryType: 'increment',
    input: { amount, currency: currency as string, description: (b.description as string | undefined) ?? null, expiryDate, effectiveDate, perUnitCostBasis, metadata, invoiceSettings },
  };
}

export async function createIncrement(pool: Pool, customer: { id: string; external_customer_id: string | null }, input: IncrementInput): Promise<LedgerEntryDto> {
  return withTx(pool, (c) => incrementInTx(c, customer, input));
}

/** createIncrement inside the caller's transaction (top-ups, allocations, scheduled purchases). */
export async function incrementInTx(c: Queryable, customer: { id: string; external_customer_id: string | null }, input: IncrementInput): Promise<LedgerEntryDto> {
  // (The block keeps the old body's indentation, so the diff against the credits rework stays small.)
  {
    const pair = { customerId: customer.id, pricingUnit: input.currency };
    await lockBalances(c, [pair], true);
    const before = (await readBalances(c, [pair])).get(balanceKey(pair.customerId, pair.pricingUnit))!;
    // A purchase that requires payment waits, out of the balance, until its invoice is paid.
    const pending = input.invoiceSettings?.require_successful_payment === true;
    // The next increment fills a negative balance (overage) first.
    const fill = pending ? 0n : min(before.overage, input.amount);
    const blockId = newId();
    await c.query(
      `INSERT INTO credit_blocks (id, customer_id, pricing_unit, initial_amount, remaining, per_unit_cost_basis, effective_date, expiry_date, source, metadata, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $9, $11)`,
      [blockId, customer.id, input.currency, formatDecimal(input.amount), formatDecimal(input.amount - fill), input.perUnitCostBasis, input.effectiveDate, input.expiryDate, JSON.stringify(input.metadata), input.source ?? 'manual', pending ? 'pending_payment' : 'active'],
    );
    if (fill > 0n) await c.query('UPDATE credit_balances SET overage = overage - $3 WHERE customer_id = $1 AND pricing_unit = $2', [customer.id, input.currency, formatDecimal(fill)]);
    const seq = await nextSeq(c, customer.id, input.currency, fill > 0n ? 2 : 1);
    const entryId = newId();
    const ending = pending ? before.balance : before.balance + input.amount;
    const r = await c.query<{ created_at: Date }>(
      `INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount, starting_balance, ending_balance, description, metadata, entry_status)
       VALUES ($1, $2, $3, $4, 'increment', $5, $6, $7, $8, $9, $10, $11) RETURNING created_at`,
      [entryId, customer.id, input.currency, seq, blockId, formatDecimal(input.amount), formatDecimal(before.balance), formatDecimal(ending), input.description, JSON.stringify(input.metadata), pending ? 'pending' : 'committed'],
    );
    if (fill > 0n) {
      await c.query(
        `INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount, starting_balance, ending_balance, description)
         VALUES ($1, $2, $3, $4, 'decrement', $5, $6, $7, $7, 'earlier overage settled from this block')`,
        [newId(), customer.id, input.currency, seq + 1, blockId, formatDecimal(fill), formatDecimal(ending)],
      );
    }
    if (before.balance <= 0n && ending > 0n) {
      await c.query('UPDATE credit_balances SET depleted = false WHERE customer_id = $1 AND pricing_unit = $2', [customer.id, input.currency]);
    }
    // A purchase: its invoice, in this transaction (issue 8).
    if (input.invoiceSettings) await createPurchaseInvoice(c, { customerId: customer.id, blockId, pricingUnit: input.currency, amount: input.amount, perUnitCostBasis: input.perUnitCostBasis ?? '0', settings: input.invoiceSettings, source: input.source ?? 'manual' });
    await writeOutbox(c, [{ topic: 'credit_balance.created', customerId: customer.id, payload: { customer_id: customer.id, credit_block_id: blockId, pricing_unit: input.currency, amount: formatDecimal(input.amount) } }]);
    return {
      id: entryId,
      ledger_sequence_number: seq,
      entry_type: 'increment',
      entry_status: pending ? 'pending' : 'committed',
      amount: input.amount,
      starting_balance: before.balance,
      ending_balance: ending,
      created_at: r.rows[0]!.created_at.toISOString(),
      description: input.description,
      metadata: input.metadata,
      credit_block: { id: blockId, expiry_date: input.expiryDate?.toISOString() ?? null, per_unit_cost_basis: input.perUnitCostBasis },
      customer: { id: customer.id, external_customer_id: customer.external_customer_id },
      currency: input.currency,
    };
  }
}

async function nextSeq(db: Queryable, customerId: string, unit: string, count: number): Promise<number> {
  const r = await db.query<{ seq: string }>(
    'UPDATE credit_balances SET next_entry_seq = next_entry_seq + $3 WHERE customer_id = $1 AND pricing_unit = $2 RETURNING (next_entry_seq - $3)::text AS seq',
    [customerId, unit, count],
  );
  return Number(r.rows[0]!.seq);
}

export interface CreditBlockDto {
  id: string;
  balance: bigint;
  effective_date: string | null;
  expiry_date: string | null;
  per_unit_cost_basis: string | null;
  status: string;
  credit_block_source: string;
  maximum_initial_balance: bigint;
  filters: unknown[];
  metadata: Record<string, string>;
  currency: string;
}

export async function listBlocks(db: Queryable, customerId: string, opts: { currency?: string; includeAllBlocks: boolean; limit: number; after?: string }): Promise<CreditBlockDto[]> {
  const r = await db.query(
    `SELECT id, remaining::text, initial_amount::text, effective_date, expiry_date, per_unit_cost_basis::text, status, source, metadata, pricing_unit
       FROM credit_blocks
      WHERE customer_id = $1 AND ($2::text IS NULL OR pricing_unit = $2)
        AND ($3 OR (remaining > 0 AND (expiry_date IS NULL OR expiry_date > now())))
        AND ($4::text IS NULL OR id > $4)
      ORDER BY id LIMIT $5`,
    [customerId, opts.currency ?? null, opts.includeAllBlocks, opts.after ?? null, opts.limit + 1],
  );
  return r.rows.map((row) => ({
    id: row.id,
    balance: toPicos(row.remaining),
    effective_date: row.effective_date ? (row.effective_date as Date).toISOString() : null,
    expiry_date: row.expiry_date ? (row.expiry_date as Date).toISOString() : null,
    per_unit_cost_basis: row.per_unit_cost_basis,
    status: row.status,
    credit_block_source: row.source,
    maximum_initial_balance: toPicos(row.initial_amount),
    filters: [],
    metadata: row.metadata,
    currency: row.pricing_unit,
  }));
}

export async function balancesOf(db: Queryable, customerId: string): Promise<{ pricing_unit: string; balance: bigint; available: bigint; overage: bigint }[]> {
  const units = await db.query<{ pricing_unit: string }>('SELECT pricing_unit FROM credit_balances WHERE customer_id = $1 ORDER BY pricing_unit', [customerId]);
  const pairs = units.rows.map((r) => ({ customerId, pricingUnit: r.pricing_unit }));
  if (pairs.length === 0) return [];
  const m = await readBalances(db, pairs);
  return pairs.map((p) => {
    const b = m.get(balanceKey(p.customerId, p.pricingUnit))!;
    return { pricing_unit: p.pricingUnit, balance: b.balance, available: b.available, overage: b.overage };
  });
}
