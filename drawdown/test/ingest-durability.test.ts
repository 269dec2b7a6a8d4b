// The edge never answers 2xx for events JetStream did not acknowledge: a namespace without
// its stream, a private nats-server that is paused (slow) or killed (down), and the in-flight
// byte bound, each answered 503 with Retry-After. The shared nats-server is left alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '@drawdown/config';
import { createLogger, type Logger } from '@drawdown/log';
import { startHttpServer, type HttpServer } from '@drawdown/http';
import { createIngest } from '@drawdown/ingest';
import { unpack } from 'msgpackr';
import { connectNats, ensureStreams, deleteStreams, jetstreamManager, names, type JetStreamManager, type NatsConnection } from '@drawdown/nats';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => (s.end(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nats-server did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A nats-server of this test's own, on its own port and store directory. */
class PrivateNats {
  proc: ChildProcess | undefined;
  constructor(readonly port: number, readonly dir: string) {}
  async start(): Promise<void> {
    this.proc = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.dir], { stdio: 'ignore' });
    await waitForPort(this.port);
  }
  pause(): void {
    this.proc!.kill('SIGSTOP');
  }
  resume(): void {
    this.proc!.kill('SIGCONT');
  }
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    p.kill('SIGCONT');
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }
}

interface Edge {
  http: HttpServer;
  url: string;
  inflight: () => number;
}

/** Every log line of the edges and connections under test. */
const lines: string[] = [];
const log: Logger = createLogger({ test: 'durability' }, { level: 'debug', write: (l) => lines.push(l) });

async function startEdge(config: Config, nc: NatsConnection): Promise<Edge> {
  const ingest = createIngest({ config, nc, log });
  const http = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    routes: ingest.routes,
    // Auth is not under test here (see api-keys.test.ts): every caller may ingest.
    authenticate: async () => ({ keyId: 'test', scopes: ['ingest'] }),
    log,
    ready: () => true,
  });
  return { http, url: `http://127.0.0.1:${http.port}/v1/ingest?debug=true`, inflight: ingest.inflightBytes };
}

const body = (prefix: string, n: number, pad = 0) =>
  JSON.stringify({
    events: Array.from({ length: n }, (_, i) => ({
      idempotency_key: `${prefix}-${i}`,
      external_customer_id: `c${i % 7}`,
      event_name: 'api_call',
      timestamp: new Date(Date.now() - 1000).toISOString(),
      properties: pad ? { pad: 'x'.repeat(pad) } : {},
    })),
  });

const post = async (url: string, b: string) => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> };
};

describe('ingest durability and back-pressure', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drawdown-nats-'));
  const ns = `t${randomBytes(4).toString('hex')}`;
  let nats: PrivateNats;
  let nc: NatsConnection;
  let edge: Edge;
  let config: Config;

  beforeAll(async () => {
    nats = new PrivateNats(await freePort(), dir);
    await nats.start();
    config = loadConfig({
      NATS_URL: `nats://127.0.0.1:${nats.port}`,
      DRAWDOWN_NAMESPACE: ns,
      DRAWDOWN_INGEST_PUBLISH_TIMEOUT_MS: '1500',
      DRAWDOWN_INGEST_MAX_INFLIGHT_BYTES: '4096',
      DRAWDOWN_INGEST_RETRY_AFTER_SECONDS: '3',
    });
    nc = await connectNats(config.natsUrl, 'durability-test', log);
    await ensureStreams(nc, names(ns));
    edge = await startEdge(config, nc);
  });

  /** How many stored events have an idempotency key starting with `prefix`. */
  const storedCount = async (jsm: JetStreamManager, prefix: string) => {
    const info = await jsm.streams.info(names(ns).eventsStream);
    let n = 0;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(names(ns).eventsStream, { seq });
      for (const e of unpack(m!.data) as { k: string }[]) if (e.k.startsWith(prefix)) n++;
    }
    return n;
  };

  afterAll(async () => {
    await edge?.http.close(1000);
    await nc?.close().catch(() => {});
    await nats?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts while JetStream acks', async () => {
    const r = await post(edge.url, body('ok', 10));
    expect(r.status).toBe(200);
    expect((r.body.debug as { ingested: string[] }).ingested).toHaveLength(10);
  });

  it('answers 503 with Retry-After when the namespace has no stream (no responders), never 2xx', async () => {
    const other = { ...config, namespace: `${ns}x` };
    const lost = await startEdge(other, nc);
    try {
      const r = await post(lost.url, body('nostream', 5));
      expect(r.status).toBe(503);
      expect(r.retryAfter).toBe('3');
      expect(r.body.detail).toBe('events could not be stored durably (JetStream unavailable or slow); nothing in this request is acknowledged, retry it whole');
      // A stream deleted under a running edge: same answer.
      await ensureStreams(nc, names(other.namespace));
      expect((await post(lost.url, body('nostream', 5))).status).toBe(200);
      await deleteStreams(nc, names(other.namespace));
      expect((await post(lost.url, body('deleted', 5))).status).toBe(503);
    } finally {
      await lost.http.close(1000);
    }
  });

  it('bounds in-flight bytes while JetStream is slow: 503 at once for the excess, 503 on ack timeout, then recovers', async () => {
    nats.pause();
    try {
      const t0 = performance.now();
      // The first request is always let through (it cannot be refused forever) and waits for acks.
      const slow = post(edge.url, body('slow', 20, 200));
      while (edge.inflight() === 0) await new Promise((r) => setTimeout(r, 5));
      expect(edge.inflight()).toBeGreaterThan(4096);
      const refused = await post(edge.url, body('excess', 1));
      expect(refused.status).toBe(503);
      expect(refused.retryAfter).toBe('3');
      expect(refused.body.detail).toMatch(/^ingest has \d+ bytes awaiting JetStream acks, over its limit of 4096; retry shortly$/);
      const timedOut = await slow;
      expect(timedOut.status).toBe(503);
      expect(timedOut.retryAfter).toBe('3');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(1400);
      expect(edge.inflight()).toBe(0);
    } finally {
      nats.resume();
    }
    // JetStream is back: the client's retry of the same request is accepted (or recognised as
    // already stored if the paused server had taken it), and it is stored once.
    const jsm = await jetstreamManager(nc);
    let retried: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 0; i < 50; i++) {
      retried = await post(edge.url, body('slow', 20, 200));
      if (retried.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(retried!.status).toBe(200);
    const d = retried!.body.debug as { ingested: string[]; duplicate: string[] };
    expect(d.ingested.length + d.duplicate.length).toBe(20);
    expect(await storedCount(jsm, 'slow-')).toBe(20);
  });

  it('answers 503, never 2xx, while the NATS server is down, and 200 again once it is back', async () => {
    await nats.kill();
    for (let i = 0; i < 3; i++) {
      const r = await post(edge.url, body(`down-${i}`, 5));
      expect(r.status).toBe(503);
      expect(r.retryAfter).toBe('3');
    }
    await nats.start();
    let r: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 0; i < 100; i++) {
      r = await post(edge.url, body('down-0', 5));
      if (r.status === 200) break;
      expect(r.status).toBe(503);
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(r!.status).toBe(200);
    // The failed attempts were not acknowledged; whether the client's buffered publish reached
    // the server after the restart or not, the events are stored exactly once.
    const d = r!.body.debug as { ingested: string[]; duplicate: string[] };
    expect(d.ingested.length + d.duplicate.length).toBe(5);
    expect(await storedCount(await jetstreamManager(nc), 'down-0-')).toBe(5);
  });

  it('logs the failures without payloads or keys, and counts them in /metrics', async () => {
    expect(lines.some((l) => l.includes('publish to JetStream failed'))).toBe(true);
    for (const l of lines) {
      expect(l).not.toMatch(/(slow|down|ok|excess|nostream|deleted)-\d/);
      expect(l).not.toContain('api_call');
      expect(l).not.toContain('"pad"');
    }
    const m = await (await fetch(edge.url.replace(/\/v1\/ingest.*$/, '/metrics'))).text();
    const value = (re: RegExp) => Number(re.exec(m)?.[1] ?? 'NaN');
    expect(value(/^drawdown_ingest_publish_failures_total (\d+)/m)).toBeGreaterThanOrEqual(4);
    expect(value(/^drawdown_ingest_requests_rejected_total\{reason="backpressure"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^drawdown_ingest_requests_rejected_total\{reason="publish_failed"\} (\d+)/m)).toBeGreaterThanOrEqual(4);
    expect(value(/^drawdown_ingest_events_total\{outcome="accepted"\} (\d+)/m)).toBeGreaterThanOrEqual(10);
    expect(value(/^drawdown_http_requests_total\{route="ingest",status="503"\} (\d+)/m)).toBeGreaterThanOrEqual(5);
    expect(m).toMatch(/^drawdown_ingest_publish_seconds_count \d+/m);
  });
});
