// What the long run records beside each Drawdown window's figure, to tell what slows as stored
// events grow: where the all-in-one's CPU went (its event loop, the embedded ClickHouse engine's
// threads by name, the rest), what Postgres and NATS used, the two batching stages' times, and
// the ClickHouse engine's state (parts, merge work) over the window. One flat row per window
// (RESULTS.md prints it as a table; results.json keeps it whole).
import type { StageFigures } from './app-metrics';
import { tenthOf, tenthStart } from './search';
import type { ChStats } from './server';
import { round } from './util';

export interface WindowDiagnostics {
  window: number;
  storedEventsBefore: number;
  processedPerS: number;
  /** CPU shares over the window (1 = one core). */
  cpuMain: number;
  cpuClickHouse: number;
  cpuOther: number;
  cpuPostgres: number;
  cpuNats: number;
  cpuLoadgen: number;
  /** The engine's merge threads (MergeMutate), part of cpuClickHouse. */
  cpuMerges: number;
  /** The engine's threads by name with their shares, largest first (e.g. "MergeMutate 0.31, ..."). */
  clickHouseThreads: string;
  raterBatchMs: number | null;
  raterEventsPerBatch: number | null;
  ledgerTxMs: number | null;
  /** rated_events' active parts and rows at the window's end. */
  ratedParts: number | null;
  ratedRowsM: number | null;
  /** rated_events' bytes on disk (MB) and its largest part's rows (millions) at the window's end. */
  ratedMB: number | null;
  ratedLargestPartM: number | null;
  /** Merges the engine finished per second over the window, rows they wrote per second and merge milliseconds per second (summed over merge threads). */
  mergesPerS: number | null;
  mergedRowsPerS: number | null;
  mergeMsPerS: number | null;
  /** Mean milliseconds of an insert into the engine over the window (the materialized view's work included). */
  insertMsAvg: number | null;
  /** Rows the engine's queries selected per second (system.events SelectedRows: the rater's reads, the bench's own reads of system tables, and whatever else the engine counts there). */
  selectedRowsPerS: number | null;
  /** Keys the rater checked against ClickHouse in the window. */
  dedupStoreChecks: number | null;
  allInOneRssMB: number | null;
  /** Seconds the drain after the window took (0: it kept up, no drain). */
  drainS: number;
  /** The machine's speed read after the window (and its drain): milliseconds of util.ts's calibrationMs, lower is faster. */
  calibrationMs: number | null;
}

export interface WindowReadings {
  window: number;
  storedEventsBefore: number;
  processedPerS: number;
  cpuShare: Record<string, number>;
  threadsCpuShare?: Record<string, number>;
  stages?: StageFigures;
  rssMB: Record<string, number>;
  /** The engine's state before and after the window's load (undefined: not read). */
  ch0?: ChStats;
  ch1?: ChStats;
  drainS: number;
  calibrationMs?: number;
}

/** Thread names the all-in-one's own code runs under, not the engine's. */
const NOT_ENGINE = new Set(['main', 'node']);

function insertMs(a?: ChStats, b?: ChStats): number | null {
  const n = a && b ? (b.events.InsertQuery ?? 0) - (a.events.InsertQuery ?? 0) : 0;
  return a && b && n > 0 ? round(((b.events.InsertQueryTimeMicroseconds ?? 0) - (a.events.InsertQueryTimeMicroseconds ?? 0)) / n / 1000, 1) : null;
}

export function windowDiagnostics(r: WindowReadings): WindowDiagnostics {
  const c = r.cpuShare;
  const engine = Object.entries(r.threadsCpuShare ?? {}).filter(([k]) => !NOT_ENGINE.has(k) && !k.startsWith('libuv') && !k.startsWith('V8'));
  const s = r.ch0 && r.ch1 ? (r.ch1.atMs - r.ch0.atMs) / 1000 : 0;
  const per = (f: (x: ChStats) => number) => (r.ch0 && r.ch1 && s > 0 ? round((f(r.ch1) - f(r.ch0)) / s, 1) : null);
  const rated = r.ch1?.tables.rated_events;
  return {
    window: r.window,
    storedEventsBefore: r.storedEventsBefore,
    processedPerS: r.processedPerS,
    cpuMain: c.allInOneMainThread ?? 0,
    cpuClickHouse: c.allInOneClickHouseThreads ?? 0,
    cpuOther: c.allInOneOtherThreads ?? 0,
    cpuPostgres: c.postgres ?? 0,
    cpuNats: c.natsServer ?? 0,
    cpuLoadgen: c.loadgen ?? 0,
    cpuMerges: r.threadsCpuShare?.MergeMutate ?? 0,
    clickHouseThreads: engine.map(([k, v]) => `${k} ${v}`).join(', '),
    raterBatchMs: r.stages?.raterBatchMsAvg ?? null,
    raterEventsPerBatch: r.stages?.raterEventsPerBatch ?? null,
    ledgerTxMs: r.stages?.ledgerTxMsAvg ?? null,
    ratedParts: rated?.parts ?? null,
    ratedRowsM: rated ? round(rated.rows / 1e6, 2) : null,
    ratedMB: rated ? round(rated.bytesOnDisk / 1e6) : null,
    ratedLargestPartM: rated ? round(rated.largestPartRows / 1e6, 2) : null,
    mergesPerS: per((x) => x.events.Merge ?? 0),
    mergedRowsPerS: per((x) => x.events.MergedRows ?? 0),
    mergeMsPerS: per((x) => x.events.MergeTotalMilliseconds ?? 0),
    insertMsAvg: insertMs(r.ch0, r.ch1),
    selectedRowsPerS: per((x) => x.events.SelectedRows ?? 0),
    dedupStoreChecks: r.ch0 && r.ch1 ? r.ch1.dedupStoreChecks - r.ch0.dedupStoreChecks : null,
    allInOneRssMB: r.rssMB.allInOne ?? null,
    drainS: round(r.drainS, 1),
    calibrationMs: r.calibrationMs ?? null,
  };
}

/**
 * CPU per processed event in each tenth of the run (µs; the counted windows of the tenth, windows
 * placed by the events stored before them, as longRunTenths), by where it went. Tells stored data
 * from the machine: the edge and pricing work per event (`main`, `other`) does not depend on what
 * is stored, so when it grows the machine slowed; merges, inserts and the ledger's statements may
 * grow with the tables.
 */
export interface TenthCost {
  from: number;
  windows: number;
  processedPerS: number;
  /** The all-in-one's event loop (edge, rater and ledger coordination) and its other threads (pricing workers, GC, libuv). */
  mainUs: number;
  otherUs: number;
  /** The embedded ClickHouse engine: merge threads, and the rest (inserts, the view, reads). */
  mergesUs: number;
  clickHouseRestUs: number;
  postgresUs: number;
  natsUs: number;
  totalUs: number;
}

type CpuFields = Pick<WindowDiagnostics, 'cpuMain' | 'cpuOther' | 'cpuClickHouse' | 'cpuMerges' | 'cpuPostgres' | 'cpuNats'>;

/** A window's CPU (cores) split by where it went, as the CPU-per-event readings split it: the engine's merges apart from the rest of it. */
export function cpuParts(r: CpuFields): { main: number; other: number; merges: number; clickHouseRest: number; postgres: number; nats: number } {
  return { main: r.cpuMain, other: r.cpuOther, merges: r.cpuMerges, clickHouseRest: Math.max(0, r.cpuClickHouse - r.cpuMerges), postgres: r.cpuPostgres, nats: r.cpuNats };
}

export function costPerEventByTenth(rows: (Pick<WindowDiagnostics, 'storedEventsBefore' | 'processedPerS'> & CpuFields & { counted: boolean })[], events: number): TenthCost[] {
  const sums = Array.from({ length: 10 }, (_, i) => ({ from: tenthStart(i, events), n: 0, processed: 0, cpu: { main: 0, other: 0, merges: 0, clickHouseRest: 0, postgres: 0, nats: 0 } }));
  for (const r of rows) {
    if (!r.counted || !(r.processedPerS > 0)) continue;
    const t = sums[tenthOf(r.storedEventsBefore, events)]!;
    t.n++;
    t.processed += r.processedPerS;
    for (const [k, v] of Object.entries(cpuParts(r))) t.cpu[k as keyof typeof t.cpu] += v;
  }
  return sums.map((t) => {
    // Equal windows: the tenth's CPU seconds per second over its events per second.
    const us = (share: number) => (t.processed > 0 ? round((share / t.processed) * 1e6, 2) : 0);
    const c = { mainUs: us(t.cpu.main), otherUs: us(t.cpu.other), mergesUs: us(t.cpu.merges), clickHouseRestUs: us(t.cpu.clickHouseRest), postgresUs: us(t.cpu.postgres), natsUs: us(t.cpu.nats) };
    return { from: t.from, windows: t.n, processedPerS: t.n > 0 ? Math.round(t.processed / t.n) : 0, ...c, totalUs: round(Object.values(c).reduce((a, x) => a + x, 0), 2) };
  });
}

/** The last tenth's CPU per event over the first's (the first and last tenths with counted windows), split as costPerEventByTenth explains. */
export function costLastVsFirst(tenths: TenthCost[]): { edgeAndPricing: number; clickHouse: number; postgres: number; total: number } | null {
  const with_ = tenths.filter((t) => t.windows > 0);
  const a = with_[0];
  const b = with_[with_.length - 1];
  if (!a || !b || a === b) return null;
  const r = (f: (t: TenthCost) => number) => (f(a) > 0 ? round(f(b) / f(a), 3) : 0);
  return { edgeAndPricing: r((t) => t.mainUs + t.otherUs), clickHouse: r((t) => t.mergesUs + t.clickHouseRestUs), postgres: r((t) => t.postgresUs), total: r((t) => t.totalUs) };
}
