// Customer routes (Orb's paths, also by external_customer_id).
import type { Pool } from '@drawdown/pg';
import type { Route, Request } from '@drawdown/http';
import { createCustomer, customerDto, findCustomer } from './customers';

export function customerRef(req: Request): { id?: string; externalId?: string } {
  if (req.params.externalId !== undefined) return { externalId: req.params.externalId };
  return { id: req.params.id! };
}

export function customerRoutes(pool: Pool): Route[] {
  return [
    { method: 'POST', path: '/v1/customers', scope: 'admin', handler: async (req) => ({ status: 201, body: customerDto(await createCustomer(pool, req.json())) }) },
    { method: 'GET', path: '/v1/customers/:id', scope: 'read', handler: async (req) => ({ body: customerDto(await findCustomer(pool, customerRef(req))) }) },
    { method: 'GET', path: '/v1/customers/external_customer_id/:externalId', scope: 'read', handler: async (req) => ({ body: customerDto(await findCustomer(pool, customerRef(req))) }) },
  ];
}
