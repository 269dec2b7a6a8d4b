// Billing periods anchored at the subscription start: [start + k cadences, start + (k+1)).
// Month arithmetic is in UTC and clamps to the month's last day (Jan 31 + 1 month = Feb 28/29),
// always from the anchor so days do not drift. When packages/catalog's billingPeriods (issue 6)
// lands, this is the one place to switch to it (the customer's time zone).
export type Cadence = 'monthly' | 'quarterly' | 'semi_annual' | 'annual';

const MONTHS: Record<Cadence, number> = { monthly: 1, quarterly: 3, semi_annual: 6, annual: 12 };

export function addMonths(anchor: Date, months: number): Date {
  const y = anchor.getUTCFullYear();
  const m = anchor.getUTCMonth() + months;
  const lastDay = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  const d = new Date(anchor);
  d.setUTCFullYear(y, m, Math.min(anchor.getUTCDate(), lastDay));
  return d;
}

export interface Period {
  index: number;
  start: Date;
  end: Date;
}

export function periodN(anchor: Date, cadence: Cadence, index: number): Period {
  const n = MONTHS[cadence];
  return { index, start: addMonths(anchor, index * n), end: addMonths(anchor, (index + 1) * n) };
}

/** The period containing `at` (at >= anchor). */
export function periodAt(anchor: Date, cadence: Cadence, at: Date): Period {
  const n = MONTHS[cadence];
  let k = Math.max(0, Math.floor(((at.getUTCFullYear() - anchor.getUTCFullYear()) * 12 + at.getUTCMonth() - anchor.getUTCMonth()) / n) - 1);
  while (periodN(anchor, cadence, k + 1).start <= at) k++;
  return periodN(anchor, cadence, k);
}

export function asCadence(v: unknown): Cadence {
  return v === 'quarterly' || v === 'annual' || v === 'semi_annual' ? v : 'monthly';
}
