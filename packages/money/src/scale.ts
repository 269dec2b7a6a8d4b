// The representation: every amount is a bigint count of 1e-12 units ("picos").

/** An amount in integer units of 10^-SCALE. Name variables with the unit: `balancePicos`. */
export type Picos = bigint;

/** Decimal places kept for every amount, price and quantity. */
export const SCALE = 12;

/** 1 whole unit, in picos. */
export const ONE: Picos = 10n ** 12n;

/**
 * Largest magnitude accepted on input: |value| < 10^26 whole units, i.e. 38 digits at scale 12,
 * which is exactly Postgres numeric(38,12) and ClickHouse Decimal128(12).
 */
export const MAX_ABS_PICOS: Picos = 10n ** 38n - 1n;

const POW10: readonly bigint[] = Array.from({ length: 2 * SCALE + 1 }, (_, i) => 10n ** BigInt(i));

/** 10^n as a bigint (cached for small n). Internal. */
export function pow10(n: number): bigint {
  return POW10[n] ?? 10n ** BigInt(n);
}

/** Throws unless `decimals` is a usable decimal-place count. Internal. */
export function checkDecimals(decimals: number, fn: string): void {
  if (!Number.isSafeInteger(decimals) || decimals < 0) {
    throw new RangeError(`${fn}: decimals must be a non-negative integer, got ${decimals}`);
  }
}
