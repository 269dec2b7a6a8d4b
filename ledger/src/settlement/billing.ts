// The billing scheduler: one pass (tick) grants recurring allocations, runs scheduled
// purchases, turns top-up intents into purchases, settles periods past their grace and sends
// issued invoices to the payment provider. Each step is idempotent and bounded
// (DRAWDOWN_BILLING_BATCH_MAX per step), so passes may overlap replicas or repeat after a crash.
import type { Config } from '@drawdown/config';
import type { Logger } from '@drawdown/log';
import type { Pool } from '@drawdown/pg';
import Stripe from 'stripe';
import { billingDefaults, setBillingDefaults } from '../invoices/defaults';
import { processTopUpIntents } from '../topups/topups';
import { runScheduledPurchases } from '../topups/scheduled';
import { collectPayments } from '../payments/collect';
import { manualProvider, type PaymentProvider } from '../payments/provider';
import { StripeProvider } from '../payments/stripe';
import { grantAllocations } from './allocations';
import { settleDuePeriods } from './settle';
import type { UsageSource } from './compute';

export interface TickResult {
  allocations: number;
  scheduledPurchases: number;
  topUps: number;
  settled: number;
  collected: number;
}

export interface Billing {
  provider: PaymentProvider;
  stripe: Stripe | undefined;
  /** One pass at `now` (default: the billing clock). */
  tick(now?: Date): Promise<TickResult>;
  stop(): Promise<void>;
}

export function paymentProviderFor(config: Config): PaymentProvider {
  if (config.paymentProvider === 'stripe') {
    if (!config.stripeApiKey) throw new Error('DRAWDOWN_PAYMENT_PROVIDER=stripe needs DRAWDOWN_STRIPE_API_KEY');
    return new StripeProvider({ apiKey: config.stripeApiKey, apiUrl: config.stripeApiUrl || undefined });
  }
  if (config.paymentProvider !== 'manual') throw new Error(`DRAWDOWN_PAYMENT_PROVIDER: must be manual or stripe, got "${config.paymentProvider}"`);
  return manualProvider;
}

export function startBilling(opts: { pool: Pool; config: Config; usage?: UsageSource; log: Logger; provider?: PaymentProvider; timer?: boolean }): Billing {
  const { pool, config, log } = opts;
  setBillingDefaults({ currency: config.billingDefaultCurrency, netTerms: config.billingDefaultNetTerms, autoIssue: config.billingAutoIssue });
  const provider = opts.provider ?? paymentProviderFor(config);
  const stripe = provider instanceof StripeProvider ? provider.client : undefined;
  const limit = config.billingBatchMax;
  let running: Promise<TickResult> | undefined;

  const pass = async (now: Date): Promise<TickResult> => {
    const allocations = await grantAllocations(pool, { now, limit });
    const scheduledPurchases = await runScheduledPurchases(pool, { now, limit });
    const topUps = await processTopUpIntents(pool, { now, limit });
    const settled = opts.usage ? (await settleDuePeriods(pool, opts.usage, { now, graceMs: config.ingestGraceMs, limit })).length : 0;
    const collected = await collectPayments(pool, provider, { now, limit, retryAfterMs: config.billingCollectionRetryMs, log });
    return { allocations, scheduledPurchases, topUps, settled, collected };
  };

  const tick = async (now?: Date): Promise<TickResult> => {
    while (running) await running.catch(() => undefined);
    running = pass(now ?? billingDefaults().now());
    try {
      return await running;
    } finally {
      running = undefined;
    }
  };

  const timer = opts.timer === false ? undefined : setInterval(() => {
    if (running) return;
    tick().catch((err) => log.error('billing pass failed; will retry', { err }));
  }, config.billingTickMs);
  timer?.unref();

  return {
    provider,
    stripe,
    tick,
    async stop() {
      if (timer) clearInterval(timer);
      while (running) await running.catch(() => undefined);
    },
  };
}
