// Invoices: one row per invoice, its line items, and the state machine
// draft -> issued -> paid | void (draft -> void too). Every change runs inside the caller's
// transaction and locks the invoice row first.
//
// Rounding rule (written down once, here): each line's amount is computed exactly in picos
// and rounded half-even to the currency's minor unit (currencyDecimals); the subtotal and
// total are exact sums of the rounded lines. So the printed lines always add up to the total.
import { setUnpaidOverage } from '../access/policies';
import { addLocal } from '@drawdown/catalog';
import { currencyDecimals, formatFixed, roundTo, sum, type Picos } from '@drawdown/money';
import type { Queryable } from '@drawdown/pg';
import { ApiError } from '@drawdown/http';
import { newId } from '../ids';
import { toPicos } from '../credits/balances';
import { writeOutbox } from '../outbox/outbox';
import { activatePendingBlocks, voidPendingBlocks } from './blocks';

export type InvoiceKind = 'credit_purchase' | 'top_up' | 'settlement' | 'scheduled_purchase';
export type InvoiceStatus = 'draft' | 'issued' | 'paid' | 'void';

export interface LineInput {
  kind: 'credit_purchase' | 'fixed_fee' | 'usage' | 'overage';
  name: string;
  priceId?: string | null;
  pricingUnit?: string | null;
  quantity: Picos;
  /** Price of one unit in the invoice currency; null where a line has no single unit price (tiers). */
  unitAmount: Picos | null;
  /** Exact amount before rounding to the currency's minor unit. */
  amount: Picos;
  start: Date;
  end: Date;
}

export interface NewInvoice {
  customerId: string;
  subscriptionId?: string | null;
  kind: InvoiceKind;
  currency: string;
  invoiceDate: Date;
  netTerms: number;
  memo?: string | null;
  autoCollection: boolean;
  /** Issue now (true) or leave a draft. */
  issue: boolean;
  /** Orb's will_auto_issue; default `issue` (a caller that issues right after inserting says true). */
  willAutoIssue?: boolean;
  periodStart?: Date | null;
  periodEnd?: Date | null;
  lines: LineInput[];
  metadata?: Record<string, string>;
}

export interface InvoiceRow {
  id: string;
  invoice_number: string;
  customer_id: string;
  subscription_id: string | null;
  kind: InvoiceKind;
  invoice_source: string;
  status: InvoiceStatus;
  currency: string;
  subtotal: string;
  total: string;
  amount_due: string;
  invoice_date: Date;
  due_date: Date | null;
  net_terms: number;
  period_start: Date | null;
  period_end: Date | null;
  memo: string | null;
  auto_collection: boolean;
  will_auto_issue: boolean;
  has_overage: boolean;
  issued_at: Date | null;
  paid_at: Date | null;
  voided_at: Date | null;
  payment_started_at: Date | null;
  payment_failed_at: Date | null;
  collection: string;
  provider: string | null;
  provider_invoice_id: string | null;
  metadata: Record<string, string>;
  created_at: Date;
}

export interface LineRow {
  id: string;
  invoice_id: string;
  position: number;
  kind: string;
  name: string;
  price_id: string | null;
  pricing_unit: string | null;
  quantity: string;
  unit_amount: string | null;
  amount: string;
  start_date: Date;
  end_date: Date;
}

/** Net terms are calendar days on the customer's calendar: across a DST change the due date keeps its local time. */
export function dueDate(invoiceDate: Date, netTerms: number, timeZone: string): Date {
  return new Date(addLocal(invoiceDate.getTime(), netTerms, 'day', timeZone));
}

/** The line amounts rounded to the currency's minor unit (the invoice rounding rule). */
export function roundLines(currency: string, lines: LineInput[]): { amounts: Picos[]; total: Picos } {
  const decimals = currencyDecimals(currency);
  const amounts = lines.map((l) => roundTo(l.amount, decimals, 'half_even'));
  return { amounts, total: sum(amounts) };
}

/** Inserts an invoice (draft or issued) with its lines; returns its id. */
export async function insertInvoice(c: Queryable, inv: NewInvoice): Promise<string> {
  const id = newId();
  const { amounts, total } = roundLines(inv.currency, inv.lines);
  const num = await c.query<{ n: string }>("SELECT nextval('invoice_number_seq')::text AS n");
  const number = `INV-${num.rows[0]!.n.padStart(6, '0')}`;
  const hasOverage = inv.lines.some((l) => l.kind === 'overage' && l.amount > 0n);
  const source = inv.subscriptionId ? 'subscription' : 'one_off';
  await c.query(
    `INSERT INTO invoices (id, invoice_number, customer_id, subscription_id, kind, invoice_source, status, currency, subtotal, total, amount_due,
                           invoice_date, due_date, net_terms, period_start, period_end, memo, auto_collection, will_auto_issue, has_overage, metadata)
     VALUES ($1, $2, $3, $4, $5, $6, 'draft', $7, $8, $8, $8, $9, NULL, $10, $11, $12, $13, $14, $15, $16, $17)`,
    [id, number, inv.customerId, inv.subscriptionId ?? null, inv.kind, source, inv.currency, formatFixed(total, 12), inv.invoiceDate, inv.netTerms,
      inv.periodStart ?? null, inv.periodEnd ?? null, inv.memo ?? null, inv.autoCollection, inv.willAutoIssue ?? inv.issue, hasOverage, JSON.stringify(inv.metadata ?? {})],
  );
  if (inv.lines.length > 0) {
    await c.query(
      `INSERT INTO invoice_line_items (id, invoice_id, position, kind, name, price_id, pricing_unit, quantity, unit_amount, amount, start_date, end_date)
       SELECT t.id, $1, t.pos, t.kind, t.name, t.price_id, t.unit, t.quantity, t.unit_amount, t.amount, t.start_date, t.end_date
         FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::numeric[], $9::numeric[], $10::numeric[], $11::timestamptz[], $12::timestamptz[])
           AS t(id, pos, kind, name, price_id, unit, quantity, unit_amount, amount, start_date, end_date)`,
      [
        id,
        inv.lines.map(() => newId()),
        inv.lines.map((_, i) => i + 1),
        inv.lines.map((l) => l.kind),
        inv.lines.map((l) => l.name),
        inv.lines.map((l) => l.priceId ?? null),
        inv.lines.map((l) => l.pricingUnit ?? null),
        inv.lines.map((l) => formatFixed(l.quantity, 12)),
        inv.lines.map((l) => (l.unitAmount === null ? null : formatFixed(l.unitAmount, 12))),
        amounts.map((a) => formatFixed(a, 12)),
        inv.lines.map((l) => l.start),
        inv.lines.map((l) => l.end),
      ],
    );
  }
  await writeOutbox(c, [{ topic: 'invoice.created', customerId: inv.customerId, payload: { invoice_id: id, customer_id: inv.customerId, kind: inv.kind, total: formatFixed(total, currencyDecimals(inv.currency)), currency: inv.currency } }]);
  if (inv.issue) await issueInvoice(c, id, inv.invoiceDate);
  return id;
}

async function lockInvoice(c: Queryable, id: string): Promise<InvoiceRow> {
  const r = await c.query<InvoiceRow>('SELECT * FROM invoices WHERE id = $1 FOR UPDATE', [id]);
  const row = r.rows[0];
  if (!row) throw new ApiError('not_found', `no invoice with id "${id}"`);
  return row;
}

/** draft -> issued. The due date counts net terms from the issue time. A zero invoice is paid at once. */
export async function issueInvoice(c: Queryable, id: string, now: Date): Promise<void> {
  const inv = await lockInvoice(c, id);
  if (inv.status !== 'draft') throw new ApiError('conflict', `invoice ${id} is ${inv.status}; only a draft can be issued`);
  const total = toPicos(inv.total);
  const collect = inv.auto_collection && total > 0n;
  const tz = await c.query<{ timezone: string }>('SELECT timezone FROM customers WHERE id = $1', [inv.customer_id]);
  await c.query(
    `UPDATE invoices SET status = 'issued', issued_at = $2, due_date = $3, collection = CASE WHEN $4 THEN 'pending' ELSE collection END WHERE id = $1`,
    [id, now, dueDate(now, inv.net_terms, tz.rows[0]?.timezone ?? 'UTC'), collect],
  );
  await writeOutbox(c, [{ topic: 'invoice.issued', customerId: inv.customer_id, payload: { invoice_id: id, customer_id: inv.customer_id, total: inv.total, currency: inv.currency } }]);
  if (total === 0n) await markInvoicePaid(c, id, { paidAt: now, notes: 'zero total' });
  else if (inv.has_overage) await refreshUnpaidOverage(c, inv.customer_id);
}

export async function voidInvoice(c: Queryable, id: string, now: Date): Promise<void> {
  const inv = await lockInvoice(c, id);
  if (inv.status !== 'draft' && inv.status !== 'issued') throw new ApiError('conflict', `invoice ${id} is ${inv.status}; only a draft or issued invoice can be voided`);
  await c.query("UPDATE invoices SET status = 'void', voided_at = $2, collection = CASE WHEN collection IN ('pending', 'awaiting') THEN 'none' ELSE collection END WHERE id = $1", [id, now]);
  await voidPendingBlocks(c, id);
  await refreshUnpaidOverage(c, inv.customer_id);
  await writeOutbox(c, [{ topic: 'invoice.voided', customerId: inv.customer_id, payload: { invoice_id: id, customer_id: inv.customer_id } }]);
}

/** issued -> paid: activates the credit blocks that waited for this payment. Paying a paid invoice again is a no-op. */
export async function markInvoicePaid(c: Queryable, id: string, opts: { paidAt: Date; externalId?: string | null; notes?: string | null }): Promise<void> {
  const inv = await lockInvoice(c, id);
  if (inv.status === 'paid') return;
  if (inv.status !== 'issued') throw new ApiError('conflict', `invoice ${id} is ${inv.status}; only an issued invoice can be marked paid`);
  await c.query(
    `UPDATE invoices SET status = 'paid', paid_at = $2, payment_external_id = $3, payment_notes = $4,
            collection = CASE WHEN collection IN ('pending', 'started', 'awaiting', 'failed') THEN 'succeeded' ELSE collection END WHERE id = $1`,
    [id, opts.paidAt, opts.externalId ?? null, opts.notes ?? null],
  );
  await activatePendingBlocks(c, id, opts.paidAt);
  if (inv.has_overage) await refreshUnpaidOverage(c, inv.customer_id);
  await writeOutbox(c, [{ topic: 'invoice.payment_succeeded', customerId: inv.customer_id, payload: { invoice_id: id, customer_id: inv.customer_id, total: inv.total, currency: inv.currency } }]);
}

/** customers.unpaid_overage: an issued (not yet paid or void) invoice with an overage line exists. */
export async function refreshUnpaidOverage(c: Queryable, customerId: string): Promise<void> {
  await c.query(
    `UPDATE customers SET unpaid_overage = EXISTS (SELECT 1 FROM invoices WHERE customer_id = $1 AND has_overage AND status = 'issued') WHERE id = $1`,
    [customerId],
  );
  // The access check's feed (ledger/src/access): one row per overage invoice, unpaid while issued.
  const invoices = await c.query<{ id: string; unpaid: boolean }>("SELECT id, status = 'issued' AS unpaid FROM invoices WHERE customer_id = $1 AND has_overage", [customerId]);
  for (const inv of invoices.rows) await setUnpaidOverage(c, { invoiceId: inv.id, customerId, unpaid: inv.unpaid });
}

/** For the access check (issue 7): true when the customer should be restricted for an unpaid overage invoice. */
export async function unpaidOverageRestriction(db: Queryable, customerId: string, enabled: boolean): Promise<boolean> {
  if (!enabled) return false;
  const r = await db.query<{ unpaid_overage: boolean }>('SELECT unpaid_overage FROM customers WHERE id = $1', [customerId]);
  return r.rows[0]?.unpaid_overage === true;
}

export async function loadInvoice(db: Queryable, id: string): Promise<{ row: InvoiceRow; lines: LineRow[] }> {
  const r = await db.query<InvoiceRow>('SELECT * FROM invoices WHERE id = $1', [id]);
  const row = r.rows[0];
  if (!row) throw new ApiError('not_found', `no invoice with id "${id}"`);
  const lines = await db.query<LineRow>('SELECT *, quantity::text, unit_amount::text, amount::text FROM invoice_line_items WHERE invoice_id = $1 ORDER BY position', [id]);
  return { row, lines: lines.rows };
}

// ---- Orb's shape ---------------------------------------------------------------------------

export interface DtoContext {
  customer: { id: string; external_customer_id: string | null };
  attempts: { id: string; amount: string; created_at: Date; provider: string; provider_payment_id: string | null; succeeded: boolean }[];
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Amounts as strings with the currency's minor-unit digits, as Orb writes them. */
export function money(text: string | Picos, currency: string): string {
  return formatFixed(typeof text === 'bigint' ? text : toPicos(text), currencyDecimals(currency));
}

export interface LineDto {
  id: string;
  name: string;
  amount: string;
  subtotal: string;
  adjusted_subtotal: string;
  credits_applied: string;
  partially_invoiced_amount: string;
  quantity: Picos;
  start_date: string;
  end_date: string;
  price: { id: string; name: string; currency: string } | null;
  grouping: string | null;
  filter: string | null;
  adjustments: never[];
  sub_line_items: never[];
  tax_amounts: never[];
  usage_customer_ids: null;
  /** Drawdown's own: what the line is for, the pricing unit of an overage line, the unit amount. */
  line_type: string;
  pricing_unit: string | null;
  unit_amount: string | null;
}

export function lineDto(l: { id: string; kind: string; name: string; price_id: string | null; pricing_unit: string | null; quantity: Picos; unit_amount: Picos | null; amount: Picos; start: Date; end: Date }, currency: string): LineDto {
  const amount = money(l.amount, currency);
  return {
    id: l.id,
    name: l.name,
    amount,
    subtotal: amount,
    adjusted_subtotal: amount,
    credits_applied: money(0n, currency),
    partially_invoiced_amount: money(0n, currency),
    quantity: l.quantity,
    start_date: l.start.toISOString(),
    end_date: l.end.toISOString(),
    price: l.price_id ? { id: l.price_id, name: l.name, currency } : null,
    grouping: null,
    filter: null,
    adjustments: [],
    sub_line_items: [],
    tax_amounts: [],
    usage_customer_ids: null,
    line_type: l.kind,
    pricing_unit: l.pricing_unit,
    unit_amount: l.unit_amount === null ? null : formatFixed(l.unit_amount, 12).replace(/\.?0+$/, ''),
  };
}

export function invoiceDto(row: InvoiceRow, lines: LineRow[], ctx: DtoContext): Record<string, unknown> {
  const cur = row.currency;
  return {
    id: row.id,
    invoice_number: row.invoice_number,
    status: row.status,
    currency: cur,
    amount_due: row.status === 'paid' || row.status === 'void' ? money(0n, cur) : money(row.amount_due, cur),
    subtotal: money(row.subtotal, cur),
    total: money(row.total, cur),
    auto_collection: {
      enabled: row.auto_collection,
      next_attempt_at: row.collection === 'pending' ? iso(row.issued_at) : null,
      num_attempts: ctx.attempts.length,
      previously_attempted_at: iso(ctx.attempts[ctx.attempts.length - 1]?.created_at ?? null),
    },
    billing_address: null,
    shipping_address: null,
    created_at: row.created_at.toISOString(),
    credit_notes: [],
    customer: ctx.customer,
    customer_balance_transactions: [],
    customer_tax_id: null,
    discount: null,
    discounts: [],
    due_date: iso(row.due_date),
    eligible_to_issue_at: row.status === 'draft' ? iso(row.invoice_date) : null,
    hosted_invoice_url: null,
    invoice_date: row.invoice_date.toISOString(),
    invoice_pdf: null,
    invoice_source: row.invoice_source,
    issue_failed_at: null,
    issued_at: iso(row.issued_at),
    line_items: lines.map((l) => lineDto({
      id: l.id, kind: l.kind, name: l.name, price_id: l.price_id, pricing_unit: l.pricing_unit, quantity: toPicos(l.quantity),
      unit_amount: l.unit_amount === null ? null : toPicos(l.unit_amount), amount: toPicos(l.amount), start: l.start_date, end: l.end_date,
    }, cur)),
    maximum: null,
    maximum_amount: null,
    memo: row.memo,
    metadata: row.metadata,
    minimum: null,
    minimum_amount: null,
    paid_at: iso(row.paid_at),
    payment_attempts: ctx.attempts.map((a) => ({
      id: a.id, amount: money(a.amount, cur), created_at: a.created_at.toISOString(), payment_provider: a.provider === 'stripe' ? 'stripe' : null,
      payment_provider_id: a.provider_payment_id, receipt_pdf: null, succeeded: a.succeeded,
    })),
    payment_failed_at: iso(row.payment_failed_at),
    payment_started_at: iso(row.payment_started_at),
    scheduled_issue_at: null,
    subscription: row.subscription_id ? { id: row.subscription_id } : null,
    sync_failed_at: null,
    voided_at: iso(row.voided_at),
    will_auto_issue: row.will_auto_issue,
    // Drawdown's own, for readers of a settlement invoice.
    invoice_kind: row.kind,
    period_start: iso(row.period_start),
    period_end: iso(row.period_end),
  };
}

export async function invoiceDtoById(db: Queryable, id: string): Promise<Record<string, unknown>> {
  const { row, lines } = await loadInvoice(db, id);
  const cust = await db.query<{ id: string; external_customer_id: string | null }>('SELECT id, external_customer_id FROM customers WHERE id = $1', [row.customer_id]);
  const attempts = await db.query<DtoContext['attempts'][number]>(
    'SELECT id, amount::text, created_at, provider, provider_payment_id, succeeded FROM payment_attempts WHERE invoice_id = $1 ORDER BY created_at, id',
    [id],
  );
  return invoiceDto(row, lines, { customer: cust.rows[0]!, attempts: attempts.rows });
}
