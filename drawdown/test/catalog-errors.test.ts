// Bad input, resource by resource: every row states the exact status and the exact field
// errors (problem+json `errors`) the API answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv, api, type TestEnv } from '@drawdown/testkit';
import { createLogger } from '@drawdown/log';
import { startApp, type App } from '../src/index';

type Row = [name: string, method: string, path: string, body: unknown, status: number, errors: [field: string, message: string][]];

describe('bad input gets a clear error naming the field', () => {
  let env: TestEnv;
  let app: App;
  let call: ReturnType<typeof api>;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    // Small limits, so the rows below prove the settings reach the checks.
    env = testEnv({ DRAWDOWN_CUSTOMER_MAX_ADDITIONAL_EMAILS: '2', DRAWDOWN_CATALOG_MAX_PRICE_ENTRIES: '3', DRAWDOWN_CATALOG_MAX_PRICES_PER_PLAN: '2', DRAWDOWN_USAGE_MAX_BUCKETS: '10' });
    app = await startApp(env.config, createLogger({ test: 'catalog-errors' }, { level: env.config.logLevel as 'error' }));
    call = api(app.baseUrl, app.adminKey);
    const item = await call('POST', '/v1/items', { name: 'API' });
    ids.item = item.body.id as string;
    const metric = await call('POST', '/v1/metrics', { name: 'calls', item_id: ids.item, sql: "SELECT count(*) FROM events WHERE event_name = 'call'" });
    ids.metric = metric.body.id as string;
    const plan = await call('POST', '/v1/plans', {
      name: 'P', currency: 'credits', external_plan_id: 'p1',
      prices: [{ price: { name: 'call', item_id: ids.item, billable_metric_id: ids.metric, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '1' } } }],
    });
    expect(plan.status).toBe(201);
    ids.plan = plan.body.id as string;
    ids.price = (plan.body.prices as { id: string }[])[0]!.id;
    const customer = await call('POST', '/v1/customers', { name: 'C', email: 'c@example.com', external_customer_id: 'c1', timezone: 'Europe/Berlin' });
    ids.customer = customer.body.id as string;
    const eur = await call('POST', '/v1/customers', { name: 'E', email: 'e@example.com', external_customer_id: 'eur', currency: 'EUR' });
    ids.eur = eur.body.id as string;
    const sub = await call('POST', '/v1/subscriptions', { customer_id: ids.customer, plan_id: ids.plan });
    expect(sub.status).toBe(201);
    ids.sub = sub.body.id as string;
  });

  afterAll(async () => {
    await app?.stop();
    await env?.cleanup();
  });

  const unitPrice = (over: Record<string, unknown> = {}) => ({ name: 'p', item_id: '{item}', billable_metric_id: '{metric}', cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '1' }, ...over });
  const plan = (price: Record<string, unknown>, over: Record<string, unknown> = {}) => ({ name: 'P2', currency: 'credits', prices: [{ price }], ...over });
  // Ids are only known once the server runs: rows use {item}, {metric}, ... placeholders.
  const fill = (v: unknown): unknown => JSON.parse(JSON.stringify(v ?? null).replace(/\{(\w+)\}/g, (_, k: string) => ids[k] ?? `{${k}}`));

  const rows: Row[] = [
    // customers
    ['customer: empty', 'POST', '/v1/customers', {}, 400, [['name', 'is required: a non-empty string'], ['email', 'is required: an email address']]],
    ['customer: bad email', 'POST', '/v1/customers', { name: 'A', email: 'nope' }, 400, [['email', 'must be an email address']]],
    ['customer: time zone', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', timezone: 'Mars/Olympus' }, 400, [['timezone', '"Mars/Olympus" is not an IANA time zone such as America/New_York']]],
    ['customer: currency', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', currency: 'usd' }, 400, [['currency', 'must be an ISO 4217 currency code such as USD (the invoicing currency)']]],
    ['customer: net terms', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', net_terms: 400 }, 400, [['net_terms', 'must be an integer from 0 to 365']]],
    ['customer: payment provider', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', payment_provider: 'paypal' }, 400, [['payment_provider', 'must be one of quickbooks, bill.com, stripe_charge, stripe_invoice, netsuite, adyen']]],
    ['customer: invoicing emails', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', additional_emails: ['ok@b.co', 'x'] }, 400, [['additional_emails[1]', 'must be an email address']]],
    ['customer: too many invoicing emails', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', additional_emails: ['a@b.co', 'b@b.co', 'c@b.co'] }, 400, [['additional_emails', 'must hold at most 2 addresses']]],
    ['customer: address', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', billing_address: { country: 'France', zip: '1' } }, 400, [['billing_address.zip', 'is not an address field; use city, country, line1, line2, postal_code, state'], ['billing_address.country', 'must be an ISO 3166-1 alpha-2 code, e.g. US']]],
    ['customer: tax id', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', tax_id: { country: 'FR', type: 'vat', value: '' } }, 400, [['tax_id.type', 'must be a tax id type such as eu_vat or us_ein'], ['tax_id.value', 'must be a non-empty string']]],
    ['customer: tax exemption', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', tax_configuration: { tax_provider: 'irs' } }, 400, [['tax_configuration.tax_exempt', 'is required: true or false'], ['tax_configuration.tax_provider', 'must be one of avalara, taxjar, sphere, numeral, anrok, stripe']]],
    ['customer: auto-collection', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', auto_collection: 'yes' }, 400, [['auto_collection', 'must be true or false']]],
    ['customer: metadata', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', metadata: { tier: 1 } }, 400, [['metadata.tier', 'must be a string (or null to remove the key)']]],
    ['customer: parent', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', hierarchy: { parent_customer_id: 'nope' } }, 400, [['hierarchy.parent_customer_id', 'no customer with id "nope"']]],
    ['customer: taken external id', 'POST', '/v1/customers', { name: 'A', email: 'a@b.co', external_customer_id: 'c1' }, 409, [['external_customer_id', 'is taken']]],
    ['customer: update time zone', 'PUT', '/v1/customers/{customer}', { timezone: 'UTC' }, 400, [['timezone', 'cannot be changed after the customer is created (billing periods are anchored in it)']]],
    ['customer: update own parent', 'PUT', '/v1/customers/external_customer_id/c1', { hierarchy: { parent_customer_id: '{customer}' } }, 400, [['hierarchy.parent_customer_id', 'a customer cannot be its own parent']]],
    ['customer: update currency in use', 'PUT', '/v1/customers/{customer}', { currency: 'EUR' }, 400, [['currency', 'cannot change from USD: the customer has subscriptions invoiced in it']]],
    ['customer: unknown', 'PUT', '/v1/customers/nope', { name: 'x' }, 404, []],
    ['customer: page limit', 'GET', '/v1/customers?limit=0', undefined, 400, [['limit', 'must be an integer from 1 to 100']]],
    ['customer: cursor', 'GET', '/v1/customers?cursor=abc', undefined, 400, [['cursor', 'not a cursor this API returned']]],
    ['customer: created_at filter', 'GET', '/v1/customers?created_at[gt]=yesterday', undefined, 400, [['created_at[gt]', 'must be an ISO 8601 date or date-time, e.g. 2026-01-01T00:00:00Z']]],
    // items
    ['item: empty', 'POST', '/v1/items', {}, 400, [['name', 'is required: a non-empty string']]],
    ['item: connections', 'PUT', '/v1/items/{item}', { external_connections: [{ external_connection_name: 'sap' }] }, 400, [['external_connections[0].external_connection_name', 'must be one of stripe, quickbooks, bill.com, netsuite, taxjar, avalara, anrok, numeral, stripe_tax'], ['external_connections[0].external_entity_id', 'is required: a non-empty string']]],
    ['item: unknown', 'GET', '/v1/items/nope', undefined, 404, []],
    // metrics: the sql error points at the clause
    ['metric: empty', 'POST', '/v1/metrics', {}, 400, [['name', 'is required: a non-empty string'], ['item_id', 'is required: a non-empty string'], ['sql', "is required, e.g. SELECT count(*) FROM events WHERE event_name = 'api_call'"]]],
    ['metric: SELECT', 'POST', '/v1/metrics', { name: 'm', item_id: '{item}', sql: "SELECT avg(x) FROM events WHERE event_name = 'a'" }, 400, [['sql', 'SELECT clause "avg(x)" is not supported; use count(*), sum(property), max(property), count(DISTINCT property) or latest(property)']]],
    ['metric: FROM', 'POST', '/v1/metrics', { name: 'm', item_id: '{item}', sql: "SELECT count(*) FROM users WHERE event_name = 'a'" }, 400, [['sql', 'FROM users is not supported; metrics read FROM events']]],
    ['metric: WHERE OR', 'POST', '/v1/metrics', { name: 'm', item_id: '{item}', sql: "SELECT count(*) FROM events WHERE event_name = 'a' OR region = 'eu'" }, 400, [['sql', 'OR in WHERE condition "event_name = \'a\' OR region = \'eu\'" is not supported; use IN (...)']]],
    ['metric: WHERE no event', 'POST', '/v1/metrics', { name: 'm', item_id: '{item}', sql: "SELECT count(*) FROM events WHERE region = 'eu'" }, 400, [['sql', "WHERE must name the event: event_name = '...'"]]],
    ['metric: GROUP BY', 'POST', '/v1/metrics', { name: 'm', item_id: '{item}', sql: "SELECT count(*) FROM events WHERE event_name = 'a' GROUP BY a, b" }, 400, [['sql', 'GROUP BY "a, b" is not supported; group by one property']]],
    ['metric: unknown item', 'POST', '/v1/metrics', { name: 'm', item_id: 'nope', sql: "SELECT count(*) FROM events WHERE event_name = 'a'" }, 400, [['item_id', 'no such item']]],
    ['metric: update sql', 'PUT', '/v1/metrics/{metric}', { sql: "SELECT count(*) FROM events WHERE event_name = 'b'" }, 400, [['sql', 'cannot be changed: create a new metric (prices refer to this one)']]],
    // pricing units
    ['pricing unit: everything wrong', 'POST', '/v1/pricing_units', { name: 'Compute Credits', currency: 'usd', conversion_rate: '-1' }, 400, [
      ['name', 'must be lower case letters, digits and _ starting with a letter (e.g. compute_credits), so it never looks like a currency code'],
      ['display_name', 'is required: a non-empty string'],
      ['currency', 'is required: the ISO 4217 fiat currency it converts to, e.g. USD'],
      ['conversion_rate', 'must be greater than zero']]],
    ['pricing unit: inexact rate', 'POST', '/v1/pricing_units', { name: 'gpu', display_name: 'GPU', currency: 'USD', conversion_rate: '0.0000000000001' }, 400, [['conversion_rate', '0.0000000000001 has 13 decimal places; at most 12 are kept']]],
    ['pricing unit: not a number', 'POST', '/v1/pricing_units', { name: 'gpu', display_name: 'GPU', currency: 'USD', conversion_rate: 'cheap' }, 400, [['conversion_rate', '"cheap" is not a decimal number (expected e.g. "12.5" or "5e-7")']]],
    ['pricing unit: taken', 'POST', '/v1/pricing_units', { name: 'credits', display_name: 'Credits', currency: 'USD', conversion_rate: '1' }, 409, [['name', 'is taken']]],
    ['pricing unit: change currency', 'PUT', '/v1/pricing_units/credits', { currency: 'EUR' }, 400, [['currency', 'cannot be changed; create another pricing unit']]],
    ['pricing unit: unknown', 'GET', '/v1/pricing_units/gold', undefined, 404, []],
    // plans and prices
    ['plan: empty', 'POST', '/v1/plans', {}, 400, [['name', 'is required: a non-empty string'], ['currency', 'is required: a non-empty string'], ['prices', 'is required: an array of {price} or {allocation_price}']]],
    ['plan: unknown currency', 'POST', '/v1/plans', plan(unitPrice(), { currency: 'dollars' }), 400, [['currency', '"dollars" is neither a currency code (e.g. USD) nor a pricing unit; create it with POST /v1/pricing_units']]],
    ['plan: cadence and amount', 'POST', '/v1/plans', plan(unitPrice({ cadence: 'weekly', unit_config: { unit_amount: '1,5' } })), 400, [['prices[0].price.cadence', 'must be one of monthly, quarterly, annual, one_time'], ['prices[0].price.unit_config.unit_amount', '"1,5" is not a decimal number (expected e.g. "12.5" or "5e-7")']]],
    ['plan: negative amount', 'POST', '/v1/plans', plan(unitPrice({ unit_config: { unit_amount: '-0.5' } })), 400, [['prices[0].price.unit_config.unit_amount', 'must not be negative']]],
    ['plan: model', 'POST', '/v1/plans', plan(unitPrice({ model_type: 'bulk' })), 400, [['prices[0].price.model_type', '"bulk" is not supported: use unit, tiered, package, matrix']]],
    ['plan: missing config', 'POST', '/v1/plans', plan(unitPrice({ model_type: 'tiered' })), 400, [['prices[0].price.tiered_config', 'is required for model_type tiered']]],
    ['plan: tiers not contiguous', 'POST', '/v1/plans', plan(unitPrice({ model_type: 'tiered', tiered_config: { tiers: [{ first_unit: 0, last_unit: 100, unit_amount: '1' }, { first_unit: 50, unit_amount: '0.5' }] } })), 400, [['prices[0].price.tiered_config.tiers[1].first_unit', "must equal the previous tier's last_unit (100): tiers are contiguous"]]],
    ['plan: tiers start', 'POST', '/v1/plans', plan(unitPrice({ model_type: 'tiered', tiered_config: { tiers: [{ first_unit: 5, last_unit: 1, unit_amount: '1' }] } })), 400, [['prices[0].price.tiered_config.tiers[0].first_unit', 'the first tier must start at 0'], ['prices[0].price.tiered_config.tiers[0].last_unit', 'must be greater than first_unit']]],
    ['plan: open tier in the middle', 'POST', '/v1/plans', plan(unitPrice({ model_type: 'tiered', tiered_config: { tiers: [{ first_unit: 0, unit_amount: '1' }, { first_unit: 10, unit_amount: '1' }] } })), 400, [['prices[0].price.tiered_config.tiers[1].first_unit', 'only the last tier may be open-ended (last_unit null)']]],
    ['plan: too many tiers', 'POST', '/v1/plans', plan(unitPrice({ model_type: 'tiered', tiered_config: { tiers: [0, 1, 2, 3].map((i) => ({ first_unit: i, last_unit: i + 1, unit_amount: '1' })) } })), 400, [['prices[0].price.tiered_config.tiers', 'must hold at most 3 tiers']]],
    ['plan: too many prices', 'POST', '/v1/plans', { name: 'A', currency: 'credits', prices: [{ price: unitPrice() }, { price: unitPrice() }, { price: unitPrice() }] }, 400, [['prices', 'must hold at most 2 prices']]],
    ['plan: package size', 'POST', '/v1/plans', plan(unitPrice({ model_type: 'package', package_config: { package_amount: '5', package_size: 1.5 } })), 400, [['prices[0].price.package_config.package_size', 'must be an integer']]],
    ['plan: matrix values', 'POST', '/v1/plans', plan(unitPrice({ model_type: 'matrix', matrix_config: { dimensions: ['region'], default_unit_amount: '1', matrix_values: [{ dimension_values: ['eu', 'x'], unit_amount: '2' }, { dimension_values: ['us'] }] } })), 400, [['prices[0].price.matrix_config.matrix_values[0].dimension_values', 'must be an array of 1 value(s), one per dimension (region)'], ['prices[0].price.matrix_config.matrix_values[1].unit_amount', 'is required: a decimal string such as "0.25"']]],
    ['plan: matrix dimensions', 'POST', '/v1/plans', plan(unitPrice({ model_type: 'matrix', matrix_config: { dimensions: ['a', 'b', 'c'], default_unit_amount: '1', matrix_values: [] } })), 400, [['prices[0].price.matrix_config.dimensions', 'is required: one or two event property names']]],
    ['plan: one-time usage', 'POST', '/v1/plans', plan(unitPrice({ cadence: 'one_time' })), 400, [['prices[0].price.cadence', 'a usage price bills per period: monthly, quarterly or annual']]],
    ['plan: semi-annual', 'POST', '/v1/plans', plan(unitPrice({ cadence: 'semi_annual' })), 400, [['prices[0].price.cadence', '"semi_annual" is not supported; use monthly, quarterly, annual, one_time']]],
    ['plan: unknown refs', 'POST', '/v1/plans', plan(unitPrice({ item_id: 'nope', billable_metric_id: 'gone', currency: 'gold' })), 400, [['prices[0].price.item_id', 'no item with id "nope"'], ['prices[0].price.billable_metric_id', 'no metric with id "gone"'], ['prices[0].price.currency', '"gold" is neither a currency code (e.g. USD) nor a pricing unit; create it with POST /v1/pricing_units']]],
    ['plan: allocation', 'POST', '/v1/plans', { name: 'A', currency: 'credits', prices: [{ allocation_price: { amount: '0', cadence: 'monthly', currency: 'credits', expires_at_end_of_cadence: true, custom_expiration: { duration: 1, duration_unit: 'day' } } }] }, 400, [['prices[0].allocation_price.amount', 'must be greater than zero'], ['prices[0].allocation_price.custom_expiration', 'give expires_at_end_of_cadence or custom_expiration, not both']]],
    ['plan: entry', 'POST', '/v1/plans', { name: 'A', currency: 'credits', prices: [{}] }, 400, [['prices[0]', 'must hold price or allocation_price']]],
    ['plan: overage on fiat', 'POST', '/v1/plans', plan(unitPrice(), { currency: 'USD', per_credit_overage_amount: '0.01' }), 400, [['per_credit_overage_amount', 'applies to plans in a pricing unit (credits), not in a fiat currency']]],
    ['plan: taken external id', 'POST', '/v1/plans', plan(unitPrice(), { external_plan_id: 'p1' }), 409, [['external_plan_id', 'is taken']]],
    ['plan: update prices', 'PUT', '/v1/plans/{plan}', { prices: [] }, 400, [['prices', 'change prices with POST /v1/plans/{plan_id}/prices/{price_id}/versions']]],
    ['price version: past', 'POST', '/v1/plans/{plan}/prices/{price}/versions', { model_type: 'unit', unit_config: { unit_amount: '2' }, effective_from: '2020-01-01T00:00:00Z' }, 400, [['effective_from', 'must not be in the past: events already priced keep their price']]],
    ['price version: config', 'POST', '/v1/plans/{plan}/prices/{price}/versions', { model_type: 'unit', unit_config: {} }, 400, [['price.unit_config.unit_amount', 'is required: a decimal string such as "0.25"']]],
    ['price version: unknown price', 'POST', '/v1/plans/{plan}/prices/nope/versions', { model_type: 'unit', unit_config: { unit_amount: '2' } }, 404, []],
    // subscriptions
    ['subscription: empty', 'POST', '/v1/subscriptions', {}, 400, [['customer_id', 'give exactly one of customer_id and external_customer_id'], ['plan_id', 'give exactly one of plan_id and external_plan_id']]],
    ['subscription: unknown customer', 'POST', '/v1/subscriptions', { customer_id: 'nope', plan_id: '{plan}' }, 400, [['customer_id', 'no customer with id "nope"']]],
    ['subscription: unknown plan', 'POST', '/v1/subscriptions', { external_customer_id: 'c1', external_plan_id: 'nope' }, 400, [['external_plan_id', 'no plan with external_plan_id "nope"']]],
    ['subscription: dates', 'POST', '/v1/subscriptions', { customer_id: '{customer}', plan_id: '{plan}', start_date: '2026-03-01', end_date: '2026-02-01' }, 400, [['end_date', 'must be after start_date']]],
    ['subscription: date text', 'POST', '/v1/subscriptions', { customer_id: '{customer}', plan_id: '{plan}', start_date: 'tomorrow' }, 400, [['start_date', 'must be an ISO 8601 date or date-time, e.g. 2026-01-01T00:00:00Z']]],
    ['subscription: currency mismatch', 'POST', '/v1/subscriptions', { customer_id: '{eur}', plan_id: '{plan}' }, 400, [['plan_id', "the plan invoices in USD but the customer's currency is EUR"]]],
    ['subscription: replaced price', 'POST', '/v1/subscriptions', { customer_id: '{customer}', plan_id: '{plan}', replace_prices: [{ replaces_price_id: 'nope', price: unitPrice() }] }, 400, [['replace_prices[0].replaces_price_id', 'no price with id "nope" on this plan']]],
    ['subscription: replacement price', 'POST', '/v1/subscriptions', { customer_id: '{customer}', plan_id: '{plan}', replace_prices: [{ replaces_price_id: '{price}', price: unitPrice({ unit_config: { unit_amount: 'x' } }) }] }, 400, [['replace_prices[0].price.unit_config.unit_amount', '"x" is not a decimal number (expected e.g. "12.5" or "5e-7")']]],
    ['subscription: override', 'POST', '/v1/subscriptions', { customer_id: '{customer}', plan_id: '{plan}', price_overrides: [{ id: '{price}', model_type: 'unit', unit_config: { unit_amount: '-1' } }] }, 400, [['price_overrides[0].unit_config.unit_amount', 'must not be negative']]],
    ['subscription: add prices', 'POST', '/v1/subscriptions', { customer_id: '{customer}', plan_id: '{plan}', add_prices: [{}] }, 400, [['add_prices', 'is not supported']]],
    ['subscription: cancel option', 'POST', '/v1/subscriptions/{sub}/cancel', {}, 400, [['cancel_option', 'is required: immediate, end_of_subscription_term or requested_date']]],
    ['subscription: cancel date', 'POST', '/v1/subscriptions/{sub}/cancel', { cancel_option: 'requested_date' }, 400, [['cancellation_date', 'is required with cancel_option requested_date']]],
    ['subscription: cancel in the past', 'POST', '/v1/subscriptions/{sub}/cancel', { cancel_option: 'requested_date', cancellation_date: '2020-01-01' }, 400, [['cancellation_date', 'must not be in the past: usage already priced stays priced'], ['cancellation_date', 'must not be before the start_date']]],
    ['subscription: list status', 'GET', '/v1/subscriptions?status=gone', undefined, 400, [['status', 'must be active, ended or upcoming']]],
    ['subscription: usage granularity', 'GET', '/v1/subscriptions/{sub}/usage?granularity=hour', undefined, 400, [['granularity', 'must be day']]],
    ['subscription: usage timeframe', 'GET', '/v1/subscriptions/{sub}/usage?granularity=day&timeframe_start=2026-01-01&timeframe_end=2026-01-12', undefined, 400, [['timeframe_start', 'the timeframe spans more than 10 days']]],
    ['subscription: unknown', 'GET', '/v1/subscriptions/nope', undefined, 404, []],
  ];

  it.each(rows)('%s', async (_name, method, path, body, status, errors) => {
    const res = await call<{ status: number; detail: string; errors?: { field: string; message: string }[] }>(method, fill(path) as string, body === undefined ? undefined : fill(body));
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect({ status: res.status, errors: res.body.errors ?? [] }).toEqual({ status, errors: errors.map(([field, message]) => ({ field, message })) });
    expect(res.body.status).toBe(status);
    if (errors.length > 0) expect(res.body.detail).toContain(errors[0]![0]);
  });

  it('a number a double cannot hold exactly is refused, not rounded', async () => {
    const body = `{"name":"X","currency":"credits","prices":[{"price":{"name":"p","item_id":"${ids.item}","billable_metric_id":"${ids.metric}","cadence":"monthly","model_type":"unit","unit_config":{"unit_amount":0.12345678901234567}}}]}`;
    const res = await call('POST', '/v1/plans', body);
    expect(res.status).toBe(400);
    expect(res.body.detail).toBe(`the number 0.12345678901234567 at position ${body.indexOf('0.1234')} has 17 significant digits; a JSON number keeps at most 15 exactly, so send this value as a string ("0.12345678901234567")`);
  });

  it('a body that is not an object', async () => {
    const res = await call('POST', '/v1/customers', [1, 2]);
    expect(res.status).toBe(400);
    expect(res.body.detail).toBe('request body must be a JSON object');
  });

  it('nothing was created by the rejected requests', async () => {
    const customers = await call<{ data: unknown[] }>('GET', '/v1/customers?limit=100');
    expect(customers.body.data).toHaveLength(2);
    const plans = await call<{ data: unknown[] }>('GET', '/v1/plans');
    expect(plans.body.data).toHaveLength(1);
    const subs = await call<{ data: unknown[] }>('GET', '/v1/subscriptions');
    expect(subs.body.data).toHaveLength(1);
    const r = await app.pool.query('SELECT count(*)::int AS n FROM prices');
    expect(r.rows[0].n).toBe(1);
  });
});
