// One thread of a multi-threaded ingest edge (edge.ts): a whole edge on the shared port. Its
// /metrics asks the coordinating thread, which gathers every thread's metrics. On `stop` it
// drains and lets the thread end by itself: a thread ended while uWebSockets.js still holds
// its loop aborts the whole process, so nothing here calls process.exit.
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '@drawdown/config';
import { createLogger, isLevel } from '@drawdown/log';
import { metricsSnapshot } from '@drawdown/metrics';
import { startEdgeThread, type FromWorker, type ToWorker } from './edge';

const { config, port, index } = workerData as { config: Config; port: number; index: number };
const port0 = parentPort!;
const send = (m: FromWorker): void => port0.postMessage(m);
const log = createLogger({ service: 'drawdown', thread: index }, { level: isLevel(config.logLevel) ? config.logLevel : 'info' });

const asked = new Map<number, (m: Extract<ToWorker, { type: 'metrics' }>) => void>();
let nextId = 0;
const metrics = () =>
  new Promise<{ contentType: string; body: string }>((resolve, reject) => {
    const id = nextId++;
    asked.set(id, (m) => (m.error === undefined ? resolve(m) : reject(new Error(`metrics of the ingest threads: ${m.error}`))));
    send({ type: 'metrics', id });
  });

try {
  const edge = await startEdgeThread({ config, log, port, metrics });
  port0.on('message', (m: ToWorker) => {
    if (m.type === 'collect') {
      void metricsSnapshot().then((list) => send({ type: 'collected', id: m.id, metrics: list }));
    } else if (m.type === 'metrics') {
      asked.get(m.id)?.(m);
      asked.delete(m.id);
    } else {
      void edge.close(m.timeoutMs).then(() => port0.close());
    }
  });
  send({ type: 'ready' });
} catch (err) {
  send({ type: 'failed', message: (err as Error).message });
  port0.close();
}
