// Automatic top-ups (Orb's customers.credits.topUps): when a customer's balance in a currency
// falls to the threshold, buy `amount` more at `per_unit_cost_basis`, invoiced with the top-up's
// invoice settings. One top-up per customer and currency; creating another replaces it.
//
// Exactly one top-up per crossing: the crossing is detected inside the debit transaction that
// holds the balance row lock (evaluateTopUps), which sees the balance before and after that
// transaction; concurrent transactions queue on the lock, so only one of them can see
// before > threshold >= after, and a replayed batch is skipped before it reaches this point.
// The transaction writes a top_up_intents row; the worker turns it into increment + invoice.
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { withTx, type Pool, type PoolClient, type Queryable } from '@drawdown/pg';
import { ApiError, Problems } from '@drawdown/http';
import { counter } from '@drawdown/metrics';
import { newId } from '../ids';
import { toPicos, type Balance } from '../credits/balances';
import { incrementInTx } from '../credits/grants';
import { parseInvoiceSettings, type InvoiceSettings } from '../invoices/purchase';
import { billingDefaults } from '../invoices/defaults';

const intentsCreated = counter('drawdown_topup_intents_total', 'Top-up threshold crossings recorded');
const topUpsApplied = counter('drawdown_topups_applied_total', 'Top-ups turned into credit blocks, by outcome', ['outcome']);

export interface TopUpInput {
  currency: string;
  threshold: bigint;
  amount: bigint;
  perUnitCostBasis: bigint;
  invoiceSettings: InvoiceSettings;
  activeFrom: Date;
  expiresAfter: number | null;
  expiresAfterUnit: 'day' | 'month' | null;
}

interface TopUpRow {
  id: string;
  customer_id: string;
  currency: string;
  threshold: string;
  amount: string;
  per_unit_cost_basis: string;
  invoice_settings: InvoiceSettings;
  active_from: Date;
  expires_after: number | null;
  expires_after_unit: 'day' | 'month' | null;
}

function decimalField(p: Problems, b: Record<string, unknown>, field: string, opts: { positive?: boolean; nonNegative?: boolean }): bigint {
  const v = b[field];
  if (typeof v !== 'string' && typeof v !== 'number') {
    p.add(field, 'is required: a decimal string');
    return 0n;
  }
  try {
    const x = parseDecimal(v, field);
    if (opts.positive && x <= 0n) p.add(field, 'must be greater than 0');
    if (opts.nonNegative && x < 0n) p.add(field, 'must not be negative');
    return x;
  } catch (err) {
    p.add(field, (err as Error).message.replace(new RegExp(`^${field}: `), ''));
    return 0n;
  }
}

export function parseTopUp(body: unknown, now: Date): TopUpInput {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('invalid_body', 'request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const p = new Problems();
  if (typeof b.currency !== 'string' || b.currency === '' || b.currency.length > 64) p.add('currency', 'is required: a pricing unit such as credits');
  const threshold = decimalField(p, b, 'threshold', { nonNegative: true });
  const amount = decimalField(p, b, 'amount', { positive: true });
  const perUnitCostBasis = decimalField(p, b, 'per_unit_cost_basis', { nonNegative: true });
  if (b.invoice_settings === undefined || b.invoice_settings === null) p.add('invoice_settings', 'is required: {auto_collection, net_terms, memo, require_successful_payment}');
  const invoiceSettings = parseInvoiceSettings(p, b.invoice_settings, '0');
  let activeFrom = now;
  if (b.active_from !== undefined && b.active_from !== null) {
    if (typeof b.active_from !== 'string' || Number.isNaN(Date.parse(b.active_from))) p.add('active_from', 'must be an ISO 8601 date-time');
    else activeFrom = new Date(b.active_from);
  }
  let expiresAfter: number | null = null;
  if (b.expires_after !== undefined && b.expires_after !== null) {
    if (typeof b.expires_after !== 'number' || !Number.isInteger(b.expires_after) || b.expires_after < 1) p.add('expires_after', 'must be a whole number of at least 1');
    else expiresAfter = b.expires_after;
  }
  let unit: 'day' | 'month' | null = null;
  if (b.expires_after_unit !== undefined && b.expires_after_unit !== null) {
    if (b.expires_after_unit !== 'day' && b.expires_after_unit !== 'month') p.add('expires_after_unit', 'must be day or month');
    else unit = b.expires_after_unit;
  }
  if (expiresAfter !== null && unit === null) p.add('expires_after_unit', 'is required with expires_after: day or month');
  p.throwIfAny('top-up');
  return { currency: b.currency as string, threshold, amount, perUnitCostBasis, invoiceSettings: invoiceSettings!, activeFrom, expiresAfter, expiresAfterUnit: unit };
}

export function topUpDto(r: TopUpRow): Record<string, unknown> {
  return {
    id: r.id,
    currency: r.currency,
    threshold: formatDecimal(toPicos(r.threshold)),
    amount: formatDecimal(toPicos(r.amount)),
    per_unit_cost_basis: formatDecimal(toPicos(r.per_unit_cost_basis)),
    invoice_settings: r.invoice_settings,
    active_from: r.active_from.toISOString(),
    expires_after: r.expires_after,
    expires_after_unit: r.expires_after_unit,
  };
}

const COLS = 'id, customer_id, currency, threshold::text, amount::text, per_unit_cost_basis::text, invoice_settings, active_from, expires_after, expires_after_unit';

export async function createTopUp(pool: Pool, customerId: string, t: TopUpInput): Promise<Record<string, unknown>> {
  return withTx(pool, async (c) => {
    // Serializes concurrent creates for one customer (the partial unique index backs it up).
    await c.query('SELECT 1 FROM customers WHERE id = $1 FOR UPDATE', [customerId]);
    await c.query('UPDATE top_ups SET deleted_at = now() WHERE customer_id = $1 AND currency = $2 AND deleted_at IS NULL', [customerId, t.currency]);
    const r = await c.query<TopUpRow>(
      `INSERT INTO top_ups (id, customer_id, currency, threshold, amount, per_unit_cost_basis, invoice_settings, active_from, expires_after, expires_after_unit)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${COLS}`,
      [newId(), customerId, t.currency, formatDecimal(t.threshold), formatDecimal(t.amount), formatDecimal(t.perUnitCostBasis), JSON.stringify(t.invoiceSettings), t.activeFrom, t.expiresAfter, t.expiresAfterUnit],
    );
    return topUpDto(r.rows[0]!);
  });
}

export async function listTopUps(db: Queryable, customerId: string, limit: number, after: string | undefined): Promise<TopUpRow[]> {
  const r = await db.query<TopUpRow>(
    `SELECT ${COLS} FROM top_ups WHERE customer_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3`,
    [customerId, after ?? null, limit + 1],
  );
  return r.rows;
}

export async function deleteTopUp(db: Queryable, customerId: string, topUpId: string): Promise<void> {
  const r = await db.query('UPDATE top_ups SET deleted_at = now() WHERE id = $1 AND customer_id = $2 AND deleted_at IS NULL', [topUpId, customerId]);
  if (r.rowCount === 0) throw new ApiError('not_found', `no active top-up "${topUpId}" for this customer`);
}

/**
 * Called by the debit transaction with the balances before and after it, while it holds the
 * balance row locks: records one intent per top-up whose threshold this transaction crossed.
 */
export async function evaluateTopUps(c: Queryable, before: Map<string, Balance>, after: Map<string, Balance>): Promise<number> {
  const fell: Balance[] = [];
  const was: Balance[] = [];
  for (const [key, b] of after) {
    const prev = before.get(key);
    if (prev && b.balance < prev.balance) {
      fell.push(b);
      was.push(prev);
    }
  }
  if (fell.length === 0) return 0;
  const r = await c.query(
    `INSERT INTO top_up_intents (id, top_up_id, customer_id, currency, balance_before, balance_after)
     SELECT t.new_id, u.id, u.customer_id, u.currency, t.before_balance, t.after_balance
       FROM unnest($1::text[], $2::text[], $3::numeric[], $4::numeric[], $5::text[]) AS t(customer_id, currency, before_balance, after_balance, new_id)
       JOIN top_ups u ON u.customer_id = t.customer_id AND u.currency = t.currency AND u.deleted_at IS NULL AND u.active_from <= now()
      WHERE t.before_balance > u.threshold AND t.after_balance <= u.threshold`,
    [fell.map((b) => b.customerId), fell.map((b) => b.pricingUnit), was.map((b) => formatDecimal(b.balance)), fell.map((b) => formatDecimal(b.balance)), fell.map(() => newId())],
  );
  const n = r.rowCount ?? 0;
  if (n > 0) intentsCreated.inc({}, n);
  return n;
}

function addExpiry(from: Date, n: number | null, unit: 'day' | 'month' | null): Date | null {
  if (n === null || unit === null) return null;
  const d = new Date(from);
  if (unit === 'day') d.setUTCDate(d.getUTCDate() + n);
  else d.setUTCMonth(d.getUTCMonth() + n);
  return d;
}

/** The top-up worker: turns pending intents into increment + invoice, one transaction each. */
export async function processTopUpIntents(pool: Pool, opts: { limit: number; now?: Date }): Promise<number> {
  let done = 0;
  for (; done < opts.limit; done++) {
    const handled = await withTx(pool, async (c: PoolClient) => {
      const r = await c.query<{ intent_id: string; deleted_at: Date | null } & TopUpRow & { external_customer_id: string | null }>(
        `SELECT i.id AS intent_id, ${COLS.split(', ').map((x) => `u.${x}`).join(', ')}, u.deleted_at, cu.external_customer_id
           FROM top_up_intents i JOIN top_ups u ON u.id = i.top_up_id JOIN customers cu ON cu.id = i.customer_id
          WHERE i.status = 'pending' ORDER BY i.created_at, i.id LIMIT 1 FOR UPDATE OF i SKIP LOCKED`,
      );
      const row = r.rows[0];
      if (!row) return false;
      const now = opts.now ?? billingDefaults().now();
      if (row.deleted_at !== null) {
        // Deleted between the crossing and this pass: nothing to buy.
        await c.query("UPDATE top_up_intents SET status = 'cancelled', processed_at = $2 WHERE id = $1", [row.intent_id, now]);
        topUpsApplied.inc({ outcome: 'cancelled' });
        return true;
      }
      const entry = await incrementInTx(c, { id: row.customer_id, external_customer_id: row.external_customer_id }, {
        amount: toPicos(row.amount),
        currency: row.currency,
        description: 'automatic top-up',
        effectiveDate: now,
        expiryDate: addExpiry(now, row.expires_after, row.expires_after_unit),
        perUnitCostBasis: formatDecimal(toPicos(row.per_unit_cost_basis)),
        metadata: { top_up_id: row.id },
        invoiceSettings: row.invoice_settings,
        source: 'top_up',
      });
      const inv = await c.query<{ invoice_id: string | null }>('SELECT invoice_id FROM credit_blocks WHERE id = $1', [entry.credit_block.id]);
      await c.query("UPDATE top_up_intents SET status = 'done', block_id = $2, invoice_id = $3, processed_at = $4 WHERE id = $1", [row.intent_id, entry.credit_block.id, inv.rows[0]?.invoice_id ?? null, now]);
      topUpsApplied.inc({ outcome: 'done' });
      return true;
    });
    if (!handled) break;
  }
  return done;
}
