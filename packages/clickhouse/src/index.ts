// ClickHouse for the services, embedded (chDB in-process) or a server, through the one
// client API of @clickhouse/client. Owns the analytics schema (rated events and rollups),
// which the rater writes and the reporter reads.
import { randomUUID } from 'node:crypto';
import { closeSync, constants, ftruncateSync, mkdirSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
// The client and chDB are loaded when a connection is opened: pricing worker threads import
// this package for its payload writers (tsv.ts) only.
import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';
import type { Logger } from '@drawdown/log';
import { SCHEMA } from './schema';

export { tsvField, tsvDateTime64, TsvWriter } from './tsv';
export { RowBinaryWriter, putDecimal128 } from './rowbinary';

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

/** chDB's raw passthrough insert: the payload goes to the engine as bytes, parsed natively off the event loop. */
export type RawInsert = (params: { table: string; columns?: readonly string[]; values: string | Uint8Array; format: 'TabSeparated' | 'JSONEachRow'; settings: Record<string, string | number> }) => Promise<unknown>;

export interface Ch {
  client: ClickHouseClient;
  embedded: boolean;
  /** Embedded only: chDB's raw insert (see insertBody). */
  rawInsert?: RawInsert;
  /** Embedded only: where insertRowBinary writes its payload files (emptied when opened and closed). */
  insertFilesDir?: string;
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
  const { createClient } = await import('@clickhouse/client');
  let client: ClickHouseClient;
  let rawInsert: RawInsert | undefined;
  let insertFilesDir: string | undefined;
  const embedded = !opts.url;
  if (embedded) {
    const { createChdbConnection } = await import('chdb/connection');
    const path = resolve(opts.dataDir);
    mkdirSync(path, { recursive: true });
    // insertRowBinary's payload files (one per insert running at once, rewritten by later
    // inserts); removed when the connection closes, and here what a crash left.
    insertFilesDir = join(path, 'drawdown-insert-files');
    mkdirSync(insertFilesDir, { recursive: true });
    for (const f of readdirSync(insertFilesDir)) rmSync(join(insertFilesDir, f), { force: true });
    freeFiles[insertFilesDir] = [];
    // chDB builds against its own copy of @clickhouse/client-common's types; the runtime
    // interface is the same, so the connection is handed over as the client's own type.
    const chdb = createChdbConnection({ path });
    rawInsert = (p) => chdb.chdb.rawInsert({ ...p, columns: p.columns ? [...p.columns] : undefined, values: typeof p.values === 'string' ? p.values : Buffer.from(p.values.buffer, p.values.byteOffset, p.values.byteLength) });
    const connection = chdb as unknown as NonNullable<Parameters<typeof createClient>[0]>['connection'];
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
  const filesDir = insertFilesDir;
  const close = async () => {
    await client.close();
    if (filesDir) rmSync(filesDir, { recursive: true, force: true });
  };
  return { client, embedded, version, ...(rawInsert ? { rawInsert } : {}), ...(insertFilesDir ? { insertFilesDir } : {}), close };
}

/**
 * How many parts of about one size `rated_events` collects before ClickHouse merges them
 * (`merge_selector_base`, ClickHouse's default 5), unless DRAWDOWN_CLICKHOUSE_MERGE_SELECTOR_BASE
 * says otherwise. Every merge rewrites the rows it covers, so a
 * row is rewritten about once per level of the merge tree, log(base) of the parts a partition
 * collects: at 20 a 50-million-row month is about 2-3 levels deep instead of 4-5, at the price of
 * more parts for reads to open (tens per month at the rater's batch sizes; the reads that touch
 * `rated_events` are by customer, by partition and sequence, or by key through the bloom filter).
 * README, "Merges".
 */
export const RATED_EVENTS_MERGE_SELECTOR_BASE = 20;

export async function migrateClickHouse(ch: Pick<Ch, 'client'>, opts: { mergeSelectorBase?: number } = {}): Promise<void> {
  const base = opts.mergeSelectorBase ?? RATED_EVENTS_MERGE_SELECTOR_BASE;
  if (!Number.isInteger(base) || base < 2) throw new RangeError(`mergeSelectorBase: must be a whole number of at least 2, got ${base}`);
  for (const statement of SCHEMA) {
    await ch.client.command({ query: statement, clickhouse_settings: BASE_SETTINGS });
  }
  // Older servers (the schema supports 24.x) may not know the setting: then merges keep the
  // server's own policy. Applied at every start, so a table created earlier gets it too.
  const known = await queryRows<{ n: string }>(ch, "SELECT count() AS n FROM system.merge_tree_settings WHERE name = 'merge_selector_base'");
  if (Number(known[0]?.n ?? 0) > 0) {
    await command(ch, `ALTER TABLE rated_events MODIFY SETTING merge_selector_base = ${base}`);
  }
}

export async function queryRows<T>(ch: Pick<Ch, 'client'>, query: string, params?: Record<string, unknown>): Promise<T[]> {
  const rs = await ch.client.query({ query, format: 'JSONEachRow', query_params: params, clickhouse_settings: BASE_SETTINGS });
  return rs.json<T>();
}

export async function command(ch: Pick<Ch, 'client'>, query: string, params?: Record<string, unknown>): Promise<void> {
  await ch.client.command({ query, query_params: params, clickhouse_settings: BASE_SETTINGS });
}

/** Most rows one insert may carry: more would be split into several blocks. */
export const MAX_INSERT_ROWS = 1_048_576;

/**
 * Settings of every insert. With a `dedupToken`, ClickHouse drops a repeat of the same insert
 * (same token) within the table's deduplication window, so a replayed batch is stored once
 * (also in materialized views' targets); without one, nothing is deduplicated, even identical
 * rows: ClickHouse would otherwise drop a block identical to a recent one by content hash (chDB
 * 26 does so even with insert_deduplicate=0 when the table has a dedup window), so an unnamed
 * insert gets a token of its own.
 *
 * One block (one part) per insert, so the token covers the whole batch and a crash leaves all
 * of it or none: whatever the parser emits is squashed into one block up to MAX_INSERT_ROWS rows
 * and 4 GiB (0 would turn squashing off and split a large insert at read-buffer boundaries).
 * Parallel parsing stays off: with it, chDB 26.7 still writes one part, but the part's dedup id
 * is derived from the parser's chunks (cut by bytes), so a replay of the same range with other
 * content (another catalog version) is NOT recognised (test/dedup.test.ts, 50,000 rows).
 *
 * No merging at insert time (`optimize_on_insert` 0): for a Summing/ReplacingMergeTree it
 * collapses equal sorting keys inside the new part, which found nothing for the hourly rollup
 * (the view's GROUP BY already emits one row per key) but cost about a quarter of the insert's
 * own CPU (packages/clickhouse README, "Insert cost"). Readers aggregate anyway, since parts
 * are only merged in the background (`sum()` over usage_hourly, `NOT IN` over unpriced_resolved).
 */
export function insertSettings(dedupToken: string): Record<string, string | number> {
  return {
    optimize_on_insert: 0,
    insert_deduplicate: 1,
    insert_deduplication_token: dedupToken || `once:${randomUUID()}`,
    deduplicate_blocks_in_dependent_materialized_views: 1,
    max_insert_block_size: MAX_INSERT_ROWS,
    min_insert_block_size_rows: MAX_INSERT_ROWS,
    min_insert_block_size_bytes: 4 * 1024 ** 3,
    input_format_parallel_parsing: 0,
  };
}

/**
 * Inserts into `table` the rows of `select` (a SELECT, e.g. of rows already stored) as one block
 * under `dedupToken`, with the same settings as every insert. Its use: completing an insert a
 * crash may have cut short. ClickHouse writes the source table's part, then each materialized
 * view's; a process killed in between leaves the view without the block. Repeating the insert
 * with the same token and the same rows delivers it exactly once everywhere: the source table
 * and every view that has the block drop it, a view that lacks it gets it. Repeating it with
 * other rows (a batch priced again after a catalog change) would give the view those instead.
 */
export async function insertSelect(ch: Pick<Ch, 'client'>, table: string, select: string, params: Record<string, unknown>, dedupToken: string): Promise<void> {
  await ch.client.command({ query: `INSERT INTO ${table} ${select}`, query_params: params, clickhouse_settings: { ...BASE_SETTINGS, ...insertSettings(dedupToken) } });
}

/** A ready insert payload: TabSeparated text, one line per row, fields in `columns` order. */
export interface TsvBody {
  columns: readonly string[];
  /** TabSeparated rows, each ending in a newline (written with `TsvWriter` or `tsvField`, timestamps with `tsvDateTime64`). */
  body: string | Uint8Array;
  rows: number;
}

/**
 * Inserts a TabSeparated payload as one block (see insertSettings). Embedded, the bytes go to
 * chDB's raw insert (parsed natively, no SQL text built around them); with a server, they are
 * streamed as the request body.
 */
export async function insertTsv(ch: Pick<Ch, 'client' | 'rawInsert'>, table: string, b: TsvBody, dedupToken = ''): Promise<void> {
  if (b.rows === 0) return;
  if (b.rows > MAX_INSERT_ROWS) throw new ClickHouseError(`insert into ${table}: ${b.rows} rows is more than one block (${MAX_INSERT_ROWS})`);
  const settings = insertSettings(dedupToken);
  if (ch.rawInsert) {
    await ch.rawInsert({ table, columns: b.columns, values: b.body, format: 'TabSeparated', settings });
    return;
  }
  await ch.client.insert({
    table,
    columns: [...b.columns] as [string, ...string[]],
    values: Readable.from([typeof b.body === 'string' ? Buffer.from(b.body) : b.body], { objectMode: false }),
    format: 'TabSeparated',
    clickhouse_settings: { ...BASE_SETTINGS, ...settings },
  });
}

/** A ready insert payload in RowBinary: the rows' columns in `columns` order (written with `RowBinaryWriter`). */
export interface RowBinaryBody {
  columns: readonly string[];
  body: Uint8Array;
  rows: number;
}

/** Payload files of insertRowBinary not in use, per directory. */
const freeFiles: Record<string, string[]> = {};

const sqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * Inserts a RowBinary payload as one block (see insertSettings): ClickHouse parses it at a
 * fraction of the CPU of TabSeparated text. Embedded, the bytes are written to a file that the
 * engine reads (`INSERT ... FROM INFILE`; chDB's raw insert takes text formats only, and its
 * inline data would end at the first empty line, two newline bytes that binary numbers hold),
 * a file per insert running at once, reused by later inserts and removed when the connection
 * closes; with a server, they are streamed as the
 * request body. The insert is an ordinary INSERT either way: one block, the same dedup token.
 */
export async function insertRowBinary(ch: Pick<Ch, 'client' | 'insertFilesDir'>, table: string, b: RowBinaryBody, dedupToken = ''): Promise<void> {
  if (b.rows === 0) return;
  if (b.rows > MAX_INSERT_ROWS) throw new ClickHouseError(`insert into ${table}: ${b.rows} rows is more than one block (${MAX_INSERT_ROWS})`);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table) || !b.columns.every((c) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(c))) throw new ClickHouseError(`insert into ${table}: table and column names must be plain identifiers`);
  const settings = insertSettings(dedupToken);
  const settingsSql = Object.entries(settings).map(([k, v]) => `${k} = ${typeof v === 'number' ? v : sqlString(v)}`).join(', ');
  const into = `INSERT INTO ${table} (${b.columns.join(', ')})`;
  if (ch.insertFilesDir) {
    // A file no other insert uses, rewritten in place (its pages stay allocated: about a fifth of
    // the CPU of a new file). Written at once on this thread: an asynchronous write would queue
    // behind chDB's own work on libuv's pool.
    const free = (freeFiles[ch.insertFilesDir] ??= []);
    const file = free.pop() ?? join(ch.insertFilesDir, `${randomUUID()}.bin`);
    const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT);
    try {
      let at = 0;
      while (at < b.body.byteLength) at += writeSync(fd, b.body, at, b.body.byteLength - at, at);
      ftruncateSync(fd, b.body.byteLength);
    } finally {
      closeSync(fd);
    }
    try {
      await ch.client.command({ query: `${into} FROM INFILE ${sqlString(file)} SETTINGS ${settingsSql} FORMAT RowBinary`, clickhouse_settings: BASE_SETTINGS });
    } finally {
      free.push(file);
    }
    return;
  }
  const r = await ch.client.exec({
    query: `${into} FORMAT RowBinary`,
    values: Readable.from([b.body], { objectMode: false }),
    clickhouse_settings: { ...BASE_SETTINGS, ...settings },
  });
  r.stream.resume();
  await new Promise<void>((res, rej) => r.stream.on('end', res).on('error', rej));
}

/**
 * Inserts rows (JSONEachRow objects) as one block, deduplicated by `dedupToken` (see
 * insertSettings). Rows must carry timestamps as epoch-ms numbers or strings. Embedded, the
 * JSON text goes to chDB's raw insert.
 */
export async function insertRows(ch: Pick<Ch, 'client' | 'rawInsert'>, table: string, rows: readonly Record<string, unknown>[], dedupToken = ''): Promise<void> {
  if (rows.length === 0) return;
  if (rows.length > MAX_INSERT_ROWS) throw new ClickHouseError(`insert into ${table}: ${rows.length} rows is more than one block (${MAX_INSERT_ROWS})`);
  const settings = { ...insertSettings(dedupToken), date_time_input_format: 'best_effort' as const };
  if (ch.rawInsert) {
    let body = '';
    for (const r of rows) body += JSON.stringify(r) + '\n';
    await ch.rawInsert({ table, values: body, format: 'JSONEachRow', settings });
    return;
  }
  await ch.client.insert({ table, values: rows as Record<string, unknown>[], format: 'JSONEachRow', clickhouse_settings: { ...BASE_SETTINGS, ...settings } });
}
