// Writing TabSeparated insert payloads (see insertTsv). No ClickHouse client here, so worker
// threads can build payloads without loading one.

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
