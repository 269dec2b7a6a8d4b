// The ingest edge of a started all-in-one app, driven over HTTP: the orb-billing SDK, the table
// of bad inputs with their exact errors, a property test of random and truncated bodies, and
// the check that what the edge acknowledged is exactly what JetStream holds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import Orb from 'orb-billing';
import { pack, unpack } from 'msgpackr';
import { testEnv, api, type TestEnv } from '@drawdown/testkit';
import { createLogger } from '@drawdown/log';
import { jetstreamManager, names } from '@drawdown/nats';
import { startApp, type App } from '../src/index';

const MAX_BODY = 65_536;
const MAX_EVENTS = 50;

interface Sent {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

describe('ingest edge', () => {
  let env: TestEnv;
  let app: App;
  let call: ReturnType<typeof api>;
  let readKey: string;

  const send = async (body: string | Uint8Array, headers: Record<string, string> = {}, path = '/v1/ingest', key: string | null = app.adminKey): Promise<Sent> => {
    const res = await fetch(app.baseUrl + path, {
      method: 'POST',
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-type': 'application/json', ...headers },
      body,
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: the assertion on it will say so
    }
    return { status: res.status, body: parsed as Record<string, unknown>, headers: res.headers };
  };

  const ev = (k: string, extra: Record<string, unknown> = {}) => ({
    idempotency_key: k,
    external_customer_id: 'acme',
    event_name: 'api_call',
    timestamp: new Date(Date.now() - 60_000).toISOString(),
    properties: { region: 'eu', n: 3 },
    ...extra,
  });

  beforeAll(async () => {
    env = testEnv({ DRAWDOWN_INGEST_MAX_BODY_BYTES: String(MAX_BODY), DRAWDOWN_INGEST_MAX_EVENTS: String(MAX_EVENTS), DRAWDOWN_INGEST_MAX_PROPERTIES: '5' });
    app = await startApp(env.config, createLogger({ test: 'ingest-edge' }, { level: env.config.logLevel as 'error' }));
    call = api(app.baseUrl, app.adminKey);
    const k = await call('POST', '/v1/api_keys', { name: 'reader', scopes: ['read'] });
    expect(k.status).toBe(201);
    readKey = k.body.key as string;
  });

  afterAll(async () => {
    // Let the raters finish first: stopping a rater with unread messages in its consumer can
    // hang in the NATS client's close (a rater issue, reported; not the edge's).
    await app?.waitIdle(60_000);
    await app?.stop();
    await env?.cleanup();
  });

  describe('the orb-billing SDK', () => {
    it('ingests by external_customer_id and customer_id, with and without debug, in Orb\'s response shape', async () => {
      const orb = new Orb({ apiKey: app.adminKey, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
      const customer = await call('POST', '/v1/customers', { name: 'SDK Co', email: 'sdk@example.com', external_customer_id: 'sdk-co' });
      expect(customer.status).toBe(201);
      const ts = new Date(Date.now() - 5_000).toISOString();
      const events = [
        { idempotency_key: 'sdk-1', external_customer_id: 'sdk-co', event_name: 'api_call', timestamp: ts, properties: { region: 'eu' } },
        { idempotency_key: 'sdk-2', customer_id: customer.body.id as string, event_name: 'api_call', timestamp: ts, properties: { tokens: 12, cached: false, note: null } },
      ];
      const first = await orb.events.ingest({ events }, { query: { debug: true } });
      expect(first).toEqual({ validation_failed: [], debug: { duplicate: [], ingested: ['sdk-1', 'sdk-2'] } });

      // The same request again: JetStream's message-id dedup answers, nothing new is stored.
      const again = await orb.events.ingest({ events }, { query: { debug: true } });
      expect(again).toEqual({ validation_failed: [], debug: { duplicate: ['sdk-1', 'sdk-2'], ingested: [] } });

      // Without debug, Orb's plain shape; a bad event is reported, the good one still accepted.
      const mixed = await orb.events.ingest({
        events: [
          { idempotency_key: 'sdk-3', external_customer_id: 'sdk-co', event_name: 'api_call', timestamp: ts, properties: {} },
          { idempotency_key: 'sdk-4', external_customer_id: 'sdk-co', event_name: 'api_call', timestamp: '2026-11-25 10:00', properties: {} },
        ],
      });
      expect(mixed).toEqual({
        validation_failed: [{ idempotency_key: 'sdk-4', validation_errors: ['timestamp: must be ISO 8601 with a time zone, got "2026-11-25 10:00"'] }],
        debug: null,
      });
    });

    it('surfaces the edge\'s refusals as the SDK\'s typed errors', async () => {
      const bad = new Orb({ apiKey: 'dd_not_a_key', baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
      await expect(bad.events.ingest({ events: [ev('x')] })).rejects.toBeInstanceOf(Orb.AuthenticationError);
      const reader = new Orb({ apiKey: readKey, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
      await expect(reader.events.ingest({ events: [ev('x')] })).rejects.toBeInstanceOf(Orb.PermissionDeniedError);
      const admin = new Orb({ apiKey: app.adminKey, baseURL: `${app.baseUrl}/v1`, maxRetries: 0 });
      const many = Array.from({ length: MAX_EVENTS + 1 }, (_, i) => ev(`many-${i}`));
      await expect(admin.events.ingest({ events: many })).rejects.toBeInstanceOf(Orb.BadRequestError);
      await expect(admin.events.ingest({ events: [ev('bf')], backfill_id: 'bf_1' })).rejects.toBeInstanceOf(Orb.BadRequestError);
      // backfill_id: null is the absence of a backfill.
      expect(await admin.events.ingest({ events: [ev('bf-null')], backfill_id: null })).toEqual({ validation_failed: [], debug: null });
    });
  });

  describe('bad requests: the whole request is refused with its exact status and error', () => {
    const problem = (code: string, status: number, detail: string) => ({ status, type: `https://drawdown.dev/problems/${code}`, detail });
    const table: { name: string; body: () => string | Uint8Array; headers?: Record<string, string>; path?: string; key?: 'none' | 'bogus' | 'read' | 'basic'; want: { status: number; type: string; detail: string } }[] = [
      { name: 'no Authorization header', body: () => '{"events":[]}', key: 'none', want: problem('unauthorized', 401, 'missing Authorization header: send "Authorization: Bearer <api key>"') },
      { name: 'not a Bearer token', body: () => '{"events":[]}', key: 'basic', want: problem('unauthorized', 401, 'Authorization header must be "Bearer <api key>"') },
      { name: 'unknown key', body: () => '{"events":[]}', key: 'bogus', want: problem('unauthorized', 401, 'API key is not valid: no such key') },
      { name: 'key without the ingest scope', body: () => '{"events":[]}', key: 'read', want: problem('forbidden', 403, 'this API key lacks the "ingest" scope needed for POST /v1/ingest (it has: read)') },
      { name: 'truncated JSON', body: () => '{"events": [', want: problem('malformed_json', 400, 'malformed JSON at byte 12 (line 1, column 13): unexpected end of input, expected a value') },
      { name: 'trailing comma in JSON', body: () => '{"events":[{"a":1,}]}', want: problem('malformed_json', 400, 'malformed JSON at byte 18 (line 1, column 19): expected a double-quoted property name, got "}"') },
      { name: 'JSON on the second line', body: () => '{"events": [\n  {"idempotency_key": nope}]}', want: problem('malformed_json', 400, 'malformed JSON at byte 35 (line 2, column 23): invalid literal, expected null') },
      { name: 'empty body', body: () => '', want: problem('malformed_json', 400, 'malformed JSON: the body is empty') },
      { name: 'truncated msgpack', body: () => pack({ events: [{ idempotency_key: 'abcdefg' }] }).subarray(0, 20), headers: { 'content-type': 'application/msgpack' }, want: problem('malformed_msgpack', 400, 'malformed msgpack at byte 14: unexpected end of data: the string starting here needs 16 bytes, only 6 remain') },
      { name: 'body is an array', body: () => '[]', want: problem('invalid_body', 400, 'body: must be an object with an "events" array, got array') },
      { name: 'no events field', body: () => '{}', want: problem('invalid_body', 400, 'body: "events" is required') },
      { name: 'events is not an array', body: () => '{"events":{}}', want: problem('invalid_body', 400, 'events: must be an array, got object') },
      { name: 'too many events', body: () => JSON.stringify({ events: Array.from({ length: MAX_EVENTS + 1 }, (_, i) => ev(`e${i}`)) }), want: problem('too_many_events', 400, `events: ${MAX_EVENTS + 1} events in one request, the limit is ${MAX_EVENTS}`) },
      { name: 'body over the size limit', body: () => 'x'.repeat(MAX_BODY + 1), want: problem('body_too_large', 413, `request body of ${MAX_BODY + 1} bytes is over the limit of ${MAX_BODY} bytes`) },
      { name: 'unsupported Content-Type', body: () => '{"events":[]}', headers: { 'content-type': 'text/plain' }, want: problem('unsupported_media_type', 415, 'unsupported Content-Type "text/plain"; use application/json, application/msgpack, application/x-msgpack, application/cloudevents-batch+json, application/cloudevents+json') },
      { name: 'CloudEvents batch that is not an array', body: () => '{"events":[]}', headers: { 'content-type': 'application/cloudevents-batch+json' }, want: problem('invalid_body', 400, 'body: a CloudEvents batch must be a JSON array, got object') },
      { name: 'backfill_id', body: () => '{"events":[]}', path: '/v1/ingest?backfill_id=bf_1', want: problem('validation_failed', 400, 'backfill_id: backfills are not supported; send events inside the accept window') },
    ];
    for (const t of table) {
      it(t.name, async () => {
        const key = t.key === 'none' ? null : t.key === 'bogus' ? 'dd_bogus' : t.key === 'read' ? readKey : app.adminKey;
        const headers = t.key === 'basic' ? { ...t.headers, authorization: 'Basic YWRtaW46YWRtaW4=' } : t.headers;
        const res = await send(t.body(), headers, t.path, key);
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        expect({ status: res.status, type: res.body.type, detail: res.body.detail }).toEqual(t.want);
        expect(res.body.status).toBe(t.want.status);
      });
    }

    it('refuses a streamed body over the limit while reading it (no Content-Length)', async () => {
      const chunk = new TextEncoder().encode('x'.repeat(16_384));
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent >= MAX_BODY * 2) return c.close();
          sent += chunk.length;
          c.enqueue(chunk);
        },
      });
      const res = await fetch(app.baseUrl + '/v1/ingest', {
        method: 'POST',
        headers: { authorization: `Bearer ${app.adminKey}`, 'content-type': 'application/json' },
        body: stream,
        duplex: 'half',
      } as RequestInit).catch((err: unknown) => err as Error);
      // The edge answers 413 and closes; a client still sending may see the reset instead.
      if (res instanceof Response) {
        expect(res.status).toBe(413);
        expect(((await res.json()) as { detail: string }).detail).toBe(`request body is over the limit of ${MAX_BODY} bytes`);
      } else {
        expect(res).toBeInstanceOf(Error);
      }
      // The edge is still serving.
      expect((await send(JSON.stringify({ events: [ev('after-stream')] }))).status).toBe(200);
    });

    it('answers 405 for another method on /v1/ingest', async () => {
      const res = await fetch(app.baseUrl + '/v1/ingest', { headers: { authorization: `Bearer ${app.adminKey}` } });
      expect(res.status).toBe(405);
      expect(((await res.json()) as { detail: string }).detail).toBe('GET is not allowed on /v1/ingest');
    });
  });

  describe('bad events: the rest of the request is accepted, each failure named', () => {
    const old = () => new Date(Date.now() - 13 * 3_600_000).toISOString();
    const future = () => new Date(Date.now() + 2 * 3_600_000).toISOString();
    const table: { name: string; event: () => unknown; key: string; errors: (string | RegExp)[] }[] = [
      { name: 'no customer', key: 'b1', event: () => ({ ...ev('b1'), external_customer_id: undefined }), errors: ['customer_id, external_customer_id: exactly one must be given, got neither'] },
      { name: 'both customers', key: 'b2', event: () => ev('b2', { customer_id: 'cus_1' }), errors: ['customer_id, external_customer_id: exactly one must be given, got both'] },
      { name: 'reserved customer_id prefix', key: 'b3', event: () => ({ ...ev('b3', { customer_id: 'x:1' }), external_customer_id: null }), errors: ['customer_id: must not start with "x:" (reserved for external customer refs)'] },
      { name: 'timestamp without zone', key: 'b4', event: () => ev('b4', { timestamp: '2026-11-25T10:00:00' }), errors: ['timestamp: must be ISO 8601 with a time zone, got "2026-11-25T10:00:00"'] },
      { name: 'impossible date', key: 'b5', event: () => ev('b5', { timestamp: '2026-02-30T10:00:00Z' }), errors: [/^timestamp: "2026-02-30T10:00:00Z" is not a real date-time: /] },
      { name: 'older than the grace window', key: 'b6', event: () => ev('b6', { timestamp: old() }), errors: [/^timestamp: \S+ is 59m59s before the accept window's lower bound \(now - 12h\)$|^timestamp: \S+ is 1h before the accept window's lower bound \(now - 12h\)$/] },
      { name: 'too far in the future', key: 'b7', event: () => ev('b7', { timestamp: future() }), errors: [/^timestamp: \S+ is (59m59s|1h) after the accept window's upper bound \(now \+ 1h\)$/] },
      { name: 'nested property', key: 'b8', event: () => ev('b8', { properties: { a: { b: 1 } } }), errors: ['properties.a: nested objects are not allowed'] },
      { name: 'array property', key: 'b9', event: () => ev('b9', { properties: { a: [1] } }), errors: [/^properties\.a: arrays are not allowed/] },
      { name: 'too many properties', key: 'b10', event: () => ev('b10', { properties: { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 } }), errors: ['properties: has 6 properties, the limit is 5'] },
      { name: 'idempotency_key too long', key: 'k'.repeat(300), event: () => ev('k'.repeat(300)), errors: ['idempotency_key: is 300 characters long, the limit is 256'] },
      { name: 'property value too long', key: 'b12', event: () => ev('b12', { properties: { s: 'v'.repeat(1025) } }), errors: ['properties.s: string is 1025 characters long, the limit is 1024'] },
      { name: 'event_name missing', key: 'b13', event: () => ({ ...ev('b13'), event_name: undefined }), errors: ['event_name: is required'] },
      { name: 'not an object', key: '', event: () => 42, errors: ['events[13]: must be an object, got number'] },
    ];

    it('reports every bad event in validation_failed and accepts the good ones', async () => {
      const events = [...table.map((t) => t.event()), ev('good-1'), ev('good-2')];
      const res = await send(JSON.stringify({ events }), {}, '/v1/ingest?debug=true');
      expect(res.status).toBe(200);
      expect((res.body.debug as { ingested: string[] }).ingested).toEqual(['good-1', 'good-2']);
      const failed = res.body.validation_failed as { idempotency_key: string; validation_errors: string[] }[];
      expect(failed).toHaveLength(table.length);
      table.forEach((t, i) => {
        const f = failed[i]!;
        expect(f.idempotency_key, t.name).toBe(t.key);
        expect(f.validation_errors, t.name).toHaveLength(t.errors.length);
        t.errors.forEach((e, j) => (typeof e === 'string' ? expect(f.validation_errors[j], t.name).toBe(e) : expect(f.validation_errors[j], t.name).toMatch(e)));
      });
    });

    it('takes the same batch as msgpack and as CloudEvents', async () => {
      const m = await send(pack({ events: [ev('mp-1'), ev('mp-2', { properties: { big: 2 ** 40 } })] }), { 'content-type': 'application/msgpack' }, '/v1/ingest?debug=true');
      expect(m.status).toBe(200);
      expect(m.body).toEqual({ validation_failed: [], debug: { duplicate: [], ingested: ['mp-1', 'mp-2'] } });
      const ce = [
        { specversion: '1.0', id: 'ce-1', source: 'svc', type: 'api_call', subject: 'acme', time: new Date().toISOString(), data: { region: 'us' } },
        { specversion: '1.0', id: 'ce-2', source: 'svc', type: 'api_call', time: new Date().toISOString(), data: {} },
      ];
      const c = await send(JSON.stringify(ce), { 'content-type': 'application/cloudevents-batch+json' }, '/v1/ingest?debug=true');
      expect(c.status).toBe(200);
      expect(c.body.debug).toEqual({ duplicate: [], ingested: ['ce-1'] });
      expect(c.body.validation_failed).toEqual([{ idempotency_key: 'ce-2', validation_errors: ['subject: is required (the external customer id)'] }]);
    });
  });

  it('never answers 5xx or dies, whatever the body (property-based)', async () => {
    const valid = JSON.stringify({ events: [ev('pb-1'), ev('pb-2', { properties: { a: 'x', b: 1.5, c: true } })] });
    const validMp = pack({ events: [ev('pb-3')] });
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.string({ maxLength: 200 }).map((s) => new TextEncoder().encode(s)),
      fc.nat({ max: valid.length }).map((n) => new TextEncoder().encode(valid.slice(0, n))),
      fc.nat({ max: validMp.length }).map((n) => validMp.subarray(0, n)),
      fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, b]) => {
        const x = new TextEncoder().encode(valid);
        x[i] = b;
        return x;
      }),
      fc.tuple(fc.nat({ max: validMp.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, b]) => {
        const x = Uint8Array.from(validMp);
        x[i] = b;
        return x;
      }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => new TextEncoder().encode(JSON.stringify({ events: [v] }))),
    );
    const type = fc.constantFrom('application/json', 'application/msgpack', 'application/cloudevents-batch+json', 'application/cloudevents+json', 'application/json; charset=utf-8', 'text/plain', '');
    await fc.assert(
      fc.asyncProperty(body, type, async (b, t) => {
        const res = await send(b, { 'content-type': t }, '/v1/ingest?debug=true');
        expect([200, 400, 413, 415]).toContain(res.status);
        expect(typeof res.body).toBe('object');
      }),
      { numRuns: 300 },
    );
    const health = await fetch(app.baseUrl + '/healthz');
    expect(health.status).toBe(200);
  });

  it('stores in JetStream exactly what it acknowledged, once', async () => {
    const n = names(env.config.namespace);
    const jsm = await jetstreamManager(app.nc);
    const before = (await jsm.streams.info(n.eventsStream)).state.last_seq;

    const now = Date.now();
    const expected = new Map<string, { k: string; c: string; n: string; t: number; p: Record<string, unknown> }>();
    for (let r = 0; r < 8; r++) {
      const events: Record<string, unknown>[] = [];
      for (let i = 0; i < 40; i++) {
        const k = `js-${r}-${i}`;
        const t = now - 1_000 * (r * 40 + i);
        const byExternal = i % 3 !== 0;
        const cust = `cust-${(r * 7 + i) % 23}`;
        events.push({ idempotency_key: k, ...(byExternal ? { external_customer_id: cust } : { customer_id: cust }), event_name: `ev_${i % 4}`, timestamp: new Date(t).toISOString(), properties: { i, r, tag: `t${i % 5}`, ok: i % 2 === 0, none: null } });
      }
      // Three bad events and two in-request duplicates that must not reach JetStream.
      events.push({ ...events[0]!, idempotency_key: `bad-${r}-a`, timestamp: 'yesterday' });
      events.push({ ...events[1]!, idempotency_key: `bad-${r}-b`, properties: { nested: { x: 1 } } });
      events.push({ ...events[2]!, idempotency_key: `bad-${r}-c`, external_customer_id: undefined, customer_id: undefined });
      events.push(events[3]!, events[4]!);
      const body = JSON.stringify({ events });
      const res = await send(r % 2 === 0 ? body : pack({ events }), r % 2 === 0 ? {} : { 'content-type': 'application/msgpack' }, '/v1/ingest?debug=true');
      expect(res.status).toBe(200);
      expect((res.body.validation_failed as unknown[]).length).toBe(3);
      const debug = res.body.debug as { ingested: string[]; duplicate: string[] };
      expect(debug.duplicate).toEqual([events[3]!.idempotency_key, events[4]!.idempotency_key]);
      for (const k of debug.ingested) {
        const e = events.find((x) => x.idempotency_key === k)!;
        const c = e.external_customer_id !== undefined ? `x:${e.external_customer_id as string}` : (e.customer_id as string);
        expect(expected.has(`${c}\n${k}`)).toBe(false);
        expect(e.timestamp).toBeTypeOf('string');
        expected.set(`${c}\n${k}`, { k, c, n: e.event_name as string, t: Date.parse(e.timestamp as string), p: e.properties as Record<string, unknown> });
      }
      // A whole-request retry is answered from JetStream's message-id dedup: nothing new stored.
      if (r === 3) {
        const again = await send(body, {}, '/v1/ingest?debug=true');
        expect(again.status).toBe(200);
        expect((again.body.debug as { ingested: string[] }).ingested).toEqual([]);
      }
    }
    expect(expected.size).toBe(8 * 40);

    const after = (await jsm.streams.info(n.eventsStream)).state.last_seq;
    const stored = new Map<string, { k: string; c: string; n: string; t: number; p: Record<string, unknown> }>();
    for (let seq = before + 1; seq <= after; seq++) {
      const m = await jsm.streams.getMessage(n.eventsStream, { seq });
      expect(m).not.toBeNull();
      const partition = Number(m!.subject.slice(n.eventsSubjectPrefix.length + 1));
      expect(partition).toBeGreaterThanOrEqual(0);
      expect(partition).toBeLessThan(env.config.partitions);
      for (const e of unpack(m!.data) as { k: string; c: string; n: string; t: number; p: Record<string, unknown>; r: number }[]) {
        const id = `${e.c}\n${e.k}`;
        expect(stored.has(id), `stored twice: ${id}`).toBe(false);
        expect(e.r).toBeGreaterThanOrEqual(now);
        stored.set(id, { k: e.k, c: e.c, n: e.n, t: e.t, p: e.p });
      }
    }
    expect(new Map([...stored].sort())).toEqual(new Map([...expected].sort()));
  });
});
