// Requests share JetStream messages (the linger): against the shared nats-server, in a
// namespace of this file's own. Concurrent requests are joined per partition; every
// acknowledged event is stored exactly once; a message JetStream refuses fails every request
// with events in it (503 + Retry-After), and nothing of them is acknowledged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { unpack } from 'msgpackr';
import { loadConfig, type Config } from '@drawdown/config';
import { partitionOf, EXTERNAL_REF_PREFIX } from '@drawdown/events';
import { startHttpServer, type HttpServer } from '@drawdown/http';
import { silentLogger } from '@drawdown/log';
import { connectNats, deleteStreams, ensureStreams, jetstreamManager, names, type NatsConnection } from '@drawdown/nats';
import { createIngest } from './index';

interface Stored {
  seq: number;
  subject: string;
  keys: string[];
  bytes: number;
}

describe('ingest joins concurrent requests into shared JetStream messages', () => {
  const ns = `t${randomBytes(4).toString('hex')}`;
  const n = names(ns);
  let nc: NatsConnection;
  const servers: HttpServer[] = [];

  const start = async (env: Record<string, string>): Promise<{ url: string; config: Config }> => {
    const config = loadConfig({ NATS_URL: process.env.NATS_URL, DRAWDOWN_NAMESPACE: ns, DRAWDOWN_INGEST_RETRY_AFTER_SECONDS: '2', ...env });
    const ingest = createIngest({ config, nc, log: silentLogger });
    const http = await startHttpServer({
      host: '127.0.0.1', port: 0, routes: ingest.routes, log: silentLogger, ready: () => true,
      authenticate: async () => ({ keyId: 'test', scopes: ['ingest'] }),
    });
    servers.push(http);
    return { url: `http://127.0.0.1:${http.port}/v1/ingest?debug=true`, config };
  };

  /** `count` events of the customers given, keys `<prefix>-<i>`. */
  const body = (prefix: string, count: number, customers: string[]) =>
    JSON.stringify({
      events: Array.from({ length: count }, (_, i) => ({
        idempotency_key: `${prefix}-${i}`,
        external_customer_id: customers[i % customers.length],
        event_name: 'api_call',
        timestamp: new Date().toISOString(),
        properties: { i },
      })),
    });

  const post = async (url: string, b: string) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> };
  };

  const stored = async (): Promise<Stored[]> => {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(n.eventsStream);
    const out: Stored[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(n.eventsStream, { seq });
      if (m) out.push({ seq, subject: m.subject, keys: (unpack(m.data) as { k: string }[]).map((e) => e.k), bytes: m.data.length });
    }
    return out;
  };

  beforeAll(async () => {
    nc = await connectNats(process.env.NATS_URL ?? 'nats://127.0.0.1:4222', 'coalesce-test', silentLogger);
    await ensureStreams(nc, n);
  });

  afterAll(async () => {
    for (const s of servers) await s.close(1000);
    await deleteStreams(nc, n);
    await nc.close();
  });

  it('publishes one message per partition for requests inside one linger, each event once, answered only after the ack', async () => {
    const { url } = await start({ DRAWDOWN_INGEST_LINGER_MS: '250', DRAWDOWN_PARTITIONS: '4' });
    const customers = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const partitions = new Set(customers.map((c) => partitionOf(EXTERNAL_REF_PREFIX + c, 4)));
    const before = (await stored()).length;
    const answers = await Promise.all(Array.from({ length: 12 }, (_, r) => post(url, body(`join${r}`, 10, customers))));
    for (const [r, a] of answers.entries()) {
      expect(a.status).toBe(200);
      expect((a.body.debug as { ingested: string[] }).ingested.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `join${r}-${i}`).sort());
    }
    const messages = (await stored()).slice(before);
    const keys = messages.flatMap((m) => m.keys).sort();
    // Exactly what was acknowledged, each once.
    expect(keys).toEqual(answers.flatMap((_, r) => Array.from({ length: 10 }, (_, i) => `join${r}-${i}`)).sort());
    // Joined: far fewer messages than one per partition per request (12 x partitions), and
    // messages carrying events of several requests.
    expect(messages.length).toBeLessThan(12 * partitions.size);
    expect(messages.some((m) => new Set(m.keys.map((k) => k.split('-')[0])).size > 1)).toBe(true);
    for (const m of messages) {
      const p = Number(m.subject.split('.').pop());
      expect(partitions.has(p)).toBe(true);
    }
  });

  it('never puts more than the maximum events in one message (a request part is not split)', async () => {
    const { url } = await start({ DRAWDOWN_INGEST_LINGER_MS: '250', DRAWDOWN_PARTITIONS: '1', DRAWDOWN_INGEST_MESSAGE_MAX_EVENTS: '15' });
    const before = (await stored()).length;
    const answers = await Promise.all(Array.from({ length: 6 }, (_, r) => post(url, body(`max${r}`, r === 5 ? 20 : 6, ['a']))));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    const messages = (await stored()).slice(before);
    for (const m of messages) {
      if (m.keys.length > 15) expect(new Set(m.keys.map((k) => k.split('-')[0]))).toEqual(new Set(['max5']));
    }
    expect(messages.flatMap((m) => m.keys)).toHaveLength(5 * 6 + 20);
    expect(messages.length).toBeLessThan(6); // joined, up to the limit
  });

  it('with linger 0, publishes one message per partition per request, and a whole retry is a JetStream duplicate', async () => {
    const { url } = await start({ DRAWDOWN_INGEST_LINGER_MS: '0', DRAWDOWN_PARTITIONS: '4' });
    const before = (await stored()).length;
    const customers = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const partitions = new Set(customers.map((c) => partitionOf(EXTERNAL_REF_PREFIX + c, 4)));
    const first = await post(url, body('zero', 16, customers));
    expect(first.status).toBe(200);
    expect((await stored()).length - before).toBe(partitions.size);
    const retry = await post(url, body('zero', 16, customers));
    expect(retry.status).toBe(200);
    expect(retry.body.debug).toEqual({ duplicate: expect.arrayContaining([]), ingested: [] });
    expect((retry.body.debug as { duplicate: string[] }).duplicate).toHaveLength(16);
    expect((await stored()).length - before).toBe(partitions.size);
  });

  it('fails every request of a message JetStream refuses (503 + Retry-After), storing none of their events', async () => {
    const { url } = await start({ DRAWDOWN_INGEST_LINGER_MS: '250', DRAWDOWN_PARTITIONS: '1' });
    const one = body('big0', 5, ['a']);
    // The size of one request's message, then room for one such message, not for two joined.
    expect((await post(url, body('size', 5, ['a']))).status).toBe(200);
    const size = (await stored()).at(-1)!.bytes;
    const jsm = await jetstreamManager(nc);
    const cfg = (await jsm.streams.info(n.eventsStream)).config;
    await jsm.streams.update(n.eventsStream, { ...cfg, max_msg_size: Math.round(size * 1.5) + 80 });
    try {
      const before = (await stored()).length;
      const answers = await Promise.all(Array.from({ length: 3 }, (_, r) => post(url, body(`big${r}`, 5, ['a']))));
      for (const a of answers) {
        expect(a.status).toBe(503);
        expect(a.retryAfter).toBe('2');
        expect(a.body.detail).toBe('events could not be stored durably (JetStream unavailable or slow); nothing in this request is acknowledged, retry it whole');
      }
      expect((await stored()).length).toBe(before);
      // Alone, the same request fits in a message of its own.
      const alone = await post(url, one);
      expect(alone.status).toBe(200);
      expect((alone.body.debug as { ingested: string[] }).ingested).toHaveLength(5);
    } finally {
      await jsm.streams.update(n.eventsStream, { ...cfg, max_msg_size: -1 });
    }
  });
});
