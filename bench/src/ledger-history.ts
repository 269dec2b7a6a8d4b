// `node --import tsx bench/src/ledger-history.ts [DAYS]`: how the ledger's debit transaction
// slows as grouped usage entries pile up over days. 10,000 customers seeded as the ledger
// scenario does; four 8-batch transactions on a fresh ledger, then DAYS earlier days of grouped
// entries copied from today's (about 10,000 rows a day), then four transactions again. Prints
// each transaction's milliseconds. Not part of `pnpm bench` (the history insert alone takes
// about a minute for 180 days).
import { applyDebitBatches } from '@drawdown/ledger';
import { benchEnv, createCustomers, log, openStores } from './setup';
import { debitBatches } from './scenarios/common';

const CUSTOMERS = 10_000;
const days = Number(process.argv[2] ?? 60);
if (!Number.isInteger(days) || days < 1) throw new Error(`DAYS must be a whole number of days >= 1, got ${process.argv[2]}`);

const env = benchEnv();
const s = await openStores(env);
let k = 0;
async function transactions(label: string): Promise<void> {
  const ms: number[] = [];
  for (let i = 0; i < 4; i++) {
    const group = debitBatches({ count: 8, customers: CUSTOMERS, eventsPerBatch: 2500, shape: 'uniform', seed: 100 + k, tag: `h${k}` });
    k++;
    const t0 = performance.now();
    await applyDebitBatches(s.pool, group);
    ms.push(Math.round(performance.now() - t0));
  }
  process.stdout.write(`${label}: 8-batch transactions took ${ms.join(', ')} ms\n`);
}
try {
  await createCustomers(s.pool, { count: CUSTOMERS });
  await transactions('fresh ledger');
  log.info('copying grouped entries to earlier days', { days });
  await s.pool.query(
    `INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount, starting_balance,
                                 ending_balance, description, price_id, usage_day, usage_customer_id)
     SELECT e.id || '-' || g, e.customer_id, e.pricing_unit, e.ledger_sequence_number + 1000000 * g, e.entry_type, e.block_id, e.amount,
            e.starting_balance, e.ending_balance, e.description, e.price_id, e.usage_day - g, e.usage_customer_id
       FROM ledger_entries e, generate_series(1, $1::int) g
      WHERE e.entry_type = 'decrement' AND e.usage_day IS NOT NULL`,
    [days],
  );
  await s.pool.query('ANALYZE ledger_entries');
  const n = await s.pool.query<{ count: string }>('SELECT count(*) FROM ledger_entries');
  await transactions(`after ${days} days (${n.rows[0]!.count} ledger entries)`);
} finally {
  await s.close();
  await env.cleanup();
}
