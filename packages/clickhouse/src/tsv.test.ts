import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TsvWriter, tsvField } from './tsv';

const utf8 = (s: string) => Buffer.from(new TextEncoder().encode(s));
const written = (write: (w: TsvWriter) => unknown) => {
  const w = new TsvWriter(4);
  write(w);
  return Buffer.from(w.bytes());
};

// Every UTF-16 unit, lone surrogates and control characters included.
const anyString = fc.string({ unit: 'binary', maxLength: 12 });
const scalar = fc.oneof(anyString, fc.double(), fc.integer(), fc.constantFrom(-0, 1e21, 5e-324, Number.MAX_SAFE_INTEGER + 2, NaN, Infinity, -Infinity), fc.boolean(), fc.constant(null));

describe('TsvWriter.json', () => {
  it('writes a flat object as field(JSON.stringify(obj)) does', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.oneof(anyString, fc.constantFrom('1', '0', '__proto__', '10', 'a')), scalar, { maxKeys: 6 }), (obj) => {
        let ok = false;
        const got = written((w) => (ok = w.json(obj)));
        expect(ok).toBe(true);
        expect(got.toString('latin1')).toBe(utf8(tsvField(JSON.stringify(obj))).toString('latin1'));
      }),
      { numRuns: 2000 },
    );
  });

  it('escapes the characters named: quotes, backslashes, controls, tab, newline, lone surrogates, DEL, non-ASCII', () => {
    const obj = { 'k"\\': 'a"b\\c\u0000\u0001\b\f\n\r\t\u001f\u007fé€😀\ud800x\udc00', '2': 1.5, n: -0, big: 1e21, no: NaN, t: true, z: null };
    expect(written((w) => w.json(obj)).toString('latin1')).toBe(utf8(tsvField(JSON.stringify(obj))).toString('latin1'));
  });

  it('writes nothing and answers false for values JSON.stringify would treat otherwise', () => {
    for (const v of [undefined, [1], { a: 1 }, new Date(0), new Uint8Array(1), () => 1, Symbol('s')]) {
      const w = new TsvWriter(4);
      w.raw('x');
      expect(w.json({ a: 'b', v })).toBe(false);
      expect(Buffer.from(w.bytes()).toString()).toBe('x');
    }
  });
});

describe('TsvWriter.chunk and truncate', () => {
  it('copies bytes written before, short and long, and cuts back', () => {
    const short = written((w) => w.field('a\tb'));
    const long = written((w) => w.field('x'.repeat(100)));
    const w = new TsvWriter(2);
    w.chunk(short).byte(9);
    const mark = w.length;
    w.chunk(long).chunk(short);
    expect(Buffer.from(w.bytes()).toString()).toBe(`a\\tb\t${'x'.repeat(100)}a\\tb`);
    w.truncate(mark);
    expect(Buffer.from(w.bytes()).toString()).toBe('a\\tb\t');
    expect(() => w.truncate(mark + 1)).toThrow(RangeError);
  });
});
