// The outbox relay publishes a committed row when the writing transaction's NOTIFY reaches it,
// from any connection, without waiting for its poll (here: an hour); a rolled-back row is
// never published; rows written while its LISTEN connection is replaced are still published.
// Customers' rows are published concurrently, each customer's in order: a failed publish holds
// back that customer's later rows only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@drawdown/log';
import { jetstream, jetstreamManager, names, type JetStreamClient } from '@drawdown/nats';
import { withTx } from '@drawdown/pg';
import { startOutboxRelay, writeOutbox } from '../src/index';
import { startHarness, waitFor, type Harness } from './harness';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({}, { ledger: false });
});
afterAll(async () => {
  await h?.stop();
});

const published = async (payloadN: number) =>
  (await h.pool.query<{ p: boolean }>(`SELECT published_at IS NOT NULL AS p FROM outbox WHERE (payload ->> 'n')::int = $1`, [payloadN])).rows[0]?.p;

describe('outbox relay', () => {
  it('publishes at commit (LISTEN/NOTIFY), not at its next poll', async () => {
    const n = names(h.env.config.namespace);
    const relay = startOutboxRelay({ pool: h.pool, js: jetstream(h.nc), subjectPrefix: n.notifySubjectPrefix, log: silentLogger, intervalMs: 3_600_000 });
    try {
      const jsm = await jetstreamManager(h.nc);
      const before = (await jsm.streams.info(n.notifyStream)).state.messages;

      await expect(withTx(h.pool, async (c) => {
        await writeOutbox(c, [{ topic: 'credit_balance.created', customerId: null, payload: { n: 1 } }]);
        throw new Error('roll back');
      })).rejects.toThrow('roll back');
      await withTx(h.pool, (c) => writeOutbox(c, [{ topic: 'credit_balance.created', customerId: null, payload: { n: 2 } }]));
      await waitFor('row 2 published', () => published(2));
      // Outside a transaction too (autocommit).
      await writeOutbox(h.pool, [{ topic: 'credit_balance.created', customerId: null, payload: { n: 3 } }, { topic: 'credit_balance.created', customerId: null, payload: { n: 4 } }]);
      await waitFor('rows 3 and 4 published', async () => (await published(3)) && (await published(4)));

      // Its LISTEN connection killed: it listens again and publishes what was written meanwhile.
      await h.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN drawdown_outbox'`);
      await writeOutbox(h.pool, [{ topic: 'credit_balance.created', customerId: null, payload: { n: 5 } }]);
      await waitFor('row 5 published after the listener came back', () => published(5), 15_000);

      expect((await h.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE (payload ->> 'n')::int = 1`)).rows[0].n).toBe(0);
      expect((await jsm.streams.info(n.notifyStream)).state.messages - before).toBe(4);
    } finally {
      await relay.stop();
    }
  });

  it('keeps each customer\'s order; a failed publish holds back only that customer', async () => {
    const n = names(h.env.config.namespace);
    const real = jetstream(h.nc);
    const calls: string[] = [];
    let failed = false;
    const js = {
      publish(subject: string, body: string, o: { msgID: string }) {
        const p = JSON.parse(body) as { customer_id: string; properties: { k: string } };
        const k = `${p.customer_id}${p.properties.k}`;
        calls.push(k);
        if (k === 'x2' && !failed) {
          failed = true;
          return Promise.reject(new Error('publish failed (test)'));
        }
        return real.publish(subject, body, o);
      },
    } as unknown as JetStreamClient;
    const jsm = await jetstreamManager(h.nc);
    const firstSeq = (await jsm.streams.info(n.notifyStream)).state.last_seq + 1;
    const relay = startOutboxRelay({ pool: h.pool, js, subjectPrefix: n.notifySubjectPrefix, log: silentLogger, intervalMs: 50 });
    try {
      const row = (customer: string, k: number) => ({ topic: 'credit_balance.created', customerId: customer, payload: { k: String(k) } });
      await h.pool.query(`INSERT INTO customers (id, name, external_customer_id) VALUES ('x', 'x', 'x'), ('y', 'y', 'y')`);
      await writeOutbox(h.pool, [row('x', 1), row('y', 1), row('x', 2), row('y', 2), row('x', 3), row('y', 3)]);
      await waitFor('every row published', async () => (await h.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE customer_id IN ('x', 'y') AND published_at IS NULL`)).rows[0].n === 0);
      // y's rows went out in the flush where x2 failed; x3 waited for x2's second attempt.
      expect(failed).toBe(true);
      expect(calls.indexOf('y3')).toBeLessThan(calls.lastIndexOf('x2'));
      expect(calls.indexOf('x3')).toBeGreaterThan(calls.lastIndexOf('x2'));
      // The stream holds each customer's messages once and in outbox order.
      const lastSeq = (await jsm.streams.info(n.notifyStream)).state.last_seq;
      const seen: string[] = [];
      for (let seq = firstSeq; seq <= lastSeq; seq++) {
        const stored = await jsm.streams.getMessage(n.notifyStream, { seq });
        if (!stored) throw new Error(`NOTIFY message ${seq} missing`);
        const m = JSON.parse(new TextDecoder().decode(stored.data)) as { customer_id: string; properties: { k: string } };
        seen.push(`${m.customer_id}${m.properties.k}`);
      }
      expect(seen.filter((k) => k.startsWith('x'))).toEqual(['x1', 'x2', 'x3']);
      expect(seen.filter((k) => k.startsWith('y'))).toEqual(['y1', 'y2', 'y3']);
    } finally {
      await relay.stop();
    }
  });
});
