// Postgres access shared by the services: pool, database bootstrap, migrations, and
// transactions that retry serialization failures and deadlocks.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import type { Logger } from '@drawdown/log';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

export class DbError extends Error {
  override readonly name = 'DbError';
  readonly code: 'unique_violation' | 'serialization_failure' | 'deadlock' | 'unavailable' | 'db_error';
  readonly sqlState: string | undefined;
  readonly constraint: string | undefined;
  get isRetryable(): boolean {
    return this.code === 'serialization_failure' || this.code === 'deadlock';
  }
  constructor(message: string, opts: { cause?: unknown; sqlState?: string; constraint?: string }) {
    super(message, { cause: opts.cause });
    this.sqlState = opts.sqlState;
    this.constraint = opts.constraint;
    this.code = opts.sqlState === '23505' ? 'unique_violation'
      : opts.sqlState === '40001' ? 'serialization_failure'
      : opts.sqlState === '40P01' ? 'deadlock'
      : opts.sqlState?.startsWith('08') || opts.sqlState === '57P03' ? 'unavailable'
      : 'db_error';
  }
}

export function toDbError(err: unknown): DbError {
  if (err instanceof DbError) return err;
  const e = err as { code?: string; constraint?: string; message?: string };
  const sqlState = typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  return new DbError(e?.message ?? String(err), { cause: err, sqlState, constraint: e?.constraint });
}

export function createPool(url: string, opts: { max?: number; application?: string } = {}): Pool {
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, application_name: opts.application ?? 'drawdown' });
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  return pool;
}

/** Creates the database named in `url` if it does not exist (connecting to `postgres`). */
export async function ensureDatabase(url: string): Promise<void> {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!name) return;
  u.pathname = '/postgres';
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (r.rowCount === 0) {
      try {
        await c.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      } catch (err) {
        // Two processes racing to create it: the loser sees 42P04 (duplicate_database) or 23505.
        const code = (err as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw err;
      }
    }
  } finally {
    await c.end();
  }
}

export interface MigrationSet {
  /** Owner of the migrations, e.g. "ledger". */
  service: string;
  /** Folder of `NNN_name.sql` files applied in name order. */
  dir: string;
}

/** Applies pending migrations of each set, once, under an advisory lock (safe with many replicas). */
export async function migrate(pool: Pool, sets: MigrationSet[], log?: Logger): Promise<number> {
  const client = await pool.connect();
  let applied = 0;
  try {
    await client.query('SELECT pg_advisory_lock(727274)');
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      service text NOT NULL, version text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (service, version))`);
    for (const set of sets) {
      const done = new Set((await client.query('SELECT version FROM schema_migrations WHERE service = $1', [set.service])).rows.map((r) => r.version as string));
      const files = (await readdir(set.dir)).filter((f) => f.endsWith('.sql')).sort();
      for (const file of files) {
        if (done.has(file)) continue;
        const sql = await readFile(join(set.dir, file), 'utf8');
        await client.query('BEGIN');
        try {
          await client.query(sql);
          await client.query('INSERT INTO schema_migrations (service, version) VALUES ($1, $2)', [set.service, file]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw new DbError(`migration ${set.service}/${file} failed: ${(err as Error).message}`, { cause: err });
        }
        applied++;
        log?.info('migration applied', { service: set.service, version: file });
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock(727274)').catch(() => {});
    client.release();
  }
  return applied;
}

export interface TxOptions {
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /** Attempts on serialization failure or deadlock before giving up (default 8). */
  attempts?: number;
}

/**
 * Runs `fn` in one transaction; retries it from the start on serialization failures and
 * deadlocks (40001, 40P01) with jittered backoff. `fn` must have no effects outside the
 * transaction, since it may run more than once.
 */
export async function withTx<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>, opts: TxOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 8;
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    try {
      await client.query(opts.isolation ? `BEGIN ISOLATION LEVEL ${opts.isolation.toUpperCase()}` : 'BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      const dbErr = toDbError(err);
      if (dbErr.isRetryable && attempt < attempts) {
        await new Promise((r) => setTimeout(r, Math.random() * 5 * 2 ** attempt));
        continue;
      }
      throw err instanceof DbError || !dbErr.sqlState ? err : dbErr;
    } finally {
      client.release();
    }
  }
}
