// Concurrency: debit batches (each delivered twice), grants, voids, amendments, manual
// decrements, expiration changes and expiry passes run at once from several connections,
// and the same operations run one at a time on a twin set of customers: the balances,
// overage, per-block-role remainders and ledger totals must be identical, with no deadlock
// surfacing and every batch applied exactly once. The operations are chosen so that their
// result does not depend on their order (see `world`), which is what makes the serial run
// the oracle.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { createPool, ensureDatabase, migrate, type Pool } from '@drawdown/pg';
import type { DebitBatch } from '@drawdown/debits';
import { activateBlock, addCrossingHook, applyDebitBatches, BalanceTracker, createLedgerEntry, expireDueBlocks, incrementInTx, LEDGER_MIGRATIONS, pruneLedger, type BalanceChange } from '../src/index';
import { withTx } from '@drawdown/pg';
import { parseLedgerEntry } from '../src/credits/parse';
import { newId } from '../src/ids';

const UNIT = 'credits';
const CUSTOMERS = 12; // odd ones are pooled children of the one before, with no credits of their own
const CENT = 10_000_000_000n;

/** Small deterministic PRNG (mulberry32), so both worlds get the same operations. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Op =
  | { t: 'batch'; id: string; lines: { c: number; cents: number; price: string }[] }
  | { t: 'grant'; c: number; cents: number }
  | { t: 'void'; c: number; cents: number }
  | { t: 'amend'; c: number; cents: number }
  | { t: 'decrement'; c: number; cents: number }
  | { t: 'move'; c: number; cents: number }
  | { t: 'expire' };

function operations(): Op[] {
  const r = rng(42);
  const pick = (n: number) => Math.floor(r() * n);
  const parent = () => 2 * pick(CUSTOMERS / 2);
  const ops: Op[] = [];
  for (let b = 0; b < 60; b++) {
    const lines = [];
    for (let k = 0; k < 5; k++) lines.push({ c: pick(CUSTOMERS), cents: 1 + pick(500), price: `p${pick(3)}` });
    ops.push({ t: 'batch', id: `0:${b}-${b}`, lines });
  }
  for (let i = 0; i < 30; i++) ops.push({ t: 'grant', c: parent(), cents: 1 + pick(1000) });
  for (let i = 0; i < 20; i++) ops.push({ t: 'void', c: parent(), cents: 10 + pick(40) });
  for (let i = 0; i < 20; i++) ops.push({ t: 'amend', c: parent(), cents: -(5 + pick(15)) });
  for (let i = 0; i < 10; i++) ops.push({ t: 'decrement', c: parent(), cents: 100 });
  for (let i = 0; i < 10; i++) ops.push({ t: 'move', c: parent(), cents: 10 });
  for (let i = 0; i < 5; i++) ops.push({ t: 'expire' });
  // Every batch is delivered twice (a redelivery racing the first delivery).
  const twice = ops.filter((o) => o.t === 'batch');
  return [...ops, ...twice].sort(() => r() - 0.5);
}

/**
 * One set of customers. Each parent has block A (large, expiring soonest: absorbs all usage
 * and manual decrements), block B (no expiry: voids, amendments and expiration changes take
 * from it) and block C (already past its expiry: the expiry passes expire it).
 */
async function world(pool: Pool) {
  const ids: string[] = [];
  const blocks: { a: string; b: string; c: string }[] = [];
  for (let i = 0; i < CUSTOMERS; i++) {
    const id = newId();
    ids.push(id);
    await pool.query('INSERT INTO customers (id, name, parent_id) VALUES ($1, $2, $3)', [id, `c${i}`, i % 2 === 1 ? ids[i - 1] : null]);
  }
  const soon = new Date(Date.now() + 86_400_000).toISOString();
  const later = new Date(Date.now() + 2 * 86_400_000).toISOString();
  for (let i = 0; i < CUSTOMERS; i += 2) {
    const ref = { id: ids[i]!, external_customer_id: null };
    const a = await createLedgerEntry(pool, ref, parseLedgerEntry({ entry_type: 'increment', amount: 100_000, expiry_date: soon, currency: UNIT }));
    const b = await createLedgerEntry(pool, ref, parseLedgerEntry({ entry_type: 'increment', amount: 5_000, currency: UNIT }));
    const c = await createLedgerEntry(pool, ref, parseLedgerEntry({ entry_type: 'increment', amount: 300, expiry_date: later, currency: UNIT }));
    blocks[i] = { a: a.credit_block.id, b: b.credit_block.id, c: c.credit_block.id };
    await pool.query("UPDATE credit_blocks SET expiry_date = now() - interval '1 second', effective_date = now() - interval '1 day' WHERE id = $1", [c.credit_block.id]);
  }
  const run = async (op: Op): Promise<void> => {
    const entry = (c: number, body: Record<string, unknown>) => createLedgerEntry(pool, { id: ids[c]!, external_customer_id: null }, parseLedgerEntry({ currency: UNIT, ...body }));
    switch (op.t) {
      case 'batch': {
        const batch: DebitBatch = {
          id: `${ids[0]}:${op.id}`, partition: 0, firstSeq: 0, lastSeq: 0, receivedAtMax: Date.now(),
          lines: op.lines.map((l) => ({ customerId: ids[l.c]!, pricingUnit: UNIT, priceId: l.price, day: '2026-01-01', amountPicos: String(BigInt(l.cents) * CENT), quantityPicos: '0', events: 1 })),
        };
        await applyDebitBatches(pool, [batch]);
        return;
      }
      case 'grant':
        await entry(op.c, { entry_type: 'increment', amount: op.cents / 100 });
        return;
      case 'void':
        await entry(op.c, { entry_type: 'void', block_id: blocks[op.c]!.b, amount: op.cents / 100 });
        return;
      case 'amend':
        await entry(op.c, { entry_type: 'amendment', block_id: blocks[op.c]!.b, amount: op.cents / 100 });
        return;
      case 'decrement':
        await entry(op.c, { entry_type: 'decrement', amount: op.cents / 100 });
        return;
      case 'move':
        await entry(op.c, { entry_type: 'expiration_change', block_id: blocks[op.c]!.b, amount: op.cents / 100, target_expiry_date: new Date(Date.now() + 5 * 86_400_000).toISOString() });
        return;
      case 'expire':
        await expireDueBlocks(pool, 1000);
        return;
    }
  };
  const snapshot = async () => {
    const out = [];
    for (let i = 0; i < CUSTOMERS; i++) {
      const bal = await pool.query<{ overage: string }>('SELECT overage::text FROM credit_balances WHERE customer_id = $1', [ids[i]]);
      const roles = await pool.query<{ role: string; remaining: string }>(
        `SELECT CASE id WHEN $2 THEN 'a' WHEN $3 THEN 'b' WHEN $4 THEN 'c' ELSE 'other' END AS role, sum(remaining)::text AS remaining
           FROM credit_blocks WHERE customer_id = $1 GROUP BY 1 ORDER BY 1`,
        [ids[i], blocks[i]?.a ?? '', blocks[i]?.b ?? '', blocks[i]?.c ?? ''],
      );
      const entries = await pool.query<{ entry_type: string; n: string; amount: string; maxseq: string }>(
        `SELECT entry_type, count(*)::text AS n, sum(amount)::text AS amount, max(ledger_sequence_number)::text AS maxseq
           FROM ledger_entries WHERE customer_id = $1 GROUP BY 1 ORDER BY 1`,
        [ids[i]],
      );
      const seqs = await pool.query<{ n: string; max: string | null }>('SELECT count(*)::text AS n, max(ledger_sequence_number)::text AS max FROM ledger_entries WHERE customer_id = $1', [ids[i]]);
      expect(seqs.rows[0]!.max ?? '0').toBe(seqs.rows[0]!.n); // 1..n, no gaps, no duplicates
      out.push({ overage: bal.rows[0]?.overage ?? null, roles: roles.rows, entries: entries.rows.map((e) => ({ type: e.entry_type, n: e.n, amount: e.amount })) });
    }
    return out;
  };
  return { run, snapshot, ids };
}

describe('credit ledger under concurrency', () => {
  let env: TestEnv;
  let pool: Pool;

  beforeAll(async () => {
    env = testEnv();
    await ensureDatabase(env.config.databaseUrl);
    pool = createPool(env.config.databaseUrl, { max: 8 });
    await migrate(pool, [LEDGER_MIGRATIONS]);
  });
  afterAll(async () => {
    await pool?.end();
    await env?.cleanup();
  });

  it('ends concurrent batches and API writes in the same state as a serial run', async () => {
    const ops = operations();
    const concurrent = await world(pool);
    const serial = await world(pool);

    const results = await Promise.allSettled(ops.map((op) => concurrent.run(op)));
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed.map((f) => String((f as PromiseRejectedResult).reason))).toEqual([]);
    for (const op of ops) await serial.run(op);

    const a = await concurrent.snapshot();
    const b = await serial.snapshot();
    expect(a).toEqual(b);
    // The checks bite: usage reached every parent and some children, C blocks all expired.
    expect(a.every((c, i) => i % 2 === 1 || c.roles.some((r) => r.role === 'c' && r.remaining === '0.000000000000'))).toBe(true);
    const applied = await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM applied_batches WHERE batch_id LIKE $1', [`${concurrent.ids[0]}:%`]);
    expect(Number(applied.rows[0]!.n)).toBe(60);
  });

  it('prunes applied batch ids after the replay horizon, and idempotency records after their TTL', async () => {
    await pool.query("INSERT INTO applied_batches (batch_id, applied_at) VALUES ('old', now() - interval '9 days'), ('recent', now() - interval '1 day')");
    await pool.query("INSERT INTO idempotency_keys (key, scope, request_hash, status, response, created_at) VALUES ('k-old', 's', '\\x00', 201, '{}', now() - interval '2 days'), ('k-new', 's', '\\x00', 201, '{}', now())");
    const r = await pruneLedger(pool, { replayHorizonMs: 8 * 86_400_000, idempotencyTtlMs: 86_400_000 });
    expect(r).toEqual({ batches: 1, idempotencyKeys: 1 });
    const left = await pool.query("SELECT batch_id FROM applied_batches WHERE batch_id IN ('old', 'recent')");
    expect(left.rows.map((x) => x.batch_id)).toEqual(['recent']);
    const keys = await pool.query("SELECT key FROM idempotency_keys WHERE scope = 's'");
    expect(keys.rows.map((x) => x.key)).toEqual(['k-new']);
  });

  it('activates a pending-payment block: it settles overage, counts, and the hooks see the change', async () => {
    const id = newId();
    await pool.query("INSERT INTO customers (id, name) VALUES ($1, 'topup')", [id]);
    const pair = { customerId: id, pricingUnit: UNIT };
    await applyDebitBatches(pool, [{ id: `${id}:1`, partition: 0, firstSeq: 0, lastSeq: 0, receivedAtMax: Date.now(), lines: [{ customerId: id, pricingUnit: UNIT, priceId: 'p', day: '2026-01-01', amountPicos: String(4n * 100n * CENT), quantityPicos: '0', events: 1 }] }]);
    const seen: BalanceChange[] = [];
    const remove = addCrossingHook(async (_db, changes) => void seen.push(...changes.filter((x) => x.customerId === id)));
    try {
      const [entryId] = await withTx(pool, async (c) => {
        const t = new BalanceTracker(c, 'top_up');
        await t.lock([pair], true);
        const ids = await incrementInTx(c, t, pair, { ...(parseLedgerEntry({ entry_type: 'increment', amount: 10 }) as Extract<ReturnType<typeof parseLedgerEntry>, { entryType: 'increment' }>), currency: UNIT }, { source: 'top_up', status: 'pending_payment' });
        await t.finish();
        return ids;
      });
      const e = await pool.query<{ block_id: string; starting_balance: string; ending_balance: string }>('SELECT block_id, starting_balance::text, ending_balance::text FROM ledger_entries WHERE id = $1', [entryId]);
      expect([e.rows[0]!.starting_balance, e.rows[0]!.ending_balance]).toEqual(['-4.000000000000', '-4.000000000000']);
      expect(seen).toEqual([]);
      await activateBlock(pool, e.rows[0]!.block_id);
      const b = await pool.query<{ overage: string }>('SELECT overage::text FROM credit_balances WHERE customer_id = $1', [id]);
      expect(b.rows[0]!.overage).toBe('0.000000000000');
      expect(seen.map((x) => [x.before, x.after, x.cause])).toEqual([[-4n * 1_000_000_000_000n, 6n * 1_000_000_000_000n, 'block_activated']]);
      const out = await pool.query("SELECT topic FROM outbox WHERE customer_id = $1 ORDER BY id", [id]);
      // No alert is configured for this customer, so no recovered notification (Orb's rule;
      // ledger/test/alerts.test.ts covers the alert side of crossings).
      expect(out.rows.map((x) => x.topic)).toEqual(['credit_balance.created']);
    } finally {
      remove();
    }
  });
});
