// UTF-8 and JSON pieces shared by the payload writers (tsv.ts, rowbinary.ts). No ClickHouse client here,
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

/**
 * `s` as a JSON string literal (JSON.stringify's escapes) in UTF-8 at b[at]; returns the end.
 * Every backslash of the JSON is written `slashes` times: 1 for RowBinary (bytes as they are),
 * 2 for TabSeparated (which escapes backslashes itself). Needs room for s.length * (5 +
 * slashes) + 2 bytes (a lone surrogate, \udxxx, per UTF-16 unit).
 */
export function putJsonString(b: Uint8Array, at: number, s: string, slashes: 1 | 2): number {
  const two = slashes === 2;
  b[at++] = 34;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x80) {
      if (c === 34 || c === 92) {
        b[at++] = 92;
        if (two) b[at++] = 92;
        if (c === 92 && two) b[at++] = 92;
      }
      b[at++] = c;
    } else if (c < 0x20) {
      b[at++] = 92;
      if (two) b[at++] = 92;
      const short = c === 8 ? 98 : c === 9 ? 116 : c === 10 ? 110 : c === 12 ? 102 : c === 13 ? 114 : 0;
      if (short) b[at++] = short;
      else {
        b[at++] = 117; // u00xx
        b[at++] = 48;
        b[at++] = 48;
        b[at++] = HEX[c >> 4]!;
        b[at++] = HEX[c & 15]!;
      }
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (isSurrogatePair(c, d)) {
        at = putPair(b, at, c, d);
        i++;
      } else {
        // A lone surrogate: \udxxx, as JSON.stringify writes it.
        b[at++] = 92;
        if (two) b[at++] = 92;
        b[at++] = 117;
        b[at++] = HEX[c >> 12]!;
        b[at++] = HEX[(c >> 8) & 15]!;
        b[at++] = HEX[(c >> 4) & 15]!;
        b[at++] = HEX[c & 15]!;
      }
    } else at = putUnit(b, at, c);
  }
  b[at++] = 34;
  return at;
}

/** What writeFlatJson writes through: one byte, ASCII text as it is, a JSON string literal. */
export interface JsonTarget {
  byte(c: number): unknown;
  raw(s: string): unknown;
  jsonString(s: string): void;
}

/**
 * A flat object as JSON.stringify writes it, without building the JSON text: keys in
 * Object.keys order, strings through the target's jsonString, numbers as String() (non-finite
 * ones as null). Only string, number, boolean and null values: at any other value it stops and
 * returns false, leaving what it wrote for the caller to take back.
 */
export function writeFlatJson(w: JsonTarget, obj: Record<string, unknown>): boolean {
  const keys = Object.keys(obj);
  w.byte(123);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const v = obj[key];
    if (i > 0) w.byte(44);
    w.jsonString(key);
    w.byte(58);
    if (typeof v === 'string') w.jsonString(v);
    else if (typeof v === 'number') w.raw(Number.isFinite(v) ? String(v) : 'null');
    else if (typeof v === 'boolean') w.raw(v ? 'true' : 'false');
    else if (v === null) w.raw('null');
    else return false;
  }
  w.byte(125);
  return true;
}
