// Collection: issued invoices with auto-collection go to the payment provider. The provider is
// called outside any transaction (it is the network); the invoice is claimed first
// (collection pending -> started) and the outcome is recorded after.
import { currencyDecimals, formatFixed, type Picos } from '@drawdown/money';
import { withTx, type Pool } from '@drawdown/pg';
import type { Logger } from '@drawdown/log';
import { counter } from '@drawdown/metrics';
import Stripe from 'stripe';
import { ApiError } from '@drawdown/http';
import { newId } from '../ids';
import { toPicos } from '../credits/balances';
import { markInvoicePaid } from '../invoices/invoices';
import type { PaymentProvider } from './provider';

const attempts = counter('drawdown_payment_attempts_total', 'Payment collection attempts by provider and outcome', ['provider', 'outcome']);

const toMinor = (v: Picos, currency: string): bigint => v / 10n ** BigInt(12 - currencyDecimals(currency));

/**
 * Collection states: pending (to send) -> started (claimed; the provider is being called) ->
 * succeeded | failed | awaiting (the provider has it; a webhook or mark_paid settles it).
 * A claim older than `retryAfterMs` is a crashed attempt and is claimed again.
 */
export async function collectPayments(pool: Pool, provider: PaymentProvider, opts: { now: Date; limit: number; retryAfterMs?: number; log?: Logger }): Promise<number> {
  const stale = new Date(opts.now.getTime() - (opts.retryAfterMs ?? 600_000));
  const due = await pool.query<{ id: string }>(
    `UPDATE invoices SET collection = 'started', payment_started_at = $2
      WHERE id IN (SELECT id FROM invoices WHERE status = 'issued' AND (collection = 'pending' OR (collection = 'started' AND payment_started_at < $3))
                    ORDER BY issued_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
      RETURNING id`,
    [opts.limit, opts.now, stale],
  );
  let n = 0;
  for (const { id } of due.rows) {
    const inv = await pool.query(
      `SELECT i.invoice_number, i.currency, i.memo, i.total::text, c.id AS customer_id, c.name, c.email, c.payment_provider, c.payment_provider_id
         FROM invoices i JOIN customers c ON c.id = i.customer_id WHERE i.id = $1`,
      [id],
    );
    const row = inv.rows[0];
    const lines = await pool.query<{ name: string; amount: string }>('SELECT name, amount::text FROM invoice_line_items WHERE invoice_id = $1 ORDER BY position', [id]);
    let result;
    try {
      result = await provider.collect({
        invoiceId: id,
        invoiceNumber: row.invoice_number,
        customer: { id: row.customer_id, name: row.name, email: row.email, providerCustomerId: row.payment_provider === provider.name ? row.payment_provider_id : null },
        currency: row.currency,
        memo: row.memo,
        lines: lines.rows.map((l) => ({ description: l.name, amountMinor: toMinor(toPicos(l.amount), row.currency) })),
        totalMinor: toMinor(toPicos(row.total), row.currency),
      });
    } catch (err) {
      // The provider could not be reached or refused the request: try again on the next pass.
      opts.log?.warn('payment collection failed; will retry', { invoice_id: id, err });
      await pool.query("UPDATE invoices SET collection = 'pending' WHERE id = $1 AND collection = 'started'", [id]);
      attempts.inc({ provider: provider.name, outcome: 'error' });
      continue;
    }
    await withTx(pool, async (c) => {
      if (result.providerCustomerId) await c.query('UPDATE customers SET payment_provider = $2, payment_provider_id = $3 WHERE id = $1', [row.customer_id, provider.name, result.providerCustomerId]);
      await c.query('UPDATE invoices SET provider = $2, provider_invoice_id = $3 WHERE id = $1', [id, provider.name, result.providerInvoiceId]);
      if (result.outcome !== 'open') {
        await c.query('INSERT INTO payment_attempts (id, invoice_id, provider, provider_payment_id, amount, succeeded) VALUES ($1, $2, $3, $4, $5, $6)',
          [newId(), id, provider.name, result.providerPaymentId, formatFixed(toPicos(row.total), 12), result.outcome === 'paid']);
      }
      if (result.outcome === 'paid') await markInvoicePaid(c, id, { paidAt: opts.now, externalId: result.providerPaymentId, notes: `collected by ${provider.name}` });
      else if (result.outcome === 'failed') await c.query("UPDATE invoices SET collection = 'failed', payment_failed_at = $2 WHERE id = $1", [id, opts.now]);
      else await c.query("UPDATE invoices SET collection = 'awaiting' WHERE id = $1 AND collection = 'started'", [id]);
    });
    attempts.inc({ provider: provider.name, outcome: result.outcome });
    n++;
  }
  return n;
}

/**
 * POST /v1/payments/stripe/webhook: verifies the signature with the SDK, then applies
 * invoice.paid / invoice.payment_succeeded (mark paid, activate pending blocks) and
 * invoice.payment_failed. Each Stripe event id is applied once.
 */
export async function handleStripeWebhook(pool: Pool, stripe: Stripe, secret: string, rawBody: Buffer, signature: string | undefined, now: Date): Promise<{ applied: boolean; type: string }> {
  if (!signature) throw new ApiError('unauthorized', 'stripe-signature header is missing');
  let event: Stripe.Event;
  try {
    event = stripe.webhooks.constructEvent(rawBody, signature, secret);
  } catch (err) {
    throw new ApiError('unauthorized', `stripe-signature: ${(err as Error).message}`);
  }
  const type = event.type as string;
  if (!['invoice.paid', 'invoice.payment_succeeded', 'invoice.payment_failed'].includes(type)) return { applied: false, type };
  const obj = event.data.object as { id?: string; metadata?: Record<string, string> | null };
  return withTx(pool, async (c) => {
    const fresh = await c.query("INSERT INTO provider_events (provider, event_id) VALUES ('stripe', $1) ON CONFLICT DO NOTHING", [event.id]);
    if (fresh.rowCount === 0) return { applied: false, type };
    const r = await c.query<{ id: string; total: string; status: string }>(
      "SELECT id, total::text, status FROM invoices WHERE (provider = 'stripe' AND provider_invoice_id = $1) OR id = $2 LIMIT 1",
      [obj.id ?? '', obj.metadata?.drawdown_invoice_id ?? ''],
    );
    const inv = r.rows[0];
    if (!inv) return { applied: false, type };
    if (type === 'invoice.payment_failed') {
      await c.query("UPDATE invoices SET collection = 'failed', payment_failed_at = $2 WHERE id = $1 AND status = 'issued'", [inv.id, now]);
      await c.query("INSERT INTO payment_attempts (id, invoice_id, provider, provider_payment_id, amount, succeeded) VALUES ($1, $2, 'stripe', $3, $4, false)", [newId(), inv.id, obj.id ?? null, inv.total]);
      return { applied: true, type };
    }
    if (inv.status === 'paid') return { applied: false, type };
    if (inv.status !== 'issued') return { applied: false, type };
    await markInvoicePaid(c, inv.id, { paidAt: now, externalId: obj.id ?? null, notes: `stripe ${type}` });
    return { applied: true, type };
  });
}
