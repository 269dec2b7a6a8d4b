// JSON mapping. API JSON carries amounts as JSON numbers (Orb's shape): Picos go out as exact
// number tokens ("1000.0000005"), never through a double. On the way in, a number token with
// more than 15 significant digits cannot survive JSON.parse, so it is refused before parsing.

import { formatDecimal } from './decimal';
import { MoneyError, shown } from './errors';

/** Any decimal with at most this many significant digits survives a trip through a double. */
const MAX_EXACT_JSON_DIGITS = 15;

// A bigint leaves the replacer as the string MARK + digits, which JSON.stringify writes as
// "\u0000<digits>" (it always escapes U+0000); one regex pass then replaces each such token by
// the bare number. A string or key of the value itself that holds U+0000 followed by digits is
// written the same way, so the marker alone is not proof: every replacement is counted, and
// when there are more than the bigints we marked, the output is rebuilt by a plain recursive
// serializer instead (rare; it reads the value a second time). So data is never altered.
const MARK = '\u0000';
const MARKED_RE = /"\\u0000(-?[0-9]+(?:\.[0-9]+)?)"/g;

/**
 * JSON.stringify, except that every bigint (Picos) anywhere in `value` is written as a raw JSON
 * number equal to formatDecimal(v): {balance: 1_000_000_000_500_000n} -> {"balance":1000.0000005}.
 * Other values follow JSON.stringify (toJSON, undefined dropped, ...). Throws TypeError when
 * `value` itself serializes to nothing (undefined, a function, a symbol) or is circular.
 */
export function stringifyJson(value: unknown): string {
  let bigints = 0;
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'bigint') return v;
    bigints++;
    return MARK + formatDecimal(v);
  });
  if (text === undefined) throw new TypeError('stringifyJson: value has no JSON form');
  if (bigints === 0) return text;
  let replaced = 0;
  const out = text.replace(MARKED_RE, (_m, num: string) => {
    replaced++;
    return num;
  });
  // Each marker we wrote matches exactly once; any extra match came from the data itself.
  return replaced === bigints ? out : stringifyJsonSlow(value);
}

/**
 * A plain recursive serializer with the same output as stringifyJson. Used when the fast path
 * cannot tell its markers from the data; exported for tests only (not from index.ts).
 */
export function stringifyJsonSlow(value: unknown): string {
  const out = writeValue('', value, []);
  if (out === undefined) throw new TypeError('stringifyJson: value has no JSON form');
  return out;
}

function writeValue(key: string, value: unknown, stack: object[]): string | undefined {
  let v = value;
  if ((typeof v === 'object' && v !== null) || typeof v === 'bigint') {
    const toJSON = (v as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') v = (toJSON as (k: string) => unknown).call(v, key);
  }
  if (v instanceof Number) v = Number(v);
  else if (v instanceof String) v = String(v);
  else if (v instanceof Boolean) v = v.valueOf();
  else if (v instanceof BigInt) v = v.valueOf();
  switch (typeof v) {
    case 'bigint':
      return formatDecimal(v);
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (stack.includes(v)) throw new TypeError('stringifyJson: circular structure');
      stack.push(v);
      let out: string;
      if (Array.isArray(v)) {
        const items: string[] = [];
        for (let i = 0; i < v.length; i++) items.push(writeValue(String(i), v[i] as unknown, stack) ?? 'null');
        out = `[${items.join(',')}]`;
      } else {
        const members: string[] = [];
        const obj = v as Record<string, unknown>;
        for (const k of Object.keys(obj)) {
          const item = writeValue(k, obj[k], stack);
          if (item !== undefined) members.push(`${JSON.stringify(k)}:${item}`);
        }
        out = `{${members.join(',')}}`;
      }
      stack.pop();
      return out;
    }
    default:
      return undefined; // undefined, function, symbol
  }
}

/**
 * Scans raw request JSON (before JSON.parse) and throws MoneyError('imprecise_number') at the
 * first number token, outside strings, with more than 15 significant digits: such a value would
 * be silently changed by JSON.parse and must be sent as a string instead. Does not validate the
 * JSON otherwise (JSON.parse does that).
 */
export function assertExactJsonNumbers(text: string): void {
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) i = skipString(text, i + 1);
    else if (c === 45 /* - */ || (c >= 48 && c <= 57)) i = checkNumber(text, i);
    else i++;
  }
}

/** Index just past the closing quote of a string whose content starts at `from`. */
function skipString(text: string, from: number): number {
  let j = from;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return text.length;
    let k = q - 1;
    while (k >= from && text.charCodeAt(k) === 92 /* \ */) k--;
    if ((q - 1 - k) % 2 === 0) return q + 1; // an even run of backslashes escapes only itself
    j = q + 1;
  }
}

/** Checks the number token at `start`; returns the index just past it. */
function checkNumber(text: string, start: number): number {
  const n = text.length;
  let i = start;
  if (text.charCodeAt(i) === 45) i++;
  let significant = 0; // digits from the first non-zero digit on
  let trailingZeros = 0; // zeros at the end of those
  let inFraction = false;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (c === 48) {
        if (significant > 0) {
          significant++;
          trailingZeros++;
        }
      } else {
        significant++;
        trailingZeros = 0;
      }
    } else if (c === 46 /* . */ && !inFraction) {
      inFraction = true;
    } else {
      break;
    }
  }
  const c = text.charCodeAt(i);
  if (c === 101 || c === 69 /* e E */) {
    i++;
    const s = text.charCodeAt(i);
    if (s === 43 || s === 45) i++;
    while (i < n && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
  }
  const digits = significant - trailingZeros;
  if (digits > MAX_EXACT_JSON_DIGITS) {
    const token = text.slice(start, i);
    throw new MoneyError(
      'imprecise_number',
      `the number ${shown(token)} at position ${start} has ${digits} significant digits; a JSON number keeps at most ` +
        `${MAX_EXACT_JSON_DIGITS} exactly, so send this value as a string ("${shown(token)}")`,
    );
  }
  return Math.max(i, start + 1);
}
