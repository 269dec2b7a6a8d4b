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

/** The tenth of a long run of `events` that a window belongs to, by the events stored before it (past the planned total: the last tenth). */
export function tenthOf(storedEventsBefore: number, events: number): number {
  return Math.min(9, Math.floor((storedEventsBefore / events) * 10));
}

/** Where each tenth of a long run of `events` starts, in stored events. */
export const tenthStart = (i: number, events: number) => Math.round((events * i) / 10);

/**
 * The long run's capacity per tenth: the time-weighted mean of what its counted windows
 * processed, each window in the tenth where it started (by events stored before it; past the
 * planned total: the last tenth). Windows not counted (warm-up, no figure) only add stored
 * events. 0 for a tenth without a counted window.
 */
export function longRunTenths(windows: { storedEventsBefore: number; seconds: number; processedPerS: number; counted: boolean }[], events: number): { from: number; rate: number; windows: number }[] {
  const sums = Array.from({ length: 10 }, (_, i) => ({ from: tenthStart(i, events), events: 0, seconds: 0, windows: 0 }));
  for (const w of windows) {
    if (!w.counted || !(w.seconds > 0) || !Number.isFinite(w.processedPerS)) continue;
    const t = sums[tenthOf(w.storedEventsBefore, events)]!;
    t.events += w.processedPerS * w.seconds;
    t.seconds += w.seconds;
    t.windows++;
  }
  return sums.map((t) => ({ from: t.from, rate: t.seconds > 0 ? Math.round(t.events / t.seconds) : 0, windows: t.windows }));
}

/**
 * The long run's trend: the least-squares line through the counted windows' figures against the
 * events stored before them, read at the first and the last counted window (0 when fewer than
 * two were counted). Every counted window weighs in, so one noisy window moves it less than it
 * moves a tenth's mean.
 */
export function longRunTrend(windows: { storedEventsBefore: number; processedPerS: number; counted: boolean }[]): { atStart: number; atEnd: number; endVsStart: number; perTenMillion: number } {
  const pts = windows.filter((w) => w.counted && Number.isFinite(w.processedPerS)).map((w) => [w.storedEventsBefore, w.processedPerS] as [number, number]);
  if (pts.length < 2) return { atStart: 0, atEnd: 0, endVsStart: 0, perTenMillion: 0 };
  const slope = slopePerS(pts);
  const mx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
  const my = pts.reduce((a, p) => a + p[1], 0) / pts.length;
  const at = (x: number) => my + slope * (x - mx);
  const atStart = at(pts[0]![0]);
  const atEnd = at(pts[pts.length - 1]![0]);
  return { atStart: Math.round(atStart), atEnd: Math.round(atEnd), endVsStart: atStart > 0 ? Math.round((atEnd / atStart) * 1000) / 1000 : 0, perTenMillion: Math.round(slope * 1e7) };
}

/** How far over what the last window processed a long-run window offers load: the system is always pushed at or over its capacity. */
export const LONG_OVERLOAD = 1.15;

/** The long run's rise per window while the system still keeps up with every window (warm-up, not counted). */
export const LONG_WARMUP_GROWTH = 1.4;

/**
 * The long run's next offered rate: LONG_OVERLOAD times what the last window processed (its
 * throughput, whether it kept up or not), or LONG_WARMUP_GROWTH times while no window has yet
 * found the capacity (`reached` false); without a figure for what was processed, 85 % of what was
 * acknowledged. Never below 1,000 events/s.
 */
export function nextLongRate(w: { processed: number; acked: number; reached: boolean }): number {
  const base = Number.isFinite(w.processed) && w.processed > 0 ? w.processed : 0.85 * w.acked;
  return Math.max(1000, roundRate(base * (w.reached ? LONG_OVERLOAD : LONG_WARMUP_GROWTH)));
}
