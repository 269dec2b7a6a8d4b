import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { threadGroupCpuS, threadGroupsBetween } from './util';

describe('threadGroupCpuS', () => {
  it("splits a process's CPU into its main thread and the other threads", async () => {
    const before = threadGroupCpuS(process.pid);
    expect(before.get(process.pid)?.group).toBe('main');
    // A worker thread spins for 300 ms of CPU: its time shows under `other`, not under `main`.
    const w = new Worker('const t = process.cpuUsage(); while (process.cpuUsage(t).user < 300000) {}  require("worker_threads").parentPort.postMessage(1)', { eval: true });
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
