// Reads debit batches from the DEBITS stream and applies them, many per transaction.
// Messages are acked only after the transaction committed; a crash before the ack replays
// them, and the batch ids make the replay a no-op.
import { decodeDebitBatch, type DebitBatch } from '@drawdown/debits';
import type { Logger } from '@drawdown/log';
import { counter, gauge, histogram } from '@drawdown/metrics';
import { AckPolicy, jetstream, jetstreamManager, type NatsConnection } from '@drawdown/nats';
import type { Pool } from '@drawdown/pg';
import { applyDebitBatches } from './debits';

const batchesApplied = counter('drawdown_ledger_debit_batches_total', 'Debit batches by outcome', ['outcome']);
const applySeconds = histogram('drawdown_ledger_apply_seconds', 'Time to apply one transaction of debit batches');
const staleness = gauge('drawdown_ledger_staleness_seconds', 'Ingest receive time of the newest applied event, behind now');

export interface DebitConsumer {
  stop(): Promise<void>;
  /** Resolves once everything published to DEBITS so far is applied (tests, benchmarks). */
  idle(): Promise<void>;
}

export async function startDebitConsumer(opts: { nc: NatsConnection; pool: Pool; stream: string; durable: string; batchMax: number; log: Logger }): Promise<DebitConsumer> {
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
  // waits until it has batchMax messages or its expiry, at least a second, has passed). While
  // a transaction runs, the next batches queue in the iterator and are applied together.
  const messages = await consumer.consume({ max_messages: Math.max(2 * opts.batchMax, 128) });
  const iter = messages[Symbol.asyncIterator]();
  type Msg = Awaited<ReturnType<typeof iter.next>>['value'];
  let next: ReturnType<typeof iter.next> | undefined;
  /** The next message, or undefined when none arrives within `waitMs` (null: the stream of messages ended). */
  const take = async (waitMs: number): Promise<Msg | null | undefined> => {
    next ??= iter.next();
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([next, new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), waitMs)))]);
    clearTimeout(timer);
    if (r === 'timeout') return undefined;
    next = undefined;
    return r.done ? null : r.value;
  };

  const loop = (async () => {
    while (!stopped) {
      try {
        const first = await take(1000);
        if (first === null) break;
        if (first === undefined) continue;
        const got = [first];
        // What is already queued joins this transaction (a zero wait still lets buffered messages through).
        while (got.length < opts.batchMax) {
          const m = await take(0);
          if (!m) break;
          got.push(m);
        }
        const batches: DebitBatch[] = [];
        for (const m of got) {
          try {
            batches.push(decodeDebitBatch(m.data));
          } catch (err) {
            // Not ours to fix: log it, keep it out of the way (term), count it.
            opts.log.error('undecodable debit batch dropped', { seq: m.seq, err });
            batchesApplied.inc({ outcome: 'undecodable' });
            m.term();
          }
        }
        const t0 = performance.now();
        const result = await applyDebitBatches(opts.pool, batches);
        applySeconds.observe((performance.now() - t0) / 1000);
        batchesApplied.inc({ outcome: 'applied' }, result.applied.length);
        batchesApplied.inc({ outcome: 'replayed' }, result.skipped.length);
        const newest = Math.max(...batches.map((b) => b.receivedAtMax));
        if (Number.isFinite(newest)) staleness.set(Math.max(0, (Date.now() - newest) / 1000));
        for (const m of got) m.ack();
        opts.log.debug('debits applied', { batches: batches.length, customers: result.customers, depleted: result.depleted });
      } catch (err) {
        if (stopped) break;
        opts.log.error('applying debit batches failed; retrying', { err });
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  })();

  return {
    async stop() {
      stopped = true;
      // Bounded: closing a consumer that still holds unread messages can wait a long time.
      await Promise.race([messages.close().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
      await loop;
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
