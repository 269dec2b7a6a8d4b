// The ledger alone: debit batches shaped like a rater's (2,500 events of one partition, only
// that partition's customers, summed per customer), applied as the ledger's consumer applies
// them: DRAWDOWN_LEDGER_LANES concurrent transactions (partition mod lanes), 8 batches per
// round (with 2 lanes, 4 per transaction), with 10,000 and 100,000 customers. Side by side in
// the same loop (rounds alternate), the same rounds in one transaction (one lane), as before
// lanes. Then as many per transaction as the consumer takes when it has a backlog
// (DRAWDOWN_LEDGER_BATCH_MAX per lane). Where one round cannot reach every customer (100,000),
// most of its debits start the customer's grouped usage entry of the day, as on a fresh day; a
// separate figure (steadyCustomerDebitsPerS) measures the same loop after every customer's
// entry of the day exists (the debits grow them), as later in a ledger's day.
import { encodeDebitBatch, type DebitBatch } from '@drawdown/debits';
import { applyDebitBatches, applyDebitBatchesInLanes, startDebitConsumer } from '@drawdown/ledger';
import { jetstream, jetstreamManager, names } from '@drawdown/nats';
import type { Pool } from '@drawdown/pg';
import { benchEnv, createCatalog, createCustomers, log, openStores } from '../setup';
import { debitBatches, EVENT_PICOS, judgeLag, type ScenarioResult } from './common';
import { customerId } from '../workload';
import { round } from '../util';

export interface LedgerOpts {
  seconds: number;
  customerCounts: number[];
  batchesPerTx: number;
  /** Backlog-sized transactions are measured up to this many customers (quick mode: the smaller count only). */
  backlogMaxCustomers: number;
  /** The consumer fed at this many customer debits/s for `sustainSeconds` (0: not run). */
  sustainRate: number;
  sustainSeconds: number;
}

/**
 * The ledger's own consumer (JetStream, lanes, transactions that grow with what has queued)
 * fed debit batches at `rate` customer debits (lines) per second for `seconds`: published on
 * schedule (each batch when the lines before it are due), pre-generated and pre-encoded. The
 * lag is what was published but not yet applied (pending and unacknowledged batches), in
 * seconds of the offered rate, read every LAG_EVERY_S seconds; the rate is sustained when the
 * lag levels off (judgeLag). The lag itself is how far the balances trail the debits offered.
 */
async function sustain(s: Awaited<ReturnType<typeof openStores>>, o: { customers: number; priceId: string; partitions: number; lanes: number; batchMax: number; rate: number; seconds: number }): Promise<Record<string, unknown>> {
  const batches: DebitBatch[] = [];
  let total = 0;
  for (let k = 0; total < o.rate * o.seconds; k++) {
    for (const b of debitBatches({ count: o.partitions, customers: o.customers, eventsPerBatch: 2500, shape: 'uniform', seed: 5000 + k, tag: `sus${k}`, priceId: o.priceId, partitions: o.partitions })) {
      batches.push(b);
      total += b.lines.length;
    }
  }
  const encoded = batches.map(encodeDebitBatch);
  const n = names(s.config.namespace);
  const durable = `bench-sustain-${o.customers}`;
  const consumer = await startDebitConsumer({ nc: s.nc, pool: s.pool, stream: n.debitsStream, durable, batchMax: o.batchMax, lanes: o.lanes, log });
  const jsm = await jetstreamManager(s.nc);
  const js = jetstream(s.nc);
  const avgLines = total / batches.length;
  const lagS = async () => {
    const info = await jsm.consumers.info(n.debitsStream, durable);
    return ((info.num_pending + info.num_ack_pending) * avgLines) / o.rate;
  };
  try {
    const start = performance.now();
    let due = 0;
    // The lag every LAG_EVERY_S seconds of the run: whether it levels off or keeps growing.
    const lagSeries: number[] = [];
    for (let i = 0; i < batches.length; i++) {
      const wait = start + (due / o.rate) * 1000 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await js.publish(`${n.debitsSubjectPrefix}.${batches[i]!.partition}`, encoded[i]!);
      due += batches[i]!.lines.length;
      if (due / o.rate >= (lagSeries.length + 1) * LAG_EVERY_S) lagSeries.push(round(await lagS(), 2));
    }
    const offeredS = (performance.now() - start) / 1000;
    const endLag = await lagS();
    await consumer.idle();
    const doneS = (performance.now() - start) / 1000;
    const judged = judgeLag(lagSeries);
    return {
      sustainOfferedCustomerDebitsPerS: Math.round(total / offeredS),
      sustainSeconds: round(offeredS, 1),
      sustainLagSecondsMid: lagSeries[Math.floor(lagSeries.length / 2)] ?? null,
      sustainLagSecondsEnd: round(endLag, 2),
      sustainLagSecondsSeries: lagSeries,
      sustainLagSecondsLastThird: judged.lastThird,
      sustainLagSecondsMax: lagSeries.length > 0 ? Math.max(...lagSeries) : null,
      sustainCatchUpSeconds: round(doneS - offeredS, 2),
      sustainAppliedCustomerDebitsPerS: Math.round(total / doneS),
      sustained: judged.sustained,
      sustainWhy: judged.why,
    };
  } finally {
    await consumer.stop();
  }
}

/** The sustain step's lag series: one reading per this many seconds of offered debits. */
const LAG_EVERY_S = 3;

/** Lines, events, batches and applying time of a series of rounds. */
class Tally {
  lines = 0;
  events = 0;
  batches = 0;
  ms = 0;
  rounds = 0;
  add(group: DebitBatch[], ms: number): void {
    this.rounds++;
    this.ms += ms;
    this.batches += group.length;
    for (const b of group) {
      this.lines += b.lines.length;
      for (const l of b.lines) this.events += l.events;
    }
  }
  get perS(): number {
    return Math.round(this.lines / (this.ms / 1000));
  }
}

/** Applies one round: in one transaction (lanes 1) or one per lane, concurrently; every batch must be fresh. */
async function applyRound(pool: Pool, group: DebitBatch[], lanes: number): Promise<number> {
  const a = performance.now();
  const applied = lanes === 1 ? (await applyDebitBatches(pool, group)).applied.length : (await applyDebitBatchesInLanes(pool, group, lanes)).applied;
  const ms = performance.now() - a;
  if (applied !== group.length) throw new Error(`ledger bench: ${group.length - applied} batches not applied`);
  return ms;
}

export async function run(opts: LedgerOpts): Promise<ScenarioResult[]> {
  const out: ScenarioResult[] = [];
  for (const customers of opts.customerCounts) {
    const env = benchEnv();
    const s = await openStores(env);
    try {
      const t0 = performance.now();
      // Every customer subscribes to a plan whose price the debit lines carry, as a rater's
      // debits always do: the ledger then also adds each line to its subscription's usage.
      const { planId, priceId } = await createCatalog(s);
      await createCustomers(s.pool, { count: customers, planId });
      const setupS = (performance.now() - t0) / 1000;
      const lanes = env.config.ledgerLanes;
      const partitions = env.config.partitions;
      // Fresh batch ids every time (a replayed id is skipped, which would flatter the figure).
      let k = 0;
      const round8 = (count: number) => debitBatches({ count, customers, eventsPerBatch: 2500, shape: 'uniform', seed: 100 + k, tag: `l${k++}`, priceId, partitions });
      /** Rounds of `count` batches until `seconds` pass, alternating lanes and one transaction (both when `oneLane`). */
      const measure = async (count: number, oneLane: boolean): Promise<{ laned: Tally; single: Tally }> => {
        const laned = new Tally();
        const single = new Tally();
        const until = performance.now() + opts.seconds * 1000 * (oneLane ? 2 : 1);
        for (let i = 0; performance.now() < until; i++) {
          const group = round8(count);
          // Generating batches is outside the timed part; only applying is counted.
          if (oneLane && i % 2 === 1) single.add(group, await applyRound(s.pool, group, 1));
          else laned.add(group, await applyRound(s.pool, group, lanes));
        }
        return { laned, single };
      };
      const start = performance.now();
      const main = await measure(opts.batchesPerTx, lanes > 1);
      const secs = (performance.now() - start) / 1000;
      // With a backlog the ledger's consumer applies up to DRAWDOWN_LEDGER_BATCH_MAX batches per
      // transaction in each lane: the same loop at that size (a customer debited by several
      // batches is one row update).
      const backlogPerTx = env.config.ledgerBatchMax;
      const backlog = customers <= opts.backlogMaxCustomers ? (await measure(backlogPerTx * Math.min(lanes, partitions), false)).laned : undefined;
      // Steady state: first one debit for every customer (the day's grouped entries exist, in
      // transactions of 20,000 lines, not measured), then the 8-batch loop again.
      let steady: { laned: Tally; single: Tally } | undefined;
      if (customers > opts.batchesPerTx * 2500) {
        const day = new Date().toISOString().slice(0, 10);
        for (let first = 0; first < customers; first += 20_000) {
          const n = Math.min(20_000, customers - first);
          const warm: DebitBatch = {
            id: `steady-warm:${first}`, partition: 0, firstSeq: first + 1, lastSeq: first + n, receivedAtMax: Date.now(),
            lines: Array.from({ length: n }, (_, i) => ({ customerId: customerId(first + i), pricingUnit: 'credits', priceId, day, amountPicos: String(EVENT_PICOS), quantityPicos: '1000000000000', events: 1 })),
          };
          await applyDebitBatches(s.pool, [warm]);
        }
        steady = await measure(opts.batchesPerTx, lanes > 1);
      }
      // The goal rate through the consumer itself, after the loops above (every customer's
      // grouped entry of the day exists by then where the steady loop ran).
      const sustained = opts.sustainSeconds > 0
        ? await sustain(s, { customers, priceId, partitions, lanes, batchMax: env.config.ledgerBatchMax, rate: opts.sustainRate, seconds: opts.sustainSeconds })
        : {};
      const applySecs = main.laned.ms / 1000;
      out.push({
        name: `ledger_${customers}`,
        title: `Ledger alone: applyDebitBatches with ${customers.toLocaleString('en')} customers`,
        figures: {
          customers,
          lanes,
          partitions,
          batchesPerTx: opts.batchesPerTx,
          eventsPerBatch: 2500,
          avgLinesPerBatch: Math.round(main.laned.lines / Math.max(1, main.laned.batches)),
          batchesPerS: round(main.laned.batches / applySecs, 1),
          // Rounds of batchesPerTx batches, one transaction per lane, lanes concurrent (the consumer's way).
          customerDebitsPerS: main.laned.perS,
          eventsCoveredPerS: Math.round(main.laned.events / applySecs),
          roundMsAvg: round(main.laned.ms / Math.max(1, main.laned.rounds), 1),
          // The same rounds, alternated with those above, each in one transaction.
          ...(main.single.rounds > 0 ? { oneLaneCustomerDebitsPerS: main.single.perS, oneLaneTxMsAvg: round(main.single.ms / main.single.rounds, 1) } : {}),
          backlogBatchesPerTx: backlogPerTx,
          ...(backlog ? { backlogCustomerDebitsPerS: backlog.perS } : {}),
          // The same loop once every customer's grouped entry of the day exists (debits grow entries instead of starting them).
          ...(steady ? { steadyCustomerDebitsPerS: steady.laned.perS, steadyRoundMsAvg: round(steady.laned.ms / steady.laned.rounds, 1) } : {}),
          ...(steady && steady.single.rounds > 0 ? { steadyOneLaneCustomerDebitsPerS: steady.single.perS } : {}),
          ...sustained,
          wallSeconds: round(secs, 1),
          setupSeconds: round(setupS, 1),
        },
      });
    } finally {
      await s.close();
      await env.cleanup();
    }
  }
  return out;
}
