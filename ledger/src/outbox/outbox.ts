// Transactional outbox: rows written in the same transaction as the change they announce,
// then published to JetStream (NOTIFY stream, message id = outbox id, so a relay that dies
// after publishing and before marking publishes a duplicate JetStream drops).
import type { Queryable, Pool } from '@drawdown/pg';
import type { JetStreamClient } from '@drawdown/nats';
import type { Logger } from '@drawdown/log';
import { counter } from '@drawdown/metrics';

export interface OutboxRow {
  topic: string;
  customerId: string | null;
  payload: Record<string, unknown>;
}

export async function writeOutbox(db: Queryable, rows: OutboxRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO outbox (topic, customer_id, payload) SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])`,
    [rows.map((r) => r.topic), rows.map((r) => r.customerId), rows.map((r) => JSON.stringify(r.payload))],
  );
}

const published = counter('drawdown_outbox_published_total', 'Outbox rows published to NATS', ['topic']);

export interface OutboxRelay {
  /** Publishes what is pending now; returns the number published. */
  flush(): Promise<number>;
  stop(): Promise<void>;
}

export function startOutboxRelay(opts: { pool: Pool; js: JetStreamClient; subjectPrefix: string; log: Logger; intervalMs?: number; batch?: number }): OutboxRelay {
  const interval = opts.intervalMs ?? 100;
  const batch = opts.batch ?? 500;
  let stopped = false;
  let running: Promise<number> | undefined;

  const flushOnce = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const r = await opts.pool.query<{ id: string; topic: string; customer_id: string | null; payload: Record<string, unknown>; created_at: Date }>(
        // outbox.id, not id: a bare `id` would sort by the text output column ("10" < "9").
        'SELECT id::text, topic, customer_id, payload, created_at FROM outbox WHERE published_at IS NULL ORDER BY outbox.id LIMIT $1',
        [batch],
      );
      if (r.rows.length === 0) return total;
      const done: string[] = [];
      for (const row of r.rows) {
        const body = JSON.stringify({ id: row.id, type: row.topic, created_at: row.created_at.toISOString(), customer_id: row.customer_id, properties: row.payload });
        await opts.js.publish(`${opts.subjectPrefix}.${row.topic}`, body, { msgID: `outbox-${row.id}` });
        done.push(row.id);
        published.inc({ topic: row.topic });
      }
      await opts.pool.query('UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])', [done]);
      total += done.length;
      if (r.rows.length < batch) return total;
    }
  };

  const flush = async (): Promise<number> => {
    while (running) await running.catch(() => 0);
    running = flushOnce();
    try {
      return await running;
    } finally {
      running = undefined;
    }
  };

  const timer = setInterval(() => {
    if (stopped || running) return;
    flush().catch((err) => opts.log.warn('outbox relay failed; will retry', { err }));
  }, interval);

  return {
    flush,
    async stop() {
      stopped = true;
      clearInterval(timer);
      while (running) await running.catch(() => 0);
    },
  };
}
