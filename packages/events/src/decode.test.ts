import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { locateJsonError, locateMsgpackError } from './decode';
import { DEFAULT_FUTURE_MS, DEFAULT_GRACE_MS, RequestError, decodeBody, validateEvents } from './index';

const NOW = Date.parse('2026-11-25T12:00:00Z');
const WINDOW = { nowMs: NOW, graceMs: DEFAULT_GRACE_MS, futureMs: DEFAULT_FUTURE_MS };
const EVENT = {
  idempotency_key: 'k1',
  external_customer_id: 'cust_1',
  event_name: 'api_call',
  timestamp: '2026-11-25T11:00:00Z',
  properties: { region: 'eu', tokens: 12 },
};
const BODY = { events: [EVENT] };
const packr = new Packr({ useRecords: false });

function requestError(f: () => unknown): RequestError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(RequestError);
    return e as RequestError;
  }
  throw new Error('expected a RequestError');
}

const json = (s: string) => Buffer.from(s, 'utf8');

describe('decodeBody: JSON', () => {
  it.each([undefined, '', 'application/json', 'Application/JSON; charset=utf-8', ' application/json ;charset=UTF-8'])(
    'decodes Content-Type %j as JSON',
    (ct) => {
      expect(decodeBody(ct, json(JSON.stringify(BODY)))).toEqual(BODY);
    },
  );

  it('decodes from a Uint8Array view and skips a byte order mark', () => {
    const bytes = new Uint8Array(Buffer.concat([Buffer.from('xx'), json(`\ufeff${JSON.stringify(BODY)}`)]));
    expect(decodeBody('application/json', bytes.subarray(2))).toEqual(BODY);
  });

  it.each([
    ['', 'malformed JSON: the body is empty'],
    ['   \n', 'malformed JSON at byte 4 (line 2, column 1): unexpected end of input, expected a value'],
    ['{"events":[1,2', 'malformed JSON at byte 14 (line 1, column 15): expected "," or "]" after an array element, got end of input'],
    ['{"a":}', 'malformed JSON at byte 5 (line 1, column 6): expected a value, got "}"'],
    ['{\n  "events": [\n    {"a": 1,}\n  ]\n}', 'malformed JSON at byte 28 (line 3, column 13): expected a double-quoted property name, got "}"'],
    ['{"a":1}x', 'malformed JSON at byte 7 (line 1, column 8): unexpected "x" after the end of the JSON value'],
    ['{"a" 1}', 'malformed JSON at byte 5 (line 1, column 6): expected ":" after the property name, got "1"'],
    ['{"a":tru}', 'malformed JSON at byte 5 (line 1, column 6): invalid literal, expected true'],
    ['{"a":01}', 'malformed JSON at byte 5 (line 1, column 6): numbers must not have leading zeros'],
    ['{"a":1.}', 'malformed JSON at byte 7 (line 1, column 8): expected a digit after the decimal point, got "}"'],
    ['[1e]', 'malformed JSON at byte 3 (line 1, column 4): expected a digit in the exponent, got "]"'],
    ['[-]', 'malformed JSON at byte 2 (line 1, column 3): expected a digit, got "]"'],
    ['{"a":"x', 'malformed JSON at byte 5 (line 1, column 6): unterminated string'],
    ['{"a":"\\q"}', 'malformed JSON at byte 6 (line 1, column 7): invalid escape "\\\\q" in a string'],
    ['{"a":"\\u12x4"}', 'malformed JSON at byte 6 (line 1, column 7): invalid \\u escape in a string (needs 4 hex digits)'],
    ['{"a":"\t"}', 'malformed JSON at byte 6 (line 1, column 7): control character in a string (must be escaped)'],
    ["{'a':1}", 'malformed JSON at byte 1 (line 1, column 2): expected a double-quoted property name, got "\'"'],
    ['{"é":1, x', 'malformed JSON at byte 9 (line 1, column 9): expected a double-quoted property name, got "x"'],
    ['\ufeff{"a":x}', 'malformed JSON at byte 8 (line 1, column 6): expected a value, got "x"'],
  ])('locates the error in %j', (text, message) => {
    const e = requestError(() => decodeBody('application/json', json(text)));
    expect(e).toMatchObject({ code: 'malformed_json', status: 400, message });
  });

  it('locates errors in deeply nested JSON without overflowing', () => {
    const e = requestError(() => decodeBody(undefined, json(`${'['.repeat(200_000)}x`)));
    expect(e.message).toBe('malformed JSON at byte 200000 (line 1, column 200001): expected a value, got "x"');
  });

  it('finds an error exactly when JSON.parse fails', () => {
    const alphabet = fc.constantFrom(...'{}[]:,"\\ \n0123456789.eE+-tfrueanlsxu'.split(''));
    const jsonish = fc.oneof(
      fc.string({ unit: alphabet, maxLength: 30 }),
      fc.json().map((s) => s),
      fc.tuple(fc.json(), fc.nat()).map(([s, n]) => s.slice(0, n % (s.length + 1))),
    );
    fc.assert(
      fc.property(jsonish, (s) => {
        let ok = true;
        try {
          JSON.parse(s);
        } catch {
          ok = false;
        }
        expect(locateJsonError(s) === undefined).toBe(ok);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('decodeBody: msgpack', () => {
  it.each(['application/msgpack', 'application/x-msgpack', 'application/msgpack; q=1'])('decodes %s', (ct) => {
    expect(decodeBody(ct, packr.pack(BODY))).toEqual(BODY);
  });

  it('decodes what other msgpack writers produce, 64-bit integers as numbers', () => {
    // {"events": [{"n": uint64 2^40}]}
    const bytes = Buffer.from([0x81, 0xa6, ...Buffer.from('events'), 0x91, 0x81, 0xa1, 0x6e, 0xcf, 0, 0, 1, 0, 0, 0, 0, 0]);
    expect(decodeBody('application/msgpack', bytes)).toEqual({ events: [{ n: 2 ** 40 }] });
  });

  it.each([
    [[], 'malformed msgpack: the body is empty'],
    [[0x81, 0xa6, ...Buffer.from('events'), 0x92, 0x01], 'malformed msgpack at byte 10: unexpected end of data, expected a value'],
    [[0x01, 0x02], 'malformed msgpack at byte 1: 1 bytes of unexpected data after the end of the msgpack value'],
    [[0xd9, 0x05, 0x61], 'malformed msgpack at byte 0: unexpected end of data: the string starting here needs 7 bytes, only 3 remain'],
    [[0x91, 0xcb, 0x00, 0x01], 'malformed msgpack at byte 1: unexpected end of data: the number starting here needs 9 bytes, only 3 remain'],
    [[0xdc, 0x00], 'malformed msgpack at byte 0: unexpected end of data inside the header of the array starting here'],
    [[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00], 'malformed msgpack at byte 0: unexpected end of data: the binary starting here needs 4294967300 bytes, only 6 remain'],
    [[0xdf, 0xff, 0xff, 0xff, 0xff, 0x01], 'malformed msgpack at byte 6: unexpected end of data, expected a value'],
  ])('locates the error in %j', (bytes, message) => {
    const e = requestError(() => decodeBody('application/msgpack', Buffer.from(bytes)));
    expect(e).toMatchObject({ code: 'malformed_msgpack', status: 400, message });
  });

  it('refuses structured-clone references', () => {
    // msgpackr's pointer extension (0x70): not plain msgpack, never from a client
    const e = requestError(() => decodeBody('application/msgpack', Buffer.from([0xd6, 0x70, 0, 0, 0, 1])));
    expect(e.code).toBe('malformed_msgpack');
  });

  it('survives deep nesting', () => {
    const e = requestError(() => decodeBody('application/msgpack', Buffer.alloc(200_000, 0x91)));
    expect(e.message).toBe('malformed msgpack at byte 200000: unexpected end of data, expected a value');
    const deep = Buffer.concat([Buffer.alloc(200_000, 0x91), Buffer.from([0x01])]);
    expect(requestError(() => decodeBody('application/msgpack', deep)).message).toBe('malformed msgpack: nested too deeply');
  });

  it('finds no error in anything msgpackr writes', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(locateMsgpackError(packr.pack(v))).toBeUndefined();
      }),
      { numRuns: 1000 },
    );
  });
});

describe('decodeBody: CloudEvents', () => {
  const ce = {
    specversion: '1.0',
    id: 'evt-1',
    source: 'urn:svc:gateway',
    type: 'api_call',
    subject: 'cust_1',
    time: '2026-11-25T11:00:00Z',
    data: { region: 'eu', tokens: 12 },
  };

  it('maps a batch to Orb events', () => {
    const body = decodeBody('application/cloudevents-batch+json', json(JSON.stringify([ce, { ...ce, id: 'evt-2', data: undefined, specversion: undefined }])));
    const r = validateEvents(body, WINDOW);
    expect(r.failed).toEqual([]);
    expect(r.accepted).toEqual([
      { k: 'evt-1', c: 'x:cust_1', n: 'api_call', t: Date.parse(ce.time), p: ce.data, r: NOW },
      { k: 'evt-2', c: 'x:cust_1', n: 'api_call', t: Date.parse(ce.time), p: {}, r: NOW },
    ]);
  });

  it('maps a single CloudEvent', () => {
    const body = decodeBody('application/cloudevents+json; charset=utf-8', json(JSON.stringify(ce)));
    expect(validateEvents(body, WINDOW).accepted.map((e) => e.k)).toEqual(['evt-1']);
  });

  it('names the CloudEvents fields in errors, per event', () => {
    const bad = [
      { specversion: '0.3', id: 'a', type: 'api_call', subject: 'c', time: '2026-11-25T11:00:00Z' },
      { id: 'b', type: '', time: '2026-11-25 11:00', data: 'text', data_base64: 'AAE=' },
      { id: 7, subject: 'c', type: 't', time: '2026-11-25T11:00:00Z', data: { deep: { x: 1 } } },
      42,
      ce,
    ];
    const r = validateEvents(decodeBody('application/cloudevents-batch+json', json(JSON.stringify(bad))), WINDOW);
    expect(r.accepted.map((e) => e.k)).toEqual(['evt-1']);
    expect(r.failed).toEqual([
      { idempotency_key: 'a', validation_errors: ['specversion: must be "1.0", got "0.3"'] },
      {
        idempotency_key: 'b',
        validation_errors: [
          'data_base64: binary data is not supported, send "data" as a JSON object',
          'subject: is required (the external customer id)',
          'type: must not be empty',
          'time: must be ISO 8601 with a time zone, got "2026-11-25 11:00"',
          'data: must be an object, got string',
        ],
      },
      { idempotency_key: '', validation_errors: ['id: must be a string, got number (events[2])', 'data.deep: nested objects are not allowed'] },
      { idempotency_key: '', validation_errors: ['events[3]: must be an object, got number'] },
    ]);
  });

  it('rejects the wrong kind of body', () => {
    expect(requestError(() => decodeBody('application/cloudevents-batch+json', json(JSON.stringify(ce))))).toMatchObject({
      code: 'invalid_body',
      message: 'body: a CloudEvents batch must be a JSON array, got object',
    });
    expect(requestError(() => decodeBody('application/cloudevents+json', json('[]')))).toMatchObject({
      code: 'invalid_body',
      message: 'body: a CloudEvent must be a JSON object, got array',
    });
    expect(requestError(() => decodeBody('application/cloudevents-batch+json', json('[{')))).toMatchObject({ code: 'malformed_json' });
  });

  it('applies the events-per-request limit to batches', () => {
    const body = decodeBody('application/cloudevents-batch+json', json(JSON.stringify(Array.from({ length: 501 }, () => ce))));
    expect(requestError(() => validateEvents(body, WINDOW)).code).toBe('too_many_events');
  });
});

describe('decodeBody: media types', () => {
  it.each(['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx'])('refuses %s with 415', (ct) => {
    const e = requestError(() => decodeBody(ct, json('{}')));
    expect(e).toMatchObject({ code: 'unsupported_media_type', status: 415 });
    expect(e.message).toBe(
      `unsupported Content-Type ${JSON.stringify(ct)}; use application/json, application/msgpack, application/x-msgpack, application/cloudevents-batch+json, application/cloudevents+json`,
    );
  });
});

describe('RequestError', () => {
  it('maps codes to statuses', () => {
    expect(new RequestError('body_too_large', 'x').status).toBe(413);
    expect(new RequestError('unsupported_media_type', 'x').status).toBe(415);
    expect(new RequestError('malformed_json', 'x').status).toBe(400);
    expect(new RequestError('invalid_body', 'x', 422).status).toBe(422);
    expect(new RequestError('invalid_body', 'x').name).toBe('RequestError');
  });
});
