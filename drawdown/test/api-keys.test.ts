// API keys through the API of a started app: created once (the key shown only then), listed
// with cursor pagination (never the key), revoked by DELETE or POST .../revoke, scopes
// enforced with 401/403 and a reason, and revocation reaching another edge at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv, api, type TestEnv } from '@drawdown/testkit';
import { createLogger, silentLogger } from '@drawdown/log';
import { createKeyVerifier } from '@drawdown/auth';
import { connectNats } from '@drawdown/nats';
import { startApp, type App } from '../src/index';

describe('API keys', () => {
  let env: TestEnv;
  let app: App;
  let admin: ReturnType<typeof api>;

  const ingestAs = (key: string) =>
    api(app.baseUrl, key)('POST', '/v1/ingest', { events: [{ idempotency_key: `k-${Math.random()}`, external_customer_id: 'acme', event_name: 'e', timestamp: new Date().toISOString(), properties: {} }] });

  beforeAll(async () => {
    env = testEnv();
    app = await startApp(env.config, createLogger({ test: 'api-keys' }, { level: env.config.logLevel as 'error' }));
    admin = api(app.baseUrl, app.adminKey);
  });

  afterAll(async () => {
    await app?.waitIdle(60_000);
    await app?.stop();
    await env?.cleanup();
  });

  it('creates a key shown once, stored hashed, with the scopes asked for', async () => {
    const created = await admin('POST', '/v1/api_keys', { name: 'edge', scopes: ['ingest'] });
    expect(created.status).toBe(201);
    const key = created.body.key as string;
    expect(key).toMatch(/^dd_[A-Za-z0-9_-]{32}$/);
    expect(created.body).toEqual({ id: expect.stringMatching(/^key_/), key, name: 'edge', prefix: key.slice(0, 8), scopes: ['ingest'], created_at: expect.any(String), revoked_at: null });
    const row = await app.pool.query('SELECT key_hash, prefix FROM api_keys WHERE id = $1', [created.body.id]);
    expect((row.rows[0].key_hash as Buffer).length).toBe(32);
    expect((row.rows[0].key_hash as Buffer).toString('utf8')).not.toContain(key);
    const fetched = await admin('GET', `/v1/api_keys/${created.body.id as string}`);
    expect(fetched.status).toBe(200);
    expect(fetched.body.key).toBeUndefined();
    expect(JSON.stringify(fetched.body)).not.toContain(key);
  });

  it('refuses bad key requests naming every field', async () => {
    const r = await admin('POST', '/v1/api_keys', { name: '', scopes: ['ingest', 'root', 7] });
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual([
      { field: 'name', message: 'is required (a non-empty string)' },
      { field: 'scopes[1]', message: 'must be one of ingest, read, admin, got "root"' },
      { field: 'scopes[2]', message: 'must be one of ingest, read, admin, got 7' },
    ]);
    expect((await admin('POST', '/v1/api_keys', { name: 'x', scopes: [] })).body.errors).toEqual([{ field: 'scopes', message: 'must be a non-empty list of ingest, read, admin' }]);
    expect((await admin('GET', '/v1/api_keys/key_nope')).status).toBe(404);
    expect((await admin('DELETE', '/v1/api_keys/key_nope')).status).toBe(404);
  });

  it('lists keys with cursor pagination, never the key', async () => {
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await admin('POST', '/v1/api_keys', { name: `page-${i}`, scopes: ['read'] });
      made.push(r.body.key as string);
    }
    const seen: { id: string; name: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: { status: number; body: Record<string, unknown> } = await admin('GET', `/v1/api_keys?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      const data = r.body.data as { id: string; name: string }[];
      expect(data.length).toBeLessThanOrEqual(2);
      for (const k of data) expect(Object.keys(k).sort()).toEqual(['created_at', 'id', 'name', 'prefix', 'revoked_at', 'scopes']);
      seen.push(...data);
      const meta = r.body.pagination_metadata as { has_more: boolean; next_cursor: string | null };
      cursor = meta.has_more ? meta.next_cursor : null;
      pages++;
    } while (cursor);
    const total = Number((await app.pool.query('SELECT count(*) AS n FROM api_keys')).rows[0].n);
    expect(seen).toHaveLength(total);
    expect(new Set(seen.map((k) => k.id)).size).toBe(total);
    expect(pages).toBe(Math.ceil(total / 2));
    const text = JSON.stringify(seen);
    for (const k of [...made, app.adminKey]) expect(text).not.toContain(k);
    expect((await admin('GET', '/v1/api_keys?cursor=garbage')).status).toBe(400);
  });

  it('enforces scopes with 401/403 and a reason', async () => {
    const ingestKey = (await admin('POST', '/v1/api_keys', { name: 'ingest only' })).body as { key: string; scopes: string[] };
    expect(ingestKey.scopes).toEqual(['ingest']);
    const readKey = ((await admin('POST', '/v1/api_keys', { name: 'reader', scopes: ['read'] })).body as { key: string }).key;

    expect((await ingestAs(ingestKey.key)).status).toBe(200);
    const list = await api(app.baseUrl, ingestKey.key)('GET', '/v1/api_keys');
    expect(list.status).toBe(403);
    expect(list.body.detail).toBe('this API key lacks the "admin" scope needed for GET /v1/api_keys (it has: ingest)');
    expect((await api(app.baseUrl, ingestKey.key)('GET', '/v1/ping')).status).toBe(403);
    expect((await api(app.baseUrl, readKey)('GET', '/v1/ping')).status).toBe(200);
    const r = await ingestAs(readKey);
    expect(r.status).toBe(403);
    expect(r.body.detail).toBe('this API key lacks the "ingest" scope needed for POST /v1/ingest (it has: read)');
    const none = await fetch(app.baseUrl + '/v1/ping');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toContain('Bearer');
  });

  it('revokes by DELETE and by POST .../revoke, at once on this edge and on another', async () => {
    const a = (await admin('POST', '/v1/api_keys', { name: 'to revoke a' })).body as { id: string; key: string };
    const b = (await admin('POST', '/v1/api_keys', { name: 'to revoke b' })).body as { id: string; key: string };

    // Another edge: its own NATS connection and a cache that would trust a key for a minute.
    const nc = await connectNats(env.config.natsUrl, 'other-edge', silentLogger);
    const other = createKeyVerifier(app.pool, { cacheTtlMs: 60_000, bus: nc, namespace: env.config.namespace });
    try {
      expect((await other.authenticate(`Bearer ${a.key}`)).keyId).toBe(a.id);
      expect((await other.authenticate(`Bearer ${b.key}`)).keyId).toBe(b.id);
      await nc.flush();
      expect((await ingestAs(a.key)).status).toBe(200);

      const del = await admin('DELETE', `/v1/api_keys/${a.id}`);
      expect(del.status).toBe(200);
      expect(del.body.revoked_at).toEqual(expect.any(String));
      const refused = await ingestAs(a.key);
      expect(refused.status).toBe(401);
      expect(refused.body.detail).toBe(`API key ${a.id} was revoked at ${del.body.revoked_at as string}`);

      const post = await admin('POST', `/v1/api_keys/${b.id}/revoke`);
      expect(post.status).toBe(200);
      expect((await ingestAs(b.key)).status).toBe(401);
      // Revoking again keeps the first time.
      expect((await admin('DELETE', `/v1/api_keys/${b.id}`)).body.revoked_at).toBe(post.body.revoked_at);

      // The other edge drops both long before its 60 s cache would expire.
      const until = Date.now() + 2000;
      for (const k of [a, b]) {
        for (;;) {
          const err = await other.authenticate(`Bearer ${k.key}`).then(() => undefined, (e: Error) => e);
          if (err) {
            expect(err.message).toMatch(new RegExp(`^API key ${k.id} was revoked at `));
            break;
          }
          expect(Date.now()).toBeLessThan(until);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    } finally {
      other.close();
      await nc.close();
    }
    const listed = await admin('GET', `/v1/api_keys/${a.id}`);
    expect(listed.body.revoked_at).toEqual(expect.any(String));
  });
  it('evicts the oldest cached keys when the verifier cache is full, not the whole cache', async () => {
    const keys: string[] = [];
    for (let i = 0; i < 4; i++) keys.push((await admin('POST', '/v1/api_keys', { name: `cache-${i}`, scopes: ['ingest'] })).body.key as string);
    // The real pool, with its lookups counted.
    let lookups = 0;
    const pool = { query: (...args: Parameters<typeof app.pool.query>) => (lookups++, app.pool.query(...args)) } as unknown as typeof app.pool;
    const verifier = createKeyVerifier(pool, { cacheTtlMs: 600_000, maxEntries: 3 });
    const auth = (k: string) => verifier.authenticate(`Bearer ${k}`);
    try {
      for (const k of keys.slice(0, 3)) await auth(k);
      expect(lookups).toBe(3);
      await auth(keys[3]!); // full: the oldest (keys[0]) goes
      expect(lookups).toBe(4);
      for (const k of keys.slice(1)) await auth(k); // still cached
      expect(lookups).toBe(4);
      await auth(keys[0]!); // evicted: looked up again, and keys[1] goes
      expect(lookups).toBe(5);
      await auth(keys[2]!);
      await auth(keys[3]!);
      expect(lookups).toBe(5);
      await auth(keys[1]!);
      expect(lookups).toBe(6);
    } finally {
      verifier.close();
    }
  });
});
