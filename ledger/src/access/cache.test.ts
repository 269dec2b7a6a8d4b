import { describe, expect, it } from 'vitest';
import { decideAccess } from './cache';

const T = (n: number) => BigInt(n) * 10n ** 12n;

describe('decideAccess', () => {
  const block = { mode: 'block_when_depleted' as const, overageLimit: null, blockOnUnpaidOverage: false };
  it('blocks when depleted', () => {
    expect(decideAccess(T(1), block, false)).toEqual({ allowed: true, reason: 'balance_available' });
    expect(decideAccess(0n, block, false)).toEqual({ allowed: false, reason: 'depleted' });
  });
  it('allows overage up to the limit', () => {
    const p = { mode: 'allow_overage' as const, overageLimit: T(10), blockOnUnpaidOverage: false };
    expect(decideAccess(-T(9), p, false).allowed).toBe(true);
    expect(decideAccess(-T(10), p, false)).toEqual({ allowed: false, reason: 'overage_limit_reached' });
    expect(decideAccess(-T(1000), { ...p, overageLimit: null }, false)).toEqual({ allowed: true, reason: 'overage_allowed' });
  });
  it('blocks while an overage invoice is unpaid, if the policy says so', () => {
    expect(decideAccess(T(5), { ...block, blockOnUnpaidOverage: true }, true)).toEqual({ allowed: false, reason: 'unpaid_overage_invoice' });
    expect(decideAccess(T(5), block, true).allowed).toBe(true);
  });
});
