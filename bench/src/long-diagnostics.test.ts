import { describe, expect, it } from 'vitest';
import { costLastVsFirst, costPerEventByTenth, windowDiagnostics, type WindowReadings } from './long-diagnostics';
import type { ChStats } from './server';

const ch = (atMs: number, parts: number, rows: number, merges: number, mergedRows: number, mergeMs: number, checks: number): ChStats => ({
  atMs, tables: { rated_events: { parts, rows, bytesOnDisk: rows * 40, largestPartRows: rows / 4 }, usage_hourly: { parts: 3, rows: 10, bytesOnDisk: 0, largestPartRows: 10 } }, mergesRunning: 1,
  events: { Merge: merges, MergedRows: mergedRows, MergeTotalMilliseconds: mergeMs, InsertQuery: merges * 2, InsertedRows: 0, InsertQueryTimeMicroseconds: mergeMs * 100, SelectedRows: rows / 10 }, dedupStoreChecks: checks,
});

const base: WindowReadings = {
  window: 4, storedEventsBefore: 7_000_000, processedPerS: 140_000,
  cpuShare: { allInOne: 1.2, allInOneMainThread: 0.8, allInOneClickHouseThreads: 0.3, allInOneOtherThreads: 0.1, postgres: 0.2, natsServer: 0.15, loadgen: 0.1 },
  threadsCpuShare: { main: 0.8, MergeMutate: 0.2, QueryPipelineEx: 0.1, node: 0.05, 'libuv-worker': 0.02 },
  stages: { raterBatchesPerS: 5, raterBatchMsAvg: 120, raterEventsPerBatch: 28_000, ledgerTxPerS: 10, ledgerTxMsAvg: 30, ledgerBatchesPerTx: 2 },
  rssMB: { allInOne: 900, loadgen: 100 },
  ch0: ch(1_000, 40, 7_000_000, 100, 5_000_000, 20_000, 10),
  ch1: ch(21_000, 44, 9_800_000, 120, 9_000_000, 30_000, 12),
  drainS: 3.04,
  calibrationMs: 171.2,
};

describe('windowDiagnostics', () => {
  it("turns a window's readings into one flat row: rates per second over the readings' span", () => {
    const d = windowDiagnostics(base);
    expect(d).toMatchObject({ window: 4, storedEventsBefore: 7_000_000, processedPerS: 140_000, cpuMain: 0.8, cpuClickHouse: 0.3, cpuOther: 0.1, cpuPostgres: 0.2, cpuNats: 0.15, cpuLoadgen: 0.1, cpuMerges: 0.2 });
    expect(d).toMatchObject({ raterBatchMs: 120, raterEventsPerBatch: 28_000, ledgerTxMs: 30, ratedParts: 44, ratedRowsM: 9.8, ratedMB: 392, ratedLargestPartM: 2.45, allInOneRssMB: 900, drainS: 3, calibrationMs: 171.2 });
    // 20 s between the readings: 20 merges, 4,000,000 rows and 10,000 ms of merging.
    expect(d.mergesPerS).toBe(1);
    expect(d.mergedRowsPerS).toBe(200_000);
    expect(d.mergeMsPerS).toBe(500);
    // 40 inserts took 1,000,000 µs between them; reads selected 280,000 rows.
    expect(d.insertMsAvg).toBe(25);
    expect(d.selectedRowsPerS).toBe(14_000);
    expect(d.dedupStoreChecks).toBe(2);
  });
  it("lists the engine's threads only, largest first as given", () => {
    expect(windowDiagnostics(base).clickHouseThreads).toBe('MergeMutate 0.2, QueryPipelineEx 0.1');
  });
  it('leaves the engine figures empty when the engine was not read', () => {
    const d = windowDiagnostics({ ...base, ch0: undefined, ch1: undefined, stages: undefined });
    expect(d).toMatchObject({ ratedParts: null, ratedMB: null, mergesPerS: null, mergedRowsPerS: null, mergeMsPerS: null, insertMsAvg: null, selectedRowsPerS: null, dedupStoreChecks: null, raterBatchMs: null });
  });
});

describe('costPerEventByTenth', () => {
  const row = (stored: number, processed: number, main: number, counted = true) => ({ storedEventsBefore: stored, processedPerS: processed, cpuMain: main, cpuOther: 0.4, cpuClickHouse: 0.3, cpuMerges: 0.1, cpuPostgres: 0.5, cpuNats: 0.2, counted });
  it('gives the CPU per event of each tenth by where it went, from its counted windows only', () => {
    const t = costPerEventByTenth([row(0, 1, 9, false), row(100, 50_000, 0.4), row(500, 50_000, 0.6), row(9_500, 40_000, 0.5)], 10_000);
    expect(t).toHaveLength(10);
    // First tenth: two windows at 50,000 events/s, main 0.4 and 0.6 cores: 0.5 / 50,000 s = 10 µs per event.
    expect(t[0]).toMatchObject({ from: 0, windows: 2, processedPerS: 50_000, mainUs: 10, otherUs: 8, mergesUs: 2, clickHouseRestUs: 4, postgresUs: 10, natsUs: 4, totalUs: 38 });
    expect(t[9]).toMatchObject({ from: 9_000, windows: 1, processedPerS: 40_000, mainUs: 12.5, postgresUs: 12.5 });
    expect(t[5]).toMatchObject({ windows: 0, processedPerS: 0, totalUs: 0 });
  });
});

describe('costLastVsFirst', () => {
  const tenth = (windows: number, main: number, pg: number) => ({ from: 0, windows, processedPerS: 1, mainUs: main, otherUs: main, mergesUs: 1, clickHouseRestUs: 1, postgresUs: pg, natsUs: 0, totalUs: 2 * main + 2 + pg });
  it('compares the last tenth with counted windows against the first', () => {
    expect(costLastVsFirst([tenth(0, 9, 9), tenth(2, 5, 10), tenth(1, 6, 20), tenth(0, 9, 9)])).toEqual({ edgeAndPricing: 1.2, clickHouse: 1, postgres: 2, total: 1.545 });
  });
  it('has nothing to compare with fewer than two tenths', () => {
    expect(costLastVsFirst([tenth(0, 1, 1), tenth(3, 1, 1)])).toBeNull();
  });
});
