import { describe, expect, it } from 'vitest';
import { checkPipeline, checkSummary, failedChecks, type PipelineCounts } from './check';

const agreeing: PipelineCounts = { eventsAcceptedByEdge: 76_254_745, ratedRowsInClickHouse: 76_254_745, uniqueRatedKeys: 76_254_745, unpricedRows: 0, debitedCredits: '76254.745000000000' };

describe('checkPipeline', () => {
  it('holds when every count agrees and the debited sum is the rated rows times the price, exactly', () => {
    const c = checkPipeline(agreeing, '0.001');
    expect(c).toMatchObject({ holds: true, problems: [], expectedDebitedCredits: '76254.745' });
  });

  it('compares credits to the last pico, past what a float product keeps', () => {
    // 76,254,745 x 0.123456789012 = 9414165.96462886194 exactly; as a JS number, 9414165.964628862.
    const price = '0.123456789012';
    expect(checkPipeline({ ...agreeing, debitedCredits: '9414165.964628861940' }, price)).toMatchObject({ holds: true, expectedDebitedCredits: '9414165.96462886194' });
    const off = checkPipeline({ ...agreeing, debitedCredits: '9414165.964628862' }, price);
    expect(off.holds).toBe(false);
    expect(off.problems).toEqual(['9414165.964628862 credits debited, 9414165.96462886194 expected']);
    expect(() => checkPipeline(agreeing, '0.0000000000001')).toThrow(/unitPrice/);
  });

  it('names every disagreement: lost, double-counted, unpriced events', () => {
    const c = checkPipeline({ eventsAcceptedByEdge: 100, ratedRowsInClickHouse: 99, uniqueRatedKeys: 98, unpricedRows: 2, debitedCredits: '0.099' }, '0.001');
    expect(c.holds).toBe(false);
    expect(c.problems).toEqual(['100 events accepted but 99 rated', '1 rated rows share an idempotency key (double-counted)', '2 rows not priced']);
  });

  it('refuses a debited sum that is not a decimal, naming the field', () => {
    expect(() => checkPipeline({ ...agreeing, debitedCredits: 'n/a' }, '0.001')).toThrow(/debitedCredits/);
  });
});

describe('checkSummary', () => {
  it('says holds with the counts, or fails with every problem', () => {
    expect(checkSummary(checkPipeline(agreeing, '0.001'))).toEqual({ measured: 'holds', detail: '76,254,745 events accepted, each rated once and priced; 76254.745 credits debited, exactly the rated events times the price' });
    expect(checkSummary(checkPipeline({ ...agreeing, unpricedRows: 1, debitedCredits: '1' }, '0.001'))).toEqual({ measured: '**fails**', detail: '1 rows not priced; 1 credits debited, 76254.745 expected' });
  });

  it('gives nothing for a check from before this reading (no holds figure)', () => {
    expect(checkSummary({ eventsAcceptedByEdge: 1 })).toBeUndefined();
    expect(checkSummary(undefined)).toBeUndefined();
  });
});

describe('failedChecks', () => {
  it("lists the failed checks of a run, the side-by-side reading's included, and nothing when all hold", () => {
    const ok = checkPipeline(agreeing, '0.001');
    const bad = checkPipeline({ ...agreeing, unpricedRows: 3, debitedCredits: '76254.742' }, '0.001');
    expect(failedChecks([{ name: 'long_check', figures: ok }, { name: 'long_drawdown_uniform', figures: { sideBySide: { freshCheck: ok } } }])).toEqual([]);
    expect(failedChecks([{ name: 'e2e_check', figures: bad }, { name: 'long_drawdown_uniform', figures: { lastVsFirst: 1, sideBySide: { freshCheck: bad } } }, { name: 'rater', figures: { eventsPerS: 1 } }])).toEqual([
      'e2e_check: 3 rows not priced; 76254.742 credits debited, 76254.745 expected',
      'long_drawdown_uniform side by side, the empty instance: 3 rows not priced; 76254.742 credits debited, 76254.745 expected',
    ]);
  });
});
