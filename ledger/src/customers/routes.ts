// Customer routes (Orb's paths, also by external_customer_id).
import type { Pool } from '@drawdown/pg';
import type { Route, Request } from '@drawdown/http';
import { createCustomer, customerView, findCustomer, listCustomers, updateCustomer } from './customers';
import { DEFAULT_LIMITS, exactJson, type CatalogLimits } from '../catalog/input';

export function customerRef(req: Request): { id?: string; externalId?: string } {
  if (req.params.externalId !== undefined) return { externalId: req.params.externalId };
  return { id: req.params.id! };
}

export function customerRoutes(pool: Pool, catalogChanged: () => void = () => {}, limits: CatalogLimits = DEFAULT_LIMITS): Route[] {
  const fetch = async (req: Request) => ({ body: await customerView(pool, await findCustomer(pool, customerRef(req))) });
  const update = async (req: Request) => {
    const body = await updateCustomer(pool, customerRef(req), exactJson(req), limits);
    catalogChanged();
    return { body };
  };
  return [
    {
      method: 'POST', path: '/v1/customers', scope: 'admin', handler: async (req) => {
        const body = await createCustomer(pool, exactJson(req), limits);
        catalogChanged();
        return { status: 201, body };
      },
    },
    { method: 'GET', path: '/v1/customers', scope: 'read', handler: async (req) => ({ body: await listCustomers(pool, req.query) }) },
    { method: 'GET', path: '/v1/customers/:id', scope: 'read', handler: fetch },
    { method: 'PUT', path: '/v1/customers/:id', scope: 'admin', handler: update },
    { method: 'GET', path: '/v1/customers/external_customer_id/:externalId', scope: 'read', handler: fetch },
    { method: 'PUT', path: '/v1/customers/external_customer_id/:externalId', scope: 'admin', handler: update },
  ];
}
