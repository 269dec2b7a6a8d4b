// The baseline's harness does autovacuum's job for its balances table when the server runs
// without it, so a long run does not measure bloat no real deployment has.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { createPool, type Pool } from '@drawdown/pg';
import { prepareBaseline, vacuumIfDue } from './server';

let env: TestEnv;
let pool: Pool;
beforeAll(async () => {
  env = testEnv();
  await prepareBaseline(env.config.databaseUrl, { count: 50, grant: '1000', unitPrice: '0.001', eventName: 'api_call', customerName: (i) => `vb-${i}` });
  pool = createPool(env.config.databaseUrl, { max: 2 });
});
afterAll(async () => {
  await pool?.end();
  await env?.cleanup();
});

const stat = async () => {
  await pool.query('SELECT pg_stat_clear_snapshot()');
  const r = await pool.query<{ dead: string; vacuums: string }>("SELECT n_dead_tup::text AS dead, (vacuum_count + autovacuum_count)::text AS vacuums FROM pg_stat_user_tables WHERE relid = 'balances'::regclass");
  return { dead: Number(r.rows[0]!.dead), vacuums: Number(r.rows[0]!.vacuums) };
};

describe('baseline balances vacuum', () => {
  it('vacuums balances once its dead rows pass the threshold while autovacuum is off, and not again right after', async () => {
    const on = (await pool.query<{ autovacuum: string }>('SHOW autovacuum')).rows[0]!.autovacuum === 'on';
    // Rewrite every balance row 20 times, as 20 requests covering every customer would.
    for (let i = 0; i < 20; i++) await pool.query('UPDATE balances SET balance = balance - 0.001');
    let s = await stat();
    for (let i = 0; i < 150 && s.dead <= 60; i++) {
      await new Promise((r) => setTimeout(r, 100));
      s = await stat();
    }
    const did = await vacuumIfDue(pool);
    expect(did).toBe(!on);
    if (!on) {
      expect((await stat()).vacuums).toBe(s.vacuums + 1);
      expect(await vacuumIfDue(pool)).toBe(false);
    }
    const sum = await pool.query<{ s: string }>('SELECT sum(balance)::text AS s FROM balances');
    expect(sum.rows[0]!.s).toBe('49999.000000000000');
  });
});
