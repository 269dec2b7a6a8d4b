import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redacted, nsName, nsSubject } from './index';

describe('loadConfig', () => {
  it('uses the documented defaults on an empty environment', () => {
    const c = loadConfig({});
    expect(c.httpPort).toBe(7070);
    expect(c.partitions).toBe(2);
    expect(c.ingestGraceMs).toBe(12 * 3600_000);
    expect(c.natsUrl).toBe('nats://127.0.0.1:4222');
  });

  it('rejects unknown DRAWDOWN_ names and bad values, listing every problem at once', () => {
    let err: unknown;
    try {
      loadConfig({ DRAWDOWN_PARTITONS: '4', DRAWDOWN_HTTP_PORT: 'eighty', DRAWDOWN_PARTITIONS: '0', DATABASE_URL: 'not a url' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toContain('DRAWDOWN_PARTITONS: unknown setting (see `drawdown config` for the list)');
    expect(problems).toContain('DRAWDOWN_HTTP_PORT: must be an integer, got "eighty"');
    expect(problems).toContain('DRAWDOWN_PARTITIONS: must be at least 1, got 0');
    expect(problems).toContain('DATABASE_URL: not a valid URL: "not a url"');
  });

  it('masks secrets and URL passwords', () => {
    const c = loadConfig({ DRAWDOWN_ADMIN_API_KEY: 'sekrit', DATABASE_URL: 'postgres://u:pw@h:5432/db' });
    const r = redacted(c);
    expect(r.adminApiKey).toBe('***');
    expect(r.databaseUrl).toBe('postgres://u:***@h:5432/db');
  });

  it('namespaces names', () => {
    expect(nsName({ namespace: '' }, 'EVENTS')).toBe('EVENTS');
    expect(nsName({ namespace: 't1' }, 'EVENTS')).toBe('t1_EVENTS');
    expect(nsSubject({ namespace: 't1' }, 'events.3')).toBe('t1.events.3');
  });
});
