// ClickHouse for the services, embedded (chDB in-process) or a server, through the one
// client API of @clickhouse/client. Owns the analytics schema (rated events and rollups),
// which the rater writes and the reporter reads.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { createClient, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import type { Logger } from '@drawdown/log';
import { SCHEMA } from './schema';

export type { ClickHouseClient };
export { SCHEMA };

export class ClickHouseError extends Error {
  override readonly name = 'ClickHouseError';
  readonly code = 'clickhouse_error';
}

/** Oldest server major version whose SQL the schema uses (chDB 3.4 ships 26.x). */
export const MIN_SERVER_MAJOR = 24;

export interface ChOptions {
  /** Server URL; empty for embedded chDB. */
  url: string;
  /** chDB data directory (embedded only). One process owns it at a time. */
  dataDir: string;
}

export interface Ch {
  client: ClickHouseClient;
  embedded: boolean;
  version: string;
  close(): Promise<void>;
}

/**
 * Settings sent with every statement. chDB's connection keeps settings for the session,
 * so a setting sent once (an insert dedup token) would stick to later statements: every call
 * here states the ones that matter explicitly.
 */
const BASE_SETTINGS: ClickHouseSettings = {
  output_format_json_quote_decimals: 1,
  output_format_json_quote_64bit_integers: 1,
  insert_deduplication_token: '',
};

export async function openClickHouse(opts: ChOptions, log: Logger): Promise<Ch> {
  let client: ClickHouseClient;
  const embedded = !opts.url;
  if (embedded) {
    const path = resolve(opts.dataDir);
    mkdirSync(path, { recursive: true });
    // chDB builds against its own copy of @clickhouse/client-common's types; the runtime
    // interface is the same, so the connection is handed over as the client's own type.
    const connection = createChdbConnection({ path }) as unknown as NonNullable<Parameters<typeof createClient>[0]>['connection'];
    client = createClient({ connection });
  } else {
    client = createClient({ url: opts.url, request_timeout: 60_000 });
  }
  const rows = await queryRows<{ v: string }>({ client }, 'SELECT version() AS v');
  const version = rows[0]?.v ?? 'unknown';
  const major = Number(version.split('.')[0]);
  if (!(major >= MIN_SERVER_MAJOR)) {
    await client.close();
    throw new ClickHouseError(`ClickHouse ${version} is too old: Drawdown's schema needs ${MIN_SERVER_MAJOR}.x or newer`);
  }
  log.info('clickhouse ready', { embedded, version, ...(embedded ? { dataDir: resolve(opts.dataDir) } : {}) });
  return { client, embedded, version, close: () => client.close() };
}

export async function migrateClickHouse(ch: Pick<Ch, 'client'>): Promise<void> {
  for (const statement of SCHEMA) {
    await ch.client.command({ query: statement, clickhouse_settings: BASE_SETTINGS });
  }
}

export async function queryRows<T>(ch: Pick<Ch, 'client'>, query: string, params?: Record<string, unknown>): Promise<T[]> {
  const rs = await ch.client.query({ query, format: 'JSONEachRow', query_params: params, clickhouse_settings: BASE_SETTINGS });
  return rs.json<T>();
}

export async function command(ch: Pick<Ch, 'client'>, query: string, params?: Record<string, unknown>): Promise<void> {
  await ch.client.command({ query, query_params: params, clickhouse_settings: BASE_SETTINGS });
}

/**
 * Inserts rows (JSONEachRow objects) as one block. With a `dedupToken`, ClickHouse drops a
 * repeat of the same insert (same token) within the table's deduplication window, so a
 * replayed batch is stored once (also in materialized views' targets); without one, nothing is
 * deduplicated, even identical rows. Rows must carry timestamps as epoch-ms numbers or strings.
 */
/** Most rows one insertRows call may carry: more would be split into several blocks. */
export const MAX_INSERT_ROWS = 1_048_576;

export async function insertRows(ch: Pick<Ch, 'client'>, table: string, rows: readonly Record<string, unknown>[], dedupToken = ''): Promise<void> {
  if (rows.length === 0) return;
  if (rows.length > MAX_INSERT_ROWS) throw new ClickHouseError(`insert into ${table}: ${rows.length} rows is more than one block (${MAX_INSERT_ROWS})`);
  await ch.client.insert({
    table,
    values: rows as Record<string, unknown>[],
    format: 'JSONEachRow',
    clickhouse_settings: {
      ...BASE_SETTINGS,
      insert_deduplicate: 1,
      // Without a token ClickHouse drops a block identical to a recent one (by content hash, even
      // with insert_deduplicate=0 on chDB 26 when the table has a dedup window): an unnamed
      // insert gets a token of its own, so only a caller's repeated token dedups.
      insert_deduplication_token: dedupToken || `once:${randomUUID()}`,
      deduplicate_blocks_in_dependent_materialized_views: 1,
      date_time_input_format: 'best_effort',
      // One block (one part) per insert, so the token covers the whole batch and a crash
      // leaves all of it or none: squash whatever the parser emits into a single block
      // (0 would turn squashing off and split a large insert at read-buffer boundaries).
      max_insert_block_size: String(MAX_INSERT_ROWS),
      min_insert_block_size_rows: String(MAX_INSERT_ROWS),
      min_insert_block_size_bytes: String(4 * 1024 ** 3),
      input_format_parallel_parsing: 0,
    },
  });
}
