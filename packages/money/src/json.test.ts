import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MoneyError, ONE, assertExactJsonNumbers, parseDecimal, stringifyJson } from './index';
import { stringifyJsonSlow } from './json';

function imprecise(text: string): MoneyError {
  try {
    assertExactJsonNumbers(text);
  } catch (e) {
    expect(e).toBeInstanceOf(MoneyError);
    expect((e as MoneyError).code).toBe('imprecise_number');
    return e as MoneyError;
  }
  throw new Error(`expected ${text} to be refused`);
}

describe('stringifyJson', () => {
  it('writes bigints as exact JSON numbers, anywhere in the value', () => {
    expect(stringifyJson({ balance: parseDecimal('1000.0000005') })).toBe('{"balance":1000.0000005}');
    expect(
      stringifyJson({
        customer: 'c_1',
        lines: [
          { amount: -1_500_000_000_000n, qty: 3n * ONE, tags: ['a'] },
          { amount: 0n, nested: { deeper: [1n, null, 2.5, true] } },
        ],
        total: parseDecimal('99999999999999999999999999.999999999999'),
      }),
    ).toBe(
      '{"customer":"c_1","lines":[{"amount":-1.5,"qty":3,"tags":["a"]},{"amount":0,"nested":{"deeper":[0.000000000001,null,2.5,true]}}],' +
        '"total":99999999999999999999999999.999999999999}',
    );
    expect(stringifyJson(0n)).toBe('0');
    expect(stringifyJson(-7n)).toBe('-0.000000000007');
    expect(stringifyJson([5n])).toBe('[0.000000000005]');
    expect(stringifyJson({ a: 1, b: 'x' })).toBe('{"a":1,"b":"x"}');
  });

  it('behaves like JSON.stringify for everything else', () => {
    const when = new Date('2025-01-02T03:04:05Z');
    expect(stringifyJson({ when, skip: undefined, f: () => 1, n: NaN, arr: [undefined] })).toBe(
      '{"when":"2025-01-02T03:04:05.000Z","n":null,"arr":[null]}',
    );
    expect(stringifyJson({ toJSON: () => ({ x: 1n }) })).toBe('{"x":0.000000000001}');
    expect(() => stringifyJson(undefined)).toThrow(TypeError);
    const cyclic: Record<string, unknown> = { a: 1n };
    cyclic.self = cyclic;
    expect(() => stringifyJson(cyclic)).toThrow(TypeError);
  });

  it('never turns a string into a number', () => {
    const tricky = [
      '\u0000123',
      '\u0000-1.5',
      '\\u0000123',
      '"\\u0000123"',
      '\\\u00001',
      '\u00001\u0000',
      '__bigint__1',
      '\u0000',
      '\u00001.',
    ];
    for (const s of tricky) {
      const value = { s, n: 2n, list: [s, 3n], [s]: 4n };
      const text = stringifyJson(value);
      const back = JSON.parse(text) as Record<string, unknown>;
      expect(back.s).toBe(s);
      expect(back.n).toBe(0.000000000002);
      expect(back.list).toEqual([s, 0.000000000003]);
      expect(back[s]).toBe(0.000000000004);
      expect(text).toBe(stringifyJsonSlow(value));
    }
    // With no bigint at all the output is JSON.stringify's.
    expect(stringifyJson({ s: '\u0000123' })).toBe(JSON.stringify({ s: '\u0000123' }));
  });

  const jsonish: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.bigInt({ min: -(10n ** 38n), max: 10n ** 38n }),
      fc.string({ unit: fc.constantFrom('\u0000', '1', '.', '-', '"', '\\', 'u', '0', 'a') }),
      fc.string(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('value'), { maxLength: 5 }),
      fc.dictionary(fc.string({ unit: fc.constantFrom('\u0000', '1', 'k', '"') }), tie('value'), { maxKeys: 5 }),
    ),
  })).value;

  it('fast and slow paths agree, and the output is valid JSON (property)', () => {
    fc.assert(
      fc.property(jsonish, (v) => {
        const text = stringifyJson(v);
        expect(text).toBe(stringifyJsonSlow(v));
        expect(() => JSON.parse(text) as unknown).not.toThrow();
      }),
      { numRuns: 500 },
    );
  });

  it('equals JSON.stringify when there are no bigints (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(stringifyJson(v)).toBe(JSON.stringify(v));
      }),
    );
  });
});

describe('assertExactJsonNumbers', () => {
  it('accepts numbers that survive a double and anything inside strings', () => {
    for (const ok of [
      '{"a":"12345678901234567890"}',
      '1.5',
      '{"a":1.5,"b":-0.25,"c":[1,2,3],"d":true,"e":null}',
      '123456789012345',
      '0.123456789012345',
      '-1.23456789012345e-7',
      '1.50000000000000000000000',
      '0.00000000000000000000001',
      '100000000000000000000000',
      '{"s":"say \\"12345678901234567890\\" twice","n":1}',
      '{"s":"ends with backslash \\\\","n":2}',
      '{"k\\"12345678901234567890":1}',
      '',
      '[]',
    ]) {
      expect(() => assertExactJsonNumbers(ok), ok).not.toThrow();
    }
  });

  it('refuses numbers with more than 15 significant digits, saying where and what to do', () => {
    const err = imprecise('{"a":12345678901234567890}');
    expect(err.message).toContain('position 5');
    expect(err.message).toContain('12345678901234567890');
    expect(err.message).toContain('as a string');
    imprecise('0.1234567890123456789');
    imprecise('1234567890123456');
    imprecise('-9007199254740993');
    imprecise('[1, 2, 1.0000000000000001]');
    imprecise('{"a":1e5,"b":1.23456789012345678e-3}');
    // After a string holding escaped quotes and backslashes, scanning resumes correctly.
    const body = '{"s":"a \\"quoted\\" \\\\","n":12345678901234567890}';
    expect(imprecise(body).message).toContain(`position ${body.indexOf('1234')}`);
    imprecise('{"s":"\\\\\\"","n":12345678901234567890}');
  });

  it('matches what JSON.parse can hold (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 20n }), fc.integer({ min: 0, max: 20 }), (digits, point) => {
        const s = digits.toString();
        const text = point > 0 && point < s.length ? `${s.slice(0, s.length - point)}.${s.slice(s.length - point)}` : s;
        const sig = s.replace(/^0+/, '').replace(/0+$/, '').length;
        if (sig <= 15) {
          expect(() => assertExactJsonNumbers(text)).not.toThrow();
          // and then the double reads back as the same decimal value, unless it is too large
          // for a double to be trusted (>= 2^53), which parseDecimal refuses on its own
          const n = JSON.parse(text) as number;
          if (Math.abs(n) < 2 ** 53) expect(parseDecimal(n)).toBe(parseDecimal(text));
          else expect(() => parseDecimal(n)).toThrow(/imprecise|send it as a string/);
        } else {
          expect(() => assertExactJsonNumbers(`{"v":${text}}`)).toThrow(MoneyError);
        }
      }),
    );
  });
});
