// Scheduled purchases: a customer buys a fixed block every 1, 3, 6 or 12 months (quarterly or
// annual prepaid commitments), invoiced like any purchase. Orb has no call for this; ours is
// /v1/customers/{id}/credits/scheduled_purchases in the same style as top-ups.
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { withTx, type Pool, type Queryable } from '@drawdown/pg';
import { ApiError, Problems } from '@drawdown/http';
import { newId } from '../ids';
import { toPicos } from '../credits/balances';
import { incrementInTx } from '../credits/grants';
import { parseInvoiceSettings, type InvoiceSettings } from '../invoices/purchase';
import { addMonths } from '../settlement/periods';

interface Row {
  id: string;
  customer_id: string;
  currency: string;
  amount: string;
  per_unit_cost_basis: string;
  invoice_settings: InvoiceSettings;
  every_months: number;
  expires_after_months: number | null;
  next_run_at: Date;
}

const COLS = 'id, customer_id, currency, amount::text, per_unit_cost_basis::text, invoice_settings, every_months, expires_after_months, next_run_at';

export function scheduledDto(r: Row): Record<string, unknown> {
  return {
    id: r.id, currency: r.currency, amount: formatDecimal(toPicos(r.amount)), per_unit_cost_basis: formatDecimal(toPicos(r.per_unit_cost_basis)),
    invoice_settings: r.invoice_settings, every_months: r.every_months, expires_after_months: r.expires_after_months, next_run_at: r.next_run_at.toISOString(),
  };
}

export async function createScheduledPurchase(db: Queryable, customerId: string, body: unknown, now: Date): Promise<Record<string, unknown>> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('invalid_body', 'request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const p = new Problems();
  if (typeof b.currency !== 'string' || b.currency === '') p.add('currency', 'is required: a pricing unit such as credits');
  const dec = (field: string, positive: boolean): bigint => {
    try {
      const v = parseDecimal(b[field] as string, field);
      if (positive ? v <= 0n : v < 0n) p.add(field, positive ? 'must be greater than 0' : 'must not be negative');
      return v;
    } catch (err) {
      p.add(field, (err as Error).message.replace(new RegExp(`^${field}: `), ''));
      return 0n;
    }
  };
  const amount = dec('amount', true);
  const cost = dec('per_unit_cost_basis', false);
  if (![1, 3, 6, 12].includes(b.every_months as number)) p.add('every_months', 'must be 1, 3 (quarterly), 6 or 12 (annual)');
  if (b.expires_after_months !== undefined && b.expires_after_months !== null && (!Number.isInteger(b.expires_after_months) || (b.expires_after_months as number) < 1)) p.add('expires_after_months', 'must be a whole number of at least 1');
  let start = now;
  if (b.start_date !== undefined && b.start_date !== null) {
    if (typeof b.start_date !== 'string' || Number.isNaN(Date.parse(b.start_date))) p.add('start_date', 'must be an ISO 8601 date-time');
    else start = new Date(b.start_date);
  }
  if (b.invoice_settings === undefined || b.invoice_settings === null) p.add('invoice_settings', 'is required: {auto_collection, net_terms, memo, require_successful_payment}');
  const settings = parseInvoiceSettings(p, b.invoice_settings, '0');
  p.throwIfAny('scheduled purchase');
  const r = await db.query<Row>(
    `INSERT INTO scheduled_purchases (id, customer_id, currency, amount, per_unit_cost_basis, invoice_settings, every_months, expires_after_months, next_run_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${COLS}`,
    [newId(), customerId, b.currency, formatDecimal(amount), formatDecimal(cost), JSON.stringify(settings), b.every_months, b.expires_after_months ?? null, start],
  );
  return scheduledDto(r.rows[0]!);
}

export async function listScheduledPurchases(db: Queryable, customerId: string): Promise<Record<string, unknown>[]> {
  const r = await db.query<Row>(`SELECT ${COLS} FROM scheduled_purchases WHERE customer_id = $1 AND deleted_at IS NULL ORDER BY id`, [customerId]);
  return r.rows.map(scheduledDto);
}

export async function deleteScheduledPurchase(db: Queryable, customerId: string, id: string): Promise<void> {
  const r = await db.query('UPDATE scheduled_purchases SET deleted_at = now() WHERE id = $1 AND customer_id = $2 AND deleted_at IS NULL', [id, customerId]);
  if (r.rowCount === 0) throw new ApiError('not_found', `no scheduled purchase "${id}" for this customer`);
}

/** Runs every purchase that is due (one per transaction); a missed run is made up once per pass each. */
export async function runScheduledPurchases(pool: Pool, opts: { now: Date; limit: number }): Promise<number> {
  let n = 0;
  while (n < opts.limit) {
    const ran = await withTx(pool, async (c) => {
      const r = await c.query<Row & { external_customer_id: string | null }>(
        `SELECT ${COLS.split(', ').map((x) => `sp.${x}`).join(', ')}, cu.external_customer_id
           FROM scheduled_purchases sp JOIN customers cu ON cu.id = sp.customer_id
          WHERE sp.deleted_at IS NULL AND sp.next_run_at <= $1 ORDER BY sp.next_run_at, sp.id LIMIT 1 FOR UPDATE OF sp SKIP LOCKED`,
        [opts.now],
      );
      const row = r.rows[0];
      if (!row) return false;
      const at = row.next_run_at;
      await incrementInTx(c, { id: row.customer_id, external_customer_id: row.external_customer_id }, {
        amount: toPicos(row.amount),
        currency: row.currency,
        description: `scheduled purchase (every ${row.every_months} months)`,
        effectiveDate: at,
        expiryDate: row.expires_after_months ? addMonths(at, row.expires_after_months) : null,
        perUnitCostBasis: formatDecimal(toPicos(row.per_unit_cost_basis)),
        metadata: { scheduled_purchase_id: row.id },
        invoiceSettings: row.invoice_settings,
        source: 'scheduled_purchase',
      });
      await c.query('UPDATE scheduled_purchases SET next_run_at = $2 WHERE id = $1', [row.id, addMonths(at, row.every_months)]);
      return true;
    });
    if (!ran) break;
    n++;
  }
  return n;
}
