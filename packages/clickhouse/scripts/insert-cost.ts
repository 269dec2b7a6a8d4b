// Process CPU per row of inserting rated_events rows into embedded chDB, per variant (schema,
// payload format, settings), background merges included. See the package README ("Insert cost").
//
//   node --import tsx packages/clickhouse/scripts/insert-cost.ts --compare base,rowbinary [--pairs 3]
//       [--inserts 15] [--rows 20000]
//
// --compare runs each variant in its own child process (a fresh chDB data directory), alternated
// A, B, A, B, ... and prints the medians. One child (`--variant NAME`) does:
//   1. migrate the variant's schema; measure the idle CPU rate of the process for 2 s (chDB's
//      background threads);
//   2. build `inserts` distinct payloads of `rows` rows each (rows as the rater writes them:
//      10,000 customers in stream order, ~210 bytes per row in TabSeparated), timing the encode
//      (JS CPU per row);
//   3. insert them one after the other (each with its own dedup token), process CPU measured
//      (all threads: the event loop and chDB's);
//   4. settle: wait until no merge runs and the active part count is stable for 2 s; the CPU of
//      that period, less the idle rate, is the background merges' share.
// Printed: encodeUs (JS encode, per row), insertUs (during the inserts), settleUs (merges after),
// totalUs = insertUs + settleUs, all per row. With --split, settleUs is one full merge pass
// (see below) and insertUs the inserts with merges held.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RATED_EVENTS_MERGE_SELECTOR_BASE, SCHEMA, TsvWriter, insertSettings, tsvDateTime64 } from '../src/index';

interface Row {
  partition: number;
  seq: number;
  batch_id: string;
  customer_id: string;
  external_customer_id: string;
  idempotency_key: string;
  event_name: string;
  timestamp: number;
  received_at: number;
  properties: string;
  subscription_id: string;
  price_id: string;
  metric_id: string;
  group_key: string;
  period_start: number;
  quantity: bigint; // picos
  amount: bigint; // picos
  pricing_unit: string;
  status: string;
  reason: string;
  catalog_version: number;
}

const COLUMNS = [
  'partition', 'seq', 'batch_id', 'customer_id', 'external_customer_id', 'idempotency_key', 'event_name', 'timestamp', 'received_at',
  'properties', 'subscription_id', 'price_id', 'metric_id', 'group_key', 'period_start', 'quantity', 'amount', 'pricing_unit', 'status',
  'reason', 'catalog_version',
] as const;

const PICO = 1_000_000_000_000n;
function decimalText(p: bigint): string {
  const neg = p < 0n;
  const a = neg ? -p : p;
  const frac = a % PICO;
  const s = frac === 0n ? String(a / PICO) : `${a / PICO}.${String(frac).padStart(12, '0').replace(/0+$/, '')}`;
  return neg ? `-${s}` : s;
}

// A small deterministic generator (xorshift32), so every variant stores the same rows.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

function makeRows(insert: number, n: number, t0: number): Row[] {
  const r = rng(1 + insert);
  const out: Row[] = [];
  const first = insert * n + 1;
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * 10_000);
    const j = i % 100;
    const t = t0 + insert * 1000 + Math.floor(i / 20);
    let seq = first + i;
    // Measurement only: no seq whose bytes hold 0x0a0a (see encodeRowBinary); the same in every variant.
    while ((seq & 0xffff) === 0x0a0a || ((seq >> 8) & 0xffff) === 0x0a0a || ((seq >> 16) & 0xffff) === 0x0a0a) seq += 1;
    out.push({
      partition: c % 2, seq, batch_id: `rated:${c % 2}:${first}-${first + n - 1}`, customer_id: `cus_${String(c).padStart(8, '0')}a1b2c3d4`,
      external_customer_id: `acct-${c}`, idempotency_key: `ev${String(seq).padStart(14, '0')}`, event_name: 'api_call', timestamp: t, received_at: t + 3,
      properties: JSON.stringify({ region: j % 3 === 0 ? 'eu-west-1' : 'us-east-1', bytes: 1000 + j, model: 'small' }),
      subscription_id: `sub_${String(c).padStart(8, '0')}`, price_id: `price_${j % 4}`, metric_id: `metric_${j % 4}`, group_key: '', period_start: Date.UTC(2026, 10, 1),
      quantity: 1_000_000_000_000n * BigInt(1 + (j % 7)), amount: 1_000_000_000n * BigInt(1 + (j % 7)) + 333n, pricing_unit: 'credits', status: 'rated', reason: '', catalog_version: 1,
    });
  }
  return out;
}

// ---- encoders ----

function encodeTsv(rows: Row[]): Uint8Array {
  const w = new TsvWriter(rows.length * 256);
  let lastT = -1, tF = '', lastR = -1, rF = '', lastP = -1, pF = '';
  for (const r of rows) {
    if (r.timestamp !== lastT) tF = tsvDateTime64((lastT = r.timestamp));
    if (r.received_at !== lastR) rF = tsvDateTime64((lastR = r.received_at));
    if (r.period_start !== lastP) pF = tsvDateTime64((lastP = r.period_start));
    w.raw(String(r.partition)).byte(9).raw(String(r.seq)).byte(9).field(r.batch_id).byte(9)
      .field(r.customer_id).byte(9).field(r.external_customer_id).byte(9).field(r.idempotency_key).byte(9).field(r.event_name).byte(9)
      .raw(tF).byte(9).raw(rF).byte(9).field(r.properties).byte(9)
      .field(r.subscription_id).byte(9).field(r.price_id).byte(9).field(r.metric_id).byte(9).field(r.group_key).byte(9)
      .raw(pF).byte(9).raw(decimalText(r.quantity)).byte(9).raw(decimalText(r.amount)).byte(9)
      .field(r.pricing_unit).byte(9).raw(r.status).byte(9).field(r.reason).byte(9).raw(String(r.catalog_version)).byte(10);
  }
  return w.bytes();
}

/** RowBinary: little-endian fixed-width numbers, strings as LEB128 length + UTF-8 bytes. */
class BinWriter {
  buf: Uint8Array;
  dv: DataView;
  at = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.dv = new DataView(this.buf.buffer);
  }
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.at + n));
    next.set(this.buf.subarray(0, this.at));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u16(v: number): void {
    this.room(2);
    this.dv.setUint16(this.at, v, true);
    this.at += 2;
  }
  u64(v: number): void {
    this.room(8);
    this.dv.setUint32(this.at, v >>> 0, true);
    this.dv.setUint32(this.at + 4, Math.floor(v / 4294967296), true);
    this.at += 8;
  }
  i64(v: number): void {
    this.room(8);
    this.dv.setBigInt64(this.at, BigInt(v), true);
    this.at += 8;
  }
  i128(v: bigint): void {
    this.room(16);
    this.dv.setBigUint64(this.at, BigInt.asUintN(64, v), true);
    this.dv.setBigInt64(this.at + 8, v >> 64n, true);
    this.at += 16;
  }
  /** ASCII strings only in this script (the rater's writer would encode UTF-8 as TsvWriter does). */
  str(s: string): void {
    const n = s.length;
    this.room(n + 5);
    let len = n;
    while (len >= 0x80) {
      this.buf[this.at++] = (len & 0x7f) | 0x80;
      len >>>= 7;
    }
    this.buf[this.at++] = len;
    for (let i = 0; i < n; i++) this.buf[this.at++] = s.charCodeAt(i);
  }
}

function encodeRowBinary(rows: Row[]): Uint8Array {
  const w = new BinWriter(rows.length * 256);
  for (const r of rows) {
    w.u16(r.partition); w.u64(r.seq); w.str(r.batch_id); w.str(r.customer_id); w.str(r.external_customer_id); w.str(r.idempotency_key);
    w.str(r.event_name); w.i64(r.timestamp); w.i64(r.received_at); w.str(r.properties); w.str(r.subscription_id); w.str(r.price_id);
    w.str(r.metric_id); w.str(r.group_key); w.i64(r.period_start); w.i128(r.quantity); w.i128(r.amount); w.str(r.pricing_unit);
    w.str(r.status); w.str(r.reason); w.u64(r.catalog_version);
  }
  const body = w.buf.subarray(0, w.at);
  // chDB's raw insert entry is not binary-safe: two newline bytes in a row end the payload
  // ("Cannot read all data"). makeRows skips the sequence numbers that would write them.
  for (let i = 1; i < body.length; i++) if (body[i] === 10 && body[i - 1] === 10) throw new Error(`RowBinary payload holds two newline bytes at ${i}`);
  return body;
}

function encodeJsonCompact(rows: Row[]): Uint8Array {
  let s = '';
  for (const r of rows) {
    s += `[${r.partition},${r.seq},${JSON.stringify(r.batch_id)},${JSON.stringify(r.customer_id)},${JSON.stringify(r.external_customer_id)},${JSON.stringify(r.idempotency_key)},${JSON.stringify(r.event_name)},${r.timestamp},${r.received_at},${JSON.stringify(r.properties)},${JSON.stringify(r.subscription_id)},${JSON.stringify(r.price_id)},${JSON.stringify(r.metric_id)},${JSON.stringify(r.group_key)},${r.period_start},"${decimalText(r.quantity)}","${decimalText(r.amount)}",${JSON.stringify(r.pricing_unit)},${JSON.stringify(r.status)},${JSON.stringify(r.reason)},${r.catalog_version}]\n`;
  }
  return Buffer.from(s);
}

type Format = 'TabSeparated' | 'RowBinary' | 'JSONCompactEachRow';
const ENCODERS: Record<Format, (rows: Row[]) => Uint8Array> = { TabSeparated: encodeTsv, RowBinary: encodeRowBinary, JSONCompactEachRow: encodeJsonCompact };

// ---- variants ----


interface Variant {
  format?: Format;
  /** Rewrites the schema statements. */
  schema?: (s: string[]) => string[];
  settings?: Record<string, string | number>;
  /** rated_events' merge_selector_base (migrateClickHouse sets RATED_EVENTS_MERGE_SELECTOR_BASE). */
  mergeSelectorBase?: number;
  /** Insert without a dedup token (a random one is still sent, as insertTsv does). */
  noToken?: boolean;
  /** The same payload for every insert (as bench/src/scenarios/ceilings.ts does). */
  samePayload?: boolean;
  /** The payload written to a file and inserted `FROM INFILE` (binary-safe, unlike the raw insert's inline data). */
  infile?: boolean;
}

const rated = (f: (ddl: string) => string) => (s: string[]) => s.map((x) => (x.startsWith('CREATE TABLE IF NOT EXISTS rated_events') ? f(x) : x));
const tableSetting = (setting: string) => rated((d) => d.replace('non_replicated_deduplication_window = 100000', `non_replicated_deduplication_window = 100000, ${setting}`));
const LC_IDS = ['customer_id', 'external_customer_id', 'subscription_id', 'price_id', 'metric_id', 'group_key', 'batch_id'];

const VARIANTS: Record<string, Variant> = {
  base: {},
  samepayload: { samePayload: true },
  rowbinary: { format: 'RowBinary' },
  rowbinaryfile: { format: 'RowBinary', infile: true },
  jsoncompact: { format: 'JSONCompactEachRow' },
  parallel: { settings: { input_format_parallel_parsing: 1 } },
  notoken: { settings: { insert_deduplicate: 0, deduplicate_blocks_in_dependent_materialized_views: 0 }, noToken: true },
  nodedupwindow: { schema: (s) => s.map((x) => x.replace(/\s*SETTINGS non_replicated_deduplication_window = 100000/, '')), settings: { insert_deduplicate: 0 }, noToken: true },
  optimize: { settings: { optimize_on_insert: 1 } }, // the setting before 2026-11-26
  nocompile: { settings: { compile_expressions: 0, compile_aggregate_expressions: 0, compile_sort_description: 0 } },
  lowcard: { schema: rated((d) => LC_IDS.reduce((x, c) => x.replace(new RegExp(`\\n    ${c} String,`), `\n    ${c} LowCardinality(String),`), d)) },
  nocompress: { schema: rated((d) => d.replace(/\n {4}(\w+) ([^\n]*?),(?=\n)/g, (m, c: string, t: string) => (c === 'INDEX' ? m : `\n    ${c} ${t} CODEC(NONE),`))) },
  zstd: { schema: tableSetting("default_compression_codec = 'ZSTD(1)'") },
  compact: { schema: tableSetting('min_bytes_for_wide_part = 1000000000, min_rows_for_wide_part = 100000000') },
  // Merges wait for about `base` parts of a size: the table before 2026-11-26 had ClickHouse's
  // default (5: more rewrites per row, fewer parts); 10 lies between it and the adopted 20.
  mergebase5: { mergeSelectorBase: 5 },
  mergebase10: { mergeSelectorBase: 10 },
  novertical: { schema: tableSetting('enable_vertical_merge_algorithm = 0') },
  wide: { schema: tableSetting('min_bytes_for_wide_part = 0, min_rows_for_wide_part = 0') },
  // The hourly rollup grouped by fewer keys: a price's metric and pricing unit follow from the price.
  mvkeys: { schema: (s) => s.map((x) => (x.includes('usage_hourly_mv') ? x.replace('SELECT customer_id, price_id, metric_id, group_key, pricing_unit,', 'SELECT customer_id, price_id, any(metric_id) AS metric_id, group_key, any(pricing_unit) AS pricing_unit,').replace('GROUP BY customer_id, price_id, metric_id, group_key, pricing_unit, hour', 'GROUP BY customer_id, price_id, group_key, hour') : x)) },
  noview: { schema: (s) => s.filter((x) => !x.includes('usage_hourly_mv')) },
  nobloom: { schema: rated((d) => d.replace(/\n {4}INDEX idx_key[^\n]*\n/, '\n')) },
  noindex: { schema: rated((d) => d.replace(/,?\n {4}INDEX[^\n]*/g, '')) },
  propertiesnocompress: { schema: rated((d) => d.replace('properties String', 'properties String CODEC(NONE)')) },
  threads1: { settings: { max_insert_threads: 1, max_threads: 1 } },
};

// ---- one child run ----

async function child(name: string, inserts: number, rowsPer: number, warmup: number): Promise<void> {
  const v = VARIANTS[name];
  if (!v) throw new Error(`unknown variant ${name}; known: ${Object.keys(VARIANTS).join(', ')}`);
  const format = v.format ?? 'TabSeparated';
  const req = createRequire(import.meta.url);
  const chdbDir = dirname(req.resolve('chdb'));
  const native = req(join(chdbDir, 'dist/loader.js')).loadNative() as { InsertRawAsyncConnection(c: unknown, prefix: string, buf: Buffer, countLines: boolean): Promise<unknown> };
  const { Session } = req('chdb') as { Session: new (path: string) => { connection: unknown; queryAsync(sql: string, o?: { format?: string }): Promise<{ text(): string }>; close(): void } };
  const dir = mkdtempSync(join(tmpdir(), 'drawdown-insert-cost-'));
  const s = new Session(dir);
  const q = async (sql: string) => (await s.queryAsync(sql, { format: 'TSV' })).text().trim();
  try {
    for (const st of (v.schema ?? ((x) => x))(SCHEMA)) await q(st);
    await q(`ALTER TABLE rated_events MODIFY SETTING merge_selector_base = ${v.mergeSelectorBase ?? RATED_EVENTS_MERGE_SELECTOR_BASE}`);
    const cpuUs = () => {
      const c = process.cpuUsage();
      return c.user + c.system;
    };
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    let c0 = cpuUs(), w0 = performance.now();
    await sleep(2000);
    const idleRate = (cpuUs() - c0) / (performance.now() - w0); // µs of CPU per ms of wall

    const t0 = Date.UTC(2026, 10, 20);
    const payloads: Uint8Array[] = [];
    let encodeUs = 0;
    for (let i = 0; i < inserts; i++) {
      const rows = makeRows(v.samePayload ? 0 : i, rowsPer, t0);
      const a = cpuUs();
      payloads.push(ENCODERS[format](rows));
      encodeUs += cpuUs() - a;
    }
    const bytesPerRow = payloads.reduce((a, p) => a + p.byteLength, 0) / (inserts * rowsPer);
    const cols = ` (${COLUMNS.join(', ')})`;
    // Warm-up inserts, not counted: the first inserts of a process compile expressions (JIT,
    // cached for the process's life) and build caches, a one-time cost a long-running rater
    // does not pay per row.
    for (let i = 0; i < warmup; i++) {
      const p = encodeTsv(makeRows(1000 + i, rowsPer, t0));
      const set = Object.entries({ ...insertSettings(`warmup:${i}`), ...(v.settings ?? {}) }).map(([k, x]) => `${k}=${typeof x === 'number' ? x : `'${x}'`}`).join(', ');
      await native.InsertRawAsyncConnection(s.connection, `INSERT INTO rated_events${cols} SETTINGS ${set} FORMAT TabSeparated`, Buffer.from(p.buffer, p.byteOffset, p.byteLength), true);
    }
    const events = async () => new Map((await q("SELECT event, value FROM system.events")).split('\n').map((l) => l.split('\t') as [string, string]).map(([k, x]) => [k, Number(x)]));
    const ev0 = process.argv.includes('--events') ? await events() : undefined;
    // --split: merges held during the inserts, then everything merged into one part per table
    // (OPTIMIZE FINAL): the insert alone, and one merge pass over the same rows (the warm-up
    // parts are merged too, so that pass is counted per row merged).
    const split = process.argv.includes('--split');
    if (split) for (const t of ['rated_events', 'usage_hourly']) await q(`SYSTEM STOP MERGES ${t}`);
    c0 = cpuUs();
    w0 = performance.now();
    for (let i = 0; i < inserts; i++) {
      // The settings insertTsv sends (with a token, or a random one), then the variant's.
      const st = { ...insertSettings(v.noToken ? '' : `rated:bench:${i}`), ...(v.settings ?? {}) };
      const set = Object.entries(st).map(([k, x]) => `${k}=${typeof x === 'number' ? x : `'${x}'`}`).join(', ');
      const p = payloads[i]!;
      if (v.infile) {
        // Written to a file each time (its cost counted), then read by the engine.
        const file = join(dir, `insert-${i}.bin`);
        writeFileSync(file, p);
        await s.queryAsync(`INSERT INTO rated_events${cols} FROM INFILE '${file}' SETTINGS ${set} FORMAT ${format}`, { format: 'CSV' });
        unlinkSync(file);
        continue;
      }
      await native.InsertRawAsyncConnection(s.connection, `INSERT INTO rated_events${cols} SETTINGS ${set} FORMAT ${format}`, Buffer.from(p.buffer, p.byteOffset, p.byteLength), format !== 'RowBinary');
    }
    const c1 = cpuUs();
    const w1 = performance.now();
    if (ev0) {
      // chDB's own counters over the inserts (time per row, by phase), largest first.
      const ev1 = await events();
      const n = inserts * rowsPer;
      const rowsOut = [...ev1].map(([k, x]) => [k, (x - (ev0.get(k) ?? 0)) / n] as const).filter(([k, x]) => x > 0.01 && /Microseconds|Bytes$|Rows$|Parts/.test(k)).sort((a, b) => b[1] - a[1]);
      for (const [k, x] of rowsOut) process.stderr.write(`${k}\t${x.toFixed(3)}\n`);
    }
    if (split) {
      for (const t of ['rated_events', 'usage_hourly']) await q(`SYSTEM START MERGES ${t}`);
      const m0 = cpuUs();
      for (const t of ['rated_events', 'usage_hourly']) await q(`OPTIMIZE TABLE ${t} FINAL`);
      const n = inserts * rowsPer;
      const mergeUs = (cpuUs() - m0) / ((inserts + warmup) * rowsPer);
      const out = { variant: name, split: true, rows: n, encodeUs: encodeUs / n, insertUs: (c1 - c0) / n, settleUs: mergeUs, totalUs: (c1 - c0) / n + mergeUs, insertWallMs: Math.round(w1 - w0) };
      process.stdout.write(`${JSON.stringify(out)}\n`);
      return;
    }
    // Settle: no merge running and the same active part count for 2 s (at most 60 s).
    let stable = 0, lastParts = '';
    while (stable < 4 && performance.now() - w1 < 60_000) {
      await sleep(500);
      const merges = await q("SELECT count() FROM system.merges WHERE table IN ('rated_events', 'usage_hourly')");
      const parts = await q("SELECT count() FROM system.parts WHERE active AND table IN ('rated_events', 'usage_hourly')");
      stable = merges === '0' && parts === lastParts ? stable + 1 : 0;
      lastParts = parts;
    }
    const c2 = cpuUs();
    const w2 = performance.now();
    const n = inserts * rowsPer;
    const count = await q(`SELECT count() FROM rated_events WHERE seq <= ${n}`);
    if (count !== String(n)) throw new Error(`rated_events holds ${count} rows, expected ${n}`);
    const insertUs = (c1 - c0) / n;
    const settleUs = Math.max(0, c2 - c1 - idleRate * (w2 - w1)) / n;
    const out = { variant: name, format, rows: n, bytesPerRow: Math.round(bytesPerRow), encodeUs: encodeUs / n, insertUs, settleUs, totalUs: insertUs + settleUs, insertWallMs: Math.round(w1 - w0), parts: lastParts, idleCpuPct: idleRate / 10 };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- driver ----

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

async function main(): Promise<void> {
  const inserts = Number(arg('inserts', '15'));
  const rows = Number(arg('rows', '20000'));
  const variant = arg('variant', '');
  const warmup = Number(arg('warmup', '2'));
  if (variant) return child(variant, inserts, rows, warmup);
  const names = arg('compare', 'base').split(',');
  for (const n of names) if (!VARIANTS[n]) throw new Error(`unknown variant ${n}; known: ${Object.keys(VARIANTS).join(', ')}`);
  const pairs = Number(arg('pairs', '3'));
  const self = fileURLToPath(import.meta.url);
  const results = new Map<string, { encodeUs: number; insertUs: number; settleUs: number; totalUs: number; bytesPerRow: number }[]>();
  for (let p = 0; p < pairs; p++) {
    for (const n of names) {
      const r = spawnSync(process.execPath, [...process.execArgv, self, '--variant', n, '--inserts', String(inserts), '--rows', String(rows), '--warmup', String(warmup), ...(process.argv.includes('--split') ? ['--split'] : [])], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`variant ${n} failed: ${r.stderr}`);
      const line = r.stdout.trim().split('\n').pop()!;
      process.stdout.write(`${line}\n`);
      const o = JSON.parse(line);
      results.set(n, [...(results.get(n) ?? []), o]);
    }
  }
  process.stdout.write('\nmedians (µs of process CPU per row):\nvariant\tencode\tinsert\tsettle\ttotal\tbytes/row\n');
  for (const [n, rs] of results) {
    process.stdout.write(`${n}\t${r2(median(rs.map((x) => x.encodeUs)))}\t${r2(median(rs.map((x) => x.insertUs)))}\t${r2(median(rs.map((x) => x.settleUs)))}\t${r2(median(rs.map((x) => x.totalUs)))}\t${Math.round(median(rs.map((x) => x.bytesPerRow)))}\n`);
  }
}

await main();
