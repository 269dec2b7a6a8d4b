// The ledger service: the system of record in Postgres, the billing API routes, the debit
// consumer and the outbox relay.
import { fileURLToPath } from 'node:url';
import type { Config } from '@drawdown/config';
import type { Logger } from '@drawdown/log';
import { jetstream, names, type NatsConnection } from '@drawdown/nats';
import type { MigrationSet, Pool } from '@drawdown/pg';
import type { Route } from '@drawdown/http';
import { ledgerRoutes } from './http/routes';
import { startDebitConsumer, type DebitConsumer } from './credits/consumer';
import { startOutboxRelay, type OutboxRelay } from './outbox/outbox';
import { startCreditJobs, type CreditJobs } from './credits/expiry';
import { startVacuumJob } from './credits/vacuum';
import { startWebhookDispatcher, type WebhookDispatcher } from './webhooks/dispatcher';
import { startBalanceUpdatedCoalescer, type Coalescer } from './webhooks/coalescer';
import { AccessCache } from './access/cache';
import type { AccessMode } from './access/policies';
import { startBilling, type Billing } from './settlement/billing';
import type { UsageSource } from './settlement/compute';
import { announceRevocation } from '@drawdown/auth';

export { applyDebitBatches } from './credits/debits';
export { applyDebitBatchesInLanes, laneOf, startDebitConsumer } from './credits/consumer';
export { balancesOf } from './credits/queries';
export { addCrossingHook, BalanceTracker, type BalanceChange, type CrossingHook } from './credits/crossings';
export { incrementInTx, createLedgerEntry, activateBlock, type IncrementOptions } from './credits/entries';
export { idempotent, idempotentRoutes } from './http/idempotency';
export { expireDueBlocks, pruneLedger } from './credits/expiry';
export { vacuumHotTables, HOT_TABLES, type VacuumRound } from './credits/vacuum';
export { parseMetricSql } from './sql-metric';
export { seedCustomers, type SeedCustomersOptions } from './seed';
export { evaluateCrossings, subscriptionUsageTotals } from './alerts/evaluate';
export { setUnpaidOverage } from './access/policies';
export { startWebhookDispatcher, type WebhookDispatcher } from './webhooks/dispatcher';
export { writeOutbox, startOutboxRelay } from './outbox/outbox';
export type { UsageSource } from './settlement/compute';
export type { Billing, TickResult } from './settlement/billing';
export { startBilling } from './settlement/billing';
export { unpaidOverageRestriction } from './invoices/invoices';
export { setBillingDefaults, billingDefaults } from './invoices/defaults';
export type { UsageSource as SubscriptionUsageSource } from './catalog/routes';
import type { UsageSource as SubscriptionUsage } from './catalog/routes';

export const LEDGER_MIGRATIONS: MigrationSet = { service: 'ledger', dir: fileURLToPath(new URL('../migrations', import.meta.url)) };

export interface Ledger {
  routes: Route[];
  consumer: DebitConsumer;
  outbox: OutboxRelay;
  creditJobs: CreditJobs;
  /** Undefined when DRAWDOWN_WEBHOOK_DISPATCHER=false (it runs in another process). */
  webhooks: WebhookDispatcher | undefined;
  balanceUpdates: Coalescer;
  access: AccessCache;
  billing: Billing;
  stop(): Promise<void>;
}

export async function startLedger(opts: {
  config: Config; pool: Pool; nc: NatsConnection; log: Logger;
  /** Period usage for settlement and upcoming invoices (reporter). */
  usage?: UsageSource;
  /** Subscription usage for subscriptions.fetchUsage. */
  subscriptionUsage?: SubscriptionUsage;
}): Promise<Ledger> {
  const n = names(opts.config.namespace);
  const log = opts.log.child({ service: 'ledger' });
  const consumer = await startDebitConsumer({ nc: opts.nc, pool: opts.pool, stream: n.debitsStream, durable: 'ledger', batchMax: opts.config.ledgerBatchMax, lanes: opts.config.ledgerLanes, log });
  const outbox = startOutboxRelay({ pool: opts.pool, js: jetstream(opts.nc), subjectPrefix: n.notifySubjectPrefix, log });
  const creditJobs = startCreditJobs({
    pool: opts.pool,
    log,
    intervalMs: opts.config.ledgerExpiryIntervalMs,
    maxPairs: opts.config.ledgerExpiryMaxPairs,
    replayHorizonMs: opts.config.ledgerReplayHorizonMs,
    idempotencyTtlMs: opts.config.idempotencyTtlMs,
  });
  const vacuum = startVacuumJob({ pool: opts.pool, log, intervalMs: opts.config.ledgerVacuumIntervalMs });
  const webhooks = opts.config.webhookDispatcher ? await startWebhookDispatcher({ pool: opts.pool, nc: opts.nc, config: opts.config, log: log.child({ part: 'webhooks' }) }) : undefined;
  const balanceUpdates = startBalanceUpdatedCoalescer({ pool: opts.pool, intervalMs: opts.config.balanceUpdatedIntervalMs, log });
  const access = new AccessCache({ pool: opts.pool, log, pollMs: opts.config.accessPollMs, maxCustomers: opts.config.accessCacheMaxCustomers, catalogTtlMs: opts.config.accessCatalogTtlMs, defaultMode: opts.config.accessDefaultPolicy as AccessMode });
  await access.start();
  const catalogSub = opts.nc.subscribe(n.catalogSubject, { callback: () => access.catalogChanged() });
  const billing = startBilling({ pool: opts.pool, config: opts.config, usage: opts.usage, log });
  const routes = ledgerRoutes({
    pool: opts.pool,
    catalogChanged: () => {
      access.catalogChanged();
      opts.nc.publish(n.catalogSubject, '');
    },
    idempotency: { staleMs: opts.config.idempotencyStaleMs },
    access,
    webhookSecretGraceMs: opts.config.webhookSecretGraceMs,
    wakeWebhooks: () => webhooks?.wake(),
    billing: { usage: opts.usage, stripe: billing.stripe, stripeWebhookSecret: opts.config.stripeWebhookSecret },
    // The flush returns after the server has delivered the announcement back to this
    // connection's subscribers, so this process's edge has dropped the key before the reply.
    keyRevoked: async (keyId) => {
      announceRevocation(opts.nc, opts.config.namespace, keyId);
      await opts.nc.flush().catch(() => {});
    },
    usage: opts.subscriptionUsage,
    limits: {
      maxPricesPerPlan: opts.config.catalogMaxPricesPerPlan,
      maxPriceEntries: opts.config.catalogMaxPriceEntries,
      maxAdditionalEmails: opts.config.customerMaxAdditionalEmails,
      maxUsageBuckets: opts.config.usageMaxBuckets,
    },
  });
  return {
    routes,
    consumer,
    outbox,
    creditJobs,
    webhooks,
    balanceUpdates,
    access,
    billing,
    async stop() {
      await billing.stop();
      await consumer.stop();
      await creditJobs.stop();
      await vacuum.stop();
      await balanceUpdates.stop();
      await outbox.stop();
      catalogSub.unsubscribe();
      await access.stop();
      await webhooks?.stop();
    },
  };
}
