import { describe, expect, it } from 'vitest';
import { silentLogger } from '@drawdown/log';
import { preflight } from '../src/index';

describe('preflight', () => {
  it('names each missing service and how to start it', async () => {
    // 127.0.0.2 is a loopback address nothing listens on here, and not "local" to the start
    // logic, so nothing is started: the error must say what is missing.
    const err = await preflight({ databaseUrl: 'postgres://postgres@127.0.0.2:5999/x', natsUrl: 'nats://127.0.0.2:4999', log: silentLogger }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toContain('Postgres is not reachable at 127.0.0.2:5999 (DATABASE_URL)');
    expect(msg).toContain('NATS is not reachable at 127.0.0.2:4999 (NATS_URL)');
    expect(msg).toContain('pg_ctlcluster');
    expect(msg).toContain('nats-server -js');
  });

  it('passes when both answer', async () => {
    await expect(preflight({ databaseUrl: 'postgres://postgres@127.0.0.1:5432/test', natsUrl: 'nats://127.0.0.1:4222', log: silentLogger })).resolves.toBeUndefined();
  });
});
