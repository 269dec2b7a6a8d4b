// Reads debit batches from the DEBITS stream and applies them, many per transaction.
// Messages are acked only after the transaction committed; a crash before the ack replays
// them, and the batch ids make the replay a no-op.
//
// Lanes: a batch belongs to one event partition, and partitions split the customers (hash of
// the customer), so batches of different partitions touch different balances. The consumer
// applies them in `lanes` independent transaction streams (partition mod lanes), which then
// never wait for each other's row locks; one partition's batches stay in one lane, in order.
// What can still meet in two lanes (a shared pool's parent balance, API writes) is locked in
// the same sorted order by every writer, so it waits, never deadlocks.
import { decodeDebitBatch, type DebitBatch } from '@drawdown/debits';
import type { Logger } from '@drawdown/log';
import { counter, gauge, histogram } from '@drawdown/metrics';
import { AckPolicy, jetstream, jetstreamManager, type NatsConnection } from '@drawdown/nats';
import type { Pool } from '@drawdown/pg';
import { applyDebitBatches } from './debits';

const batchesApplied = counter('drawdown_ledger_debit_batches_total', 'Debit batches by outcome', ['outcome']);
const applySeconds = histogram('drawdown_ledger_apply_seconds', 'Time to apply one transaction of debit batches');
const staleness = gauge('drawdown_ledger_staleness_seconds', 'Ingest receive time of the newest applied event, behind now, at each lane\'s last transaction: the most behind lane');
const laneQueued = gauge('drawdown_ledger_lane_queued_batches', 'Debit batches received and waiting for their lane', ['lane']);

export interface DebitConsumer {
  stop(): Promise<void>;
  /** Resolves once everything published to DEBITS so far is applied (tests, benchmarks). */
  idle(): Promise<void>;
}

/** The lane of a batch: its partition mod the number of lanes. */
export const laneOf = (partition: number, lanes: number): number => (Number.isInteger(partition) && partition >= 0 ? partition % lanes : 0);

/**
 * Applies `batches` as the consumer's lanes would, all at once: one transaction per lane
 * (partition mod `lanes`), run concurrently, each on its own connection. Resolves when every
 * lane committed; rejects with the first failure (lanes that committed stay committed, and a
 * retry of the same batches skips them by batch id). For the benchmark and tests.
 */
export async function applyDebitBatchesInLanes(pool: Pool, batches: DebitBatch[], lanes: number): Promise<{ applied: number; skipped: number }> {
  const byLane = new Map<number, DebitBatch[]>();
  for (const b of batches) {
    const l = laneOf(b.partition, lanes);
    let list = byLane.get(l);
    if (!list) byLane.set(l, (list = []));
    list.push(b);
  }
  const results = await Promise.all([...byLane.values()].map((list) => applyDebitBatches(pool, list)));
  return { applied: results.reduce((a, r) => a + r.applied.length, 0), skipped: results.reduce((a, r) => a + r.skipped.length, 0) };
}

export async function startDebitConsumer(opts: { nc: NatsConnection; pool: Pool; stream: string; durable: string; batchMax: number; lanes: number; log: Logger; /** How long stop() goes on applying queued batches (default 5,000 ms). */ drainMs?: number }): Promise<DebitConsumer> {
  if (!Number.isInteger(opts.lanes) || opts.lanes < 1) throw new RangeError(`lanes must be a positive integer, got ${opts.lanes}`);
  const drainMs = opts.drainMs ?? 5000;
  const jsm = await jetstreamManager(opts.nc);
  await jsm.consumers.add(opts.stream, {
    durable_name: opts.durable,
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 100_000,
    ack_wait: 60_000_000_000,
  });
  const js = jetstream(opts.nc);
  const consumer = await js.consumers.get(opts.stream, opts.durable);
  let stopped = false;

  // consume() keeps a pull open, so a transaction starts as soon as a batch arrives (a fetch()
  // waits until it has batchMax messages or its expiry, at least a second, has passed). The
  // reader hands each message to its lane's queue; while a lane's transaction runs, its next
  // batches queue there and are applied together.
  const messages = await consumer.consume({ max_messages: Math.max(2 * opts.batchMax * opts.lanes, 128) });
  interface Queued {
    msg: { seq: number; ack(): void; nak(millis?: number): void; info: { deliveryCount: number } };
    batch: DebitBatch;
  }
  interface Lane {
    index: number;
    queue: Queued[];
    wake: (() => void) | undefined;
    /** The reader, waiting for room in this lane's queue. */
    room: (() => void) | undefined;
    stalenessS: number;
  }
  const lanes: Lane[] = Array.from({ length: opts.lanes }, (_, index) => ({ index, queue: [], wake: undefined, room: undefined, stalenessS: 0 }));
  const wakeAll = () => {
    for (const l of lanes) {
      l.wake?.();
      l.room?.();
    }
  };
  // A lane's queue holds at most two transactions' worth; the reader waits for room before it
  // takes the next message, so that a backlog stays in JetStream, not in this process's memory
  // (consume() only pulls more as its buffer is read).
  const laneMax = 2 * opts.batchMax;

  const reader = (async () => {
    try {
      for await (const m of messages) {
        let batch: DebitBatch;
        try {
          batch = decodeDebitBatch(m.data);
        } catch (err) {
          // Not ours to fix: log it, keep it out of the way (term), count it.
          opts.log.error('undecodable debit batch dropped', { seq: m.seq, err });
          batchesApplied.inc({ outcome: 'undecodable' });
          m.term();
          continue;
        }
        const lane = lanes[laneOf(batch.partition, opts.lanes)]!;
        while (lane.queue.length >= laneMax && !stopped) {
          await new Promise<void>((res) => (lane.room = res));
          lane.room = undefined;
        }
        lane.queue.push({ msg: m, batch });
        laneQueued.set({ lane: String(lane.index) }, lane.queue.length);
        lane.wake?.();
      }
    } catch (err) {
      if (!stopped) opts.log.error('reading debit batches failed', { err });
    } finally {
      stopped = true;
      wakeAll();
    }
  })();

  const applyAndAck = async (lane: Lane, got: Queued[]) => {
    const batches = got.map((q) => q.batch);
    const t0 = performance.now();
    const result = await applyDebitBatches(opts.pool, batches);
    applySeconds.observe((performance.now() - t0) / 1000);
    batchesApplied.inc({ outcome: 'applied' }, result.applied.length);
    batchesApplied.inc({ outcome: 'replayed' }, result.skipped.length);
    const newest = Math.max(...batches.map((b) => b.receivedAtMax));
    if (Number.isFinite(newest)) {
      // Each lane's staleness at its last transaction; the gauge shows the most behind.
      lane.stalenessS = Math.max(0, (Date.now() - newest) / 1000);
      staleness.set(Math.max(...lanes.map((l) => l.stalenessS)));
    }
    for (const q of got) q.msg.ack();
    opts.log.debug('debits applied', { lane: lane.index, batches: batches.length, customers: result.customers, depleted: result.depleted });
  };
  const handBack = (lane: Lane, q: Queued, err: unknown) => {
    const deliveries = q.msg.info.deliveryCount;
    const delayMs = Math.min(60_000, 500 * 2 ** Math.min(7, Math.max(0, deliveries - 1)));
    batchesApplied.inc({ outcome: 'failed' });
    opts.log.error('debit batch failed; JetStream delivers it again', { lane: lane.index, batch: q.batch.id, deliveries, retryInMs: delayMs, err });
    q.msg.nak(delayMs);
  };

  // When stopped, a lane finishes the transaction it is in and applies what is queued for it
  // (batchMax per transaction) until the drain deadline. Whatever is left is not acked: JetStream
  // delivers it again after the ack wait. (Not handed back with a nak: the server would deliver
  // it at once to this consumer's pull, which is closing.)
  let drainUntil = Infinity;
  const runLane = async (lane: Lane) => {
    while (!stopped || (lane.queue.length > 0 && performance.now() < drainUntil)) {
      if (lane.queue.length === 0) {
        await new Promise<void>((res) => (lane.wake = res));
        lane.wake = undefined;
        continue;
      }
      const got = lane.queue.splice(0, opts.batchMax);
      laneQueued.set({ lane: String(lane.index) }, lane.queue.length);
      lane.room?.();
      try {
        await applyAndAck(lane, got);
      } catch (err) {
        // Nothing of a failed transaction is kept. One batch that cannot be applied (a bad
        // line, say) must not hold up those it was grouped with: each is tried alone, and only
        // those failing alone go back to JetStream (nak), which delivers them again after a
        // pause that doubles with each delivery, up to a minute. A debit batch is never
        // dropped: it stays in the stream, counted (outcome "failed") and logged, until it
        // applies. Their order within the lane then changes, which the ledger allows: each
        // batch is applied once, whenever it comes.
        if (got.length === 1) handBack(lane, got[0]!, err);
        else {
          opts.log.error('applying debit batches failed; trying each alone', { lane: lane.index, batches: got.length, err });
          for (const q of got) {
            try {
              await applyAndAck(lane, [q]);
            } catch (one) {
              handBack(lane, q, one);
            }
          }
        }
        if (stopped) break;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    if (lane.queue.length > 0) opts.log.warn('debit batches left unapplied at stop; JetStream delivers them again after the ack wait', { lane: lane.index, batches: lane.queue.length });
  };
  const laneLoops = lanes.map(runLane);

  return {
    async stop() {
      stopped = true;
      drainUntil = performance.now() + drainMs;
      wakeAll();
      // Bounded: closing a consumer that still holds unread messages can wait a long time.
      await Promise.race([messages.close().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
      await Promise.all(laneLoops);
      await Promise.race([reader, new Promise((r) => setTimeout(r, 1000).unref())]);
    },
    async idle() {
      for (;;) {
        const info = await jsm.consumers.info(opts.stream, opts.durable);
        if (info.num_pending === 0 && info.num_ack_pending === 0) return;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}
