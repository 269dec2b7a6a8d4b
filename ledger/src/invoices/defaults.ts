// Billing defaults from the configuration, set once when the ledger starts, read by code
// paths that have no config at hand (the credits domain's increment hook). `now` is the
// clock: scenario tests replace it.
export interface BillingDefaults {
  currency: string;
  netTerms: number;
  autoIssue: boolean;
  now: () => Date;
}

let current: BillingDefaults = { currency: 'USD', netTerms: 0, autoIssue: true, now: () => new Date() };

export function billingDefaults(): BillingDefaults {
  return current;
}

export function setBillingDefaults(d: Partial<BillingDefaults>): void {
  current = { ...current, ...d };
}
