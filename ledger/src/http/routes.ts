// The ledger's part of the billing API: each domain keeps its own routes file.
import type { Pool } from '@drawdown/pg';
import type { Route } from '@drawdown/http';
import { customerRoutes } from '../customers/routes';
import { creditRoutes } from '../credits/routes';
import { catalogRoutes, type CatalogLimits, type UsageSource } from '../catalog/routes';
import { keyRoutes } from '../keys/routes';

export interface LedgerRouteDeps {
  pool: Pool;
  /** Called after a committed catalog change (raters reload). */
  catalogChanged: () => void;
  /** Subscription usage quantities from the analytics store (absent: fetchUsage answers zeros). */
  usage?: UsageSource;
  /** Catalog input limits (settings); defaults when absent. */
  limits?: CatalogLimits;
}

export function ledgerRoutes(deps: LedgerRouteDeps): Route[] {
  return [
    { method: 'GET', path: '/v1/ping', scope: 'read', handler: () => ({ body: { response: 'Orb is alive and well' } }) },
    ...customerRoutes(deps.pool, deps.catalogChanged, deps.limits),
    ...creditRoutes(deps.pool),
    ...catalogRoutes(deps.pool, deps.catalogChanged, deps.usage, deps.limits),
    ...keyRoutes(deps.pool),
  ];
}
