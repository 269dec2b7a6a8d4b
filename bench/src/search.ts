// The end-to-end rate search's arithmetic (pure, unit-tested): the next rate to try, and the
// backlog's growth as a least-squares slope.

/** Rates are offered in whole hundreds of events per second (whole 100-event requests). */
export const roundRate = (x: number) => Math.max(100, Math.round(x / 100) * 100);

/**
 * The search's next rate after a step at `rate`, or undefined when it is done. Until a step
 * fails: `growth` times the rate. After a failure with nothing sustained yet: 90 % of what the
 * failed step processed (its capacity when over it), within 30-90 % of its rate. With both a
 * sustained rate (lo) and a failed one (hi): their geometric mean, until hi is within
 * `precision` of lo; with `stopAtBracket`, none (the first bracket ends the search, however wide).
 */
export function nextSearchRate(s: { rate: number; ok: boolean; processed: number; lo?: number; hi?: number }, opts: { growth: number; precision: number; stopAtBracket?: boolean }): number | undefined {
  let next: number;
  if (opts.stopAtBracket && s.lo !== undefined && s.hi !== undefined) return undefined;
  if (s.hi === undefined) next = s.rate * opts.growth;
  else if (s.lo === undefined) {
    const cap = !s.ok && Number.isFinite(s.processed) && s.processed > 0 ? s.processed : 0.6 * s.rate;
    next = Math.max(0.3 * s.rate, Math.min(0.9 * s.rate, 0.9 * cap));
  } else {
    if (s.hi / s.lo <= opts.precision) return undefined;
    next = Math.sqrt(s.lo * s.hi);
  }
  const r = roundRate(next);
  if ((s.lo !== undefined && r <= s.lo) || (s.hi !== undefined && r >= s.hi)) return undefined;
  return r;
}

/** Least-squares slope of (t, y) points, y per unit of t; 0 with fewer than two points. */
export function slopePerS(points: [number, number][]): number {
  if (points.length < 2) return 0;
  const n = points.length;
  const mt = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [t, y] of points) {
    num += (t - mt) * (y - my);
    den += (t - mt) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** The best sustained window rate in each tenth of a long run, by events stored before the window (0 when a tenth had no sustained window). */
export function longRunTenths(windows: { storedEventsBefore: number; achieved: number; ok: boolean }[], events: number): { from: number; capacity: number }[] {
  const tenths = Array.from({ length: 10 }, (_, i) => ({ from: Math.round((events * i) / 10), capacity: 0 }));
  for (const w of windows) {
    if (!w.ok) continue;
    const t = tenths[Math.min(9, Math.floor((w.storedEventsBefore / events) * 10))]!;
    t.capacity = Math.max(t.capacity, w.achieved);
  }
  return tenths;
}

/**
 * The long run's next offered rate, tracking what the system sustains as stored events grow:
 * +20 % per good window until the first failed one (the start rate is left behind quickly); after
 * a failure, 90 % of what the failed window processed (its capacity when over it; NaN or 0: 85 %
 * of the lower of offered and achieved); then +5 % per good window, +10 % from the third good
 * window in a row, so a dip (a noisy neighbour, a merge) costs minutes, not the rest of the run.
 */
export function nextLongRate(rate: number, w: { ok: boolean; achieved: number; processed: number; failedOnce: boolean; goodRun: number }): number {
  if (w.ok) return Math.max(1000, roundRate(rate * (!w.failedOnce ? 1.2 : w.goodRun >= 3 ? 1.1 : 1.05)));
  const capacity = Number.isFinite(w.processed) && w.processed > 0 ? 0.9 * Math.min(w.processed, rate) : 0.85 * Math.min(rate, w.achieved);
  return Math.max(1000, roundRate(capacity));
}
