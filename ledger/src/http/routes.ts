// The ledger's part of the billing API (Orb's paths), as routes for @drawdown/http.
import type { Pool } from '@drawdown/pg';
import { ApiError, parseLimit, type Route, type Request } from '@drawdown/http';
import { createApiKey, SCOPES } from '@drawdown/auth';
import type { Scope } from '@drawdown/http';
import { createCustomer, customerDto, findCustomer } from '../customers/customers';
import { createItem, createMetric, createPlan, createSubscription } from '../catalog/catalog';
import { balancesOf, createIncrement, listBlocks, parseLedgerEntry } from '../credits/grants';

export interface LedgerRouteDeps {
  pool: Pool;
  /** Called after a committed catalog change (raters reload). */
  catalogChanged: () => void;
}

function customerRef(req: Request): { id?: string; externalId?: string } {
  if (req.params.externalId !== undefined) return { externalId: req.params.externalId };
  return { id: req.params.id! };
}

export function ledgerRoutes(deps: LedgerRouteDeps): Route[] {
  const { pool } = deps;
  const catalogWrite = (fn: (body: unknown) => Promise<Record<string, unknown>>) => async (req: Request) => {
    const out = await fn(req.json());
    deps.catalogChanged();
    return { status: 201, body: out };
  };

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

  const customerRoutes = (prefix: string): Route[] => [
    { method: 'GET', path: `${prefix}`, scope: 'read', handler: async (req) => ({ body: customerDto(await findCustomer(pool, customerRef(req))) }) },
    { method: 'GET', path: `${prefix}/credits`, scope: 'read', handler: credits },
    { method: 'GET', path: `${prefix}/credits/balance`, scope: 'read', handler: balance },
    { method: 'POST', path: `${prefix}/credits/ledger_entry`, scope: 'admin', handler: ledgerEntry },
  ];

  return [
    { method: 'GET', path: '/v1/ping', scope: 'read', handler: () => ({ body: { response: 'Orb is alive and well' } }) },
    { method: 'POST', path: '/v1/customers', scope: 'admin', handler: async (req) => ({ status: 201, body: customerDto(await createCustomer(pool, req.json())) }) },
    ...customerRoutes('/v1/customers/:id'),
    ...customerRoutes('/v1/customers/external_customer_id/:externalId'),
    { method: 'POST', path: '/v1/items', scope: 'admin', handler: catalogWrite((b) => createItem(pool, b)) },
    { method: 'POST', path: '/v1/metrics', scope: 'admin', handler: catalogWrite((b) => createMetric(pool, b)) },
    { method: 'POST', path: '/v1/plans', scope: 'admin', handler: catalogWrite((b) => createPlan(pool, b)) },
    { method: 'POST', path: '/v1/subscriptions', scope: 'admin', handler: catalogWrite((b) => createSubscription(pool, b)) },
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
