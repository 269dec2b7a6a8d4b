// subscriptions.fetchUsage against rated events in ClickHouse: each aggregation (count, sum, max,
// unique count, latest) per billing period in the customer's time zone, per day, cumulative;
// duplicates of an event, unpriced events and other subscriptions' events do not count.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Orb from 'orb-billing';
import { testEnv, api, type TestEnv } from '@drawdown/testkit';
import { createLogger } from '@drawdown/log';
import { insertRows } from '@drawdown/clickhouse';
import { startApp, type App } from '../src/index';

describe('subscription usage', () => {
  let env: TestEnv;
  let app: App;
  let orb: Orb;
  const metric: Record<string, string> = {};
  let subId = '';
  let customerId = '';
  let planId = '';

  beforeAll(async () => {
    env = testEnv();
    app = await startApp(env.config, createLogger({ test: 'subscription-usage' }, { level: env.config.logLevel as 'error' }));
    orb = new Orb({ apiKey: app.adminKey, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
    const call = api(app.baseUrl, app.adminKey);
    const item = await orb.items.create({ name: 'Usage' });
    const sqls: Record<string, string> = {
      calls: "SELECT count(*) FROM events WHERE event_name = 'call'",
      bytes: "SELECT sum(bytes) FROM events WHERE event_name = 'upload'",
      gpus: "SELECT max(gpus) FROM events WHERE event_name = 'job'",
      users: "SELECT count(DISTINCT user) FROM events WHERE event_name = 'login'",
      seats: "SELECT latest(seats) FROM events WHERE event_name = 'seats'",
    };
    for (const [name, sql] of Object.entries(sqls)) metric[name] = (await orb.metrics.create({ name, item_id: item.id, description: null, sql })).id;
    const plan = await orb.plans.create({
      name: 'Usage plan', currency: 'credits',
      prices: Object.keys(sqls).map((name) => ({ price: { name, item_id: item.id, billable_metric_id: metric[name], cadence: 'monthly' as const, model_type: 'unit' as const, unit_config: { unit_amount: '1' } } })),
    });
    const customer = await call('POST', '/v1/customers', { name: 'Tokyo', email: 't@example.jp', timezone: 'Asia/Tokyo' });
    // Midnight of Jan 10 in Tokyo: periods end at Tokyo midnight on the 10th.
    customerId = customer.body.id as string;
    planId = plan.id;
    const sub = await orb.subscriptions.create({ customer_id: customer.body.id as string, plan_id: plan.id, start_date: '2026-01-10T00:00:00+09:00' });
    subId = sub.id;

    let seq = 0;
    const row = (key: string, at: string, m: string, quantity: string, props: Record<string, unknown> = {}, over: Record<string, unknown> = {}) => ({
      partition: 0, seq: ++seq, batch_id: 'test', customer_id: customer.body.id, external_customer_id: '', idempotency_key: key, event_name: m,
      timestamp: Date.parse(at), received_at: Date.parse(at), properties: JSON.stringify(props), subscription_id: subId, price_id: 'p', metric_id: metric[m],
      quantity, amount: quantity, pricing_unit: 'credits', status: 'rated', reason: '', catalog_version: 1, ...over,
    });
    await insertRows(app.ch, 'rated_events', [
      row('k1', '2026-01-12T00:00:00Z', 'calls', '1'),
      row('k2', '2026-01-13T00:00:00Z', 'calls', '1'),
      row('k3', '2026-01-14T00:00:00Z', 'calls', '1'),
      row('k3', '2026-01-14T00:00:00Z', 'calls', '1'), // a replayed copy
      row('k16', '2026-02-09T14:59:59.999Z', 'calls', '1'), // 23:59:59.999 Feb 9 in Tokyo: period 1
      row('k15', '2026-02-09T15:00:00.000Z', 'calls', '1'), // 00:00 Feb 10 in Tokyo: period 2
      row('k17', '2026-01-15T00:00:00Z', 'calls', '0', {}, { status: 'unpriced' }),
      row('k18', '2026-01-15T00:00:00Z', 'calls', '1', {}, { subscription_id: 'another' }),
      row('k4', '2026-01-20T00:00:00Z', 'bytes', '100.5', { bytes: 100.5 }),
      row('k5', '2026-01-21T00:00:00Z', 'bytes', '0.25', { bytes: '0.25' }),
      row('k6', '2026-01-20T00:00:00Z', 'gpus', '0', { gpus: 4 }),
      row('k7', '2026-01-21T00:00:00Z', 'gpus', '0', { gpus: '8' }),
      row('k8', '2026-01-22T00:00:00Z', 'gpus', '0', { gpus: 2 }),
      row('k9', '2026-01-20T00:00:00Z', 'users', '0', { user: 'a' }),
      row('k10', '2026-01-21T00:00:00Z', 'users', '0', { user: 'b' }),
      row('k11', '2026-01-22T00:00:00Z', 'users', '0', { user: 'a' }),
      row('k12', '2026-01-23T00:00:00Z', 'users', '0', {}),
      row('k13', '2026-01-20T00:00:00Z', 'seats', '0', { seats: 10 }),
      row('k14', '2026-02-01T00:00:00Z', 'seats', '0', { seats: 12 }),
    ]);
  });

  afterAll(async () => {
    await app?.stop();
    await env?.cleanup();
  });

  const quantities = async (params: Orb.SubscriptionFetchUsageParams) => {
    const usage = await orb.subscriptions.fetchUsage(subId, { timeframe_start: '2026-01-09T15:00:00Z', timeframe_end: '2026-03-09T15:00:00Z', ...params });
    return Object.fromEntries((usage.data as { billable_metric: { name: string }; usage: { quantity: number; timeframe_start: string; timeframe_end: string }[] }[])
      .map((d) => [d.billable_metric.name, d.usage.map((u) => [u.timeframe_start, u.timeframe_end, u.quantity])]));
  };

  it('aggregates each metric per billing period in the customer time zone', async () => {
    const p1 = ['2026-01-09T15:00:00.000Z', '2026-02-09T15:00:00.000Z'];
    const p2 = ['2026-02-09T15:00:00.000Z', '2026-03-09T15:00:00.000Z'];
    expect(await quantities({})).toEqual({
      calls: [[...p1, 4], [...p2, 1]],
      bytes: [[...p1, 100.75], [...p2, 0]],
      gpus: [[...p1, 8], [...p2, 0]],
      users: [[...p1, 2], [...p2, 0]],
      seats: [[...p1, 12], [...p2, 0]],
    });
  });

  it('cumulative and one metric', async () => {
    const usage = await orb.subscriptions.fetchUsage(subId, { timeframe_start: '2026-01-09T15:00:00Z', timeframe_end: '2026-03-09T15:00:00Z', view_mode: 'cumulative', billable_metric_id: metric.calls });
    expect(usage.data.map((d) => [(d as { view_mode: string }).view_mode, d.usage.map((u) => u.quantity)])).toEqual([['cumulative', [4, 5]]]);
  });

  it('per local day', async () => {
    const usage = await orb.subscriptions.fetchUsage(subId, { timeframe_start: '2026-02-09T00:00:00Z', timeframe_end: '2026-02-10T00:00:00Z', granularity: 'day', billable_metric_id: metric.calls });
    expect(usage.data[0]!.usage).toEqual([
      { timeframe_start: '2026-02-09T00:00:00.000Z', timeframe_end: '2026-02-09T15:00:00.000Z', quantity: 1 },
      { timeframe_start: '2026-02-09T15:00:00.000Z', timeframe_end: '2026-02-10T00:00:00.000Z', quantity: 1 },
    ]);
  });

  it('a bare date is midnight in the customer time zone', async () => {
    const sub = await orb.subscriptions.create({ customer_id: customerId, plan_id: planId, start_date: '2026-04-01' });
    expect(sub.start_date).toBe('2026-03-31T15:00:00.000Z');
    const cancelled = await orb.subscriptions.cancel(sub.id, { cancel_option: 'requested_date', cancellation_date: '2099-01-05' });
    expect(cancelled.end_date).toBe('2099-01-04T15:00:00.000Z');
  });
});
