// The brief's onboarding, end to end against a started server: metrics, pricing units, a
// credit-enabled plan, a customer with every billing setting and a subscription, through the
// official orb-billing SDK where Orb has the call and plain HTTP where it does not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Orb from 'orb-billing';
import { testEnv, api, type TestEnv } from '@drawdown/testkit';
import { createLogger } from '@drawdown/log';
import { loadCatalog } from '@drawdown/catalog';
import { names } from '@drawdown/nats';
import { startApp, type App } from '../src/index';

describe('onboarding through the orb-billing SDK', () => {
  let env: TestEnv;
  let app: App;
  let orb: Orb;
  let call: ReturnType<typeof api>;

  beforeAll(async () => {
    env = testEnv();
    app = await startApp(env.config, createLogger({ test: 'onboarding' }, { level: env.config.logLevel as 'error' }));
    // The SDK appends paths such as /customers to the base URL: it must carry /v1.
    orb = new Orb({ apiKey: app.adminKey, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
    call = api(app.baseUrl, app.adminKey);
  });

  afterAll(async () => {
    await app?.stop();
    await env?.cleanup();
  });

  it('configures the catalog, onboards a customer, subscribes it and meters usage', async () => {
    // Catalog changes are announced on NATS after commit.
    const announcements = app.nc.subscribe(names(env.config.namespace).catalogSubject);
    let announced = 0;
    void (async () => {
      for await (const _ of announcements) announced++;
    })();
    const versionBefore = (await loadCatalog(app.pool)).version;

    // 1. Items and billable metrics.
    const apiItem = await orb.items.create({ name: 'API requests' });
    const computeItem = await orb.items.create({ name: 'Compute', metadata: { team: 'infra' } });
    const storageItem = await orb.items.create({ name: 'Storage' });
    const platformItem = await orb.items.create({ name: 'Platform fee' });
    expect((await orb.items.update(computeItem.id, { name: 'Compute time', metadata: { team: null, tier: 'gpu' } })).metadata).toEqual({ tier: 'gpu' });
    expect(await orb.items.fetch(computeItem.id)).toMatchObject({ id: computeItem.id, name: 'Compute time', external_connections: [] });
    const items = [];
    for await (const it of orb.items.list({ limit: 2 })) items.push(it.id);
    expect(items.sort()).toEqual(expect.arrayContaining([apiItem.id, computeItem.id, storageItem.id, platformItem.id, 'credit_allocation'].sort()));
    expect(items).toHaveLength(5);

    const calls = await orb.metrics.create({ name: 'API calls', item_id: apiItem.id, description: 'requests', sql: "SELECT count(*) FROM events WHERE event_name = 'api_call'" });
    const minutes = await orb.metrics.create({ name: 'GPU minutes', item_id: computeItem.id, description: null, sql: "SELECT sum(minutes) FROM events WHERE event_name = 'job_done' AND properties.gpu IN ('a100', 'h100')" });
    const gb = await orb.metrics.create({ name: 'Storage GB', item_id: storageItem.id, description: null, sql: "SELECT max(gb) FROM events WHERE event_name = 'storage' GROUP BY region", metadata: { unit: 'GB' } });
    expect(calls).toMatchObject({ name: 'API calls', status: 'active', item: { id: apiItem.id, name: 'API requests' }, metadata: {} });
    expect((await orb.metrics.update(gb.id, { metadata: { unit: 'GB-day' } })).metadata).toEqual({ unit: 'GB-day' });
    expect((await orb.metrics.fetch(minutes.id)).sql).toContain('sum(minutes)');
    const metricIds = [];
    for await (const m of orb.metrics.list()) metricIds.push(m.id);
    expect(metricIds.sort()).toEqual([calls.id, minutes.id, gb.id].sort());

    // 2. Pricing units (not in Orb: plain HTTP).
    const cc = await call('POST', '/v1/pricing_units', { name: 'compute_credits', display_name: 'Compute Credits', currency: 'USD', conversion_rate: '0.01' });
    expect(cc.status).toBe(201);
    expect(cc.body).toMatchObject({ name: 'compute_credits', display_name: 'Compute Credits', currency: 'USD', conversion_rate: '0.01' });
    expect((await call('POST', '/v1/pricing_units', { name: 'api_credits', display_name: 'API Credits', currency: 'EUR', conversion_rate: '0.000125' })).status).toBe(201);
    expect((await call('GET', '/v1/pricing_units/api_credits')).body).toMatchObject({ conversion_rate: '0.000125', currency: 'EUR' });
    const units = await call<{ data: { name: string }[] }>('GET', '/v1/pricing_units?limit=2');
    expect(units.body.data.map((u) => u.name)).toEqual(['api_credits', 'compute_credits']);
    const upd = await call('PUT', '/v1/pricing_units/compute_credits', { conversion_rate: '0.0125' });
    expect(upd.body).toMatchObject({ conversion_rate: '0.0125' });

    // 3. A credit-enabled plan: usage priced in compute credits, a fiat platform fee, a
    // quarterly allocation that expires at the end of each quarter, an overage rate.
    const plan = await orb.plans.create({
      name: 'Enterprise credits', currency: 'compute_credits', external_plan_id: 'enterprise-2026', net_terms: 30,
      description: 'Prepaid compute', metadata: { segment: 'enterprise' },
      per_credit_overage_amount: '0.015',
      prices: [
        { price: { name: 'API call', item_id: apiItem.id, billable_metric_id: calls.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '0.25' } } },
        { price: { name: 'GPU minute', item_id: computeItem.id, billable_metric_id: minutes.id, cadence: 'monthly', model_type: 'tiered',
          tiered_config: { tiers: [{ first_unit: 0, last_unit: 1000, unit_amount: '2' }, { first_unit: 1000, last_unit: null, unit_amount: '1.5' }] } } },
        { price: { name: 'Storage', item_id: storageItem.id, billable_metric_id: gb.id, cadence: 'monthly', model_type: 'package', package_config: { package_amount: '5', package_size: 100 } } },
        { price: { name: 'GPU by region', item_id: computeItem.id, billable_metric_id: minutes.id, cadence: 'monthly', model_type: 'matrix', currency: 'api_credits',
          matrix_config: { dimensions: ['region', 'gpu'], default_unit_amount: '1', matrix_values: [{ dimension_values: ['eu', 'h100'], unit_amount: '3.000' }] } } },
        { price: { name: 'Platform', item_id: platformItem.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '500.00' }, currency: 'USD' } },
        { allocation_price: { amount: '10000', cadence: 'quarterly', currency: 'compute_credits', expires_at_end_of_cadence: true } },
      ],
    } as Orb.PlanCreateParams);
    expect(plan).toMatchObject({
      currency: 'compute_credits', invoicing_currency: 'USD', external_plan_id: 'enterprise-2026', net_terms: 30, status: 'active', version: 1,
      description: 'Prepaid compute', metadata: { segment: 'enterprise' }, adjustments: [], plan_phases: null,
      trial_config: { trial_period: null, trial_period_unit: 'days' },
    });
    expect(plan.prices).toHaveLength(6);
    const [unitP, tieredP, packageP, matrixP, feeP, allocP] = plan.prices as unknown as Record<string, unknown>[];
    expect(unitP).toMatchObject({ model_type: 'unit', price_type: 'usage_price', currency: 'compute_credits', unit_config: { unit_amount: '0.25' }, billable_metric: { id: calls.id }, item: { id: apiItem.id, name: 'API requests' }, billing_cycle_configuration: { duration: 1, duration_unit: 'month' } });
    expect(tieredP).toMatchObject({ tiered_config: { tiers: [{ first_unit: 0, last_unit: 1000, unit_amount: '2' }, { first_unit: 1000, last_unit: null, unit_amount: '1.5' }] } });
    expect(packageP).toMatchObject({ package_config: { package_amount: '5', package_size: 100 } });
    expect(matrixP).toMatchObject({ currency: 'api_credits', matrix_config: { dimensions: ['region', 'gpu'], default_unit_amount: '1', matrix_values: [{ dimension_values: ['eu', 'h100'], unit_amount: '3' }] } });
    expect(feeP).toMatchObject({ price_type: 'fixed_price', currency: 'USD', fixed_price_quantity: 1, unit_config: { unit_amount: '500' }, billable_metric: null, billing_mode: 'in_advance' });
    expect(allocP).toMatchObject({
      price_type: 'fixed_price', currency: 'USD', cadence: 'quarterly', fixed_price_quantity: 10000, unit_config: { unit_amount: '0' },
      credit_allocation: { allows_rollover: false, currency: 'compute_credits', custom_expiration: null }, item: { id: 'credit_allocation' },
    });
    expect(await orb.plans.fetch(plan.id)).toEqual(plan);
    expect((await orb.plans.externalPlanID.fetch('enterprise-2026')).id).toBe(plan.id);
    expect((await orb.plans.update(plan.id, { metadata: { segment: null, tier: 'gold' } })).metadata).toEqual({ tier: 'gold' });
    const plans = [];
    for await (const pl of orb.plans.list({ status: 'active' })) plans.push(pl.id);
    expect(plans).toEqual([plan.id]);

    // 4. A customer with every billing setting; a parent for a shared credit pool.
    const parent = await orb.customers.create({ name: 'Globex Holdings', email: 'ap@globex.test', external_customer_id: 'globex' });
    const params = {
      name: 'Globex EU', email: 'billing@globex-eu.test', external_customer_id: 'crm-00042',
      additional_emails: ['finance@globex-eu.test', 'cfo@globex-eu.test'],
      billing_address: { line1: '1 Rue de la Paix', city: 'Paris', postal_code: '75002', country: 'FR' },
      shipping_address: { line1: '2 Quai', city: 'Lyon', country: 'FR' },
      tax_id: { country: 'FR', type: 'eu_vat', value: 'FRAB123456789' },
      tax_configuration: { tax_provider: 'avalara', tax_exempt: true, tax_exemption_code: 'E' },
      timezone: 'America/New_York', currency: 'USD', net_terms: 60,
      auto_collection: false, auto_issuance: false, email_delivery: true,
      payment_provider: 'stripe_charge', payment_provider_id: 'cus_Globex42',
      metadata: { segment: 'enterprise', region: 'eu' },
      hierarchy: { parent_customer_id: parent.id },
    } as Orb.CustomerCreateParams;
    const customer = await orb.customers.create(params);
    expect(customer).toMatchObject({
      external_customer_id: 'crm-00042', additional_emails: ['finance@globex-eu.test', 'cfo@globex-eu.test'],
      billing_address: { line1: '1 Rue de la Paix', line2: null, city: 'Paris', state: null, postal_code: '75002', country: 'FR' },
      tax_id: { country: 'FR', type: 'eu_vat', value: 'FRAB123456789' }, exempt_from_automated_tax: true,
      timezone: 'America/New_York', currency: 'USD', auto_collection: false, auto_issuance: false,
      payment_provider: 'stripe_charge', payment_provider_id: 'cus_Globex42', metadata: { segment: 'enterprise', region: 'eu' },
      hierarchy: { parent: { id: parent.id, external_customer_id: 'globex' }, children: [] }, portal_url: null, balance: '0.00',
    });
    expect((customer as unknown as { net_terms: number }).net_terms).toBe(60);
    expect((await orb.customers.fetch(parent.id)).hierarchy.children).toEqual([{ id: customer.id, external_customer_id: 'crm-00042' }]);
    expect((await orb.customers.fetchByExternalID('crm-00042')).id).toBe(customer.id);
    const updated = await orb.customers.updateByExternalID('crm-00042', { auto_collection: true, metadata: { region: null, owner: 'ana' } });
    expect(updated).toMatchObject({ auto_collection: true, auto_issuance: false, metadata: { segment: 'enterprise', owner: 'ana' } });
    expect((await orb.customers.update(customer.id, { additional_emails: ['ap@globex-eu.test'] })).additional_emails).toEqual(['ap@globex-eu.test']);
    const customers = [];
    for await (const c of orb.customers.list({ limit: 1 })) customers.push(c.id);
    expect(customers).toEqual([customer.id, parent.id]);

    // 5. The subscription: from yesterday, with a negotiated credit ratio for API calls.
    const start = new Date(Date.now() - 86_400_000);
    const sub = await orb.subscriptions.create({
      external_customer_id: 'crm-00042', external_plan_id: 'enterprise-2026', start_date: start.toISOString(),
      replace_prices: [{ replaces_price_id: unitP!.id as string, price: { name: 'API call (negotiated)', item_id: apiItem.id, billable_metric_id: calls.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '0.2' } } }],
      metadata: { deal: 'Q1' },
    });
    expect(sub).toMatchObject({
      status: 'active', start_date: start.toISOString(), end_date: null, net_terms: 60, metadata: { deal: 'Q1' },
      customer: { id: customer.id }, plan: { id: plan.id }, trial_info: { end_date: null }, adjustment_intervals: [],
    });
    const intervalPrices = sub.price_intervals.map((pi) => pi.price as unknown as { id: string; name: string; unit_config?: { unit_amount: string } });
    expect(intervalPrices).toHaveLength(6);
    expect(intervalPrices.map((x) => x.id)).not.toContain(unitP!.id);
    const negotiated = intervalPrices.find((x) => x.name === 'API call (negotiated)')!;
    expect(negotiated.unit_config).toEqual({ unit_amount: '0.2' });
    // The period in the customer's zone: boundaries at New York midnight.
    const periodStart = new Date(sub.current_billing_period_start_date!);
    const periodEnd = new Date(sub.current_billing_period_end_date!);
    expect(periodStart.toISOString()).toBe(start.toISOString());
    expect(new Intl.DateTimeFormat('en-US', { timeZone: 'America/New_York', hour: 'numeric', minute: 'numeric', hourCycle: 'h23' }).format(periodEnd)).toBe('00:00');
    expect((await orb.subscriptions.fetch(sub.id)).id).toBe(sub.id);
    const listed = [];
    for await (const s of orb.subscriptions.list({ customer_id: [customer.id], status: 'active' })) listed.push(s.id);
    expect(listed).toEqual([sub.id]);
    const none = await orb.subscriptions.list({ external_customer_id: ['globex'] });
    expect(none.data).toEqual([]);

    // The rater's read model: overrides in place of plan prices, cadence, zone, units, overage.
    const snap = await loadCatalog(app.pool);
    expect(snap.version).toBeGreaterThan(versionBefore);
    const snapSub = snap.subscriptions[customer.id]![0]!;
    expect(snapSub).toMatchObject({ id: sub.id, billingCadence: 'monthly', timezone: 'America/New_York', planId: plan.id, overageRate: '0.015' });
    expect(snapSub.priceIds).toContain(negotiated.id);
    expect(snapSub.priceIds).not.toContain(unitP!.id);
    expect(snap.pricingUnits!.compute_credits).toEqual({ name: 'compute_credits', currency: 'USD', conversionRate: '0.0125' });
    expect(snap.prices[negotiated.id]).toMatchObject({ metricId: calls.id, currency: 'compute_credits', modelType: 'unit', config: { unit_config: { unit_amount: '0.2' } }, effectiveFromMs: null, effectiveToMs: null });
    expect(snap.prices[matrixP!.id as string]!.config).toEqual({ matrix_config: { dimensions: ['region', 'gpu'], default_unit_amount: '1', matrix_values: [{ dimension_values: ['eu', 'h100'], unit_amount: '3' }] } });
    const allocs = await app.pool.query('SELECT amount::text, currency, cadence, expires_at_end_of_cadence, per_unit_cost_basis::text FROM subscription_credit_allocations WHERE subscription_id = $1', [sub.id]);
    expect(allocs.rows).toEqual([{ amount: '10000.000000000000', currency: 'compute_credits', cadence: 'quarterly', expires_at_end_of_cadence: true, per_unit_cost_basis: '0.000000000000' }]);

    // 6. Usage: API calls are rated at the negotiated price and show in fetchUsage.
    const now = Date.now();
    const events = Array.from({ length: 7 }, (_, i) => ({ idempotency_key: `call-${i}`, external_customer_id: 'crm-00042', event_name: 'api_call', timestamp: new Date(now - 60_000 + i).toISOString(), properties: {} }));
    expect((await orb.events.ingest({ events })).validation_failed).toEqual([]);
    await app.waitIdle(60_000);
    const usage = await orb.subscriptions.fetchUsage(sub.id, { billable_metric_id: calls.id });
    expect(usage.data).toHaveLength(1);
    const series = (usage.data[0] as { billable_metric: { id: string; name: string }; usage: { quantity: number; timeframe_start: string }[] });
    expect(series.billable_metric).toEqual({ id: calls.id, name: 'API calls' });
    expect(series.usage.reduce((a, u) => a + u.quantity, 0)).toBe(7);
    expect(series.usage[0]!.timeframe_start).toBe(start.toISOString());
    const balance = await call<{ data: { pricing_unit: string; balance: number; overage: number }[] }>('GET', '/v1/customers/external_customer_id/crm-00042/credits/balance');
    // No credits granted: 7 x 0.2 is overage in compute credits.
    expect(balance.body.data).toEqual([expect.objectContaining({ pricing_unit: 'compute_credits', overage: 1.4 })]);

    // 7. A price change is a new version from a date; the old one closes then.
    const from = new Date(Date.now() + 3_600_000);
    const v2 = await call<{ version: number; prices: { id: string; name: string; effective_from: string | null; effective_to: string | null; tiered_config?: unknown }[] }>(
      'POST', `/v1/plans/${plan.id}/prices/${tieredP!.id as string}/versions`,
      { model_type: 'tiered', tiered_config: { tiers: [{ first_unit: 0, unit_amount: '1.75' }] }, effective_from: from.toISOString() },
    );
    expect(v2.status).toBe(201);
    expect(v2.body.version).toBe(2);
    const versions = v2.body.prices.filter((x) => x.name === 'GPU minute');
    expect(versions.map((x) => [x.effective_from, x.effective_to])).toEqual([[null, from.toISOString()], [from.toISOString(), null]]);
    const snap2 = await loadCatalog(app.pool);
    expect(snap2.prices[tieredP!.id as string]).toMatchObject({ effectiveFromMs: null, effectiveToMs: from.getTime() });
    expect(snap2.prices[versions[1]!.id]).toMatchObject({ effectiveFromMs: from.getTime(), effectiveToMs: null, config: { tiered_config: { tiers: [{ first_unit: 0, last_unit: null, unit_amount: '1.75' }] } } });
    expect(snap2.subscriptions[customer.id]![0]!.priceIds).toEqual(expect.arrayContaining([tieredP!.id, versions[1]!.id]));

    // 8. Cancel at the end of the term: the end is the current period's end.
    const cancelled = await orb.subscriptions.cancel(sub.id, { cancel_option: 'end_of_subscription_term' });
    expect(cancelled.end_date).toBe(sub.current_billing_period_end_date);
    expect(cancelled.status).toBe('active');
    const second = await orb.subscriptions.create({ customer_id: parent.id, plan_id: plan.id });
    const ended = await orb.subscriptions.cancel(second.id, { cancel_option: 'immediate' });
    expect(ended.status).toBe('ended');
    await expect(orb.subscriptions.cancel(second.id, { cancel_option: 'immediate' })).rejects.toMatchObject({ status: 409 });
    // The parent took the plan's invoicing currency; with no terms of its own, the plan's apply.
    expect((await orb.customers.fetch(parent.id)).currency).toBe('USD');
    expect(second.net_terms).toBe(30);

    // Orb's legacy price_overrides, and a negotiated allocation in place of the plan's.
    const third = await orb.subscriptions.create({
      customer_id: parent.id, plan_id: plan.id,
      price_overrides: [{ id: unitP!.id, model_type: 'unit', unit_config: { unit_amount: '0.1' } }],
      replace_prices: [{ replaces_price_id: allocP!.id as string, allocation_price: { amount: '25000', cadence: 'annual', currency: 'compute_credits', per_unit_cost_basis: '0.008' } }],
    });
    const thirdPrices = third.price_intervals.map((pi) => pi.price as unknown as Record<string, unknown>);
    expect(thirdPrices.find((x) => x.name === 'API call')).toMatchObject({ unit_config: { unit_amount: '0.1' }, replaces_price_id: unitP!.id, billable_metric: { id: calls.id } });
    expect(thirdPrices.map((x) => x.id)).not.toContain(allocP!.id);
    const thirdAllocs = await app.pool.query('SELECT amount::text, cadence, expires_at_end_of_cadence, per_unit_cost_basis::text FROM subscription_credit_allocations WHERE subscription_id = $1', [third.id]);
    expect(thirdAllocs.rows).toEqual([{ amount: '25000.000000000000', cadence: 'annual', expires_at_end_of_cadence: false, per_unit_cost_basis: '0.008000000000' }]);

    await new Promise((r) => setTimeout(r, 200));
    expect(announced).toBeGreaterThanOrEqual(20);
    announcements.unsubscribe();
  });
});
