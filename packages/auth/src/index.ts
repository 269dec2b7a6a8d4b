// API keys: generated, shown once, stored as sha256 hashes; verified at every edge with a
// small cache. Revocation reaches every edge within `cacheTtlMs` (default 2 s), and at once
// on the process that revoked it.
import { createHash, randomBytes } from 'node:crypto';
import type { Pool, Queryable } from '@drawdown/pg';
import { ApiError, type Principal, type Scope } from '@drawdown/http';

export const SCOPES: readonly Scope[] = ['ingest', 'read', 'admin'];
export const KEY_PREFIX = 'dd_';

export function hashKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

export interface NewKey {
  id: string;
  key: string;
  name: string;
  prefix: string;
  scopes: Scope[];
  created_at: string;
}

export async function createApiKey(db: Queryable, name: string, scopes: Scope[], key?: string): Promise<NewKey> {
  const plain = key ?? KEY_PREFIX + randomBytes(24).toString('base64url');
  const id = randomBytes(12).toString('base64url');
  const prefix = plain.slice(0, 8);
  const r = await db.query(
    `INSERT INTO api_keys (id, name, key_hash, prefix, scopes) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (key_hash) DO NOTHING RETURNING created_at`,
    [id, name, hashKey(plain), prefix, scopes],
  );
  if (r.rowCount === 0) throw new ApiError('conflict', 'an API key with this value exists already');
  return { id, key: plain, name, prefix, scopes, created_at: (r.rows[0].created_at as Date).toISOString() };
}

interface CacheEntry {
  principal: Principal | null;
  at: number;
}

export interface KeyVerifier {
  authenticate(authorization: string | undefined): Promise<Principal>;
  /** Drops a key from this process's cache (called by the revoking process). */
  forget(keyId: string): void;
}

export function createKeyVerifier(pool: Pool, opts: { cacheTtlMs?: number; maxEntries?: number } = {}): KeyVerifier {
  const ttl = opts.cacheTtlMs ?? 2000;
  const max = opts.maxEntries ?? 10_000;
  const cache = new Map<string, CacheEntry>();
  return {
    async authenticate(authorization) {
      if (!authorization) throw new ApiError('unauthorized', 'missing Authorization header: send "Authorization: Bearer <api key>"', [], { 'www-authenticate': 'Bearer' });
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (!m) throw new ApiError('unauthorized', 'Authorization header must be "Bearer <api key>"', [], { 'www-authenticate': 'Bearer' });
      const key = m[1]!;
      const now = Date.now();
      let entry = cache.get(key);
      if (!entry || now - entry.at > ttl) {
        const r = await pool.query('SELECT id, scopes FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL', [hashKey(key)]);
        const row = r.rows[0] as { id: string; scopes: Scope[] } | undefined;
        entry = { principal: row ? { keyId: row.id, scopes: row.scopes } : null, at: now };
        if (cache.size >= max) cache.clear();
        cache.set(key, entry);
      }
      if (!entry.principal) throw new ApiError('unauthorized', 'API key is not valid (unknown or revoked)', [], { 'www-authenticate': 'Bearer' });
      return entry.principal;
    },
    forget(keyId) {
      for (const [k, v] of cache) if (v.principal?.keyId === keyId) cache.delete(k);
    },
  };
}
