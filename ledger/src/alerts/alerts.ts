// Alert configurations, Orb's shape: customer-scoped credit balance alerts (depleted, dropped,
// recovered; one of each type per customer and currency) and subscription-scoped usage and
// cost alerts. Amounts are picos (bigint); the HTTP layer writes them as exact JSON numbers.
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { withTx, toDbError, type Pool, type Queryable } from '@drawdown/pg';
import { ApiError, Problems, decodeCursor, paginate, parseLimit, type Page } from '@drawdown/http';
import { newId } from '../ids';
import { readBalances, toPicos, balanceKey } from '../credits/balances';
import { BALANCE_ALERT_TYPES, effectiveThresholds } from './evaluate';

export const SUBSCRIPTION_ALERT_TYPES = ['usage_exceeded', 'cost_exceeded'] as const;
/** Most thresholds on one alert (each is a state row and a possible event per change). */
export const MAX_THRESHOLDS = 50;

interface AlertRow {
  id: string;
  type: string;
  customer_id: string | null;
  external_customer_id: string | null;
  subscription_id: string | null;
  currency: string | null;
  metric_id: string | null;
  thresholds: string[];
  enabled: boolean;
  created_at: Date;
}

export interface AlertDto {
  id: string;
  created_at: string;
  currency: string | null;
  customer: { id: string; external_customer_id: string | null } | null;
  enabled: boolean;
  metric: { id: string } | null;
  plan: null;
  subscription: { id: string } | null;
  thresholds: { value: bigint }[] | null;
  type: string;
  balance_alert_status: { in_alert: boolean; threshold_value: bigint }[] | null;
}

const SELECT = `SELECT a.id, a.type, coalesce(a.customer_id, s.customer_id) AS customer_id, c.external_customer_id, a.subscription_id,
                       a.currency, a.metric_id, a.thresholds::text[] AS thresholds, a.enabled, a.created_at
                  FROM alerts a LEFT JOIN subscriptions s ON s.id = a.subscription_id
                  LEFT JOIN customers c ON c.id = coalesce(a.customer_id, s.customer_id)`;

function parseThresholds(p: Problems, v: unknown, required: boolean): bigint[] {
  if (v === undefined || v === null) {
    if (required) p.add('thresholds', 'is required: a non-empty list of {value}');
    return [];
  }
  if (!Array.isArray(v)) {
    p.add('thresholds', 'must be a list of {value}');
    return [];
  }
  if (required && v.length === 0) p.add('thresholds', 'must not be empty');
  if (v.length > MAX_THRESHOLDS) p.add('thresholds', `at most ${MAX_THRESHOLDS} thresholds`);
  const out: bigint[] = [];
  v.forEach((t, i) => {
    const value = (t as { value?: unknown } | null)?.value;
    if (typeof value !== 'number' && typeof value !== 'string') {
      p.add(`thresholds[${i}].value`, 'is required: a number');
      return;
    }
    try {
      out.push(parseDecimal(value, `thresholds[${i}].value`));
    } catch (err) {
      p.add(`thresholds[${i}].value`, (err as Error).message.replace(/^[^:]*: /, ''));
    }
  });
  return [...new Set(out)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function body(b: unknown): Record<string, unknown> {
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw new ApiError('invalid_body', 'request body must be a JSON object');
  return b as Record<string, unknown>;
}

async function insert(db: Queryable, row: { type: string; customerId?: string; subscriptionId?: string; currency: string | null; metricId: string | null; thresholds: bigint[] }): Promise<string> {
  const id = newId();
  try {
    await db.query(
      'INSERT INTO alerts (id, type, customer_id, subscription_id, currency, metric_id, thresholds) VALUES ($1, $2, $3, $4, $5, $6, $7::numeric[])',
      [id, row.type, row.customerId ?? null, row.subscriptionId ?? null, row.currency, row.metricId, row.thresholds.map(fmt)],
    );
  } catch (err) {
    const e = toDbError(err);
    if (e.code === 'unique_violation') {
      throw new ApiError('conflict', row.customerId
        ? `the customer already has a ${row.type} alert for ${row.currency}`
        : `the subscription already has a ${row.type} alert${row.metricId ? ` for metric ${row.metricId}` : ''}`);
    }
    throw err;
  }
  return id;
}

const fmt = formatDecimal;

export async function createCustomerAlert(pool: Pool, customerId: string, b: unknown): Promise<AlertDto> {
  const x = body(b);
  const p = new Problems();
  if (typeof x.type !== 'string' || !(BALANCE_ALERT_TYPES as readonly string[]).includes(x.type)) p.add('type', `is required: one of ${BALANCE_ALERT_TYPES.join(', ')}`);
  if (typeof x.currency !== 'string' || x.currency === '' || x.currency.length > 64) p.add('currency', 'is required: a currency or pricing unit');
  const thresholds = parseThresholds(p, x.thresholds, x.type === 'credit_balance_dropped');
  p.throwIfAny('alert');
  const id = await insert(pool, { type: x.type as string, customerId, currency: x.currency as string, metricId: null, thresholds });
  return fetchAlert(pool, id);
}

export async function createSubscriptionAlert(pool: Pool, subscriptionId: string, b: unknown): Promise<AlertDto> {
  const x = body(b);
  const p = new Problems();
  if (typeof x.type !== 'string' || !(SUBSCRIPTION_ALERT_TYPES as readonly string[]).includes(x.type)) p.add('type', `is required: one of ${SUBSCRIPTION_ALERT_TYPES.join(', ')}`);
  const thresholds = parseThresholds(p, x.thresholds, true);
  const metricId = typeof x.metric_id === 'string' ? x.metric_id : null;
  if (x.type === 'usage_exceeded' && !metricId) p.add('metric_id', 'is required for usage_exceeded alerts');
  if (x.metric_id !== undefined && x.metric_id !== null && typeof x.metric_id !== 'string') p.add('metric_id', 'must be a metric id');
  if (x.currency !== undefined && x.currency !== null && (typeof x.currency !== 'string' || x.currency === '')) p.add('currency', 'must be a currency or pricing unit');
  p.throwIfAny('alert');
  const sub = await pool.query<{ currency: string }>('SELECT p.currency FROM subscriptions s JOIN plans p ON p.id = s.plan_id WHERE s.id = $1', [subscriptionId]);
  if (sub.rowCount === 0) throw new ApiError('not_found', `subscription ${subscriptionId} not found`);
  if (metricId) {
    const m = await pool.query('SELECT 1 FROM metrics WHERE id = $1', [metricId]);
    if (m.rowCount === 0) throw new ApiError('validation_failed', `metric_id: metric ${metricId} not found`, [{ field: 'metric_id', message: `metric ${metricId} not found` }]);
  }
  const currency = x.type === 'cost_exceeded' ? ((x.currency as string | undefined) ?? sub.rows[0]!.currency) : ((x.currency as string | undefined) ?? null);
  const id = await insert(pool, { type: x.type as string, subscriptionId, currency, metricId: x.type === 'usage_exceeded' ? metricId : null, thresholds });
  return fetchAlert(pool, id);
}

async function toDtos(db: Queryable, rows: AlertRow[]): Promise<AlertDto[]> {
  const balanceAlerts = rows.filter((r) => (BALANCE_ALERT_TYPES as readonly string[]).includes(r.type));
  const states = new Map<string, boolean>();
  let balances = new Map<string, { balance: bigint }>();
  if (balanceAlerts.length > 0) {
    const s = await db.query<{ alert_id: string; threshold: string; in_alert: boolean }>(
      "SELECT alert_id, threshold::text, in_alert FROM alert_threshold_state WHERE alert_id = ANY($1::text[]) AND scope = ''",
      [balanceAlerts.map((r) => r.id)],
    );
    for (const x of s.rows) states.set(`${x.alert_id}\u0000${toPicos(x.threshold)}`, x.in_alert);
    balances = await readBalances(db, balanceAlerts.map((r) => ({ customerId: r.customer_id!, pricingUnit: r.currency! })));
  }
  return rows.map((r) => {
    const thresholds = r.thresholds.map(toPicos);
    const isBalance = (BALANCE_ALERT_TYPES as readonly string[]).includes(r.type);
    const balance = isBalance ? (balances.get(balanceKey(r.customer_id!, r.currency!))?.balance ?? 0n) : 0n;
    return {
      id: r.id,
      created_at: r.created_at.toISOString(),
      currency: r.currency,
      customer: r.customer_id ? { id: r.customer_id, external_customer_id: r.external_customer_id } : null,
      enabled: r.enabled,
      metric: r.metric_id ? { id: r.metric_id } : null,
      plan: null,
      subscription: r.subscription_id ? { id: r.subscription_id } : null,
      thresholds: thresholds.length > 0 ? thresholds.map((value) => ({ value })) : null,
      type: r.type,
      // For balance alerts: whether each threshold is breached now (state, or the balance when
      // no change was evaluated since the alert was created or enabled).
      balance_alert_status: isBalance
        ? effectiveThresholds(r.type, thresholds).map((t) => {
            const s = states.get(`${r.id}\u0000${t}`);
            return { threshold_value: t, in_alert: s ?? balance <= t };
          })
        : null,
    };
  });
}

export async function fetchAlert(db: Queryable, id: string): Promise<AlertDto> {
  const r = await db.query<AlertRow>(`${SELECT} WHERE a.id = $1`, [id]);
  if (r.rowCount === 0) throw new ApiError('not_found', `alert ${id} not found`);
  return (await toDtos(db, r.rows))[0]!;
}

export async function listAlerts(db: Queryable, query: URLSearchParams): Promise<Page<AlertDto>> {
  const limit = parseLimit(query);
  const customerId = query.get('customer_id');
  const externalId = query.get('external_customer_id');
  const subscriptionId = query.get('subscription_id');
  if (!customerId && !externalId && !subscriptionId) {
    throw new ApiError('validation_failed', 'one of customer_id, external_customer_id or subscription_id is required', [{ field: 'customer_id', message: 'one of customer_id, external_customer_id or subscription_id is required' }]);
  }
  const cursor = decodeCursor(query.get('cursor'));
  const r = await db.query<AlertRow>(
    `${SELECT}
      WHERE ($1::text IS NULL OR a.customer_id = $1 OR s.customer_id = $1)
        AND ($2::text IS NULL OR c.external_customer_id = $2)
        AND ($3::text IS NULL OR a.subscription_id = $3)
        AND ($4::timestamptz IS NULL OR (a.created_at, a.id) < ($4::timestamptz, $5::text))
        AND ($6::timestamptz IS NULL OR a.created_at > $6) AND ($7::timestamptz IS NULL OR a.created_at >= $7)
        AND ($8::timestamptz IS NULL OR a.created_at < $8) AND ($9::timestamptz IS NULL OR a.created_at <= $9)
      ORDER BY a.created_at DESC, a.id DESC LIMIT $10`,
    [customerId, externalId, subscriptionId, (cursor?.[0] as string | undefined) ?? null, (cursor?.[1] as string | undefined) ?? null,
      query.get('created_at[gt]'), query.get('created_at[gte]'), query.get('created_at[lt]'), query.get('created_at[lte]'), limit + 1],
  );
  const dtos = await toDtos(db, r.rows);
  return paginate(dtos, limit, (d) => [d.created_at, d.id], (d) => d);
}

/** Enabling (or changing thresholds) forgets threshold state: it is re-seeded from the balance. */
export async function setEnabled(pool: Pool, id: string, enabled: boolean): Promise<AlertDto> {
  await withTx(pool, async (c) => {
    const r = await c.query('UPDATE alerts SET enabled = $2 WHERE id = $1 RETURNING enabled', [id, enabled]);
    if (r.rowCount === 0) throw new ApiError('not_found', `alert ${id} not found`);
    if (enabled) await c.query('DELETE FROM alert_threshold_state WHERE alert_id = $1 AND scope = \'\'', [id]);
  });
  return fetchAlert(pool, id);
}

export async function updateThresholds(pool: Pool, id: string, b: unknown): Promise<AlertDto> {
  const x = body(b);
  const p = new Problems();
  const thresholds = parseThresholds(p, x.thresholds, true);
  p.throwIfAny('alert');
  await withTx(pool, async (c) => {
    const r = await c.query('UPDATE alerts SET thresholds = $2::numeric[] WHERE id = $1', [id, thresholds.map(fmt)]);
    if (r.rowCount === 0) throw new ApiError('not_found', `alert ${id} not found`);
    await c.query('DELETE FROM alert_threshold_state WHERE alert_id = $1 AND scope = \'\'', [id]);
  });
  return fetchAlert(pool, id);
}

export async function deleteAlert(pool: Pool, id: string): Promise<void> {
  const r = await pool.query('DELETE FROM alerts WHERE id = $1', [id]);
  if (r.rowCount === 0) throw new ApiError('not_found', `alert ${id} not found`);
}
