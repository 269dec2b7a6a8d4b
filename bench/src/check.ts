// The end-to-end check after an e2e or long run: every event the edge accepted was rated once,
// priced, and debited at the catalog's unit price, to the last pico. Credits are compared as
// exact decimals (@drawdown/money), never as binary floating point.

import { cmp, formatDecimal, fromInt, mul, parseDecimal } from '@drawdown/money';

/** What the all-in-one's `verify` answered, plus what its edge accepted. */
export interface PipelineCounts {
  eventsAcceptedByEdge: number;
  ratedRowsInClickHouse: number;
  uniqueRatedKeys: number;
  unpricedRows: number;
  /** Sum of the ledger's decrements, as Postgres' numeric text. */
  debitedCredits: string;
}

export interface PipelineCheck extends PipelineCounts {
  /** Rated rows times the unit price, exact. */
  expectedDebitedCredits: string;
  /** True when every count agrees and the debited sum is exactly the expected one. */
  holds: boolean;
  /** One line per disagreement (empty when it holds). */
  problems: string[];
}

/** Compares the counts; `unitPrice` is the catalog's price per event as decimal text. */
export function checkPipeline(c: PipelineCounts, unitPrice: string): PipelineCheck {
  const expected = mul(fromInt(c.ratedRowsInClickHouse), parseDecimal(unitPrice, 'unitPrice'));
  const problems: string[] = [];
  if (c.ratedRowsInClickHouse !== c.eventsAcceptedByEdge) problems.push(`${c.eventsAcceptedByEdge} events accepted but ${c.ratedRowsInClickHouse} rated`);
  if (c.uniqueRatedKeys !== c.ratedRowsInClickHouse) problems.push(`${c.ratedRowsInClickHouse - c.uniqueRatedKeys} rated rows share an idempotency key (double-counted)`);
  if (c.unpricedRows !== 0) problems.push(`${c.unpricedRows} rows not priced`);
  const debited = parseDecimal(c.debitedCredits, 'debitedCredits');
  if (cmp(debited, expected) !== 0) problems.push(`${formatDecimal(debited)} credits debited, ${formatDecimal(expected)} expected`);
  return { ...c, expectedDebitedCredits: formatDecimal(expected), holds: problems.length === 0, problems };
}

/** The RESULTS summary's cells for a check: what was measured, and the detail. Undefined when `c` is not a check. */
export function checkSummary(c: unknown): { measured: string; detail: string } | undefined {
  const x = c as Partial<PipelineCheck> | undefined;
  if (typeof x?.holds !== 'boolean') return undefined;
  if (!x.holds) return { measured: '**fails**', detail: (x.problems ?? []).join('; ') };
  return { measured: 'holds', detail: `${(x.eventsAcceptedByEdge ?? 0).toLocaleString('en')} events accepted, each rated once and priced; ${x.expectedDebitedCredits ?? '?'} credits debited, exactly the rated events times the price` };
}

/**
 * The checks among a run's results: every `*_check` result first, then each side-by-side
 * reading's `freshCheck` (`sideBySide` true), in the results' order.
 */
export function checksOf(results: readonly { name: string; figures: unknown }[]): { name: string; sideBySide: boolean; check: Partial<PipelineCheck> }[] {
  const run = results.filter((r) => r.name.endsWith('_check')).map((r) => ({ name: r.name, sideBySide: false, check: r.figures as Partial<PipelineCheck> }));
  const fresh = results.flatMap((r) => {
    const c = (r.figures as { sideBySide?: { freshCheck?: Partial<PipelineCheck> } } | undefined)?.sideBySide?.freshCheck;
    return c ? [{ name: r.name, sideBySide: true, check: c }] : [];
  });
  return [...run, ...fresh];
}

/** Every failed check among a run's results, one line each: the bench exits non-zero on any, after writing its results. */
export function failedChecks(results: readonly { name: string; figures: unknown }[]): string[] {
  return checksOf(results)
    .filter((c) => c.check.holds === false)
    .map((c) => `${c.name}${c.sideBySide ? ' side by side, the empty instance' : ''}: ${(c.check.problems ?? []).join('; ')}`);
}
