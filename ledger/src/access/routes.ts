// Access control routes (Drawdown's own): the check, and policies per customer or subscription.
import type { Pool } from '@drawdown/pg';
import { ApiError, type Route, type Request } from '@drawdown/http';
import { findCustomer } from '../customers/customers';
import { customerRef } from '../customers/routes';
import type { AccessCache } from './cache';
import { deletePolicy, getPolicy, parsePolicy, putPolicy } from './policies';

export function accessRoutes(pool: Pool, cache: AccessCache): Route[] {
  const check = async (req: Request) => {
    const metricId = req.query.get('metric') ?? req.query.get('metric_id') ?? undefined;
    const pricingUnit = req.query.get('pricing_unit') ?? req.query.get('currency') ?? undefined;
    return { body: await cache.check(customerRef(req), { metricId, pricingUnit }) };
  };
  const customerPolicy = (method: 'GET' | 'PUT' | 'DELETE') => async (req: Request) => {
    const c = await findCustomer(pool, customerRef(req));
    if (method === 'GET') return { body: await getPolicy(pool, { customerId: c.id }) };
    if (method === 'DELETE') {
      await deletePolicy(pool, { customerId: c.id });
      cache.invalidate(c.id);
      return { status: 204 };
    }
    const out = await putPolicy(pool, { customerId: c.id }, parsePolicy(req.json()));
    cache.invalidate(c.id);
    return { body: out };
  };
  const subscriptionPolicy = (method: 'GET' | 'PUT' | 'DELETE') => async (req: Request) => {
    const s = await pool.query<{ customer_id: string }>('SELECT customer_id FROM subscriptions WHERE id = $1', [req.params.id]);
    if (s.rowCount === 0) throw new ApiError('not_found', `subscription ${req.params.id} not found`);
    const scope = { subscriptionId: req.params.id! };
    if (method === 'GET') return { body: await getPolicy(pool, scope) };
    if (method === 'DELETE') {
      await deletePolicy(pool, scope);
      cache.invalidate(s.rows[0]!.customer_id);
      return { status: 204 };
    }
    const out = await putPolicy(pool, scope, parsePolicy(req.json()));
    cache.invalidate(s.rows[0]!.customer_id);
    return { body: out };
  };
  const forPrefix = (prefix: string): Route[] => [
    { method: 'GET', path: `${prefix}/access`, scope: 'read', handler: check, name: `${prefix}/access` },
    { method: 'GET', path: `${prefix}/access_policy`, scope: 'read', handler: customerPolicy('GET') },
    { method: 'PUT', path: `${prefix}/access_policy`, scope: 'admin', handler: customerPolicy('PUT') },
    { method: 'DELETE', path: `${prefix}/access_policy`, scope: 'admin', handler: customerPolicy('DELETE') },
  ];
  return [
    ...forPrefix('/v1/customers/:id'),
    ...forPrefix('/v1/customers/external_customer_id/:externalId'),
    { method: 'GET', path: '/v1/subscriptions/:id/access_policy', scope: 'read', handler: subscriptionPolicy('GET') },
    { method: 'PUT', path: '/v1/subscriptions/:id/access_policy', scope: 'admin', handler: subscriptionPolicy('PUT') },
    { method: 'DELETE', path: '/v1/subscriptions/:id/access_policy', scope: 'admin', handler: subscriptionPolicy('DELETE') },
  ];
}
