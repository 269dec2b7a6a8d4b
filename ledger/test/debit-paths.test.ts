// The debit transaction's two ways to its fused statement: in the common case the raw lines of
// the fresh batches go to SQL unmerged (the statement merges them); when some line's amount is
// zero or negative the lines are merged in the process first (a merged line can vanish). Both
// must write the same ledger and the same subscription usage. Where a line's usage is recorded
// (migration 550): its quantity once, its cost spread over its entries and overage, also on the
// per-line path (pools). And the sparse lock (lockBalancesSparse) locks every pair but returns
// only overages.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DebitBatch, DebitLine } from '@drawdown/debits';
import { parseDecimal } from '@drawdown/money';
import { withTx } from '@drawdown/pg';
import { applyDebitBatches, balancesOf, createLedgerEntry, seedCustomers, subscriptionUsageTotals } from '../src/index';
import { parseLedgerEntry } from '../src/credits/parse';
import { lockBalancesSparse } from '../src/credits/balances';
import { startHarness, type Harness } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ DRAWDOWN_LEDGER_VACUUM_INTERVAL_MS: '0' }, { ledger: false });
  // Three sets of the same seven customers: dpa* takes the raw-line path, dpb* the merging path
  // (a zero amount), dpc* the merging path too (many lines per customer).
  for (const set of ['dpa', 'dpb', 'dpc']) await seedCustomers(h.pool, { count: 7, ids: { customer: set, external: `${set}-`, block: `${set}b` }, grant: '10' });
  await seedCustomers(h.pool, { count: 3, ids: { customer: 'dpl', external: 'dpl-', block: 'dplb' }, grant: '1' });
  await seedCustomers(h.pool, { count: 2, ids: { customer: 'dp"q\\', external: 'dpq-', block: 'dpqb' }, grant: '10' });
  // price_a and price_b belong to a plan every customer of the three sets subscribes to (the
  // customer 0 of each twice: the later subscription takes the usage), so the debits record
  // subscription usage.
  await h.pool.query(`INSERT INTO items (id, name) VALUES ('dp_item', 'dp item')`);
  await h.pool.query(`INSERT INTO plans (id, name, currency) VALUES ('dp_plan', 'dp plan', 'USD')`);
  await h.pool.query(
    `INSERT INTO prices (id, lineage_id, plan_id, item_id, name, model_type, cadence, currency, config)
     VALUES ('price_a', 'price_a', 'dp_plan', 'dp_item', 'a', 'unit', 'monthly', 'credits', '{}'), ('price_b', 'price_b', 'dp_plan', 'dp_item', 'b', 'unit', 'monthly', 'credits', '{}')`,
  );
  for (const set of ['dpa', 'dpb', 'dpc']) {
    for (let i = 0; i < 7; i++) {
      await h.pool.query(`INSERT INTO subscriptions (id, customer_id, plan_id, start_date) VALUES ($1, $2, 'dp_plan', '2026-02-15')`, [`${set}${i}-sub`, `${set}${i}`]);
    }
    await h.pool.query(`INSERT INTO subscriptions (id, customer_id, plan_id, start_date) VALUES ($1, $2, 'dp_plan', '2026-01-01')`, [`${set}0-old`, `${set}0`]);
  }
});
afterAll(async () => {
  await h?.stop();
});

const day = '2026-03-04';
const line = (customerId: string, priceId: string, amount: string): DebitLine => ({
  customerId, pricingUnit: 'credits', priceId, day, amountPicos: parseDecimal(amount).toString(), quantityPicos: parseDecimal('1').toString(), events: 1,
});
/** The line as two lines of the same key (one picos and no quantity in the second), if it has more than one picos. */
const split = (l: DebitLine): DebitLine[] => (BigInt(l.amountPicos) > 1n ? [{ ...l, amountPicos: String(BigInt(l.amountPicos) - 1n) }, { ...l, amountPicos: '1', quantityPicos: '0' }] : [l]);
const batch = (id: string, lines: DebitLine[]): DebitBatch => ({ id, partition: 0, firstSeq: 1, lastSeq: 1, receivedAtMax: Date.now(), lines });

/** Everything the debits wrote for customer `c`, with the set's prefix dropped from ids. */
async function ledgerOf(c: string) {
  const r = await h.pool.query<{ price_id: string; usage_day: string; amount: string; starting_balance: string; ending_balance: string; seq: string }>(
    `SELECT price_id, usage_day::text, amount::text, starting_balance::text, ending_balance::text, ledger_sequence_number::text AS seq
       FROM ledger_entries WHERE customer_id = $1 AND entry_type = 'decrement' ORDER BY ledger_sequence_number`,
    [c],
  );
  const overage = await h.pool.query<{ price_id: string; amount: string }>('SELECT price_id, amount::text FROM usage_overage WHERE customer_id = $1 ORDER BY price_id', [c]);
  const snap = await h.pool.query<{ balance: string }>('SELECT balance::text FROM balance_snapshots WHERE customer_id = $1', [c]);
  const bal = await balancesOf(h.pool, c);
  const usage = (await usageOf(c)).map(({ subscription_id, ...u }) => ({ sub: subscription_id.slice(c.length), ...u }));
  return {
    entries: r.rows, overage: overage.rows, snapshot: snap.rows[0]?.balance, balances: bal.map((b) => ({ unit: b.pricing_unit, balance: b.balance })),
    // Customer 3 has usage only in the dpb set (its zero-amount lines' quantities, checked apart).
    usage: /^dp[abc]3$/.test(c) ? undefined : usage,
  };
}

/** The usage recorded for customer `c`'s subscriptions, in the periods of `day` (2026-02-15 for
 *  those starting then, 2026-03-01 for those starting on the 1st), per subscription and price. */
async function usageOf(c: string) {
  const subs = await h.pool.query<{ id: string }>('SELECT id FROM subscriptions WHERE customer_id = $1', [c]);
  return subscriptionUsageTotals(h.pool, subs.rows.flatMap((x) => ['2026-02-15', '2026-03-01'].map((periodStart) => ({ subscriptionId: x.id, periodStart }))));
}

describe('debit paths', () => {
  it('writes the same ledger from raw lines (merged in SQL) as from lines merged in the process', async () => {
    // The same usage for the three sets: 9 lines of 6 customers (few merge: raw lines to SQL);
    // the dpb transactions carry one extra zero-amount line (of a customer outside the
    // comparison), the dpc ones each line split in two (many merge): both merge in the process.
    const usage = (p: string): DebitLine[][] => [
      // dp0: one price in two batches (one grouped entry), a second price; dp1: beyond its 10 credits.
      [line(`${p}0`, 'price_a', '1.5'), line(`${p}0`, 'price_b', '0.25'), line(`${p}1`, 'price_a', '7'), line(`${p}4`, 'price_a', '1'), line(`${p}5`, 'price_b', '2')],
      [line(`${p}0`, 'price_a', '2'), line(`${p}1`, 'price_a', '4.5'), line(`${p}2`, 'price_b', '0.000000000001'), line(`${p}6`, 'price_a', '3')],
    ];
    const ra = await applyDebitBatches(h.pool, usage('dpa').map((ls, i) => batch(`dpa:${i}`, ls)));
    const rb = await applyDebitBatches(h.pool, usage('dpb').map((ls, i) => batch(`dpb:${i}`, i === 0 ? [...ls, line('dpb3', 'price_a', '0')] : ls)));
    const rc = await applyDebitBatches(h.pool, usage('dpc').map((ls, i) => batch(`dpc:${i}`, ls.flatMap(split))));
    expect(ra).toEqual({ applied: ['dpa:0', 'dpa:1'], skipped: [], customers: 6, depleted: 1 });
    expect(rb).toEqual({ applied: ['dpb:0', 'dpb:1'], skipped: [], customers: 6, depleted: 1 });
    expect(rc).toEqual({ applied: ['dpc:0', 'dpc:1'], skipped: [], customers: 6, depleted: 1 });
    // A second transaction grows the entries (and the overage) on every path.
    await applyDebitBatches(h.pool, [batch('dpa:2', [line('dpa0', 'price_a', '0.5'), line('dpa1', 'price_a', '1')])]);
    await applyDebitBatches(h.pool, [batch('dpb:2', [line('dpb0', 'price_a', '0.5'), line('dpb1', 'price_a', '1'), line('dpb3', 'price_b', '-0')])]);
    await applyDebitBatches(h.pool, [batch('dpc:2', [line('dpc0', 'price_a', '0.5'), line('dpc1', 'price_a', '1')].flatMap(split))]);
    for (const i of [0, 1, 2, 3, 4, 5, 6]) {
      expect(await ledgerOf(`dpb${i}`)).toEqual(await ledgerOf(`dpa${i}`));
      expect(await ledgerOf(`dpc${i}`)).toEqual(await ledgerOf(`dpa${i}`));
    }

    // Subscription usage: the same on every path (compared above), per subscription, period and price.
    expect((await ledgerOf('dpa0')).usage).toEqual([
      { sub: '-sub', period_start: '2026-02-15', price_id: 'price_a', quantity: '3.000000000000', cost: '4.000000000000' },
      { sub: '-sub', period_start: '2026-02-15', price_id: 'price_b', quantity: '1.000000000000', cost: '0.250000000000' },
    ]);
    expect((await ledgerOf('dpa1')).usage).toEqual([{ sub: '-sub', period_start: '2026-02-15', price_id: 'price_a', quantity: '3.000000000000', cost: '12.500000000000' }]);
    // A zero-amount line's quantity counts as usage (it draws nothing: subscription_usage keeps it).
    expect(await usageOf('dpb3')).toEqual([
      { subscription_id: 'dpb3-sub', period_start: '2026-02-15', price_id: 'price_a', quantity: '1.000000000000', cost: '0.000000000000' },
      { subscription_id: 'dpb3-sub', period_start: '2026-02-15', price_id: 'price_b', quantity: '1.000000000000', cost: '0.000000000000' },
    ]);

    const dp0 = await ledgerOf('dpa0');
    expect(dp0.entries.map((e) => [e.price_id, e.amount])).toEqual([['price_a', '-4.000000000000'], ['price_b', '-0.250000000000']]);
    expect(dp0.balances[0]!.balance).toBe(parseDecimal('5.75'));
    const dp1 = await ledgerOf('dpa1');
    expect(dp1.overage).toEqual([{ price_id: 'price_a', amount: '2.500000000000' }]);
    expect(dp1.balances[0]!.balance).toBe(parseDecimal('-2.5'));
    expect(dp1.snapshot).toBe('-2.500000000000');
    expect((await ledgerOf('dpa2')).entries.map((e) => e.amount)).toEqual(['-0.000000000001']);
  });

  it('drops a merged line that nets to zero or less, and counts only customers debited', async () => {
    const r = await applyDebitBatches(h.pool, [
      batch('dpn:0', [line('dpa3', 'price_c', '3'), line('dpa2', 'price_c', '1')]),
      batch('dpn:1', [line('dpa3', 'price_c', '-3'), line('dpa3', 'price_d', '0')]),
    ]);
    expect(r.customers).toBe(1);
    expect((await ledgerOf('dpa3')).entries).toEqual([]);
    expect((await ledgerOf('dpa3')).balances[0]!.balance).toBe(parseDecimal('10'));
    expect((await ledgerOf('dpa2')).entries.map((e) => [e.price_id, e.amount])).toEqual([['price_b', '-0.000000000001'], ['price_c', '-1.000000000000']]);
  });

  it('takes ids holding quotes and backslashes through the raw-line path', async () => {
    const q0 = 'dp"q\\0';
    const r = await applyDebitBatches(h.pool, [batch('dpq:0', [line(q0, 'price_a', '1'), line('dpa2', 'price_e', '2')]), batch('dpq:1', [line(q0, 'price_a', '0.5')])]);
    expect(r.customers).toBe(2);
    expect((await ledgerOf(q0)).entries.map((e) => [e.price_id, e.amount])).toEqual([['price_a', '-1.500000000000']]);
    expect((await ledgerOf('dpa2')).entries.map((e) => e.price_id)).toEqual(['price_b', 'price_c', 'price_e']);
  });

  it('records a line\'s quantity once and its cost in full: across blocks, into overage, from a parent\'s pool, past a price filter, after legacy rows', async () => {
    // dqa: two blocks, 1 credit expiring (drawn first) and 5 that do not; dqc: no credits, drawing
    // from its parent dqp's 10 (the per-line path); dqf: as dqa, its first block limited to
    // dp_item by a price filter (the per-line path too); dql: usage recorded before migration 550
    // (a subscription_usage row). All subscribed to the plan of price_a and price_b.
    for (const id of ['dqa', 'dqp', 'dqc', 'dqf', 'dql']) {
      await h.pool.query('INSERT INTO customers (id, name, parent_id) VALUES ($1, $1, $2)', [id, id === 'dqc' ? 'dqp' : null]);
      if (id !== 'dqp') await h.pool.query(`INSERT INTO subscriptions (id, customer_id, plan_id, start_date) VALUES ($1, $2, 'dp_plan', '2026-02-15')`, [`${id}-sub`, id]);
    }
    const grant = (id: string, amount: string, expiry: string | null, filters?: unknown) =>
      createLedgerEntry(h.pool, { id, external_customer_id: null }, parseLedgerEntry({ currency: 'credits', entry_type: 'increment', amount, expiry_date: expiry, ...(filters ? { filters } : {}) }));
    await grant('dqa', '1', '2099-01-01T00:00:00Z');
    await grant('dqa', '5', null);
    await grant('dqf', '1', '2099-01-01T00:00:00Z', [{ field: 'item_id', operator: 'includes', values: ['dp_item'] }]);
    await grant('dqf', '5', null);
    await grant('dqp', '10', null);
    await grant('dql', '10', null);
    await h.pool.query(`INSERT INTO subscription_usage (subscription_id, period_start, price_id, metric_id, currency, quantity, cost) VALUES ('dql-sub', '2026-02-15', 'price_a', NULL, 'credits', 5, 7)`);
    const q = (l: DebitLine, quantity: string): DebitLine => ({ ...l, quantityPicos: parseDecimal(quantity).toString() });
    // dqa's price_a (3 credits) takes 1 from the expiring block and 2 from the other; its price_b
    // (4) takes the other's last 3 and runs 1 into overage.
    await applyDebitBatches(h.pool, [batch('dq:0', [q(line('dqa', 'price_a', '3'), '2'), q(line('dqa', 'price_b', '4'), '7'), line('dql', 'price_a', '1')])]);
    await applyDebitBatches(h.pool, [batch('dq:1', [q(line('dqc', 'price_a', '2'), '3')])]);
    await applyDebitBatches(h.pool, [batch('dq:f', [q(line('dqf', 'price_a', '3'), '2'), q(line('dqf', 'price_b', '4'), '7')])]);

    const row = (sub: string, price: string, quantity: string, cost: string) => ({ subscription_id: sub, period_start: '2026-02-15', price_id: price, quantity, cost });
    expect(await usageOf('dqa')).toEqual([row('dqa-sub', 'price_a', '2.000000000000', '3.000000000000'), row('dqa-sub', 'price_b', '7.000000000000', '4.000000000000')]);
    expect(await usageOf('dqc')).toEqual([row('dqc-sub', 'price_a', '3.000000000000', '2.000000000000')]);
    expect(await usageOf('dql')).toEqual([row('dql-sub', 'price_a', '6.000000000000', '8.000000000000')]);
    expect(await usageOf('dqf')).toEqual([row('dqf-sub', 'price_a', '2.000000000000', '3.000000000000'), row('dqf-sub', 'price_b', '7.000000000000', '4.000000000000')]);
    // Where it sits: the quantity on the entry of the block the line's usage starts in (none on
    // the other's), the cost on each entry as its take; a child's on its parent's ledger.
    const at = await h.pool.query(
      `SELECT e.customer_id, e.usage_customer_id, e.price_id, k.initial_amount::text AS block, e.amount::text, e.usage_quantity::text AS quantity, e.usage_cost::text AS cost
         FROM ledger_entries e JOIN credit_blocks k ON k.id = e.block_id
        WHERE e.usage_customer_id IN ('dqa', 'dqc', 'dqf') ORDER BY e.usage_customer_id, e.price_id, k.initial_amount`,
    );
    // dqf's lines draw as dqa's (the filter admits both prices' item), through the per-line path.
    const dqf = (r: Record<string, string>) => ({ ...r, customer_id: 'dqf', usage_customer_id: 'dqf' });
    expect(at.rows).toEqual([
      { customer_id: 'dqa', usage_customer_id: 'dqa', price_id: 'price_a', block: '1.000000000000', amount: '-1.000000000000', quantity: '2.000000000000', cost: '1.000000000000' },
      { customer_id: 'dqa', usage_customer_id: 'dqa', price_id: 'price_a', block: '5.000000000000', amount: '-2.000000000000', quantity: '0.000000000000', cost: '2.000000000000' },
      { customer_id: 'dqa', usage_customer_id: 'dqa', price_id: 'price_b', block: '5.000000000000', amount: '-3.000000000000', quantity: '7.000000000000', cost: '3.000000000000' },
      { customer_id: 'dqp', usage_customer_id: 'dqc', price_id: 'price_a', block: '10.000000000000', amount: '-2.000000000000', quantity: '3.000000000000', cost: '2.000000000000' },
      ...at.rows.slice(0, 3).map(dqf),
    ]);
    const over = await h.pool.query(`SELECT price_id, amount::text, usage_quantity::text AS quantity, usage_cost::text AS cost FROM usage_overage WHERE customer_id = 'dqa'`);
    expect(over.rows).toEqual([{ price_id: 'price_b', amount: '1.000000000000', quantity: '0.000000000000', cost: '1.000000000000' }]);

    // A line no block covers at all keeps its quantity on its overage row; replaying changes nothing.
    await applyDebitBatches(h.pool, [batch('dq:2', [q(line('dqa', 'price_b', '0.5'), '4')])]);
    await applyDebitBatches(h.pool, [batch('dq:2', [q(line('dqa', 'price_b', '0.5'), '4')])]);
    expect(await usageOf('dqa')).toEqual([row('dqa-sub', 'price_a', '2.000000000000', '3.000000000000'), row('dqa-sub', 'price_b', '11.000000000000', '4.500000000000')]);
  });

  it('lockBalancesSparse locks every pair, creates missing rows, returns only the overages', async () => {
    // dpl0 runs into overage; dpl1 and dpl2 keep credits.
    await applyDebitBatches(h.pool, [batch('dpl:0', [line('dpl0', 'price_a', '1.75')])]);
    const pairs = [
      { customerId: 'dpl0', pricingUnit: 'credits' }, { customerId: 'dpl1', pricingUnit: 'credits' },
      { customerId: 'dpl2', pricingUnit: 'credits' }, { customerId: 'dpl2', pricingUnit: 'tokens' },
    ];
    const other = await h.pool.connect();
    try {
      await withTx(h.pool, async (c) => {
        const over = await lockBalancesSparse(c, pairs, true);
        expect([...over]).toEqual([['dpl0\u0000credits', parseDecimal('0.75')]]);
        // Every row that existed is held (the created one is not visible to others before commit).
        for (const p of pairs.slice(0, 3)) {
          await expect(other.query('SELECT 1 FROM credit_balances WHERE customer_id = $1 AND pricing_unit = $2 FOR UPDATE NOWAIT', [p.customerId, p.pricingUnit]))
            .rejects.toMatchObject({ code: '55P03' });
        }
        // Without create, a missing pair is left out (not an error), as lockBalances does.
        expect([...(await lockBalancesSparse(c, [{ customerId: 'dpl1', pricingUnit: 'minutes' }], false))]).toEqual([]);
      });
    } finally {
      other.release();
    }
    const created = await h.pool.query('SELECT 1 FROM credit_balances WHERE customer_id = $1 AND pricing_unit = $2', ['dpl2', 'tokens']);
    expect(created.rowCount).toBe(1);
    const notCreated = await h.pool.query('SELECT 1 FROM credit_balances WHERE customer_id = $1 AND pricing_unit = $2', ['dpl1', 'minutes']);
    expect(notCreated.rowCount).toBe(0);
  });
});
