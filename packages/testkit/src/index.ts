// Test kit: an isolated configuration per test file (its own Postgres database, NATS
// namespace and chDB directory), and clean-up afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadConfig, type Config } from '@drawdown/config';
import { connectNats, deleteStreams, names } from '@drawdown/nats';
import { silentLogger } from '@drawdown/log';

export interface TestEnv {
  config: Config;
  cleanup(): Promise<void>;
}

export function testEnv(overrides: Record<string, string> = {}): TestEnv {
  const id = `t${randomBytes(4).toString('hex')}`;
  const base = loadConfig({ DATABASE_URL: process.env.DATABASE_URL, NATS_URL: process.env.NATS_URL });
  const dbUrl = new URL(base.databaseUrl);
  dbUrl.pathname = `/drawdown_${id}`;
  const dataDir = mkdtempSync(join(tmpdir(), `drawdown-${id}-`));
  const config = loadConfig({
    DATABASE_URL: dbUrl.toString(),
    NATS_URL: base.natsUrl,
    DRAWDOWN_NAMESPACE: id,
    DRAWDOWN_DATA_DIR: dataDir,
    DRAWDOWN_HTTP_PORT: '0',
    DRAWDOWN_LOG_LEVEL: process.env.DRAWDOWN_TEST_LOG_LEVEL ?? 'error',
    // Tests spread customers over more partitions than the one-machine default, so partitioned
    // paths (leases, per-partition order, hand-over) are exercised.
    DRAWDOWN_PARTITIONS: '8',
    ...overrides,
  });
  return {
    config,
    async cleanup() {
      const nc = await connectNats(config.natsUrl, 'testkit', silentLogger);
      await deleteStreams(nc, names(id));
      await nc.close();
      const admin = new URL(config.databaseUrl);
      admin.pathname = '/postgres';
      const c = new pg.Client({ connectionString: admin.toString() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "drawdown_${id}" WITH (FORCE)`);
      await c.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A tiny JSON client for the API (tests that don't go through the orb-billing SDK). */
export function api(baseUrl: string, key: string) {
  return async function call<T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T; headers: Headers }> {
    const res = await fetch(baseUrl + path, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? (body as string) : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  };
}
