// ISO 8601 date-time parsing without Date or regexes: this runs once per event on the ingest hot path.

/** Returned by parseTimestamp when the text is not ISO 8601 date-time with a zone at all. */
export const NOT_ISO = '';

const MONTH_NAMES = [
  'January', 'February', 'March', 'April', 'May', 'June',
  'July', 'August', 'September', 'October', 'November', 'December',
];

// Longest accepted form: 2026-11-25T10:00:00.123456789+05:30 is 35 characters.
const MAX_TIMESTAMP_LENGTH = 40;

function digit(s: string, i: number): number {
  const d = s.charCodeAt(i) - 48; // NaN past the end
  return d >= 0 && d <= 9 ? d : -1;
}

function two(s: string, i: number): number {
  const a = digit(s, i);
  const b = digit(s, i + 1);
  return a < 0 || b < 0 ? -1 : a * 10 + b;
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return isLeap(y) ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (month 1-12); correct for years 0-9999. */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const mp = (m + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/**
 * Parses `YYYY-MM-DDTHH:MM[:SS[.fraction]]` followed by `Z` or an offset (`+hh:mm`, `+hhmm`, `+hh`),
 * `T`/`Z` in either case, fraction of 1-9 digits (`.` or `,`), truncated to the millisecond.
 * Returns epoch milliseconds; NOT_ISO when the text does not have that shape; otherwise the reason the
 * date-time does not exist (e.g. "February 2026 has 28 days").
 */
export function parseTimestamp(s: string): number | string {
  const n = s.length;
  if (n < 17 || n > MAX_TIMESTAMP_LENGTH) return NOT_ISO;
  const y1 = two(s, 0);
  const y2 = two(s, 2);
  if (y1 < 0 || y2 < 0 || s.charCodeAt(4) !== 45 /* - */) return NOT_ISO;
  const month = two(s, 5);
  if (month < 0 || s.charCodeAt(7) !== 45) return NOT_ISO;
  const day = two(s, 8);
  const sep = s.charCodeAt(10);
  if (day < 0 || (sep !== 84 /* T */ && sep !== 116 /* t */)) return NOT_ISO;
  const hour = two(s, 11);
  if (hour < 0 || s.charCodeAt(13) !== 58 /* : */) return NOT_ISO;
  const minute = two(s, 14);
  if (minute < 0) return NOT_ISO;

  let i = 16;
  let second = 0;
  let millis = 0;
  if (s.charCodeAt(i) === 58) {
    second = two(s, i + 1);
    if (second < 0) return NOT_ISO;
    i += 3;
    const dot = s.charCodeAt(i);
    if (dot === 46 /* . */ || dot === 44 /* , */) {
      i++;
      let digits = 0;
      for (let d = digit(s, i); d >= 0; d = digit(s, ++i)) {
        if (digits === 0) millis += d * 100;
        else if (digits === 1) millis += d * 10;
        else if (digits === 2) millis += d;
        digits++;
      }
      if (digits === 0 || digits > 9) return NOT_ISO;
    }
  }

  if (i >= n) return NOT_ISO; // no zone
  const z = s.charCodeAt(i);
  let offsetMinutes = 0;
  let offsetHour = 0;
  let offsetMinute = 0;
  if (z === 90 /* Z */ || z === 122 /* z */) {
    i++;
  } else if (z === 43 /* + */ || z === 45 /* - */) {
    offsetHour = two(s, i + 1);
    if (offsetHour < 0) return NOT_ISO;
    i += 3;
    if (i < n) {
      if (s.charCodeAt(i) === 58) i++;
      offsetMinute = two(s, i);
      if (offsetMinute < 0) return NOT_ISO;
      i += 2;
    }
    offsetMinutes = (z === 45 ? -1 : 1) * (offsetHour * 60 + offsetMinute);
  } else {
    return NOT_ISO;
  }
  if (i !== n) return NOT_ISO;

  const year = y1 * 100 + y2;
  if (month < 1 || month > 12) return `month ${s.slice(5, 7)} does not exist`;
  if (day < 1) return `day ${s.slice(8, 10)} does not exist`;
  const dim = daysInMonth(year, month);
  if (day > dim) return `${MONTH_NAMES[month - 1]} ${s.slice(0, 4)} has ${dim} days`;
  if (hour > 23) return 'hour must be 00-23';
  if (minute > 59) return 'minute must be 00-59';
  if (second > 59) return 'second must be 00-59';
  if (offsetHour > 23) return 'zone offset hours must be 00-23';
  if (offsetMinute > 59) return 'zone offset minutes must be 00-59';

  return (
    daysFromCivil(year, month, day) * 86_400_000 +
    hour * 3_600_000 +
    minute * 60_000 +
    second * 1000 +
    millis -
    offsetMinutes * 60_000
  );
}

/** A human duration: "5h12m", "2d3h", "45s", "250ms". Whole units, truncated; milliseconds only below 1 s. */
export function formatDuration(ms: number): string {
  const total = Math.ceil(ms);
  if (total < 1000) return `${total}ms`;
  let secs = Math.floor(total / 1000);
  const days = Math.floor(secs / 86_400);
  secs -= days * 86_400;
  const hours = Math.floor(secs / 3600);
  secs -= hours * 3600;
  const minutes = Math.floor(secs / 60);
  secs -= minutes * 60;
  let out = '';
  if (days > 0) out += `${days}d`;
  if (hours > 0) out += `${hours}h`;
  if (minutes > 0) out += `${minutes}m`;
  if (secs > 0) out += `${secs}s`;
  return out;
}
