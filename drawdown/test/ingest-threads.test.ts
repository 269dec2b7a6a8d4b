// The standalone ingest edge on two threads (DRAWDOWN_INGEST_THREADS=2): every request on a
// connection of its own, so the kernel spreads them over both threads. What holds with one
// thread holds with two: what was acknowledged is exactly what JetStream holds, a revoked key
// is refused by every thread at once (the cache TTL here is 10 minutes: only the NATS
// announcement can explain it), /metrics adds up every thread whichever serves it, a stop
// drains every thread, and a thread refuses to start on uWebSockets.js's JS fallback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { unpack } from 'msgpackr';
import { announceRevocation, createApiKey, revokeApiKey } from '@drawdown/auth';
import { startIngestEdge, type IngestEdge } from '@drawdown/ingest';
import { LEDGER_MIGRATIONS } from '@drawdown/ledger';
import { silentLogger } from '@drawdown/log';
import { connectNats, jetstreamManager, names, type NatsConnection } from '@drawdown/nats';
import { createPool, ensureDatabase, migrate, type Pool } from '@drawdown/pg';
import { testEnv, type TestEnv } from '@drawdown/testkit';

/** One request on a new connection (no keep-alive), so successive requests may land on any thread. */
function send(port: number, method: string, path: string, key: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      { host: '127.0.0.1', port, method, path, agent: false, headers: { authorization: `Bearer ${key}`, connection: 'close', ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

const events = (prefix: string, n: number) => ({
  events: Array.from({ length: n }, (_, i) => ({
    idempotency_key: `${prefix}-${i}`,
    external_customer_id: `cust-${i % 7}`,
    event_name: 'api_call',
    timestamp: new Date().toISOString(),
    properties: { i },
  })),
});

describe('ingest edge on two threads', () => {
  let env: TestEnv;
  let pool: Pool;
  let nc: NatsConnection;
  let edge: IngestEdge | undefined;
  let key: string;
  let keyId: string;

  beforeAll(async () => {
    env = testEnv({ DRAWDOWN_INGEST_THREADS: '2', DRAWDOWN_API_KEY_CACHE_TTL_MS: '600000', DRAWDOWN_INGEST_LINGER_MS: '5' });
    await ensureDatabase(env.config.databaseUrl);
    pool = createPool(env.config.databaseUrl, { max: 2 });
    await migrate(pool, [LEDGER_MIGRATIONS]);
    const created = await createApiKey(pool, 'threads', ['ingest']);
    key = created.key;
    keyId = created.id;
    nc = await connectNats(env.config.natsUrl, 'ingest-threads-test', silentLogger);
    edge = await startIngestEdge({ config: env.config, log: silentLogger });
  });

  afterAll(async () => {
    await edge?.close(2000);
    await nc?.close();
    await pool?.end();
    await env?.cleanup();
  });

  it('stores in JetStream exactly what it acknowledged, and /metrics counts every thread whichever serves it', async () => {
    expect(edge!.threads).toBe(2);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, r) => send(edge!.port, 'POST', '/v1/ingest?debug=true', key, events(`r${r}`, 25))));
    const acked = new Set<string>();
    for (const a of answers) {
      expect(a.status).toBe(200);
      for (const k of (JSON.parse(a.text) as { debug: { ingested: string[] } }).debug.ingested) acked.add(k);
    }
    expect(acked.size).toBe(40 * 25);

    const jsm = await jetstreamManager(nc);
    const n = names(env.config.namespace);
    const info = await jsm.streams.info(n.eventsStream);
    const stored: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = (await jsm.streams.getMessage(n.eventsStream, { seq }))!;
      for (const e of unpack(m.data) as { k: string }[]) stored.push(e.k);
    }
    expect(stored.length).toBe(acked.size);
    expect(new Set(stored)).toEqual(acked);

    for (let i = 0; i < 12; i++) {
      const m = await send(edge!.port, 'GET', '/metrics', key);
      expect(m.status).toBe(200);
      expect(m.text).toMatch(/^drawdown_ingest_events_total\{outcome="accepted"\} 1000$/m);
      expect(m.text).toMatch(/^drawdown_http_requests_total\{route="ingest",status="200"\} 40$/m);
    }
  });

  it('refuses a revoked key in every thread at once (the NATS announcement, not the cache TTL)', async () => {
    // Every thread has the key cached as valid.
    for (let i = 0; i < 20; i++) expect((await send(edge!.port, 'POST', '/v1/ingest', key, events(`warm${i}`, 1))).status).toBe(200);
    await revokeApiKey(pool, keyId);
    announceRevocation(nc, env.config.namespace, keyId);
    await nc.flush();
    // Delivered to each thread's connection within moments; then no thread may accept the key.
    const until = Date.now() + 5000;
    while ((await send(edge!.port, 'POST', '/v1/ingest', key, events('probe', 1))).status !== 401 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 200));
    const after = await Promise.all(Array.from({ length: 40 }, (_, i) => send(edge!.port, 'POST', '/v1/ingest', key, events(`late${i}`, 1))));
    for (const a of after) {
      expect(a.status).toBe(401);
      expect(a.text).toContain('was revoked');
    }
  });

  it('drains every thread on stop: requests in flight are answered, then the port is closed', async () => {
    const live = await createApiKey(pool, 'drain', ['ingest']);
    const e2 = await startIngestEdge({ config: { ...env.config, ingestLingerMs: 400 }, log: silentLogger });
    // Each request waits for the 400 ms linger: they are in flight when the stop begins.
    const inFlight = Array.from({ length: 12 }, (_, i) => send(e2.port, 'POST', '/v1/ingest', live.key, events(`drain${i}`, 3)));
    await new Promise((r) => setTimeout(r, 150));
    await e2.close(5000);
    for (const a of await Promise.all(inFlight)) expect(a.status).toBe(200);
    await expect(send(e2.port, 'POST', '/v1/ingest', live.key, events('closed', 1))).rejects.toThrow(/ECONNREFUSED/);
  });

  it('refuses to start when a thread loads uWebSockets.js\'s JS fallback', async () => {
    process.env.UWS_USE_FALLBACK = '1';
    try {
      await expect(startIngestEdge({ config: env.config, log: silentLogger })).rejects.toThrow(/ingest thread \d: uWebSockets.js loaded its pure-JS fallback/);
    } finally {
      delete process.env.UWS_USE_FALLBACK;
    }
  });
});
