// Transactional outbox: rows written in the same transaction as the change they announce,
// then published to JetStream (NOTIFY stream, message id = outbox id, so a relay that dies
// after publishing and before marking publishes a duplicate JetStream drops).
// The writing transaction also sends a Postgres NOTIFY on OUTBOX_CHANNEL (delivered at commit,
// never for a rollback); relays LISTEN on it and publish at once, from whichever process
// committed. Polling every intervalMs remains the safety net (a listener reconnecting).
import type { Queryable, Pool, PoolClient } from '@drawdown/pg';
import type { JetStreamClient } from '@drawdown/nats';
import type { Logger } from '@drawdown/log';
import { counter } from '@drawdown/metrics';

export interface OutboxRow {
  topic: string;
  customerId: string | null;
  payload: Record<string, unknown>;
}

/** The Postgres channel writeOutbox notifies (at commit); relays listen on it. */
export const OUTBOX_CHANNEL = 'drawdown_outbox';

export async function writeOutbox(db: Queryable, rows: OutboxRow[]): Promise<void> {
  if (rows.length === 0) return;
  // One round trip: the insert and the notification (Postgres folds a transaction's identical
  // notifications into one).
  await db.query(
    `WITH ins AS (INSERT INTO outbox (topic, customer_id, payload) SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[]) RETURNING 1)
     SELECT pg_notify('${OUTBOX_CHANNEL}', '') FROM (SELECT count(*) AS n FROM ins) x WHERE x.n > 0`,
    [rows.map((r) => r.topic), rows.map((r) => r.customerId), rows.map((r) => JSON.stringify(r.payload))],
  );
}

const published = counter('drawdown_outbox_published_total', 'Outbox rows published to NATS', ['topic']);

export interface OutboxRelay {
  /** Publishes what is pending now; returns the number published. */
  flush(): Promise<number>;
  stop(): Promise<void>;
}

/** Wait before a lost LISTEN connection is opened again (the poll covers the gap). */
const RELISTEN_MS = 1000;

export function startOutboxRelay(opts: { pool: Pool; js: JetStreamClient; subjectPrefix: string; log: Logger; intervalMs?: number; batch?: number }): OutboxRelay {
  const interval = opts.intervalMs ?? 100;
  const batch = opts.batch ?? 500;
  let stopped = false;
  let running: Promise<number> | undefined;
  // Set when a notification comes in during a flush (its rows may be past that flush's read).
  let again = false;

  const flushOnce = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const r = await opts.pool.query<{ id: string; topic: string; customer_id: string | null; payload: Record<string, unknown>; created_at: Date }>(
        // outbox.id, not id: a bare `id` would sort by the text output column ("10" < "9").
        'SELECT id::text, topic, customer_id, payload, created_at FROM outbox WHERE published_at IS NULL ORDER BY outbox.id LIMIT $1',
        [batch],
      );
      if (r.rows.length === 0) return total;
      // Customers' rows are published concurrently, each customer's one at a time and in
      // outbox order (the dispatcher relies on a customer's messages keeping that order): a
      // failed publish holds back the rest of that customer's rows only, until the next flush.
      const chains = new Map<string, typeof r.rows>();
      for (const row of r.rows) {
        const chain = chains.get(row.customer_id ?? '');
        if (chain) chain.push(row);
        else chains.set(row.customer_id ?? '', [row]);
      }
      const done: string[] = [];
      const failures: unknown[] = [];
      await Promise.all([...chains.values()].map(async (rows) => {
        for (const row of rows) {
          const body = JSON.stringify({ id: row.id, type: row.topic, created_at: row.created_at.toISOString(), customer_id: row.customer_id, properties: row.payload });
          try {
            await opts.js.publish(`${opts.subjectPrefix}.${row.topic}`, body, { msgID: `outbox-${row.id}` });
          } catch (err) {
            failures.push(err);
            return;
          }
          done.push(row.id);
          published.inc({ topic: row.topic });
        }
      }));
      if (done.length > 0) await opts.pool.query('UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])', [done]);
      total += done.length;
      if (failures.length > 0) throw failures[0];
      if (r.rows.length < batch) return total;
    }
  };

  const flush = async (): Promise<number> => {
    while (running) await running.catch(() => 0);
    again = false;
    running = flushOnce();
    try {
      return await running;
    } finally {
      running = undefined;
      if (again) setImmediate(wake);
    }
  };

  function wake(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    flush().catch((err) => opts.log.warn('outbox relay failed; will retry', { err }));
  }

  const timer = setInterval(() => {
    if (!running) wake();
  }, interval);

  // One pooled connection held for LISTEN; opened again after an error.
  let unlisten: (() => void) | undefined;
  const listening = (async () => {
    while (!stopped) {
      let c: PoolClient | undefined;
      try {
        c = await opts.pool.connect();
        const client = c;
        await new Promise<void>((resolve, reject) => {
          unlisten = resolve;
          client.on('notification', wake);
          client.on('error', reject);
          client.on('end', () => reject(new Error('LISTEN connection closed')));
          // Rows committed before LISTEN took effect are read by the flush that follows it.
          client.query(`LISTEN ${OUTBOX_CHANNEL}`).then(wake, reject);
          if (stopped) resolve();
        });
        client.release(true);
      } catch (err) {
        c?.release(true);
        if (stopped) break;
        opts.log.warn('outbox relay: LISTEN connection lost; polling meanwhile', { err });
        await new Promise((r) => setTimeout(r, RELISTEN_MS));
      }
    }
  })();

  return {
    flush,
    async stop() {
      stopped = true;
      clearInterval(timer);
      unlisten?.();
      await listening;
      while (running) await running.catch(() => 0);
    },
  };
}
