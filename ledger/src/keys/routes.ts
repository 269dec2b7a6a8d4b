// API key routes: create (the key is shown once), list and fetch (never the key), revoke.
import type { Pool } from '@drawdown/pg';
import { ApiError, Problems, decodeCursor, parseLimit, paginate, type Route, type Scope } from '@drawdown/http';
import { createApiKey, getApiKey, listApiKeys, revokeApiKey, SCOPES } from '@drawdown/auth';

const MAX_NAME_LENGTH = 200;

export interface KeyRouteDeps {
  /** Called after a revocation is committed: tells every edge to drop the key at once. */
  keyRevoked?: (keyId: string) => void | Promise<void>;
}

export function keyRoutes(pool: Pool, deps: KeyRouteDeps = {}): Route[] {
  const revoke = async (id: string) => {
    const info = await revokeApiKey(pool, id);
    if (!info) throw new ApiError('not_found', `no API key with id ${id}`);
    await deps.keyRevoked?.(info.id);
    return { status: 200, body: info };
  };
  return [
    {
      method: 'POST', path: '/v1/api_keys', scope: 'admin',
      handler: async (req) => {
        const b = req.json() as { name?: unknown; scopes?: unknown } | null;
        if (b === null || typeof b !== 'object' || Array.isArray(b)) throw new ApiError('invalid_body', 'body: must be a JSON object');
        const p = new Problems();
        if (typeof b.name !== 'string' || b.name.trim() === '') p.add('name', 'is required (a non-empty string)');
        else if (b.name.length > MAX_NAME_LENGTH) p.add('name', `is ${b.name.length} characters long, the limit is ${MAX_NAME_LENGTH}`);
        let scopes: Scope[] = ['ingest'];
        if (b.scopes !== undefined) {
          if (!Array.isArray(b.scopes) || b.scopes.length === 0) p.add('scopes', `must be a non-empty list of ${SCOPES.join(', ')}`);
          else {
            b.scopes.forEach((s, i) => {
              if (!SCOPES.includes(s as Scope)) p.add(`scopes[${i}]`, `must be one of ${SCOPES.join(', ')}, got ${JSON.stringify(s)}`);
            });
            scopes = b.scopes as Scope[];
          }
        }
        p.throwIfAny('API key');
        return { status: 201, body: await createApiKey(pool, b.name as string, scopes) };
      },
    },
    {
      method: 'GET', path: '/v1/api_keys', scope: 'admin',
      handler: async (req) => {
        const limit = parseLimit(req.query);
        const cursor = decodeCursor(req.query.get('cursor'));
        if (cursor && (cursor.length !== 2 || typeof cursor[0] !== 'string' || typeof cursor[1] !== 'string')) {
          throw new ApiError('validation_failed', 'cursor: not a cursor this API returned', [{ field: 'cursor', message: 'not a cursor this API returned' }]);
        }
        const rows = await listApiKeys(pool, limit, cursor ? { createdAt: cursor[0] as string, id: cursor[1] as string } : undefined);
        return { body: paginate(rows, limit, (r) => [r.createdAtExact, r.info.id], (r) => r.info) };
      },
    },
    {
      method: 'GET', path: '/v1/api_keys/:id', scope: 'admin',
      handler: async (req) => {
        const info = await getApiKey(pool, req.params.id!);
        if (!info) throw new ApiError('not_found', `no API key with id ${req.params.id}`);
        return { body: info };
      },
    },
    { method: 'DELETE', path: '/v1/api_keys/:id', scope: 'admin', handler: (req) => revoke(req.params.id!) },
    { method: 'POST', path: '/v1/api_keys/:id/revoke', scope: 'admin', handler: (req) => revoke(req.params.id!) },
  ];
}
