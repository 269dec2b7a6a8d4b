// A rater in its own process, for crash tests: started with the parent's configuration in
// the environment, owning the chDB directory. Prints {"started":...} once it runs; with
// RATER_CHILD_REPORT=1 it waits until every partition reached the end of the stream, prints
// {"report": totals} and stops gracefully. Otherwise it runs until killed.
import { join } from 'node:path';
import { loadConfig } from '@drawdown/config';
import { migrateClickHouse, openClickHouse, queryRows } from '@drawdown/clickhouse';
import { createLogger } from '@drawdown/log';
import { connectNats, jetstreamManager, names, lastEventSeq } from '@drawdown/nats';
import { createPool } from '@drawdown/pg';
import { startRater } from '../src/index';

const report = process.env.RATER_CHILD_REPORT === '1';
delete process.env.RATER_CHILD_REPORT;
const config = loadConfig(process.env);
const log = createLogger({ process: 'child-rater' }, { level: config.logLevel as 'error' });
const nc = await connectNats(config.natsUrl, 'child-rater', log);
const ch = await openClickHouse({ url: '', dataDir: join(config.dataDir, 'chdb') }, log);
await migrateClickHouse(ch);
const pool = createPool(config.databaseUrl, { max: 4 });
const rater = await startRater({ config, nc, ch, pool, log });
process.stdout.write(JSON.stringify({ started: rater.runners.map((r) => r.partition) }) + '\n');

if (report) {
  const n = names(config.namespace);
  const jsm = await jetstreamManager(nc);
  for (let p = 0; p < config.partitions; p++) {
    const last = await lastEventSeq(jsm, n, p);
    for (;;) {
      const r = rater.runners.find((x) => x.partition === p);
      if (r && r.position >= last) break;
      await new Promise((res) => setTimeout(res, 20));
    }
  }
  const rows = await queryRows<{ c: string; n: string; k: string; a: string }>(
    ch,
    "SELECT customer_id AS c, count() AS n, uniqExact(idempotency_key) AS k, sum(amount) AS a FROM rated_events WHERE status = 'rated' GROUP BY c ORDER BY c",
  );
  const rollup = await queryRows<{ c: string; n: string; a: string }>(ch, 'SELECT customer_id AS c, sum(events) AS n, sum(amount) AS a FROM usage_hourly GROUP BY c ORDER BY c');
  process.stdout.write(JSON.stringify({ report: { rows, rollup } }) + '\n');
  await rater.stop();
  await ch.close();
  await pool.end();
  await nc.drain();
  process.exit(0);
}
