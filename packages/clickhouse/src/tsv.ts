// Writing TabSeparated insert payloads (see insertTsv). No ClickHouse client here, so worker
// threads can build payloads without loading one.
import { ByteWriter } from './bytes';
import { isSurrogatePair, putJsonString, putPair, putUnit, writeFlatJson } from './utf8';

const TSV_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** A string field of a TabSeparated line: backslash, tab, newline and carriage return escaped. */
export function tsvField(s: string): string {
  // Most fields need nothing: one pass over the char codes is cheaper than a regular expression.
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 92 || c === 9 || c === 10 || c === 13) return s.replace(/[\\\t\n\r]/g, (x) => TSV_ESCAPES[x]!);
  }
  return s;
}

/**
 * A DateTime64(3) field from epoch milliseconds (>= 0): seconds padded to 10 digits, a point and
 * the milliseconds, which the TabSeparated parser reads as a Unix time (a shorter integer part
 * would be read as a date).
 */
export function tsvDateTime64(ms: number): string {
  if (!(ms >= 0) || !Number.isSafeInteger(ms)) throw new RangeError(`timestamp ${ms}: not a non-negative integer of milliseconds`);
  const s = String(Math.floor(ms / 1000));
  const f = ms % 1000;
  return `${s.length >= 10 ? s : s.padStart(10, '0')}.${f >= 100 ? f : f >= 10 ? `0${f}` : `00${f}`}`;
}

/**
 * Writes TabSeparated bytes straight into a growing buffer: the text of a row is never built as
 * a string (building, flattening and encoding the strings cost more than the rest of a row).
 * `field` escapes as `tsvField` and encodes UTF-8 as TextEncoder does (a lone surrogate becomes
 * U+FFFD); `raw` writes text known to need no escaping.
 */
export class TsvWriter extends ByteWriter {
  /** A string field, escaped. */
  field(s: string): this {
    this.room(s.length * 3);
    const b = this.buf;
    let at = this.at;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) {
        if (c === 92 || c === 9 || c === 10 || c === 13) {
          b[at++] = 92;
          b[at++] = c === 92 ? 92 : c === 9 ? 116 : c === 10 ? 110 : 114;
        } else b[at++] = c;
      } else if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (isSurrogatePair(c, d)) {
          at = putPair(b, at, c, d);
          i++;
        } else at = putUnit(b, at, 0xfffd); // a lone surrogate, as TextEncoder writes it
      } else at = putUnit(b, at, c);
    }
    this.at = at;
    return this;
  }

  /**
   * A flat object as `field(JSON.stringify(obj))` writes it, without building the JSON text: keys
   * in Object.keys order, strings escaped as JSON.stringify does (then the backslashes doubled for
   * TabSeparated), numbers as String() (non-finite ones as null). Only string, number, boolean
   * and null values: with any other value nothing is written and the result is false.
   */
  json(obj: Record<string, unknown>): boolean {
    const start = this.at;
    if (writeFlatJson(this, obj)) return true;
    this.at = start;
    return false;
  }

  /** A JSON string literal (JSON.stringify's escapes), escaped for TabSeparated: each backslash doubled. */
  jsonString(s: string): void {
    this.room(s.length * 7 + 2);
    this.at = putJsonString(this.buf, this.at, s, 2);
  }
}
