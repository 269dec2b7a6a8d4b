import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { threadGroupCpuS, threadGroupsBetween } from './util';

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
  });
  it('gives an empty reading for a process that does not exist', () => {
    expect(threadGroupCpuS(2 ** 22 + 1).size).toBe(0);
  });
});
