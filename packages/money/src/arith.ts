// Exact arithmetic on Picos. Sums, differences, min/max are exact bigint operations; only
// products, quotients and explicit roundTo() round, each with a stated Rounding mode.

import { MoneyError } from './errors';
import { ONE, SCALE, checkDecimals, pow10, type Picos } from './scale';

/**
 * How to round a result that does not fit:
 * - `half_even`: to nearest, ties to the even neighbour (banker's rounding; the default)
 * - `half_up`:   to nearest, ties away from zero
 * - `floor`:     toward -infinity
 * - `ceil`:      toward +infinity
 * - `down`:      toward zero (truncate)
 */
export type Rounding = 'half_even' | 'half_up' | 'floor' | 'ceil' | 'down';

/** a / b for integers, rounded with `mode`. Throws `division_by_zero` when b = 0. */
export function divRoundInt(a: bigint, b: bigint, mode: Rounding): bigint {
  if (b === 0n) throw new MoneyError('division_by_zero', `cannot divide ${a} by zero`);
  const q = a / b; // truncated toward zero
  const r = a % b; // same sign as a
  if (r === 0n) return q;
  const negative = a < 0n !== b < 0n;
  const away = negative ? q - 1n : q + 1n;
  switch (mode) {
    case 'down':
      return q;
    case 'floor':
      return negative ? away : q;
    case 'ceil':
      return negative ? q : away;
    case 'half_up':
    case 'half_even': {
      const twiceRem = 2n * (r < 0n ? -r : r);
      const absB = b < 0n ? -b : b;
      if (twiceRem > absB) return away;
      if (twiceRem < absB) return q;
      if (mode === 'half_up') return away;
      return q % 2n === 0n ? q : away;
    }
    default: {
      const unknown: never = mode;
      throw new TypeError(`unknown rounding mode ${String(unknown)}`);
    }
  }
}

/** a x b, both at SCALE, rescaled to SCALE and rounded once with `mode`. */
export function mul(a: Picos, b: Picos, mode: Rounding = 'half_even'): Picos {
  return divRoundInt(a * b, ONE, mode);
}

/** a / b, both at SCALE, result at SCALE rounded once with `mode`. b = 0 -> `division_by_zero`. */
export function div(a: Picos, b: Picos, mode: Rounding = 'half_even'): Picos {
  if (b === 0n) {
    throw new MoneyError('division_by_zero', 'cannot divide by zero');
  }
  return divRoundInt(a * ONE, b, mode);
}

/**
 * Rounds v to `decimals` decimal places (2 for cents) with `mode`. The result is still at SCALE
 * (roundTo(12.345, 2) is 12.34 = 12_340_000_000_000n). decimals >= SCALE returns v unchanged.
 */
export function roundTo(v: Picos, decimals: number, mode: Rounding = 'half_even'): Picos {
  checkDecimals(decimals, 'roundTo');
  if (decimals >= SCALE) return v;
  const factor = pow10(SCALE - decimals);
  return divRoundInt(v, factor, mode) * factor;
}

/**
 * Whole packages needed to hold quantity q: ceil(q / packageSize). q <= 0 -> 0n.
 * packageSize must be positive (0 -> `division_by_zero`, negative -> `out_of_range`).
 */
export function ceilDivQuantity(q: Picos, packageSize: Picos): bigint {
  if (packageSize === 0n) throw new MoneyError('division_by_zero', 'package size is zero');
  if (packageSize < 0n) throw new MoneyError('out_of_range', 'package size must be positive');
  if (q <= 0n) return 0n;
  return divRoundInt(q, packageSize, 'ceil');
}

export function min(first: Picos, ...rest: Picos[]): Picos {
  let m = first;
  for (const v of rest) if (v < m) m = v;
  return m;
}

export function max(first: Picos, ...rest: Picos[]): Picos {
  let m = first;
  for (const v of rest) if (v > m) m = v;
  return m;
}

export function abs(v: Picos): Picos {
  return v < 0n ? -v : v;
}

export function cmp(a: Picos, b: Picos): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Exact sum (no rounding, no range check: check the total where it is stored). */
export function sum(values: Iterable<Picos>): Picos {
  let total = 0n;
  for (const v of values) total += v;
  return total;
}
