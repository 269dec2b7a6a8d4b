// Whatever a client sends, decodeBody + validateEvents either throw RequestError (a 4xx) or return
// an outcome for every event: never another exception (which the edge would turn into a 5xx).
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { DEFAULT_FUTURE_MS, DEFAULT_GRACE_MS, RequestError, decodeBody, decodeBatch, encodeBatch, validateEvents } from './index';

const NOW = Date.parse('2026-11-25T12:00:00Z');
const WINDOW = { nowMs: NOW, graceMs: DEFAULT_GRACE_MS, futureMs: DEFAULT_FUTURE_MS };
const packr = new Packr({ useRecords: false });

const CONTENT_TYPES = [
  undefined,
  'application/json',
  'application/msgpack',
  'application/x-msgpack',
  'application/cloudevents-batch+json',
  'application/cloudevents+json',
  'text/plain',
];

const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
/** Mostly valid values, so that many events get through and are checked on the way out too. */
const mostly = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: fc.anything() });
const timestamp = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: NOW - DEFAULT_GRACE_MS - 3_600_000, max: NOW + DEFAULT_FUTURE_MS + 3_600_000 }).map((t) => new Date(t).toISOString()) },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.anything() },
);
const props = mostly(
  fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string({ maxLength: 5 }), fc.double({ noNaN: true }), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(-0))),
);
const key = fc.string({ minLength: 1, maxLength: 4 });
const customer = fc.oneof(
  { weight: 4, arbitrary: fc.record({ external_customer_id: key }) },
  { weight: 2, arbitrary: fc.record({ customer_id: key.filter((k) => !k.startsWith('x:')) }) },
  {
    weight: 1,
    arbitrary: fc.record(
      { customer_id: fc.oneof(key, fc.constant(null), fc.anything()), external_customer_id: fc.oneof(key, fc.constant(null), fc.anything()) },
      { requiredKeys: [] },
    ),
  },
);
const orbEvent = fc
  .tuple(
    fc.record(
      { idempotency_key: mostly(key), event_name: mostly(key), timestamp, properties: maybe(props) },
      { requiredKeys: ['idempotency_key', 'event_name', 'timestamp'] },
    ),
    customer,
  )
  .map(([e, c]) => ({ ...e, ...c }));
const cloudEvent = fc.record(
  {
    specversion: maybe(fc.oneof(fc.constant('1.0'), fc.anything())),
    id: mostly(key),
    source: fc.string({ maxLength: 4 }),
    type: key,
    subject: fc.option(key, { nil: undefined, freq: 10 }),
    time: timestamp,
    data: maybe(props),
    data_base64: fc.option(fc.string({ maxLength: 4 }), { nil: undefined, freq: 10 }),
  },
  { requiredKeys: ['id', 'type', 'time'] },
);

/** A plausible body in one encoding, then optionally cut short or with one byte changed. */
const body = fc
  .tuple(
    fc.constantFrom(...CONTENT_TYPES),
    fc.array(fc.oneof({ weight: 4, arbitrary: orbEvent }, { weight: 1, arbitrary: cloudEvent }, { weight: 1, arbitrary: fc.anything() }), { maxLength: 8 }),
    fc.constantFrom('whole' as const, 'whole' as const, 'truncate' as const, 'flip' as const),
    fc.nat(),
    fc.integer({ min: 0, max: 255 }),
  )
  .map(([ct, events, damage, where, byte]) => {
    let value: unknown = { events };
    if (ct === 'application/cloudevents-batch+json') value = events;
    else if (ct === 'application/cloudevents+json') value = events[0] ?? {};
    let bytes: Uint8Array;
    try {
      bytes = ct?.includes('msgpack') ? packr.pack(value) : Buffer.from(JSON.stringify(value) ?? 'null');
    } catch {
      bytes = Buffer.from('{"events":[]}'); // fc.anything() can produce what JSON cannot hold
    }
    bytes = Uint8Array.from(bytes);
    if (damage === 'truncate') bytes = bytes.subarray(0, where % (bytes.length + 1));
    if (damage === 'flip' && bytes.length > 0) bytes[where % bytes.length] = byte;
    return { ct, bytes };
  });

let acceptedSeen = 0;

function run(ct: string | undefined, bytes: Uint8Array): void {
  let result: ReturnType<typeof validateEvents>;
  try {
    result = validateEvents(decodeBody(ct, bytes), WINDOW);
  } catch (e) {
    expect(e).toBeInstanceOf(RequestError);
    expect((e as RequestError).status).toBeGreaterThanOrEqual(400);
    expect((e as RequestError).status).toBeLessThan(500);
    return;
  }
  for (const f of result.failed) {
    expect(typeof f.idempotency_key).toBe('string');
    expect(f.validation_errors.length).toBeGreaterThan(0);
  }
  acceptedSeen += result.accepted.length;
  // whatever is accepted survives the trip through JetStream unchanged
  expect(decodeBatch(encodeBatch(result.accepted))).toEqual(result.accepted);
}

// Thousands of runs each: generous timeouts, the machine may be busy.
describe('decodeBody + validateEvents never fail with anything but RequestError', { timeout: 60_000 }, () => {
  it('on plausible bodies, whole, truncated or damaged', () => {
    fc.assert(
      fc.property(body, ({ ct, bytes }) => run(ct, bytes)),
      { numRuns: 3000 },
    );
    expect(acceptedSeen).toBeGreaterThan(200); // the generator does reach the accepting path
  });

  it('on random bytes', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CONTENT_TYPES), fc.uint8Array({ maxLength: 200 }), (ct, bytes) => run(ct, bytes)),
      { numRuns: 3000 },
    );
  });

  it('on random JSON text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => run('application/json', Buffer.from(text))),
      { numRuns: 2000 },
    );
  });

  it('accounts for every event of a decodable body', () => {
    fc.assert(
      fc.property(fc.array(orbEvent, { maxLength: 10 }), (events) => {
        const r = validateEvents(decodeBody(undefined, Buffer.from(JSON.stringify({ events }))), WINDOW);
        expect(r.accepted.length + r.failed.length + r.duplicates.length).toBe(events.length);
      }),
      { numRuns: 1000 },
    );
  });
});
