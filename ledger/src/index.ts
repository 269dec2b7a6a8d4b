// The ledger service: the system of record in Postgres, the billing API routes, the debit
// consumer and the outbox relay.
import { fileURLToPath } from 'node:url';
import type { Config } from '@drawdown/config';
import type { Logger } from '@drawdown/log';
import { jetstream, names, type NatsConnection } from '@drawdown/nats';
import type { MigrationSet, Pool } from '@drawdown/pg';
import type { Route } from '@drawdown/http';
import { ledgerRoutes } from './http/routes';
import type { UsageSource } from './catalog/routes';
import { startDebitConsumer, type DebitConsumer } from './credits/consumer';
import { startOutboxRelay, type OutboxRelay } from './outbox/outbox';

export { applyDebitBatches } from './credits/debits';
export { balancesOf } from './credits/grants';
export { parseMetricSql } from './sql-metric';
export type { UsageSource } from './catalog/routes';

export const LEDGER_MIGRATIONS: MigrationSet = { service: 'ledger', dir: fileURLToPath(new URL('../migrations', import.meta.url)) };

export interface Ledger {
  routes: Route[];
  consumer: DebitConsumer;
  outbox: OutboxRelay;
  stop(): Promise<void>;
}

export async function startLedger(opts: { config: Config; pool: Pool; nc: NatsConnection; log: Logger; usage?: UsageSource }): Promise<Ledger> {
  const n = names(opts.config.namespace);
  const log = opts.log.child({ service: 'ledger' });
  const consumer = await startDebitConsumer({ nc: opts.nc, pool: opts.pool, stream: n.debitsStream, durable: 'ledger', batchMax: opts.config.ledgerBatchMax, log });
  const outbox = startOutboxRelay({ pool: opts.pool, js: jetstream(opts.nc), subjectPrefix: n.notifySubjectPrefix, log });
  const routes = ledgerRoutes({
    pool: opts.pool,
    catalogChanged: () => opts.nc.publish(n.catalogSubject, ''),
    usage: opts.usage,
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
    async stop() {
      await consumer.stop();
      await outbox.stop();
    },
  };
}
