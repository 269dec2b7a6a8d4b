// The ledger's part of the billing API: each domain keeps its own routes file.
import type { Pool } from '@drawdown/pg';
import type { Route } from '@drawdown/http';
import { customerRoutes } from '../customers/routes';
import { creditRoutes } from '../credits/routes';
import { catalogRoutes, type CatalogLimits, type UsageSource } from '../catalog/routes';
import { keyRoutes } from '../keys/routes';
import { idempotentRoutes, type IdempotencyOptions } from './idempotency';
import { alertRoutes } from '../alerts/routes';
import { webhookRoutes } from '../webhooks/routes';
import { accessRoutes } from '../access/routes';
import type { AccessCache } from '../access/cache';
import { billingRoutes, type BillingRouteDeps } from '../payments/routes';

export interface LedgerRouteDeps {
  pool: Pool;
  /** Called after a committed catalog change (raters reload). */
  catalogChanged: () => void;
  /** Idempotency-Key settings (see ./idempotency.ts). */
  idempotency?: IdempotencyOptions;
  /** Alerts, webhooks and access control (issue 7). */
  access?: AccessCache;
  webhookSecretGraceMs?: number;
  wakeWebhooks?: () => void;
  /** Invoices, top-ups, payments (issue 8). */
  billing?: BillingRouteDeps;
  /** Called after an API key revocation is committed (edges drop the key at once). */
  keyRevoked?: (keyId: string) => void | Promise<void>;
  /** Subscription usage quantities from the analytics store (absent: fetchUsage answers zeros). */
  usage?: UsageSource;
  /** Catalog input limits (settings); defaults when absent. */
  limits?: CatalogLimits;
}

export function ledgerRoutes(deps: LedgerRouteDeps): Route[] {
  // Every POST honours Idempotency-Key (./idempotency.ts), whichever domain serves it; except
  // API key and webhook endpoint creation, whose answers hold a secret that must not be stored
  // for replay.
  return [
    { method: 'GET', path: '/v1/ping', scope: 'read', handler: () => ({ body: { response: 'Orb is alive and well' } }) },
    ...idempotentRoutes(deps.pool, [
      ...customerRoutes(deps.pool, deps.catalogChanged, deps.limits),
      ...creditRoutes(deps.pool),
      ...catalogRoutes(deps.pool, deps.catalogChanged, deps.usage, deps.limits),
      ...alertRoutes(deps.pool),
    ], deps.idempotency),
    ...keyRoutes(deps.pool, { keyRevoked: deps.keyRevoked }),
    ...webhookRoutes(deps.pool, { secretGraceMs: deps.webhookSecretGraceMs ?? 86_400_000, wake: deps.wakeWebhooks }),
    ...(deps.access ? accessRoutes(deps.pool, deps.access) : []),
    ...billingRoutes(deps.pool, deps.billing),
  ];
}
