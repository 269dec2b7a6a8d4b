// kill -9 of the webhook dispatcher in the middle of deliveries: it runs in a child process,
// is SIGKILLed while a receiver is answering, and restarted. Every event is then delivered at
// least once, in order per customer (by first receipt); repeats carry the same event id.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@drawdown/log';
import { jetstream, names } from '@drawdown/nats';
import { startOutboxRelay, writeOutbox } from '../src/index';
import { createEndpoint } from '../src/webhooks/endpoints';
import { startHarness, startReceiver, waitFor, type Harness } from './harness';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CUSTOMERS = 3;
const PER_CUSTOMER = 25;

let h: Harness;
const children: ChildProcess[] = [];

function startDispatcher(): Promise<ChildProcess> {
  const c = h.env.config;
  const child = spawn(process.execPath, ['--import', 'tsx', 'ledger/src/webhooks/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH, DATABASE_URL: c.databaseUrl, NATS_URL: c.natsUrl, DRAWDOWN_NAMESPACE: c.namespace,
      DRAWDOWN_LOG_LEVEL: 'error', DRAWDOWN_WEBHOOK_TIMEOUT_MS: '1000', DRAWDOWN_WEBHOOK_POLL_MS: '50', DRAWDOWN_WEBHOOK_CONCURRENCY: '8',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('READY')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`dispatcher exited early (${code})`)));
  });
}

beforeAll(async () => {
  h = await startHarness({}, { ledger: false });
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await h?.stop();
});

describe('dispatcher killed mid-delivery', () => {
  it('loses nothing and keeps per-customer order', async () => {
    let inflight = 0;
    let secret = '';
    const receiver = await startReceiver(() => secret, async () => {
      inflight++;
      await new Promise((r) => setTimeout(r, 40));
      inflight--;
      return 200;
    });
    try {
      secret = (await createEndpoint(h.pool, { url: receiver.url })).secret!;
      for (let i = 0; i < CUSTOMERS; i++) {
        await h.pool.query('INSERT INTO customers (id, name, external_customer_id) VALUES ($1, $1, $1)', [`c${i}`]);
      }
      const rows = [];
      for (let n = 0; n < PER_CUSTOMER; n++) {
        for (let i = 0; i < CUSTOMERS; i++) rows.push({ topic: 'credit_balance.created', customerId: `c${i}`, payload: { customer_id: `c${i}`, n } });
      }
      await writeOutbox(h.pool, rows);
      const relay = startOutboxRelay({ pool: h.pool, js: jetstream(h.nc), subjectPrefix: names(h.env.config.namespace).notifySubjectPrefix, log: silentLogger });
      await relay.flush();
      await relay.stop();

      const first = await startDispatcher();
      await waitFor('deliveries under way', () => receiver.received.length >= 15 && inflight > 0, 30_000);
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      const atKill = receiver.received.length;
      expect(atKill).toBeLessThan(CUSTOMERS * PER_CUSTOMER);

      await startDispatcher();
      const total = CUSTOMERS * PER_CUSTOMER;
      await waitFor('every event delivered', () => new Set(receiver.received.map((d) => d.id)).size >= total, 60_000);
      expect(receiver.rejected).toEqual([]);
      // The deliveries in flight at the kill reached the receiver but were never recorded as
      // delivered: they come again (at-least-once), with the same ids.
      expect(receiver.received.length).toBeGreaterThan(total);
      for (let i = 0; i < CUSTOMERS; i++) {
        const seen: number[] = [];
        for (const d of receiver.received) {
          if ((d.body.customer as { id: string }).id !== `c${i}`) continue;
          const n = (d.body.properties as { n: number }).n;
          if (!seen.includes(n)) seen.push(n);
        }
        expect(seen).toEqual(Array.from({ length: PER_CUSTOMER }, (_, k) => k));
      }
      // Repeats (the deliveries in flight at the kill) have the ids of the first copies.
      const byId = new Map<string, string>();
      for (const d of receiver.received) {
        const body = JSON.stringify(d.body);
        if (byId.has(d.id)) expect(body).toBe(byId.get(d.id));
        byId.set(d.id, body);
      }
    } finally {
      await receiver.close();
    }
  });
});
