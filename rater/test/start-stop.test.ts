// A rater stopped right after it started (its partition runners still starting: taking the
// checkpoint over, warming dedup memory, opening the consumer) stops promptly, starts no
// partition once the stop has begun, and leaves nothing running.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateClickHouse, openClickHouse, type Ch } from '@drawdown/clickhouse';
import { createLogger } from '@drawdown/log';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { startRater } from '../src/index';
import { createCatalog, event, publish, startLedgerSide, type LedgerSide } from './harness';

const ROUNDS = 12;
const STOP_BOUND_MS = 15_000;

describe('rater stopped while starting', () => {
  let env: TestEnv;
  let side: LedgerSide;
  let ch: Ch;

  beforeAll(async () => {
    env = testEnv({ DRAWDOWN_PARTITIONS: '2', DRAWDOWN_RATER_LEASE_TTL_MS: '3000', DRAWDOWN_INGEST_GRACE_MS: '600000', DRAWDOWN_RATER_BATCH_MAX_EVENTS: '200' });
    side = await startLedgerSide(env.config);
    ch = await openClickHouse({ url: '', dataDir: join(env.config.dataDir, 'chdb') }, side.log);
    await migrateClickHouse(ch);
    const customers = ['ss-0', 'ss-1', 'ss-2', 'ss-3'];
    await createCatalog(side.call, customers, '0.001');
    // Messages waiting in both partitions, so a consumer opened during the stop holds unread ones.
    await publish(side.nc, env.config, Array.from({ length: 4000 }, (_, i) => event(customers[i % 4]!, `ss-k${i}`, Date.now() - 60_000 + i)), 50);
  }, 120_000);

  afterAll(async () => {
    await ch?.close();
    await side?.stop();
    await env?.cleanup();
  });

  it(`returns from stop() and starts nothing after it began, ${ROUNDS} times in a row`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const lines: string[] = [];
      const log = createLogger({ test: 'start-stop' }, { level: 'info', write: (l) => lines.push(l) });
      const r = await startRater({ config: env.config, nc: side.nc, ch, pool: side.pool, log, owner: 'start-stop' });
      expect(r.runners.length).toBe(2); // both partitions leased: their runners are starting
      const stopFrom = lines.length;
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        r.stop().then(() => 'stopped'),
        new Promise<string>((res) => (timer = setTimeout(() => res('stop() did not return'), STOP_BOUND_MS))),
      ]);
      clearTimeout(timer);
      if (outcome !== 'stopped') console.error(lines.map((l) => l.slice(0, 200)).join(''));
      expect({ round, outcome }).toEqual({ round, outcome: 'stopped' });
      const afterStop = lines.slice(stopFrom).map((l) => JSON.parse(l) as { msg: string; partition?: number });
      expect({ round, started: afterStop.filter((l) => l.msg === 'partition started') }).toEqual({ round, started: [] });
      // Nothing is left running: no more lines (no lease round, no runner) once stop() returned.
      const settled = lines.length;
      await new Promise((res) => setTimeout(res, 1200));
      expect({ round, later: lines.slice(settled) }).toEqual({ round, later: [] });
      expect(r.runners).toEqual([]);
    }
  }, ROUNDS * (STOP_BOUND_MS + 10_000));
});
