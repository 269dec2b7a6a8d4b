import { describe, expect, it } from 'vitest';
import { pgTextArray, toPicos } from './balances';

describe('pgTextArray', () => {
  it('joins plain values into one array literal', () => {
    expect(pgTextArray(['bc1', 'bc2', 'a b,{c}'])).toBe('{"bc1","bc2","a b,{c}"}');
    expect(pgTextArray([])).toBe('{}');
  });
  it("leaves values holding a quote or backslash to node-postgres' escaping", () => {
    const quoted = ['bc1', 'say "hi"'];
    expect(pgTextArray(quoted)).toBe(quoted);
    const slashed = ['a\\b'];
    expect(pgTextArray(slashed)).toBe(slashed);
  });
});

describe('toPicos', () => {
  it('reads numeric(38,12) text exactly', () => {
    expect(toPicos('1.000000000001')).toBe(1_000_000_000_001n);
    expect(toPicos('-2.5')).toBe(-2_500_000_000_000n);
    expect(toPicos('7')).toBe(7_000_000_000_000n);
  });
});
