// Decimal text <-> Picos. Input is never rounded: a value that does not fit exactly is an error.

import { divRoundInt } from './arith';
import { MoneyError, fieldPrefix, shown } from './errors';
import { ONE, SCALE, checkDecimals, pow10, type Picos } from './scale';

/** Whole units allowed: |value| < 10^26. */
const MAX_WHOLE_DIGITS = 26;
const MAX_ABS_WHOLE = 10n ** BigInt(MAX_WHOLE_DIGITS);
const TWO_POW_53 = 2 ** 53;

// sign, integer digits, fraction digits, exponent. ASCII digits only, no whitespace.
const DECIMAL_RE = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/;

/**
 * Parses an amount, price or quantity into Picos, exactly.
 *
 * - string: optional sign, digits, optional fraction, optional exponent ("12", "-0.5", ".5",
 *   "5e-7", "1.5E+3"). No whitespace, hex, NaN or Infinity.
 * - number: must be finite and below 2^53 in magnitude (else `imprecise_number`); it is read
 *   through its shortest round-trip text, String(n), so 0.1 is exactly 0.1.
 * - bigint: a whole number of units.
 *
 * More than SCALE (12) significant decimal places -> `too_many_decimals` (never rounded);
 * |value| >= 10^26 -> `out_of_range`; anything else unparsable -> `invalid_decimal`.
 * `field` names the input in error messages and in MoneyError.field.
 */
export function parseDecimal(input: string | number | bigint, field?: string): Picos {
  switch (typeof input) {
    case 'string':
      return parseString(input, field);
    case 'number':
      return parseNumber(input, field);
    case 'bigint':
      return wholeToPicos(input, field);
    default:
      throw new MoneyError(
        'invalid_decimal',
        `${fieldPrefix(field)}expected a decimal number, got ${input === null ? 'null' : typeof input}`,
        { field },
      );
  }
}

function parseString(s: string, field: string | undefined): Picos {
  const m = DECIMAL_RE.exec(s);
  const intDigits = m?.[2] ?? '';
  const fracDigits = m?.[3] ?? '';
  if (m === null || intDigits.length + fracDigits.length === 0) {
    throw new MoneyError(
      'invalid_decimal',
      `${fieldPrefix(field)}${JSON.stringify(shown(s))} is not a decimal number (expected e.g. "12.5" or "5e-7")`,
      { field },
    );
  }
  const negative = m[1] === '-';

  // value = digits x 10^exp10 with no leading or trailing zeros in digits.
  const all = intDigits + fracDigits;
  let start = 0;
  while (start < all.length && all.charCodeAt(start) === 48) start++;
  if (start === all.length) return 0n;
  let end = all.length;
  while (all.charCodeAt(end - 1) === 48) end--;
  const digits = all.slice(start, end);
  const exponent = m[4] === undefined ? 0 : Number(m[4]); // may be +-Infinity: only compared
  const exp10 = exponent - fracDigits.length + (all.length - end);

  if (digits.length + exp10 > MAX_WHOLE_DIGITS) {
    throw new MoneyError(
      'out_of_range',
      `${fieldPrefix(field)}${shown(s)} is out of range; the magnitude must be below 10^${MAX_WHOLE_DIGITS}`,
      { field },
    );
  }
  if (exp10 < -SCALE) {
    const places = Number.isSafeInteger(-exp10) ? String(-exp10) : 'too many';
    throw new MoneyError(
      'too_many_decimals',
      `${fieldPrefix(field)}${shown(s)} has ${places} decimal places; at most ${SCALE} are kept`,
      { field },
    );
  }
  const picos = BigInt(digits) * pow10(exp10 + SCALE);
  return negative ? -picos : picos;
}

function parseNumber(n: number, field: string | undefined): Picos {
  if (Number.isSafeInteger(n)) return BigInt(n) * ONE;
  if (!Number.isFinite(n)) {
    throw new MoneyError('invalid_decimal', `${fieldPrefix(field)}${n} is not a finite number`, { field });
  }
  if (Math.abs(n) >= TWO_POW_53) {
    throw new MoneyError(
      'imprecise_number',
      `${fieldPrefix(field)}${n} cannot be held exactly by a JSON/JavaScript number (magnitude >= 2^53); send it as a string`,
      { field },
    );
  }
  return parseString(String(n), field);
}

function wholeToPicos(n: bigint, field: string | undefined): Picos {
  if (n >= MAX_ABS_WHOLE || n <= -MAX_ABS_WHOLE) {
    throw new MoneyError(
      'out_of_range',
      `${fieldPrefix(field)}${shown(String(n))} is out of range; the magnitude must be below 10^${MAX_WHOLE_DIGITS}`,
      { field },
    );
  }
  return n * ONE;
}

/** A whole number of units as Picos (fromInt(3) = 3 units). Non-integers are rejected. */
export function fromInt(n: number | bigint): Picos {
  if (typeof n === 'bigint') return wholeToPicos(n, undefined);
  if (!Number.isInteger(n)) {
    throw new MoneyError('invalid_decimal', `${n} is not an integer`);
  }
  if (!Number.isSafeInteger(n)) {
    throw new MoneyError('imprecise_number', `${n} is not a safe integer (magnitude >= 2^53); pass a bigint`);
  }
  return BigInt(n) * ONE;
}

/** Minimal exact decimal text: no exponent, no trailing zeros ("0", "1", "0.0000005", "-1.5"). */
export function formatDecimal(v: Picos): string {
  // String slicing: about 2.5x faster than bigint / and % (this runs for every API amount).
  const negative = v < 0n;
  const digits = (negative ? -v : v).toString();
  let whole: string;
  let frac: string;
  if (digits.length > SCALE) {
    whole = digits.slice(0, digits.length - SCALE);
    frac = digits.slice(digits.length - SCALE);
  } else {
    whole = '0';
    frac = digits.padStart(SCALE, '0');
  }
  let end = SCALE;
  while (end > 0 && frac.charCodeAt(end - 1) === 48) end--;
  const out = end === 0 ? whole : `${whole}.${frac.slice(0, end)}`;
  return negative ? `-${out}` : out;
}

/**
 * Exactly `decimals` decimal places, rounding half-even when v has more ("12.30" for
 * formatFixed(12.3, 2)). For invoice text; use roundTo() first to round another way.
 */
export function formatFixed(v: Picos, decimals: number): string {
  checkDecimals(decimals, 'formatFixed');
  // scaled = v in units of 10^-kept, rounded once.
  const kept = Math.min(decimals, SCALE);
  const scaled = kept === SCALE ? v : divRoundInt(v, pow10(SCALE - kept), 'half_even');
  const negative = scaled < 0n;
  const a = negative ? -scaled : scaled;
  const unit = pow10(kept);
  const whole = (a / unit).toString();
  const sign = negative ? '-' : '';
  if (decimals === 0) return `${sign}${whole}`;
  const frac = (a % unit).toString().padStart(kept, '0').padEnd(decimals, '0');
  return `${sign}${whole}.${frac}`;
}

/**
 * The nearest double to v, for display and metrics ONLY. Never do arithmetic on the result:
 * doubles cannot hold most decimal fractions, and amounts above 2^53 picos (about 9007 units)
 * lose digits.
 */
export function toNumber(v: Picos): number {
  // Both operands exact -> one correctly rounded division.
  if (v <= 9_007_199_254_740_992n && v >= -9_007_199_254_740_992n) return Number(v) / 1e12;
  return Number(formatDecimal(v));
}

