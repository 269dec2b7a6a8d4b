// The standalone ingest edge: the ingest route with API-key auth in front of JetStream, on
// DRAWDOWN_INGEST_THREADS threads. With one thread it runs in the calling thread. With more,
// each worker thread runs a whole edge (its own uWebSockets.js server on the same port, NATS
// connection, Postgres pool and API-key cache listening for revocations); the kernel spreads
// the connections over the threads (SO_REUSEPORT). This thread only coordinates: it gathers
// every thread's metrics for /metrics, whichever thread serves it, and stops them all.
import { createServer } from 'node:net';
import { Worker } from 'node:worker_threads';
import { createKeyVerifier } from '@drawdown/auth';
import type { Config } from '@drawdown/config';
import { startHttpServer } from '@drawdown/http';
import type { Logger } from '@drawdown/log';
import { aggregateMetrics, collectProcessMetrics, metricsSnapshot, type MetricsSnapshot } from '@drawdown/metrics';
import { connectNats, ensureStreams, names } from '@drawdown/nats';
import { createPool } from '@drawdown/pg';
import { createIngest } from './index';

export interface IngestEdge {
  port: number;
  threads: number;
  /** Stops accepting on every thread, waits for their in-flight requests (up to timeoutMs), then closes NATS and Postgres. */
  close(timeoutMs?: number): Promise<void>;
}

/** Metrics text as /metrics serves it. */
type RenderMetrics = () => Promise<{ contentType: string; body: string }>;

/** One thread's edge: everything a thread needs to serve ingest on `port`. */
export async function startEdgeThread(opts: { config: Config; log: Logger; port: number; metrics?: RenderMetrics }): Promise<IngestEdge> {
  const { config, log } = opts;
  const pool = createPool(config.databaseUrl, { max: 4, application: 'drawdown-ingest' });
  const nc = await connectNats(config.natsUrl, 'drawdown-ingest', log);
  try {
    await ensureStreams(nc, names(config.namespace));
    const verifier = createKeyVerifier(pool, {
      cacheTtlMs: config.apiKeyCacheTtlMs,
      maxEntries: config.apiKeyCacheMaxEntries,
      bus: nc,
      namespace: config.namespace,
    });
    const ingest = createIngest({ config, nc, log });
    const http = await startHttpServer({
      host: config.httpHost, port: opts.port, routes: ingest.routes, log, metrics: opts.metrics,
      authenticate: (h) => verifier.authenticate(h),
      ready: () => !nc.isClosed(),
    });
    return {
      port: http.port,
      threads: 1,
      async close(timeoutMs = config.shutdownTimeoutMs) {
        await http.close(timeoutMs);
        verifier.close();
        await nc.drain().catch(() => {});
        await pool.end().catch(() => {});
      },
    };
  } catch (err) {
    await nc.close().catch(() => {});
    await pool.end().catch(() => {});
    throw err;
  }
}

/** Messages between this thread and the edge threads (edge-worker.ts). */
export type ToWorker =
  | { type: 'collect'; id: number }
  | { type: 'metrics'; id: number; contentType: string; body: string; error?: string }
  | { type: 'stop'; timeoutMs: number };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'collected'; id: number; metrics: MetricsSnapshot }
  | { type: 'metrics'; id: number };

/** A free port: uWebSockets.js shares a port between threads only when it is given (port 0 is not shared). */
async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The ingest edge on config.ingestThreads threads (see the top of this file). */
export async function startIngestEdge(opts: { config: Config; log: Logger }): Promise<IngestEdge> {
  const { config, log } = opts;
  collectProcessMetrics();
  const threads = config.ingestThreads;
  if (threads === 1) return startEdgeThread({ config, log, port: config.httpPort });

  const port = config.httpPort === 0 ? await freePort(config.httpHost) : config.httpPort;
  const workers: Worker[] = [];
  /** Threads running (a thread that ended is no longer asked for its metrics). */
  const live = new Set<Worker>();
  const exited: Promise<void>[] = [];
  let nextId = 0;
  // Metrics requests in flight: the thread that asked (and its request id), the threads whose answer is awaited.
  const gathering = new Map<number, { asker: Worker; askerId: number; waiting: Set<Worker>; parts: MetricsSnapshot[] }>();

  const answerMetrics = (id: number): void => {
    const g = gathering.get(id)!;
    if (g.waiting.size > 0) return;
    gathering.delete(id);
    // Process-wide figures (CPU, memory, event loop) are this thread's: workers do not collect them.
    void metricsSnapshot().then((own) => aggregateMetrics([own, ...g.parts])).then(
      (m) => g.asker.postMessage({ type: 'metrics', id: g.askerId, ...m } satisfies ToWorker),
      (err: Error) => g.asker.postMessage({ type: 'metrics', id: g.askerId, contentType: '', body: '', error: err.message } satisfies ToWorker),
    );
  };

  const onMessage = (from: Worker, m: FromWorker): void => {
    if (m.type === 'metrics') {
      const id = nextId++;
      gathering.set(id, { asker: from, askerId: m.id, waiting: new Set(live), parts: [] });
      for (const w of live) w.postMessage({ type: 'collect', id } satisfies ToWorker);
    } else if (m.type === 'collected') {
      const g = gathering.get(m.id);
      if (g === undefined) return;
      g.parts.push(m.metrics);
      g.waiting.delete(from);
      answerMetrics(m.id);
    }
  };
  const ended = (w: Worker): void => {
    live.delete(w);
    for (const [id, g] of gathering) {
      if (g.waiting.delete(w)) answerMetrics(id);
    }
  };

  const started = await Promise.allSettled(
    Array.from({ length: threads }, (_, index) => new Promise<void>((resolve, reject) => {
      const w = new Worker(new URL('./edge-worker-entry.mjs', import.meta.url), { workerData: { config, port, index } });
      workers.push(w);
      live.add(w);
      exited.push(new Promise((r) => w.once('exit', () => {
        ended(w);
        r();
      })));
      w.on('message', (m: FromWorker) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'failed') reject(new Error(`ingest thread ${index}: ${m.message}`));
        else onMessage(w, m);
      });
      w.on('error', (err) => {
        log.error('ingest thread failed', { thread: index, err });
        reject(err);
      });
      w.once('exit', (code) => reject(new Error(`ingest thread ${index} exited (code ${code}) before it was ready`)));
    })),
  );

  const close = async (timeoutMs = config.shutdownTimeoutMs): Promise<void> => {
    for (const w of workers) w.postMessage({ type: 'stop', timeoutMs } satisfies ToWorker);
    await Promise.all(exited);
  };
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) {
    await close(1000);
    throw failed.reason;
  }
  log.info('ingest edge listening', { host: config.httpHost, port, threads });
  return { port, threads, close };
}
