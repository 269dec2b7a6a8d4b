// Invoice routes (Orb's paths): list, fetch, upcoming, issue, mark_paid, void.
import { withTx, type Pool } from '@drawdown/pg';
import { ApiError, Problems, decodeCursor, encodeCursor, parseLimit, type Route } from '@drawdown/http';
import { billingDefaults } from './defaults';
import { invoiceDtoById, issueInvoice, markInvoicePaid, voidInvoice } from './invoices';
import { upcomingInvoice } from '../settlement/settle';
import type { UsageSource } from '../settlement/compute';

const STATUSES = new Set(['draft', 'issued', 'paid', 'void', 'synced']);

export function invoiceRoutes(pool: Pool, usage: UsageSource | undefined): Route[] {
  const list: Route['handler'] = async (req) => {
    const limit = parseLimit(req.query);
    const p = new Problems();
    const statuses = [...req.query.getAll('status'), ...req.query.getAll('status[]')].flatMap((s) => s.split(','));
    for (const s of statuses) if (!STATUSES.has(s)) p.add('status', `"${s}" is not one of draft, issued, paid, void`);
    const cursor = decodeCursor(req.query.get('cursor'));
    // Date filters: Orb's invoice_date[gt|gte|lt|lte] and due_date[gt|lt].
    const ranges: { col: string; op: string; value: Date }[] = [];
    for (const [param, col, op] of [
      ['invoice_date[gt]', 'invoice_date', '>'], ['invoice_date[gte]', 'invoice_date', '>='], ['invoice_date[lt]', 'invoice_date', '<'], ['invoice_date[lte]', 'invoice_date', '<='],
      ['due_date[gt]', 'due_date', '>'], ['due_date[lt]', 'due_date', '<'],
    ] as const) {
      const v = req.query.get(param);
      if (v === null) continue;
      if (Number.isNaN(Date.parse(v))) p.add(param, 'must be an ISO 8601 date or date-time');
      else ranges.push({ col, op, value: new Date(v) });
    }
    const recurring = req.query.get('is_recurring');
    if (recurring !== null && recurring !== 'true' && recurring !== 'false') p.add('is_recurring', 'must be true or false');
    p.throwIfAny('invoice list');
    let customerId = req.query.get('customer_id');
    const ext = req.query.get('external_customer_id');
    if (ext) {
      const c = await pool.query<{ id: string }>('SELECT id FROM customers WHERE external_customer_id = $1', [ext]);
      if (!c.rows[0]) return { body: { data: [], pagination_metadata: { has_more: false, next_cursor: null } } };
      customerId = c.rows[0].id;
    }
    const r = await pool.query<{ id: string; created_at: Date }>(
      `SELECT id, created_at FROM invoices
        WHERE ($1::text IS NULL OR customer_id = $1) AND ($2::text IS NULL OR subscription_id = $2)
          AND (cardinality($3::text[]) = 0 OR status = ANY($3::text[]))
          AND ($4::timestamptz IS NULL OR (created_at, id) < ($4::timestamptz, $5::text))
          AND ($7::boolean IS NULL OR (kind = 'settlement') = $7)
          ${ranges.map((r, i) => `AND ${r.col} ${r.op} $${8 + i}`).join(' ')}
        ORDER BY created_at DESC, id DESC LIMIT $6`,
      [customerId, req.query.get('subscription_id'), statuses, cursor ? String(cursor[0]) : null, cursor ? String(cursor[1]) : null, limit + 1,
        recurring === null ? null : recurring === 'true', ...ranges.map((r) => r.value)],
    );
    const hasMore = r.rows.length > limit;
    const rows = hasMore ? r.rows.slice(0, limit) : r.rows;
    const data = [];
    for (const row of rows) data.push(await invoiceDtoById(pool, row.id));
    const last = rows[rows.length - 1];
    return { body: { data, pagination_metadata: { has_more: hasMore, next_cursor: hasMore && last ? encodeCursor([last.created_at.toISOString(), last.id]) : null } } };
  };

  const upcoming: Route['handler'] = async (req) => {
    const sub = req.query.get('subscription_id');
    if (!sub) throw new ApiError('validation_failed', 'subscription_id: is required', [{ field: 'subscription_id', message: 'is required' }]);
    if (!usage) throw new ApiError('unavailable', 'the usage source (ClickHouse) is not configured in this process');
    return { body: await upcomingInvoice(pool, usage, sub, billingDefaults().now()) };
  };

  const transition = (fn: (id: string, body: Record<string, unknown>) => Promise<void>): Route['handler'] => async (req) => {
    const raw = req.body.length > 0 ? req.json() : {};
    const body = raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
    await fn(req.params.id!, body);
    return { body: await invoiceDtoById(pool, req.params.id!) };
  };

  return [
    { method: 'GET', path: '/v1/invoices', scope: 'read', handler: list },
    { method: 'GET', path: '/v1/invoices/upcoming', scope: 'read', handler: upcoming },
    { method: 'GET', path: '/v1/invoices/:id', scope: 'read', handler: async (req) => ({ body: await invoiceDtoById(pool, req.params.id!) }) },
    { method: 'POST', path: '/v1/invoices/:id/issue', scope: 'admin', handler: transition((id) => withTx(pool, (c) => issueInvoice(c, id, billingDefaults().now()))) },
    { method: 'POST', path: '/v1/invoices/:id/void', scope: 'admin', handler: transition((id) => withTx(pool, (c) => voidInvoice(c, id, billingDefaults().now()))) },
    {
      method: 'POST', path: '/v1/invoices/:id/mark_paid', scope: 'admin',
      handler: transition(async (id, b) => {
        const p = new Problems();
        if (typeof b.payment_received_date !== 'string' || Number.isNaN(Date.parse(b.payment_received_date))) p.add('payment_received_date', 'is required: a date (YYYY-MM-DD) or date-time');
        if (b.external_id !== undefined && b.external_id !== null && typeof b.external_id !== 'string') p.add('external_id', 'must be a string');
        if (b.notes !== undefined && b.notes !== null && typeof b.notes !== 'string') p.add('notes', 'must be a string');
        p.throwIfAny('mark_paid');
        await withTx(pool, (c) => markInvoicePaid(c, id, { paidAt: new Date(b.payment_received_date as string), externalId: (b.external_id as string | null) ?? null, notes: (b.notes as string | null) ?? null }));
      }),
    },
  ];
}
