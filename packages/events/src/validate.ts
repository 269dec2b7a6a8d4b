// Validation of an ingest body: request-level problems throw, per-event problems are reported per event
// (every problem of an event at once), valid events are accepted even when others fail.
// Hot path: no closures, regexes or intermediate objects per valid event.

import { isPlainObject, propertyField, quote, show, typeName } from './describe';
import { RequestError } from './errors';
import { NOT_ISO, formatDuration, parseTimestamp } from './timestamp';
import {
  DEFAULT_INGEST_LIMITS,
  type AcceptedEvent,
  type IngestLimits,
  type PropertyValue,
  type TimeWindow,
  type ValidationFailure,
  type ValidationResult,
} from './types';

/** Prefix of a customer ref made from an external customer id. */
export const EXTERNAL_REF_PREFIX = 'x:';

/** The customer an event belongs to, as one string: the customer_id as given, or 'x:' + external_customer_id. */
export function customerRef(e: { customer_id?: string | null; external_customer_id?: string | null }): string {
  const ext = e.external_customer_id;
  if (ext !== undefined && ext !== null) return EXTERNAL_REF_PREFIX + ext;
  return e.customer_id ?? '';
}

/** Property problems listed per event before the rest are only counted (a body can hold 100k bad keys). */
const MAX_PROPERTY_PROBLEMS = 10;

/** The field names an encoding uses, so errors name what the client sent. */
export interface FieldNames {
  idempotency_key: string;
  external_customer_id: string;
  event_name: string;
  timestamp: string;
  properties: string;
  /** Message when no customer is given. */
  noCustomer: string;
}

export const ORB_FIELD_NAMES: FieldNames = {
  idempotency_key: 'idempotency_key',
  external_customer_id: 'external_customer_id',
  event_name: 'event_name',
  timestamp: 'timestamp',
  properties: 'properties',
  noCustomer: 'customer_id, external_customer_id: exactly one must be given, got neither',
};

/** Attached by decodeBody to bodies it built from another encoding (CloudEvents). */
export const DECODE_INFO: unique symbol = Symbol('drawdown.events.decodeInfo');

export interface DecodeInfo {
  names: FieldNames;
  /** Problems found while mapping, by event index. */
  problems: (string[] | undefined)[];
}

function keyProblem(v: unknown, field: string, max: number): string | undefined {
  if (typeof v === 'string') {
    if (v.length === 0) return `${field}: must not be empty`;
    if (v.length > max) return `${field}: is ${v.length} characters long, the limit is ${max}`;
    return undefined;
  }
  if (v === undefined || v === null) return `${field}: is required`;
  return `${field}: must be a string, got ${typeName(v)}`;
}

function add(list: string[] | undefined, msg: string): string[] {
  if (list === undefined) return [msg];
  list.push(msg);
  return list;
}

/** Checks a properties object; returns the problems appended to `list` (or a new list), or `list` unchanged. */
function propertyProblems(
  props: Record<string, unknown>,
  base: string,
  limits: IngestLimits,
  list: string[] | undefined,
): string[] | undefined {
  let count = 0;
  let problems = 0;
  let msg: string | undefined;
  for (const key in props) {
    count++;
    msg = undefined;
    const v = props[key];
    if (key.length > limits.maxPropertyKeyLength) {
      msg = `${propertyField(base, key)}: name is ${key.length} characters long, the limit is ${limits.maxPropertyKeyLength}`;
    } else if (key.length === 0) {
      msg = `${base}[""]: name must not be empty`;
    } else if (key === '__proto__') {
      msg = `${base}.__proto__: name is reserved`;
    } else {
      switch (typeof v) {
        case 'string':
          if (v.length > limits.maxStringValueLength) {
            msg = `${propertyField(base, key)}: string is ${v.length} characters long, the limit is ${limits.maxStringValueLength}`;
          }
          break;
        case 'number':
          if (v - v !== 0) msg = `${propertyField(base, key)}: numbers must be finite, got ${v}`;
          else if (v === 0 && 1 / v < 0) props[key] = 0; // -0: msgpack would turn it into 0 on the way anyway
          break;
        case 'boolean':
          break;
        case 'object':
          if (v === null) break;
          if (Array.isArray(v)) msg = `${propertyField(base, key)}: arrays are not allowed`;
          else if (isPlainObject(v)) msg = `${propertyField(base, key)}: nested objects are not allowed`;
          else msg = `${propertyField(base, key)}: must be a string, number, boolean or null, got ${typeName(v)}`;
          break;
        default:
          msg = `${propertyField(base, key)}: must be a string, number, boolean or null, got ${typeName(v)}`;
      }
    }
    if (msg !== undefined) {
      problems++;
      if (problems <= MAX_PROPERTY_PROBLEMS) list = add(list, msg);
    }
  }
  if (problems > MAX_PROPERTY_PROBLEMS) {
    list = add(list, `${base}: ${problems - MAX_PROPERTY_PROBLEMS} more problems not listed`);
  }
  if (count > limits.maxProperties) {
    list = add(list, `${base}: has ${count} properties, the limit is ${limits.maxProperties}`);
  }
  return list;
}

/**
 * Validates an already-decoded body (Orb's `{events: [...]}`).
 * Throws RequestError for request-level problems; everything else is per event.
 * Duplicates of (customer, idempotency_key) within the request: the first valid one is accepted,
 * later copies are listed in `duplicates` (by idempotency_key), neither accepted nor failed.
 */
export function validateEvents(
  body: unknown,
  window: TimeWindow,
  limits: IngestLimits = DEFAULT_INGEST_LIMITS,
): ValidationResult & { duplicates: string[] } {
  if (!isPlainObject(body)) {
    throw new RequestError('invalid_body', `body: must be an object with an "events" array, got ${typeName(body)}`);
  }
  const events = body.events;
  if (events === undefined) throw new RequestError('invalid_body', 'body: "events" is required');
  if (!Array.isArray(events)) {
    throw new RequestError('invalid_body', `events: must be an array, got ${typeName(events)}`);
  }
  if (events.length > limits.maxEventsPerRequest) {
    throw new RequestError(
      'too_many_events',
      `events: ${events.length} events in one request, the limit is ${limits.maxEventsPerRequest}`,
    );
  }
  const info = (body as { [DECODE_INFO]?: DecodeInfo })[DECODE_INFO];
  const names = info?.names ?? ORB_FIELD_NAMES;

  const nowMs = window.nowMs;
  const lower = nowMs - window.graceMs;
  const upper = nowMs + window.futureMs;
  const maxKey = limits.maxKeyLength;

  const accepted: AcceptedEvent[] = [];
  const failed: ValidationFailure[] = [];
  const duplicates: string[] = [];
  // In-request duplicates: idempotency_key -> customer ref of the first accepted copy (refs of
  // further customers with the same key in `more`), no string built per event.
  const seen = events.length > 1 ? new Map<string, string>() : undefined;
  let more: Set<string> | undefined;
  let lastTs: string | undefined;
  let lastParsed: number | string = NOT_ISO;

  for (let i = 0; i < events.length; i++) {
    const ev: unknown = events[i];
    let errs = info?.problems[i];
    if (!isPlainObject(ev)) {
      errs = add(errs, `events[${i}]: must be an object, got ${typeName(ev)}`);
      failed.push({ idempotency_key: '', validation_errors: errs });
      continue;
    }

    // idempotency_key: when unusable, the index tells the client which event this is.
    const key = ev.idempotency_key;
    let msg = keyProblem(key, names.idempotency_key, maxKey);
    if (msg !== undefined) errs = add(errs, typeof key === 'string' && key.length > 0 ? msg : `${msg} (events[${i}])`);

    // customer: exactly one of customer_id / external_customer_id; null counts as absent.
    const cid = ev.customer_id;
    const ext = ev.external_customer_id;
    let ref = '';
    if (ext !== undefined && ext !== null) {
      if (cid !== undefined && cid !== null) {
        errs = add(errs, 'customer_id, external_customer_id: exactly one must be given, got both');
      } else if ((msg = keyProblem(ext, names.external_customer_id, maxKey)) !== undefined) {
        errs = add(errs, msg);
      } else {
        ref = EXTERNAL_REF_PREFIX + (ext as string);
      }
    } else if (cid !== undefined && cid !== null) {
      if ((msg = keyProblem(cid, 'customer_id', maxKey)) !== undefined) {
        errs = add(errs, msg);
      } else if ((cid as string).startsWith(EXTERNAL_REF_PREFIX)) {
        // Keeps customerRef one-to-one: no customer_id can look like an external ref.
        errs = add(errs, `customer_id: must not start with "${EXTERNAL_REF_PREFIX}" (reserved for external customer refs)`);
      } else {
        ref = cid as string;
      }
    } else {
      errs = add(errs, names.noCustomer);
    }

    const name = ev.event_name;
    if ((msg = keyProblem(name, names.event_name, maxKey)) !== undefined) errs = add(errs, msg);

    const ts = ev.timestamp;
    let t = 0;
    if (typeof ts === 'string') {
      // Events of one request often share their timestamp: parse each distinct string once in a row.
      if (ts !== lastTs) {
        lastTs = ts;
        lastParsed = parseTimestamp(ts);
      }
      const parsed = lastParsed;
      if (typeof parsed === 'number') {
        t = parsed;
        if (t < lower) {
          errs = add(
            errs,
            `${names.timestamp}: ${ts} is ${formatDuration(lower - t)} before the accept window's lower bound (now - ${formatDuration(window.graceMs)})`,
          );
        } else if (t > upper) {
          errs = add(
            errs,
            `${names.timestamp}: ${ts} is ${formatDuration(t - upper)} after the accept window's upper bound (now + ${formatDuration(window.futureMs)})`,
          );
        }
      } else if (parsed === NOT_ISO) {
        errs = add(errs, `${names.timestamp}: must be ISO 8601 with a time zone, got ${quote(ts)}`);
      } else {
        errs = add(errs, `${names.timestamp}: ${quote(ts)} is not a real date-time: ${parsed}`);
      }
    } else if (ts === undefined || ts === null) {
      errs = add(errs, `${names.timestamp}: is required`);
    } else {
      errs = add(errs, `${names.timestamp}: must be ISO 8601 with a time zone, got ${show(ts)}`);
    }

    let props = ev.properties;
    if (props === undefined || props === null) {
      props = {};
    } else if (isPlainObject(props)) {
      errs = propertyProblems(props, names.properties, limits, errs);
    } else {
      errs = add(errs, `${names.properties}: must be an object, got ${typeName(props)}`);
    }

    if (errs !== undefined) {
      failed.push({ idempotency_key: typeof key === 'string' ? key : '', validation_errors: errs });
      continue;
    }
    const k = key as string;
    if (seen !== undefined) {
      const first = seen.get(k);
      if (first === undefined) seen.set(k, ref);
      else if (first === ref) {
        duplicates.push(k);
        continue;
      } else {
        // The same key for another customer: rare, so the composite key is built only here.
        // Length prefix: refs and keys may contain any character, so no separator is safe.
        const dedupKey = `${ref.length}:${ref}${k}`;
        more ??= new Set();
        if (more.has(dedupKey)) {
          duplicates.push(k);
          continue;
        }
        more.add(dedupKey);
      }
    }
    accepted.push({ k, c: ref, n: name as string, t, p: props as Record<string, PropertyValue>, r: nowMs });
  }
  return { accepted, failed, duplicates };
}
