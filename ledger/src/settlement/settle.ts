// Period settlement: once a period's end plus the ingest grace has passed (no event of the
// period can still arrive), its invoice is computed and stored, issued or left a draft per
// the customer's auto-issuance. Idempotent: one settlement invoice per (subscription, period
// start), enforced by a unique index. The overage it charges is cleared in the same
// transaction (a block bought by the invoice fills the negative balance), so no later
// invoice charges it again.
import { formatDecimal, formatFixed, type Picos } from '@drawdown/money';
import { withTx, type Pool, type Queryable } from '@drawdown/pg';
import { counter } from '@drawdown/metrics';
import { newId } from '../ids';
import { balanceKey, lockBalances, readBalances } from '../credits/balances';
import { dueDate, insertInvoice, lineDto, money, roundLines } from '../invoices/invoices';
import { computePeriodInvoice, currentPeriod, isFiat, loadSubscription, type UsageSource } from './compute';
import { periodsUntil, type Period } from './periods';

const periodsSettled = counter('drawdown_periods_settled_total', 'Subscription periods settled into invoices');

async function clearOverage(c: Queryable, customerId: string, unit: string, qty: Picos, rate: Picos, invoiceId: string, at: Date): Promise<void> {
  const pair = { customerId, pricingUnit: unit };
  const before = (await readBalances(c, [pair])).get(balanceKey(customerId, unit))!;
  const blockId = newId();
  await c.query(
    `INSERT INTO credit_blocks (id, customer_id, pricing_unit, initial_amount, remaining, per_unit_cost_basis, effective_date, expiry_date, source, status, invoice_id)
     VALUES ($1, $2, $3, $4, 0, $5, $6, NULL, 'overage_invoice', 'active', $7)`,
    [blockId, customerId, unit, formatDecimal(qty), formatFixed(rate, 12), at, invoiceId],
  );
  await c.query('UPDATE credit_balances SET overage = overage - $3 WHERE customer_id = $1 AND pricing_unit = $2', [customerId, unit, formatDecimal(qty)]);
  // The next two sequence numbers of this ledger (settlePeriod holds the balance row's lock).
  const seq = await c.query<{ seq: string }>(
    'SELECT (coalesce(max(ledger_sequence_number), 0) + 1)::text AS seq FROM ledger_entries WHERE customer_id = $1 AND pricing_unit = $2',
    [customerId, unit],
  );
  const s = Number(seq.rows[0]!.seq);
  const ending = before.balance + qty;
  await c.query(
    `INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount, starting_balance, ending_balance, description, metadata)
     VALUES ($1, $2, $3, $4, 'increment', $5, $6, $7, $8, 'overage invoiced', $9),
            ($10, $2, $3, $4 + 1, 'decrement', $5, $11, $8, $8, 'overage settled by invoice', $9)`,
    // Entry amounts are signed changes to the block (credits/README): the decrement is negative.
    [newId(), customerId, unit, s, blockId, formatDecimal(qty), formatDecimal(before.balance), formatDecimal(ending), JSON.stringify({ invoice_id: invoiceId }), newId(), formatDecimal(-qty)],
  );
}

/** Settles one period; returns the invoice id (the existing one when it was settled before). */
export async function settlePeriod(pool: Pool, usage: UsageSource, subscriptionId: string, period: Period): Promise<string> {
  return withTx(pool, async (c) => {
    const existing = await c.query<{ id: string }>("SELECT id FROM invoices WHERE subscription_id = $1 AND period_start = $2 AND kind = 'settlement'", [subscriptionId, period.start]);
    if (existing.rows[0]) return existing.rows[0].id;
    const sub = await loadSubscription(c, subscriptionId);
    // Lock the balances the overage comes from, so the overage read is the overage cleared.
    const units = await c.query<{ currency: string }>('SELECT DISTINCT currency FROM prices WHERE plan_id = $1', [sub.planId]);
    const pairs = units.rows.filter((u) => !isFiat(u.currency)).map((u) => ({ customerId: sub.customerId, pricingUnit: u.currency }));
    if (pairs.length > 0) await lockBalances(c, pairs, true);
    const computed = await computePeriodInvoice(c, usage, sub, period);
    const id = await insertInvoice(c, {
      customerId: sub.customerId,
      subscriptionId: sub.id,
      kind: 'settlement',
      currency: computed.currency,
      invoiceDate: period.end,
      netTerms: sub.netTerms,
      autoCollection: sub.autoCollection,
      issue: sub.autoIssue,
      periodStart: period.start,
      periodEnd: period.end,
      lines: computed.lines,
    });
    for (const o of computed.overage) await clearOverage(c, sub.customerId, o.pricingUnit, o.quantity, o.rate, id, period.end);
    periodsSettled.inc();
    return id;
  });
}

/**
 * Settles every period whose end + grace is at or before `now`, oldest first, at most `limit`
 * invoices. Only subscriptions whose cursor says a period is due are loaded.
 */
export async function settleDuePeriods(pool: Pool, usage: UsageSource, opts: { now: Date; graceMs: number; limit: number }): Promise<string[]> {
  const cutoff = new Date(opts.now.getTime() - opts.graceMs);
  const subs = await pool.query<{ id: string; next_index: number | null }>(
    `SELECT s.id, sc.next_period_index AS next_index
       FROM subscriptions s LEFT JOIN settlement_cursors sc ON sc.subscription_id = s.id
      WHERE s.start_date < $1 AND (sc.next_period_end IS NULL OR sc.next_period_end <= $1)
      ORDER BY s.id LIMIT $2`,
    [cutoff, opts.limit],
  );
  const out: string[] = [];
  for (const s of subs.rows) {
    const sub = await loadSubscription(pool, s.id);
    let k = s.next_index ?? 0;
    const { done, next } = periodsUntil(sub, cutoff, k);
    for (const p of done) {
      if (out.length >= opts.limit) break;
      out.push(await settlePeriod(pool, usage, sub.id, p));
      k = p.index + 1;
    }
    // The next period to wait for; an ended subscription with every period settled is never due again.
    const pending = done.find((p) => p.index === k) ?? next;
    const dueAt = pending ? pending.end : new Date('9999-12-31T00:00:00Z');
    await pool.query(
      `INSERT INTO settlement_cursors (subscription_id, next_period_index, next_period_end) VALUES ($1, $2, $3)
       ON CONFLICT (subscription_id) DO UPDATE SET next_period_index = excluded.next_period_index, next_period_end = excluded.next_period_end`,
      [sub.id, k, dueAt],
    );
    if (out.length >= opts.limit) break;
  }
  return out;
}

/** Orb's upcoming invoice: the current period as settlement would invoice it with today's data. */
export async function upcomingInvoice(db: Queryable, usage: UsageSource, subscriptionId: string, now: Date): Promise<Record<string, unknown>> {
  const sub = await loadSubscription(db, subscriptionId);
  const period = currentPeriod(sub, now);
  const computed = await computePeriodInvoice(db, usage, sub, period);
  const { total } = roundLines(computed.currency, computed.lines);
  const cur = computed.currency;
  const lines = computed.lines.map((l, i) => lineDto({
    id: `upcoming_${i + 1}`, kind: l.kind, name: l.name, price_id: l.priceId ?? null, pricing_unit: l.pricingUnit ?? null,
    quantity: l.quantity, unit_amount: l.unitAmount, amount: l.amount, start: l.start, end: l.end,
  }, cur));
  return {
    id: `upcoming_${sub.id}`,
    invoice_number: '',
    status: 'draft',
    currency: cur,
    amount_due: money(total, cur),
    subtotal: money(total, cur),
    total: money(total, cur),
    auto_collection: { enabled: sub.autoCollection, next_attempt_at: null, num_attempts: null, previously_attempted_at: null },
    billing_address: null,
    shipping_address: null,
    created_at: now.toISOString(),
    credit_notes: [],
    customer: { id: sub.customerId, external_customer_id: sub.externalCustomerId },
    customer_balance_transactions: [],
    customer_tax_id: null,
    discount: null,
    discounts: [],
    due_date: dueDate(period.end, sub.netTerms, sub.timeZone).toISOString(),
    eligible_to_issue_at: period.end.toISOString(),
    hosted_invoice_url: null,
    invoice_date: period.end.toISOString(),
    target_date: period.end.toISOString(),
    invoice_pdf: null,
    invoice_source: 'subscription',
    issue_failed_at: null,
    issued_at: null,
    line_items: lines,
    maximum: null,
    maximum_amount: null,
    memo: null,
    metadata: {},
    minimum: null,
    minimum_amount: null,
    paid_at: null,
    payment_attempts: [],
    payment_failed_at: null,
    payment_started_at: null,
    scheduled_issue_at: null,
    subscription: { id: sub.id },
    sync_failed_at: null,
    voided_at: null,
    will_auto_issue: sub.autoIssue,
    invoice_kind: 'settlement',
    period_start: period.start.toISOString(),
    period_end: period.end.toISOString(),
  };
}
