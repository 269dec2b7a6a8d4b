// The ledger's part of the billing API: each domain keeps its own routes file.
import type { Pool } from '@drawdown/pg';
import type { Route } from '@drawdown/http';
import { customerRoutes } from '../customers/routes';
import { creditRoutes } from '../credits/routes';
import { catalogRoutes } from '../catalog/routes';
import { keyRoutes } from '../keys/routes';

export interface LedgerRouteDeps {
  pool: Pool;
  /** Called after a committed catalog change (raters reload). */
  catalogChanged: () => void;
  /** Called after an API key revocation is committed (edges drop the key at once). */
  keyRevoked?: (keyId: string) => void | Promise<void>;
}

export function ledgerRoutes(deps: LedgerRouteDeps): Route[] {
  return [
    { method: 'GET', path: '/v1/ping', scope: 'read', handler: () => ({ body: { response: 'Orb is alive and well' } }) },
    ...customerRoutes(deps.pool),
    ...creditRoutes(deps.pool),
    ...catalogRoutes(deps.pool, deps.catalogChanged),
    ...keyRoutes(deps.pool, { keyRevoked: deps.keyRevoked }),
  ];
}
