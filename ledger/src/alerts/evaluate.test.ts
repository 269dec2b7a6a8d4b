import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decide, effectiveThresholds } from './evaluate';

const T = (n: number) => BigInt(n) * 10n ** 12n;

function run(type: string, thresholds: bigint[], balances: bigint[]) {
  // Replays the state machine over a path of balances; returns the fired thresholds per step.
  const state = new Map<bigint, boolean>();
  const fired: bigint[][] = [];
  for (let i = 1; i < balances.length; i++) {
    const d = decide(type, thresholds, state, balances[i - 1]!, balances[i]!);
    for (const x of d) state.set(x.threshold, x.inAlert);
    fired.push(d.filter((x) => x.fire).map((x) => x.threshold));
  }
  return fired;
}

describe('decide', () => {
  it('fires each threshold crossed by one fall, and nothing when repeated', () => {
    const state = new Map<bigint, boolean>();
    const d = decide('credit_balance_dropped', [T(100), T(200), T(500)], state, T(1000), T(50));
    expect(d.filter((x) => x.fire).map((x) => x.threshold)).toEqual([T(100), T(200), T(500)]);
    for (const x of d) state.set(x.threshold, x.inAlert);
    expect(decide('credit_balance_dropped', [T(100), T(200), T(500)], state, T(1000), T(50)).some((x) => x.fire)).toBe(false);
  });

  it('depleted at zero, recovered when positive again; a first grant is no recovery', () => {
    expect(effectiveThresholds('credit_balance_depleted', [T(5)])).toEqual([0n]);
    expect(run('credit_balance_depleted', [], [T(10), T(0), -T(3), T(4), 0n])).toEqual([[0n], [], [], [0n]]);
    expect(run('credit_balance_recovered', [], [0n, T(10), 0n, -T(1), T(2)])).toEqual([[], [], [], [0n]]);
  });

  it('never fires a threshold twice without re-crossing it (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -50, max: 300 }), { minLength: 2, maxLength: 40 }), fc.uniqueArray(fc.integer({ min: 0, max: 250 }), { minLength: 1, maxLength: 5 }), (path, ts) => {
        const balances = path.map(T);
        const thresholds = ts.map(T);
        const drops = run('credit_balance_dropped', thresholds, balances);
        for (const t of thresholds) {
          // Between two fires of t, the balance must have been above t.
          let armed = balances[0]! > t;
          for (let i = 1; i < balances.length; i++) {
            const firedHere = drops[i - 1]!.includes(t);
            expect(firedHere).toBe(armed && balances[i]! <= t);
            if (firedHere) armed = false;
            if (balances[i]! > t) armed = true;
          }
        }
      }),
    );
  });
});
