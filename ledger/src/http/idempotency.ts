// Idempotency-Key on POSTs, for every domain's routes: ledgerRoutes wraps every POST route of
// the ledger with `idempotentRoutes` (nothing to do in a domain's routes file); a handler
// served elsewhere can be wrapped alone with `idempotent(pool, handler)`.
// - No header: the handler runs as usual.
// - First request with a key: a reservation row (status 0) is inserted, the handler runs, and
//   a 2xx answer is stored; an error answer removes the reservation (the client may retry).
// - Same key, same method + path + body: the stored answer is replayed (header
//   `Idempotent-Replayed: true`); while the first is still running: 409.
// - Same key, other body: 409 idempotency_conflict.
// Reservations older than DRAWDOWN_IDEMPOTENCY_STALE_MS (a crashed request) are taken over.
// Records are pruned after DRAWDOWN_IDEMPOTENCY_TTL_MS (ledger maintenance job).
import { createHash } from 'node:crypto';
import { ApiError, type Handler, type Reply, type Request, type Route } from '@drawdown/http';
import { stringifyJson } from '@drawdown/money';
import type { Pool } from '@drawdown/pg';

export interface IdempotencyOptions {
  /** A reservation older than this belongs to a request that died: it may be taken over. */
  staleMs: number;
}

const MAX_KEY_LENGTH = 255;

const wrapped = new WeakSet<Handler>();

/** Wraps every POST route (once: already wrapped handlers are left alone). */
export function idempotentRoutes(pool: Pool, routes: Route[], opts?: IdempotencyOptions): Route[] {
  return routes.map((r) => (r.method === 'POST' && !wrapped.has(r.handler) ? { ...r, handler: idempotent(pool, r.handler, opts) } : r));
}

export function idempotent(pool: Pool, handler: Handler, opts: IdempotencyOptions = { staleMs: 60_000 }): Handler {
  if (wrapped.has(handler)) return handler;
  const h = async (req: Request): Promise<Reply> => {
    const key = req.headers['idempotency-key'];
    if (key === undefined || key === '') return handler(req);
    if (key.length > MAX_KEY_LENGTH) {
      throw new ApiError('validation_failed', `Idempotency-Key: at most ${MAX_KEY_LENGTH} characters`, [{ field: 'Idempotency-Key', message: `at most ${MAX_KEY_LENGTH} characters` }]);
    }
    // The principal is part of the scope: two API keys never share a record.
    const scope = `${req.principal?.keyId ?? ''} ${req.method} ${req.path}`;
    const hash = createHash('sha256').update(req.body).digest();
    const reserved = await pool.query(
      `INSERT INTO idempotency_keys (key, scope, request_hash, status, response) VALUES ($1, $2, $3, 0, 'null')
       ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, created_at = now()
         WHERE idempotency_keys.status = 0 AND idempotency_keys.created_at < now() - $4 * interval '1 millisecond'
           AND idempotency_keys.request_hash = excluded.request_hash
       RETURNING 1`,
      [key, scope, hash, opts.staleMs],
    );
    if (reserved.rowCount === 0) {
      const r = await pool.query<{ request_hash: Buffer; status: number; response: string }>(
        'SELECT request_hash, status, response::text AS response FROM idempotency_keys WHERE scope = $1 AND key = $2',
        [scope, key],
      );
      const row = r.rows[0];
      if (!row) return idempotent(pool, handler, opts)(req); // pruned meanwhile: start over
      if (!row.request_hash.equals(hash)) {
        throw new ApiError('idempotency_conflict', 'Idempotency-Key: this key was used with a different request body', [{ field: 'Idempotency-Key', message: 'used with a different request body' }]);
      }
      if (row.status === 0) {
        throw new ApiError('idempotency_conflict', 'Idempotency-Key: the first request with this key is still being processed; retry later', [], { 'retry-after': '1' });
      }
      return { status: row.status, headers: { 'content-type': 'application/json', 'idempotent-replayed': 'true' }, body: row.response };
    }
    let reply: Reply;
    try {
      reply = await handler(req);
    } catch (err) {
      await pool.query('DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status = 0', [scope, key]).catch(() => {});
      throw err;
    }
    const status = reply.status ?? 200;
    if (status >= 200 && status < 300) {
      // Stored as JSON text with exact numbers (jsonb keeps numerics exact) and replayed as text.
      const text = reply.body === undefined ? 'null' : typeof reply.body === 'string' ? JSON.stringify(reply.body) : stringifyJson(reply.body);
      await pool.query('UPDATE idempotency_keys SET status = $3, response = $4::jsonb WHERE scope = $1 AND key = $2', [scope, key, status, text]);
    } else {
      await pool.query('DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status = 0', [scope, key]);
    }
    return reply;
  };
  wrapped.add(h);
  return h;
}
