// Billing periods in the customer's time zone. Period boundaries are local midnights on the
// anchor day (the start date's local day of month); an anchor beyond a month's last day falls on
// that last day (Jan 31 -> Feb 28 -> Mar 31). The first period starts at the subscription's
// start instant. Pure: only Intl's time zone data.

export type BillingCadence = 'monthly' | 'quarterly' | 'annual';

export const CADENCE_MONTHS: Record<BillingCadence, number> = { monthly: 1, quarterly: 3, annual: 12 };

export interface Period {
  startMs: number;
  endMs: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when Intl knows the IANA zone. */
export function isTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

interface Local {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** Wall-clock fields of an instant in a zone. */
export function localParts(ms: number, timeZone: string): Local {
  // UTC (most subscriptions) needs no time zone data: Date's UTC fields are the same, far cheaper.
  if (timeZone === 'UTC') {
    const d = new Date(ms);
    return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
  }
  const out: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(ms))) if (p.type !== 'literal') out[p.type] = Number(p.value);
  return { year: out.year!, month: out.month!, day: out.day!, hour: out.hour! % 24, minute: out.minute!, second: out.second! };
}

/** Offset of the zone at an instant, in ms (local - UTC), to the second. */
function offsetAt(ms: number, timeZone: string): number {
  const l = localParts(ms, timeZone);
  const asUtc = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second);
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
}

/**
 * The instant of a local wall-clock time. A time skipped by a DST jump resolves to the first
 * instant after the gap (the jump's moment); a time that happens twice resolves to the earlier.
 */
export function zonedTimeToUtc(year: number, month: number, day: number, hour: number, minute: number, second: number, timeZone: string): number {
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  if (timeZone === 'UTC') return wall;
  // Candidates from the offsets around the wall time; keep those that map back to it.
  const offsets = new Set([offsetAt(wall - 86_400_000, timeZone), offsetAt(wall, timeZone), offsetAt(wall + 86_400_000, timeZone)]);
  const hits = [...offsets].map((o) => wall - o).filter((t) => offsetAt(t, timeZone) === wall - t).sort((a, b) => a - b);
  if (hits.length > 0) return hits[0]!;
  // In a gap: the transition instant, found between the two candidate instants.
  const cands = [...offsets].map((o) => wall - o).sort((a, b) => a - b);
  let lo = cands[0]!;
  let hi = cands[cands.length - 1]!;
  const before = offsetAt(lo, timeZone);
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetAt(mid, timeZone) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * `n` days or months after `ms` on the calendar of `timeZone`, at the same local time of day (a
 * month step on a day the target month lacks lands on its last day). Across a DST change this is
 * not n * 24 hours: a due date 30 days after a local midnight is again a local midnight.
 */
export function addLocal(ms: number, n: number, unit: 'day' | 'month', timeZone: string): number {
  const l = localParts(ms, timeZone);
  const millis = ((ms % 1000) + 1000) % 1000;
  if (unit === 'day') return zonedTimeToUtc(l.year, l.month, l.day + n, l.hour, l.minute, l.second, timeZone) + millis;
  const idx = l.year * 12 + (l.month - 1) + n;
  const y = Math.floor(idx / 12);
  const m = (idx % 12) + 1;
  return zonedTimeToUtc(y, m, Math.min(l.day, daysInMonth(y, m)), l.hour, l.minute, l.second, timeZone) + millis;
}

/** Local midnight of the anchor day, `months` months after (year, month). */
function boundary(year: number, month: number, anchorDay: number, months: number, timeZone: string): number {
  const idx = year * 12 + (month - 1) + months;
  const y = Math.floor(idx / 12);
  const m = (idx % 12) + 1;
  return zonedTimeToUtc(y, m, Math.min(anchorDay, daysInMonth(y, m)), 0, 0, 0, timeZone);
}

/**
 * Billing periods of a subscription that starts at `startMs`, in `timeZone`, until `untilMs`
 * (the periods overlapping [startMs, untilMs)), at most `maxPeriods`. `endMs` (the
 * subscription's end) cuts the last period short.
 */
export function billingPeriods(startMs: number, cadence: BillingCadence, timeZone: string, opts: { untilMs: number; endMs?: number | null; maxPeriods?: number }): Period[] {
  const step = CADENCE_MONTHS[cadence];
  if (step === undefined) throw new RangeError(`unknown billing cadence ${String(cadence)}`);
  const max = opts.maxPeriods ?? 1000;
  const s = localParts(startMs, timeZone);
  const out: Period[] = [];
  let from = startMs;
  for (let n = 1; out.length < max; n++) {
    let to = boundary(s.year, s.month, s.day, n * step, timeZone);
    if (opts.endMs != null && to >= opts.endMs) to = opts.endMs;
    if (to > from) out.push({ startMs: from, endMs: to });
    if (to >= opts.untilMs || (opts.endMs != null && to >= opts.endMs)) break;
    from = to;
  }
  return out;
}

/** The billing period containing `atMs` (null before the start or after the end). */
export function periodAt(startMs: number, cadence: BillingCadence, timeZone: string, atMs: number, endMs?: number | null): Period | null {
  if (atMs < startMs || (endMs != null && atMs >= endMs)) return null;
  // Jump close to atMs first: at most one period per `step` months.
  const s = localParts(startMs, timeZone);
  const a = localParts(atMs, timeZone);
  const step = CADENCE_MONTHS[cadence];
  const monthsApart = (a.year - s.year) * 12 + (a.month - s.month);
  let n = Math.max(0, Math.floor(monthsApart / step) - 1);
  let from = n === 0 ? startMs : boundary(s.year, s.month, s.day, n * step, timeZone);
  for (;;) {
    n++;
    let to = boundary(s.year, s.month, s.day, n * step, timeZone);
    if (endMs != null && to > endMs) to = endMs;
    if (atMs < to) return { startMs: from, endMs: to };
    from = to;
  }
}
