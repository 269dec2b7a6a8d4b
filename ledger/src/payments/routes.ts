// Billing routes in one list for the ledger's route table: invoices, top-ups, scheduled
// purchases and the Stripe webhook.
import type { Pool } from '@drawdown/pg';
import { ApiError, type Route } from '@drawdown/http';
import type Stripe from 'stripe';
import { invoiceRoutes } from '../invoices/routes';
import { topUpRoutes } from '../topups/routes';
import { billingDefaults } from '../invoices/defaults';
import type { UsageSource } from '../settlement/compute';
import { handleStripeWebhook } from './collect';

export interface BillingRouteDeps {
  usage?: UsageSource;
  stripe?: Stripe;
  stripeWebhookSecret?: string;
}

export function billingRoutes(pool: Pool, deps: BillingRouteDeps = {}): Route[] {
  return [
    ...invoiceRoutes(pool, deps.usage),
    ...topUpRoutes(pool),
    {
      // Authenticated by Stripe's signature, not an API key.
      method: 'POST', path: '/v1/payments/stripe/webhook', scope: 'public',
      handler: async (req) => {
        if (!deps.stripe || !deps.stripeWebhookSecret) throw new ApiError('unavailable', 'Stripe is not configured (DRAWDOWN_STRIPE_API_KEY, DRAWDOWN_STRIPE_WEBHOOK_SECRET)');
        const r = await handleStripeWebhook(pool, deps.stripe, deps.stripeWebhookSecret, req.body, req.headers['stripe-signature'], billingDefaults().now());
        return { body: { received: true, applied: r.applied, type: r.type } };
      },
    },
  ];
}
