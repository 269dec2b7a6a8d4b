// The event schema shared by the ingest edge (which validates) and the rater (which consumes).

/** What a client sends: one event of Orb's `events.ingest` body. */
export interface IngestEventInput {
  idempotency_key: string;
  customer_id?: string | null;
  external_customer_id?: string | null;
  event_name: string;
  timestamp: string;
  properties: Record<string, unknown>;
}

/** A property value after validation: flat JSON scalars only. */
export type PropertyValue = string | number | boolean | null;

/**
 * What is accepted and published. Keys are one letter because this is what goes
 * through JetStream as msgpack, hundreds of thousands of times a second.
 */
export interface AcceptedEvent {
  /** idempotency_key */
  k: string;
  /** customer ref: the customer_id as given, or 'x:' + external_customer_id (see customerRef) */
  c: string;
  /** event_name */
  n: string;
  /** timestamp, epoch milliseconds (integer) */
  t: number;
  /** properties (flat) */
  p: Record<string, PropertyValue>;
  /** received at (edge clock), epoch milliseconds */
  r: number;
}

export interface IngestLimits {
  /** Most events in one request. */
  maxEventsPerRequest: number;
  /** Longest idempotency_key, customer_id, external_customer_id and event_name, in UTF-16 code units. */
  maxKeyLength: number;
  /** Longest property name, in UTF-16 code units. */
  maxPropertyKeyLength: number;
  /** Longest string property value, in UTF-16 code units. */
  maxStringValueLength: number;
  /** Most properties on one event. */
  maxProperties: number;
}

export const DEFAULT_MAX_EVENTS_PER_REQUEST = 500;
export const DEFAULT_MAX_KEY_LENGTH = 256;
export const DEFAULT_MAX_PROPERTY_KEY_LENGTH = 128;
export const DEFAULT_MAX_STRING_VALUE_LENGTH = 1024;
export const DEFAULT_MAX_PROPERTIES = 100;

export const DEFAULT_INGEST_LIMITS: IngestLimits = Object.freeze({
  maxEventsPerRequest: DEFAULT_MAX_EVENTS_PER_REQUEST,
  maxKeyLength: DEFAULT_MAX_KEY_LENGTH,
  maxPropertyKeyLength: DEFAULT_MAX_PROPERTY_KEY_LENGTH,
  maxStringValueLength: DEFAULT_MAX_STRING_VALUE_LENGTH,
  maxProperties: DEFAULT_MAX_PROPERTIES,
});

/** Oldest accepted timestamp, behind now: 12 h. Also the rater's dedup horizon. */
export const DEFAULT_GRACE_MS = 12 * 3_600_000;
/** Newest accepted timestamp, ahead of now: 1 h (client clocks run fast). */
export const DEFAULT_FUTURE_MS = 3_600_000;

/** Events are accepted only with a timestamp in [nowMs - graceMs, nowMs + futureMs], both ends included. */
export interface TimeWindow {
  nowMs: number;
  graceMs: number;
  futureMs: number;
}

/** One rejected event, in Orb's shape. */
export interface ValidationFailure {
  idempotency_key: string;
  validation_errors: string[];
}

export interface ValidationResult {
  accepted: AcceptedEvent[];
  failed: ValidationFailure[];
}
