// The billing API through the official orb-billing SDK against a started ledger HTTP server
// (real Postgres and chDB; Stripe is the checking local stand-in): paid credits, invoices
// (list, fetch, upcoming, issue, mark paid, void), top-ups (create, list, delete, by external
// id), settlement drafts, and the Stripe webhook route.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Orb from 'orb-billing';
import { join } from 'node:path';
import { createApiKey, createKeyVerifier } from '@drawdown/auth';
import { openClickHouse, migrateClickHouse, type Ch } from '@drawdown/clickhouse';
import { startHttpServer, type HttpServer } from '@drawdown/http';
import { silentLogger } from '@drawdown/log';
import { createPool, ensureDatabase, migrate, type Pool } from '@drawdown/pg';
import { clickhouseUsageSource } from '@drawdown/reporter';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { LEDGER_MIGRATIONS, startBilling, type Billing } from '../src/index';
import { ledgerRoutes } from '../src/http/routes';
import { StripeStandIn } from './stripe-standin';

const SECRET = 'whsec_api_test';
const DAY = 86_400_000;

describe('billing API through the orb-billing SDK', () => {
  let env: TestEnv;
  let pool: Pool;
  let ch: Ch;
  let standin: StripeStandIn;
  let billing: Billing;
  let server: HttpServer;
  let orb: Orb;
  let base: string;

  beforeAll(async () => {
    env = testEnv();
    await ensureDatabase(env.config.databaseUrl);
    pool = createPool(env.config.databaseUrl, { max: 8 });
    await migrate(pool, [LEDGER_MIGRATIONS]);
    ch = await openClickHouse({ url: '', dataDir: join(env.config.dataDir, 'chdb') }, silentLogger);
    await migrateClickHouse(ch);
    standin = new StripeStandIn();
    await standin.start();
    const config = { ...env.config, paymentProvider: 'stripe', stripeApiKey: StripeStandIn.KEY, stripeApiUrl: standin.url, stripeWebhookSecret: SECRET };
    const usage = clickhouseUsageSource(ch);
    billing = startBilling({ pool, config, usage, log: silentLogger, timer: false });
    const routes = ledgerRoutes({ pool, catalogChanged: () => {}, billing: { usage, stripe: billing.stripe, stripeWebhookSecret: SECRET } });
    const key = await createApiKey(pool, 'admin', ['admin']);
    const verifier = createKeyVerifier(pool);
    server = await startHttpServer({ host: '127.0.0.1', port: 0, routes, authenticate: (h) => verifier.authenticate(h), log: silentLogger, ready: () => true });
    base = `http://127.0.0.1:${server.port}`;
    orb = new Orb({ apiKey: key.key, baseURL: `${base}/v1`, maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.close();
    await billing?.stop();
    await standin?.stop();
    await ch?.close();
    await pool?.end();
    await env?.cleanup();
  });

  it('an increment with invoice_settings creates an issued invoice; the block waits for mark_paid', async () => {
    const customer = await orb.customers.create({ name: 'Paid Co', email: 'paid@example.com', external_customer_id: 'paid-co' });
    const entry = await orb.customers.credits.ledger.createEntry(customer.id, {
      entry_type: 'increment', amount: 1000, currency: 'credits', per_unit_cost_basis: '0.02',
      invoice_settings: { auto_collection: false, net_terms: 10, memo: 'Credit pack', require_successful_payment: true },
    });
    expect(entry.entry_status).toBe('pending');
    const page = await orb.invoices.list({ customer_id: customer.id });
    expect(page.data).toHaveLength(1);
    const inv = page.data[0]!;
    expect([inv.status, inv.total, inv.amount_due, inv.currency, inv.memo, inv.invoice_source]).toEqual(['issued', '20.00', '20.00', 'USD', 'Credit pack', 'one_off']);
    expect(Date.parse(inv.due_date!) - Date.parse(inv.invoice_date)).toBe(10 * DAY);
    expect(inv.line_items.map((l) => [l.name, l.quantity, l.amount])).toEqual([['1000 credits', 1000, '20.00']]);
    expect((await orb.invoices.fetch(inv.id)).id).toBe(inv.id);
    // Orb lists the block as pending_payment until the invoice is paid; it is not in the balance.
    expect((await orb.customers.credits.list(customer.id)).data.map((b) => b.status)).toEqual(['pending_payment']);
    const pendingEntry = await pool.query('SELECT entry_status, ending_balance::text FROM ledger_entries WHERE customer_id = $1', [customer.id]);
    expect(pendingEntry.rows).toEqual([{ entry_status: 'pending', ending_balance: '0.000000000000' }]);

    const paid = await orb.invoices.markPaid(inv.id, { payment_received_date: '2026-02-01', external_id: 'wire-1', notes: 'by wire' });
    expect([paid.status, paid.amount_due, paid.paid_at]).toEqual(['paid', '0.00', '2026-02-01T00:00:00.000Z']);
    const blocks = await orb.customers.credits.listByExternalID('paid-co');
    expect(blocks.data.map((b) => [b.balance, b.status])).toEqual([[1000, 'active']]);
    await expect(orb.invoices.markPaid(inv.id, { payment_received_date: 'soon' })).rejects.toMatchObject({ status: 400 });
    await expect(orb.invoices.void(inv.id)).rejects.toMatchObject({ status: 409 });
  });

  it('voids an unpaid purchase and rejects invoice_settings without a cost basis, naming the field', async () => {
    const customer = await orb.customers.create({ name: 'Void Co', email: 'void@example.com', external_customer_id: 'void-co' });
    await orb.customers.credits.ledger.createEntryByExternalID('void-co', {
      entry_type: 'increment', amount: 50, currency: 'credits', per_unit_cost_basis: '1',
      invoice_settings: { auto_collection: false, net_terms: 0, require_successful_payment: true },
    });
    const [inv] = (await orb.invoices.list({ external_customer_id: 'void-co', status: ['issued'] })).data;
    const voided = await orb.invoices.void(inv!.id);
    expect([voided.status, voided.voided_at !== null]).toEqual(['void', true]);
    expect((await orb.invoices.list({ customer_id: customer.id, status: ['issued'] })).data).toHaveLength(0);
    const err = await orb.customers.credits.ledger.createEntry(customer.id, {
      entry_type: 'increment', amount: 5, currency: 'credits',
      invoice_settings: { auto_collection: false, net_terms: 0 },
    } as never).catch((e: { status: number; error: { errors: { field: string }[] } }) => e);
    expect((err as { status: number }).status).toBe(400);
    expect((err as { error: { errors: { field: string }[] } }).error.errors.map((x) => x.field)).toContain('per_unit_cost_basis');
  });

  it('top-ups: create, replace, list and delete, also by external id; bad fields are named', async () => {
    const customer = await orb.customers.create({ name: 'Top Co', email: 'top@example.com', external_customer_id: 'top-co' });
    const settings = { auto_collection: true, net_terms: 0, memo: 'Top-up', require_successful_payment: false };
    const t1 = await orb.customers.credits.topUps.create(customer.id, { currency: 'credits', threshold: '100', amount: '500', per_unit_cost_basis: '0.01', invoice_settings: settings, expires_after: 30, expires_after_unit: 'day' });
    expect(t1).toMatchObject({ currency: 'credits', threshold: '100', amount: '500', per_unit_cost_basis: '0.01', invoice_settings: settings, expires_after: 30, expires_after_unit: 'day' });
    const t2 = await orb.customers.credits.topUps.createByExternalID('top-co', { currency: 'credits', threshold: '50', amount: '200', per_unit_cost_basis: '0.01', invoice_settings: settings });
    const list = await orb.customers.credits.topUps.list(customer.id);
    expect(list.data.map((t) => [t.id, t.threshold])).toEqual([[t2.id, '50']]);
    await orb.customers.credits.topUps.deleteByExternalID(t2.id, { external_customer_id: 'top-co' });
    expect((await orb.customers.credits.topUps.listByExternalID('top-co')).data).toHaveLength(0);
    await expect(orb.customers.credits.topUps.delete(t1.id, { customer_id: customer.id })).rejects.toMatchObject({ status: 404 });
    const bad = await orb.customers.credits.topUps.create(customer.id, { currency: 'credits', threshold: 'lots', amount: '-1', per_unit_cost_basis: '0', invoice_settings: { net_terms: 0 } as never })
      .catch((e: { status: number; error: { errors: { field: string }[] } }) => e);
    expect((bad as { status: number }).status).toBe(400);
    expect((bad as { error: { errors: { field: string }[] } }).error.errors.map((x) => x.field)).toEqual(['threshold', 'amount', 'invoice_settings.auto_collection']);
  });

  it('scheduled purchases: create, list, delete; bad fields are named', async () => {
    const call = (method: string, path: string, body?: unknown) => fetch(`${base}/v1${path}`, {
      method, headers: { authorization: `Bearer ${orb.apiKey}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    await orb.customers.create({ name: 'Sched Co', email: 'sched@example.com', external_customer_id: 'sched-co' });
    const created = await call('POST', '/customers/external_customer_id/sched-co/credits/scheduled_purchases', {
      currency: 'credits', amount: '12000', per_unit_cost_basis: '0.009', every_months: 12, start_date: '2030-01-01T00:00:00Z', invoice_settings: { auto_collection: false, net_terms: 30 },
    });
    expect(created.status).toBe(201);
    const sp = (await created.json()) as { id: string; every_months: number; next_run_at: string; amount: string };
    expect([sp.every_months, sp.next_run_at, sp.amount]).toEqual([12, '2030-01-01T00:00:00.000Z', '12000']);
    const list = (await (await call('GET', '/customers/external_customer_id/sched-co/credits/scheduled_purchases')).json()) as { data: { id: string }[] };
    expect(list.data.map((x) => x.id)).toEqual([sp.id]);
    expect((await call('DELETE', `/customers/external_customer_id/sched-co/credits/scheduled_purchases/${sp.id}`)).status).toBe(204);
    const bad = await call('POST', '/customers/external_customer_id/sched-co/credits/scheduled_purchases', { currency: 'credits', amount: '0', per_unit_cost_basis: '1', every_months: 2 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toEqual(['amount', 'every_months', 'invoice_settings']);
  });

  it('upcoming invoice, period settlement into a draft, issue', async () => {
    const customer = await orb.customers.create({ name: 'Sub Co', email: 'sub@example.com', external_customer_id: 'sub-co' });
    await pool.query('UPDATE customers SET auto_issuance = false, net_terms = 7 WHERE id = $1', [customer.id]);
    const item = await orb.items.create({ name: 'API' });
    const metric = await orb.metrics.create({ name: 'calls', item_id: item.id, sql: "SELECT count(*) FROM events WHERE event_name = 'call'", description: null, metadata: {} });
    const plan = await orb.plans.create({
      name: 'Pro', currency: 'credits',
      prices: [
        { price: { name: 'call', item_id: item.id, billable_metric_id: metric.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '1' } } },
        { price: { name: 'Platform fee', item_id: item.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '49' }, currency: 'USD' } },
      ],
    });
    const start = new Date(Date.now() - 40 * DAY);
    const sub = await orb.subscriptions.create({ customer_id: customer.id, plan_id: plan.id, start_date: start.toISOString() });

    const upcoming = await orb.invoices.fetchUpcoming({ subscription_id: sub.id });
    expect([upcoming.total, upcoming.status, upcoming.subscription?.id]).toEqual(['49.00', 'draft', sub.id]);
    expect(upcoming.line_items.map((l) => [l.name, l.amount])).toEqual([['Platform fee', '49.00']]);
    await expect(orb.invoices.fetchUpcoming({ subscription_id: 'nope' })).rejects.toMatchObject({ status: 404 });

    const tick = await billing.tick();
    expect(tick.settled).toBeGreaterThanOrEqual(1);
    const drafts = await orb.invoices.list({ subscription_id: sub.id, status: ['draft'] });
    expect(drafts.data).toHaveLength(1);
    const draft = drafts.data[0]!;
    expect([draft.total, draft.due_date, draft.will_auto_issue]).toEqual(['49.00', null, false]);
    const issued = await orb.invoices.issue(draft.id);
    expect(issued.status).toBe('issued');
    expect(Date.parse(issued.due_date!) - Date.parse(issued.issued_at!)).toBe(7 * DAY);
    expect((await orb.invoices.list({ customer_id: customer.id, is_recurring: true, 'invoice_date[lt]': new Date().toISOString() })).data.map((i) => i.id)).toEqual([draft.id]);
    expect((await orb.invoices.list({ customer_id: customer.id, is_recurring: false })).data).toHaveLength(0);
    expect((await orb.invoices.list({ customer_id: customer.id, 'invoice_date[gt]': new Date().toISOString() })).data).toHaveLength(0);
    await expect(orb.invoices.list({ 'due_date[lt]': 'tomorrow' })).rejects.toMatchObject({ status: 400 });
    // Settling again changes nothing.
    await billing.tick();
    expect((await orb.invoices.list({ subscription_id: sub.id })).data).toHaveLength(1);
  });

  it('auto-collection through Stripe, and the signed webhook route', async () => {
    const customer = await orb.customers.create({ name: 'Card Co', email: 'card@example.com', external_customer_id: 'card-co' });
    const sc = await billing.stripe!.customers.create({ email: 'card@example.com', payment_method: 'pm_card_chargeCustomerFail', invoice_settings: { default_payment_method: 'pm_card_chargeCustomerFail' } }, { idempotencyKey: 'card-co' });
    await pool.query("UPDATE customers SET payment_provider = 'stripe', payment_provider_id = $2 WHERE id = $1", [customer.id, sc.id]);
    await orb.customers.credits.ledger.createEntry(customer.id, {
      entry_type: 'increment', amount: 300, currency: 'credits', per_unit_cost_basis: '0.1',
      invoice_settings: { auto_collection: true, net_terms: 0, require_successful_payment: true },
    });
    await billing.tick();
    const [inv] = (await orb.invoices.list({ customer_id: customer.id })).data;
    expect([inv!.status, inv!.payment_failed_at !== null, inv!.payment_attempts.map((a) => a.succeeded)]).toEqual(['issued', true, [false]]);
    const stripeInvoice = [...standin.invoices.values()].find((i) => i.metadata.drawdown_invoice_id === inv!.id)!;

    const payload = JSON.stringify({ id: 'evt_api_1', object: 'event', type: 'invoice.paid', data: { object: { id: stripeInvoice.id, object: 'invoice', metadata: stripeInvoice.metadata } } });
    const post = (sig: string) => fetch(`${base}/v1/payments/stripe/webhook`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': sig }, body: payload });
    expect((await post('t=1,v1=bad')).status).toBe(401);
    const ok = await post(billing.stripe!.webhooks.generateTestHeaderString({ payload, secret: SECRET }));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ received: true, applied: true, type: 'invoice.paid' });
    expect((await orb.invoices.fetch(inv!.id)).status).toBe('paid');
    expect((await orb.customers.credits.list(customer.id)).data.map((b) => b.balance)).toEqual([300]);
  });
});
