// Catalog routes: items, metrics, pricing units, plans (and price versions), subscriptions.
// Every write bumps the catalog version in its transaction and, after commit, announces it
// (raters reload).
import type { Pool } from '@drawdown/pg';
import type { Route, Request, Reply } from '@drawdown/http';
import {
  createItem, createMetric, createPricingUnit, fetchItem, fetchMetric, fetchPricingUnit, listItems, listMetrics, listPricingUnits,
  updateItem, updateMetric, updatePricingUnit,
} from './items';
import { createPlan, createPriceVersion, fetchPlan, listPlans, updatePlan } from './plans';
import { cancelSubscription, createSubscription, fetchUsage, findSubscription, listSubscriptions, subscriptionView, type UsageSource } from './subscriptions';

import { DEFAULT_LIMITS, exactJson, type CatalogLimits } from './input';

export type { UsageSource, CatalogLimits };

export function catalogRoutes(pool: Pool, catalogChanged: () => void, usage?: UsageSource, limits: CatalogLimits = DEFAULT_LIMITS): Route[] {
  const write = (status: number, fn: (req: Request) => Promise<Record<string, unknown>>) => async (req: Request): Promise<Reply> => {
    const body = await fn(req);
    catalogChanged();
    return { status, body };
  };
  const read = (fn: (req: Request) => Promise<Record<string, unknown>>) => async (req: Request): Promise<Reply> => ({ body: await fn(req) });
  const planRef = (req: Request) => (req.params.externalPlanId !== undefined ? { externalId: req.params.externalPlanId } : { id: req.params.id! });
  return [
    { method: 'POST', path: '/v1/items', scope: 'admin', handler: write(201, (r) => createItem(pool, exactJson(r))) },
    { method: 'GET', path: '/v1/items', scope: 'read', handler: read((r) => listItems(pool, r.query)) },
    { method: 'GET', path: '/v1/items/:id', scope: 'read', handler: read((r) => fetchItem(pool, r.params.id!)) },
    { method: 'PUT', path: '/v1/items/:id', scope: 'admin', handler: write(200, (r) => updateItem(pool, r.params.id!, exactJson(r))) },

    { method: 'POST', path: '/v1/metrics', scope: 'admin', handler: write(201, (r) => createMetric(pool, exactJson(r))) },
    { method: 'GET', path: '/v1/metrics', scope: 'read', handler: read((r) => listMetrics(pool, r.query)) },
    { method: 'GET', path: '/v1/metrics/:id', scope: 'read', handler: read((r) => fetchMetric(pool, r.params.id!)) },
    { method: 'PUT', path: '/v1/metrics/:id', scope: 'admin', handler: read((r) => updateMetric(pool, r.params.id!, exactJson(r))) },

    { method: 'POST', path: '/v1/pricing_units', scope: 'admin', handler: write(201, (r) => createPricingUnit(pool, exactJson(r))) },
    { method: 'GET', path: '/v1/pricing_units', scope: 'read', handler: read((r) => listPricingUnits(pool, r.query)) },
    { method: 'GET', path: '/v1/pricing_units/:name', scope: 'read', handler: read((r) => fetchPricingUnit(pool, r.params.name!)) },
    { method: 'PUT', path: '/v1/pricing_units/:name', scope: 'admin', handler: write(200, (r) => updatePricingUnit(pool, r.params.name!, exactJson(r))) },

    { method: 'POST', path: '/v1/plans', scope: 'admin', handler: write(201, (r) => createPlan(pool, exactJson(r), limits)) },
    { method: 'GET', path: '/v1/plans', scope: 'read', handler: read((r) => listPlans(pool, r.query)) },
    { method: 'GET', path: '/v1/plans/:id', scope: 'read', handler: read((r) => fetchPlan(pool, planRef(r))) },
    { method: 'PUT', path: '/v1/plans/:id', scope: 'admin', handler: write(200, (r) => updatePlan(pool, planRef(r), exactJson(r))) },
    { method: 'GET', path: '/v1/plans/external_plan_id/:externalPlanId', scope: 'read', handler: read((r) => fetchPlan(pool, planRef(r))) },
    { method: 'PUT', path: '/v1/plans/external_plan_id/:externalPlanId', scope: 'admin', handler: write(200, (r) => updatePlan(pool, planRef(r), exactJson(r))) },
    { method: 'POST', path: '/v1/plans/:id/prices/:priceId/versions', scope: 'admin', handler: write(201, (r) => createPriceVersion(pool, r.params.id!, r.params.priceId!, exactJson(r), limits)) },

    { method: 'POST', path: '/v1/subscriptions', scope: 'admin', handler: write(201, (r) => createSubscription(pool, exactJson(r), limits)) },
    { method: 'GET', path: '/v1/subscriptions', scope: 'read', handler: read((r) => listSubscriptions(pool, r.query)) },
    { method: 'GET', path: '/v1/subscriptions/:id', scope: 'read', handler: read(async (r) => subscriptionView(pool, await findSubscription(pool, r.params.id!))) },
    { method: 'POST', path: '/v1/subscriptions/:id/cancel', scope: 'admin', handler: write(200, (r) => cancelSubscription(pool, r.params.id!, exactJson(r))) },
    { method: 'GET', path: '/v1/subscriptions/:id/usage', scope: 'read', handler: read((r) => fetchUsage(pool, r.params.id!, r.query, usage, limits)) },
  ];
}
