import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_ABS_PICOS,
  MoneyError,
  ONE,
  SCALE,
  abs,
  ceilDivQuantity,
  cmp,
  currencyDecimals,
  div,
  divRoundInt,
  formatDecimal,
  formatFixed,
  fromInt,
  max,
  min,
  mul,
  parseDecimal,
  roundTo,
  sum,
  toNumber,
  type Rounding,
} from './index';

const p = (s: string): bigint => parseDecimal(s);
const f = formatDecimal;

function moneyError(fn: () => unknown): MoneyError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MoneyError);
    return e as MoneyError;
  }
  throw new Error('expected a MoneyError');
}

describe('representation', () => {
  it('is bigint picos at scale 12', () => {
    expect(SCALE).toBe(12);
    expect(ONE).toBe(1_000_000_000_000n);
    expect(MAX_ABS_PICOS).toBe(10n ** 38n - 1n);
  });
});

describe('parseDecimal / formatDecimal', () => {
  it('adds 0.1 + 0.2 to exactly 0.3', () => {
    expect(f(p('0.1') + p('0.2'))).toBe('0.3');
    expect(f(parseDecimal(0.1) + parseDecimal(0.2))).toBe('0.3');
    expect(p('0.1') + p('0.2')).toBe(p('0.3'));
  });

  it('parses the accepted forms', () => {
    expect(p('0')).toBe(0n);
    expect(p('-0')).toBe(0n);
    expect(p('12')).toBe(12n * ONE);
    expect(p('+12')).toBe(12n * ONE);
    expect(p('-1.5')).toBe(-1_500_000_000_000n);
    expect(p('.5')).toBe(500_000_000_000n);
    expect(p('5.')).toBe(5n * ONE);
    expect(p('0.0000005')).toBe(500_000n);
    expect(p('5e-7')).toBe(500_000n);
    expect(p('1.5E+3')).toBe(1500n * ONE);
    expect(p('1.5e3')).toBe(1500n * ONE);
    expect(p('0.000000000001')).toBe(1n);
    expect(p('1e-12')).toBe(1n);
    expect(p('0012.3400')).toBe(12_340_000_000_000n);
    expect(p('0.0000000000010000')).toBe(1n); // trailing zeros are not significant
    expect(p('123000e-15')).toBe(123n);
    expect(p('0e999999999999')).toBe(0n);
  });

  it('rejects malformed text as invalid_decimal', () => {
    for (const bad of ['', '+', '-', '.', 'e5', '1e', '1e+', ' 1', '1 ', '1,5', '0x10', 'NaN', 'Infinity', '-Infinity', '1.2.3', '--1', '1_000', '١']) {
      const err = moneyError(() => parseDecimal(bad, 'amount'));
      expect(err.code, bad).toBe('invalid_decimal');
      expect(err.field).toBe('amount');
      expect(err.message.startsWith('amount: ')).toBe(true);
    }
    expect(moneyError(() => parseDecimal(null as unknown as string, 'x')).code).toBe('invalid_decimal');
  });

  it('rejects 13 decimal places, naming the field, instead of rounding', () => {
    const err = moneyError(() => parseDecimal('0.0000000000001', 'amount'));
    expect(err.code).toBe('too_many_decimals');
    expect(err.field).toBe('amount');
    expect(err.name).toBe('MoneyError');
    expect(err.message).toBe('amount: 0.0000000000001 has 13 decimal places; at most 12 are kept');
    expect(moneyError(() => p('1e-13')).code).toBe('too_many_decimals');
    expect(moneyError(() => p('1.0000000000005')).code).toBe('too_many_decimals');
    expect(moneyError(() => p('5e-999999999999999999999')).code).toBe('too_many_decimals');
  });

  it('holds very large balances exactly and rejects 1e26', () => {
    const top = '99999999999999999999999999.999999999999';
    expect(p(top)).toBe(MAX_ABS_PICOS);
    expect(f(p(top))).toBe(top);
    expect(p(`-${top}`)).toBe(-MAX_ABS_PICOS);
    for (const big of ['1e26', '100000000000000000000000000', '-1e26', '1e999999999999999999999', '99999999999999999999999999.9999999999999']) {
      const err = moneyError(() => parseDecimal(big, 'balance'));
      expect(['out_of_range', 'too_many_decimals'], big).toContain(err.code);
    }
    expect(moneyError(() => p('1e26')).code).toBe('out_of_range');
    expect(moneyError(() => parseDecimal(10n ** 26n)).code).toBe('out_of_range');
    expect(parseDecimal(10n ** 26n - 1n)).toBe((10n ** 26n - 1n) * ONE);
    // Sums of large values stay exact (no range check inside arithmetic).
    const big = p('12345678901234567890123.456789012345');
    expect(f(sum([big, big, big, p('0.000000000001')]))).toBe('37037036703703703670370.370367037036');
    expect(f(big * 3n - big * 3n)).toBe('0');
  });

  it('reads numbers through their shortest round-trip text', () => {
    expect(parseDecimal(0.1)).toBe(100_000_000_000n);
    expect(parseDecimal(1e-7)).toBe(100_000n);
    expect(parseDecimal(5e-7)).toBe(500_000n);
    expect(f(parseDecimal(5e-7))).toBe('0.0000005');
    expect(parseDecimal(-2.5)).toBe(-2_500_000_000_000n);
    expect(parseDecimal(-0)).toBe(0n);
    expect(parseDecimal(Number.MAX_SAFE_INTEGER)).toBe(BigInt(Number.MAX_SAFE_INTEGER) * ONE);
    expect(moneyError(() => parseDecimal(2 ** 53, 'q')).code).toBe('imprecise_number');
    expect(moneyError(() => parseDecimal(1e21)).code).toBe('imprecise_number');
    expect(moneyError(() => parseDecimal(NaN)).code).toBe('invalid_decimal');
    expect(moneyError(() => parseDecimal(Infinity)).code).toBe('invalid_decimal');
    expect(moneyError(() => parseDecimal(1e-13)).code).toBe('too_many_decimals');
    // 0.1 + 0.2 as doubles is 0.30000000000000004: 17 decimals, refused rather than rounded.
    expect(moneyError(() => parseDecimal(0.1 + 0.2)).code).toBe('too_many_decimals');
  });

  it('reads bigints as whole units', () => {
    expect(parseDecimal(3n)).toBe(3n * ONE);
    expect(parseDecimal(-3n)).toBe(-3n * ONE);
  });

  it('formats minimally', () => {
    expect(f(0n)).toBe('0');
    expect(f(ONE)).toBe('1');
    expect(f(500_000n)).toBe('0.0000005');
    expect(f(-1_500_000_000_000n)).toBe('-1.5');
    expect(f(1n)).toBe('0.000000000001');
    expect(f(-1n)).toBe('-0.000000000001');
    expect(f(10n * ONE)).toBe('10');
  });

  it('round-trips every value (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -MAX_ABS_PICOS, max: MAX_ABS_PICOS }), (v) => {
        const text = f(v);
        expect(text).toMatch(/^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$/);
        expect(p(text)).toBe(v);
      }),
    );
  });

  it('parses any exponent spelling of a value to the same picos (property)', () => {
    // v x 10^-scale written with an explicit decimal point (no exponent)
    const plain = (v: bigint, scale: number): string => {
      const digits = (v < 0n ? -v : v).toString().padStart(scale + 1, '0');
      const cut = digits.length - scale;
      return `${v < 0n ? '-' : ''}${digits.slice(0, cut)}${scale > 0 ? `.${digits.slice(cut)}` : ''}`;
    };
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }),
        fc.integer({ min: -12, max: 20 }),
        fc.constantFrom('e', 'E', 'e+'),
        (v, k, e) => {
          // (v x 10^-(12+k)) x 10^k = v picos
          const text = k >= 0 && e === 'e+' ? `${plain(v, 12 + k)}e+${k}` : `${plain(v, 12 + k)}${e[0]}${k}`;
          expect(p(text)).toBe(v);
        },
      ),
    );
  });
});

describe('fromInt / toNumber', () => {
  it('converts whole numbers', () => {
    expect(fromInt(7)).toBe(7n * ONE);
    expect(fromInt(-7n)).toBe(-7n * ONE);
    expect(moneyError(() => fromInt(1.5)).code).toBe('invalid_decimal');
    expect(moneyError(() => fromInt(2 ** 60)).code).toBe('imprecise_number');
    expect(moneyError(() => fromInt(10n ** 26n)).code).toBe('out_of_range');
  });

  it('gives the nearest double, for display only', () => {
    expect(toNumber(p('0.1'))).toBe(0.1);
    expect(toNumber(p('0.3'))).toBe(0.3);
    expect(toNumber(p('-1.5'))).toBe(-1.5);
    expect(toNumber(p('5e-7'))).toBe(5e-7);
    expect(toNumber(p('123456789.123456789'))).toBe(Number('123456789.123456789'));
    expect(toNumber(p('-98765432109876543.21'))).toBe(Number('-98765432109876543.21'));
    expect(toNumber(MAX_ABS_PICOS)).toBe(1e26);
  });
});

describe('rating amounts', () => {
  const price = p('0.0000005');
  it('prices tiny unit prices exactly', () => {
    expect(f(mul(price, fromInt(1)))).toBe('0.0000005');
    expect(f(mul(price, fromInt(3)))).toBe('0.0000015');
    expect(f(mul(price, fromInt(2_000_000)))).toBe('1');
    // Summing 2,000,000 per-event charges gives the same.
    let total = 0n;
    for (let i = 0; i < 2_000_000; i++) total += mul(price, ONE);
    expect(f(total)).toBe('1');
  });

  it('rounds a product once, at scale 12', () => {
    // 0.000000000001 x 0.5 = 0.0000000000005 -> tie -> even (0)
    expect(mul(1n, p('0.5'))).toBe(0n);
    expect(mul(3n, p('0.5'))).toBe(2n);
    expect(mul(1n, p('0.5'), 'half_up')).toBe(1n);
    expect(mul(1n, p('0.5'), 'ceil')).toBe(1n);
  });
});

describe('rounding modes', () => {
  const modes: Rounding[] = ['half_even', 'half_up', 'floor', 'ceil', 'down'];
  // value / 10 for each mode
  const table: Array<[bigint, Record<Rounding, bigint>]> = [
    [25n, { half_even: 2n, half_up: 3n, floor: 2n, ceil: 3n, down: 2n }],
    [35n, { half_even: 4n, half_up: 4n, floor: 3n, ceil: 4n, down: 3n }],
    [-25n, { half_even: -2n, half_up: -3n, floor: -3n, ceil: -2n, down: -2n }],
    [-35n, { half_even: -4n, half_up: -4n, floor: -4n, ceil: -3n, down: -3n }],
    [24n, { half_even: 2n, half_up: 2n, floor: 2n, ceil: 3n, down: 2n }],
    [26n, { half_even: 3n, half_up: 3n, floor: 2n, ceil: 3n, down: 2n }],
    [-24n, { half_even: -2n, half_up: -2n, floor: -3n, ceil: -2n, down: -2n }],
    [-26n, { half_even: -3n, half_up: -3n, floor: -3n, ceil: -2n, down: -2n }],
    [20n, { half_even: 2n, half_up: 2n, floor: 2n, ceil: 2n, down: 2n }],
    [-20n, { half_even: -2n, half_up: -2n, floor: -2n, ceil: -2n, down: -2n }],
    [5n, { half_even: 0n, half_up: 1n, floor: 0n, ceil: 1n, down: 0n }],
    [-5n, { half_even: 0n, half_up: -1n, floor: -1n, ceil: 0n, down: 0n }],
  ];

  it.each(table)('divRoundInt(%s, 10)', (a, expected) => {
    for (const mode of modes) {
      expect(divRoundInt(a, 10n, mode), mode).toBe(expected[mode]);
      // a negative divisor flips the sign of the quotient the same way
      expect(divRoundInt(-a, -10n, mode), `${mode} with negative divisor`).toBe(expected[mode]);
    }
  });

  it.each(table)('mul(%s tenths x 0.1) and div by 10, roundTo(%s tenths, 0)', (a, expected) => {
    // a x 10^-12 ... use whole tenths: x = a/10 units rounded to a whole unit.
    const tenths = a * (ONE / 10n);
    for (const mode of modes) {
      expect(roundTo(tenths, 0, mode), `roundTo ${mode}`).toBe(expected[mode] * ONE);
      // a picos x 0.1 -> a/10 picos
      expect(mul(a, p('0.1'), mode), `mul ${mode}`).toBe(expected[mode]);
      // a picos / 10 -> a/10 picos
      expect(div(a, fromInt(10), mode), `div ${mode}`).toBe(expected[mode]);
    }
  });

  it('rounds to cents', () => {
    expect(f(roundTo(p('12.345'), 2))).toBe('12.34');
    expect(f(roundTo(p('12.355'), 2))).toBe('12.36');
    expect(f(roundTo(p('-12.345'), 2))).toBe('-12.34');
    expect(f(roundTo(p('-12.345'), 2, 'half_up'))).toBe('-12.35');
    expect(f(roundTo(p('12.3451'), 2))).toBe('12.35');
    expect(f(roundTo(p('0.000000000001'), 12))).toBe('0.000000000001');
    expect(f(roundTo(p('0.000000000001'), 20))).toBe('0.000000000001');
    expect(() => roundTo(1n, -1)).toThrow(RangeError);
    expect(() => roundTo(1n, 1.5)).toThrow(RangeError);
  });

  it('divides with a stated rounding', () => {
    expect(f(div(fromInt(1), fromInt(3)))).toBe('0.333333333333');
    expect(f(div(fromInt(2), fromInt(3)))).toBe('0.666666666667');
    expect(f(div(fromInt(2), fromInt(3), 'down'))).toBe('0.666666666666');
    expect(f(div(fromInt(-2), fromInt(3), 'floor'))).toBe('-0.666666666667');
    expect(f(div(p('1.5'), p('0.5')))).toBe('3');
    const err = moneyError(() => div(ONE, 0n));
    expect(err.code).toBe('division_by_zero');
    expect(moneyError(() => divRoundInt(1n, 0n, 'down')).code).toBe('division_by_zero');
  });

  it('agrees with exact rational rounding (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }),
        fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }).filter((b) => b !== 0n),
        fc.constantFrom(...modes),
        (a, b, mode) => {
          const q = divRoundInt(a, b, mode);
          // q is one of the two integers around a/b, and the error is within the mode's bound:
          // compare b*q with a in units of |b| (all exact).
          const sign = b < 0n ? -1n : 1n;
          const diff = (a - q * b) * sign; // (a/b - q) x |b|
          const absB = b * sign;
          expect(diff < absB && diff > -absB).toBe(true);
          if (mode === 'floor') expect(diff >= 0n).toBe(true);
          if (mode === 'ceil') expect(diff <= 0n).toBe(true);
          if (mode === 'down') expect(q === 0n || (q > 0n) === (a * sign > 0n)).toBe(true);
          if (mode === 'half_even' || mode === 'half_up') expect(2n * abs(diff) <= absB).toBe(true);
        },
      ),
    );
  });
});

describe('formatFixed', () => {
  it('writes exactly the requested decimals, half-even', () => {
    expect(formatFixed(p('12.3'), 2)).toBe('12.30');
    expect(formatFixed(p('12.345'), 2)).toBe('12.34');
    expect(formatFixed(p('12.355'), 2)).toBe('12.36');
    expect(formatFixed(p('-12.345'), 2)).toBe('-12.34');
    expect(formatFixed(p('-0.004'), 2)).toBe('0.00');
    expect(formatFixed(p('-0.005'), 2)).toBe('0.00');
    expect(formatFixed(p('-0.015'), 2)).toBe('-0.02');
    expect(formatFixed(p('2.5'), 0)).toBe('2');
    expect(formatFixed(p('3.5'), 0)).toBe('4');
    expect(formatFixed(0n, 3)).toBe('0.000');
    expect(formatFixed(1n, 12)).toBe('0.000000000001');
    expect(formatFixed(1n, 14)).toBe('0.00000000000100');
    expect(formatFixed(MAX_ABS_PICOS, 2)).toBe('100000000000000000000000000.00');
    expect(() => formatFixed(1n, -2)).toThrow(RangeError);
  });
});

describe('quantities and helpers', () => {
  it('counts whole packages', () => {
    const size = fromInt(1000);
    expect(ceilDivQuantity(0n, size)).toBe(0n);
    expect(ceilDivQuantity(-5n * ONE, size)).toBe(0n);
    expect(ceilDivQuantity(1n, size)).toBe(1n);
    expect(ceilDivQuantity(fromInt(1000), size)).toBe(1n);
    expect(ceilDivQuantity(fromInt(1000) + 1n, size)).toBe(2n);
    expect(ceilDivQuantity(p('2.5'), p('0.5'))).toBe(5n);
    expect(moneyError(() => ceilDivQuantity(ONE, 0n)).code).toBe('division_by_zero');
    expect(moneyError(() => ceilDivQuantity(ONE, -ONE)).code).toBe('out_of_range');
  });

  it('compares and sums', () => {
    expect(min(3n, -1n, 2n)).toBe(-1n);
    expect(max(3n, -1n, 2n)).toBe(3n);
    expect(min(5n)).toBe(5n);
    expect(abs(-4n)).toBe(4n);
    expect(abs(4n)).toBe(4n);
    expect(cmp(1n, 2n)).toBe(-1);
    expect(cmp(2n, 2n)).toBe(0);
    expect(cmp(3n, 2n)).toBe(1);
    expect(sum([])).toBe(0n);
    expect(sum(new Set([1n, 2n, 3n]))).toBe(6n);
  });

  it('knows common currency minor units', () => {
    expect(currencyDecimals('USD')).toBe(2);
    expect(currencyDecimals('eur')).toBe(2);
    expect(currencyDecimals('JPY')).toBe(0);
    expect(currencyDecimals('KRW')).toBe(0);
    expect(currencyDecimals('BHD')).toBe(3);
    expect(currencyDecimals('KWD')).toBe(3);
    expect(currencyDecimals('CREDITS')).toBe(2);
    expect(currencyDecimals('constructor')).toBe(2);
  });
});
