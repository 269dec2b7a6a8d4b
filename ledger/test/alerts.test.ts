// Alerts and webhooks end to end on real Postgres, NATS and HTTP: alert configurations through
// the orb-billing SDK, crossings evaluated in the ledger transaction, signed deliveries
// verified by a real receiver with the SDK, retries, disabling, redelivery, coalescing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDecimal } from '@drawdown/money';
import { withTx } from '@drawdown/pg';
import type { DebitBatch } from '@drawdown/debits';
import { applyDebitBatches, evaluateCrossings } from '../src/index';
import { startHarness, startReceiver, waitFor, type Harness } from './harness';

let h: Harness;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let secret = '';
let endpointId = '';
let batchSeq = 0;

const day = () => new Date().toISOString().slice(0, 10);
function batch(lines: { customerId: string; amount: string; priceId?: string; quantity?: string }[]): DebitBatch {
  const n = ++batchSeq;
  return {
    id: `0:${n}-${n}`, partition: 0, firstSeq: n, lastSeq: n, receivedAtMax: Date.now(),
    lines: lines.map((l) => ({
      customerId: l.customerId, pricingUnit: 'credits', priceId: l.priceId ?? 'price_x', day: day(),
      amountPicos: parseDecimal(l.amount).toString(), quantityPicos: parseDecimal(l.quantity ?? l.amount).toString(), events: 1,
    })),
  };
}

async function customer(ext: string): Promise<string> {
  const c = await h.orb.customers.create({ name: ext, email: `${ext}@example.com`, external_customer_id: ext });
  return c.id;
}
async function grant(id: string, amount: number) {
  await h.orb.customers.credits.ledger.createEntry(id, { entry_type: 'increment', amount, currency: 'credits' });
}
const eventsOf = (customerId: string, type?: string) =>
  receiver.received.filter((d) => (d.body.customer as { id?: string } | null)?.id === customerId && (!type || d.type === type));

beforeAll(async () => {
  h = await startHarness({
    DRAWDOWN_WEBHOOK_RETRY_BASE_MS: '100',
    DRAWDOWN_WEBHOOK_RETRY_MAX_MS: '400',
    DRAWDOWN_WEBHOOK_POLL_MS: '50',
    DRAWDOWN_WEBHOOK_DISABLE_AFTER_MS: '3500',
    DRAWDOWN_WEBHOOK_RETRY_WINDOW_MS: '2000',
    DRAWDOWN_BALANCE_UPDATED_INTERVAL_MS: '1500',
    DRAWDOWN_ACCESS_POLL_MS: '50',
  });
  receiver = await startReceiver(() => secret);
  const ep = await h.call('POST', '/v1/webhook_endpoints', { url: receiver.url, description: 'test receiver' });
  expect(ep.status).toBe(201);
  expect(typeof ep.body.secret).toBe('string');
  secret = ep.body.secret as string;
  endpointId = ep.body.id as string;
});

afterAll(async () => {
  await h?.stop();
  await receiver?.close();
});

describe('alert configurations (orb-billing SDK)', () => {
  it('creates, lists, retrieves, updates, disables and enables', async () => {
    const id = await customer('cfg');
    const dropped = await h.orb.alerts.createForCustomer(id, { type: 'credit_balance_dropped', currency: 'credits', thresholds: [{ value: 100 }, { value: 50.5 }] });
    expect(dropped).toMatchObject({ type: 'credit_balance_dropped', currency: 'credits', enabled: true, customer: { id, external_customer_id: 'cfg' }, subscription: null });
    expect(dropped.thresholds).toEqual([{ value: 50.5 }, { value: 100 }]);
    expect(dropped.balance_alert_status).toEqual([{ threshold_value: 50.5, in_alert: true }, { threshold_value: 100, in_alert: true }]);
    const depleted = await h.orb.alerts.createForExternalCustomer('cfg', { type: 'credit_balance_depleted', currency: 'credits' });
    expect(depleted.customer?.id).toBe(id);

    // One of each type per customer and currency; dropped needs thresholds; bad input names the field.
    await expect(h.orb.alerts.createForCustomer(id, { type: 'credit_balance_depleted', currency: 'credits' })).rejects.toMatchObject({ status: 409 });
    const bad = await h.call('POST', `/v1/alerts/customer_id/${id}`, { type: 'credit_balance_dropped', currency: 'credits', thresholds: [{ value: 'x' }] });
    expect(bad.status).toBe(400);
    expect((bad.body.errors as { field: string }[])[0]!.field).toBe('thresholds[0].value');
    const none = await h.call('POST', `/v1/alerts/customer_id/${id}`, { type: 'credit_balance_dropped' });
    expect((none.body.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(['currency', 'thresholds']);

    const list = await h.orb.alerts.list({ customer_id: id });
    expect(list.data.map((a) => a.id)).toEqual([depleted.id, dropped.id]);
    const byExt = await h.orb.alerts.list({ external_customer_id: 'cfg', limit: 1 });
    expect(byExt.data).toHaveLength(1);
    expect(byExt.hasNextPage()).toBe(true);
    expect((await byExt.getNextPage()).data[0]!.id).toBe(dropped.id);

    expect((await h.orb.alerts.disable(dropped.id)).enabled).toBe(false);
    expect((await h.orb.alerts.retrieve(dropped.id)).enabled).toBe(false);
    expect((await h.orb.alerts.enable(dropped.id)).enabled).toBe(true);
    const upd = await h.orb.alerts.update(dropped.id, { thresholds: [{ value: 10 }] });
    expect(upd.thresholds).toEqual([{ value: 10 }]);
    await expect(h.orb.alerts.retrieve('nope')).rejects.toMatchObject({ status: 404 });
  });
});

describe('crossings', () => {
  it('one batch crossing three thresholds gives three events, in order, once', async () => {
    const id = await customer('three');
    await h.orb.alerts.createForCustomer(id, { type: 'credit_balance_dropped', currency: 'credits', thresholds: [{ value: 500 }, { value: 200 }, { value: 100 }] });
    await h.orb.alerts.createForCustomer(id, { type: 'credit_balance_depleted', currency: 'credits' });
    await h.orb.alerts.createForCustomer(id, { type: 'credit_balance_recovered', currency: 'credits' });
    await grant(id, 1000);
    const b = batch([{ customerId: id, amount: '950' }]);
    await applyDebitBatches(h.pool, [b]);
    await applyDebitBatches(h.pool, [b]); // a replayed batch id changes nothing
    // Even if the same change reached the evaluation twice, state makes it a no-op.
    await withTx(h.pool, (c) => evaluateCrossings(c, [{ customerId: id, pricingUnit: 'credits', before: parseDecimal('1000'), after: parseDecimal('50'), cause: 'usage' }]));

    await waitFor('three drops', () => eventsOf(id, 'customer.credit_balance_dropped').length >= 3);
    await waitFor('credit_balance.created', () => eventsOf(id, 'credit_balance.created').length >= 1);
    const drops = eventsOf(id, 'customer.credit_balance_dropped');
    expect(drops.map((d) => (d.body.properties as { balance_threshold: string }).balance_threshold)).toEqual(['500', '200', '100']);
    expect(drops.every((d) => (d.body.properties as { balance: string }).balance === '50')).toBe(true);
    expect(drops[0]!.body).toMatchObject({ type: 'customer.credit_balance_dropped', customer: { id, external_customer_id: 'three' }, properties: { pricing_unit: 'credits', previous_balance: '1000' } });
    expect(typeof drops[0]!.body.created_at).toBe('string');

    // Run dry: depleted once, even with further usage.
    await applyDebitBatches(h.pool, [batch([{ customerId: id, amount: '60' }])]);
    await applyDebitBatches(h.pool, [batch([{ customerId: id, amount: '5' }])]);
    await waitFor('depleted', () => eventsOf(id, 'customer.credit_balance_depleted').length >= 1);

    // Recover: recovered once; thresholds above the new balance re-arm, so the next fall fires them again.
    await grant(id, 315); // -15 + 315 = 300
    await waitFor('recovered', () => eventsOf(id, 'customer.credit_balance_recovered').length >= 1);
    await applyDebitBatches(h.pool, [batch([{ customerId: id, amount: '250' }])]); // 300 -> 50
    await waitFor('drops again', () => eventsOf(id, 'customer.credit_balance_dropped').length >= 5);
    await new Promise((r) => setTimeout(r, 500));

    const types = eventsOf(id).filter((d) => d.type !== 'credit_balance.updated').map((d) => d.type + ((d.body.properties as { balance_threshold?: string }).balance_threshold ? `@${(d.body.properties as { balance_threshold?: string }).balance_threshold}` : ''));
    expect(types).toEqual([
      'credit_balance.created',
      'customer.credit_balance_dropped@500', 'customer.credit_balance_dropped@200', 'customer.credit_balance_dropped@100',
      'customer.credit_balance_depleted',
      'credit_balance.created', 'customer.credit_balance_recovered@0',
      'customer.credit_balance_dropped@200', 'customer.credit_balance_dropped@100',
    ]);
    // Each event once (ids unique), and the status the API reports matches the state.
    const ids = eventsOf(id).map((d) => d.id);
    expect(new Set(ids).size).toBe(ids.length);
    const alerts = await h.orb.alerts.list({ customer_id: id });
    const dropped = alerts.data.find((a) => a.type === 'credit_balance_dropped')!;
    expect(dropped.balance_alert_status).toEqual([{ threshold_value: 100, in_alert: true }, { threshold_value: 200, in_alert: true }, { threshold_value: 500, in_alert: true }]);
  });

  it('a dip and a recovery give dropped, then recovered', async () => {
    const id = await customer('dip');
    await h.orb.alerts.createForCustomer(id, { type: 'credit_balance_dropped', currency: 'credits', thresholds: [{ value: 100 }] });
    await h.orb.alerts.createForCustomer(id, { type: 'credit_balance_recovered', currency: 'credits', thresholds: [{ value: 100 }] });
    await grant(id, 150);
    await applyDebitBatches(h.pool, [batch([{ customerId: id, amount: '100' }])]); // 50
    await grant(id, 150); // 200
    await waitFor('recovered', () => eventsOf(id, 'customer.credit_balance_recovered').length >= 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(eventsOf(id).filter((d) => d.type.startsWith('customer.')).map((d) => d.type)).toEqual(['customer.credit_balance_dropped', 'customer.credit_balance_recovered']);
  });

  it('a disabled alert does not fire', async () => {
    const id = await customer('off');
    const a = await h.orb.alerts.createForCustomer(id, { type: 'credit_balance_depleted', currency: 'credits' });
    await h.orb.alerts.disable(a.id);
    await grant(id, 10);
    await applyDebitBatches(h.pool, [batch([{ customerId: id, amount: '20' }])]);
    await waitFor('created', () => eventsOf(id, 'credit_balance.created').length >= 1);
    await new Promise((r) => setTimeout(r, 400));
    expect(eventsOf(id, 'customer.credit_balance_depleted')).toHaveLength(0);
  });

  it('usage and cost alerts of a subscription fire once per threshold and period', async () => {
    const id = await customer('subs');
    const item = await h.call('POST', '/v1/items', { name: 'calls' });
    const metric = await h.call('POST', '/v1/metrics', { name: 'calls', item_id: item.body.id, sql: "SELECT count(*) FROM events WHERE event_name = 'call'" });
    const plan = await h.call('POST', '/v1/plans', { name: 'p', currency: 'credits', prices: [{ price: { name: 'call', item_id: item.body.id, billable_metric_id: metric.body.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '0.5' } } }] });
    const priceId = (plan.body.prices as { id: string }[])[0]!.id;
    const sub = await h.call('POST', '/v1/subscriptions', { customer_id: id, plan_id: plan.body.id, start_date: new Date(Date.now() - 86_400_000).toISOString() });
    expect(sub.status).toBe(201);
    const usage = await h.orb.alerts.createForSubscription(sub.body.id as string, { type: 'usage_exceeded', metric_id: metric.body.id as string, thresholds: [{ value: 10 }, { value: 20 }] });
    expect(usage).toMatchObject({ type: 'usage_exceeded', metric: { id: metric.body.id }, subscription: { id: sub.body.id }, customer: { id } });
    await h.orb.alerts.createForSubscription(sub.body.id as string, { type: 'cost_exceeded', thresholds: [{ value: 8 }] });
    const noMetric = await h.call('POST', `/v1/alerts/subscription_id/${sub.body.id}`, { type: 'usage_exceeded', thresholds: [{ value: 1 }] });
    expect(noMetric.status).toBe(400);
    await grant(id, 1000);
    await applyDebitBatches(h.pool, [batch([{ customerId: id, priceId, quantity: '15', amount: '7.5' }])]);
    await applyDebitBatches(h.pool, [batch([{ customerId: id, priceId, quantity: '4', amount: '2' }])]);
    await applyDebitBatches(h.pool, [batch([{ customerId: id, priceId, quantity: '6', amount: '3' }])]);
    const sent = () => receiver.received.filter((d) => d.type.startsWith('subscription.') && (d.body.subscription as { id: string }).id === sub.body.id);
    await waitFor('usage and cost alerts', () => sent().length >= 3);
    await new Promise((r) => setTimeout(r, 300));
    expect(sent().map((d) => `${d.type}@${(d.body.properties as { quantity_threshold?: string; amount_threshold?: string }).quantity_threshold ?? (d.body.properties as { amount_threshold: string }).amount_threshold}`)).toEqual([
      'subscription.usage_exceeded_threshold@10', 'subscription.cost_exceeded@8', 'subscription.usage_exceeded_threshold@20',
    ]);
    expect(sent()[0]!.body.properties).toMatchObject({ billable_metric_id: metric.body.id, quantity: '15' });
  });
});

describe('credit_balance.updated', () => {
  it('is coalesced per customer over the interval and carries the latest balance', async () => {
    const id = await customer('coalesce');
    await grant(id, 100);
    const t0 = Date.now();
    for (let i = 0; i < 6; i++) {
      await applyDebitBatches(h.pool, [batch([{ customerId: id, amount: '1' }])]);
      await new Promise((r) => setTimeout(r, 150));
    }
    await waitFor('final balance announced', () => eventsOf(id, 'credit_balance.updated').some((d) => (d.body.properties as { balance: string }).balance === '94'), 10_000);
    const updates = eventsOf(id, 'credit_balance.updated');
    const elapsed = Date.now() - t0;
    expect(updates.length).toBeGreaterThanOrEqual(1);
    expect(updates.length).toBeLessThanOrEqual(Math.ceil(elapsed / 1500) + 1);
    for (let i = 1; i < updates.length; i++) expect(updates[i]!.at - updates[i - 1]!.at).toBeGreaterThan(1000);
  });
});

describe('webhook endpoints', () => {
  it('lists without the secret, rotates it (both sign during the grace), logs and redelivers', async () => {
    const list = await h.call('GET', '/v1/webhook_endpoints');
    expect((list.body.data as Record<string, unknown>[]).find((e) => e.id === endpointId)).not.toHaveProperty('secret');
    const upd = await h.call('PUT', `/v1/webhook_endpoints/${endpointId}`, { event_types: ['nope'] });
    expect(upd.status).toBe(400);
    expect((upd.body.errors as { field: string }[])[0]!.field).toBe('event_types[0]');

    const old = secret;
    const rot = await h.call('POST', `/v1/webhook_endpoints/${endpointId}/rotate_secret`);
    expect(rot.status).toBe(200);
    const fresh = rot.body.secret as string;
    expect(fresh).not.toBe(old);
    // Verify the next delivery with the OLD secret (still signing during the grace), then the new one.
    const id = await customer('rotate');
    await grant(id, 5);
    await waitFor('delivery after rotation', () => eventsOf(id, 'credit_balance.created').length === 1);
    secret = fresh;
    const ev = eventsOf(id, 'credit_balance.created')[0]!;

    const logged = await waitFor('attempt logged', async () => ((await h.call('GET', `/v1/webhook_endpoints/${endpointId}/deliveries?event_id=${ev.id}`)).body.data as { status_code: number; delivery_status: string }[])[0]);
    expect(logged).toMatchObject({ status_code: 200, delivery_status: 'delivered' });

    const again = await h.call('POST', `/v1/webhook_endpoints/${endpointId}/redeliver`, { event_id: ev.id });
    expect(again.status).toBe(202);
    await waitFor('redelivered', () => eventsOf(id, 'credit_balance.created').length === 2);
    expect(eventsOf(id, 'credit_balance.created')[1]!.id).toBe(ev.id); // the same id: receivers dedup
    const range = await h.call('POST', `/v1/webhook_endpoints/${endpointId}/redeliver`, { from: new Date(Date.now() - 60_000).toISOString(), to: new Date(Date.now() + 1000).toISOString() });
    expect(range.body.queued as number).toBeGreaterThan(3);
    const tmp = await h.call('POST', '/v1/webhook_endpoints', { url: 'https://example.com/x', event_types: ['invoice.issued'] });
    const put = await h.call('PUT', `/v1/webhook_endpoints/${tmp.body.id}`, { event_types: ['credit_balance.created', 'customer.credit_balance_dropped'] });
    expect(put.body).toMatchObject({ event_types: ['credit_balance.created', 'customer.credit_balance_dropped'], status: 'enabled' });
    expect((await h.call('DELETE', `/v1/webhook_endpoints/${tmp.body.id}`)).status).toBe(204);
    expect((await h.call('GET', `/v1/webhook_endpoints/${tmp.body.id}`)).status).toBe(404);
    const missing = await h.call('POST', `/v1/webhook_endpoints/${endpointId}/redeliver`, {});
    expect(missing.status).toBe(400);
    await h.ledger!.webhooks!.prune(); // nothing is old enough: the log stays
    expect(((await h.call('GET', `/v1/webhook_endpoints/${endpointId}/deliveries?event_id=${ev.id}`)).body.data as unknown[]).length).toBeGreaterThan(0);
    expect(receiver.rejected).toEqual([]);
  });

  it('retries a receiver that fails then recovers, in order; disables one that keeps failing and says so', async () => {
    let failures = 3;
    const flaky = await startReceiver(() => flakySecret, () => (failures-- > 0 ? 503 : 200));
    let flakySecret = '';
    const dead = await startReceiver(() => '', () => 500);
    try {
      const f = await h.call('POST', '/v1/webhook_endpoints', { url: flaky.url, event_types: ['credit_balance.created', 'customer.credit_balance_depleted'] });
      flakySecret = f.body.secret as string;
      const d = await h.call('POST', '/v1/webhook_endpoints', { url: dead.url, event_types: ['credit_balance.created'] });
      const id = await customer('flaky');
      await h.orb.alerts.createForCustomer(id, { type: 'credit_balance_depleted', currency: 'credits' });
      await grant(id, 1);
      await applyDebitBatches(h.pool, [batch([{ customerId: id, amount: '2' }])]);
      await grant(id, 3);
      await waitFor('flaky receiver got all three', () => flaky.received.length >= 3, 20_000);
      expect(flaky.received.map((x) => x.type)).toEqual(['credit_balance.created', 'customer.credit_balance_depleted', 'credit_balance.created']);
      // The attempt is logged right after the receiver answers.
      const codes = await waitFor('six attempts logged', async () => {
        const log = await h.call('GET', `/v1/webhook_endpoints/${f.body.id}/deliveries?limit=100`);
        const c = (log.body.data as { status_code: number }[]).map((x) => x.status_code).reverse();
        return c.length >= 6 ? c : undefined;
      });
      expect(codes).toEqual([503, 503, 503, 200, 200, 200]);

      await waitFor('dead endpoint disabled', async () => (await h.call('GET', `/v1/webhook_endpoints/${d.body.id}`)).body.status === 'disabled', 20_000);
      const info = await h.call('GET', `/v1/webhook_endpoints/${d.body.id}`);
      expect(info.body.disabled_reason).toMatch(/failed/);
      await waitFor('vendor told', () => receiver.received.find((x) => x.type === 'webhook_endpoint.disabled' && (x.body.webhook_endpoint as { id: string }).id === d.body.id));
      expect(dead.received).toHaveLength(0);
      // Past the retry window a delivery is marked failed, and the customer's next event went on.
      const deadLog = (await h.call('GET', `/v1/webhook_endpoints/${d.body.id}/deliveries?limit=100`)).body.data as { event_id: string; delivery_status: string }[];
      expect(new Set(deadLog.map((x) => x.event_id)).size).toBe(2);
      expect(deadLog.some((x) => x.delivery_status === 'failed')).toBe(true);
    } finally {
      await flaky.close();
      await dead.close();
    }
  });
});

describe('access', () => {
  it('answers from the cache, follows the ledger, and applies policies', async () => {
    const id = await customer('acc');
    const item = await h.call('POST', '/v1/items', { name: 'gpu' });
    const metric = await h.call('POST', '/v1/metrics', { name: 'gpu', item_id: item.body.id, sql: "SELECT count(*) FROM events WHERE event_name = 'gpu'" });
    const plan = await h.call('POST', '/v1/plans', { name: 'p', currency: 'credits', prices: [{ price: { name: 'gpu', item_id: item.body.id, billable_metric_id: metric.body.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '1' } } }] });
    const sub = await h.call('POST', '/v1/subscriptions', { customer_id: id, plan_id: plan.body.id, start_date: new Date(Date.now() - 1000).toISOString() });
    const check = async (q = `metric=${metric.body.id}`) => (await h.call('GET', `/v1/customers/${id}/access?${q}`)).body;
    expect(await check()).toMatchObject({ allowed: false, reason: 'depleted', balance: 0, pricing_unit: 'credits', subscription_id: sub.body.id, policy: { mode: 'block_when_depleted', source: 'default' } });
    await grant(id, 10);
    await waitFor('balance seen', async () => (await check()).allowed === true);
    expect(await check()).toMatchObject({ allowed: true, reason: 'balance_available', balance: 10 });
    expect((await h.call('GET', `/v1/customers/external_customer_id/acc/access?metric=${metric.body.id}`)).body).toMatchObject({ allowed: true, customer_id: id });
    expect(await check('metric=unknown')).toMatchObject({ allowed: false, reason: 'metric_not_in_subscription' });

    await applyDebitBatches(h.pool, [batch([{ customerId: id, amount: '12' }])]); // -2
    await waitFor('depletion seen', async () => (await check()).reason === 'depleted');

    const pol = await h.call('PUT', `/v1/customers/${id}/access_policy`, { mode: 'allow_overage', overage_limit: 5 });
    expect(pol.status).toBe(200);
    expect(await check()).toMatchObject({ allowed: true, reason: 'overage_within_limit', balance: -2, policy: { mode: 'allow_overage', overage_limit: 5, source: 'customer' } });
    await applyDebitBatches(h.pool, [batch([{ customerId: id, amount: '3' }])]); // -5
    await waitFor('limit reached', async () => (await check()).reason === 'overage_limit_reached');

    // A subscription policy wins over the customer's for the subscription's prices.
    await h.call('PUT', `/v1/subscriptions/${sub.body.id}/access_policy`, { mode: 'always_allow', block_on_unpaid_overage: true });
    expect(await check()).toMatchObject({ allowed: true, reason: 'always_allow', policy: { source: 'subscription' } });
    // Invoicing marks an overage invoice unpaid (the setUnpaidOverage hook), in its own transaction.
    const { setUnpaidOverage } = await import('../src/index');
    await setUnpaidOverage(h.pool, { invoiceId: 'inv_1', customerId: id, unpaid: true });
    await waitFor('unpaid seen', async () => (await check()).reason === 'unpaid_overage_invoice');
    await setUnpaidOverage(h.pool, { invoiceId: 'inv_1', customerId: id, unpaid: false });
    await waitFor('paid seen', async () => (await check()).reason === 'always_allow');

    const bad = await h.call('PUT', `/v1/customers/${id}/access_policy`, { mode: 'sometimes', overage_limit: -1 });
    expect(bad.status).toBe(400);
    expect((bad.body.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(['mode', 'overage_limit', 'overage_limit']);
    expect((await h.call('GET', '/v1/customers/nobody/access')).status).toBe(404);
  });
});
