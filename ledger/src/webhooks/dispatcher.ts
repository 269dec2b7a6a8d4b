// The webhook dispatcher, in two steps, both at-least-once across a kill -9:
//
// 1. Fan-out: a durable JetStream consumer on NOTIFY (the outbox relay publishes every outbox
//    row there, message id = outbox id). Each webhook-type row becomes one webhook_events row
//    (unique by outbox id, so a redelivered message is a no-op) with the exact body to send,
//    and one webhook_deliveries row per enabled endpoint that wants the type, in one
//    transaction; the message is acked after the commit.
// 2. Delivery: per (endpoint, customer), only the pending delivery with the lowest seq (the
//    outbox id: commit order per customer, since balance changes hold the customer's balance
//    row lock) is attempted, so a customer's events arrive in order. A delivery is leased
//    (lease_until) while in flight; a dispatcher killed mid-delivery leaves it pending and it is
//    sent again once the lease passes. Failures retry with exponential backoff and jitter
//    until the retry window closes; an endpoint failing for webhookDisableAfterMs is disabled
//    and a webhook_endpoint.disabled event is written (delivered to the other endpoints).
import type { Config } from '@drawdown/config';
import type { Logger } from '@drawdown/log';
import { counter, histogram } from '@drawdown/metrics';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, names, type NatsConnection } from '@drawdown/nats';
import { withTx, type Pool } from '@drawdown/pg';
import { customerDto, type CustomerRow } from '../customers/customers';
import { newId } from '../ids';
import { writeOutbox } from '../outbox/outbox';
import { isWebhookType } from './endpoints';
import { signatureHeaders } from './sign';

const deliveries = counter('drawdown_webhook_deliveries_total', 'Webhook delivery attempts by outcome', ['outcome']);
const deliverySeconds = histogram('drawdown_webhook_delivery_seconds', 'Time of one webhook delivery attempt');
const eventLag = histogram('drawdown_webhook_event_lag_seconds', 'From the outbox row to its first successful delivery', [], [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300]);

/** Most NOTIFY messages fanned out in one transaction. */
const FANOUT_BATCH = 256;
/** Longest response body excerpt kept in the delivery log on failure. */
const ERROR_EXCERPT = 300;
/** How often old events and log rows are pruned, and the most rows per round. */
const PRUNE_EVERY_MS = 60_000;
const PRUNE_BATCH = 10_000;

export type DispatcherSettings = Pick<Config, 'namespace' | 'webhookRetentionMs' | 'webhookTimeoutMs' | 'webhookConcurrency' | 'webhookPollMs' | 'webhookRetryBaseMs' | 'webhookRetryMaxMs' | 'webhookRetryWindowMs' | 'webhookDisableAfterMs'>;

export interface WebhookDispatcher {
  /** Wakes the delivery loop (new deliveries). */
  wake(): void;
  /** Deletes events and log rows past the retention (runs every minute by itself). */
  prune(): Promise<void>;
  stop(): Promise<void>;
}

interface NotifyMessage {
  id: string;
  type: string;
  created_at: string;
  customer_id: string | null;
  properties: Record<string, unknown>;
}

/** Exponential backoff with jitter: base * 2^(attempt-1), capped, times 0.5..1. */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 40));
  return Math.round(exp * (0.5 + random() * 0.5));
}

/** Builds Orb's envelope {id, created_at, type, <resource>, properties}. */
export function envelope(id: string, m: NotifyMessage, customer: Record<string, unknown> | null): Record<string, unknown> {
  const { customer_id: _c, subscription_id: subscriptionId, ...properties } = m.properties;
  void _c;
  const out: Record<string, unknown> = { id, created_at: m.created_at, type: m.type };
  if (typeof subscriptionId === 'string') out.subscription = { id: subscriptionId, customer };
  else if (m.type.startsWith('webhook_endpoint.')) out.webhook_endpoint = { id: properties.webhook_endpoint_id };
  else out.customer = customer;
  out.properties = properties;
  return out;
}

export async function startWebhookDispatcher(opts: { pool: Pool; nc: NatsConnection; config: DispatcherSettings; log: Logger; durable?: string }): Promise<WebhookDispatcher> {
  const { pool, config, log } = opts;
  const n = names(config.namespace);
  const durable = opts.durable ?? 'webhooks';
  const jsm = await jetstreamManager(opts.nc);
  await jsm.consumers.add(n.notifyStream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: 10_000,
    ack_wait: 10_000_000_000,
  });
  const consumer = await jetstream(opts.nc).consumers.get(n.notifyStream, durable);
  let stopped = false;
  let wakeUp: (() => void) | undefined;
  const wake = () => {
    const w = wakeUp;
    wakeUp = undefined;
    w?.();
  };

  const fanout = async (msgs: { data: NotifyMessage }[]): Promise<number> => {
    const wanted = msgs.map((m) => m.data).filter((m) => isWebhookType(m.type));
    if (wanted.length === 0) return 0;
    return withTx(pool, async (c) => {
      const customerIds = [...new Set(wanted.map((m) => m.customer_id).filter((x): x is string => !!x))];
      const customers = new Map<string, Record<string, unknown>>();
      if (customerIds.length > 0) {
        const r = await c.query<CustomerRow>('SELECT id, external_customer_id, name, email, currency, timezone, metadata, attrs, created_at FROM customers WHERE id = ANY($1)', [customerIds]);
        for (const row of r.rows) customers.set(row.id, customerDto(row));
      }
      const ids = wanted.map(() => `evt_${newId()}`);
      const bodies = wanted.map((m, i) => JSON.stringify(envelope(ids[i]!, m, m.customer_id ? (customers.get(m.customer_id) ?? { id: m.customer_id }) : null)));
      const r = await c.query(
        `WITH ev AS (
           INSERT INTO webhook_events (id, outbox_id, customer_id, type, body, created_at)
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
           ON CONFLICT (outbox_id) DO NOTHING
           RETURNING id, outbox_id, customer_id, type, body
         )
         INSERT INTO webhook_deliveries (endpoint_id, event_id, seq, customer_key)
         SELECT w.id, ev.id, ev.outbox_id, coalesce(ev.customer_id, '') FROM ev JOIN webhook_endpoints w
             ON w.status = 'enabled' AND w.deleted_at IS NULL AND (cardinality(w.event_types) = 0 OR ev.type = ANY(w.event_types))
          -- an endpoint is not told about its own disabling
          WHERE NOT (ev.type = 'webhook_endpoint.disabled' AND w.id = ev.body::jsonb -> 'webhook_endpoint' ->> 'id')`,
        [ids, wanted.map((m) => m.id), wanted.map((m) => m.customer_id), wanted.map((m) => m.type), bodies, wanted.map((m) => m.created_at)],
      );
      return r.rowCount ?? 0;
    });
  };

  // Messages are taken as they arrive (consume, not fetch: a fetch waits for a full batch or
  // its expiry) and fanned out in micro-batches: whatever arrived while the previous
  // transaction ran goes into the next one.
  const messages = await consumer.consume({ max_messages: FANOUT_BATCH, expires: 5000 });
  const buffer: { json(): unknown; ack(): void; seq: number }[] = [];
  let scheduled = false;
  let chain: Promise<void> = Promise.resolve();
  const flush = async () => {
    scheduled = false;
    const got = buffer.splice(0, buffer.length);
    const parsed: { data: NotifyMessage }[] = [];
    for (const m of got) {
      try {
        parsed.push({ data: m.json() as NotifyMessage });
      } catch (err) {
        log.error('undecodable NOTIFY message skipped', { seq: m.seq, err });
      }
    }
    for (;;) {
      try {
        const queued = await fanout(parsed);
        for (const m of got) m.ack();
        if (queued > 0) wake();
        return;
      } catch (err) {
        // Not acked: JetStream would redeliver them anyway; retry here while running.
        if (stopped) return;
        log.error('webhook fan-out failed; retrying', { err });
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  const fanoutLoop = (async () => {
    for await (const m of messages) {
      buffer.push(m);
      if (!scheduled) {
        scheduled = true;
        chain = chain.then(() => new Promise<void>((r) => setImmediate(r))).then(flush);
      }
    }
    await chain;
  })();

  let inflight = 0;
  const running = new Set<Promise<void>>();

  const attempt = async (d: { endpoint_id: string; event_id: string; attempts: number; first_attempt_at: Date; url: string; secrets: string[]; body: string; event_created_at: Date }) => {
    const t0 = performance.now();
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await fetch(d.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'Drawdown-Webhooks/1', ...signatureHeaders(d.body, d.secrets) },
        body: d.body,
        signal: AbortSignal.timeout(config.webhookTimeoutMs),
        redirect: 'manual',
      });
      status = res.status;
      if (res.status < 200 || res.status >= 300) error = `HTTP ${res.status}: ${(await res.text().catch(() => '')).slice(0, ERROR_EXCERPT)}`;
      else await res.arrayBuffer().catch(() => undefined);
    } catch (err) {
      error = (err as Error).name === 'TimeoutError' ? `timed out after ${config.webhookTimeoutMs} ms` : `${(err as Error).message}${(err as { cause?: Error }).cause ? `: ${(err as { cause?: Error }).cause!.message}` : ''}`;
    }
    const ms = performance.now() - t0;
    deliverySeconds.observe(ms / 1000);
    await withTx(pool, async (c) => {
      await c.query('INSERT INTO webhook_attempts (endpoint_id, event_id, attempt, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)', [d.endpoint_id, d.event_id, d.attempts, status, error, Math.round(ms)]);
      if (error === null) {
        deliveries.inc({ outcome: 'delivered' });
        if (d.attempts === 1) eventLag.observe(Math.max(0, (Date.now() - d.event_created_at.getTime()) / 1000));
        await c.query(`UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), lease_until = NULL, last_status = $3, last_error = NULL WHERE endpoint_id = $1 AND event_id = $2`, [d.endpoint_id, d.event_id, status]);
        await c.query('UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL', [d.endpoint_id]);
        return;
      }
      const giveUp = Date.now() - d.first_attempt_at.getTime() >= config.webhookRetryWindowMs;
      deliveries.inc({ outcome: giveUp ? 'failed' : 'retry' });
      const delay = retryDelayMs(d.attempts, config.webhookRetryBaseMs, config.webhookRetryMaxMs);
      await c.query(
        `UPDATE webhook_deliveries SET status = $3, lease_until = NULL, last_status = $4, last_error = $5, next_attempt_at = now() + $6 * interval '1 millisecond'
          WHERE endpoint_id = $1 AND event_id = $2`,
        [d.endpoint_id, d.event_id, giveUp ? 'failed' : 'pending', status, error, delay],
      );
      if (giveUp) log.warn('webhook delivery failed for good', { endpoint: d.endpoint_id, event: d.event_id, attempts: d.attempts, error });
      const e = await c.query<{ failing_since: Date; status: string }>(
        'UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()) WHERE id = $1 RETURNING failing_since, status',
        [d.endpoint_id],
      );
      const since = e.rows[0]?.failing_since;
      if (since && e.rows[0]!.status === 'enabled' && Date.now() - since.getTime() >= config.webhookDisableAfterMs) {
        const reason = `every delivery failed since ${since.toISOString()} (last: ${error})`;
        await c.query(`UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $2 WHERE id = $1`, [d.endpoint_id, reason]);
        await writeOutbox(c, [{ topic: 'webhook_endpoint.disabled', customerId: null, payload: { webhook_endpoint_id: d.endpoint_id, url: d.url, reason } }]);
        log.error('webhook endpoint disabled: it keeps failing', { endpoint: d.endpoint_id, url: d.url, since: since.toISOString() });
      }
    });
  };

  // Long enough to send and record one attempt; a dispatcher killed mid-delivery holds it this long.
  const leaseMs = config.webhookTimeoutMs + 2_000;
  const pickDue = async (max: number) => {
    const r = await pool.query<{ endpoint_id: string; event_id: string; attempts: number; first_attempt_at: Date; url: string; secret: string; previous_secret: string | null; previous_secret_until: Date | null; body: string; event_created_at: Date }>(
      // Heads of the queues of enabled endpoints (a disabled endpoint's backlog is not read).
      // This reads every pending delivery of enabled endpoints: bounded by the retry window.
      `WITH heads AS (
         SELECT DISTINCT ON (d.endpoint_id, d.customer_key) d.endpoint_id, d.event_id, d.next_attempt_at, d.lease_until
           FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.status = 'enabled'
          WHERE d.status = 'pending' ORDER BY d.endpoint_id, d.customer_key, d.seq
       ), due AS (
         SELECT h.endpoint_id, h.event_id FROM heads h
          WHERE h.next_attempt_at <= now() AND (h.lease_until IS NULL OR h.lease_until < now())
          ORDER BY h.next_attempt_at LIMIT $1
       ), leased AS (
         UPDATE webhook_deliveries d SET lease_until = now() + $2 * interval '1 millisecond', attempts = d.attempts + 1,
                first_attempt_at = coalesce(d.first_attempt_at, now())
           FROM due WHERE d.endpoint_id = due.endpoint_id AND d.event_id = due.event_id AND d.status = 'pending'
            AND (d.lease_until IS NULL OR d.lease_until < now())
         RETURNING d.endpoint_id, d.event_id, d.attempts, d.first_attempt_at
       )
       SELECT l.*, w.url, w.secret, w.previous_secret, w.previous_secret_until, e.body, e.created_at AS event_created_at
         FROM leased l JOIN webhook_endpoints w ON w.id = l.endpoint_id JOIN webhook_events e ON e.id = l.event_id`,
      [max, leaseMs],
    );
    return r.rows.map((x) => ({
      ...x,
      secrets: x.previous_secret && x.previous_secret_until && x.previous_secret_until > new Date() ? [x.secret, x.previous_secret] : [x.secret],
    }));
  };

  const deliverLoop = (async () => {
    while (!stopped) {
      try {
        const free = config.webhookConcurrency - inflight;
        if (free > 0) {
          const due = await pickDue(free);
          for (const d of due) {
            inflight++;
            const p: Promise<void> = attempt(d)
              .catch((err) => log.error('recording a webhook attempt failed (the lease expires and it is retried)', { err }))
              .finally(() => {
                inflight--;
                running.delete(p);
                wake();
              });
            running.add(p);
          }
          if (due.length > 0) continue;
        }
      } catch (err) {
        if (stopped) break;
        log.error('webhook dispatcher failed; retrying', { err });
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          wakeUp = undefined;
          resolve();
        }, config.webhookPollMs);
        wakeUp = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  })();

  const prune = async () => {
    await pool.query(
      `WITH old AS (
         SELECT id FROM webhook_events e WHERE created_at < now() - $1 * interval '1 millisecond'
            AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
          LIMIT $2
       ), gone AS (DELETE FROM webhook_deliveries WHERE event_id IN (SELECT id FROM old))
       DELETE FROM webhook_events WHERE id IN (SELECT id FROM old)`,
      [config.webhookRetentionMs, PRUNE_BATCH],
    );
    await pool.query(`DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts WHERE attempted_at < now() - $1 * interval '1 millisecond' LIMIT $2)`, [config.webhookRetentionMs, PRUNE_BATCH]);
  };
  const pruneTimer = setInterval(() => void prune().catch((err) => log.warn('pruning webhook events failed; will retry', { err })), PRUNE_EVERY_MS);

  return {
    wake,
    prune,
    async stop() {
      stopped = true;
      clearInterval(pruneTimer);
      wake();
      await messages.close();
      await fanoutLoop;
      await deliverLoop;
      await Promise.allSettled([...running]);
    },
  };
}
