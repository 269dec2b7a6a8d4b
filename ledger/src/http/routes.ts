// The ledger's part of the billing API: each domain keeps its own routes file.
import type { Pool } from '@drawdown/pg';
import type { Route } from '@drawdown/http';
import { customerRoutes } from '../customers/routes';
import { creditRoutes } from '../credits/routes';
import { catalogRoutes } from '../catalog/routes';
import { keyRoutes } from '../keys/routes';
import { alertRoutes } from '../alerts/routes';
import { webhookRoutes } from '../webhooks/routes';
import { accessRoutes } from '../access/routes';
import type { AccessCache } from '../access/cache';

export interface LedgerRouteDeps {
  pool: Pool;
  /** Called after a committed catalog change (raters reload). */
  catalogChanged: () => void;
  /** Alerts, webhooks and access control (issue 7). */
  access: AccessCache;
  webhookSecretGraceMs: number;
  wakeWebhooks?: () => void;
}

export function ledgerRoutes(deps: LedgerRouteDeps): Route[] {
  return [
    { method: 'GET', path: '/v1/ping', scope: 'read', handler: () => ({ body: { response: 'Orb is alive and well' } }) },
    ...customerRoutes(deps.pool),
    ...creditRoutes(deps.pool),
    ...catalogRoutes(deps.pool, deps.catalogChanged),
    ...keyRoutes(deps.pool),
    ...alertRoutes(deps.pool),
    ...webhookRoutes(deps.pool, { secretGraceMs: deps.webhookSecretGraceMs, wake: deps.wakeWebhooks }),
    ...accessRoutes(deps.pool, deps.access),
  ];
}
