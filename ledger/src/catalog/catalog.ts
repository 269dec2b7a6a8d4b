// The catalog the skeleton needs: items, metrics (Orb's sql subset), plans with prices, and
// subscriptions. Every change bumps the catalog version in its transaction; the caller
// announces it on NATS after commit so raters reload.
import { bumpCatalogVersion, type MetricDefinition } from '@drawdown/catalog';
import { parseDecimal, formatDecimal } from '@drawdown/money';
import { withTx, type Pool } from "@drawdown/pg";
import { ApiError, Problems } from '@drawdown/http';
import { newId } from '../ids';
import { parseMetricSql } from '../sql-metric';
import { findCustomer } from '../customers/customers';

function obj(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('invalid_body', 'request body must be a JSON object');
  return body as Record<string, unknown>;
}

export async function createItem(pool: Pool, body: unknown): Promise<Record<string, unknown>> {
  const b = obj(body);
  const p = new Problems();
  if (typeof b.name !== 'string' || b.name.trim() === '') p.add('name', 'is required: a non-empty string');
  p.throwIfAny('item');
  return withTx(pool, async (c) => {
    const r = await c.query('INSERT INTO items (id, name, metadata) VALUES ($1, $2, $3) RETURNING id, name, metadata, created_at', [newId(), b.name, JSON.stringify(b.metadata ?? {})]);
    await bumpCatalogVersion(c);
    const row = r.rows[0];
    return { id: row.id, name: row.name, metadata: row.metadata, created_at: row.created_at.toISOString(), external_connections: [] };
  });
}

export async function createMetric(pool: Pool, body: unknown): Promise<Record<string, unknown>> {
  const b = obj(body);
  const p = new Problems();
  if (typeof b.name !== 'string' || b.name.trim() === '') p.add('name', 'is required: a non-empty string');
  if (typeof b.item_id !== 'string') p.add('item_id', 'is required: the id of an item');
  let definition: MetricDefinition | undefined;
  if (typeof b.sql !== 'string') p.add('sql', "is required, e.g. SELECT count(*) FROM events WHERE event_name = 'api_call'");
  else {
    try {
      definition = parseMetricSql(b.sql);
    } catch (err) {
      p.add('sql', (err as Error).message.replace(/^sql: /, ''));
    }
  }
  p.throwIfAny('metric');
  return withTx(pool, async (c) => {
    const item = await c.query('SELECT id, name FROM items WHERE id = $1', [b.item_id]);
    if (item.rowCount === 0) throw new ApiError('validation_failed', `item_id: no item with id "${String(b.item_id)}"`, [{ field: 'item_id', message: 'no such item' }]);
    const id = newId();
    const r = await c.query(
      'INSERT INTO metrics (id, name, description, item_id, sql, definition, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at',
      [id, b.name, b.description ?? null, b.item_id, b.sql, JSON.stringify(definition), JSON.stringify(b.metadata ?? {})],
    );
    await bumpCatalogVersion(c);
    return { id, name: b.name, description: b.description ?? null, item: { id: b.item_id, name: item.rows[0].name }, metadata: b.metadata ?? {}, status: 'active', created_at: r.rows[0].created_at.toISOString() };
  });
}

const CADENCES = new Set(['annual', 'semi_annual', 'monthly', 'quarterly', 'one_time', 'custom']);

function validatePrice(p: Problems, at: string, price: Record<string, unknown>, planCurrency: string) {
  if (typeof price.name !== 'string' || price.name === '') p.add(`${at}.name`, 'is required');
  if (typeof price.item_id !== 'string') p.add(`${at}.item_id`, 'is required');
  if (typeof price.cadence !== 'string' || !CADENCES.has(price.cadence)) p.add(`${at}.cadence`, `must be one of ${[...CADENCES].join(', ')}`);
  const currency = (price.currency as string | undefined) ?? planCurrency;
  switch (price.model_type) {
    case 'unit': {
      const cfg = price.unit_config as { unit_amount?: unknown } | undefined;
      if (!cfg || (typeof cfg.unit_amount !== 'string' && typeof cfg.unit_amount !== 'number')) p.add(`${at}.unit_config.unit_amount`, 'is required: a decimal string');
      else {
        try {
          const v = parseDecimal(cfg.unit_amount, `${at}.unit_config.unit_amount`);
          if (v < 0n) p.add(`${at}.unit_config.unit_amount`, 'must not be negative');
        } catch (err) {
          p.add(`${at}.unit_config.unit_amount`, (err as Error).message.replace(/^[^:]+: /, ''));
        }
      }
      break;
    }
    default:
      p.add(`${at}.model_type`, `"${String(price.model_type)}" is not supported yet; supported: unit`);
  }
  return currency;
}

export async function createPlan(pool: Pool, body: unknown): Promise<Record<string, unknown>> {
  const b = obj(body);
  const p = new Problems();
  if (typeof b.name !== 'string' || b.name === '') p.add('name', 'is required');
  if (typeof b.currency !== 'string' || b.currency === '') p.add('currency', 'is required: a currency code or a pricing unit such as credits');
  if (!Array.isArray(b.prices)) p.add('prices', 'is required: an array');
  const prices = Array.isArray(b.prices) ? (b.prices as Record<string, unknown>[]) : [];
  const planCurrency = typeof b.currency === 'string' ? b.currency : '';
  const normalized = prices.map((entry, i) => {
    const price = (entry?.price ?? entry) as Record<string, unknown>;
    const currency = validatePrice(p, `prices[${i}].price`, price ?? {}, planCurrency);
    return { price, currency };
  });
  p.throwIfAny('plan');
  return withTx(pool, async (c) => {
    const id = newId();
    const r = await c.query(
      'INSERT INTO plans (id, external_plan_id, name, currency, net_terms, description, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at',
      [id, b.external_plan_id ?? null, b.name, b.currency, b.net_terms ?? null, b.description ?? null, JSON.stringify(b.metadata ?? {})],
    );
    const outPrices = [];
    for (const [i, { price, currency }] of normalized.entries()) {
      if (price.billable_metric_id) {
        const m = await c.query('SELECT 1 FROM metrics WHERE id = $1', [price.billable_metric_id]);
        if (m.rowCount === 0) throw new ApiError('validation_failed', `prices[${i}].price.billable_metric_id: no metric with id "${String(price.billable_metric_id)}"`, [{ field: `prices[${i}].price.billable_metric_id`, message: 'no such metric' }]);
      }
      const item = await c.query('SELECT name FROM items WHERE id = $1', [price.item_id]);
      if (item.rowCount === 0) throw new ApiError('validation_failed', `prices[${i}].price.item_id: no item with id "${String(price.item_id)}"`, [{ field: `prices[${i}].price.item_id`, message: 'no such item' }]);
      const unitAmount = formatDecimal(parseDecimal((price.unit_config as { unit_amount: string }).unit_amount));
      const config = { unit_config: { unit_amount: unitAmount } };
      const priceId = newId();
      await c.query(
        'INSERT INTO prices (id, plan_id, item_id, metric_id, name, model_type, cadence, currency, config) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
        [priceId, id, price.item_id, price.billable_metric_id ?? null, price.name, price.model_type, price.cadence, currency, JSON.stringify(config)],
      );
      outPrices.push({
        id: priceId, name: price.name, model_type: price.model_type, cadence: price.cadence, currency, ...config,
        item: { id: price.item_id, name: item.rows[0].name }, billable_metric: price.billable_metric_id ? { id: price.billable_metric_id } : null,
        price_type: 'usage_price', created_at: r.rows[0].created_at.toISOString(),
      });
    }
    await bumpCatalogVersion(c);
    return {
      id, name: b.name, currency: b.currency, external_plan_id: b.external_plan_id ?? null, description: b.description ?? '', status: 'active',
      net_terms: b.net_terms ?? null, metadata: b.metadata ?? {}, prices: outPrices, created_at: r.rows[0].created_at.toISOString(),
    };
  });
}

export async function createSubscription(pool: Pool, body: unknown): Promise<Record<string, unknown>> {
  const b = obj(body);
  const p = new Problems();
  if (typeof b.plan_id !== 'string') p.add('plan_id', 'is required');
  if ((b.customer_id == null) === (b.external_customer_id == null)) p.add('customer_id', 'give exactly one of customer_id and external_customer_id');
  let start = new Date();
  if (b.start_date !== undefined && b.start_date !== null) {
    if (typeof b.start_date !== 'string' || Number.isNaN(Date.parse(b.start_date))) p.add('start_date', 'must be an ISO 8601 date or date-time');
    else start = new Date(b.start_date);
  }
  p.throwIfAny('subscription');
  return withTx(pool, async (c) => {
    const customer = await findCustomer(c, b.customer_id != null ? { id: String(b.customer_id) } : { externalId: String(b.external_customer_id) });
    const plan = await c.query('SELECT id, name, currency FROM plans WHERE id = $1', [b.plan_id]);
    if (plan.rowCount === 0) throw new ApiError('validation_failed', `plan_id: no plan with id "${String(b.plan_id)}"`, [{ field: 'plan_id', message: 'no such plan' }]);
    const id = newId();
    const r = await c.query(
      'INSERT INTO subscriptions (id, customer_id, plan_id, start_date, metadata) VALUES ($1, $2, $3, $4, $5) RETURNING created_at',
      [id, customer.id, b.plan_id, start, JSON.stringify(b.metadata ?? {})],
    );
    await bumpCatalogVersion(c);
    return {
      id, status: 'active', start_date: start.toISOString(), end_date: null, created_at: r.rows[0].created_at.toISOString(),
      customer: { id: customer.id, external_customer_id: customer.external_customer_id, name: customer.name },
      plan: { id: plan.rows[0].id, name: plan.rows[0].name, currency: plan.rows[0].currency }, metadata: b.metadata ?? {},
    };
  });
}

