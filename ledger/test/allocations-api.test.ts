// Recurring credit allocations set up through the catalog API, end to end: a plan with two
// allocation_price entries created with the orb-billing SDK, subscriptions through the SDK (one
// with a negotiated allocation in place of the plan's), then the billing scheduler under a
// controlled clock (the scenario harness: the database's now() is the scenario's time). What the
// customer sees is read back through the SDK: credit blocks (amount, effective and expiry
// dates, cost basis) and the ledger's increments. The customer is in New York: allocation
// periods start at New York midnight (05:00Z in winter, 04:00Z after the March DST change).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Orb from 'orb-billing';
import { createApiKey, createKeyVerifier } from '@drawdown/auth';
import { startHttpServer, type HttpServer } from '@drawdown/http';
import { silentLogger } from '@drawdown/log';
import { startBilling, type Billing, type UsageSource } from '../src/index';
import { ledgerRoutes } from '../src/http/routes';
import { expireDueBlocks } from '../src/credits/expiry';
import { openScenario, debit, type Scenario } from './scenarios/harness';

describe('credit allocations created through the catalog API', () => {
  let s: Scenario;
  let billing: Billing;
  let server: HttpServer;
  let orb: Orb;

  beforeAll(async () => {
    s = await openScenario();
    // These plans have no fiat or non-decomposable usage: settlement must not ask ClickHouse.
    const usage: UsageSource = {
      sums: () => Promise.reject(new Error('no usage expected')),
      aggregate: () => Promise.reject(new Error('no usage expected')),
      grouped: () => Promise.reject(new Error('no usage expected')),
    };
    billing = startBilling({ pool: s.pool, config: { ...s.env.config, ingestGraceMs: 12 * 3_600_000 }, usage, log: silentLogger, timer: false });
    const routes = ledgerRoutes({ pool: s.pool, catalogChanged: () => {}, billing: { usage } });
    const key = await createApiKey(s.pool, 'admin', ['admin']);
    const verifier = createKeyVerifier(s.pool);
    server = await startHttpServer({ host: '127.0.0.1', port: 0, routes, authenticate: (h) => verifier.authenticate(h), log: silentLogger, ready: () => true });
    orb = new Orb({ apiKey: key.key, baseURL: `http://127.0.0.1:${server.port}/v1`, maxRetries: 0 });
  });

  afterAll(async () => {
    await server?.close();
    await billing?.stop();
    await s?.close();
  });

  it('grants each allocation at its period start, expiring or rolling over as the plan says', async () => {
    await s.setClock('2026-01-10T00:00:00Z');
    const item = await orb.items.create({ name: 'API requests' });
    const calls = await orb.metrics.create({ name: 'API calls', item_id: item.id, description: null, sql: "SELECT count(*) FROM events WHERE event_name = 'api_call'" });
    const plan = await orb.plans.create({
      name: 'Credits plan', currency: 'credits',
      prices: [
        { price: { name: 'API call', item_id: item.id, billable_metric_id: calls.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '1' } } },
        // 100 credits a month; what is unused rolls over into the next month.
        { allocation_price: { amount: '100', cadence: 'monthly', currency: 'credits', expires_at_end_of_cadence: false } },
        // 300 credits a quarter, bought at 0.005 each, expiring at the end of the quarter.
        { allocation_price: { amount: '300', cadence: 'quarterly', currency: 'credits', expires_at_end_of_cadence: true, per_unit_cost_basis: '0.005' } },
      ],
    } as Orb.PlanCreateParams);
    const [callPrice, monthlyPrice] = plan.prices as unknown as { id: string }[];
    const alice = await orb.customers.create({ name: 'Alice', email: 'alice@example.com', external_customer_id: 'alice', timezone: 'America/New_York' });
    const bob = await orb.customers.create({ name: 'Bob', email: 'bob@example.com', external_customer_id: 'bob', timezone: 'America/New_York' });
    // A bare start date is midnight in the customer's time zone: 2026-01-15T05:00Z.
    const subA = await orb.subscriptions.create({ customer_id: alice.id, plan_id: plan.id, start_date: '2026-01-15' } as Orb.SubscriptionCreateParams);
    expect(subA.start_date).toBe('2026-01-15T05:00:00.000Z');
    // Bob negotiated 250 a month that expires with the month, in place of the plan's 100.
    await orb.subscriptions.create({
      customer_id: bob.id, plan_id: plan.id, start_date: '2026-01-15',
      replace_prices: [{ replaces_price_id: monthlyPrice!.id, allocation_price: { amount: '250', cadence: 'monthly', currency: 'credits', expires_at_end_of_cadence: true } }],
    } as unknown as Orb.SubscriptionCreateParams);

    const blocks = async (customerId: string) => {
      const r = await orb.customers.credits.list(customerId, { currency: 'credits' });
      return r.data.map((b) => [b.maximum_initial_balance, b.balance, b.effective_date, b.expiry_date, b.per_unit_cost_basis]).sort((x, y) => String(x[2]).localeCompare(String(y[2])) || Number(x[0]) - Number(y[0]));
    };
    const balance = async (customerId: string) => (await blocks(customerId)).reduce((t, b) => t + Number(b[1]), 0);
    const pass = async (iso: string) => {
      await s.setClock(iso);
      await expireDueBlocks(s.pool, 100);
      await billing.tick();
    };

    // Before the start: nothing.
    await pass('2026-01-15T04:59:59Z');
    expect(await blocks(alice.id)).toEqual([]);

    // Jan 15, New York midnight: the month's and the quarter's allocations.
    await pass('2026-01-15T05:00:00Z');
    await pass('2026-01-15T06:00:00Z'); // a second pass grants nothing more
    expect(await blocks(alice.id)).toEqual([
      [100, 100, '2026-01-15T05:00:00.000Z', '2026-03-15T04:00:00.000Z', '0'], // rolls over once: expires with February's period
      [300, 300, '2026-01-15T05:00:00.000Z', '2026-04-15T04:00:00.000Z', '0.005'],
    ]);
    expect(await blocks(bob.id)).toEqual([
      [250, 250, '2026-01-15T05:00:00.000Z', '2026-02-15T05:00:00.000Z', '0'],
      [300, 300, '2026-01-15T05:00:00.000Z', '2026-04-15T04:00:00.000Z', '0.005'],
    ]);
    await s.setClock('2026-02-01T00:00:00Z');
    await debit(s.pool, alice.id, callPrice!.id, '2026-02-01', '60'); // from the soonest-expiring block: January's 100

    // Feb 15: February's 100; January's last 40 roll over.
    await pass('2026-02-15T04:59:59Z');
    expect(await balance(alice.id)).toBe(340);
    await pass('2026-02-15T05:00:00Z');
    expect(await blocks(alice.id)).toEqual([
      [100, 40, '2026-01-15T05:00:00.000Z', '2026-03-15T04:00:00.000Z', '0'],
      [300, 300, '2026-01-15T05:00:00.000Z', '2026-04-15T04:00:00.000Z', '0.005'],
      [100, 100, '2026-02-15T05:00:00.000Z', '2026-04-15T04:00:00.000Z', '0'],
    ]);
    // Bob's January 250 expired with January.
    expect(await blocks(bob.id)).toEqual([
      [300, 300, '2026-01-15T05:00:00.000Z', '2026-04-15T04:00:00.000Z', '0.005'],
      [250, 250, '2026-02-15T05:00:00.000Z', '2026-03-15T04:00:00.000Z', '0'],
    ]);

    // Mar 15 (after DST, 04:00Z): January's rolled-over 40 expire; March's 100 arrives.
    await pass('2026-03-15T04:00:00Z');
    expect(await blocks(alice.id)).toEqual([
      [300, 300, '2026-01-15T05:00:00.000Z', '2026-04-15T04:00:00.000Z', '0.005'],
      [100, 100, '2026-02-15T05:00:00.000Z', '2026-04-15T04:00:00.000Z', '0'],
      [100, 100, '2026-03-15T04:00:00.000Z', '2026-05-15T04:00:00.000Z', '0'],
    ]);

    // Apr 15: the quarter's 300 and February's 100 expire; April's 100 and the next quarter's 300 arrive.
    await pass('2026-04-15T04:00:00Z');
    expect(await blocks(alice.id)).toEqual([
      [100, 100, '2026-03-15T04:00:00.000Z', '2026-05-15T04:00:00.000Z', '0'],
      [100, 100, '2026-04-15T04:00:00.000Z', '2026-06-15T04:00:00.000Z', '0'],
      [300, 300, '2026-04-15T04:00:00.000Z', '2026-07-15T04:00:00.000Z', '0.005'],
    ]);

    // The ledger through the SDK: each grant an increment of a block that starts at its period start, each expiry at its block's expiry.
    const all = await orb.customers.credits.list(alice.id, { currency: 'credits', include_all_blocks: true });
    const effective = new Map(all.data.map((b) => [b.id, b.effective_date]));
    const entries = [];
    for await (const e of orb.customers.credits.ledger.list(alice.id, { currency: 'credits' })) entries.push(e);
    const seen = entries.filter((e) => e.entry_type === 'increment' || e.entry_type === 'credit_block_expiry')
      .map((e) => [e.entry_type, e.amount, e.entry_type === 'increment' ? effective.get(e.credit_block.id) : e.credit_block.expiry_date])
      .sort((x, y) => String(x[2]).localeCompare(String(y[2])) || String(x[0]).localeCompare(String(y[0])) || Number(x[1]) - Number(y[1]));
    expect(seen).toEqual([
      ['increment', 100, '2026-01-15T05:00:00.000Z'],
      ['increment', 300, '2026-01-15T05:00:00.000Z'],
      ['increment', 100, '2026-02-15T05:00:00.000Z'],
      ['credit_block_expiry', -40, '2026-03-15T04:00:00.000Z'],
      ['increment', 100, '2026-03-15T04:00:00.000Z'],
      ['credit_block_expiry', -300, '2026-04-15T04:00:00.000Z'],
      ['credit_block_expiry', -100, '2026-04-15T04:00:00.000Z'],
      ['increment', 100, '2026-04-15T04:00:00.000Z'],
      ['increment', 300, '2026-04-15T04:00:00.000Z'],
    ]);
  });

  it('settlement bills a catalog plan\'s fixed fees at their quantity and cadence, allocations at their cost basis, and only the subscription\'s own prices', async () => {
    await s.setClock('2026-01-01T00:00:00Z');
    const item = await orb.items.create({ name: 'Platform' });
    const plan = await orb.plans.create({
      name: 'Seats plan', currency: 'credits',
      prices: [
        { price: { name: 'Seats', item_id: item.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '10' }, fixed_price_quantity: 3, currency: 'USD' } },
        { price: { name: 'Support', item_id: item.id, cadence: 'quarterly', model_type: 'unit', unit_config: { unit_amount: '90' }, currency: 'USD' } },
        { allocation_price: { amount: '300', cadence: 'quarterly', currency: 'credits', expires_at_end_of_cadence: true, per_unit_cost_basis: '0.005' } },
        { allocation_price: { amount: '100', cadence: 'monthly', currency: 'credits', expires_at_end_of_cadence: true } }, // free: no line
      ],
    } as Orb.PlanCreateParams);
    const [seats] = plan.prices as unknown as { id: string }[];
    const carol = await orb.customers.create({ name: 'Carol', email: 'carol@example.com', external_customer_id: 'carol' });
    const dave = await orb.customers.create({ name: 'Dave', email: 'dave@example.com', external_customer_id: 'dave' });
    const subC = await orb.subscriptions.create({ customer_id: carol.id, plan_id: plan.id, start_date: '2026-01-01' } as Orb.SubscriptionCreateParams);
    // Dave negotiated his seats at 1000: his price must not reach Carol's invoice, nor the plan's later versions his.
    await orb.subscriptions.create({ customer_id: dave.id, plan_id: plan.id, start_date: '2026-01-01', price_overrides: [{ id: seats!.id, model_type: 'unit', unit_config: { unit_amount: '1000' } }] } as unknown as Orb.SubscriptionCreateParams);

    // Seats go up to 12 from Feb 15: February keeps the version in force at its start, March has the new one.
    await orb.post(`/plans/${plan.id}/prices/${seats!.id}/versions`, { body: { model_type: 'unit', unit_config: { unit_amount: '12' }, effective_from: '2026-02-15T00:00:00Z' } });

    const lines = (inv: { line_items: { name: string; quantity: number; amount: string }[]; total: string }) => [...inv.line_items.map((l) => [l.name, l.quantity, l.amount]), ['total', inv.total]];
    const invoicesOf = async (customerId: string) => {
      const out = [];
      for await (const inv of orb.invoices.list({ customer_id: customerId })) out.push(inv);
      return out.sort((a, b) => a.invoice_date.localeCompare(b.invoice_date));
    };
    await s.setClock('2026-01-20T00:00:00Z');
    const upcomingJan = await orb.invoices.fetchUpcoming({ subscription_id: subC.id });
    for (const at of ['2026-02-01T12:00:00Z', '2026-03-01T12:00:00Z', '2026-04-01T12:00:00Z']) {
      await s.setClock(at);
      await billing.tick();
    }
    const carolInvoices = (await invoicesOf(carol.id)).filter((i) => (i as unknown as { invoice_kind: string }).invoice_kind === 'settlement');
    expect(carolInvoices.map((i) => [i.invoice_date, ...lines(i)])).toEqual([
      ['2026-02-01T00:00:00.000Z', ['Seats', 3, '30.00'], ['Support', 1, '90.00'], ['300 credits allocation', 300, '1.50'], ['total', '121.50']],
      ['2026-03-01T00:00:00.000Z', ['Seats', 3, '30.00'], ['total', '30.00']],
      ['2026-04-01T00:00:00.000Z', ['Seats', 3, '36.00'], ['total', '36.00']],
    ]);
    expect(lines(upcomingJan)).toEqual(lines(carolInvoices[0]!));
    await s.setClock('2026-04-10T00:00:00Z');
    expect(lines(await orb.invoices.fetchUpcoming({ subscription_id: subC.id }))).toEqual([['Seats', 3, '36.00'], ['Support', 1, '90.00'], ['300 credits allocation', 300, '1.50'], ['total', '127.50']]);
    const daveJan = (await invoicesOf(dave.id)).filter((i) => (i as unknown as { invoice_kind: string }).invoice_kind === 'settlement')[0]!;
    expect(lines(daveJan)).toEqual([['Seats', 3, '3000.00'], ['Support', 1, '90.00'], ['300 credits allocation', 300, '1.50'], ['total', '3091.50']]);
  });
});
