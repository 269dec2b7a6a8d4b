// Settlement periods are the catalog's billing periods (packages/catalog billingPeriods): in the
// customer's time zone, boundaries at local midnight of the anchor day (the start's local day,
// clamped to a month's last day), the first period starting at the subscription's start
// instant and the last cut short by its end. The subscriptions API shows the same periods, so
// an invoice covers exactly the period the customer sees.
import { billingPeriods, localParts, type BillingCadence } from '@drawdown/catalog';

export type Cadence = BillingCadence;

export interface Period {
  /** Position from the subscription's first period (0). */
  index: number;
  start: Date;
  end: Date;
}

/** What a subscription's periods depend on. */
export interface PeriodBasis {
  start: Date;
  end: Date | null;
  cadence: Cadence;
  timeZone: string;
}

const toPeriod = (p: { startMs: number; endMs: number }, index: number): Period => ({ index, start: new Date(p.startMs), end: new Date(p.endMs) });

/**
 * The periods from index `from` whose end is at or before `until`, then the first one that
 * ends after it (when the subscription has one): settlement settles the former and waits for
 * the latter.
 */
export function periodsUntil(b: PeriodBasis, until: Date, from = 0): { done: Period[]; next: Period | null } {
  const all = billingPeriods(b.start.getTime(), b.cadence, b.timeZone, { untilMs: until.getTime() + 1, endMs: b.end?.getTime() ?? null, maxPeriods: Number.MAX_SAFE_INTEGER });
  const done: Period[] = [];
  let next: Period | null = null;
  for (let i = from; i < all.length; i++) {
    const p = toPeriod(all[i]!, i);
    if (p.end.getTime() <= until.getTime()) done.push(p);
    else {
      next = p;
      break;
    }
  }
  return { done, next };
}

/**
 * The period containing `at`; before the start, the first period; at or after the end, the
 * last. A subscription that ends where it starts has no period: null.
 */
export function periodAt(b: PeriodBasis, at: Date): Period | null {
  const endMs = b.end?.getTime() ?? null;
  const atMs = Math.max(at.getTime(), b.start.getTime());
  const clamped = endMs === null ? atMs : Math.min(atMs, endMs - 1);
  if (clamped < b.start.getTime()) return null;
  const all = billingPeriods(b.start.getTime(), b.cadence, b.timeZone, { untilMs: clamped + 1, endMs, maxPeriods: Number.MAX_SAFE_INTEGER });
  const i = all.findIndex((p) => p.startMs <= clamped && clamped < p.endMs);
  return i < 0 ? null : toPeriod(all[i]!, i);
}

/** The period after `p` (null when the subscription ends with `p`). */
export function periodAfter(b: PeriodBasis, p: Period): Period | null {
  if (b.end && p.end.getTime() >= b.end.getTime()) return null;
  const next = periodAt(b, p.end);
  return next && next.index === p.index + 1 ? next : null;
}

/** The local calendar date (YYYY-MM-DD) of an instant in a time zone. */
export function localDate(at: Date, timeZone: string): string {
  const l = localParts(at.getTime(), timeZone);
  return `${String(l.year).padStart(4, '0')}-${String(l.month).padStart(2, '0')}-${String(l.day).padStart(2, '0')}`;
}

/** UTC month arithmetic for schedules that are not subscription periods (scheduled purchases). */
export function addMonths(anchor: Date, months: number): Date {
  const y = anchor.getUTCFullYear();
  const m = anchor.getUTCMonth() + months;
  const lastDay = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  const d = new Date(anchor);
  d.setUTCFullYear(y, m, Math.min(anchor.getUTCDate(), lastDay));
  return d;
}

export function asCadence(v: unknown): Cadence {
  return v === 'quarterly' || v === 'annual' ? v : 'monthly';
}
