// The synthetic workload: customers, their skew (uniform or Zipf), and 100-event request
// bodies pre-encoded once (JSON or msgpack) with fixed-width placeholders in the idempotency
// keys, so the load generator only stamps a request number into each copy (unique keys,
// no encoding on the hot path).
import { Packr } from 'msgpackr';
import type { AcceptedEvent } from '@drawdown/events';

export type Shape = 'uniform' | 'zipf';
export type Format = 'json' | 'msgpack';

/** Deterministic PRNG (mulberry32): the same seed gives the same workload on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Draws customer indexes in [0, n): uniform, or Zipf with exponent s (rank 0 the busiest). */
export function customerSampler(n: number, shape: Shape, seed: number, s = 1.1): () => number {
  const rnd = prng(seed);
  if (shape === 'uniform') return () => Math.floor(rnd() * n);
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    sum += 1 / (k + 1) ** s;
    cdf[k] = sum;
  }
  for (let k = 0; k < n; k++) cdf[k]! /= sum;
  return () => {
    const u = rnd();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** Share of events that go to the busiest `top` customers under Zipf(s) over n. */
export function zipfTopShare(n: number, top: number, s = 1.1): number {
  let all = 0;
  let head = 0;
  for (let k = 0; k < n; k++) {
    const w = 1 / (k + 1) ** s;
    all += w;
    if (k < top) head += w;
  }
  return head / all;
}

export const externalId = (i: number) => `ext-${i}`;
export const customerId = (i: number) => `bc${i}`;
export const EVENT_NAME = 'api_call';
/** Placeholder stamped with the request number: 10 decimal digits. */
export const SLOT = '##########';
export const SLOT_WIDTH = SLOT.length;

export interface BodyTemplate {
  bytes: Buffer;
  /** Byte offsets of every SLOT in `bytes`. */
  slots: number[];
  /** Byte offsets of every event's timestamp (24 characters, ISO 8601 in UTC with milliseconds). */
  tsSlots: number[];
  events: number;
}

const packr = new Packr({ useRecords: false });

/**
 * `count` distinct request bodies of `eventsPerRequest` events each, customers drawn from the
 * shape. Keys are `<tag><10-digit request number>-<index>`, unique per request number.
 */
export function buildTemplates(opts: {
  count: number;
  eventsPerRequest: number;
  customers: number;
  shape: Shape;
  format: Format;
  tag: string;
  timestampMs: number;
  seed: number;
  /** Customer index offset (marker customers live outside the load's range). */
  firstCustomer?: number;
}): BodyTemplate[] {
  const draw = customerSampler(opts.customers, opts.shape, opts.seed);
  const ts = new Date(opts.timestampMs).toISOString();
  const out: BodyTemplate[] = [];
  for (let t = 0; t < opts.count; t++) {
    const events = [];
    for (let j = 0; j < opts.eventsPerRequest; j++) {
      events.push({
        idempotency_key: `${opts.tag}${SLOT}-${String(j).padStart(3, '0')}`,
        external_customer_id: externalId((opts.firstCustomer ?? 0) + draw()),
        event_name: EVENT_NAME,
        timestamp: ts,
        properties: { region: j % 3 === 0 ? 'eu-west-1' : 'us-east-1', bytes: 1000 + j, model: 'small' },
      });
    }
    const bytes = opts.format === 'json' ? Buffer.from(JSON.stringify({ events })) : Buffer.from(packr.pack({ events }));
    const slots: number[] = [];
    for (let at = bytes.indexOf(SLOT); at >= 0; at = bytes.indexOf(SLOT, at + SLOT_WIDTH)) slots.push(at);
    if (slots.length !== opts.eventsPerRequest) throw new Error(`template: expected ${opts.eventsPerRequest} key slots, found ${slots.length}`);
    const tsSlots: number[] = [];
    for (let at = bytes.indexOf(ts); at >= 0; at = bytes.indexOf(ts, at + ts.length)) tsSlots.push(at);
    if (tsSlots.length !== opts.eventsPerRequest) throw new Error(`template: expected ${opts.eventsPerRequest} timestamps, found ${tsSlots.length}`);
    out.push({ bytes, slots, tsSlots, events: opts.eventsPerRequest });
  }
  return out;
}

/**
 * Writes the request number into every slot of `body` (a copy of a template's bytes) and, when
 * `timestampMs` is given, that time into every event's timestamp: events carry the time they
 * are sent, as a live client's do (a fixed template time would age past the rater's dedup
 * memory and send every event of a long run through its store check).
 */
export function stamp(body: Buffer, slots: readonly number[], requestNo: number, tsSlots?: readonly number[], timestampMs?: number): void {
  const digits = String(requestNo).padStart(SLOT_WIDTH, '0');
  if (digits.length !== SLOT_WIDTH) throw new RangeError(`request number ${requestNo} does not fit ${SLOT_WIDTH} digits`);
  for (const at of slots) body.write(digits, at, 'latin1');
  if (tsSlots && timestampMs !== undefined) {
    const iso = new Date(timestampMs).toISOString();
    if (iso.length !== 24) throw new RangeError(`timestamp ${timestampMs} is not a 24-character ISO time`);
    for (const at of tsSlots) body.write(iso, at, 'latin1');
  }
}

/** Accepted events as the edge publishes them (for the JetStream ceiling and a pre-filled stream). */
export function acceptedEvents(opts: { count: number; customers: number; shape: Shape; seed: number; tag: string; timestampMs: number; first?: number }): AcceptedEvent[] {
  const draw = customerSampler(opts.customers, opts.shape, opts.seed);
  const out: AcceptedEvent[] = [];
  const first = opts.first ?? 0;
  for (let i = 0; i < opts.count; i++) {
    const j = i % 100;
    out.push({
      k: `${opts.tag}${String(first + i).padStart(12, '0')}`,
      c: `x:${externalId(draw())}`,
      n: EVENT_NAME,
      t: opts.timestampMs,
      p: { region: j % 3 === 0 ? 'eu-west-1' : 'us-east-1', bytes: 1000 + j, model: 'small' },
      r: opts.timestampMs,
    });
  }
  return out;
}
