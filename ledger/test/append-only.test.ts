// ledger_entries are append-only (migrations 100, 110, 490, 530): deletes and updates are
// refused, except a grouped usage decrement growing (amount, ending_balance) and a pending
// entry committing. A refused update changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDecimal } from '@drawdown/money';
import { applyDebitBatches, seedCustomers } from '../src/index';
import { startHarness, type Harness } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ DRAWDOWN_LEDGER_VACUUM_INTERVAL_MS: '0' }, { ledger: false });
  await seedCustomers(h.pool, { count: 1, ids: { customer: 'ao', external: 'ao-', block: 'aob' }, grant: '10' });
  await applyDebitBatches(h.pool, [{
    id: 'ao:1', partition: 0, firstSeq: 1, lastSeq: 1, receivedAtMax: Date.now(),
    lines: [{ customerId: 'ao0', pricingUnit: 'credits', priceId: 'price_a', day: '2026-03-04', amountPicos: parseDecimal('2').toString(), quantityPicos: '1', events: 1 }],
  }]);
});
afterAll(async () => {
  await h?.stop();
});

const rows = async () =>
  (await h.pool.query<{ id: string; entry_type: string; entry_status: string; amount: string; starting_balance: string; ending_balance: string }>(
    "SELECT id, entry_type, entry_status, amount::text, starting_balance::text, ending_balance::text FROM ledger_entries WHERE customer_id = 'ao0' ORDER BY ledger_sequence_number",
  )).rows;
const refused = { code: 'P0001', message: expect.stringContaining('append-only') };

describe('ledger_entries append-only', () => {
  it('refuses deletes and updates other than growing a grouped usage decrement or committing a pending entry', async () => {
    const before = await rows();
    expect(before.map((r) => [r.entry_type, r.amount])).toEqual([['increment', '10.000000000000'], ['decrement', '-2.000000000000']]);
    const [grant, usage] = before as [(typeof before)[0], (typeof before)[0]];
    await expect(h.pool.query('UPDATE ledger_entries SET amount = 11 WHERE id = $1', [grant.id])).rejects.toMatchObject(refused);
    await expect(h.pool.query("UPDATE ledger_entries SET entry_status = 'pending' WHERE id = $1", [grant.id])).rejects.toMatchObject(refused);
    await expect(h.pool.query('UPDATE ledger_entries SET starting_balance = 9, amount = -3 WHERE id = $1', [usage.id])).rejects.toMatchObject(refused);
    await expect(h.pool.query("UPDATE ledger_entries SET price_id = 'price_b' WHERE id = $1", [usage.id])).rejects.toMatchObject(refused);
    await expect(h.pool.query('DELETE FROM ledger_entries WHERE id = $1', [usage.id])).rejects.toMatchObject(refused);
    expect(await rows()).toEqual(before);

    // Growing the grouped decrement is allowed (what a later debit batch does).
    await h.pool.query('UPDATE ledger_entries SET amount = amount - 1, ending_balance = ending_balance - 1 WHERE id = $1', [usage.id]);
    expect((await rows())[1]).toMatchObject({ amount: '-3.000000000000', ending_balance: '7.000000000000' });

    // A pending entry commits, nothing else changes with it.
    await h.pool.query(
      `INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount, starting_balance, ending_balance, entry_status)
       VALUES ('ao-pending', 'ao0', 'credits', 3, 'increment', 'aob0', 5, 7, 7, 'pending')`,
    );
    await expect(h.pool.query("UPDATE ledger_entries SET entry_status = 'committed', amount = 6 WHERE id = 'ao-pending'")).rejects.toMatchObject(refused);
    await h.pool.query("UPDATE ledger_entries SET entry_status = 'committed' WHERE id = 'ao-pending'");
    expect((await rows())[2]).toMatchObject({ entry_status: 'committed', amount: '5.000000000000' });
  });
});
