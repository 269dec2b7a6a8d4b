// Crash exactness with the rater in a child process (its own chDB): SIGKILL mid-stream and a
// crash between the ClickHouse insert and the debit publish; after a restart every event is
// rated once, ClickHouse rows and rollups and the ledger's balances match exactly. The plan's
// price is tiered, so the cumulative period quantities rebuilt after each crash are checked too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDecimal } from '@drawdown/money';
import { openKv, names } from '@drawdown/nats';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { readCheckpoint } from '../src/index';
import { createCatalog, event, ledgerUsed, publish, spawnRater, startLedgerSide, type Catalog, type LedgerSide } from './harness';

const PICO = 10n ** 12n;
const GRANT = 1000n * PICO;
/** Graduated: the first 50 calls of the period at 0.01, the rest at 0.001. */
const TIERS = { tiered_config: { tiers: [{ first_unit: '0', last_unit: '50', unit_amount: '0.01' }, { first_unit: '50', last_unit: null, unit_amount: '0.001' }] } };
const tiered = (u: number) => BigInt(Math.min(u, 50)) * 10n ** 10n + BigInt(Math.max(0, u - 50)) * 10n ** 9n;

describe('rater crashes (child process)', () => {
  let env: TestEnv;
  let side: LedgerSide;
  let cat: Catalog;
  const customers = Array.from({ length: 10 }, (_, i) => `crash-${i}`);
  const usage = new Map<string, number>();
  let nextKey = 0;
  const all: ReturnType<typeof event>[] = [];

  const fresh = (count: number) => {
    const out = [];
    for (let i = 0; i < count; i++, nextKey++) {
      const ext = customers[nextKey % customers.length]!;
      usage.set(ext, (usage.get(ext) ?? 0) + 1);
      const e = event(ext, `e-${nextKey}`, Date.now() - 120_000 + (nextKey % 1000));
      all.push(e);
      out.push(e);
    }
    return out;
  };
  const copies = (count: number, seed: number) => Array.from({ length: count }, (_, i) => all[(i * 7919 + seed) % all.length]!);

  /** Counts exact; amounts by the tier formula, or (after a price change) ledger = ClickHouse per customer. */
  async function expectExact(report: Record<string, unknown>, amounts: 'formula' | 'reconcile' = 'formula') {
    const r = report.report as { rows: { c: string; n: string; k: string; a: string }[]; rollup: { c: string; n: string; a: string }[] };
    const byId = new Map(r.rows.map((x) => [x.c, x]));
    const rollById = new Map(r.rollup.map((x) => [x.c, x]));
    await side.ledger.consumer.idle();
    const used = await ledgerUsed(side.pool, cat.ids, GRANT);
    for (const ext of customers) {
      const id = cat.ids.get(ext)!;
      const u = usage.get(ext) ?? 0;
      const amount = tiered(u);
      const picos = (dec: string) => parseDecimal(dec).toString();
      const stored = picos(byId.get(id)!.a);
      expect({ ext, n: Number(byId.get(id)?.n), k: Number(byId.get(id)?.k) }).toEqual({ ext, n: u, k: u });
      expect({ ext, n: Number(rollById.get(id)?.n), a: picos(rollById.get(id)!.a) }).toEqual({ ext, n: u, a: stored });
      expect({ ext, used: used.get(ext) }).toEqual({ ext, used: stored });
      if (amounts === 'formula') expect({ ext, a: stored }).toEqual({ ext, a: amount.toString() });
    }
  }

  beforeAll(async () => {
    env = testEnv({ DRAWDOWN_PARTITIONS: '2', DRAWDOWN_RATER_BATCH_MAX_EVENTS: '50', DRAWDOWN_RATER_ID: 'child', DRAWDOWN_RATER_LEASE_TTL_MS: '2000' });
    side = await startLedgerSide(env.config);
    cat = await createCatalog(side.call, customers, '1');
    await side.pool.query("UPDATE prices SET model_type = 'tiered', config = $1 WHERE id = $2", [JSON.stringify(TIERS), cat.priceId]);
    await side.pool.query('UPDATE catalog_version SET version = version + 1');
  });

  afterAll(async () => {
    await side?.stop();
    await env?.cleanup();
  });

  it('survives kill -9 mid-stream with duplicates inside batches, across batches and across the crash', async () => {
    // 3000 events, each 25-event message repeating 5 of its own keys, then 300 copies of earlier ones.
    const first = fresh(3000);
    const withDups = [];
    for (let i = 0; i < first.length; i += 20) withDups.push(...first.slice(i, i + 20), ...first.slice(i, i + 5));
    await publish(side.nc, env.config, withDups, 25);
    await publish(side.nc, env.config, copies(300, 1), 25);

    const kv = await openKv(side.nc, names(env.config.namespace).raterStateBucket);
    const child = spawnRater(env.config);
    await child.waitFor('started');
    let at = 0;
    for (let i = 0; i < 2000 && at === 0; i++) {
      at = (await readCheckpoint(kv, 0)).seq + (await readCheckpoint(kv, 1)).seq;
      if (at === 0) await new Promise((r) => setTimeout(r, 10));
    }
    child.proc.kill('SIGKILL');
    expect(await child.exited).toBe(null);
    expect(at).toBeGreaterThan(0);

    // While it is down: more copies (of events rated before the crash and after) and new events.
    await publish(side.nc, env.config, [...copies(200, 2), ...fresh(500), ...copies(100, 3)], 25);

    const again = spawnRater(env.config, { RATER_CHILD_REPORT: '1' });
    const report = await again.waitFor('report', 120_000);
    expect(await again.exited).toBe(0);
    await expectExact(report);
  });

  it('exits between the ClickHouse insert and the debit publish, then replays the batch exactly (even after a price change)', async () => {
    await publish(side.nc, env.config, [...fresh(600), ...copies(100, 4)], 25);
    const crashing = spawnRater(env.config, { RATER_TEST_CRASH_AT: 'after_clickhouse:3' });
    const crashed = await crashing.waitFor('crashing');
    expect(await crashing.exited).toBe(null);
    expect(crashing.proc.signalCode).toBe('SIGKILL');
    // Its ClickHouse rows are stored, its debit batch is not published: the restart must publish it once.
    expect(String(crashed.crashing)).toMatch(/^\d+:\d+-\d+$/);
    // The price changes before the restart: the replayed batch's debits must still match the
    // rows ClickHouse kept from the first attempt.
    const doubled = { tiered_config: { tiers: [{ first_unit: '0', last_unit: '50', unit_amount: '0.02' }, { first_unit: '50', last_unit: null, unit_amount: '0.002' }] } };
    await side.pool.query('UPDATE prices SET config = $1 WHERE id = $2', [JSON.stringify(doubled), cat.priceId]);
    await side.pool.query('UPDATE catalog_version SET version = version + 1');

    const again = spawnRater(env.config, { RATER_CHILD_REPORT: '1' });
    const report = await again.waitFor('report', 120_000);
    expect(await again.exited).toBe(0);
    await expectExact(report, 'reconcile');
  });
});
