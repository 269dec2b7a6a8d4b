// seedCustomers (the set-based seeding benchmarks use) writes the rows the API writes for a
// customer with one credit grant and a subscription, so a schema change that the seed does not
// follow fails here: every column of every row is compared with a customer made through the
// API, except ids, names and times.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDecimal } from '@drawdown/money';
import { applyDebitBatches, seedCustomers } from '../src/index';
import { startHarness, type Harness } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({});
});
afterAll(async () => {
  await h?.stop();
});

/** Columns that differ by construction: ids, names, times, transaction ids. */
const VOLATILE = new Set([
  'id', 'customer_id', 'external_customer_id', 'name', 'email', 'block_id', 'created_at', 'updated_at', 'changed_at', 'txid',
  'effective_date', 'start_date', 'entry_no', 'description', 'metadata',
]);

async function rowsOf(customerId: string): Promise<Record<string, unknown[]>> {
  const q = async (sql: string) => (await h.pool.query(sql, [customerId])).rows.map((r: Record<string, unknown>) => Object.fromEntries(Object.entries(r).filter(([k]) => !VOLATILE.has(k))));
  return {
    customers: await q('SELECT * FROM customers WHERE id = $1'),
    credit_balances: await q('SELECT * FROM credit_balances WHERE customer_id = $1'),
    credit_blocks: await q('SELECT * FROM credit_blocks WHERE customer_id = $1'),
    ledger_entries: await q('SELECT * FROM ledger_entries WHERE customer_id = $1'),
    balance_snapshots: await q('SELECT * FROM balance_snapshots WHERE customer_id = $1'),
    subscriptions: await q('SELECT * FROM subscriptions WHERE customer_id = $1'),
  };
}

describe('seedCustomers', () => {
  it('writes what the API writes for a customer, a grant and a subscription', async () => {
    const item = await h.call('POST', '/v1/items', { name: 'calls' });
    const metric = await h.call('POST', '/v1/metrics', { name: 'calls', item_id: item.body.id, sql: "SELECT count(*) FROM events WHERE event_name = 'call'" });
    const plan = await h.call('POST', '/v1/plans', { name: 'p', currency: 'credits', prices: [{ price: { name: 'call', item_id: item.body.id, billable_metric_id: metric.body.id, cadence: 'monthly', model_type: 'unit', unit_config: { unit_amount: '0.5' } } }] });
    expect(plan.status).toBe(201);
    const planId = plan.body.id as string;

    const viaApi = await h.orb.customers.create({ name: 'api', email: 'api@example.com', external_customer_id: 'api-1' });
    await h.orb.customers.credits.ledger.createEntry(viaApi.id, { entry_type: 'increment', amount: 250, currency: 'credits' });
    const sub = await h.call('POST', '/v1/subscriptions', { customer_id: viaApi.id, plan_id: planId });
    expect(sub.status).toBe(201);

    const version = async () => Number((await h.pool.query('SELECT version FROM catalog_version')).rows[0].version);
    const before = await version();
    await seedCustomers(h.pool, { first: 5, count: 3, ids: { customer: 'sc', external: 'se-', block: 'sb' }, grant: '250', planId, parallel: 2 });
    expect(await version()).toBeGreaterThan(before);

    const api = await rowsOf(viaApi.id);
    for (const n of [5, 6, 7]) expect(await rowsOf(`sc${n}`)).toEqual(api);
    expect((await h.pool.query("SELECT count(*)::int AS n FROM customers WHERE id LIKE 'sc%'")).rows[0].n).toBe(3);

    // The API sees the seeded customer like any other: by external id, with its balance.
    const seeded = await h.call('GET', '/v1/customers/external_customer_id/se-6/credits');
    expect(seeded.status).toBe(200);
    expect(seeded.body.data).toMatchObject([{ id: 'sb6', balance: 250, status: 'active' }]);

    // Debits draw it down like a granted balance.
    const day = new Date().toISOString().slice(0, 10);
    await applyDebitBatches(h.pool, [{
      id: '0:seed-1', partition: 0, firstSeq: 1, lastSeq: 1, receivedAtMax: Date.now(),
      lines: [{ customerId: 'sc6', pricingUnit: 'credits', priceId: 'price_x', day, amountPicos: parseDecimal('10').toString(), quantityPicos: parseDecimal('10').toString(), events: 1 }],
    }]);
    const after = await h.call('GET', '/v1/customers/sc6/credits/ledger');
    expect((after.body.data as { entry_type: string; ending_balance: number }[]).map((e) => [e.entry_type, e.ending_balance])).toEqual([['decrement', 240], ['increment', 250]]);
  });

  it('refuses bad options, naming the field', async () => {
    const ids = { customer: 'x', external: 'x-', block: 'xb' };
    await expect(seedCustomers(h.pool, { count: 1, ids, grant: '0' })).rejects.toThrow(/grant must be above zero/);
    await expect(seedCustomers(h.pool, { count: 1, ids, grant: 'ten' })).rejects.toThrow(/grant must be a decimal/);
    await expect(seedCustomers(h.pool, { count: -1, ids, grant: '1' })).rejects.toThrow(/count must be an integer/);
    await expect(seedCustomers(h.pool, { count: 1, ids: { ...ids, block: '' }, grant: '1' })).rejects.toThrow(/ids\.block/);
    await expect(seedCustomers(h.pool, { count: 1, ids, grant: '1', planId: 'nope' })).rejects.toThrow(/planId: no plan "nope"/);
  });
});
