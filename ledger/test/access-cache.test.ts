// The access cache's first checks: customers missed together are loaded together (a handful of
// queries, not a handful per customer), unknown ones still get the usual not-found error, and a
// balance change committed while a customer is being loaded is not lost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@drawdown/log';
import { parseDecimal } from '@drawdown/money';
import type { Pool } from '@drawdown/pg';
import { applyDebitBatches } from '../src/index';
import { AccessCache } from '../src/access/cache';
import { startHarness, type Harness } from './harness';

let h: Harness;
const ids: string[] = [];
const CUSTOMERS = 30;

/** h.pool, counting queries; `hold` keeps the result of matching queries until released. */
function watchedPool() {
  let queries = 0;
  let hold: { match: string; reached: () => void; release: Promise<void> } | undefined;
  const pool = {
    async query(...args: unknown[]) {
      queries++;
      const r = await (h.pool.query as (...a: unknown[]) => Promise<unknown>)(...args);
      if (hold && String(args[0]).includes(hold.match)) {
        const hd = hold;
        hold = undefined;
        hd.reached();
        await hd.release;
      }
      return r;
    },
  } as unknown as Pool;
  return {
    pool,
    get queries() {
      return queries;
    },
    /** Holds the next query containing `match`; resolves once it has run, with the release function. */
    hold(match: string): Promise<() => void> {
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      return new Promise((reached) => (hold = { match, reached: () => reached(release), release: released }));
    },
  };
}

const newCache = (pool: Pool) => new AccessCache({ pool, log: silentLogger, pollMs: 3_600_000, maxCustomers: 1000, catalogTtlMs: 60_000, defaultMode: 'block_when_depleted' });
const credits = (n: number) => BigInt(n) * 10n ** 12n;

beforeAll(async () => {
  h = await startHarness({});
  for (let i = 0; i < CUSTOMERS; i++) {
    const c = await h.orb.customers.create({ name: `a${i}`, email: `a${i}@example.com`, external_customer_id: `acc-${i}` });
    await h.orb.customers.credits.ledger.createEntry(c.id, { entry_type: 'increment', amount: 10 + i, currency: 'credits' });
    ids.push(c.id);
  }
});
afterAll(async () => {
  await h?.stop();
});

describe('access cache', () => {
  it('loads the customers of simultaneous first checks together', async () => {
    const w = watchedPool();
    const cache = newCache(w.pool);
    await cache.start();
    try {
      const before = w.queries;
      const answers = await Promise.all(ids.map((id, i) => cache.check(i % 2 === 0 ? { id } : { externalId: `acc-${i}` }, { pricingUnit: 'credits' })));
      expect(answers.map((a) => a.balance)).toEqual(ids.map((_, i) => credits(10 + i)));
      expect(answers.map((a) => a.customer_id)).toEqual(ids);
      expect(answers.every((a) => a.allowed && a.reason === 'balance_available')).toBe(true);
      // One batch: customers; balance units and balances; policies; unpaid invoices; metrics.
      expect(w.queries - before).toBeLessThanOrEqual(6);
      expect(cache.size).toBe(CUSTOMERS);

      // An unknown customer among known ones: its check alone fails, with the usual error.
      cache.invalidate(ids[0]!);
      const mixed = await Promise.allSettled([cache.check({ id: ids[0]! }, {}), cache.check({ id: 'nobody' }, {}), cache.check({ externalId: 'nobody-ext' }, {})]);
      expect(mixed[0]).toMatchObject({ status: 'fulfilled', value: { customer_id: ids[0], balance: credits(10) } });
      expect(mixed[1]).toMatchObject({ status: 'rejected', reason: { code: 'not_found', message: 'no customer with id "nobody"' } });
      expect(mixed[2]).toMatchObject({ status: 'rejected', reason: { code: 'not_found', message: 'no customer with external_customer_id "nobody-ext"' } });
      // Answers from memory now.
      const q = w.queries;
      await cache.check({ externalId: 'acc-3' }, {});
      expect(w.queries).toBe(q);
    } finally {
      await cache.stop();
    }
  });

  it('does not lose a change committed while the customer was loading', async () => {
    const w = watchedPool();
    const cache = newCache(w.pool);
    await cache.start();
    try {
      const id = ids[5]!;
      // The balances are read (10 + 5 = 15 credits), then held before the customer is cached.
      const held = w.hold('sum(k.remaining)');
      const first = cache.check({ id }, {});
      const release = await held;
      const day = new Date().toISOString().slice(0, 10);
      await applyDebitBatches(h.pool, [{
        id: 'race:1', partition: 0, firstSeq: 1, lastSeq: 1, receivedAtMax: Date.now(),
        lines: [{ customerId: id, pricingUnit: 'credits', priceId: 'price_x', day, amountPicos: parseDecimal('4').toString(), quantityPicos: parseDecimal('4').toString(), events: 1 }],
      }]);
      // A poll sees the change before the customer is in the cache, and skips it...
      await cache.poll();
      release();
      expect((await first).balance).toBe(credits(15));
      // ...and the next poll reads it again, since the feed did not move past the load's start.
      await cache.poll();
      expect((await cache.check({ id }, {})).balance).toBe(credits(11));
    } finally {
      await cache.stop();
    }
  });

  it('reloads when the balance feed was pruned past its position', async () => {
    const cache = newCache(h.pool);
    await cache.start();
    try {
      const id = ids[7]!;
      const start = (await cache.check({ id }, {})).balance;
      const day = new Date().toISOString().slice(0, 10);
      await applyDebitBatches(h.pool, [{
        id: 'prune:1', partition: 0, firstSeq: 1, lastSeq: 1, receivedAtMax: Date.now(),
        lines: [{ customerId: id, pricingUnit: 'credits', priceId: 'price_x', day, amountPicos: parseDecimal('2').toString(), quantityPicos: parseDecimal('2').toString(), events: 1 }],
      }]);
      // The feed rows of that change are pruned (as the coalescer does past its horizon) before
      // the cache polls: the poll cannot see the change, so it drops what it holds...
      await h.pool.query(
        `WITH d AS (DELETE FROM balance_feed RETURNING txid)
         UPDATE balance_feed_pruned SET upto = greatest(upto, (SELECT max(txid) FROM d)) WHERE EXISTS (SELECT 1 FROM d)`,
      );
      await cache.poll();
      expect(cache.size).toBe(0);
      // ...and the next check reads the balance afresh.
      expect((await cache.check({ id }, {})).balance).toBe(start - credits(2));
    } finally {
      await cache.stop();
    }
  });
});
