// Unpriced events: rated_events rows with status 'unpriced' (unknown customer, no active
// subscription, no matching price, invalid event) that no re-rating copy has resolved yet.
// Re-rating publishes copies of them back into their partition of the EVENTS stream with the
// RERATE_HEADER, so they go through the same ordered path (dedup, pricing, ClickHouse, debits)
// and are priced at most once: the partition drops a copy when a priced row of the event exists.
import type { CatalogSnapshot } from '@drawdown/catalog';
import { queryRows, type Ch } from '@drawdown/clickhouse';
import { encodeBatch, type AcceptedEvent } from '@drawdown/events';
import { headers, type JetStreamClient } from '@drawdown/nats';
import { counter } from '@drawdown/metrics';
import { RERATE_HEADER } from './partition';
import { priceBatch, type PricingEvent } from './pricing/price';

const republished = counter('drawdown_rater_rerate_events_total', 'Unpriced events published again for re-rating', ['trigger']);

export const UNPRICED_REASONS = ['unknown_customer', 'no_active_subscription', 'no_matching_price', 'invalid_event'] as const;

export interface UnpricedFilter {
  customerId?: string;
  externalCustomerId?: string;
  reason?: (typeof UNPRICED_REASONS)[number];
  partition?: number;
  fromMs?: number;
  toMs?: number;
}

export interface UnpricedRow {
  partition: number;
  seq: number;
  idempotency_key: string;
  customer_id: string;
  external_customer_id: string;
  event_name: string;
  t: number;
  r: number;
  properties: string;
  reason: string;
}

/** Sort key of a row for cursor pagination. */
export type UnpricedCursor = [number, number, number, string];

export async function listUnpriced(ch: Ch, f: UnpricedFilter, limit: number, after?: UnpricedCursor): Promise<UnpricedRow[]> {
  const where: string[] = [
    "status = 'unpriced'",
    '(partition, seq, idempotency_key) NOT IN (SELECT partition, seq, idempotency_key FROM unpriced_resolved)',
  ];
  const params: Record<string, unknown> = { lim: limit };
  const add = (clause: string, values: Record<string, unknown>) => {
    where.push(clause);
    Object.assign(params, values);
  };
  if (f.customerId !== undefined) add('customer_id = {cid:String}', { cid: f.customerId });
  if (f.externalCustomerId !== undefined) add('external_customer_id = {ext:String}', { ext: f.externalCustomerId });
  if (f.reason !== undefined) add('(reason = {reason:String} OR startsWith(reason, {reasonp:String}))', { reason: f.reason, reasonp: `${f.reason}:` });
  if (f.partition !== undefined) add('partition = {p:UInt16}', { p: f.partition });
  if (f.fromMs !== undefined) add('timestamp >= fromUnixTimestamp64Milli({from:Int64})', { from: f.fromMs });
  if (f.toMs !== undefined) add('timestamp < fromUnixTimestamp64Milli({to:Int64})', { to: f.toMs });
  if (after) {
    where.push('(toUnixTimestamp64Milli(timestamp), partition, seq, idempotency_key) > ({at:Int64}, {ap:UInt16}, {as:UInt64}, {ak:String})');
    Object.assign(params, { at: after[0], ap: after[1], as: after[2], ak: after[3] });
  }
  const rows = await queryRows<Record<string, string>>(
    ch,
    `SELECT partition, seq, idempotency_key, customer_id, external_customer_id, event_name,
            toUnixTimestamp64Milli(timestamp) AS t, toUnixTimestamp64Milli(received_at) AS r, properties, reason
       FROM rated_events WHERE ${where.join(' AND ')}
      ORDER BY t, partition, seq, idempotency_key LIMIT {lim:UInt32}`,
    params,
  );
  return rows.map((x) => ({
    partition: Number(x.partition), seq: Number(x.seq), idempotency_key: x.idempotency_key!, customer_id: x.customer_id!,
    external_customer_id: x.external_customer_id!, event_name: x.event_name!, t: Number(x.t), r: Number(x.r), properties: x.properties!, reason: x.reason!,
  }));
}

export const cursorOf = (r: UnpricedRow): UnpricedCursor => [r.t, r.partition, r.seq, r.idempotency_key];

function toAccepted(r: UnpricedRow): AcceptedEvent {
  return {
    k: r.idempotency_key,
    c: r.customer_id ? r.customer_id : `x:${r.external_customer_id}`,
    n: r.event_name,
    t: r.t,
    r: r.r,
    p: JSON.parse(r.properties) as AcceptedEvent['p'],
  };
}

export interface RerateDeps {
  ch: Ch;
  js: JetStreamClient;
  eventsSubjectPrefix: string;
}

/**
 * Publishes copies of the matching unresolved unpriced events back to their partitions, one
 * message per original message. With `snapshot`, only those that this catalog can now price
 * are published (the automatic path; the command publishes all). `tag` makes the message ids
 * of one round unique, so JetStream's duplicate window drops a round sent twice.
 */
export async function rerateUnpriced(
  deps: RerateDeps,
  f: UnpricedFilter,
  opts: { /** Most unpriced rows looked at in one call. */ maxEvents: number; tag: string; trigger: 'command' | 'catalog'; snapshot?: CatalogSnapshot },
): Promise<{ events: number; messages: number }> {
  let after: UnpricedCursor | undefined;
  let events = 0;
  let messages = 0;
  let scanned = 0;
  while (scanned < opts.maxEvents) {
    let rows = await listUnpriced(deps.ch, f, Math.min(1000, opts.maxEvents - scanned), after);
    if (rows.length === 0) break;
    scanned += rows.length;
    after = cursorOf(rows[rows.length - 1]!);
    if (opts.snapshot) {
      const snap = opts.snapshot;
      rows = rows.filter((r) => {
        const e: PricingEvent = { seq: r.seq, ...toAccepted(r) };
        return priceBatch(snap, [e], r.partition, 'check').rows.some((x) => x.status === 'rated');
      });
    }
    const groups = new Map<string, UnpricedRow[]>();
    for (const r of rows) {
      const key = `${r.partition}:${r.seq}`;
      const g = groups.get(key);
      if (g) g.push(r);
      else groups.set(key, [r]);
    }
    for (const [key, g] of groups) {
      const h = headers();
      h.set(RERATE_HEADER, String(g[0]!.seq));
      await deps.js.publish(`${deps.eventsSubjectPrefix}.${g[0]!.partition}`, encodeBatch(g.map(toAccepted)), {
        msgID: `rerate:${key}:${opts.tag}`,
        headers: h,
        timeout: 10_000,
      });
      messages++;
      events += g.length;
    }
  }
  republished.inc({ trigger: opts.trigger }, events);
  return { events, messages };
}
