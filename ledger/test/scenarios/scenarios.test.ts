// Billing scenarios: each is one customer's months under a controlled clock, on real Postgres
// and chDB. The resulting invoices and ledgers are compared with reviewed snapshots in
// __snapshots__/ (ids and real-time created_at normalized; see harness.ts). A changed
// snapshot must be reviewed by eye before it is committed (`vitest -u` rewrites them).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { withTx } from '@drawdown/pg';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { silentLogger } from '@drawdown/log';
import { billingPeriods } from '@drawdown/catalog';
import { openClickHouse, migrateClickHouse, insertRows, type Ch } from '@drawdown/clickhouse';
import { clickhouseUsageSource } from '@drawdown/reporter';
import { createLedgerEntry } from '../../src/credits/entries';
import { parseLedgerEntry } from '../../src/credits/parse';
import { expireDueBlocks } from '../../src/credits/expiry';
import { markInvoicePaid, issueInvoice, invoiceDtoById } from '../../src/invoices/invoices';
import { createTopUp, parseTopUp } from '../../src/topups/topups';
import { startBilling, type Billing } from '../../src/settlement/billing';
import { upcomingInvoice } from '../../src/settlement/settle';
import { openScenario, customer, planWith, subscribe, debit, ledgerOf, balanceOf, invoicesOf, normalize, compactInvoice, type Scenario } from './harness';

const SNAP = join(import.meta.dirname, '__snapshots__');
const HOUR = 3_600_000;

/** A rated event as the rater writes it to ClickHouse (fiat and non-decomposable usage). */
const ratedRow = (c: { id: string; external_customer_id: string }, sub: string) =>
  (i: number, t: string, name: string, priceId: string, props: Record<string, unknown>, quantity = '0') => ({
    partition: 0, seq: i, batch_id: 'b', customer_id: c.id, external_customer_id: c.external_customer_id, idempotency_key: `${c.external_customer_id}-k${i}`, event_name: name,
    timestamp: Date.parse(t), received_at: Date.parse(t), properties: JSON.stringify(props), subscription_id: sub, price_id: priceId,
    metric_id: '', quantity, amount: '0', pricing_unit: 'USD', status: 'rated', reason: '', catalog_version: 1,
  });

describe('billing scenarios', () => {
  let s: Scenario;
  let ch: Ch;
  let billing: Billing;

  beforeAll(async () => {
    s = await openScenario();
    ch = await openClickHouse({ url: '', dataDir: join(s.env.config.dataDir, 'chdb') }, silentLogger);
    await migrateClickHouse(ch);
    await s.pool.query(`INSERT INTO pricing_units (name, display_name, currency, conversion_rate) VALUES ('credits', 'Credits', 'USD', '0.01')
      ON CONFLICT (name) DO UPDATE SET currency = excluded.currency, conversion_rate = excluded.conversion_rate`);
    // Grace of the ingest window: settlement waits this long after a period ends.
    billing = startBilling({ pool: s.pool, config: { ...s.env.config, ingestGraceMs: 12 * HOUR }, usage: clickhouseUsageSource(ch), log: silentLogger, timer: false });
  });

  afterAll(async () => {
    await billing?.stop();
    await ch?.close();
    await s?.close();
  });

  const increment = async (c: { id: string; external_customer_id: string }, body: Record<string, unknown>) =>
    createLedgerEntry(s.pool, c, parseLedgerEntry({ entry_type: 'increment', currency: 'credits', effective_date: s.now().toISOString(), ...body }));

  it('trial credits expire unused; the period invoice is zero', async () => {
    await s.setClock('2026-01-01T00:00:00Z');
    const c = await customer(s.pool, 'trial');
    const { planId, priceIds } = await planWith(s.pool, 'credits', [{ name: 'API call', currency: 'credits', model_type: 'unit', config: { unit_config: { unit_amount: '1' } }, metric: { event_name: 'call', aggregation: 'count' } }]);
    await subscribe(s.pool, c.id, planId, '2026-01-01T00:00:00Z');
    await increment(c, { amount: 500, per_unit_cost_basis: '0', description: '14-day trial', effective_date: '2026-01-01T00:00:00Z', expiry_date: '2026-01-15T00:00:00Z' });
    const balances: Record<string, string> = { '2026-01-01': await balanceOf(s.pool, c.id) };
    await s.setClock('2026-01-05T12:00:00Z');
    await debit(s.pool, c.id, priceIds[0]!, '2026-01-05', '200');
    balances['2026-01-05'] = await balanceOf(s.pool, c.id);
    await s.setClock('2026-01-20T00:00:00Z');
    balances['2026-01-20'] = await balanceOf(s.pool, c.id);
    await s.setClock('2026-02-01T13:00:00Z');
    const tick = await billing.tick();
    expect(tick.settled).toBeGreaterThanOrEqual(1);

    expect(balances).toEqual({ '2026-01-01': '500', '2026-01-05': '300', '2026-01-20': '0' });
    const invoices = await invoicesOf(s.pool, c.id);
    expect(invoices.map((i) => [i.invoice_kind, i.total, i.status])).toEqual([['settlement', '0.00', 'paid']]);
    await expect(await normalize(s.pool, { balances, invoices, ledger: await ledgerOf(s.pool, c.id) })).toMatchFileSnapshot(join(SNAP, 'trial-expires.json'));
  });

  it('a purchase waits for payment, then is consumed', async () => {
    await s.setClock('2026-01-01T09:00:00Z');
    const c = await customer(s.pool, 'buyer');
    const { priceIds } = await planWith(s.pool, 'credits', [{ name: 'API call', currency: 'credits', model_type: 'unit', config: { unit_config: { unit_amount: '1' } }, metric: { event_name: 'call', aggregation: 'count' } }]);
    const entry = await increment(c, {
      amount: 1000, per_unit_cost_basis: '0.0125', description: 'prepaid pack',
      invoice_settings: { auto_collection: false, net_terms: 30, memo: 'Prepaid credits', require_successful_payment: true },
    });
    expect(entry.entry_status).toBe('pending');
    const balances: Record<string, string> = { unpaid: await balanceOf(s.pool, c.id) };
    const [inv] = await invoicesOf(s.pool, c.id);
    expect([inv!.total, inv!.status, inv!.due_date]).toEqual(['12.50', 'issued', '2026-01-31T09:00:00.000Z']);

    await s.setClock('2026-01-03T10:00:00Z');
    await withTx(s.pool, (tx) => markInvoicePaid(tx, inv!.id as string, { paidAt: s.now(), externalId: 'wire-42' }));
    balances.paid = await balanceOf(s.pool, c.id);
    await s.setClock('2026-01-10T10:00:00Z');
    await debit(s.pool, c.id, priceIds[0]!, '2026-01-10', '400');
    balances.consumed = await balanceOf(s.pool, c.id);

    expect(balances).toEqual({ unpaid: '0', paid: '1000', consumed: '600' });
    await expect(await normalize(s.pool, { balances, invoices: await invoicesOf(s.pool, c.id), ledger: await ledgerOf(s.pool, c.id) })).toMatchFileSnapshot(join(SNAP, 'purchase-paid-consumed.json'));
  });

  it('a threshold top-up fires exactly once per crossing, with concurrent and replayed batches', async () => {
    await s.setClock('2026-01-01T00:00:00Z');
    const c = await customer(s.pool, 'topper');
    const { priceIds } = await planWith(s.pool, 'credits', [{ name: 'API call', currency: 'credits', model_type: 'unit', config: { unit_config: { unit_amount: '1' } }, metric: { event_name: 'call', aggregation: 'count' } }]);
    await increment(c, { amount: 300, per_unit_cost_basis: '0' });
    await createTopUp(s.pool, c.id, parseTopUp({ currency: 'credits', threshold: '100', amount: '500', per_unit_cost_basis: '0.01', invoice_settings: { auto_collection: true, net_terms: 0 }, expires_after: 12, expires_after_unit: 'month' }, s.now()));

    await s.setClock('2026-01-02T00:00:00Z');
    // Eight concurrent batches of 30 cross 100 together (300 -> 60); the first is replayed too.
    await Promise.all(Array.from({ length: 8 }, (_, i) => debit(s.pool, c.id, priceIds[0]!, '2026-01-02', '30', `topup-a-${i}`)));
    await debit(s.pool, c.id, priceIds[0]!, '2026-01-02', '30', 'topup-a-0');
    const intents1 = await s.pool.query("SELECT count(*)::int AS n FROM top_up_intents WHERE customer_id = $1", [c.id]);
    expect(intents1.rows[0].n).toBe(1);
    await billing.tick();
    const afterFirst = await balanceOf(s.pool, c.id);
    expect(afterFirst).toBe('560');

    // Falling again: 560 -> 80 crosses once more; the worker runs twice and buys once.
    await s.setClock('2026-01-03T00:00:00Z');
    await debit(s.pool, c.id, priceIds[0]!, '2026-01-03', '480');
    await billing.tick();
    await billing.tick();
    const intents2 = await s.pool.query("SELECT status, balance_before::text, balance_after::text FROM top_up_intents WHERE customer_id = $1 ORDER BY created_at", [c.id]);
    expect(intents2.rows.map((r) => r.status)).toEqual(['done', 'done']);
    const balances = { afterFirst, afterSecond: await balanceOf(s.pool, c.id) };
    const intents = intents2.rows.map((r) => ({ status: r.status, balance_before: formatDecimal(parseDecimal(r.balance_before)), balance_after: formatDecimal(parseDecimal(r.balance_after)) }));
    expect(intents.map((i) => [i.balance_before, i.balance_after])).toEqual([['120', '90'], ['560', '80']]);
    expect(balances.afterSecond).toBe('580');
    const invoices = await invoicesOf(s.pool, c.id);
    expect(invoices.map((i) => [i.invoice_kind, i.total])).toEqual([['top_up', '5.00'], ['top_up', '5.00']]);
    await expect(await normalize(s.pool, { balances, intents, invoices, ledger: await ledgerOf(s.pool, c.id) })).toMatchFileSnapshot(join(SNAP, 'threshold-top-up.json'));
  });

  it('a top-up deleted between the crossing and the worker buys nothing', async () => {
    await s.setClock('2026-01-01T00:00:00Z');
    const c = await customer(s.pool, 'topper-deleted');
    const { priceIds } = await planWith(s.pool, 'credits', [{ name: 'API call', currency: 'credits', model_type: 'unit', config: { unit_config: { unit_amount: '1' } }, metric: { event_name: 'call', aggregation: 'count' } }]);
    await increment(c, { amount: 100, per_unit_cost_basis: '0' });
    const t = await createTopUp(s.pool, c.id, parseTopUp({ currency: 'credits', threshold: '50', amount: '500', per_unit_cost_basis: '0.01', invoice_settings: { auto_collection: false, net_terms: 0 } }, s.now()));
    await debit(s.pool, c.id, priceIds[0]!, '2026-01-01', '60');
    await s.pool.query('UPDATE top_ups SET deleted_at = now() WHERE id = $1', [t.id]);
    await billing.tick();
    const intents = await s.pool.query('SELECT status FROM top_up_intents WHERE customer_id = $1', [c.id]);
    expect(intents.rows).toEqual([{ status: 'cancelled' }]);
    expect(await balanceOf(s.pool, c.id)).toBe('40');
    expect(await invoicesOf(s.pool, c.id)).toEqual([]);
  });

  it('a plan allocation rolls over into the next period, then expires', async () => {
    await s.setClock('2026-01-01T00:00:00Z');
    const c = await customer(s.pool, 'alloc');
    const { planId, priceIds } = await planWith(s.pool, 'credits', [
      { name: 'API call', currency: 'credits', model_type: 'unit', config: { unit_config: { unit_amount: '1' } }, metric: { event_name: 'call', aggregation: 'count' } },
      { name: 'Monthly credits', currency: 'credits', model_type: 'allocation', config: { allocation_config: { amount: '100', allows_rollover: true } } },
    ]);
    await subscribe(s.pool, c.id, planId, '2026-01-01T00:00:00Z');
    const balances: Record<string, string> = {};
    await billing.tick();
    await billing.tick(); // a second pass grants nothing more
    balances['2026-01-01'] = await balanceOf(s.pool, c.id);
    await s.setClock('2026-01-20T00:00:00Z');
    await debit(s.pool, c.id, priceIds[0]!, '2026-01-20', '60');
    balances['2026-01-20'] = await balanceOf(s.pool, c.id);
    await s.setClock('2026-02-01T00:00:00Z');
    await billing.tick();
    balances['2026-02-01'] = await balanceOf(s.pool, c.id);
    await s.setClock('2026-02-10T00:00:00Z');
    await debit(s.pool, c.id, priceIds[0]!, '2026-02-10', '30');
    balances['2026-02-10'] = await balanceOf(s.pool, c.id);
    await s.setClock('2026-03-01T00:00:00Z');
    await billing.tick();
    balances['2026-03-01'] = await balanceOf(s.pool, c.id);

    // Jan's 100: 60 used in Jan, 30 in Feb (soonest expiry first), its last 10 expire on Mar 1.
    expect(balances).toEqual({ '2026-01-01': '100', '2026-01-20': '40', '2026-02-01': '140', '2026-02-10': '110', '2026-03-01': '200' });
    await expect(await normalize(s.pool, { balances, ledger: await ledgerOf(s.pool, c.id) })).toMatchFileSnapshot(join(SNAP, 'allocation-rollover.json'));
  });

  it('a quarterly scheduled purchase runs on its schedule, once per due date', async () => {
    await s.setClock('2026-01-01T00:00:00Z');
    const c = await customer(s.pool, 'quarterly');
    const { createScheduledPurchase } = await import('../../src/topups/scheduled');
    await createScheduledPurchase(s.pool, c.id, { currency: 'credits', amount: '3000', per_unit_cost_basis: '0.008', every_months: 3, expires_after_months: 6, invoice_settings: { auto_collection: false, net_terms: 30 } }, s.now());
    const runs: Record<string, number> = {};
    for (const day of ['2026-01-01T06:00:00Z', '2026-02-15T00:00:00Z', '2026-04-01T00:00:00Z', '2026-04-02T00:00:00Z', '2026-07-01T00:00:00Z']) {
      await s.setClock(day);
      runs[day.slice(0, 10)] = (await billing.tick()).scheduledPurchases;
    }
    expect(runs).toEqual({ '2026-01-01': 1, '2026-02-15': 0, '2026-04-01': 1, '2026-04-02': 0, '2026-07-01': 1 });
    const invoices = await invoicesOf(s.pool, c.id);
    expect(invoices.map((i) => [i.invoice_kind, i.total, i.invoice_date, i.due_date])).toEqual([
      ['scheduled_purchase', '24.00', '2026-01-01T06:00:00.000Z', '2026-01-31T06:00:00.000Z'],
      ['scheduled_purchase', '24.00', '2026-04-01T00:00:00.000Z', '2026-05-01T00:00:00.000Z'],
      ['scheduled_purchase', '24.00', '2026-07-01T00:00:00.000Z', '2026-07-31T00:00:00.000Z'],
    ]);
    const blocks = await s.pool.query("SELECT effective_date, expiry_date FROM credit_blocks WHERE customer_id = $1 ORDER BY effective_date", [c.id]);
    expect(blocks.rows.map((b) => [b.effective_date.toISOString().slice(0, 10), b.expiry_date.toISOString().slice(0, 10)])).toEqual([
      ['2026-01-01', '2026-07-01'], ['2026-04-01', '2026-10-01'], ['2026-07-01', '2027-01-01'],
    ]);
  });

  it('usage runs into overage; the period invoice charges it with fixed fees and fiat usage, as the upcoming invoice said', async () => {
    await s.setClock('2026-01-01T00:00:00Z');
    const c = await customer(s.pool, 'over', { auto_issuance: false, net_terms: 15 });
    const { planId, priceIds } = await planWith(s.pool, 'credits', [
      { name: 'API call', currency: 'credits', model_type: 'unit', config: { unit_config: { unit_amount: '1' } }, metric: { event_name: 'call', aggregation: 'count' } },
      { name: 'Platform fee', currency: 'USD', model_type: 'unit', config: { unit_config: { unit_amount: '20' } } },
      { name: 'Peak seats', currency: 'USD', model_type: 'unit', config: { unit_config: { unit_amount: '2.5' } }, metric: { event_name: 'seats', aggregation: 'max', property: 'seats' } },
      { name: 'Storage GB', currency: 'USD', model_type: 'tiered', config: { tiered_config: { tiers: [{ first_unit: 0, last_unit: 10, unit_amount: '0' }, { first_unit: 10, unit_amount: '0.333' }] } }, metric: { event_name: 'storage', aggregation: 'sum', property: 'gb' } },
      { name: 'Distinct users', currency: 'credits', model_type: 'unit', config: { unit_config: { unit_amount: '10' } }, metric: { event_name: 'login', aggregation: 'unique_count', property: 'user' } },
    ]);
    const sub = await subscribe(s.pool, c.id, planId, '2026-01-01T00:00:00Z');
    await increment(c, { amount: 100, per_unit_cost_basis: '0' });
    await s.setClock('2026-01-15T00:00:00Z');
    await debit(s.pool, c.id, priceIds[0]!, '2026-01-15', '180.555');
    // Fiat and non-decomposable usage, as the rater writes it to ClickHouse.
    const row = ratedRow(c, sub);
    await insertRows(ch, 'rated_events', [
      row(1, '2026-01-03T10:00:00Z', 'seats', priceIds[2]!, { seats: 4 }),
      row(2, '2026-01-09T10:00:00Z', 'seats', priceIds[2]!, { seats: 7 }),
      row(3, '2026-01-20T10:00:00Z', 'seats', priceIds[2]!, { seats: '5' }),
      row(4, '2026-02-02T10:00:00Z', 'seats', priceIds[2]!, { seats: 40 }), // next period
      row(5, '2026-01-04T00:00:00Z', 'storage', priceIds[3]!, { gb: 12.5 }, '12.5'),
      row(6, '2026-01-25T00:00:00Z', 'storage', priceIds[3]!, { gb: 8 }, '8'),
      // Distinct users are priced in credits (10 each) and, not being decomposable, invoiced at the credits' rate.
      row(7, '2026-01-05T00:00:00Z', 'login', priceIds[4]!, { user: 'ann' }),
      row(8, '2026-01-06T00:00:00Z', 'login', priceIds[4]!, { user: 'bob' }),
      row(9, '2026-01-07T00:00:00Z', 'login', priceIds[4]!, { user: 'ann' }),
    ]);

    await s.setClock('2026-01-31T23:00:00Z');
    const upcoming = compactInvoice(await upcomingInvoice(s.pool, clickhouseUsageSource(ch), sub, s.now()));
    await s.setClock('2026-02-01T11:00:00Z');
    expect((await billing.tick()).settled).toBe(0); // inside the grace: not yet
    await s.setClock('2026-02-01T12:00:00Z');
    expect((await billing.tick()).settled).toBe(1);
    const [draft] = await invoicesOf(s.pool, c.id);
    expect(draft!.status).toBe('draft');
    // The upcoming invoice said what settlement produced.
    expect(draft!.line_items).toEqual(upcoming.line_items);
    expect(draft!.total).toBe(upcoming.total);
    // Overage 80.555 credits x 0.01 = 0.80555 -> 0.81; seats max 7 x 2.5 = 17.50; storage 20.5 GB: 10.5 x 0.333 = 3.4965 -> 3.50;
    // 2 distinct users x 10 credits x 0.01 = 0.20.
    expect((draft!.line_items as { name: string; amount: string }[]).map((l) => [l.name, l.amount])).toEqual([
      ['Platform fee', '20.00'], ['Peak seats', '17.50'], ['Storage GB', '3.50'], ['Distinct users', '0.20'], ['Overage (credits)', '0.81'],
    ]);
    expect(draft!.total).toBe('42.01');
    const balances: Record<string, string> = { settled: await balanceOf(s.pool, c.id) };

    // The billing flag and the access check's feed (unpaid_overage_invoices) must agree.
    const flag = async () => {
      const billingFlag = (await s.pool.query('SELECT unpaid_overage FROM customers WHERE id = $1', [c.id])).rows[0].unpaid_overage as boolean;
      const accessFeed = (await s.pool.query('SELECT coalesce(bool_or(unpaid), false) AS u FROM unpaid_overage_invoices WHERE customer_id = $1', [c.id])).rows[0].u as boolean;
      expect(accessFeed).toBe(billingFlag);
      return billingFlag;
    };
    const flags: Record<string, boolean> = { draft: await flag() };
    await s.setClock('2026-02-02T09:00:00Z');
    await withTx(s.pool, (tx) => issueInvoice(tx, draft!.id as string, s.now()));
    flags.issued = await flag();
    const issued = compactInvoice(await invoiceDtoById(s.pool, draft!.id as string));
    expect(issued.due_date).toBe('2026-02-17T09:00:00.000Z');
    await withTx(s.pool, (tx) => markInvoicePaid(tx, draft!.id as string, { paidAt: s.now() }));
    flags.paid = await flag();
    expect(flags).toEqual({ draft: false, issued: true, paid: false });
    expect(balances.settled).toBe('0');
    await expect(await normalize(s.pool, { balances, flags, upcoming, invoices: await invoicesOf(s.pool, c.id), ledger: await ledgerOf(s.pool, c.id) })).toMatchFileSnapshot(join(SNAP, 'overage-invoice.json'));
  });

  it('a customer in New York: periods, allocations and invoices start at New York midnight, across the DST change', async () => {
    // Feb 1 00:00 EST = 05:00Z; Mar 1 00:00 EST = 05:00Z; DST starts Mar 8; Apr 1 00:00 EDT = 04:00Z.
    await s.setClock('2026-02-01T05:00:00Z');
    const c = await customer(s.pool, 'nyc', { timezone: 'America/New_York' });
    const { planId, priceIds } = await planWith(s.pool, 'credits', [
      { name: 'API call', currency: 'credits', model_type: 'unit', config: { unit_config: { unit_amount: '1' } }, metric: { event_name: 'call', aggregation: 'count' } },
      { name: 'Platform fee', currency: 'USD', model_type: 'unit', config: { unit_config: { unit_amount: '20' } } },
      { name: 'Storage GB', currency: 'USD', model_type: 'unit', config: { unit_config: { unit_amount: '0.1' } }, metric: { event_name: 'storage', aggregation: 'sum', property: 'gb' } },
      { name: 'Monthly credits', currency: 'credits', model_type: 'allocation', config: { allocation_config: { amount: '100', expires_at_end_of_cadence: true } } },
    ]);
    const sub = await subscribe(s.pool, c.id, planId, '2026-02-01T05:00:00Z');
    const row = ratedRow(c, sub);
    await insertRows(ch, 'rated_events', [
      row(1, '2026-02-15T12:00:00Z', 'storage', priceIds[2]!, { gb: 5 }, '5'),
      // Mar 31 23:30 EDT: the March period (a UTC-anchored period would agree).
      row(2, '2026-04-01T03:30:00Z', 'storage', priceIds[2]!, { gb: 3 }, '3'),
      // Apr 1 00:30 EDT: April in New York; periods anchored at the start instant in UTC ended at 05:00Z and put it in March.
      row(3, '2026-04-01T04:30:00Z', 'storage', priceIds[2]!, { gb: 7 }, '7'),
    ]);
    // After each pass: this customer's allocation grants and settlement invoices so far (a pass also serves the other scenarios' customers).
    const ticks: Record<string, { allocations: number; settled: number }> = {};
    const at = async (iso: string) => {
      await s.setClock(iso);
      await expireDueBlocks(s.pool, 100); // the ledger's expiry job, so the ledger shows when each allocation expired
      await billing.tick();
      const n = await s.pool.query<{ a: number; i: number }>(
        `SELECT (SELECT count(*)::int FROM credit_blocks WHERE customer_id = $1 AND source = 'allocation') AS a,
                (SELECT count(*)::int FROM invoices WHERE customer_id = $1 AND kind = 'settlement') AS i`, [c.id]);
      ticks[iso] = { allocations: n.rows[0]!.a, settled: n.rows[0]!.i };
    };
    await at('2026-02-01T05:00:00Z');
    await s.setClock('2026-02-20T00:00:00Z');
    await debit(s.pool, c.id, priceIds[0]!, '2026-02-20', '40');
    await at('2026-03-01T04:59:59Z'); // Feb 28 23:59:59 EST: still February
    await at('2026-03-01T05:00:00Z'); // March's allocation; February inside its grace
    await at('2026-03-01T17:00:00Z'); // February settles
    await at('2026-04-01T03:59:59Z'); // Mar 31 23:59:59 EDT
    await at('2026-04-01T04:00:00Z'); // April's allocation at New York midnight (EDT)
    await at('2026-04-01T16:00:00Z'); // March settles, 12 h after its end
    await s.setClock('2026-04-15T00:00:00Z');
    const upcoming = compactInvoice(await upcomingInvoice(s.pool, clickhouseUsageSource(ch), sub, s.now()));

    expect(ticks).toEqual({
      '2026-02-01T05:00:00Z': { allocations: 1, settled: 0 },
      '2026-03-01T04:59:59Z': { allocations: 1, settled: 0 },
      '2026-03-01T05:00:00Z': { allocations: 2, settled: 0 },
      '2026-03-01T17:00:00Z': { allocations: 2, settled: 1 },
      '2026-04-01T03:59:59Z': { allocations: 2, settled: 1 },
      '2026-04-01T04:00:00Z': { allocations: 3, settled: 1 },
      '2026-04-01T16:00:00Z': { allocations: 3, settled: 2 },
    });
    const invoices = await invoicesOf(s.pool, c.id);
    // The periods are the catalog's billing periods, as the subscriptions API shows them.
    const periods = billingPeriods(Date.parse('2026-02-01T05:00:00Z'), 'monthly', 'America/New_York', { untilMs: Date.parse('2026-04-15T00:00:00Z') })
      .map((p) => [new Date(p.startMs).toISOString(), new Date(p.endMs).toISOString()]);
    expect(periods).toEqual([
      ['2026-02-01T05:00:00.000Z', '2026-03-01T05:00:00.000Z'],
      ['2026-03-01T05:00:00.000Z', '2026-04-01T04:00:00.000Z'],
      ['2026-04-01T04:00:00.000Z', '2026-05-01T04:00:00.000Z'],
    ]);
    expect([...invoices.map((i) => [i.period_start, i.period_end]), [upcoming.period_start, upcoming.period_end]]).toEqual(periods);
    const storage = (inv: Record<string, unknown>) => (inv.line_items as { name: string; quantity: bigint; amount: string }[]).filter((l) => l.name === 'Storage GB').map((l) => [formatDecimal(l.quantity), l.amount]);
    expect([...invoices.map(storage), storage(upcoming)]).toEqual([[['5', '0.50']], [['3', '0.30']], [['7', '0.70']]]);
    expect(invoices.map((i) => i.total)).toEqual(['20.50', '20.30']);
    const blocks = await s.pool.query("SELECT effective_date, expiry_date FROM credit_blocks WHERE customer_id = $1 AND source = 'allocation' ORDER BY effective_date", [c.id]);
    expect(blocks.rows.map((b) => [(b.effective_date as Date).toISOString(), (b.expiry_date as Date).toISOString()])).toEqual(periods);
    await expect(await normalize(s.pool, { ticks, upcoming, invoices, ledger: await ledgerOf(s.pool, c.id) })).toMatchFileSnapshot(join(SNAP, 'new-york-periods.json'));
  });

  it('a matrix price in fiat is priced per combination of property values at settlement, as the upcoming invoice said', async () => {
    await s.setClock('2026-01-01T00:00:00Z');
    const c = await customer(s.pool, 'matrix');
    const matrix = { matrix_config: { dimensions: ['region', 'tier'], default_unit_amount: '0.07', matrix_values: [
      { dimension_values: ['eu', 'gold'], unit_amount: '0.000123456789' },
      { dimension_values: ['eu', null], unit_amount: '1.1' },
      { dimension_values: ['us', 3], unit_amount: '0.333333333333' },
    ] } };
    const { planId, priceIds } = await planWith(s.pool, 'USD', [
      { name: 'Egress GB', currency: 'USD', model_type: 'matrix', config: matrix, metric: { event_name: 'egress', aggregation: 'sum', property: 'gb' } },
      { name: 'Peak nodes', currency: 'USD', model_type: 'matrix', config: matrix, metric: { event_name: 'nodes', aggregation: 'max', property: 'n' } },
    ]);
    const sub = await subscribe(s.pool, c.id, planId, '2026-01-01T00:00:00Z');
    const row = ratedRow(c, sub);
    await insertRows(ch, 'rated_events', [
      row(1, '2026-01-02T00:00:00Z', 'egress', priceIds[0]!, { region: 'eu', tier: 'gold', gb: '1234.567890123' }, '1234.567890123'),
      row(2, '2026-01-03T00:00:00Z', 'egress', priceIds[0]!, { region: 'eu', tier: 'gold', gb: '0.000000000001' }, '0.000000000001'),
      row(3, '2026-01-04T00:00:00Z', 'egress', priceIds[0]!, { region: 'eu', tier: 'silver', gb: 2.5 }, '2.5'),
      row(4, '2026-01-05T00:00:00Z', 'egress', priceIds[0]!, { region: 'us', tier: 3, gb: 3 }, '3'),
      row(5, '2026-01-06T00:00:00Z', 'egress', priceIds[0]!, { region: 'us', tier: '3', gb: '0.000000000003' }, '0.000000000003'),
      row(6, '2026-01-07T00:00:00Z', 'egress', priceIds[0]!, { gb: 10 }, '10'),
      row(7, '2026-02-01T00:00:00Z', 'egress', priceIds[0]!, { region: 'eu', tier: 'silver', gb: 1000 }, '1000'), // next period
      // Max per combination: eu/gold peaks at 4, us/3 at 2.5.
      row(8, '2026-01-02T00:00:00Z', 'nodes', priceIds[1]!, { region: 'eu', tier: 'gold', n: 4 }),
      row(9, '2026-01-09T00:00:00Z', 'nodes', priceIds[1]!, { region: 'eu', tier: 'gold', n: 1 }),
      row(10, '2026-01-09T00:00:00Z', 'nodes', priceIds[1]!, { region: 'us', tier: 3, n: '2.5' }),
    ]);
    await s.setClock('2026-01-31T12:00:00Z');
    const upcoming = compactInvoice(await upcomingInvoice(s.pool, clickhouseUsageSource(ch), sub, s.now()));
    await s.setClock('2026-02-01T12:00:00Z');
    await billing.tick();
    const [inv] = await invoicesOf(s.pool, c.id);
    expect(inv!.line_items).toEqual(upcoming.line_items);
    const lines = (inv!.line_items as { name: string; quantity: bigint; unit_amount: string | null; amount: string }[]).map((l) => [l.name, formatDecimal(l.quantity), l.unit_amount, l.amount]);
    // Egress: 1234.567890123001 x 0.000123456789 = 0.152415787517 + 2.5 x 1.1 + 3 x 0.333333333333 = 0.999999999999
    //   + 0.000000000003 x 0.333333333333 -> 0.000000000001 + 10 x 0.07 = 4.602415787517 -> 4.60.
    // Peak nodes: 4 x 0.000123456789 + 2.5 x 0.333333333333 = 0.000493827156 + 0.8333333333325 -> 0.833333333332 (half-even) = 0.833827160488 -> 0.83.
    expect(lines).toEqual([
      ['Egress GB', '1250.067890123004', null, '4.60'],
      ['Peak nodes', '6.5', null, '0.83'],
    ]);
    expect(inv!.total).toBe('5.43');
  });
});
