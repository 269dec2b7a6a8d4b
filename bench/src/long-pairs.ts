// The long run's side-by-side reading. Once Drawdown's long run has stored its events, a second
// all-in-one starts empty beside it and the two take turns: windows of the same length, the same
// load and the same overload rule, alternating which of the two goes first in each pair (aged
// fresh, fresh aged, ...). Both are then measured in the same minutes on the same machine, so a
// change in the machine's speed falls on both alike, and the aged instance's rate over the fresh
// one's answers "does the rate hold as stored events grow" without comparing numbers taken a
// quarter of an hour apart (the last tenth against the first).
//
// The one instance idles while the other is measured, but its engine may still be merging what
// its last window inserted: that CPU is charged to the instance that spent it in the cost
// reading (CPU per event, whenever spent), and shown as `otherCpuDuring*` beside the rates.
import { round } from './util';

export type PairSide = 'aged' | 'fresh';

export interface PairSlot {
  side: PairSide;
  /** 0 for the fresh instance's warm-up window, then 1..pairs. */
  pair: number;
  warmup: boolean;
}

/** The order of the side-by-side windows: the fresh instance's warm-up, then `pairs` pairs, odd ones aged first, even ones fresh first. */
export function pairSchedule(pairs: number): PairSlot[] {
  if (!Number.isInteger(pairs) || pairs < 0) throw new Error(`pairs: expected a whole number of at least 0, got ${pairs}`);
  if (pairs === 0) return [];
  const out: PairSlot[] = [{ side: 'fresh', pair: 0, warmup: true }];
  for (let p = 1; p <= pairs; p++) {
    const order: PairSide[] = p % 2 === 1 ? ['aged', 'fresh'] : ['fresh', 'aged'];
    for (const side of order) out.push({ side, pair: p, warmup: false });
  }
  return out;
}

export interface PairWindow extends PairSlot {
  /** Events the measured instance's rater processed per second past the settling time. */
  processedPerS: number;
  /** The measured instance's own CPU over the window (cores): its process, Postgres and NATS. */
  ownCpu: number;
  /** The idle instance's process over the same window (cores): merges of what its last window inserted, timers. */
  otherCpu: number;
  /** ownCpu split by where it went (cores), e.g. the event loop, merges, Postgres: the reading gives each part per event. */
  parts?: Record<string, number>;
}

export interface PairedReading {
  /** Pairs with both windows counted. */
  pairs: number;
  agedPerS: number;
  freshPerS: number;
  /** The mean of the aged instance's counted windows over the fresh one's. */
  agedVsFresh: number | null;
  /** The same, pair by pair (aged / fresh), to show the spread. */
  perPair: number[];
  /** CPU per processed event (µs): all the instance spent, in its own windows and while the other ran, over the events its windows processed. */
  agedUsPerEvent: number;
  freshUsPerEvent: number;
  /** The fresh instance's CPU per event over the aged one's: below 1, the aged instance spends more per event. */
  freshVsAgedCost: number | null;
  /** The idle instance's mean CPU (cores) while the other was measured (counted windows). */
  otherCpuDuringAged: number;
  otherCpuDuringFresh: number;
  /** Each part of the windows' own CPU per processed event (µs), by side: which part an aged instance spends more on. */
  agedUsByPart: Record<string, number>;
  freshUsByPart: Record<string, number>;
}

const mean = (xs: number[]) => (xs.length > 0 ? xs.reduce((a, x) => a + x, 0) / xs.length : 0);

export function pairedReading(windows: PairWindow[]): PairedReading {
  const counted = windows.filter((w) => !w.warmup && Number.isFinite(w.processedPerS) && w.processedPerS > 0);
  const side = (s: PairSide) => counted.filter((w) => w.side === s);
  const aged = side('aged');
  const fresh = side('fresh');
  const perPair: number[] = [];
  for (const p of new Set(counted.map((w) => w.pair))) {
    const a = aged.find((w) => w.pair === p);
    const f = fresh.find((w) => w.pair === p);
    if (a && f) perPair.push(round(a.processedPerS / f.processedPerS, 3));
  }
  const agedPerS = mean(aged.map((w) => w.processedPerS));
  const freshPerS = mean(fresh.map((w) => w.processedPerS));
  // Equal windows: CPU seconds per second over events per second (µs per event).
  const perEvent = (own: PairWindow[], cpu: number) => {
    const events = own.reduce((a, w) => a + w.processedPerS, 0);
    return events > 0 ? round((cpu / events) * 1e6, 2) : 0;
  };
  // What the idle instance spent during the other's counted windows is its own cost (mostly
  // merging its last window's inserts).
  const cost = (own: PairWindow[], whileOther: PairWindow[]) => perEvent(own, own.reduce((a, w) => a + w.ownCpu, 0) + whileOther.reduce((a, w) => a + w.otherCpu, 0));
  const byPart = (own: PairWindow[]) => {
    const sums: Record<string, number> = {};
    for (const w of own) for (const [k, v] of Object.entries(w.parts ?? {})) sums[k] = (sums[k] ?? 0) + v;
    return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, perEvent(own, v)]));
  };
  const agedUs = cost(aged, fresh);
  const freshUs = cost(fresh, aged);
  return {
    pairs: perPair.length,
    agedPerS: Math.round(agedPerS),
    freshPerS: Math.round(freshPerS),
    agedVsFresh: aged.length > 0 && freshPerS > 0 ? round(agedPerS / freshPerS, 3) : null,
    perPair,
    agedUsPerEvent: agedUs,
    freshUsPerEvent: freshUs,
    freshVsAgedCost: agedUs > 0 && freshUs > 0 ? round(freshUs / agedUs, 3) : null,
    otherCpuDuringAged: round(mean(aged.map((w) => w.otherCpu)), 3),
    otherCpuDuringFresh: round(mean(fresh.map((w) => w.otherCpu)), 3),
    agedUsByPart: byPart(aged),
    freshUsByPart: byPart(fresh),
  };
}
