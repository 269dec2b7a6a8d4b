// API keys: generated, shown once, stored as sha256 hashes; verified at every edge with a
// small cache. A revocation is announced on NATS so every edge drops the key at once; the
// cache TTL bounds the delay when an announcement is lost.
import { createHash, randomBytes } from 'node:crypto';
import type { Pool, Queryable } from '@drawdown/pg';
import { ApiError, type Principal, type Scope } from '@drawdown/http';

export const SCOPES: readonly Scope[] = ['ingest', 'read', 'admin'];
export const KEY_PREFIX = 'dd_';
export const DEFAULT_CACHE_TTL_MS = 2000;
export const DEFAULT_CACHE_MAX_ENTRIES = 10_000;
/** Longest Authorization value looked at; longer is refused without a database lookup. */
const MAX_KEY_CHARS = 512;

export function hashKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** An API key as listed: never the key itself. */
export interface ApiKeyInfo {
  id: string;
  name: string;
  /** First characters of the key, to recognise it. */
  prefix: string;
  scopes: Scope[];
  created_at: string;
  revoked_at: string | null;
}

/** What creating a key returns: the only time the plain key exists outside the client. */
export interface NewKey extends ApiKeyInfo {
  key: string;
}

interface KeyRow {
  id: string;
  name: string;
  prefix: string;
  scopes: Scope[];
  created_at: Date;
  revoked_at: Date | null;
}

export function keyInfo(r: KeyRow): ApiKeyInfo {
  return { id: r.id, name: r.name, prefix: r.prefix, scopes: r.scopes, created_at: r.created_at.toISOString(), revoked_at: r.revoked_at?.toISOString() ?? null };
}

export async function createApiKey(db: Queryable, name: string, scopes: Scope[], key?: string): Promise<NewKey> {
  const plain = key ?? KEY_PREFIX + randomBytes(24).toString('base64url');
  const id = 'key_' + randomBytes(12).toString('base64url');
  const prefix = plain.slice(0, 8);
  const r = await db.query(
    `INSERT INTO api_keys (id, name, key_hash, prefix, scopes) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (key_hash) DO NOTHING RETURNING id, name, prefix, scopes, created_at, revoked_at`,
    [id, name, hashKey(plain), prefix, [...new Set(scopes)]],
  );
  if (r.rowCount === 0) throw new ApiError('conflict', 'an API key with this value exists already');
  return { ...keyInfo(r.rows[0] as KeyRow), key: plain };
}

/** Keys in creation order, `limit + 1` rows after the cursor position (for paginate()). */
export async function listApiKeys(db: Queryable, limit: number, after?: { createdAt: string; id: string }): Promise<{ info: ApiKeyInfo; createdAtExact: string }[]> {
  // created_at::text keeps the microseconds a JS Date would drop, so the cursor is exact.
  const cols = 'id, name, prefix, scopes, created_at, revoked_at, created_at::text AS created_exact';
  const r = after
    ? await db.query(`SELECT ${cols} FROM api_keys WHERE (created_at, id) > ($1::timestamptz, $2) ORDER BY created_at, id LIMIT $3`, [after.createdAt, after.id, limit + 1])
    : await db.query(`SELECT ${cols} FROM api_keys ORDER BY created_at, id LIMIT $1`, [limit + 1]);
  return r.rows.map((row) => ({ info: keyInfo(row as KeyRow), createdAtExact: (row as { created_exact: string }).created_exact }));
}

export async function getApiKey(db: Queryable, id: string): Promise<ApiKeyInfo | undefined> {
  const r = await db.query('SELECT id, name, prefix, scopes, created_at, revoked_at FROM api_keys WHERE id = $1', [id]);
  return r.rows[0] ? keyInfo(r.rows[0] as KeyRow) : undefined;
}

/** Marks a key revoked (idempotent: a revoked key keeps its first revocation time). */
export async function revokeApiKey(db: Queryable, id: string): Promise<ApiKeyInfo | undefined> {
  const r = await db.query(
    `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
     RETURNING id, name, prefix, scopes, created_at, revoked_at`,
    [id],
  );
  return r.rows[0] ? keyInfo(r.rows[0] as KeyRow) : undefined;
}

/** Core NATS subject on which revoked key ids are announced, within a namespace. */
export function revocationSubject(namespace: string): string {
  return namespace ? `${namespace}.auth.keys.revoked` : 'auth.keys.revoked';
}

/** The part of a NATS connection the revocation announcements need. */
export interface RevocationBus {
  publish(subject: string, payload?: string): void;
  subscribe(subject: string, opts: { callback: (err: Error | null, msg: { string(): string }) => void }): { unsubscribe(): void };
}

/** Tells every edge that `keyId` is revoked (fire and forget: the cache TTL covers a lost message). */
export function announceRevocation(bus: RevocationBus, namespace: string, keyId: string): void {
  bus.publish(revocationSubject(namespace), keyId);
}

type Unauthorized = 'missing' | 'malformed' | 'unknown' | 'revoked';

interface CacheEntry {
  principal: Principal | null;
  reason?: Unauthorized;
  revokedAt?: string;
  keyId?: string;
  at: number;
}

export interface KeyVerifier {
  authenticate(authorization: string | undefined): Promise<Principal>;
  /** Drops a key from this process's cache. */
  forget(keyId: string): void;
  /** Stops listening for revocations. */
  close(): void;
}

export interface KeyVerifierOptions {
  cacheTtlMs?: number;
  maxEntries?: number;
  /** With `namespace`: listen for revocation announcements and drop revoked keys at once. */
  bus?: RevocationBus;
  namespace?: string;
}

function unauthorized(reason: Unauthorized, message: string): ApiError {
  return new ApiError('unauthorized', message, [{ field: 'authorization', message: reason }], { 'www-authenticate': `Bearer error="invalid_token"` });
}

export function createKeyVerifier(pool: Pool, opts: KeyVerifierOptions = {}): KeyVerifier {
  const ttl = opts.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
  const max = opts.maxEntries ?? DEFAULT_CACHE_MAX_ENTRIES;
  // Keyed by the key's hash, so plain keys do not sit in memory.
  const cache = new Map<string, CacheEntry>();
  const sub = opts.bus?.subscribe(revocationSubject(opts.namespace ?? ''), {
    callback: (err, msg) => {
      if (!err) forget(msg.string());
    },
  });
  function forget(keyId: string): void {
    for (const [k, v] of cache) if (v.keyId === keyId) cache.delete(k);
  }
  const refuse = (reason: Unauthorized, message: string): never => {
    throw unauthorized(reason, message);
  };
  return {
    async authenticate(authorization) {
      if (!authorization) return refuse('missing', 'missing Authorization header: send "Authorization: Bearer <api key>"');
      const m = /^Bearer +(\S+) *$/i.exec(authorization);
      if (!m || m[1]!.length > MAX_KEY_CHARS) return refuse('malformed', 'Authorization header must be "Bearer <api key>"');
      const hash = hashKey(m[1]!);
      const id = hash.toString('base64');
      const now = Date.now();
      let entry = cache.get(id);
      if (!entry || now - entry.at > ttl) {
        const r = await pool.query('SELECT id, scopes, revoked_at FROM api_keys WHERE key_hash = $1', [hash]);
        const row = r.rows[0] as { id: string; scopes: Scope[]; revoked_at: Date | null } | undefined;
        if (!row) entry = { principal: null, reason: 'unknown', at: now };
        else if (row.revoked_at) entry = { principal: null, reason: 'revoked', revokedAt: row.revoked_at.toISOString(), keyId: row.id, at: now };
        else entry = { principal: { keyId: row.id, scopes: row.scopes }, keyId: row.id, at: now };
        // A Map iterates in insertion order: a refreshed entry moves to the end, and when the
        // cache is full the oldest entries go (not the whole cache, which would send every
        // busy key to Postgres at once).
        cache.delete(id);
        for (const k of cache.keys()) {
          if (cache.size < max) break;
          cache.delete(k);
        }
        cache.set(id, entry);
      }
      if (entry.principal) return entry.principal;
      if (entry.reason === 'revoked') return refuse('revoked', `API key ${entry.keyId} was revoked at ${entry.revokedAt}`);
      return refuse('unknown', 'API key is not valid: no such key');
    },
    forget,
    close() {
      sub?.unsubscribe();
    },
  };
}
