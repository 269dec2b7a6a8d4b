// Webhook endpoint routes (Drawdown's own, Orb style) under /v1/webhook_endpoints.
import type { Pool } from '@drawdown/pg';
import type { Route } from '@drawdown/http';
import { createEndpoint, deleteEndpoint, getEndpoint, listAttempts, listEndpoints, redeliver, rotateSecret, updateEndpoint } from './endpoints';

export function webhookRoutes(pool: Pool, opts: { secretGraceMs: number; wake?: () => void }): Route[] {
  const base = '/v1/webhook_endpoints';
  return [
    { method: 'POST', path: base, scope: 'admin', handler: async (req) => ({ status: 201, body: await createEndpoint(pool, req.json()) }) },
    { method: 'GET', path: base, scope: 'admin', handler: async (req) => ({ body: await listEndpoints(pool, req.query) }) },
    { method: 'GET', path: `${base}/:id`, scope: 'admin', handler: async (req) => ({ body: await getEndpoint(pool, req.params.id!) }) },
    { method: 'PUT', path: `${base}/:id`, scope: 'admin', handler: async (req) => {
      const out = await updateEndpoint(pool, req.params.id!, req.json());
      opts.wake?.();
      return { body: out };
    } },
    { method: 'DELETE', path: `${base}/:id`, scope: 'admin', handler: async (req) => {
      await deleteEndpoint(pool, req.params.id!);
      return { status: 204 };
    } },
    { method: 'POST', path: `${base}/:id/rotate_secret`, scope: 'admin', handler: async (req) => ({ body: await rotateSecret(pool, req.params.id!, opts.secretGraceMs) }) },
    { method: 'GET', path: `${base}/:id/deliveries`, scope: 'admin', handler: async (req) => ({ body: await listAttempts(pool, req.params.id!, req.query) }) },
    { method: 'POST', path: `${base}/:id/redeliver`, scope: 'admin', handler: async (req) => {
      const out = await redeliver(pool, req.params.id!, req.json());
      opts.wake?.();
      return { status: 202, body: out };
    } },
  ];
}
