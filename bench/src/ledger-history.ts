// `node --import tsx bench/src/ledger-history.ts [DAYS]`: how the ledger's debit transaction
// slows as grouped usage entries pile up over days. 10,000 customers seeded as the ledger
// scenario does; four 8-batch transactions on a fresh ledger, then DAYS earlier days of grouped
// entries copied from today's (about 10,000 rows a day), then four transactions again. Prints
// each transaction's milliseconds. Not part of `pnpm bench` (the history insert alone takes
// about a minute for 180 days).
//
// `node --import tsx bench/src/ledger-history.ts cost CUSTOMERS BATCHES_PER_TX TXS`: the cost of
// one customer debit, which a busy machine changes little (unlike throughput): per transaction
// of BATCHES_PER_TX rater-shaped batches (after one warm-up transaction), the CPU of this
// process and of the Postgres backend serving it (/proc/PID/stat), and the WAL records that
// transaction wrote (pg_walinspect, records carrying its xid: other sessions' WAL is left out;
// FPI bytes apart, they depend on checkpoint timing; read while the transaction runs by a niced
// psql loop, since other sessions' WAL can have checkpoints recycle it soon), each divided by the customer debits
// (merged lines) applied; prints per-transaction figures and medians, and the HOT share of
// updates per hot table. Knobs (env): LEDGER_COST_WARMUP, LEDGER_COST_STATEMENTS,
// LEDGER_COST_EXPLAIN, LEDGER_COST_PLAN (ledger/src/credits/README.md, "Cost per customer debit").
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import pg from 'pg';
import { applyDebitBatches } from '@drawdown/ledger';
import { benchEnv, createCatalog, createCustomers, log, openStores } from './setup';
import { debitBatches } from './scenarios/common';

if (process.argv[2] === 'cost') {
  await cost(Number(process.argv[3] ?? 100_000), Number(process.argv[4] ?? 8), Number(process.argv[5] ?? 5));
  process.exit(0);
}

async function cost(customers: number, perTx: number, txs: number): Promise<void> {
  for (const [v, name] of [[customers, 'CUSTOMERS'], [perTx, 'BATCHES_PER_TX'], [txs, 'TXS']] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a whole number >= 1, got ${v}`);
  }
  const env = benchEnv();
  const s = await openStores(env);
  // One connection for the applier (so its backend is known), one for measuring.
  const applier = new pg.Pool({ connectionString: env.config.databaseUrl, max: 1, idleTimeoutMillis: 0 });
  // LEDGER_COST_STATEMENTS=1: also the backend's CPU per statement (summed over the measured transactions).
  const byStatement = new Map<string, number>();
  let measuring = false;
  // LEDGER_COST_EXPLAIN=text: statements starting with text are first run under EXPLAIN (ANALYZE,
  // BUFFERS, WAL) in a savepoint rolled back, and the plans printed (last measured transaction).
  const explain = process.env.LEDGER_COST_EXPLAIN;
  const plans: string[] = [];
  if (process.env.LEDGER_COST_STATEMENTS === '1' || explain) {
    applier.on('connect', (client) => {
      const query = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>;
      (client as unknown as { query: unknown }).query = async (...a: unknown[]) => {
        const text = typeof a[0] === 'string' ? a[0] : (a[0] as { text: string }).text;
        const pid = (client as unknown as { processID: number }).processID;
        if (explain && measuring && text.trimStart().startsWith(explain)) {
          await query('SAVEPOINT explain');
          const r = (await query({ text: `EXPLAIN (ANALYZE, BUFFERS, WAL) ${text}`, values: a[1] })) as { rows: { 'QUERY PLAN': string }[] };
          await query('ROLLBACK TO SAVEPOINT explain');
          plans.length = 0;
          plans.push(r.rows.map((x) => x['QUERY PLAN']).join('\n'));
        }
        const t0 = ticks(pid);
        try {
          return await query(...a);
        } finally {
          const key = text.replace(/\s+/g, ' ').slice(0, 90);
          if (measuring) byStatement.set(key, (byStatement.get(key) ?? 0) + ticks(pid) - t0);
        }
      };
    });
  }
  const meter = new pg.Client({ connectionString: env.config.databaseUrl });
  await meter.connect();
  const ticks = (pid: number) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime, fields 14 and 15
  };
  const hot = async () =>
    (await meter.query<{ relname: string; upd: string; hot: string; ins: string }>(
      `SELECT relname, n_tup_upd::text AS upd, n_tup_hot_upd::text AS hot, n_tup_ins::text AS ins FROM pg_stat_user_tables
        WHERE relname IN ('credit_blocks', 'ledger_entries', 'credit_balances', 'balance_snapshots', 'applied_batches', 'balance_feed', 'subscription_usage') ORDER BY 1`,
    )).rows;
  // WAL per xid, polled by a child process (its CPU is not this process's): lines "xid|bytes|fpi|records", and "pos|LSN" after each poll.
  const walFile = `/tmp/ledger-cost-wal-${process.pid}.txt`;
  const poll = `WITH c AS (SELECT pg_current_wal_flush_lsn() AS cur)
    SELECT xid::text, sum(record_length)::text, sum(fpi_length)::text, count(*)::text FROM c, pg_get_wal_records_info(:'last', c.cur) WHERE xid <> '0' GROUP BY xid
    UNION ALL SELECT 'pos', cur::text, '0', '0' FROM c`;
  let poller: ReturnType<typeof spawn> | undefined;
  const walOf = new Map<string, { b: number; f: number; n: number }>();
  let walPos = '0/0';
  let walRead = 0;
  let walLost = 0;
  const lsnNum = (l: string) => { const [hi, lo] = l.split('/'); return BigInt(`0x${hi}`) * 4294967296n + BigInt(`0x${lo}`); };
  const readWal = () => {
    const text = readFileSync(walFile, 'utf8');
    const end = text.lastIndexOf('\n') + 1;
    for (const line of text.slice(walRead, end).split('\n')) {
      const [x, b, f, n] = line.split('|');
      if (!x || b === undefined) continue;
      if (x === 'pos') walPos = b;
      else if (x === 'lost') walLost++; // recycled before the poller read it: that transaction's WAL is unknown
      else {
        const w = walOf.get(x) ?? { b: 0, f: 0, n: 0 };
        walOf.set(x, { b: w.b + Number(b), f: w.f + Number(f), n: w.n + Number(n) });
      }
    }
    walRead = end;
  };
  try {
    await meter.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
    const start = (await meter.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l')).rows[0]!.l;
    poller = spawn('nice', ['-n', '19', 'bash', '-c', `last=${start}; : > ${walFile}; while kill -0 ${process.pid} 2>/dev/null; do
        out=$(psql "$URL" -X -At -F'|' -v ON_ERROR_STOP=1 -v last="$last" 2>&1 <<'SQL'
${poll}
SQL
        ) || { case "$out" in *"future start LSN"*) sleep 0.3; continue;; esac;
               cur=$(psql "$URL" -X -At -c 'SELECT pg_current_wal_flush_lsn()'); echo "lost|$cur" >> ${walFile}; echo "pos|$cur" >> ${walFile}; last=$cur; continue; }
        echo "$out" >> ${walFile}; last=$(echo "$out" | grep '^pos|' | cut -d'|' -f2); sleep 0.3; done`], { env: { ...process.env, URL: env.config.databaseUrl }, stdio: 'ignore' });
    // The customers subscribe to the bench's plan (createCatalog) and the lines carry its price,
    // so each debit also records subscription usage, as a rater's debits do (the ledger scenario
    // too). LEDGER_COST_PLAN=0: no subscriptions (the shape of the figures before 2026-11-26).
    let priceId: string | undefined;
    let planId: string | undefined;
    if (process.env.LEDGER_COST_PLAN !== '0') ({ planId, priceId } = await createCatalog(s));
    await createCustomers(s.pool, { count: customers, planId });
    const pid = (await applier.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const rows: { lines: number; nodeUs: number; pgUs: number; wal: number; fpi: number; records: number }[] = [];
    let k = 0;
    await meter.query('SELECT pg_stat_clear_snapshot()');
    let hot0 = await hot();
    for (let i = 0; i <= txs; i++) {
      // LEDGER_COST_WARMUP=N: the warm-up transaction takes N batches (default BATCHES_PER_TX); 64 at
      // 100,000 customers starts most customers' grouped entries of the day, so the measured
      // transactions mostly grow entries (a ledger some way into its day) instead of starting them.
      const count = i === 0 ? Number(process.env.LEDGER_COST_WARMUP ?? perTx) : perTx;
      const group = debitBatches({ count, customers, eventsPerBatch: 2500, shape: 'uniform', seed: 100 + k, tag: `c${k}`, priceId });
      k++;
      readWal();
      const lost0 = walLost;
      const pg0 = ticks(pid);
      const n0 = process.cpuUsage();
      const r = await applyDebitBatches(applier, group);
      const n1 = process.cpuUsage(n0);
      const pg1 = ticks(pid);
      const lsn1 = (await meter.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]!.l;
      if ((await applier.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid !== pid) throw new Error('the applier connection changed');
      if (r.applied.length !== group.length) throw new Error('batches not applied');
      const xid = (await meter.query<{ x: string }>('SELECT xmin::text AS x FROM applied_batches WHERE batch_id = $1', [group[0]!.id])).rows[0]!.x;
      for (;;) {
        readWal();
        if (lsnNum(walPos) >= lsnNum(lsn1)) break;
        await new Promise((res) => setTimeout(res, 200));
      }
      const w = walLost > lost0 ? { b: NaN, f: NaN, n: NaN } : (walOf.get(xid) ?? { b: 0, f: 0, n: 0 });
      // Customer debits: lines after merging per (customer, unit, price, day), as applied.
      const merged = new Set<string>();
      for (const b of group) for (const l of b.lines) merged.add(`${l.customerId}\u0000${l.pricingUnit}\u0000${l.priceId}\u0000${l.day}`);
      const row = { lines: merged.size, nodeUs: n1.user + n1.system, pgUs: ((pg1 - pg0) * 1e6) / 100, wal: w.b - w.f, fpi: w.f, records: w.n };
      if (i === 0) {
        measuring = true;
        await new Promise((res) => setTimeout(res, 1500));
        await meter.query('SELECT pg_stat_clear_snapshot()');
        hot0 = await hot();
        continue; // warm-up
      }
      rows.push(row);
      process.stdout.write(
        `tx ${i}: ${row.lines} customer debits; per debit: node ${(row.nodeUs / row.lines).toFixed(1)} us, pg ${(row.pgUs / row.lines).toFixed(1)} us, ` +
          `WAL ${(row.wal / row.lines).toFixed(0)} B + FPI ${(row.fpi / row.lines).toFixed(0)} B, ${(row.records / row.lines).toFixed(2)} records\n`,
      );
    }
    const med = (xs: number[]) => {
      const a = [...xs].sort((x, y) => x - y);
      return a.length % 2 ? a[(a.length - 1) / 2]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2;
    };
    // WAL figures over the transactions whose WAL the poller read (NaN if none).
    const per = (f: (r: (typeof rows)[number]) => number) => { const xs = rows.map((r) => f(r) / r.lines).filter((x) => !Number.isNaN(x)); return xs.length ? med(xs) : NaN; };
    process.stdout.write(
      `MEDIAN customers=${customers} batchesPerTx=${perTx} txs=${txs}: node_us=${per((r) => r.nodeUs).toFixed(1)} pg_us=${per((r) => r.pgUs).toFixed(1)} ` +
        `wal_B=${per((r) => r.wal).toFixed(0)} fpi_B=${per((r) => r.fpi).toFixed(0)} records=${per((r) => r.records).toFixed(2)} lines/tx=${med(rows.map((r) => r.lines))} walTxs=${rows.filter((r) => !Number.isNaN(r.wal)).length}\n`,
    );
    const lines = rows.reduce((a, r) => a + r.lines, 0);
    for (const p of plans) process.stdout.write(`${p}\n`);
    for (const [k, v] of [...byStatement].sort((a, b) => b[1] - a[1])) process.stdout.write(`  pg ${((v * 1e4) / lines).toFixed(1)} us/debit: ${k}\n`);
    await new Promise((res) => setTimeout(res, 1500));
    await meter.query('SELECT pg_stat_clear_snapshot()');
    const hot1 = await hot();
    for (const h of hot1) {
      const b = hot0.find((x) => x.relname === h.relname)!;
      process.stdout.write(`  ${h.relname}: ${Number(h.ins) - Number(b.ins)} inserts, ${Number(h.upd) - Number(b.upd)} updates, ${Number(h.hot) - Number(b.hot)} HOT\n`);
    }
  } finally {
    poller?.kill();
    rmSync(walFile, { force: true });
    await meter.end();
    await applier.end();
    await s.close();
    await env.cleanup();
  }
}

const CUSTOMERS = 10_000;
const days = Number(process.argv[2] ?? 60);
if (!Number.isInteger(days) || days < 1) throw new Error(`DAYS must be a whole number of days >= 1, got ${process.argv[2]}`);

const env = benchEnv();
const s = await openStores(env);
let k = 0;
let priceId = 'bench-price';
async function transactions(label: string): Promise<void> {
  const ms: number[] = [];
  for (let i = 0; i < 4; i++) {
    const group = debitBatches({ count: 8, customers: CUSTOMERS, eventsPerBatch: 2500, shape: 'uniform', seed: 100 + k, tag: `h${k}`, priceId });
    k++;
    const t0 = performance.now();
    await applyDebitBatches(s.pool, group);
    ms.push(Math.round(performance.now() - t0));
  }
  process.stdout.write(`${label}: 8-batch transactions took ${ms.join(', ')} ms\n`);
}
try {
  const catalog = await createCatalog(s);
  priceId = catalog.priceId;
  await createCustomers(s.pool, { count: CUSTOMERS, planId: catalog.planId });
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
