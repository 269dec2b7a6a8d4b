// The rater in this process against real NATS, chDB and Postgres: two raters sharing the
// partitions through leases (crash failover, fencing), dedup past the memory's reach, and
// unpriced events listed and re-rated (automatically on a catalog change, and by command).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateClickHouse, openClickHouse, queryRows, type Ch } from '@drawdown/clickhouse';
import { names, openKv, lastEventSeq } from '@drawdown/nats';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { checkpointKey, startRater, type Rater } from '../src/index';
import { addCustomer, createCatalog, event, ledgerUsed, publish, startLedgerSide, type Catalog, type LedgerSide } from './harness';

const PICO = 10n ** 12n;
const TTL = 1500;

describe('rater (in process)', () => {
  let env: TestEnv;
  let side: LedgerSide;
  let ch: Ch;
  let cat: Catalog;
  let planId: string;
  let a: Rater | undefined;
  let b: Rater | undefined;
  const customers = Array.from({ length: 8 }, (_, i) => `r-${i}`);
  const usage = new Map<string, number>();
  const sent: ReturnType<typeof event>[] = [];
  let nextKey = 0;

  const fresh = (count: number, t0 = Date.now() - 30_000) => {
    const out = [];
    for (let i = 0; i < count; i++, nextKey++) {
      const ext = customers[nextKey % customers.length]!;
      usage.set(ext, (usage.get(ext) ?? 0) + 1);
      const e = event(ext, `k-${nextKey}`, t0 + i);
      sent.push(e);
      out.push(e);
    }
    return out;
  };

  const live = () => [a, b].filter((x): x is Rater => x !== undefined);
  async function idle(timeoutMs = 60_000) {
    const until = Date.now() + timeoutMs;
    const jsm = await (await import('@drawdown/nats')).jetstreamManager(side.nc);
    const n = names(env.config.namespace);
    for (let p = 0; p < env.config.partitions; p++) {
      const last = await lastEventSeq(jsm, n, p);
      for (;;) {
        const r = live().flatMap((x) => x.runners).find((x) => x.partition === p);
        if (r && r.position >= last) break;
        if (Date.now() > until) throw new Error(`partition ${p} not caught up to ${last}`);
        await new Promise((res) => setTimeout(res, 20));
      }
    }
    await side.ledger.consumer.idle();
  }

  async function expectExact() {
    const rows = await queryRows<{ c: string; n: string; k: string }>(ch, "SELECT external_customer_id AS c, count() AS n, uniqExact(idempotency_key) AS k FROM rated_events WHERE status = 'rated' GROUP BY c");
    const by = new Map(rows.map((r) => [r.c, r]));
    const used = await ledgerUsed(side.pool, cat.ids, 1000n * PICO);
    for (const ext of customers) {
      const u = usage.get(ext) ?? 0;
      expect({ ext, n: Number(by.get(ext)?.n ?? 0), k: Number(by.get(ext)?.k ?? 0) }).toEqual({ ext, n: u, k: u });
      // unit price 0.001 credits
      expect({ ext, used: used.get(ext) }).toEqual({ ext, used: (BigInt(u) * 10n ** 9n).toString() });
    }
  }

  beforeAll(async () => {
    env = testEnv({
      DRAWDOWN_PARTITIONS: '2', DRAWDOWN_RATER_LEASE_TTL_MS: String(TTL), DRAWDOWN_RATER_DEDUP_MEMORY_EVENTS: '1000',
      DRAWDOWN_INGEST_GRACE_MS: '600000', DRAWDOWN_RATER_BATCH_MAX_EVENTS: '300',
    });
    side = await startLedgerSide(env.config, () => (b ?? a)?.routes ?? []);
    ch = await openClickHouse({ url: '', dataDir: join(env.config.dataDir, 'chdb') }, side.log);
    await migrateClickHouse(ch);
    cat = await createCatalog(side.call, customers, '0.001');
    planId = (await side.pool.query<{ plan_id: string }>('SELECT plan_id FROM prices WHERE id = $1', [cat.priceId])).rows[0]!.plan_id;
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await ch?.close();
    await side?.stop();
    await env?.cleanup();
  });

  it('drops duplicates in a batch, across batches, and a copy whose fingerprint left memory', async () => {
    a = await startRater({ config: env.config, nc: side.nc, ch, pool: side.pool, log: side.log, owner: 'rater-a' });
    expect(a.runners.map((r) => r.partition)).toEqual([0, 1]);
    const first = fresh(3000);
    await publish(side.nc, env.config, [...first.slice(0, 100), ...first.slice(0, 10)], 110); // copies inside one message
    await publish(side.nc, env.config, first.slice(100), 100);
    await publish(side.nc, env.config, first.slice(2900), 50); // recent copies: memory hits
    await idle();
    // Each partition holds 1000 fingerprints: the first events have been evicted.
    for (const r of a.runners) {
      expect(r.dedup.size).toBe(1000);
      expect(r.dedup.evictedUpToMs).toBeGreaterThanOrEqual(first[20]!.t);
    }
    await publish(side.nc, env.config, first.slice(0, 20), 20); // old copies: only ClickHouse knows them
    await idle();
    await expectExact();
  });

  it('shares partitions between two raters and fails over within the lease bound after a crash', async () => {
    b = await startRater({ config: env.config, nc: side.nc, ch, pool: side.pool, log: side.log, owner: 'rater-b' });
    const until = Date.now() + 10 * TTL;
    while (!(a!.runners.length === 1 && b.runners.length === 1)) {
      if (Date.now() > until) throw new Error(`no rebalance: a=${a!.leases.partitions} b=${b.leases.partitions}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await publish(side.nc, env.config, [...fresh(600), ...sent.slice(-100)], 60);
    await idle();
    await expectExact();

    // A dies without handing its lease back; B takes its partition once the lease expires.
    const orphan = a!.runners[0]!.partition;
    await a!.stop({ abandon: true });
    a = undefined;
    const crashedAt = Date.now();
    await publish(side.nc, env.config, [...fresh(600), ...sent.slice(-50)], 60);
    while (!b.runners.some((r) => r.partition === orphan)) {
      if (Date.now() - crashedAt > 3 * TTL) throw new Error('no failover');
      await new Promise((r) => setTimeout(r, 20));
    }
    // Bound: the TTL plus one renewal interval (plus scheduling slack).
    expect(Date.now() - crashedAt).toBeLessThan(TTL + TTL / 3 + 2000);
    await idle();
    await expectExact();
  });

  it('fences a runner whose checkpoint another owner wrote: it stops without committing, the owner resumes exactly', async () => {
    const kv = await openKv(side.nc, names(env.config.namespace).raterStateBucket);
    const before = b!.runners.find((r) => r.partition === 0)!;
    const e = await kv.get(checkpointKey(0));
    await kv.put(checkpointKey(0), e!.string()); // another writer: the revision moves on
    await publish(side.nc, env.config, fresh(400), 40);
    const until = Date.now() + 10 * TTL;
    while (b!.runners.find((r) => r.partition === 0) === before || !b!.runners.some((r) => r.partition === 0)) {
      if (Date.now() > until) throw new Error('runner was not fenced');
      await new Promise((r) => setTimeout(r, 20));
    }
    await idle();
    await expectExact();
  });

  it('lists unpriced events and re-rates them: on the catalog change inside the window, by command after it', async () => {
    const now = Date.now();
    const recent = [event('late-1', 'u-1', now - 5000), event('late-1', 'u-2', now - 4000), event('late-1', 'u-3', now - 3000)];
    const old = [event('late-2', 'u-4', now - 2 * 3600_000)]; // outside the 10-minute window
    await publish(side.nc, env.config, [...recent, ...old, recent[0]!], 10);
    await idle();

    const page1 = await side.call('GET', '/v1/unpriced_events?external_customer_id=late-1&limit=2');
    expect(page1.status).toBe(200);
    const data1 = page1.body.data as { idempotency_key: string; reason: string; customer_id: string | null }[];
    expect(data1.map((x) => [x.idempotency_key, x.reason, x.customer_id])).toEqual([['u-1', 'unknown_customer', null], ['u-2', 'unknown_customer', null]]);
    const meta = page1.body.pagination_metadata as { has_more: boolean; next_cursor: string };
    expect(meta.has_more).toBe(true);
    const page2 = await side.call('GET', `/v1/unpriced_events?external_customer_id=late-1&limit=2&cursor=${meta.next_cursor}`);
    expect((page2.body.data as { idempotency_key: string }[]).map((x) => x.idempotency_key)).toEqual(['u-3']);
    expect((await side.call('GET', '/v1/unpriced_events?reason=nope&timeframe_start=yesterday')).body).toMatchObject({
      status: 400, errors: [{ field: 'reason' }, { field: 'timeframe_start' }],
    });

    // The customers appear: the announcement makes the rater re-rate late-1's recent events.
    customers.push('late-1', 'late-2');
    cat.ids.set('late-1', await addCustomer(side.call, 'late-1', planId));
    cat.ids.set('late-2', await addCustomer(side.call, 'late-2', planId));
    usage.set('late-1', 3);
    const until = Date.now() + 30_000;
    for (;;) {
      const r = await queryRows<{ n: string }>(ch, "SELECT count() AS n FROM rated_events WHERE status = 'rated' AND external_customer_id = 'late-1'");
      if (Number(r[0]!.n) === 3) break;
      if (Date.now() > until) throw new Error('late-1 not re-rated');
      await new Promise((res) => setTimeout(res, 100));
    }
    await idle();
    await expectExact();
    expect((await side.call('GET', '/v1/unpriced_events?external_customer_id=late-1')).body.data).toEqual([]);
    const stillOld = (await side.call('GET', '/v1/unpriced_events?external_customer_id=late-2')).body.data as { idempotency_key: string }[];
    expect(stillOld.map((x) => x.idempotency_key)).toEqual(['u-4']);

    // After the window: by command. Sent twice: priced once.
    const cmd = await side.call('POST', '/v1/unpriced_events/rerate', { external_customer_id: 'late-2' });
    expect(cmd.status).toBe(202);
    expect(cmd.body.republished_events).toBe(1);
    await side.call('POST', '/v1/unpriced_events/rerate', { external_customer_id: 'late-2' });
    usage.set('late-2', 1);
    await idle();
    await expectExact();
    expect((await side.call('GET', '/v1/unpriced_events?external_customer_id=late-2')).body.data).toEqual([]);
    const again = await side.call('POST', '/v1/unpriced_events/rerate', { external_customer_id: 'late-2' });
    expect(again.body.republished_events).toBe(0);
  });
});
