// Payment providers: how an issued invoice with auto-collection gets paid. The collector
// (collect.ts) calls a provider outside any database transaction, with idempotency keys
// derived from the invoice id, so a retry after a crash never charges twice.
export interface CollectInput {
  invoiceId: string;
  invoiceNumber: string;
  customer: { id: string; name: string; email: string; providerCustomerId: string | null };
  currency: string;
  memo: string | null;
  /** Lines rounded to the minor unit, in minor units (cents). */
  lines: { description: string; amountMinor: bigint }[];
  totalMinor: bigint;
}

export interface CollectResult {
  /** The provider's customer id, stored on the customer for next time. */
  providerCustomerId: string | null;
  providerInvoiceId: string | null;
  providerPaymentId: string | null;
  /** paid: money received; open: awaiting payment (webhook or manual); failed: the attempt failed. */
  outcome: 'paid' | 'open' | 'failed';
  failureMessage?: string;
}

export interface PaymentProvider {
  readonly name: 'manual' | 'stripe';
  collect(input: CollectInput): Promise<CollectResult>;
}

/** Manual: nothing is charged; someone marks the invoice paid through the API (mark_paid). */
export const manualProvider: PaymentProvider = {
  name: 'manual',
  async collect() {
    return { providerCustomerId: null, providerInvoiceId: null, providerPaymentId: null, outcome: 'open' };
  },
};
