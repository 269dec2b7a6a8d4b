// Vacuums the ledger's hot tables when the Postgres server's autovacuum is off.
//
// Every debit transaction updates a customer's credit block, grouped usage entry, balance
// snapshot and subscription usage row: with 10,000 customers, millions of dead row versions an
// hour. Autovacuum reclaims them on a normal server. A server with `autovacuum = off` (this
// project's CI and bench machines have it so) never does: the hot tables bloat without bound
// (a 20,000-row credit_blocks table measured 198 MB after 50 million events) and every debit
// gets slower. When autovacuum is off, this job does the autovacuum daemon's work for the
// ledger's own tables: every interval it vacuums each hot table whose dead rows passed the
// daemon's default threshold (50 + 20 % of its live rows). It checks the setting on every
// round, so turning autovacuum on later makes it step aside. SKIP_LOCKED: several ledger
// processes never queue behind each other's vacuum; VACUUM itself takes no lock that blocks
// reads or writes.
import type { Logger } from '@drawdown/log';
import { counter, histogram } from '@drawdown/metrics';
import type { Pool } from '@drawdown/pg';

const vacuums = counter('drawdown_ledger_vacuums_total', 'Hot ledger tables vacuumed by the ledger itself (only while the server runs with autovacuum off)', ['table']);
const vacuumSeconds = histogram('drawdown_ledger_vacuum_seconds', 'Time of one vacuum of a hot ledger table by the ledger');

/** The tables the debit path and the API update or delete in place. */
export const HOT_TABLES = [
  'credit_blocks',
  'credit_balances',
  'balance_snapshots',
  'ledger_entries',
  'subscription_usage',
  'usage_overage',
  'outbox',
  'applied_batches',
  'idempotency_keys',
  'alert_threshold_state',
  'balance_feed',
  'webhook_deliveries',
] as const;

export interface VacuumRound {
  /** The server's autovacuum setting read this round. */
  autovacuum: boolean;
  /** Tables vacuumed this round (none when autovacuum is on). */
  vacuumed: { table: string; deadRows: number; liveRows: number; ms: number }[];
}

/**
 * One round: vacuums the hot tables over the threshold, unless the server's autovacuum is on.
 * `autovacuum` stands in for the server's setting (tests); `tables` replaces HOT_TABLES (names
 * of the caller's own tables, never input: they are interpolated).
 */
export async function vacuumHotTables(pool: Pool, opts: { autovacuum?: boolean; tables?: readonly string[] } = {}): Promise<VacuumRound> {
  const autovacuum = opts.autovacuum ?? (await pool.query<{ autovacuum: string }>('SHOW autovacuum')).rows[0]?.autovacuum === 'on';
  if (autovacuum) return { autovacuum, vacuumed: [] };
  // The statistics are read fresh (not the transaction's cached snapshot) and only for tables
  // that exist in this database's search path.
  const stats = await pool.query<{ relname: string; dead: string; live: string }>(
    `SELECT relname, n_dead_tup::text AS dead, n_live_tup::text AS live
       FROM pg_stat_user_tables
      WHERE relid = ANY (SELECT to_regclass(t)::oid FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL)`,
    [opts.tables ?? HOT_TABLES],
  );
  const vacuumed: VacuumRound['vacuumed'] = [];
  for (const r of stats.rows) {
    const dead = Number(r.dead);
    const live = Number(r.live);
    if (dead <= 50 + 0.2 * live) continue;
    const t0 = performance.now();
    // The name comes from the table list (matched through to_regclass above), never from input.
    await pool.query(`VACUUM (SKIP_LOCKED) ${r.relname}`);
    const ms = performance.now() - t0;
    vacuums.inc({ table: r.relname });
    vacuumSeconds.observe(ms / 1000);
    vacuumed.push({ table: r.relname, deadRows: dead, liveRows: live, ms: Math.round(ms) });
  }
  return { autovacuum, vacuumed };
}

export interface VacuumJob {
  stop(): Promise<void>;
}

/** Runs vacuumHotTables every `intervalMs` (0: never). Warns once when the server's autovacuum is off. */
export function startVacuumJob(opts: { pool: Pool; log: Logger; intervalMs: number }): VacuumJob {
  if (opts.intervalMs <= 0) return { stop: async () => {} };
  let stopped = false;
  let warned = false;
  let running: Promise<void> | undefined;
  const round = async () => {
    try {
      const r = await vacuumHotTables(opts.pool);
      if (!r.autovacuum && !warned) {
        warned = true;
        opts.log.warn('Postgres runs with autovacuum off: the ledger vacuums its own hot tables (DRAWDOWN_LEDGER_VACUUM_INTERVAL_MS); other tables bloat until autovacuum is turned on', { intervalMs: opts.intervalMs });
      }
      if (r.vacuumed.length > 0) opts.log.info('ledger tables vacuumed', { tables: r.vacuumed });
    } catch (err) {
      if (!stopped) opts.log.error('vacuuming ledger tables failed; retrying next interval', { err });
    }
  };
  const timer = setInterval(() => {
    if (running || stopped) return;
    running = round().finally(() => (running = undefined));
  }, opts.intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
