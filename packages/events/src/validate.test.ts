import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FUTURE_MS,
  DEFAULT_GRACE_MS,
  DEFAULT_INGEST_LIMITS,
  RequestError,
  customerRef,
  validateEvents,
  type TimeWindow,
} from './index';

const NOW = Date.parse('2026-11-25T12:00:00Z');
const WINDOW: TimeWindow = { nowMs: NOW, graceMs: DEFAULT_GRACE_MS, futureMs: DEFAULT_FUTURE_MS };

const BASE = {
  idempotency_key: 'k1',
  external_customer_id: 'cust_1',
  event_name: 'api_call',
  timestamp: '2026-11-25T11:00:00Z',
  properties: { region: 'eu', tokens: 12 },
};

/** BASE with fields replaced; an `undefined` value removes the field. */
function ev(patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...BASE, ...patch };
  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete out[k];
  return out;
}

function one(event: unknown, window = WINDOW) {
  return validateEvents({ events: [event] }, window);
}

describe('validateEvents: one valid event', () => {
  it('accepts it in the compact shape', () => {
    const r = one(BASE);
    expect(r.failed).toEqual([]);
    expect(r.duplicates).toEqual([]);
    expect(r.accepted).toEqual([
      { k: 'k1', c: 'x:cust_1', n: 'api_call', t: Date.parse('2026-11-25T11:00:00Z'), p: { region: 'eu', tokens: 12 }, r: NOW },
    ]);
  });

  it('takes customer_id as the ref as given, and null as absent', () => {
    const r = one(ev({ external_customer_id: null, customer_id: 'Xa9' }));
    expect(r.accepted[0]?.c).toBe('Xa9');
    expect(one(ev({ customer_id: null })).accepted[0]?.c).toBe('x:cust_1');
  });

  it('treats missing or null properties as {}', () => {
    expect(one(ev({ properties: undefined })).accepted[0]?.p).toEqual({});
    expect(one(ev({ properties: null })).accepted[0]?.p).toEqual({});
  });

  it('accepts flat scalar properties of every kind', () => {
    const p = { s: 'x', i: -3, f: 1.5, b: false, n: null, e: '' };
    expect(one(ev({ properties: p })).accepted[0]?.p).toEqual(p);
  });

  it('ignores fields it does not know', () => {
    expect(one(ev({ extra: { deep: [1] } })).accepted).toHaveLength(1);
  });

  it.each([
    ['2026-11-25T11:00:00.123Z', '2026-11-25T11:00:00.123Z'],
    ['2026-11-25T11:00:00.1239999Z', '2026-11-25T11:00:00.123Z'],
    ['2026-11-25T11:00:00.5Z', '2026-11-25T11:00:00.500Z'],
    ['2026-11-25T11:00Z', '2026-11-25T11:00:00.000Z'],
    ['2026-11-25t11:00:00z', '2026-11-25T11:00:00.000Z'],
    ['2026-11-25T16:30:00+05:30', '2026-11-25T11:00:00.000Z'],
    ['2026-11-25T16:30:00+0530', '2026-11-25T11:00:00.000Z'],
    ['2026-11-25T06:00:00-05', '2026-11-25T11:00:00.000Z'],
    ['2026-11-25T11:00:00,25-00:00', '2026-11-25T11:00:00.250Z'],
  ])('parses timestamp %s', (ts, iso) => {
    expect(one(ev({ timestamp: ts })).accepted[0]?.t).toBe(Date.parse(iso));
  });
});

const long = (n: number) => 'a'.repeat(n);

// Every bad input with its exact error list: the messages are part of the API (the client reads them).
const BAD: [string, Record<string, unknown>, string[], string?][] = [
  ['missing idempotency_key', { idempotency_key: undefined }, ['idempotency_key: is required (events[0])'], ''],
  ['null idempotency_key', { idempotency_key: null }, ['idempotency_key: is required (events[0])'], ''],
  ['numeric idempotency_key', { idempotency_key: 7 }, ['idempotency_key: must be a string, got number (events[0])'], ''],
  ['empty idempotency_key', { idempotency_key: '' }, ['idempotency_key: must not be empty (events[0])'], ''],
  ['long idempotency_key', { idempotency_key: long(257) }, ['idempotency_key: is 257 characters long, the limit is 256'], long(257)],
  ['no customer', { external_customer_id: undefined }, ['customer_id, external_customer_id: exactly one must be given, got neither']],
  ['both customers null', { external_customer_id: null, customer_id: null }, ['customer_id, external_customer_id: exactly one must be given, got neither']],
  ['both customers', { customer_id: 'c9' }, ['customer_id, external_customer_id: exactly one must be given, got both']],
  ['numeric external id', { external_customer_id: 42 }, ['external_customer_id: must be a string, got number']],
  ['empty external id', { external_customer_id: '' }, ['external_customer_id: must not be empty']],
  ['long external id', { external_customer_id: long(300) }, ['external_customer_id: is 300 characters long, the limit is 256']],
  ['customer_id object', { external_customer_id: undefined, customer_id: {} }, ['customer_id: must be a string, got object']],
  ['customer_id with x: prefix', { external_customer_id: undefined, customer_id: 'x:abc' }, ['customer_id: must not start with "x:" (reserved for external customer refs)']],
  ['missing event_name', { event_name: undefined }, ['event_name: is required']],
  ['boolean event_name', { event_name: true }, ['event_name: must be a string, got boolean']],
  ['empty event_name', { event_name: '' }, ['event_name: must not be empty']],
  ['long event_name', { event_name: long(257) }, ['event_name: is 257 characters long, the limit is 256']],
  ['missing timestamp', { timestamp: undefined }, ['timestamp: is required']],
  ['epoch number timestamp', { timestamp: 1795604400 }, ['timestamp: must be ISO 8601 with a time zone, got 1795604400']],
  ['timestamp as array', { timestamp: ['2026'] }, ['timestamp: must be ISO 8601 with a time zone, got array']],
  ['timestamp without zone', { timestamp: '2026-11-25 10:00' }, ['timestamp: must be ISO 8601 with a time zone, got "2026-11-25 10:00"']],
  ['timestamp without zone, with T', { timestamp: '2026-11-25T10:00:00' }, ['timestamp: must be ISO 8601 with a time zone, got "2026-11-25T10:00:00"']],
  ['date only', { timestamp: '2026-11-25' }, ['timestamp: must be ISO 8601 with a time zone, got "2026-11-25"']],
  ['space separator', { timestamp: '2026-11-25 10:00:00Z' }, ['timestamp: must be ISO 8601 with a time zone, got "2026-11-25 10:00:00Z"']],
  ['RFC 2822', { timestamp: 'Wed, 25 Nov 2026 10:00:00 GMT' }, ['timestamp: must be ISO 8601 with a time zone, got "Wed, 25 Nov 2026 10:00:00 GMT"']],
  ['fraction without digits', { timestamp: '2026-11-25T10:00:00.Z' }, ['timestamp: must be ISO 8601 with a time zone, got "2026-11-25T10:00:00.Z"']],
  ['ten fraction digits', { timestamp: '2026-11-25T10:00:00.1234567890Z' }, ['timestamp: must be ISO 8601 with a time zone, got "2026-11-25T10:00:00.1234567890Z"']],
  ['trailing junk', { timestamp: '2026-11-25T10:00:00Zx' }, ['timestamp: must be ISO 8601 with a time zone, got "2026-11-25T10:00:00Zx"']],
  ['half offset', { timestamp: '2026-11-25T10:00:00+05:' }, ['timestamp: must be ISO 8601 with a time zone, got "2026-11-25T10:00:00+05:"']],
  ['long garbage timestamp', { timestamp: long(100) }, [`timestamp: must be ISO 8601 with a time zone, got "${long(64)}…"`]],
  ['February 30', { timestamp: '2026-02-30T10:00:00Z' }, ['timestamp: "2026-02-30T10:00:00Z" is not a real date-time: February 2026 has 28 days']],
  ['February 29 of a common year', { timestamp: '2100-02-29T10:00:00Z' }, ['timestamp: "2100-02-29T10:00:00Z" is not a real date-time: February 2100 has 28 days']],
  ['April 31', { timestamp: '2026-04-31T10:00:00Z' }, ['timestamp: "2026-04-31T10:00:00Z" is not a real date-time: April 2026 has 30 days']],
  ['month 13', { timestamp: '2026-13-01T10:00:00Z' }, ['timestamp: "2026-13-01T10:00:00Z" is not a real date-time: month 13 does not exist']],
  ['month 00', { timestamp: '2026-00-01T10:00:00Z' }, ['timestamp: "2026-00-01T10:00:00Z" is not a real date-time: month 00 does not exist']],
  ['day 00', { timestamp: '2026-11-00T10:00:00Z' }, ['timestamp: "2026-11-00T10:00:00Z" is not a real date-time: day 00 does not exist']],
  ['hour 24', { timestamp: '2026-11-25T24:00:00Z' }, ['timestamp: "2026-11-25T24:00:00Z" is not a real date-time: hour must be 00-23']],
  ['minute 60', { timestamp: '2026-11-25T10:60:00Z' }, ['timestamp: "2026-11-25T10:60:00Z" is not a real date-time: minute must be 00-59']],
  ['leap second', { timestamp: '2026-11-25T10:00:60Z' }, ['timestamp: "2026-11-25T10:00:60Z" is not a real date-time: second must be 00-59']],
  ['offset +24:00', { timestamp: '2026-11-25T10:00:00+24:00' }, ['timestamp: "2026-11-25T10:00:00+24:00" is not a real date-time: zone offset hours must be 00-23']],
  ['offset minutes 60', { timestamp: '2026-11-25T10:00:00+01:60' }, ['timestamp: "2026-11-25T10:00:00+01:60" is not a real date-time: zone offset minutes must be 00-59']],
  ['too old', { timestamp: '2026-11-24T18:48:00Z' }, ["timestamp: 2026-11-24T18:48:00Z is 5h12m before the accept window's lower bound (now - 12h)"]],
  ['far too old', { timestamp: '2026-11-20T11:59:30Z' }, ["timestamp: 2026-11-20T11:59:30Z is 4d12h30s before the accept window's lower bound (now - 12h)"]],
  ['too new', { timestamp: '2026-11-25T13:05:00Z' }, ["timestamp: 2026-11-25T13:05:00Z is 5m after the accept window's upper bound (now + 1h)"]],
  ['too new, in another zone', { timestamp: '2026-11-25T14:00:00.250+01:00' }, ["timestamp: 2026-11-25T14:00:00.250+01:00 is 250ms after the accept window's upper bound (now + 1h)"]],
  ['properties a string', { properties: 'region=eu' }, ['properties: must be an object, got string']],
  ['properties an array', { properties: [1, 2] }, ['properties: must be an object, got array']],
  ['nested object', { properties: { region: { name: 'eu' } } }, ['properties.region: nested objects are not allowed']],
  ['array value', { properties: { tags: ['a'] } }, ['properties.tags: arrays are not allowed']],
  ['odd key is quoted', { properties: { 'a b': {} } }, ['properties["a b"]: nested objects are not allowed']],
  ['empty key', { properties: { '': 1 } }, ['properties[""]: name must not be empty']],
  ['long key', { properties: { [long(129)]: 1 } }, [`properties["${long(64)}…"]: name is 129 characters long, the limit is 128`]],
  ['long string value', { properties: { note: long(1025) } }, ['properties.note: string is 1025 characters long, the limit is 1024']],
  ['too many properties', { properties: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`p${i}`, i])) }, ['properties: has 101 properties, the limit is 100']],
  [
    'many bad properties are capped',
    { properties: Object.fromEntries(Array.from({ length: 13 }, (_, i) => [`p${i}`, [i]])) },
    [...Array.from({ length: 10 }, (_, i) => `properties.p${i}: arrays are not allowed`), 'properties: 3 more problems not listed'],
  ],
  [
    'every problem at once',
    { idempotency_key: 'k9', external_customer_id: 5, event_name: '', timestamp: 'yesterday', properties: { a: {}, b: [] } },
    [
      'external_customer_id: must be a string, got number',
      'event_name: must not be empty',
      'timestamp: must be ISO 8601 with a time zone, got "yesterday"',
      'properties.a: nested objects are not allowed',
      'properties.b: arrays are not allowed',
    ],
    'k9',
  ],
];

describe('validateEvents: the bad-input table', () => {
  it.each(BAD)('%s', (_name, patch, errors, key = 'k1') => {
    const r = one(ev(patch));
    expect(r.accepted).toEqual([]);
    expect(r.failed).toEqual([{ idempotency_key: key, validation_errors: errors }]);
  });

  it.each([
    ['a number', 5, 'events[0]: must be an object, got number'],
    ['null', null, 'events[0]: must be an object, got null'],
    ['an array', [BASE], 'events[0]: must be an object, got array'],
    ['a string', 'k1', 'events[0]: must be an object, got string'],
  ])('an event that is %s', (_name, event, error) => {
    expect(one(event).failed).toEqual([{ idempotency_key: '', validation_errors: [error] }]);
  });

  it('rejects values only msgpack can carry', () => {
    const p = { a: Number.NaN, b: Number.POSITIVE_INFINITY, c: new Date(0), d: new Uint8Array(2), e: undefined, f: 10n };
    expect(one(ev({ properties: p })).failed[0]?.validation_errors).toEqual([
      'properties.a: numbers must be finite, got NaN',
      'properties.b: numbers must be finite, got Infinity',
      'properties.c: must be a string, number, boolean or null, got date',
      'properties.d: must be a string, number, boolean or null, got binary',
      'properties.e: must be a string, number, boolean or null, got undefined',
      'properties.f: must be a string, number, boolean or null, got bigint',
    ]);
    expect(one(ev({ properties: new Map() })).failed[0]?.validation_errors).toEqual(['properties: must be an object, got map']);
  });

  it("rejects a property named __proto__ (it would not survive msgpack)", () => {
    const p = JSON.parse('{"__proto__": 1}') as Record<string, unknown>;
    expect(one(ev({ properties: p })).failed[0]?.validation_errors).toEqual(['properties.__proto__: name is reserved']);
  });

  it('applies custom limits', () => {
    const limits = { ...DEFAULT_INGEST_LIMITS, maxKeyLength: 3, maxProperties: 1, maxStringValueLength: 1, maxPropertyKeyLength: 1 };
    const r = validateEvents({ events: [ev({ idempotency_key: 'abcd', properties: { ab: 'xx', c: 'yy' } })] }, WINDOW, limits);
    expect(r.failed[0]?.validation_errors).toEqual([
      'idempotency_key: is 4 characters long, the limit is 3',
      'external_customer_id: is 6 characters long, the limit is 3',
      'event_name: is 8 characters long, the limit is 3',
      'properties.ab: name is 2 characters long, the limit is 1',
      'properties.c: string is 2 characters long, the limit is 1',
      'properties: has 2 properties, the limit is 1',
    ]);
  });
});

describe('validateEvents: the time window', () => {
  const at = (ms: number) => new Date(ms).toISOString();
  const lower = NOW - DEFAULT_GRACE_MS;
  const upper = NOW + DEFAULT_FUTURE_MS;

  it('includes both bounds', () => {
    expect(one(ev({ timestamp: at(lower) })).accepted).toHaveLength(1);
    expect(one(ev({ timestamp: at(upper) })).accepted).toHaveLength(1);
    expect(one(ev({ timestamp: at(NOW) })).accepted).toHaveLength(1);
  });

  it('rejects one millisecond outside either bound, saying which and by how much', () => {
    expect(one(ev({ timestamp: at(lower - 1) })).failed[0]?.validation_errors).toEqual([
      "timestamp: 2026-11-24T23:59:59.999Z is 1ms before the accept window's lower bound (now - 12h)",
    ]);
    expect(one(ev({ timestamp: at(upper + 1) })).failed[0]?.validation_errors).toEqual([
      "timestamp: 2026-11-25T13:00:00.001Z is 1ms after the accept window's upper bound (now + 1h)",
    ]);
  });

  it('follows a configured grace and future', () => {
    const w = { nowMs: NOW, graceMs: 2 * 86_400_000 + 90 * 60_000, futureMs: 0 };
    expect(one(ev({ timestamp: at(NOW - 2 * 86_400_000) }), w).accepted).toHaveLength(1);
    expect(one(ev({ timestamp: at(NOW + 1000) }), w).failed[0]?.validation_errors).toEqual([
      "timestamp: 2026-11-25T12:00:01.000Z is 1s after the accept window's upper bound (now + 0ms)",
    ]);
    expect(one(ev({ timestamp: at(NOW - 3 * 86_400_000) }), w).failed[0]?.validation_errors).toEqual([
      "timestamp: 2026-11-22T12:00:00.000Z is 22h30m before the accept window's lower bound (now - 2d1h30m)",
    ]);
  });
});

describe('validateEvents: the request', () => {
  it.each([
    [null, 'body: must be an object with an "events" array, got null'],
    [[BASE], 'body: must be an object with an "events" array, got array'],
    ['{}', 'body: must be an object with an "events" array, got string'],
    [{}, 'body: "events" is required'],
    [{ events: {} }, 'events: must be an array, got object'],
    [{ events: null }, 'events: must be an array, got null'],
  ])('rejects body %j', (body, message) => {
    expect(() => validateEvents(body, WINDOW)).toThrow(new RequestError('invalid_body', message));
    try {
      validateEvents(body, WINDOW);
    } catch (e) {
      expect(e).toBeInstanceOf(RequestError);
      expect((e as RequestError).code).toBe('invalid_body');
      expect((e as RequestError).status).toBe(400);
    }
  });

  it('rejects too many events', () => {
    const events = Array.from({ length: 501 }, (_, i) => ev({ idempotency_key: `k${i}` }));
    let err: unknown;
    try {
      validateEvents({ events }, WINDOW);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RequestError);
    expect(err).toMatchObject({ name: 'RequestError', code: 'too_many_events', status: 400, message: 'events: 501 events in one request, the limit is 500' });
    expect(validateEvents({ events: events.slice(0, 500) }, WINDOW).accepted).toHaveLength(500);
  });

  it('accepts an empty batch', () => {
    expect(validateEvents({ events: [] }, WINDOW)).toEqual({ accepted: [], failed: [], duplicates: [] });
  });

  it('accepts the valid events when others fail, in request order', () => {
    const r = validateEvents({ events: [ev({ idempotency_key: 'a' }), ev({ idempotency_key: 'b', timestamp: 'x' }), ev({ idempotency_key: 'c' })] }, WINDOW);
    expect(r.accepted.map((e) => e.k)).toEqual(['a', 'c']);
    expect(r.failed.map((f) => f.idempotency_key)).toEqual(['b']);
  });

  it('accepts the first copy of a (customer, key) and lists later ones as duplicates', () => {
    const r = validateEvents(
      {
        events: [
          ev({ idempotency_key: 'a', timestamp: 'bad' }), // a failed copy does not count
          ev({ idempotency_key: 'a', properties: { v: 1 } }),
          ev({ idempotency_key: 'a', properties: { v: 2 } }),
          ev({ idempotency_key: 'a', external_customer_id: 'other' }), // other customer: not a copy
          ev({ idempotency_key: 'a', external_customer_id: undefined, customer_id: 'cust_1' }), // id, not external id
          ev({ idempotency_key: 'a' }),
        ],
      },
      WINDOW,
    );
    expect(r.accepted.map((e) => [e.c, e.p])).toEqual([
      ['x:cust_1', { v: 1 }],
      ['x:other', BASE.properties],
      ['cust_1', BASE.properties],
    ]);
    expect(r.duplicates).toEqual(['a', 'a']);
    expect(r.failed).toHaveLength(1);
  });

  it('finds copies of a key used by several customers, and parses repeated timestamps alike', () => {
    const r = validateEvents(
      {
        events: [
          ev({ idempotency_key: 'a', external_customer_id: 'one' }),
          ev({ idempotency_key: 'a', external_customer_id: 'two' }),
          ev({ idempotency_key: 'a', external_customer_id: 'three' }),
          ev({ idempotency_key: 'a', external_customer_id: 'two' }),
          ev({ idempotency_key: 'a', external_customer_id: 'three', timestamp: 'bad' }),
          ev({ idempotency_key: 'a', external_customer_id: 'three' }),
          ev({ idempotency_key: 'b', external_customer_id: 'three', timestamp: 'bad' }),
          ev({ idempotency_key: 'a', external_customer_id: 'one' }),
        ],
      },
      WINDOW,
    );
    expect(r.accepted.map((e) => e.c)).toEqual(['x:one', 'x:two', 'x:three']);
    expect(r.duplicates).toEqual(['a', 'a', 'a']);
    expect(r.failed.map((f) => f.validation_errors)).toEqual([
      ['timestamp: must be ISO 8601 with a time zone, got "bad"'],
      ['timestamp: must be ISO 8601 with a time zone, got "bad"'],
    ]);
  });

  it('does not mistake a ref/key split for a copy', () => {
    const r = validateEvents(
      { events: [ev({ external_customer_id: 'ab', idempotency_key: 'c' }), ev({ external_customer_id: 'a', idempotency_key: 'bc' })] },
      WINDOW,
    );
    expect(r.accepted).toHaveLength(2);
  });
});

describe('customerRef', () => {
  it('prefixes external ids and keeps ids as given', () => {
    expect(customerRef({ external_customer_id: 'acme' })).toBe('x:acme');
    expect(customerRef({ customer_id: 'Xa9', external_customer_id: null })).toBe('Xa9');
  });
});
