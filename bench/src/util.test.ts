import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { calibrationMs, threadGroupCpuS, threadGroupsBetween, threadNamesBetween } from './util';

describe('threadGroupCpuS', () => {
  it("splits a process's CPU into its main thread and the other threads", async () => {
    const before = threadGroupCpuS(process.pid);
    expect(before.get(process.pid)?.group).toBe('main');
    // A worker thread spins for 300 ms of its own CPU (its /proc/thread-self/stat, not
    // process.cpuUsage(), which counts every thread and so ran short when others were busy): its
    // time shows under `other`, not under `main`.
    const w = new Worker(
      'const fs = require("fs"); const ticks = () => { const f = fs.readFileSync("/proc/thread-self/stat", "utf8").split(") ")[1].split(" "); return Number(f[11]) + Number(f[12]); };'
      + ' const t0 = ticks(); while (ticks() - t0 < 30) { for (let i = 0; i < 1e5; i++); } require("worker_threads").parentPort.postMessage(1);'
      // Kept alive until terminated: a worker whose script ends exits on its own, and a thread
      // gone before the reading below takes its CPU time out of the per-thread figures.
      + ' setInterval(() => {}, 60000);',
      { eval: true },
    );
    await new Promise((r) => w.once('message', r));
    const during = threadGroupCpuS(process.pid);
    await w.terminate();
    const d = threadGroupsBetween(before, during);
    expect(d.other).toBeGreaterThanOrEqual(0.25);
    expect(d.main).toBeLessThan(d.other);
    // By name: the worker's thread is not the main one, and its time is there under its name.
    const byName = threadNamesBetween(before, during);
    const others = Object.entries(byName).filter(([k]) => k !== 'main');
    expect(others.reduce((a, [, v]) => a + v, 0)).toBeCloseTo(d.other + d.named, 5);
    expect(Math.max(...others.map(([, v]) => v))).toBeGreaterThanOrEqual(0.25);
    expect(Object.values(threadNamesBetween(before, during, 0.25)).every((v) => v >= 0.25)).toBe(true);
  });
  it('folds the numbered threads of a pool into one name', () => {
    const at = (entries: [number, string, number][]) => new Map(entries.map(([tid, name, cpuS]) => [tid, { group: tid === 1 ? ('main' as const) : ('named' as const), name, cpuS }]));
    const d = threadNamesBetween(at([[1, 'node', 1], [2, 'MergeMutate1', 0], [3, 'MergeMutate2', 1]]), at([[1, 'node', 3], [2, 'MergeMutate1', 0.5], [3, 'MergeMutate2', 2], [4, 'BgSchPool', 0.25]]));
    expect(d).toEqual({ main: 2, MergeMutate: 1.5, BgSchPool: 0.25 });
  });
  it('gives an empty reading for a process that does not exist', () => {
    expect(threadGroupCpuS(2 ** 22 + 1).size).toBe(0);
  });
});

describe('calibrationMs', () => {
  it('reports what the fixed work takes: two single tries in a row take more than one and a half times the best of three', () => {
    const alone = calibrationMs(3);
    expect(alone).toBeGreaterThan(0);
    const t0 = performance.now();
    calibrationMs(1);
    calibrationMs(1);
    expect(performance.now() - t0).toBeGreaterThan(1.5 * alone);
  });
});
