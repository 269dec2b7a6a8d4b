// The outbox relay publishes a committed row when the writing transaction's NOTIFY reaches it,
// from any connection, without waiting for its poll (here: an hour); a rolled-back row is
// never published; rows written while its LISTEN connection is replaced are still published.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@drawdown/log';
import { jetstream, jetstreamManager, names } from '@drawdown/nats';
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
});
