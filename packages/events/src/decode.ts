// Request bodies to Orb's `{events: [...]}` shape, by Content-Type. Malformed bodies are located
// (byte offset, and line:column for JSON) by a scanner that only runs after the fast parser failed.

import { Unpackr } from 'msgpackr';
import { isPlainObject, show } from './describe';
import { RequestError } from './errors';
import { DECODE_INFO, type DecodeInfo, type FieldNames } from './validate';

export const SUPPORTED_MEDIA_TYPES = [
  'application/json',
  'application/msgpack',
  'application/x-msgpack',
  'application/cloudevents-batch+json',
  'application/cloudevents+json',
] as const;

// Untrusted input: no structured-clone references, integers as plain numbers (as JSON would give).
// Extensions msgpackr knows (dates, sets, ...) decode, and validation rejects them where they do not belong.
const bodyUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, int64AsType: 'number' });

const CLOUDEVENTS_FIELD_NAMES: FieldNames = {
  idempotency_key: 'id',
  external_customer_id: 'subject',
  event_name: 'type',
  timestamp: 'time',
  properties: 'data',
  noCustomer: 'subject: is required (the external customer id)',
};

/** `application/json; charset=utf-8` -> `application/json`; absent or empty -> JSON. */
export function mediaTypeOf(contentType: string | undefined): string {
  if (contentType === undefined) return 'application/json';
  const semi = contentType.indexOf(';');
  const t = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return t === '' ? 'application/json' : t;
}

/**
 * Decodes a request body by its Content-Type into Orb's shape, ready for validateEvents.
 * Throws RequestError: malformed_json / malformed_msgpack (400, naming the position),
 * invalid_body (400, a CloudEvents body of the wrong kind), unsupported_media_type (415).
 */
export function decodeBody(contentType: string | undefined, body: Buffer | Uint8Array): unknown {
  const type = contentType === 'application/json' ? contentType : mediaTypeOf(contentType);
  switch (type) {
    case 'application/json':
      return parseJson(body);
    case 'application/msgpack':
    case 'application/x-msgpack':
      return parseMsgpack(body);
    case 'application/cloudevents-batch+json': {
      const list = parseJson(body);
      if (!Array.isArray(list)) {
        throw new RequestError('invalid_body', `body: a CloudEvents batch must be a JSON array, got ${kindOf(list)}`);
      }
      return fromCloudEvents(list);
    }
    case 'application/cloudevents+json': {
      const one = parseJson(body);
      if (!isPlainObject(one)) {
        throw new RequestError('invalid_body', `body: a CloudEvent must be a JSON object, got ${kindOf(one)}`);
      }
      return fromCloudEvents([one]);
    }
    default:
      throw new RequestError(
        'unsupported_media_type',
        `unsupported Content-Type ${JSON.stringify(contentType?.slice(0, 100))}; use ${SUPPORTED_MEDIA_TYPES.join(', ')}`,
      );
  }
}

function kindOf(v: unknown): string {
  return Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v;
}

function fromCloudEvents(list: unknown[]): { events: unknown[]; [DECODE_INFO]: DecodeInfo } {
  const events: unknown[] = new Array(list.length);
  const problems: (string[] | undefined)[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const ce = list[i];
    if (!isPlainObject(ce)) {
      events[i] = ce; // validateEvents reports it
      continue;
    }
    let errs: string[] | undefined;
    const version = ce.specversion;
    if (version !== undefined && version !== '1.0') {
      errs = [`specversion: must be "1.0", got ${show(version)}`];
    }
    if (ce.data_base64 !== undefined) {
      (errs ??= []).push('data_base64: binary data is not supported, send "data" as a JSON object');
    }
    problems[i] = errs;
    // `source` identifies the producer; events are keyed by customer and id alone, so it is ignored.
    events[i] = {
      idempotency_key: ce.id,
      external_customer_id: ce.subject,
      event_name: ce.type,
      timestamp: ce.time,
      properties: ce.data,
    };
  }
  return { events, [DECODE_INFO]: { names: CLOUDEVENTS_FIELD_NAMES, problems } };
}

// ---- JSON ----

function parseJson(body: Buffer | Uint8Array): unknown {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let text = buf.toString('utf8');
  let skipped = 0;
  if (text.charCodeAt(0) === 0xfeff) {
    // A byte order mark is not JSON, but some Windows tools write one.
    text = text.slice(1);
    skipped = 3;
  }
  if (text.length === 0) throw new RequestError('malformed_json', 'malformed JSON: the body is empty');
  try {
    return JSON.parse(text);
  } catch (cause) {
    const loc = locateJsonError(text);
    if (loc === undefined) {
      throw new RequestError('malformed_json', `malformed JSON: ${(cause as Error).message}`.slice(0, 300), 400, { cause });
    }
    const byte = skipped + Buffer.byteLength(text.slice(0, loc.pos), 'utf8');
    const lineStart = text.lastIndexOf('\n', loc.pos - 1) + 1;
    let line = 1;
    for (let i = text.indexOf('\n'); i >= 0 && i < loc.pos; i = text.indexOf('\n', i + 1)) line++;
    throw new RequestError(
      'malformed_json',
      `malformed JSON at byte ${byte} (line ${line}, column ${loc.pos - lineStart + 1}): ${loc.reason}`,
      400,
      { cause },
    );
  }
}

interface Location {
  pos: number;
  reason: string;
}

const VALUE = 0;
const KEY = 1;
const AFTER = 2;
const IN_OBJECT = 1;
const IN_ARRAY = 2;

function isWs(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function charAt(s: string, i: number): string {
  if (i >= s.length) return 'end of input';
  return JSON.stringify(String.fromCodePoint(s.codePointAt(i) ?? 0));
}

/** Where and why `s` is not JSON (RFC 8259); undefined if it is. Iterative, so deep nesting cannot overflow. */
export function locateJsonError(s: string): Location | undefined {
  const n = s.length;
  const stack: number[] = [];
  let state = VALUE;
  let i = 0;
  for (;;) {
    while (i < n && isWs(s.charCodeAt(i))) i++;
    if (state === VALUE) {
      if (i >= n) return { pos: i, reason: 'unexpected end of input, expected a value' };
      const c = s.charCodeAt(i);
      if (c === 123 /* { */ || c === 91 /* [ */) {
        i++;
        while (i < n && isWs(s.charCodeAt(i))) i++;
        if (s.charCodeAt(i) === (c === 123 ? 125 : 93)) {
          i++;
          state = AFTER;
        } else {
          stack.push(c === 123 ? IN_OBJECT : IN_ARRAY);
          state = c === 123 ? KEY : VALUE;
        }
      } else if (c === 34 /* " */) {
        const end = scanString(s, i);
        if (typeof end !== 'number') return end;
        i = end;
        state = AFTER;
      } else if (c === 45 /* - */ || isDigit(c)) {
        const end = scanNumber(s, i);
        if (typeof end !== 'number') return end;
        i = end;
        state = AFTER;
      } else {
        const literal = c === 116 ? 'true' : c === 102 ? 'false' : c === 110 ? 'null' : undefined;
        if (literal === undefined) return { pos: i, reason: `expected a value, got ${charAt(s, i)}` };
        if (!s.startsWith(literal, i)) return { pos: i, reason: `invalid literal, expected ${literal}` };
        i += literal.length;
        state = AFTER;
      }
    } else if (state === KEY) {
      if (s.charCodeAt(i) !== 34) return { pos: i, reason: `expected a double-quoted property name, got ${charAt(s, i)}` };
      const end = scanString(s, i);
      if (typeof end !== 'number') return end;
      i = end;
      while (i < n && isWs(s.charCodeAt(i))) i++;
      if (s.charCodeAt(i) !== 58) return { pos: i, reason: `expected ":" after the property name, got ${charAt(s, i)}` };
      i++;
      state = VALUE;
    } else {
      const top = stack[stack.length - 1];
      if (top === undefined) {
        return i < n ? { pos: i, reason: `unexpected ${charAt(s, i)} after the end of the JSON value` } : undefined;
      }
      const c = s.charCodeAt(i);
      const close = top === IN_OBJECT ? 125 : 93;
      if (c === 44 /* , */) {
        i++;
        state = top === IN_OBJECT ? KEY : VALUE;
      } else if (c === close) {
        i++;
        stack.pop();
      } else {
        const what = top === IN_OBJECT ? 'a property value' : 'an array element';
        return { pos: i, reason: `expected "," or "${String.fromCharCode(close)}" after ${what}, got ${charAt(s, i)}` };
      }
    }
  }
}

function isHex(c: number): boolean {
  return isDigit(c) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

function scanString(s: string, start: number): number | Location {
  const n = s.length;
  let i = start + 1;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 34) return i + 1;
    if (c === 92 /* \ */) {
      const e = s.charCodeAt(i + 1);
      if (e === 117 /* u */) {
        if (!(isHex(s.charCodeAt(i + 2)) && isHex(s.charCodeAt(i + 3)) && isHex(s.charCodeAt(i + 4)) && isHex(s.charCodeAt(i + 5)))) {
          if (i + 6 > n) break;
          return { pos: i, reason: 'invalid \\u escape in a string (needs 4 hex digits)' };
        }
        i += 6;
        continue;
      }
      // " \ / b f n r t
      if (e === 34 || e === 92 || e === 47 || e === 98 || e === 102 || e === 110 || e === 114 || e === 116) {
        i += 2;
        continue;
      }
      if (i + 1 >= n) break;
      return { pos: i, reason: `invalid escape ${JSON.stringify('\\' + String.fromCharCode(e))} in a string` };
    }
    if (c < 0x20) return { pos: i, reason: 'control character in a string (must be escaped)' };
    i++;
  }
  return { pos: start, reason: 'unterminated string' };
}

function scanNumber(s: string, start: number): number | Location {
  let i = start;
  if (s.charCodeAt(i) === 45) i++;
  const first = s.charCodeAt(i);
  if (first === 48) {
    i++;
    if (isDigit(s.charCodeAt(i))) return { pos: start, reason: 'numbers must not have leading zeros' };
  } else if (isDigit(first)) {
    while (isDigit(s.charCodeAt(i))) i++;
  } else {
    return { pos: i, reason: `expected a digit, got ${charAt(s, i)}` };
  }
  if (s.charCodeAt(i) === 46 /* . */) {
    i++;
    if (!isDigit(s.charCodeAt(i))) return { pos: i, reason: `expected a digit after the decimal point, got ${charAt(s, i)}` };
    while (isDigit(s.charCodeAt(i))) i++;
  }
  const e = s.charCodeAt(i);
  if (e === 101 || e === 69) {
    i++;
    const sign = s.charCodeAt(i);
    if (sign === 43 || sign === 45) i++;
    if (!isDigit(s.charCodeAt(i))) return { pos: i, reason: `expected a digit in the exponent, got ${charAt(s, i)}` };
    while (isDigit(s.charCodeAt(i))) i++;
  }
  return i;
}

// ---- msgpack ----

function parseMsgpack(body: Buffer | Uint8Array): unknown {
  if (body.length === 0) throw new RequestError('malformed_msgpack', 'malformed msgpack: the body is empty');
  try {
    return bodyUnpackr.unpack(body);
  } catch (cause) {
    const loc = locateMsgpackError(body);
    let message: string;
    if (loc !== undefined) message = `malformed msgpack at byte ${loc.pos}: ${loc.reason}`;
    else if (cause instanceof RangeError && cause.message.includes('call stack')) message = 'malformed msgpack: nested too deeply';
    else message = `malformed msgpack: ${(cause as Error).message}`.slice(0, 300);
    throw new RequestError('malformed_msgpack', message, 400, { cause });
  }
}

/**
 * Where and why `b` is not exactly one msgpack value; undefined if its structure is sound
 * (msgpackr may still refuse it, e.g. an unknown extension type). Iterative, bounded by the body length.
 */
export function locateMsgpackError(b: Uint8Array): Location | undefined {
  const n = b.length;
  const open: number[] = []; // items still expected by each enclosing array/map
  let remaining = 1;
  let i = 0;
  for (;;) {
    if (remaining === 0) {
      const outer = open.pop();
      if (outer === undefined) break;
      remaining = outer;
      continue;
    }
    remaining--;
    if (i >= n) return { pos: i, reason: 'unexpected end of data, expected a value' };
    const c = b[i] as number;
    let head = 1; // bytes of the header
    let size = 0; // bytes of the payload, read from the header
    let sizeBytes = 0; // width of the size field, at the end of the header
    let items = -1; // array/map: values that follow
    let kind = '';
    if (c <= 0x7f || c >= 0xe0 || c === 0xc0 || c === 0xc2 || c === 0xc3) {
      // one-byte value
    } else if (c <= 0x8f) {
      items = (c & 0x0f) * 2;
    } else if (c <= 0x9f) {
      items = c & 0x0f;
    } else if (c <= 0xbf) {
      size = c & 0x1f;
      kind = 'string';
    } else {
      switch (c) {
        case 0xc1:
          return { pos: i, reason: 'byte 0xc1 is never used in msgpack' };
        case 0xc4: case 0xc5: case 0xc6:
          sizeBytes = 1 << (c - 0xc4);
          head = 1 + sizeBytes;
          kind = 'binary';
          break;
        case 0xc7: case 0xc8: case 0xc9:
          sizeBytes = 1 << (c - 0xc7);
          head = 2 + sizeBytes;
          kind = 'extension';
          break;
        case 0xca: case 0xce: case 0xd2: head = 5; kind = 'number'; break;
        case 0xcb: case 0xcf: case 0xd3: head = 9; kind = 'number'; break;
        case 0xcc: case 0xd0: head = 2; kind = 'number'; break;
        case 0xcd: case 0xd1: head = 3; kind = 'number'; break;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
          head = 2;
          size = 1 << (c - 0xd4);
          kind = 'extension';
          break;
        case 0xd9: case 0xda: case 0xdb:
          sizeBytes = 1 << (c - 0xd9);
          head = 1 + sizeBytes;
          kind = 'string';
          break;
        case 0xdc: case 0xdd:
          sizeBytes = c === 0xdc ? 2 : 4;
          head = 1 + sizeBytes;
          kind = 'array';
          break;
        default: // 0xde, 0xdf
          sizeBytes = c === 0xde ? 2 : 4;
          head = 1 + sizeBytes;
          kind = 'map';
      }
    }
    if (i + head > n) {
      return {
        pos: i,
        reason:
          sizeBytes > 0
            ? `unexpected end of data inside the header of the ${kind} starting here`
            : `unexpected end of data: the ${kind} starting here needs ${head + size} bytes, only ${n - i} remain`,
      };
    }
    if (sizeBytes > 0) {
      let v = 0;
      // Size fields: big-endian; for ext 8/16/32 the size comes before the type byte.
      for (let j = 1; j <= sizeBytes; j++) v = v * 256 + (b[i + j] as number);
      if (kind === 'array') items = v;
      else if (kind === 'map') items = v * 2;
      else size = v;
    }
    if (i + head + size > n) {
      return { pos: i, reason: `unexpected end of data: the ${kind} starting here needs ${head + size} bytes, only ${n - i} remain` };
    }
    i += head + size;
    if (items > 0) {
      open.push(remaining);
      remaining = items;
    }
  }
  if (i < n) return { pos: i, reason: `${n - i} bytes of unexpected data after the end of the msgpack value` };
  return undefined;
}
