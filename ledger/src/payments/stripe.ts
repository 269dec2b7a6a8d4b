// Stripe on the official SDK: customer (once), an invoice with one invoice item per line,
// finalize, then pay with the customer's default payment method on file. Every call carries
// an idempotency key derived from our ids, so re-running a collection after a crash replays
// Stripe's first answers instead of creating duplicates. Webhooks are verified with the SDK's
// signature check (constructEvent) before anything is read from them.
import Stripe from 'stripe';
import type { CollectInput, CollectResult, PaymentProvider } from './provider';

export interface StripeOptions {
  apiKey: string;
  /** Base URL override, e.g. http://127.0.0.1:12111 for a local stand-in; empty for api.stripe.com. */
  apiUrl?: string;
  maxNetworkRetries?: number;
}

export function stripeClient(opts: StripeOptions): Stripe {
  const config: ConstructorParameters<typeof Stripe>[1] = { maxNetworkRetries: opts.maxNetworkRetries ?? 2, telemetry: false, timeout: 20_000 };
  if (opts.apiUrl) {
    const u = new URL(opts.apiUrl);
    config.host = u.hostname;
    config.port = u.port || (u.protocol === 'http:' ? '80' : '443');
    config.protocol = u.protocol === 'http:' ? 'http' : 'https';
  }
  return new Stripe(opts.apiKey, config);
}

export class StripeProvider implements PaymentProvider {
  readonly name = 'stripe' as const;
  readonly client: Stripe;
  constructor(opts: StripeOptions) {
    this.client = stripeClient(opts);
  }

  async collect(input: CollectInput): Promise<CollectResult> {
    const s = this.client;
    const key = (what: string) => ({ idempotencyKey: `drawdown-${input.invoiceId}-${what}` });
    let customerId = input.customer.providerCustomerId;
    if (!customerId) {
      const c = await s.customers.create(
        { name: input.customer.name, email: input.customer.email, metadata: { drawdown_customer_id: input.customer.id } },
        { idempotencyKey: `drawdown-customer-${input.customer.id}` },
      );
      customerId = c.id;
    }
    const currency = input.currency.toLowerCase();
    const invoice = await s.invoices.create({
      customer: customerId,
      currency,
      collection_method: 'charge_automatically',
      auto_advance: false,
      pending_invoice_items_behavior: 'exclude',
      description: input.memo ?? undefined,
      metadata: { drawdown_invoice_id: input.invoiceId, invoice_number: input.invoiceNumber },
    }, key('invoice'));
    for (const [i, line] of input.lines.entries()) {
      if (line.amountMinor === 0n) continue;
      await s.invoiceItems.create({
        customer: customerId,
        invoice: invoice.id!,
        currency,
        amount: Number(line.amountMinor), // minor units; exact below 2^53 cents
        description: line.description,
      }, key(`item-${i + 1}`));
    }
    const finalized = await s.invoices.finalizeInvoice(invoice.id!, { auto_advance: false }, key('finalize'));
    try {
      const paid = await s.invoices.pay(finalized.id!, {}, key('pay'));
      return { providerCustomerId: customerId, providerInvoiceId: paid.id!, providerPaymentId: paid.id!, outcome: paid.status === 'paid' ? 'paid' : 'open' };
    } catch (err) {
      const e = err as { type?: string; message?: string };
      if (e.type === 'StripeCardError' || e.type === 'StripeInvalidRequestError') {
        return { providerCustomerId: customerId, providerInvoiceId: finalized.id!, providerPaymentId: null, outcome: 'failed', failureMessage: e.message ?? 'payment failed' };
      }
      throw err;
    }
  }
}
