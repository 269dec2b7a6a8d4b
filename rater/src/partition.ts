// One partition of the EVENTS stream, processed in order by its single owner. A batch is a
// contiguous run of the partition's messages [firstSeq, lastSeq]; its id is derived from that
// range, so a replay after a crash produces the same ClickHouse dedup token and the same
// debit batch id. The position checkpoint in KV records the batch in progress before any
// write ("pending"), so a restart replays exactly that range first.
import { Piscina } from 'piscina';
import { decodeBatch, type AcceptedEvent } from '@drawdown/events';
import { batchId as makeBatchId, encodeDebitBatch, type DebitBatch } from '@drawdown/debits';
import type { CatalogSnapshot } from '@drawdown/catalog';
import { insertRows, queryRows, type Ch } from '@drawdown/clickhouse';
import type { Logger } from '@drawdown/log';
import { counter, gauge, histogram } from '@drawdown/metrics';
import { DeliverPolicy, type JetStreamClient, type KV } from '@drawdown/nats';
import { DedupMemory, dedupKey } from './dedup';
import type { PricingEvent, PricingResult } from './pricing/price';
import type { PricingTask } from './pricing/worker';

const eventsIn = counter('drawdown_rater_events_total', 'Events seen by the rater by outcome', ['outcome']);
const batchSeconds = histogram('drawdown_rater_batch_seconds', 'Time to process one batch end to end');
const positionGauge = gauge('drawdown_rater_position', 'Last committed stream sequence per partition', ['partition']);

export interface Checkpoint {
  /** Last stream sequence whose effects are committed. */
  seq: number;
  /** Batch being written when the checkpoint was taken, replayed first on restart. */
  pending: { first: number; last: number } | null;
}

export interface PartitionDeps {
  partition: number;
  js: JetStreamClient;
  kv: KV;
  ch: Ch;
  pool: Piscina;
  eventsStream: string;
  subject: string;
  debitsSubject: string;
  batchMaxEvents: number;
  batchMaxWaitMs: number;
  dedup: DedupMemory;
  graceMs: number;
  catalog: () => Promise<CatalogSnapshot>;
  log: Logger;
}

export async function readCheckpoint(kv: KV, partition: number): Promise<Checkpoint> {
  const e = await kv.get(`p${partition}`);
  if (!e || e.length === 0) return { seq: 0, pending: null };
  return e.json<Checkpoint>();
}

interface Msg {
  seq: number;
  events: AcceptedEvent[];
}

export class PartitionRunner {
  private stopped = false;
  private done: Promise<void> | undefined;
  private checkpoint: Checkpoint = { seq: 0, pending: null };
  private abort: (() => void) | undefined;

  constructor(private readonly d: PartitionDeps) {}

  get partition(): number {
    return this.d.partition;
  }

  get position(): number {
    return this.checkpoint.seq;
  }

  start(): void {
    this.done = this.run().catch((err) => {
      this.d.log.error('partition runner failed', { partition: this.d.partition, err });
      throw err;
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.();
    await this.done?.catch(() => {});
  }

  private async run(): Promise<void> {
    const d = this.d;
    this.checkpoint = await readCheckpoint(d.kv, d.partition);
    await this.warmDedup();
    const startSeq = (this.checkpoint.pending?.first ?? this.checkpoint.seq + 1);
    const consumer = await d.js.consumers.get(d.eventsStream, {
      filter_subjects: d.subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, startSeq),
    });
    const messages = await consumer.consume({ max_messages: 2000 });
    this.abort = () => void messages.close();
    const iter = messages[Symbol.asyncIterator]();
    let next: Promise<IteratorResult<{ seq: number; data: Uint8Array }>> | undefined;
    const buf: Msg[] = [];
    let bufEvents = 0;
    let firstAt = 0;
    d.log.info('partition started', { partition: d.partition, from: startSeq, replaying: this.checkpoint.pending });

    while (!this.stopped) {
      next ??= iter.next();
      const waitMs = buf.length === 0 ? 1000 : Math.max(0, d.batchMaxWaitMs - (Date.now() - firstAt));
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([next, new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), waitMs)))]);
      clearTimeout(timer);
      if (r !== 'timeout') {
        next = undefined;
        if (r.done) break;
        const m = r.value;
        if (m.seq <= this.checkpoint.seq) continue; // already committed (ordered consumer restart)
        if (buf.length === 0) firstAt = Date.now();
        let events: AcceptedEvent[] = [];
        try {
          events = decodeBatch(m.data);
        } catch (err) {
          eventsIn.inc({ outcome: 'undecodable_message' });
          d.log.error('undecodable message in events stream skipped', { partition: d.partition, seq: m.seq, err });
        }
        buf.push({ seq: m.seq, events });
        bufEvents += events.length;
        const pending = this.checkpoint.pending;
        // Replaying a recorded batch: cut exactly at its recorded end.
        if (pending) {
          if (m.seq < pending.last) continue;
          await this.processWithRetry(buf.splice(0));
          bufEvents = 0;
          continue;
        }
        if (bufEvents < d.batchMaxEvents) continue;
      }
      if (buf.length > 0 && !this.checkpoint.pending) {
        await this.processWithRetry(buf.splice(0));
        bufEvents = 0;
      }
    }
    // Drain: what is buffered and not processed is simply re-read after restart.
    await messages.close().catch(() => {});
  }

  /** Rebuilds the in-memory fingerprints of this partition from ClickHouse after a restart. */
  private async warmDedup(): Promise<void> {
    const d = this.d;
    if (this.checkpoint.seq === 0) return;
    const since = Date.now() - d.graceMs;
    const rows = await queryRows<{ k: string; c: string; t: string }>(
      d.ch,
      `SELECT DISTINCT idempotency_key AS k, if(customer_id = '', concat('x:', external_customer_id), customer_id) AS c, toUnixTimestamp64Milli(timestamp) AS t
         FROM rated_events WHERE partition = {p:UInt16} AND seq <= {s:UInt64} AND timestamp >= fromUnixTimestamp64Milli({since:Int64})
        ORDER BY t LIMIT {lim:UInt64}`,
      { p: d.partition, s: this.checkpoint.seq, since, lim: d.dedup.capacity },
    );
    for (const r of rows) d.dedup.add(dedupKey(r.c, r.k), Number(r.t));
    d.log.info('dedup memory warmed', { partition: d.partition, keys: rows.length });
  }

  /**
   * A failed batch (ClickHouse, NATS or a worker down) is retried as the same range until it
   * commits: the pending checkpoint already names it, so no other cut is possible.
   */
  private async processWithRetry(msgs: Msg[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.process(msgs);
        return;
      } catch (err) {
        if (this.stopped) throw err;
        const delay = Math.min(5000, 100 * 2 ** attempt);
        this.d.log.error('batch failed; retrying the same range', { partition: this.d.partition, attempt, delayMs: delay, err });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async process(msgs: Msg[]): Promise<void> {
    const d = this.d;
    const t0 = performance.now();
    const first = msgs[0]!.seq;
    const last = msgs[msgs.length - 1]!.seq;
    const id = makeBatchId(d.partition, first, last);
    const snapshot = await d.catalog();

    // Record the batch before writing anything, so a crash replays exactly this range.
    if (!this.checkpoint.pending) {
      this.checkpoint = { seq: this.checkpoint.seq, pending: { first, last } };
      await d.kv.put(`p${d.partition}`, JSON.stringify(this.checkpoint));
    }

    const fresh: PricingEvent[] = [];
    const toCheck: PricingEvent[] = [];
    let duplicates = 0;
    let receivedAtMax = 0;
    const local = new Set<string>();
    for (const m of msgs) {
      for (const e of m.events) {
        const customerRef = canonicalRef(snapshot, e.c);
        const key = dedupKey(customerRef, e.k);
        if (local.has(key) || d.dedup.has(key)) {
          duplicates++;
          continue;
        }
        local.add(key);
        const ev: PricingEvent = { seq: m.seq, k: e.k, c: e.c, n: e.n, t: e.t, r: e.r, p: e.p };
        if (e.r > receivedAtMax) receivedAtMax = e.r;
        if (d.dedup.needsStoreCheck(e.t)) toCheck.push(ev);
        else fresh.push(ev);
      }
    }
    if (toCheck.length > 0) {
      const known = await this.seenInStore(toCheck, snapshot, first);
      for (const ev of toCheck) {
        if (known.has(dedupKey(canonicalRef(snapshot, ev.c), ev.k))) duplicates++;
        else fresh.push(ev);
      }
    }

    const task: PricingTask = { snapshot, events: fresh, partition: d.partition, batchId: id };
    const result = (fresh.length > 0 ? await d.pool.run(task) : { rows: [], debits: [], unpriced: {} }) as PricingResult;

    await insertRows(d.ch, 'rated_events', result.rows as unknown as Record<string, unknown>[], `rated:${id}`);
    if (result.debits.length > 0) {
      const batch: DebitBatch = { id, partition: d.partition, firstSeq: first, lastSeq: last, receivedAtMax, lines: result.debits };
      await d.js.publish(d.debitsSubject, encodeDebitBatch(batch), { msgID: id, timeout: 10_000 });
    }
    this.checkpoint = { seq: last, pending: null };
    await d.kv.put(`p${d.partition}`, JSON.stringify(this.checkpoint));
    for (const ev of fresh) d.dedup.add(dedupKey(canonicalRef(snapshot, ev.c), ev.k), ev.t);

    positionGauge.set({ partition: String(d.partition) }, last);
    const priced = result.rows.filter((r) => r.status === 'rated').length;
    eventsIn.inc({ outcome: 'duplicate' }, duplicates);
    eventsIn.inc({ outcome: 'rated' }, fresh.length - Object.values(result.unpriced).reduce((a, b) => a + b, 0));
    for (const [reason, n] of Object.entries(result.unpriced)) eventsIn.inc({ outcome: `unpriced_${reason}` }, n);
    batchSeconds.observe((performance.now() - t0) / 1000);
    d.log.debug('batch committed', { partition: d.partition, batch: id, events: fresh.length, duplicates, rows: priced });
  }

  /** Which of these keys ClickHouse already holds from before this batch. */
  private async seenInStore(events: PricingEvent[], snapshot: CatalogSnapshot, firstSeq: number): Promise<Set<string>> {
    const keys = [...new Set(events.map((e) => e.k))];
    const rows = await queryRows<{ k: string; c: string }>(
      this.d.ch,
      `SELECT DISTINCT idempotency_key AS k, if(customer_id = '', concat('x:', external_customer_id), customer_id) AS c
         FROM rated_events WHERE idempotency_key IN {keys:Array(String)} AND seq < {s:UInt64}`,
      { keys, s: firstSeq },
    );
    return new Set(rows.map((r) => dedupKey(canonicalRef(snapshot, r.c), r.k)));
  }
}

/** The customer id when the snapshot knows the customer, so an event sent by id and by external id dedups alike. */
function canonicalRef(snapshot: CatalogSnapshot, ref: string): string {
  if (ref.startsWith('x:')) return snapshot.byExternalId[ref.slice(2)] ?? ref;
  return ref;
}
