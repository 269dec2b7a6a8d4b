// The walking skeleton end to end on real components: HTTP ingest -> JetStream -> rater
// (piscina, chDB) -> DEBITS -> ledger (Postgres) -> depletion notifications.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv, api, type TestEnv } from '@drawdown/testkit';
import { createLogger } from '@drawdown/log';
import { queryRows } from '@drawdown/clickhouse';
import { jetstream, names, DeliverPolicy } from '@drawdown/nats';
import { startApp, type App } from '../src/index';

const CUSTOMERS = 100;
const EVENTS = 10_000;
const UNIT_PRICE = '0.5';

describe('walking skeleton', () => {
  let env: TestEnv;
  let app: App;
  let call: ReturnType<typeof api>;

  beforeAll(async () => {
    env = testEnv();
    app = await startApp(env.config, createLogger({ test: 'pipeline' }, { level: env.config.logLevel as 'error' }));
    call = api(app.baseUrl, app.adminKey);
  });

  afterAll(async () => {
    await app?.stop();
    await env?.cleanup();
  });

  it('rates 10,000 events for 100 customers exactly once and draws down their credits', async () => {
    const item = await call('POST', '/v1/items', { name: 'API calls' });
    expect(item.status).toBe(201);
    const metric = await call('POST', '/v1/metrics', { name: 'calls', item_id: item.body.id, sql: "SELECT count(*) FROM events WHERE event_name = 'api_call'", description: null, metadata: {} });
    expect(metric.status).toBe(201);
    const plan = await call('POST', '/v1/plans', {
      name: 'Credits plan',
      currency: 'credits',
      prices: [{ price: { name: 'API call', item_id: item.body.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: UNIT_PRICE }, billable_metric_id: metric.body.id } }],
    });
    expect(plan.status).toBe(201);

    // Customer i gets 1000 credits, except every tenth gets 20 and runs out.
    const granted = new Map<string, number>();
    const ids = new Map<string, string>();
    for (let i = 0; i < CUSTOMERS; i++) {
      const ext = `acme-${i}`;
      const c = await call('POST', '/v1/customers', { name: `Customer ${i}`, email: `c${i}@example.com`, external_customer_id: ext });
      expect(c.status).toBe(201);
      ids.set(ext, c.body.id as string);
      // Depletion is announced for customers with a credit_balance_depleted alert (Orb's rule).
      expect((await call('POST', `/v1/alerts/external_customer_id/${ext}`, { type: 'credit_balance_depleted', currency: 'credits' })).status).toBe(201);
      const s = await call('POST', '/v1/subscriptions', { external_customer_id: ext, plan_id: plan.body.id, start_date: new Date(Date.now() - 86_400_000).toISOString() });
      expect(s.status).toBe(201);
      const credits = i % 10 === 0 ? 20 : 1000;
      granted.set(ext, credits);
      const g = await call('POST', `/v1/customers/external_customer_id/${ext}/credits/ledger_entry`, { entry_type: 'increment', amount: credits, currency: 'credits', description: 'initial grant' });
      expect(g.status).toBe(201);
      expect(g.body.ending_balance).toBe(credits);
    }

    // 10,000 unique events in 100-event requests; every request also repeats 5 of its own
    // keys, and every fifth request is sent twice (a client retry).
    const usage = new Map<string, number>();
    const now = Date.now();
    let sent = 0;
    for (let r = 0; sent < EVENTS; r++) {
      const events = [];
      for (let j = 0; j < 100 && sent < EVENTS; j++, sent++) {
        const ext = `acme-${sent % CUSTOMERS}`;
        usage.set(ext, (usage.get(ext) ?? 0) + 1);
        events.push({ idempotency_key: `ev-${sent}`, external_customer_id: ext, event_name: 'api_call', timestamp: new Date(now - 60_000 + (sent % 1000)).toISOString(), properties: { region: 'eu' } });
      }
      const body = { events: [...events, ...events.slice(0, 5)] };
      const res = await call('POST', '/v1/ingest?debug=true', body);
      expect(res.status).toBe(200);
      expect(res.body.validation_failed).toEqual([]);
      const debug = res.body.debug as { ingested: string[]; duplicate: string[] };
      expect(debug.ingested.length).toBe(events.length);
      expect(debug.duplicate.length).toBe(5);
      if (r % 5 === 0) {
        const again = await call('POST', '/v1/ingest?debug=true', body);
        expect(again.status).toBe(200);
        expect((again.body.debug as { ingested: string[] }).ingested).toEqual([]);
      }
    }
    // A later request repeats 50 keys from the first requests, with a new message id.
    const repeats = Array.from({ length: 50 }, (_, i) => ({ idempotency_key: `ev-${i * 7}`, external_customer_id: `acme-${(i * 7) % CUSTOMERS}`, event_name: 'api_call', timestamp: new Date(now - 30_000).toISOString(), properties: { retry: true } }));
    expect((await call('POST', '/v1/ingest', { events: repeats })).status).toBe(200);

    await app.waitIdle(120_000);

    const rows = await queryRows<{ n: string; k: string }>(app.ch, "SELECT count() AS n, uniqExact(customer_id, idempotency_key) AS k FROM rated_events WHERE status = 'rated'");
    expect(Number(rows[0]!.n)).toBe(EVENTS);
    expect(Number(rows[0]!.k)).toBe(EVENTS);

    const depletedExpected = new Set<string>();
    for (const [ext, credits] of granted) {
      const used = (usage.get(ext) ?? 0) * 0.5; // exact in binary: multiples of 0.5
      const expected = credits - used;
      if (expected <= 0) depletedExpected.add(ids.get(ext)!);
      const res = await call('GET', `/v1/customers/external_customer_id/${ext}/credits/balance`);
      expect(res.status).toBe(200);
      const data = res.body.data as { pricing_unit: string; balance: number; overage: number }[];
      expect(data).toHaveLength(1);
      expect(data[0]!.balance).toBe(expected);
      const blocks = await call('GET', `/v1/customers/external_customer_id/${ext}/credits`);
      const blockBalance = (blocks.body.data as { balance: number }[]).reduce((a, b) => a + b.balance, 0);
      expect(blockBalance).toBe(Math.max(0, expected));
    }
    expect(depletedExpected.size).toBe(10);

    // One depletion notification per customer that ran out, no more.
    const n = names(env.config.namespace);
    const consumer = await jetstream(app.nc).consumers.get(n.notifyStream, { filter_subjects: `${n.notifySubjectPrefix}.customer.credit_balance_depleted`, deliver_policy: DeliverPolicy.All });
    const seen: string[] = [];
    const msgs = await consumer.fetch({ max_messages: 100, expires: 2000 });
    for await (const m of msgs) seen.push((m.json() as { customer_id: string }).customer_id);
    expect(seen.sort()).toEqual([...depletedExpected].sort());
  });
});
