// The rater's API: unpriced events (listed with filters and cursor pagination) and the
// re-rating command for those the automatic path no longer covers (older than the accept
// window, or after a fix the catalog announcement did not cover).
import { ApiError, Problems, decodeCursor, paginate, parseLimit, type Route } from '@drawdown/http';
import { listUnpriced, cursorOf, rerateUnpriced, UNPRICED_REASONS, type RerateDeps, type UnpricedCursor, type UnpricedFilter, type UnpricedRow } from './unpriced';

function parseTime(p: Problems, field: string, v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const ms = typeof v === 'string' ? Date.parse(v) : NaN;
  if (Number.isNaN(ms)) p.add(field, 'must be an ISO 8601 date-time');
  return ms;
}

function parseFilter(get: (k: string) => unknown): UnpricedFilter {
  const p = new Problems();
  const f: UnpricedFilter = {};
  for (const [field, key] of [['customer_id', 'customerId'], ['external_customer_id', 'externalCustomerId']] as const) {
    const v = get(field);
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string') p.add(field, 'must be a string');
    else f[key] = v;
  }
  const reason = get('reason');
  if (reason !== undefined && reason !== null && reason !== '') {
    if (typeof reason !== 'string' || !(UNPRICED_REASONS as readonly string[]).includes(reason)) p.add('reason', `must be one of ${UNPRICED_REASONS.join(', ')}`);
    else f.reason = reason as UnpricedFilter['reason'];
  }
  const from = parseTime(p, 'timeframe_start', get('timeframe_start'));
  const to = parseTime(p, 'timeframe_end', get('timeframe_end'));
  if (from !== undefined) f.fromMs = from;
  if (to !== undefined) f.toMs = to;
  if (from !== undefined && to !== undefined && !(from < to)) p.add('timeframe_end', 'must be after timeframe_start');
  p.throwIfAny('unpriced events filter');
  return f;
}

function dto(r: UnpricedRow) {
  return {
    id: `${r.partition}:${r.seq}:${r.idempotency_key}`,
    idempotency_key: r.idempotency_key,
    customer_id: r.customer_id || null,
    external_customer_id: r.external_customer_id || null,
    event_name: r.event_name,
    timestamp: new Date(r.t).toISOString(),
    received_at: new Date(r.r).toISOString(),
    properties: JSON.parse(r.properties) as unknown,
    reason: r.reason,
  };
}

export function unpricedRoutes(deps: RerateDeps, opts: { rerateMaxEvents: number }): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/unpriced_events',
      scope: 'read',
      handler: async (req) => {
        const limit = parseLimit(req.query);
        const f = parseFilter((k) => req.query.get(k) ?? undefined);
        const c = decodeCursor(req.query.get('cursor'));
        if (c && (c.length !== 4 || typeof c[0] !== 'number' || typeof c[3] !== 'string')) {
          throw new ApiError('validation_failed', 'cursor: not a cursor this API returned', [{ field: 'cursor', message: 'not a cursor this API returned' }]);
        }
        const rows = await listUnpriced(deps.ch, f, limit + 1, c as UnpricedCursor | undefined);
        return { body: paginate(rows, limit, cursorOf, dto) };
      },
    },
    {
      method: 'POST',
      path: '/v1/unpriced_events/rerate',
      scope: 'admin',
      handler: async (req) => {
        const body = req.body.length === 0 ? {} : req.json();
        if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError('invalid_body', 'body: must be a JSON object', [{ field: 'body', message: 'must be a JSON object' }]);
        const f = parseFilter((k) => (body as Record<string, unknown>)[k]);
        const r = await rerateUnpriced(deps, f, { maxEvents: opts.rerateMaxEvents, tag: String(Date.now()), trigger: 'command' });
        return { status: 202, body: { republished_events: r.events, messages: r.messages } };
      },
    },
  ];
}
