// Credit routes (Orb's paths under /v1/customers/{id}/credits, also by external_customer_id).
import type { Pool } from '@drawdown/pg';
import { parseLimit, type Route, type Request } from '@drawdown/http';
import { findCustomer } from '../customers/customers';
import { customerRef } from '../customers/routes';
import { balancesOf, createIncrement, listBlocks, parseLedgerEntry } from './grants';

export function creditRoutes(pool: Pool): Route[] {
  const credits = async (req: Request) => {
    const customer = await findCustomer(pool, customerRef(req));
    const limit = parseLimit(req.query);
    const rows = await listBlocks(pool, customer.id, {
      currency: req.query.get('currency') ?? undefined,
      includeAllBlocks: req.query.get('include_all_blocks') === 'true',
      limit,
      after: req.query.get('cursor') ?? undefined,
    });
    const hasMore = rows.length > limit;
    const data = hasMore ? rows.slice(0, limit) : rows;
    return { body: { data, pagination_metadata: { has_more: hasMore, next_cursor: hasMore ? data[data.length - 1]!.id : null } } };
  };

  const ledgerEntry = async (req: Request) => {
    const customer = await findCustomer(pool, customerRef(req));
    const { input } = parseLedgerEntry(req.json());
    const entry = await createIncrement(pool, customer, input);
    return { status: 201, body: entry };
  };

  const balance = async (req: Request) => {
    const customer = await findCustomer(pool, customerRef(req));
    const data = await balancesOf(pool, customer.id);
    return { body: { customer_id: customer.id, external_customer_id: customer.external_customer_id, data } };
  };

  const forPrefix = (prefix: string): Route[] => [
    { method: 'GET', path: `${prefix}/credits`, scope: 'read', handler: credits },
    { method: 'GET', path: `${prefix}/credits/balance`, scope: 'read', handler: balance },
    { method: 'POST', path: `${prefix}/credits/ledger_entry`, scope: 'admin', handler: ledgerEntry },
  ];
  return [...forPrefix('/v1/customers/:id'), ...forPrefix('/v1/customers/external_customer_id/:externalId')];
}
