// CPU per event of the pricing worker's task (priceTask: decode, in-batch dedup, pricing, the
// ClickHouse payload), in this thread, on batches shaped like the rater bench's: 10,000
// customers by external id, one unit price on a count metric, 20,000-event batches cut from
// ~50-event messages. Prints µs per event for each round. Each round also times the reference
// path (taskEvents, then priceBatch over PricingEvent objects and encodeRated, as the worker
// did before rateBatch; it does not encode the debit batch, which priceTask now does),
// alternated batch by batch with priceTask (which goes first alternating too), and checks both
// payloads are the same bytes. Compare two versions of the code by running this in both, alternately.
//   node --import tsx rater/scripts/price-bench.ts [rounds=8] [batches=10]
import type { CatalogSnapshot } from '@drawdown/catalog';
import { encodeBatch, type AcceptedEvent } from '@drawdown/events';
import { encodeRated, priceBatch, type PricingEvent } from '../src/pricing/price';
import { encodeSnapshot, priceTask, snapshotOf, taskEvents, type PricingTask } from '../src/pricing/worker';

const rounds = Number(process.argv[2] ?? 8);
const batches = Number(process.argv[3] ?? 10);
const CUSTOMERS = 10_000;
const BATCH = 20_000;
const now = Date.UTC(2026, 10, 26, 3, 0, 0);

const snap: CatalogSnapshot = { version: 3, byExternalId: {}, customers: {}, subscriptions: {}, prices: {}, metrics: {}, pricingUnits: {} };
snap.metrics.m1 = { id: 'm1', event_name: 'api_call', aggregation: 'count', filters: [] } as unknown as CatalogSnapshot['metrics'][string];
snap.prices.pr1 = { id: 'pr1', metricId: 'm1', currency: 'credits', modelType: 'unit', config: { unit_config: { unit_amount: '0.001' } } } as CatalogSnapshot['prices'][string];
for (let i = 0; i < CUSTOMERS; i++) {
  snap.customers[`bc${i}`] = `ext-${i}`;
  snap.byExternalId[`ext-${i}`] = `bc${i}`;
  snap.subscriptions[`bc${i}`] = [{ id: `sub${i}`, startMs: Date.UTC(2026, 0, 1), endMs: null, priceIds: ['pr1'], billingCadence: 'monthly' }];
}
const sab = encodeSnapshot(snap);

let rng = 12345;
const rand = () => ((rng = (Math.imul(rng, 1103515245) + 12345) >>> 0) / 2 ** 32);

function makeTask(b: number): PricingTask {
  const msgs: Uint8Array[] = [];
  for (let i = 0; i < BATCH; i += 50) {
    const events: AcceptedEvent[] = [];
    for (let j = 0; j < 50; j++) {
      const n = b * BATCH + i + j;
      events.push({ k: `rt${String(n).padStart(12, '0')}`, c: `x:ext-${Math.floor(rand() * CUSTOMERS)}`, n: 'api_call', t: now, p: { region: j % 3 === 0 ? 'eu-west-1' : 'us-east-1', bytes: 1000 + j, model: 'small' }, r: now });
    }
    msgs.push(encodeBatch(events).slice());
  }
  const data = new Uint8Array(msgs.reduce((a, m) => a + m.byteLength, 0));
  const ends: number[] = [];
  let at = 0;
  for (const m of msgs) {
    data.set(m, at);
    ends.push((at += m.byteLength));
  }
  return { snapshotVersion: snap.version, snapshotJson: sab, partition: 0, batchId: `0-${b}`, data, ends, seqs: msgs.map((_, i) => b * 1000 + i + 1), rerate: [], skip: [] };
}

const tasks = Array.from({ length: batches }, (_, b) => makeTask(b));

function reference(task: PricingTask): Uint8Array {
  const snapshot = snapshotOf(task);
  const { events, seqs, customers } = taskEvents(snapshot, task);
  const priced: PricingEvent[] = events.map((e, i) => ({ seq: seqs[i]!, customer: customers[i], k: e.k, c: e.c, n: e.n, t: e.t, r: e.r, p: e.p }));
  const r = priceBatch(snapshot, priced, task.partition, task.batchId);
  return encodeRated(r.rows, r.cumulative).body;
}

const cpuNow = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
let bytes = 0;
let taskTotal = 0;
let refTotal = 0;
const WARM = Math.min(3, rounds - 1);
for (let r = 0; r < rounds; r++) {
  let taskUs = 0;
  let refUs = 0;
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i]!;
    // Which goes first alternates: the one after pays more of the other's garbage collection.
    const first = (r + i) % 2 === 0;
    const c0 = cpuNow();
    const ref = first ? undefined : reference(t);
    const c1 = cpuNow();
    const body = priceTask(t).payload.body;
    const c2 = cpuNow();
    const ref2 = ref ?? reference(t);
    const c3 = cpuNow();
    taskUs += c2 - c1;
    refUs += c1 - c0 + (c3 - c2);
    bytes += body.length;
    if (!Buffer.from(body).equals(Buffer.from(ref2))) throw new Error(`batch ${t.batchId}: priceTask's payload differs from the reference path's`);
  }
  if (r >= WARM) {
    taskTotal += taskUs;
    refTotal += refUs;
  }
  const per = (us: number, n = 1) => (us / (n * batches * BATCH)).toFixed(3);
  process.stdout.write(`round ${r}: priceTask ${per(taskUs)} µs CPU per event, reference path ${per(refUs)}\n`);
  if (r === rounds - 1) process.stdout.write(`after ${WARM} warm-up rounds: priceTask ${per(taskTotal, rounds - WARM)}, reference path ${per(refTotal, rounds - WARM)} µs CPU per event\n`);
}
process.stdout.write(`payload bytes per row: ${(bytes / (rounds * batches * BATCH)).toFixed(1)}\n`);
