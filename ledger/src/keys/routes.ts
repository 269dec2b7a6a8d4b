// API key routes: create (the key is shown once), list, revoke.
import type { Pool } from '@drawdown/pg';
import { ApiError, type Route, type Scope } from '@drawdown/http';
import { createApiKey, SCOPES } from '@drawdown/auth';

export function keyRoutes(pool: Pool): Route[] {
  return [
    {
      method: 'POST', path: '/v1/api_keys', scope: 'admin',
      handler: async (req) => {
        const b = req.json() as { name?: unknown; scopes?: unknown };
        const scopes = Array.isArray(b.scopes) ? b.scopes : ['ingest'];
        const bad = scopes.filter((s) => !SCOPES.includes(s as Scope));
        if (typeof b.name !== 'string' || b.name === '' || bad.length > 0 || scopes.length === 0) {
          throw new ApiError('validation_failed', 'invalid API key', [
            ...(typeof b.name !== 'string' || b.name === '' ? [{ field: 'name', message: 'is required' }] : []),
            ...(bad.length > 0 || scopes.length === 0 ? [{ field: 'scopes', message: `must be a non-empty list of ${SCOPES.join(', ')}` }] : []),
          ]);
        }
        return { status: 201, body: await createApiKey(pool, b.name, scopes as Scope[]) };
      },
    },
  ];
}
