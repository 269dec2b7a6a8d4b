// The ledger vacuums its hot tables itself while the server runs with autovacuum off (as this
// project's CI and bench machines do): debits leave dead row versions behind, a round reclaims
// them, and the balances read the same afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDecimal } from '@drawdown/money';
import { applyDebitBatches, balancesOf, seedCustomers, vacuumHotTables } from '../src/index';
import { startHarness, type Harness } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ DRAWDOWN_LEDGER_VACUUM_INTERVAL_MS: '0' }, { ledger: false });
  await seedCustomers(h.pool, { count: 20, ids: { customer: 'vc', external: 've-', block: 'vb' }, grant: '1000' });
});
afterAll(async () => {
  await h?.stop();
});

const deadRows = async (table: string): Promise<number> => {
  // Statistics are cached per transaction: read them fresh.
  await h.pool.query('SELECT pg_stat_clear_snapshot()');
  const r = await h.pool.query<{ n: string }>('SELECT n_dead_tup::text AS n FROM pg_stat_user_tables WHERE relid = to_regclass($1)', [table]);
  return Number(r.rows[0]?.n ?? 0);
};

/** Backends report their row counts to the statistics within seconds (PG 15: at most every 10 s when idle): wait for them. */
const deadRowsOver = async (table: string, floor: number): Promise<number> => {
  for (let i = 0; ; i++) {
    const n = await deadRows(table);
    if (n > floor || i === 150) return n;
    await new Promise((r) => setTimeout(r, 100));
  }
};

const vacuumCount = async (table: string): Promise<number> => {
  await h.pool.query('SELECT pg_stat_clear_snapshot()');
  const r = await h.pool.query<{ n: string }>('SELECT (vacuum_count + autovacuum_count)::text AS n FROM pg_stat_user_tables WHERE relid = to_regclass($1)', [table]);
  return Number(r.rows[0]?.n ?? 0);
};

async function debitEveryone(from: number, rounds: number): Promise<void> {
  const day = new Date().toISOString().slice(0, 10);
  for (let i = from; i < from + rounds; i++) {
    await applyDebitBatches(h.pool, [{
      id: `0:vac-${i}`, partition: 0, firstSeq: i * 10 + 1, lastSeq: i * 10 + 10, receivedAtMax: Date.now(),
      lines: Array.from({ length: 20 }, (_, c) => ({ customerId: `vc${c}`, pricingUnit: 'credits', priceId: 'price_v', day, amountPicos: parseDecimal('0.5').toString(), quantityPicos: parseDecimal('1').toString(), events: 1 })),
    }]);
  }
}

describe('ledger vacuum of hot tables', () => {
  it('reclaims the dead rows debits leave in credit_blocks while autovacuum is off, balances unchanged', async () => {
    // An open snapshot keeps page pruning from removing the old row versions as the debits
    // make them (it would keep a 20-row table's dead rows under the threshold); once it ends,
    // they are dead and only a vacuum reclaims their index entries and space.
    const holder = await h.pool.connect();
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await holder.query('SELECT count(*) FROM credit_blocks');
      await debitEveryone(0, 12);
      await holder.query('COMMIT');
    } finally {
      holder.release();
    }
    const before = await deadRowsOver('credit_blocks', 54);
    expect(before).toBeGreaterThan(50 + 0.2 * 20);
    const all = () => Promise.all(Array.from({ length: 20 }, (_, c) => balancesOf(h.pool, `vc${c}`)));
    const balances = await all();
    expect(balances[3]![0]!.balance).toBe(parseDecimal('994'));
    const vacuumsBefore = await vacuumCount('credit_blocks');

    // With the server's autovacuum on, a round leaves the work to it.
    expect(await vacuumHotTables(h.pool, { autovacuum: true })).toEqual({ autovacuum: true, vacuumed: [] });
    expect(await vacuumCount('credit_blocks')).toBe(vacuumsBefore);

    const round = await vacuumHotTables(h.pool, { autovacuum: false });
    const blocks = round.vacuumed.find((v) => v.table === 'credit_blocks');
    expect(blocks?.deadRows).toBeGreaterThanOrEqual(before);
    expect(await vacuumCount('credit_blocks')).toBe(vacuumsBefore + 1);
    expect(await deadRows('credit_blocks')).toBeLessThan(before);
    expect(await all()).toEqual(balances);

    // Right after, nothing is over the threshold: the next round vacuums nothing of the kind.
    const quiet = await vacuumHotTables(h.pool, { autovacuum: false });
    expect(quiet.vacuumed.map((v) => v.table)).not.toContain('credit_blocks');
  });

  it('reads the server setting when not told', async () => {
    const setting = (await h.pool.query<{ autovacuum: string }>('SHOW autovacuum')).rows[0]!.autovacuum;
    expect((await vacuumHotTables(h.pool)).autovacuum).toBe(setting === 'on');
  });
});
