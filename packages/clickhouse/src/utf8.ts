// UTF-8 pieces shared by the payload writers (tsv.ts, rowbinary.ts). No ClickHouse client here,
// so worker threads can load it.

/** Lowercase hex digits (JSON.stringify's \u escapes). */
export const HEX = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/** Whether UTF-16 units c then d are a high and a low surrogate (one code point). */
export const isSurrogatePair = (c: number, d: number) => c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff;

/** The UTF-8 of the code point of surrogates (hi, lo) at b[at]; returns the end. */
export function putPair(b: Uint8Array, at: number, hi: number, lo: number): number {
  const cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
  b[at] = 0xf0 | (cp >> 18);
  b[at + 1] = 0x80 | ((cp >> 12) & 63);
  b[at + 2] = 0x80 | ((cp >> 6) & 63);
  b[at + 3] = 0x80 | (cp & 63);
  return at + 4;
}

/** The UTF-8 of a UTF-16 unit from U+0080 up that is not a surrogate, at b[at]; returns the end. */
export function putUnit(b: Uint8Array, at: number, c: number): number {
  if (c < 0x800) {
    b[at] = 0xc0 | (c >> 6);
    b[at + 1] = 0x80 | (c & 63);
    return at + 2;
  }
  b[at] = 0xe0 | (c >> 12);
  b[at + 1] = 0x80 | ((c >> 6) & 63);
  b[at + 2] = 0x80 | (c & 63);
  return at + 3;
}
