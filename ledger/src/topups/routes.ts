// Top-up routes (Orb's customers.credits.topUps, also by external id) and scheduled purchases.
import type { Pool } from '@drawdown/pg';
import { parseLimit, type Request, type Route } from '@drawdown/http';
import { findCustomer } from '../customers/customers';
import { billingDefaults } from '../invoices/defaults';
import { createTopUp, deleteTopUp, listTopUps, parseTopUp, topUpDto } from './topups';
import { createScheduledPurchase, deleteScheduledPurchase, listScheduledPurchases } from './scheduled';

function ref(req: Request): { id?: string; externalId?: string } {
  if (req.params.externalId !== undefined) return { externalId: req.params.externalId };
  return { id: req.params.id! };
}

export function topUpRoutes(pool: Pool): Route[] {
  const forPrefix = (prefix: string): Route[] => [
    {
      method: 'POST', path: `${prefix}/credits/top_ups`, scope: 'admin',
      handler: async (req) => {
        const customer = await findCustomer(pool, ref(req));
        return { status: 201, body: await createTopUp(pool, customer.id, parseTopUp(req.json(), billingDefaults().now())) };
      },
    },
    {
      method: 'GET', path: `${prefix}/credits/top_ups`, scope: 'read',
      handler: async (req) => {
        const customer = await findCustomer(pool, ref(req));
        const limit = parseLimit(req.query);
        const rows = await listTopUps(pool, customer.id, limit, req.query.get('cursor') ?? undefined);
        const hasMore = rows.length > limit;
        const data = (hasMore ? rows.slice(0, limit) : rows).map(topUpDto);
        return { body: { data, pagination_metadata: { has_more: hasMore, next_cursor: hasMore ? String(data[data.length - 1]!.id) : null } } };
      },
    },
    {
      method: 'DELETE', path: `${prefix}/credits/top_ups/:topUpId`, scope: 'admin',
      handler: async (req) => {
        const customer = await findCustomer(pool, ref(req));
        await deleteTopUp(pool, customer.id, req.params.topUpId!);
        return { status: 204 };
      },
    },
    {
      method: 'POST', path: `${prefix}/credits/scheduled_purchases`, scope: 'admin',
      handler: async (req) => {
        const customer = await findCustomer(pool, ref(req));
        return { status: 201, body: await createScheduledPurchase(pool, customer.id, req.json(), billingDefaults().now()) };
      },
    },
    {
      method: 'GET', path: `${prefix}/credits/scheduled_purchases`, scope: 'read',
      handler: async (req) => {
        const customer = await findCustomer(pool, ref(req));
        return { body: { data: await listScheduledPurchases(pool, customer.id), pagination_metadata: { has_more: false, next_cursor: null } } };
      },
    },
    {
      method: 'DELETE', path: `${prefix}/credits/scheduled_purchases/:purchaseId`, scope: 'admin',
      handler: async (req) => {
        const customer = await findCustomer(pool, ref(req));
        await deleteScheduledPurchase(pool, customer.id, req.params.purchaseId!);
        return { status: 204 };
      },
    },
  ];
  return [...forPrefix('/v1/customers/:id'), ...forPrefix('/v1/customers/external_customer_id/:externalId')];
}
