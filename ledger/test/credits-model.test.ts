// Property test: random sequences of grants, usage debits (also replayed), manual decrements,
// voids, amendments, expiration changes and expiries on a parent and its pooled child, checked
// after every step against a simple model and against the invariants of DESIGN.md:
//   balance = increments - decrements - expirations - voids + amendments - unsettled overage,
//   no block below zero, overage tracked, replaying a batch changes nothing.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { createPool, ensureDatabase, migrate, type Pool } from '@drawdown/pg';
import type { DebitBatch } from '@drawdown/debits';
import { applyDebitBatches, createLedgerEntry, expireDueBlocks, LEDGER_MIGRATIONS } from '../src/index';
import { parseLedgerEntry } from '../src/credits/parse';
import { readBalances, toPicos } from '../src/credits/balances';
import { newId } from '../src/ids';

const UNIT = 'credits';
const CENT = 10_000_000_000n; // 0.01 in picos
const DAY = 86_400_000;

interface MBlock {
  id: string;
  owner: string;
  initial: bigint;
  remaining: bigint;
  expiry: number | null;
  cost: number;
  seq: number;
  expired: boolean;
}

class Model {
  blocks: MBlock[] = [];
  overage = new Map<string, bigint>();
  seq = 0;
  constructor(
    readonly parent: string,
    readonly child: string,
  ) {
    this.overage.set(parent, 0n);
    this.overage.set(child, 0n);
  }
  order(owner: string): MBlock[] {
    return this.blocks
      .filter((b) => b.owner === owner && b.remaining > 0n && !b.expired)
      .sort((a, b) => (a.expiry ?? Infinity) - (b.expiry ?? Infinity) || a.cost - b.cost || a.seq - b.seq);
  }
  available(owner: string): bigint {
    return this.order(owner).reduce((s, b) => s + b.remaining, 0n);
  }
  balance(owner: string): bigint {
    return this.available(owner) - this.overage.get(owner)!;
  }
  draw(owner: string, amount: bigint): bigint {
    let left = amount;
    for (const b of this.order(owner)) {
      const take = b.remaining < left ? b.remaining : left;
      b.remaining -= take;
      left -= take;
    }
    return left;
  }
  settle(owner: string, b: MBlock, upTo: bigint): void {
    const o = this.overage.get(owner)!;
    const fill = o < upTo ? o : upTo;
    b.remaining -= fill;
    this.overage.set(owner, o - fill);
  }
  usage(who: string, amount: bigint): void {
    let left = this.draw(who, amount);
    if (who === this.child && left > 0n) left = this.draw(this.parent, left);
    this.overage.set(who, this.overage.get(who)! + left);
  }
}

type Op =
  | { t: 'grant'; who: 0 | 1; cents: number; expiresInDays: number | null; cost: number }
  | { t: 'usage'; who: 0 | 1; cents: number }
  | { t: 'replay'; pick: number }
  | { t: 'decrement'; who: 0 | 1; cents: number }
  | { t: 'void'; pick: number; cents: number }
  | { t: 'amend'; pick: number; cents: number }
  | { t: 'move'; pick: number; cents: number | null; days: number }
  | { t: 'expire'; pick: number };

const who = fc.constantFrom<0 | 1>(0, 1);
const cents = fc.integer({ min: 1, max: 5_000 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('grant' as const), who, cents, expiresInDays: fc.option(fc.integer({ min: 1, max: 2 }), { nil: null, freq: 2 }), cost: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('usage' as const), who, cents: fc.integer({ min: 1, max: 1_500 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('replay' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('decrement' as const), who, cents }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('void' as const), pick: fc.nat(), cents }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('amend' as const), pick: fc.nat(), cents: fc.integer({ min: -3_000, max: 3_000 }).filter((x) => x !== 0) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('move' as const), pick: fc.nat(), cents: fc.option(cents, { nil: null }), days: fc.integer({ min: 1, max: 9 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('expire' as const), pick: fc.nat() }) },
);

describe('credit ledger against a model', () => {
  let env: TestEnv;
  let pool: Pool;

  beforeAll(async () => {
    env = testEnv();
    await ensureDatabase(env.config.databaseUrl);
    pool = createPool(env.config.databaseUrl, { max: 4 });
    await migrate(pool, [LEDGER_MIGRATIONS]);
  });
  afterAll(async () => {
    await pool?.end();
    await env?.cleanup();
  });

  async function check(m: Model): Promise<void> {
    for (const c of [m.parent, m.child]) {
      const b = (await readBalances(pool, [{ customerId: c, pricingUnit: UNIT }])).get(`${c}\u0000${UNIT}`);
      const dbBalance = b?.balance ?? 0n;
      expect(dbBalance).toBe(m.balance(c));
      expect(b?.overage ?? 0n).toBe(m.overage.get(c));
      // Ledger: signed amounts (expiration_change moves credits, balance unchanged) minus the
      // overage not yet settled is the balance.
      const l = await pool.query<{ s: string; n: string; maxseq: string | null }>(
        `SELECT coalesce(sum(amount) FILTER (WHERE entry_type <> 'expiration_change'), 0)::text AS s, count(*)::text AS n, max(ledger_sequence_number)::text AS maxseq
           FROM ledger_entries WHERE customer_id = $1 AND pricing_unit = $2`,
        [c, UNIT],
      );
      expect(toPicos(l.rows[0]!.s) - m.overage.get(c)!).toBe(dbBalance);
      expect(Number(l.rows[0]!.maxseq ?? 0)).toBe(Number(l.rows[0]!.n)); // 1..n, no gaps
      // Overage tracked: what usage could not cover = outstanding + settled later.
      const o = await pool.query<{ usage: string; settled: string }>(
        `SELECT (SELECT coalesce(sum(amount), 0) FROM usage_overage WHERE customer_id = $1 AND pricing_unit = $2)::text AS usage,
                (SELECT coalesce(-sum(amount), 0) FROM ledger_entries WHERE customer_id = $1 AND pricing_unit = $2 AND settles_overage)::text AS settled`,
        [c, UNIT],
      );
      expect(toPicos(o.rows[0]!.usage)).toBe(m.overage.get(c)! + toPicos(o.rows[0]!.settled));
    }
    const blocks = await pool.query<{ id: string; remaining: string }>('SELECT id, remaining::text FROM credit_blocks WHERE customer_id = ANY($1)', [[m.parent, m.child]]);
    expect(blocks.rows.length).toBe(m.blocks.length);
    for (const row of blocks.rows) {
      const mb = m.blocks.find((x) => x.id === row.id);
      expect(mb, `block ${row.id} in the model`).toBeDefined();
      expect(toPicos(row.remaining)).toBe(mb!.remaining);
      expect(toPicos(row.remaining) >= 0n).toBe(true);
    }
  }

  async function expectRejected(p: Promise<unknown>, field: string): Promise<void> {
    const err = (await p.then(() => undefined, (e: unknown) => e)) as { code?: string; errors?: { field: string }[] } | undefined;
    expect(err, `expected a rejection naming ${field}`).toBeDefined();
    expect(err!.errors?.map((x) => x.field)).toContain(field);
  }

  let checks = 0;
  it('keeps the invariants after every step', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
        const parent = newId();
        const child = newId();
        await pool.query("INSERT INTO customers (id, name) VALUES ($1, 'parent')", [parent]);
        await pool.query("INSERT INTO customers (id, name, parent_id) VALUES ($1, 'child', $2)", [child, parent]);
        const m = new Model(parent, child);
        const t0 = Date.now();
        const batches: DebitBatch[] = [];
        const ref = (id: string) => ({ id, external_customer_id: null });
        const entry = (id: string, body: Record<string, unknown>) => createLedgerEntry(pool, ref(id), parseLedgerEntry({ currency: UNIT, ...body }));
        for (const [i, op] of ops.entries()) {
          const stamp = (days: number) => t0 + days * DAY + i * 1000;
          switch (op.t) {
            case 'grant': {
              const c = op.who === 0 ? parent : child;
              const amount = BigInt(op.cents) * CENT;
              // Same-day expiries tie exactly, so cost basis and then age decide the order.
              const expiry = op.expiresInDays === null ? null : t0 + op.expiresInDays * DAY;
              const e = await entry(c, { entry_type: 'increment', amount: `${op.cents / 100}`, expiry_date: expiry === null ? null : new Date(expiry).toISOString(), per_unit_cost_basis: String(op.cost) });
              const b: MBlock = { id: e.credit_block.id, owner: c, initial: amount, remaining: amount, expiry, cost: op.cost, seq: m.seq++, expired: false };
              m.blocks.push(b);
              m.settle(c, b, amount);
              break;
            }
            case 'usage': {
              const c = op.who === 0 ? parent : child;
              const batch: DebitBatch = {
                id: `b-${newId()}`, partition: 0, firstSeq: i, lastSeq: i, receivedAtMax: Date.now(),
                lines: [{ customerId: c, pricingUnit: UNIT, priceId: `p${i % 2}`, day: '2026-01-01', amountPicos: String(BigInt(op.cents) * CENT), quantityPicos: '0', events: 1 }],
              };
              batches.push(batch);
              await applyDebitBatches(pool, [batch]);
              m.usage(c, BigInt(op.cents) * CENT);
              break;
            }
            case 'replay': {
              if (batches.length === 0) continue;
              const r = await applyDebitBatches(pool, [batches[op.pick % batches.length]!]);
              expect(r.applied).toEqual([]);
              break;
            }
            case 'decrement': {
              const c = op.who === 0 ? parent : child;
              const amount = BigInt(op.cents) * CENT;
              const p = entry(c, { entry_type: 'decrement', amount: `${op.cents / 100}` });
              if (amount > m.available(c)) await expectRejected(p, 'amount');
              else {
                await p;
                m.draw(c, amount);
              }
              break;
            }
            case 'void':
            case 'amend':
            case 'move':
            case 'expire': {
              if (m.blocks.length === 0) continue;
              const b = m.blocks[op.pick % m.blocks.length]!;
              if (op.t === 'expire') {
                // The clock passes the block's expiry: its expiry time moves into the past.
                await pool.query("UPDATE credit_blocks SET expiry_date = now() - interval '1 second', effective_date = least(effective_date, now() - interval '1 minute') WHERE id = $1", [b.id]);
                await expireDueBlocks(pool, 100);
                b.expired = true;
                b.expiry = 0;
                b.remaining = 0n;
                break;
              }
              if (op.t === 'void') {
                const amount = BigInt(op.cents) * CENT;
                const p = entry(b.owner, { entry_type: 'void', block_id: b.id, amount: `${op.cents / 100}` });
                if (b.expired && b.remaining > 0n) await expectRejected(p, 'block_id');
                else if (amount > b.remaining) await expectRejected(p, 'amount');
                else {
                  await p;
                  b.remaining -= amount;
                }
              } else if (op.t === 'amend') {
                const amount = BigInt(op.cents) * CENT;
                const p = entry(b.owner, { entry_type: 'amendment', block_id: b.id, amount: `${op.cents / 100}` });
                if (b.expired) await expectRejected(p, 'block_id');
                else if (b.remaining + amount > b.initial || b.remaining + amount < 0n) await expectRejected(p, 'amount');
                else {
                  await p;
                  b.remaining += amount;
                  if (amount > 0n) m.settle(b.owner, b, amount);
                }
              } else {
                const amount = op.cents === null ? b.remaining : BigInt(op.cents) * CENT;
                const target = stamp(op.days);
                const p = entry(b.owner, { entry_type: 'expiration_change', block_id: b.id, ...(op.cents === null ? {} : { amount: `${op.cents / 100}` }), target_expiry_date: new Date(target).toISOString() });
                if (b.expired) await expectRejected(p, 'block_id');
                else if (amount === 0n) await expectRejected(p, 'block_id');
                else if (amount > b.remaining) await expectRejected(p, 'amount');
                else {
                  const e = await p;
                  b.remaining -= amount;
                  const target_block_id = e.metadata.target_block_id!;
                  m.blocks.push({ id: target_block_id, owner: b.owner, initial: amount, remaining: amount, expiry: target, cost: b.cost, seq: m.seq++, expired: false });
                }
              }
              break;
            }
          }
          await check(m);
          checks++;
        }
      }),
      {
        numRuns: 40,
        // Fixed cases first: ties on expiry broken by cost basis, then by age; a child's usage
        // beyond its blocks drawn from its parent's, then overage settled by the next grant.
        examples: [
          [[{ t: 'grant', who: 0, cents: 100, expiresInDays: 1, cost: 1 }, { t: 'grant', who: 0, cents: 100, expiresInDays: 1, cost: 0 }, { t: 'usage', who: 0, cents: 150 }]],
          [[{ t: 'grant', who: 1, cents: 100, expiresInDays: null, cost: 0 }, { t: 'grant', who: 1, cents: 100, expiresInDays: null, cost: 0 }, { t: 'usage', who: 1, cents: 50 }]],
          [[{ t: 'grant', who: 0, cents: 100, expiresInDays: null, cost: 0 }, { t: 'grant', who: 1, cents: 10, expiresInDays: 2, cost: 0 }, { t: 'usage', who: 1, cents: 150 }, { t: 'replay', pick: 0 }, { t: 'grant', who: 1, cents: 70, expiresInDays: null, cost: 2 }]],
        ],
      },
    );
    expect(checks).toBeGreaterThan(100);
  });
});
