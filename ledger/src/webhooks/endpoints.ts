// Webhook endpoints (Drawdown's own API in Orb's style): where events go, which types, the
// signing secret (shown once, at creation and rotation), the delivery log and redelivery.
import { withTx, type Pool, type Queryable } from '@drawdown/pg';
import { ApiError, Problems, decodeCursor, paginate, parseLimit, type Page } from '@drawdown/http';
import { newId } from '../ids';
import { newSecret } from './sign';

export const WEBHOOK_EVENT_TYPES = [
  'customer.credit_balance_depleted',
  'customer.credit_balance_dropped',
  'customer.credit_balance_recovered',
  'credit_balance.created',
  'credit_balance.updated',
  'subscription.usage_exceeded_threshold',
  'subscription.cost_exceeded',
  'webhook_endpoint.disabled',
] as const;

/** Outbox topics delivered as webhooks: the types above and invoice.* (invoicing). */
export function isWebhookType(topic: string): boolean {
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(topic) || topic.startsWith('invoice.');
}

/** Most endpoints per deployment (each event fans out to each). */
export const MAX_ENDPOINTS = 100;

interface EndpointRow {
  id: string;
  url: string;
  description: string | null;
  event_types: string[];
  status: string;
  disabled_reason: string | null;
  failing_since: Date | null;
  created_at: Date;
}

export interface EndpointDto {
  id: string;
  url: string;
  description: string | null;
  event_types: string[];
  status: string;
  disabled_reason: string | null;
  failing_since: string | null;
  created_at: string;
  secret?: string;
}

const COLS = 'id, url, description, event_types, status, disabled_reason, failing_since, created_at';

function dto(r: EndpointRow, secret?: string): EndpointDto {
  return {
    id: r.id,
    url: r.url,
    description: r.description,
    event_types: r.event_types,
    status: r.status,
    disabled_reason: r.disabled_reason,
    failing_since: r.failing_since?.toISOString() ?? null,
    created_at: r.created_at.toISOString(),
    ...(secret ? { secret } : {}),
  };
}

function obj(b: unknown): Record<string, unknown> {
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw new ApiError('invalid_body', 'request body must be a JSON object');
  return b as Record<string, unknown>;
}

function parseUrl(p: Problems, v: unknown): string | undefined {
  if (typeof v !== 'string') {
    p.add('url', 'is required: an http or https URL');
    return undefined;
  }
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') p.add('url', 'must be an http or https URL');
  } catch {
    p.add('url', 'is not a valid URL');
  }
  return v;
}

function parseTypes(p: Problems, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    p.add('event_types', 'must be a list of event types (empty: all)');
    return [];
  }
  v.forEach((t, i) => {
    if (typeof t !== 'string' || !isWebhookType(t)) p.add(`event_types[${i}]`, `unknown event type; one of ${WEBHOOK_EVENT_TYPES.join(', ')} or invoice.*`);
  });
  return [...new Set(v as string[])];
}

export async function createEndpoint(pool: Pool, body: unknown): Promise<EndpointDto> {
  const b = obj(body);
  const p = new Problems();
  const url = parseUrl(p, b.url);
  const types = parseTypes(p, b.event_types);
  if (b.description !== undefined && b.description !== null && typeof b.description !== 'string') p.add('description', 'must be a string');
  p.throwIfAny('webhook endpoint');
  const n = await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM webhook_endpoints WHERE deleted_at IS NULL');
  if (Number(n.rows[0]!.n) >= MAX_ENDPOINTS) throw new ApiError('conflict', `at most ${MAX_ENDPOINTS} webhook endpoints`);
  const secret = newSecret();
  const r = await pool.query<EndpointRow>(
    `INSERT INTO webhook_endpoints (id, url, description, event_types, secret) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLS}`,
    [newId(), url, (b.description as string | undefined) ?? null, types, secret],
  );
  return dto(r.rows[0]!, secret);
}

export async function getEndpoint(db: Queryable, id: string): Promise<EndpointDto> {
  const r = await db.query<EndpointRow>(`SELECT ${COLS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL`, [id]);
  if (r.rowCount === 0) throw new ApiError('not_found', `webhook endpoint ${id} not found`);
  return dto(r.rows[0]!);
}

export async function listEndpoints(db: Queryable, query: URLSearchParams): Promise<Page<EndpointDto>> {
  const limit = parseLimit(query);
  const after = decodeCursor(query.get('cursor'))?.[0] as string | undefined;
  const r = await db.query<EndpointRow>(`SELECT ${COLS} FROM webhook_endpoints WHERE deleted_at IS NULL AND ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2`, [after ?? null, limit + 1]);
  return paginate(r.rows, limit, (x) => [x.id], (x) => dto(x));
}

/** Changes url, description, event types, or status (re-enabling clears the failure record). */
export async function updateEndpoint(pool: Pool, id: string, body: unknown): Promise<EndpointDto> {
  const b = obj(body);
  const p = new Problems();
  const url = b.url === undefined ? undefined : parseUrl(p, b.url);
  const types = b.event_types === undefined ? undefined : parseTypes(p, b.event_types);
  if (b.status !== undefined && b.status !== 'enabled' && b.status !== 'disabled') p.add('status', 'must be enabled or disabled');
  if (b.description !== undefined && b.description !== null && typeof b.description !== 'string') p.add('description', 'must be a string');
  p.throwIfAny('webhook endpoint');
  const r = await pool.query(
    `UPDATE webhook_endpoints SET url = coalesce($2, url), event_types = coalesce($3, event_types),
            description = CASE WHEN $4 THEN $5 ELSE description END,
            status = coalesce($6, status),
            disabled_reason = CASE WHEN $6 = 'enabled' THEN NULL WHEN $6 = 'disabled' THEN 'disabled through the API' ELSE disabled_reason END,
            failing_since = CASE WHEN $6 = 'enabled' THEN NULL ELSE failing_since END
      WHERE id = $1 AND deleted_at IS NULL`,
    [id, url ?? null, types ?? null, b.description !== undefined, (b.description as string | null | undefined) ?? null, (b.status as string | undefined) ?? null],
  );
  if (r.rowCount === 0) throw new ApiError('not_found', `webhook endpoint ${id} not found`);
  return getEndpoint(pool, id);
}

export async function deleteEndpoint(pool: Pool, id: string): Promise<void> {
  await withTx(pool, async (c) => {
    const r = await c.query(`UPDATE webhook_endpoints SET deleted_at = now(), status = 'disabled', disabled_reason = 'deleted' WHERE id = $1 AND deleted_at IS NULL`, [id]);
    if (r.rowCount === 0) throw new ApiError('not_found', `webhook endpoint ${id} not found`);
    await c.query(`UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted' WHERE endpoint_id = $1 AND status = 'pending'`, [id]);
  });
}

/** A new secret; the old one keeps signing beside it for `graceMs`. */
export async function rotateSecret(pool: Pool, id: string, graceMs: number): Promise<EndpointDto> {
  const secret = newSecret();
  const r = await pool.query<EndpointRow>(
    `UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = now() + $3 * interval '1 millisecond', secret = $2
      WHERE id = $1 AND deleted_at IS NULL RETURNING ${COLS}`,
    [id, secret, graceMs],
  );
  if (r.rowCount === 0) throw new ApiError('not_found', `webhook endpoint ${id} not found`);
  return dto(r.rows[0]!, secret);
}

export interface AttemptDto {
  id: string;
  event_id: string;
  event_type: string;
  attempt: number;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  attempted_at: string;
  delivery_status: string;
}

/** The delivery log of one endpoint, newest first. */
export async function listAttempts(db: Queryable, endpointId: string, query: URLSearchParams): Promise<Page<AttemptDto>> {
  await getEndpoint(db, endpointId);
  const limit = parseLimit(query);
  const before = decodeCursor(query.get('cursor'))?.[0] as string | undefined;
  const r = await db.query<{ id: string; event_id: string; type: string; attempt: number; status_code: number | null; error: string | null; duration_ms: number; attempted_at: Date; status: string }>(
    `SELECT a.id::text, a.event_id, e.type, a.attempt, a.status_code, a.error, a.duration_ms, a.attempted_at, d.status
       FROM webhook_attempts a JOIN webhook_events e ON e.id = a.event_id
       JOIN webhook_deliveries d ON d.endpoint_id = a.endpoint_id AND d.event_id = a.event_id
      WHERE a.endpoint_id = $1 AND ($2::bigint IS NULL OR a.id < $2) AND ($3::text IS NULL OR a.event_id = $3)
      ORDER BY a.id DESC LIMIT $4`,
    [endpointId, before ?? null, query.get('event_id'), limit + 1],
  );
  return paginate(r.rows, limit, (x) => [x.id], (x) => ({
    id: x.id, event_id: x.event_id, event_type: x.type, attempt: x.attempt, status_code: x.status_code, error: x.error,
    duration_ms: x.duration_ms, attempted_at: x.attempted_at.toISOString(), delivery_status: x.status,
  }));
}

/**
 * Queues one event, or every event created in [from, to), for delivery again to this endpoint
 * (also events it had not received, if it subscribes to their type now).
 */
export async function redeliver(pool: Pool, endpointId: string, body: unknown): Promise<{ queued: number }> {
  const b = obj(body);
  const p = new Problems();
  const eventId = b.event_id;
  const from = b.created_at_from ?? b.from;
  const to = b.created_at_to ?? b.to;
  if (eventId !== undefined && typeof eventId !== 'string') p.add('event_id', 'must be an event id');
  if (eventId === undefined) {
    if (typeof from !== 'string' || Number.isNaN(Date.parse(from))) p.add('from', 'is required without event_id: an ISO 8601 date-time');
    if (typeof to !== 'string' || Number.isNaN(Date.parse(to))) p.add('to', 'is required without event_id: an ISO 8601 date-time');
  }
  p.throwIfAny('redelivery');
  await getEndpoint(pool, endpointId);
  const r = await pool.query(
    `WITH ev AS (
       SELECT e.id, e.outbox_id, e.customer_id FROM webhook_events e, webhook_endpoints w
        WHERE w.id = $1 AND (cardinality(w.event_types) = 0 OR e.type = ANY(w.event_types))
          AND ($2::text IS NULL OR e.id = $2)
          AND ($2::text IS NOT NULL OR (e.created_at >= $3::timestamptz AND e.created_at < $4::timestamptz))
     )
     INSERT INTO webhook_deliveries (endpoint_id, event_id, seq, customer_key)
     SELECT $1, ev.id, ev.outbox_id, coalesce(ev.customer_id, '') FROM ev
     ON CONFLICT (endpoint_id, event_id) DO UPDATE
       SET status = 'pending', next_attempt_at = now(), first_attempt_at = NULL, lease_until = NULL, attempts = 0`,
    [endpointId, (eventId as string | undefined) ?? null, (from as string | undefined) ?? null, (to as string | undefined) ?? null],
  );
  if (eventId !== undefined && r.rowCount === 0) throw new ApiError('not_found', `event ${String(eventId)} not found (or not of a type this endpoint receives)`);
  return { queued: r.rowCount ?? 0 };
}
