// The partition count is fixed for a deployment: the rater records it and refuses another.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@drawdown/log';
import { connectNats, ensureStreams, names, openKv, type KV, type NatsConnection } from '@drawdown/nats';
import { testEnv, type TestEnv } from '@drawdown/testkit';
import { checkPartitionCount, PartitionCountError } from '../src/index';

describe('partition count record', () => {
  let env: TestEnv;
  let nc: NatsConnection;
  let kv: KV;
  beforeAll(async () => {
    env = testEnv();
    nc = await connectNats(env.config.natsUrl, 'partitions-test', silentLogger);
    await ensureStreams(nc, names(env.config.namespace));
    kv = await openKv(nc, names(env.config.namespace).raterStateBucket);
  });
  afterAll(async () => {
    await nc.close();
    await env.cleanup();
  });

  it('records the count at the first start, accepts it again and refuses another one, naming both', async () => {
    await checkPartitionCount(kv, 4);
    expect((await kv.get('partitions'))?.string()).toBe('4');
    await checkPartitionCount(kv, 4);
    const err = await checkPartitionCount(kv, 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PartitionCountError);
    expect((err as Error).message).toContain('DRAWDOWN_PARTITIONS is 2');
    expect((err as Error).message).toContain('partitioned into 4');
    expect((await kv.get('partitions'))?.string()).toBe('4');
  });

  it('recognises a deployment from before the record by its partition checkpoints', async () => {
    await kv.purge('partitions');
    await kv.put('p5', JSON.stringify({ seq: 10, pending: null }));
    const err = await checkPartitionCount(kv, 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PartitionCountError);
    expect((err as Error).message).toContain('at least 6');
    expect((await kv.get('partitions'))?.operation ?? 'none').not.toBe('PUT');
    await checkPartitionCount(kv, 8);
    expect((await kv.get('partitions'))?.string()).toBe('8');
  });
});
