// Catalog routes: items, metrics, plans, subscriptions. Every write bumps the catalog
// version in its transaction and, after commit, announces it (raters reload).
import type { Pool } from '@drawdown/pg';
import type { Route, Request } from '@drawdown/http';
import { createItem, createMetric, createPlan, createSubscription } from './catalog';

export function catalogRoutes(pool: Pool, catalogChanged: () => void): Route[] {
  const write = (fn: (body: unknown) => Promise<Record<string, unknown>>) => async (req: Request) => {
    const out = await fn(req.json());
    catalogChanged();
    return { status: 201, body: out };
  };
  return [
    { method: 'POST', path: '/v1/items', scope: 'admin', handler: write((b) => createItem(pool, b)) },
    { method: 'POST', path: '/v1/metrics', scope: 'admin', handler: write((b) => createMetric(pool, b)) },
    { method: 'POST', path: '/v1/plans', scope: 'admin', handler: write((b) => createPlan(pool, b)) },
    { method: 'POST', path: '/v1/subscriptions', scope: 'admin', handler: write((b) => createSubscription(pool, b)) },
  ];
}
