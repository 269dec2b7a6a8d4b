// The debit consumer against real JetStream and Postgres: batches of different partitions are
// applied in separate lanes (a lane whose rows are locked does not hold the others up), a
// replayed batch changes nothing, an undecodable message is dropped without stopping the
// rest, a batch that cannot be applied does not hold up those grouped with it (and is kept for
// redelivery), and a stop applies the batches already queued before it returns.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeDebitBatch, type DebitBatch } from '@drawdown/debits';
import { createLogger } from '@drawdown/log';
import { jetstream, jetstreamManager, names } from '@drawdown/nats';
import { parseDecimal } from '@drawdown/money';
import { balancesOf, seedCustomers } from '../src/index';
import { applyDebitBatchesInLanes, laneOf, startDebitConsumer, type DebitConsumer } from '../src/credits/consumer';
import { startHarness, type Harness } from './harness';

let h: Harness;
const log = createLogger({ test: 'debit-consumer' }, { level: 'error' });
beforeAll(async () => {
  h = await startHarness({ DRAWDOWN_LEDGER_VACUUM_INTERVAL_MS: '0' }, { ledger: false });
  await seedCustomers(h.pool, { count: 8, ids: { customer: 'dc', external: 'dc-', block: 'dcb' }, grant: '100' });
});
afterAll(async () => {
  await h?.stop();
});

const day = new Date().toISOString().slice(0, 10);
let seq = 0;
/** A batch of `partition` debiting each customer `amount` credits. */
function batch(partition: number, customers: string[], amount: string, id?: string): DebitBatch {
  seq++;
  return {
    id: id ?? `dc-test:${partition}:${seq}`, partition, firstSeq: seq, lastSeq: seq, receivedAtMax: Date.now(),
    lines: customers.map((customerId) => ({ customerId, pricingUnit: 'credits', priceId: 'dc-price', day, amountPicos: parseDecimal(amount).toString(), quantityPicos: '1000000000000', events: 1 })),
  };
}
const balance = async (c: string) => (await balancesOf(h.pool, c))[0]!.balance;
const subject = (p: number) => `${names(h.env.config.namespace).debitsSubjectPrefix}.${p}`;
async function publish(b: DebitBatch): Promise<void> {
  await jetstream(h.nc).publish(subject(b.partition), encodeDebitBatch(b));
}
async function until(what: string, ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const start = (durable: string, lanes: number, batchMax = 64): Promise<DebitConsumer> =>
  startDebitConsumer({ nc: h.nc, pool: h.pool, stream: names(h.env.config.namespace).debitsStream, durable, batchMax, lanes, log });
/** A connection holding `customer`'s balance row (as an API write would) until COMMIT. */
async function holdBalance(customer: string) {
  const locker = await h.pool.connect();
  await locker.query('BEGIN');
  await locker.query('SELECT 1 FROM credit_balances WHERE customer_id = $1 FOR UPDATE', [customer]);
  return locker;
}
/** Until some transaction waits for a row lock (the consumer's, behind holdBalance). */
const someoneWaits = () => until('a transaction waiting for the lock', async () => {
  const r = await h.pool.query(`SELECT 1 FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')`);
  return (r.rowCount ?? 0) > 0;
});
const consumerInfo = async (durable: string) => (await jetstreamManager(h.nc)).consumers.info(names(h.env.config.namespace).debitsStream, durable);
/** Drops the durable and everything published so far, so that each test starts clean. */
async function purge(): Promise<void> {
  const jsm = await jetstreamManager(h.nc);
  await jsm.streams.purge(names(h.env.config.namespace).debitsStream);
}

describe('laneOf', () => {
  it('maps a partition to partition mod lanes, and anything not a partition to lane 0', () => {
    expect([0, 1, 2, 3, 5].map((p) => laneOf(p, 2))).toEqual([0, 1, 0, 1, 1]);
    expect(laneOf(7, 1)).toBe(0);
    expect(laneOf(-1, 2)).toBe(0);
    expect(laneOf(1.5, 2)).toBe(0);
  });
});

describe('debit consumer lanes', () => {
  it('applies a partition whose balance rows are locked elsewhere without holding up the other lane', async () => {
    await purge();
    const consumer = await start('dc-lanes', 2);
    // An API write (say) holds dc0's balance row: partition 0's lane waits for it.
    const locker = await holdBalance('dc0');
    try {
      const before0 = await balance('dc0');
      const before1 = await balance('dc1');
      await publish(batch(0, ['dc0'], '2'));
      await publish(batch(1, ['dc1'], '3'));
      await until('partition 1 applied', async () => (await balance('dc1')) === before1 - parseDecimal('3'));
      expect(await balance('dc0')).toBe(before0);
      await locker.query('COMMIT');
      await until('partition 0 applied', async () => (await balance('dc0')) === before0 - parseDecimal('2'));
      await consumer.idle();
    } finally {
      locker.release();
      await consumer.stop();
    }
  });

  it('changes nothing on a replayed batch, and drops an undecodable message without stopping', async () => {
    await purge();
    const consumer = await start('dc-replay', 2);
    try {
      const before = await balance('dc2');
      const b = batch(2, ['dc2'], '1.5');
      await publish(b);
      await jetstream(h.nc).publish(subject(3), new Uint8Array([0xc1, 0x00, 0xff]));
      await publish(b);
      await publish(batch(3, ['dc3', 'dc2'], '0.25'));
      await consumer.idle();
      expect(await balance('dc2')).toBe(before - parseDecimal('1.75'));
      const applied = await h.pool.query('SELECT 1 FROM applied_batches WHERE batch_id = $1', [b.id]);
      expect(applied.rowCount).toBe(1);
    } finally {
      await consumer.stop();
    }
  });

  it('on stop, finishes the transaction in flight and applies the batches queued behind it', async () => {
    await purge();
    const first = await start('dc-stop', 1);
    let stopped: Promise<void> | undefined;
    const locker = await holdBalance('dc4');
    try {
      const before = await balance('dc4');
      await publish(batch(0, ['dc4'], '1'));
      // The first batch's transaction waits for the lock; let it start before the others come.
      await someoneWaits();
      for (let i = 0; i < 3; i++) await publish(batch(0, ['dc4'], '1'));
      await until('the three queued', async () => {
        const info = await consumerInfo('dc-stop');
        return info.num_ack_pending === 4;
      });
      stopped = first.stop();
      await new Promise((r) => setTimeout(r, 100));
      expect(await balance('dc4')).toBe(before);
      await locker.query('COMMIT');
      await stopped;
      expect(await balance('dc4')).toBe(before - parseDecimal('4'));
      const info = await consumerInfo('dc-stop');
      expect(info.num_ack_pending).toBe(0);
      expect(info.num_pending).toBe(0);
    } finally {
      locker.release();
      await stopped;
    }
  });

  it('applies the good batches grouped with one that cannot be applied, and keeps that one for redelivery', async () => {
    await purge();
    const consumer = await start('dc-poison', 1);
    // Hold the first transaction so that the next three queue and go into one transaction.
    const locker = await holdBalance('dc5');
    try {
      const before5 = await balance('dc5');
      const before6 = await balance('dc6');
      await publish(batch(0, ['dc5'], '1'));
      await someoneWaits();
      const poison = batch(0, ['dc6'], '1');
      poison.lines[0]!.day = '2026-02-30'; // no such day: Postgres refuses the date
      await publish(batch(0, ['dc6'], '2'));
      await publish(poison);
      await publish(batch(0, ['dc5', 'dc6'], '4'));
      await until('the three queued', async () => {
        const info = await consumerInfo('dc-poison');
        return info.num_ack_pending === 4;
      });
      await locker.query('COMMIT');
      await until('the good batches applied', async () => (await balance('dc6')) === before6 - parseDecimal('6'));
      expect(await balance('dc5')).toBe(before5 - parseDecimal('5'));
      // The bad batch is not applied, not acked, and delivered again (after a pause).
      await until('the bad batch delivered again', async () => {
        const info = await consumerInfo('dc-poison');
        return info.num_redelivered >= 1 && info.num_ack_pending === 1;
      });
      const applied = await h.pool.query('SELECT 1 FROM applied_batches WHERE batch_id = $1', [poison.id]);
      expect(applied.rowCount).toBe(0);
      expect(await balance('dc6')).toBe(before6 - parseDecimal('6'));
    } finally {
      locker.release();
      await consumer.stop();
    }
  });

  it('leaves a backlog in JetStream while a lane is held up, not in memory', async () => {
    await purge();
    // batchMax 4: a lane queues at most 8; consume() buffers at most 128 more.
    const consumer = await start('dc-backlog', 1, 4);
    const locker = await holdBalance('dc3');
    try {
      const before = await balance('dc3');
      const js = jetstream(h.nc);
      const acks = [];
      for (let i = 0; i < 400; i++) acks.push(js.publish(subject(0), encodeDebitBatch(batch(0, ['dc3'], '0.01'))));
      await Promise.all(acks);
      await new Promise((r) => setTimeout(r, 500));
      const held = await consumerInfo('dc-backlog');
      expect(held.num_ack_pending).toBeLessThanOrEqual(4 + 8 + 128);
      expect(held.num_pending).toBeGreaterThanOrEqual(400 - (4 + 8 + 128));
      await locker.query('COMMIT');
      await until('the backlog applied', async () => (await balance('dc3')) === before - parseDecimal('4'), 20_000);
    } finally {
      locker.release();
      await consumer.stop();
    }
  });

  it('refuses a lane count that is not a positive integer', async () => {
    await expect(start('dc-bad', 0)).rejects.toThrow(/lanes must be a positive integer, got 0/);
  });
});

describe('applyDebitBatchesInLanes', () => {
  it('applies each lane in its own transaction and counts applied and replayed batches', async () => {
    const before7 = await balance('dc7');
    const before1 = await balance('dc1');
    const group = [batch(0, ['dc7'], '1'), batch(1, ['dc1'], '2'), batch(2, ['dc7'], '4')];
    expect(await applyDebitBatchesInLanes(h.pool, group, 2)).toEqual({ applied: 3, skipped: 0 });
    expect(await applyDebitBatchesInLanes(h.pool, group, 2)).toEqual({ applied: 0, skipped: 3 });
    expect(await balance('dc7')).toBe(before7 - parseDecimal('5'));
    expect(await balance('dc1')).toBe(before1 - parseDecimal('2'));
  });
});
