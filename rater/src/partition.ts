// One partition of the EVENTS stream, processed in order by its single owner. A batch is a
// contiguous run of the partition's messages [firstSeq, lastSeq]; its id is derived from that
// range, so a replay after a crash produces the same ClickHouse dedup token and the same
// debit batch id. The position checkpoint in KV records the batch in progress before any
// write ("pending"), so a restart (or the next owner) replays exactly that range first.
//
// Fencing: the checkpoint key is only ever written with a revision check. A new owner bumps
// its revision when it starts, so an old owner that lost its lease fails its next checkpoint
// write and stops; whatever it wrote after recording the batch carries the same dedup token
// and batch id as the new owner's replay, so it lands once.
import { batchLength, decodeBatch } from '@drawdown/events';
import { batchId as makeBatchId, decodeDebitBatch, encodeDebitBatch, type DebitBatch } from '@drawdown/debits';
import type { CatalogSnapshot } from '@drawdown/catalog';
import { insertRowBinary, insertRows, insertSelect, queryRows, type Ch } from '@drawdown/clickhouse';
import type { Logger } from '@drawdown/log';
import { counter, gauge, histogram } from '@drawdown/metrics';
import { parseDecimal } from '@drawdown/money';
import { DeliverPolicy, type JetStreamClient, type KV } from '@drawdown/nats';
import { DedupMemory, canonicalRef, dedupKey, hash64, hashHi, hashLo, type KeyPrints } from './dedup';
import { DebitAccumulator, RATED_COLUMNS, applyCumulative, cumulativeKey, isPricingUnit, joinRated, type CumulativeState, type DebitLineOut } from './pricing/price';
import type { BatchKeys, PricingOutput } from './pricing/worker';

const eventsIn = counter('drawdown_rater_events_total', 'Events seen by the rater by outcome', ['outcome']);
const batchSeconds = histogram('drawdown_rater_batch_seconds', 'Time to process one batch end to end');
const positionGauge = gauge('drawdown_rater_position', 'Last committed stream sequence per partition', ['partition']);
const dedupBytes = gauge('drawdown_rater_dedup_memory_bytes', 'Bytes held by the in-memory dedup fingerprints per partition', ['partition']);
const storeChecks = counter('drawdown_rater_dedup_store_checks_total', 'Keys checked against ClickHouse (fingerprint hits and events older than memory)');

/** Header on a re-rating message: the stream sequence of the unpriced original. */
export const RERATE_HEADER = 'Drawdown-Rerate-Of';

export interface Checkpoint {
  /** Last stream sequence whose effects are committed. */
  seq: number;
  /** Batch being written when the checkpoint was taken, replayed first on restart. */
  pending: { first: number; last: number } | null;
  /** Owner that wrote it (diagnostics). */
  owner?: string;
}

/** This process no longer owns the partition: it must stop without committing. */
export class FencedError extends Error {
  override readonly name = 'FencedError';
  readonly code = 'fenced';
  readonly isRetryable = false;
}

/** Prices one batch's messages in a worker thread, leaving out the copies inside the batch and the events at the `skip` positions (see index.ts, pricing/worker.ts). */
export type PriceFn = (snapshot: CatalogSnapshot, msgs: readonly Msg[], skip: number[], partition: number, batchId: string) => Promise<PricingOutput>;

/** An event of the batch, decoded in this thread for the rare checks (see screen): its position among the batch's decoded events and its canonical dedup key. */
interface Candidate {
  pos: number;
  k: string;
  key: string;
}

export interface PartitionDeps {
  partition: number;
  owner: string;
  js: JetStreamClient;
  kv: KV;
  ch: Ch;
  price: PriceFn;
  /** Takes back a payload buffer once ClickHouse has it, for later batches (see PricingOutput.spent). */
  recycle?: (buffer: ArrayBuffer) => void;
  eventsStream: string;
  subject: string;
  debitsSubject: string;
  batchMaxEvents: number;
  batchMaxWaitMs: number;
  dedupCapacity: number;
  graceMs: number;
  catalog: () => Promise<CatalogSnapshot>;
  log: Logger;
  /** Called when the runner found itself fenced or failed for good. */
  onExit?: (err: unknown) => void;
}

export const checkpointKey = (partition: number) => `p${partition}`;

export async function readCheckpoint(kv: KV, partition: number): Promise<Checkpoint> {
  const e = await kv.get(checkpointKey(partition));
  if (!e || e.length === 0) return { seq: 0, pending: null };
  return e.json<Checkpoint>();
}

/** What a batch commits: debits to publish, then the in-memory state and the counts. */
interface Outcome {
  /** The debit batch to publish: its lines, or the pricing worker's encoding of them; undefined: none. */
  debits: DebitLineOut[] | Uint8Array | undefined;
  cumulativeUpdates: Map<string, bigint>;
  unpriced: Record<string, number>;
  rated: number;
  /** Fingerprints of the events the batch takes in (added to the dedup memory on commit). */
  seen: KeyPrints & { n: number };
}

export interface Msg {
  seq: number;
  /** The message's payload (msgpack), handed to the pricing worker as is. */
  data: Uint8Array;
  /** Set on re-rating messages: sequence of the original unpriced events. */
  rerateOf?: number;
}

/** Test hook (not a setting): `after_clickhouse:N` kills the process (SIGKILL) right after the Nth batch's ClickHouse insert. */
/** A partition's open message stream (an ordered consumer's `consume()`). */
type ConsumerMessages = Awaited<ReturnType<Awaited<ReturnType<JetStreamClient['consumers']['get']>>['consume']>>;

const CRASH_AT = process.env.RATER_TEST_CRASH_AT ?? '';
let crashCountdown = CRASH_AT.startsWith('after_clickhouse:') ? Number(CRASH_AT.split(':')[1]) : 0;

export class PartitionRunner {
  private stopped = false;
  /** Resolves when stop() is called: start-up steps still in flight are given up then. */
  private readonly stopSignal: Promise<undefined>;
  private signalStop: () => void = () => {};
  private done: Promise<void> | undefined;
  private checkpoint: Checkpoint = { seq: 0, pending: null };
  private revision = 0;
  private abort: (() => void) | undefined;
  readonly dedup: DedupMemory;
  private readonly cumulative: CumulativeState = new Map();

  constructor(private readonly d: PartitionDeps) {
    this.dedup = new DedupMemory(d.dedupCapacity);
    this.stopSignal = new Promise((resolve) => (this.signalStop = () => resolve(undefined)));
  }

  get partition(): number {
    return this.d.partition;
  }

  get position(): number {
    return this.checkpoint.seq;
  }

  start(): void {
    this.done = this.run().then(
      () => this.d.onExit?.(undefined),
      (err) => {
        if (err instanceof FencedError) this.d.log.warn('partition fenced: another rater owns it now', { partition: this.d.partition });
        else if (!this.stopped) this.d.log.error('partition runner failed', { partition: this.d.partition, err });
        this.d.onExit?.(err);
      },
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.signalStop();
    this.abort?.();
    await this.done;
  }

  /** Revision-checked checkpoint write: fails with FencedError once another owner wrote it. */
  private async writeCheckpoint(cp: Checkpoint): Promise<void> {
    const value = JSON.stringify({ ...cp, owner: this.d.owner });
    try {
      this.revision = this.revision === 0 ? await this.d.kv.create(checkpointKey(this.d.partition), value) : await this.d.kv.update(checkpointKey(this.d.partition), value, this.revision);
    } catch (err) {
      const msg = (err as Error).message ?? '';
      if (/wrong last sequence|key exists/i.test(msg)) throw new FencedError(`partition ${this.d.partition}: checkpoint moved on (${msg})`, { cause: err });
      throw err;
    }
    this.checkpoint = cp;
  }

  private async takeOver(): Promise<void> {
    const e = await this.d.kv.get(checkpointKey(this.d.partition));
    if (this.stopped) return;
    this.revision = e ? e.revision : 0;
    if (e && e.operation === 'PUT' && e.length > 0) this.checkpoint = e.json<Checkpoint>();
    // Fence: bump the revision so a previous owner's next checkpoint write fails.
    await this.writeCheckpoint(this.checkpoint);
  }

  /**
   * A start-up step, given up on as soon as stop() is called: its result is then ignored
   * (undefined) and a later failure of it not reported. A step can wait long (a store under
   * load), and a stop must not wait for it; each step checks `stopped` before it changes any
   * state after its own waits, so one given up on changes nothing.
   */
  private startStep<T>(name: string, step: Promise<T>): Promise<T | undefined> {
    const t0 = Date.now();
    let done = false;
    // Also what keeps a failure of a step given up on from going unhandled.
    void step.then(() => (done = true), () => (done = true));
    return Promise.race([
      step,
      this.stopSignal.then(() => {
        // A step that had already waited long when the stop came is worth knowing about: a
        // start-up that never ends would leave the partition unrated.
        if (!done && Date.now() - t0 > 5000) this.d.log.warn('partition start-up step still waiting at stop', { partition: this.d.partition, step: name, waitedMs: Date.now() - t0 });
        return undefined;
      }),
    ]);
  }

  private async run(): Promise<void> {
    const d = this.d;
    // A stop may come while the runner is still starting: each step checks it, so a stopped
    // runner opens no consumer and never reports itself started.
    await this.startStep('checkpoint take-over', this.takeOver());
    if (this.stopped) return;
    await this.startStep('dedup warm-up', this.warmDedup());
    if (this.stopped) return;
    await this.startStep('cumulative rebuild', this.rebuildCumulative());
    if (this.stopped) return;
    const startSeq = this.checkpoint.pending?.first ?? this.checkpoint.seq + 1;
    const consumer = await this.startStep('consumer', d.js.consumers.get(d.eventsStream, {
      filter_subjects: d.subject,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, startSeq),
    }));
    if (this.stopped || !consumer) return;
    const consuming = consumer.consume({ max_messages: 2000 });
    const messages = await this.startStep('consume', consuming);
    if (this.stopped || !messages) {
      // Given up on while opening: close it whenever it opens.
      void consuming.then((m) => m.close()).catch(() => {});
      return;
    }
    this.abort = () => void messages.close().catch(() => {});
    try {
      if (!this.stopped) await this.loop(messages, startSeq);
    } finally {
      // What is buffered and not processed is simply re-read by the next owner. close() may
      // have been called by stop() already, and a close of a consumer holding unread messages
      // can wait for ever (it did when stop() came while the runner was starting), so the wait
      // is bounded.
      await Promise.race([messages.close().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
    }
  }

  private async loop(messages: ConsumerMessages, startSeq: number): Promise<void> {
    const d = this.d;
    const iter = messages[Symbol.asyncIterator]();
    let next: Promise<IteratorResult<{ seq: number; data: Uint8Array; headers?: { get(k: string): string } }>> | undefined;
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
        const rerate = m.headers?.get(RERATE_HEADER);
        buf.push({ seq: m.seq, data: m.data, ...(rerate ? { rerateOf: Number(rerate) } : {}) });
        // The pricing worker decodes the batch: the header's count is enough to cut it.
        bufEvents += batchLength(m.data);
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
  }

  /**
   * Rebuilds the in-memory fingerprints from ClickHouse after a (re)start: the newest rows this
   * partition committed (seq <= checkpoint) inside the accept window, up to capacity. Anything
   * older than what was loaded is checked against ClickHouse when it shows up.
   */
  private async warmDedup(): Promise<void> {
    const d = this.d;
    const since = Date.now() - d.graceMs;
    this.dedup.evictedUpToMs = since;
    if (this.checkpoint.seq === 0) return;
    const rows = await queryRows<{ k: string; c: string; t: string }>(
      d.ch,
      `SELECT idempotency_key AS k, if(customer_id = '', concat('x:', external_customer_id), customer_id) AS c, max(toUnixTimestamp64Milli(timestamp)) AS t
         FROM rated_events WHERE partition = {p:UInt16} AND seq <= {s:UInt64} AND timestamp >= fromUnixTimestamp64Milli({since:Int64})
        GROUP BY k, c ORDER BY t DESC LIMIT {lim:UInt64}`,
      { p: d.partition, s: this.checkpoint.seq, since, lim: this.dedup.capacity },
    );
    if (this.stopped) return; // given up on by stop(): change nothing
    // Oldest first, so eviction order matches arrival order.
    for (let i = rows.length - 1; i >= 0; i--) this.dedup.add(dedupKey(rows[i]!.c, rows[i]!.k), Number(rows[i]!.t));
    if (rows.length === this.dedup.capacity && rows.length > 0) this.dedup.evictedUpToMs = Number(rows[rows.length - 1]!.t);
    dedupBytes.set({ partition: String(d.partition) }, this.dedup.bytes);
    d.log.info('dedup memory warmed', { partition: d.partition, keys: rows.length });
  }

  /** Cumulative quantities per (subscription, price, period) for tiered and package prices, from committed rows. */
  private async rebuildCumulative(): Promise<void> {
    const d = this.d;
    this.cumulative.clear();
    if (this.checkpoint.seq === 0) return;
    // Periods are at most a year long: older periods cannot receive events any more.
    const rows = await queryRows<{ s: string; p: string; ps: string; q: string }>(
      d.ch,
      `SELECT subscription_id AS s, price_id AS p, toUnixTimestamp64Milli(period_start) AS ps, sum(quantity) AS q
         FROM rated_events WHERE partition = {p:UInt16} AND seq <= {s:UInt64} AND status = 'rated'
          AND period_start >= fromUnixTimestamp64Milli({since:Int64})
        GROUP BY s, p, ps`,
      { p: d.partition, s: this.checkpoint.seq, since: Date.now() - 367 * 86_400_000 },
    );
    if (this.stopped) return; // given up on by stop(): change nothing
    for (const r of rows) this.cumulative.set(cumulativeKey(r.s, r.p, Number(r.ps)), parseDecimal(r.q));
  }

  /**
   * A failed batch (ClickHouse, NATS or a worker down) is retried as the same range until it
   * commits: the pending checkpoint already names it, so no other cut is possible. A fenced
   * runner stops at once.
   */
  private async processWithRetry(msgs: Msg[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.process(msgs);
        return;
      } catch (err) {
        if (this.stopped || err instanceof FencedError) throw err;
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
    // Record the batch before writing anything, so a crash replays exactly this range. The
    // catalog's version is read meanwhile: two round trips in the time of one (each waits for
    // this thread's event loop). Should the read fail after the checkpoint took, the retry is a
    // replay of a range nothing was written for, which storedBatch finds empty.
    const replay = this.checkpoint.pending !== null;
    const [snapshot] = await Promise.all([d.catalog(), replay ? undefined : this.writeCheckpoint({ seq: this.checkpoint.seq, pending: { first, last } })]);

    // The worker decodes the batch, leaves out the copies inside it, prices the rest and returns
    // every event's key fingerprint. Copies of earlier batches are screened here; should any be
    // confirmed (rare: JetStream's message-id dedup catches whole-request retries first), the
    // batch is priced again without them, so the output never depends on what memory held.
    let result = await d.price(snapshot, msgs, [], d.partition, id);
    const { dropped, resolved } = await this.screen(msgs, result, snapshot, first);
    if (dropped.length > 0) result = await d.price(snapshot, msgs, dropped, d.partition, id);
    const { hi, lo, t, copies, receivedAtMax } = result;
    // The events the batch takes in: neither copies inside it nor dropped.
    const fresh = { hi: new Uint32Array(hi.length), lo: new Uint32Array(hi.length), t: new Float64Array(hi.length), n: 0 };
    for (let pos = 0, c = 0, x = 0; pos < hi.length; pos++) {
      if (copies[c] === pos) c++;
      else if (dropped[x] === pos) x++;
      else {
        fresh.hi[fresh.n] = hi[pos]!;
        fresh.lo[fresh.n] = lo[pos]!;
        fresh.t[fresh.n++] = t[pos]!;
      }
    }
    const duplicates = copies.length + dropped.length;
    // The worker's debit batch is published as it is, unless cumulative rows add their lines.
    let debits: Outcome['debits'] = result.debitBatch;
    let cumulativeUpdates = new Map<string, bigint>();
    if (result.cumulative.length > 0) {
      const lines = result.debitBatch ? decodeDebitBatch(result.debitBatch).lines : [];
      cumulativeUpdates = applyCumulative(snapshot, { rows: result.cumulative, cumulative: result.cumulative.map((_, i) => i), debits: lines }, this.cumulative);
      debits = lines;
    }
    const unpricedTotal = Object.values(result.unpriced).reduce((a, b) => a + b, 0);
    let outcome: Outcome = { debits, cumulativeUpdates, unpriced: result.unpriced, rated: fresh.n - unpricedTotal, seen: fresh };
    // A replayed range an earlier attempt already stored, maybe priced with another catalog
    // version: the debits are derived from the rows ClickHouse holds, so the ledger always
    // matches them, and those rows (not this attempt's) are inserted again under the batch's
    // token. That attempt may have been killed after rated_events took the batch but before the
    // hourly rollup (a materialized view) did: the table drops the repeat, the rollup gets the
    // stored rows if it lacks them (insertSelect). Inserting this attempt's rows instead would
    // give the rollup other amounts than the table's.
    const stored = replay ? await this.storedBatch(id, snapshot) : undefined;
    if (stored) {
      outcome = stored;
      await insertSelect(d.ch, 'rated_events', 'SELECT * FROM rated_events WHERE partition = {p:UInt16} AND batch_id = {id:String} ORDER BY seq', { p: d.partition, id }, `rated:${id}`);
    } else {
      const body = joinRated(result.payload, result.cumulative.map((r) => r.amount));
      await insertRowBinary(d.ch, 'rated_events', { columns: RATED_COLUMNS, body, rows: result.rows }, `rated:${id}`);
    }
    await insertRows(d.ch, 'unpriced_resolved', resolved, `resolved:${id}`);
    if (crashCountdown > 0 && --crashCountdown === 0) {
      process.stdout.write(JSON.stringify({ crashing: id }) + '\n');
      process.kill(process.pid, 'SIGKILL');
      await new Promise(() => {}); // never continues
    }
    const lines = outcome.debits;
    if (lines instanceof Uint8Array) await d.js.publish(d.debitsSubject, lines, { msgID: id, timeout: 10_000 });
    else if (lines && lines.length > 0) {
      const batch: DebitBatch = { id, partition: d.partition, firstSeq: first, lastSeq: last, receivedAtMax, lines };
      await d.js.publish(d.debitsSubject, encodeDebitBatch(batch), { msgID: id, timeout: 10_000 });
    }
    await this.writeCheckpoint({ seq: last, pending: null });
    // The payload's bytes are in ClickHouse: its buffer can carry a later batch.
    const payloadBuffer = result.payload.body.buffer;
    if (payloadBuffer instanceof ArrayBuffer) d.recycle?.(payloadBuffer);
    for (let i = 0; i < outcome.seen.n; i++) this.dedup.addPrint(outcome.seen.hi[i]!, outcome.seen.lo[i]!, outcome.seen.t[i]!);
    for (const [k, v] of outcome.cumulativeUpdates) this.cumulative.set(k, v);

    positionGauge.set({ partition: String(d.partition) }, last);
    dedupBytes.set({ partition: String(d.partition) }, this.dedup.bytes);
    eventsIn.inc({ outcome: 'duplicate' }, duplicates);
    for (const i of result.undecodable) {
      eventsIn.inc({ outcome: 'undecodable_message' });
      d.log.error('undecodable message in events stream skipped', { partition: d.partition, seq: msgs[i]!.seq });
    }
    eventsIn.inc({ outcome: 'rated' }, outcome.rated);
    for (const [reason, n] of Object.entries(outcome.unpriced)) eventsIn.inc({ outcome: `unpriced_${reason}` }, n);
    batchSeconds.observe((performance.now() - t0) / 1000);
    d.log.debug('batch committed', { partition: d.partition, batch: id, events: fresh.n, duplicates });
  }

  /**
   * Copies of earlier batches among the events the worker priced, and what re-rating copies
   * resolve. A fingerprint hit in memory (maybe a copy) and an event older than memory's reach
   * are checked exactly against ClickHouse; a re-rating copy is left out when a priced row of
   * its event exists or the event is already in this batch. Only then is the batch decoded in
   * this thread (rare), for the keys.
   */
  private async screen(msgs: readonly Msg[], keys: BatchKeys, snapshot: CatalogSnapshot, first: number): Promise<{ dropped: number[]; resolved: Record<string, unknown>[] }> {
    const maybe: number[] = [];
    let rerates = false;
    for (let i = 0, pos = 0, c = 0; i < msgs.length; i++) {
      const n = keys.perMessage[i]!;
      if (msgs[i]!.rerateOf !== undefined) {
        rerates ||= n > 0;
        pos += n;
        continue;
      }
      for (const end = pos + n; pos < end; pos++) {
        if (keys.copies[c] === pos) c++;
        else if (this.dedup.hasPrint(keys.hi[pos]!, keys.lo[pos]!) || this.dedup.needsStoreCheck(keys.t[pos]!)) maybe.push(pos);
      }
    }
    const resolved: Record<string, unknown>[] = [];
    if (maybe.length === 0 && !rerates) return { dropped: [], resolved };

    // Every event but the copies inside the batch, in stream order, with its key.
    const candidates: Candidate[] = [];
    const reratesOf: Candidate[] = [];
    for (let i = 0, pos = 0, c = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      const events = keys.perMessage[i] === 0 ? [] : decodeBatch(m.data);
      for (const e of events) {
        const ev: Candidate = { pos, k: e.k, key: dedupKey(canonicalRef(snapshot, e.c), e.k) };
        if (m.rerateOf !== undefined) {
          resolved.push({ partition: this.d.partition, seq: m.rerateOf, idempotency_key: e.k, resolved_by_seq: m.seq, resolved_at: Date.now() });
          reratesOf.push(ev);
        }
        if (keys.copies[c] === pos++) c++;
        else candidates.push(ev);
      }
    }
    const dropped = new Set<number>();
    if (maybe.length > 0) {
      storeChecks.inc({}, maybe.length);
      const maybeSeen = new Set(maybe);
      const check = candidates.filter((ev) => maybeSeen.has(ev.pos));
      const known = await this.seenInStore(check, snapshot, first, false);
      for (const ev of check) if (known.has(ev.key)) dropped.add(ev.pos);
    }
    // Re-rating copies: priced unless a priced row of the event exists, or the event is
    // already in this batch (as a new copy or an earlier re-rating copy).
    if (reratesOf.length > 0) {
      const rated = await this.seenInStore(reratesOf, snapshot, first, true);
      const inBatch = new Set<string>();
      const isRerate = new Set(reratesOf);
      for (const ev of candidates) {
        if (dropped.has(ev.pos)) continue;
        if (isRerate.has(ev) && (rated.has(ev.key) || inBatch.has(ev.key))) dropped.add(ev.pos);
        else inBatch.add(ev.key);
      }
    }
    return { dropped: [...dropped].sort((x, y) => x - y), resolved };
  }

  /** The rows an earlier attempt stored for this batch, turned into its debits and state updates; undefined when none. */
  private async storedBatch(id: string, snapshot: CatalogSnapshot): Promise<Outcome | undefined> {
    const rows = await queryRows<{ c: string; e: string; k: string; s: string; p: string; u: string; ps: string; t: string; q: string; a: string; st: string; r: string }>(
      this.d.ch,
      `SELECT customer_id AS c, external_customer_id AS e, idempotency_key AS k, subscription_id AS s, price_id AS p, pricing_unit AS u,
              toUnixTimestamp64Milli(period_start) AS ps, toUnixTimestamp64Milli(timestamp) AS t, quantity AS q, amount AS a, status AS st, reason AS r
         FROM rated_events WHERE partition = {p:UInt16} AND batch_id = {id:String} ORDER BY seq`,
      { p: this.d.partition, id },
    );
    if (rows.length === 0) return undefined;
    const debits = new DebitAccumulator();
    const cumulativeUpdates = new Map<string, bigint>();
    const unpriced: Record<string, number> = {};
    const seen = new Map<string, number>();
    const prints = (): Outcome['seen'] => {
      const out = { hi: [] as number[], lo: [] as number[], t: [] as number[], n: seen.size };
      for (const [key, t] of seen) {
        hash64(key);
        out.hi.push(hashHi);
        out.lo.push(hashLo);
        out.t.push(t);
      }
      return out;
    };
    const ratedKeys = new Set<string>();
    for (const r of rows) {
      const key = dedupKey(canonicalRef(snapshot, r.c || `x:${r.e}`), r.k);
      seen.set(key, Number(r.t));
      if (r.st !== 'rated') {
        const reason = r.r.split(':')[0]!;
        unpriced[reason] = (unpriced[reason] ?? 0) + 1;
        continue;
      }
      ratedKeys.add(key);
      const q = parseDecimal(r.q);
      const a = parseDecimal(r.a);
      const ck = cumulativeKey(r.s, r.p, Number(r.ps));
      cumulativeUpdates.set(ck, (cumulativeUpdates.get(ck) ?? this.cumulative.get(ck) ?? 0n) + q);
      if (isPricingUnit(snapshot, r.u) && a !== 0n) debits.add(r.c, r.u, r.p, Number(r.t), a, q);
    }
    return { debits: debits.lines(), cumulativeUpdates, unpriced, rated: ratedKeys.size, seen: prints() };
  }

  /** Which of these keys this partition already committed before this batch (rated only, for re-rating copies). */
  private async seenInStore(events: readonly Pick<Candidate, 'k'>[], snapshot: CatalogSnapshot, firstSeq: number, ratedOnly: boolean): Promise<Set<string>> {
    const keys = [...new Set(events.map((e) => e.k))];
    const rows = await queryRows<{ k: string; c: string; e: string }>(
      this.d.ch,
      `SELECT DISTINCT idempotency_key AS k, customer_id AS c, external_customer_id AS e
         FROM rated_events WHERE partition = {p:UInt16} AND idempotency_key IN {keys:Array(String)} AND seq < {s:UInt64}
         ${ratedOnly ? "AND status = 'rated'" : ''}`,
      { p: this.d.partition, keys, s: firstSeq },
    );
    // A row knows the customer by id, external id or both: match the event's canonical ref against each.
    const out = new Set<string>();
    for (const r of rows) {
      if (r.c) out.add(dedupKey(r.c, r.k));
      if (r.e) out.add(dedupKey(canonicalRef(snapshot, `x:${r.e}`), r.k));
    }
    return out;
  }
}
