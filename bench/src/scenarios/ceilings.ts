// Ceilings: what the stores themselves do with the same data, measured in the same run.
// - JetStream: publishing the same msgpack batches (100 events per message; and each 100 split
//   per partition, as the edge publishes with DRAWDOWN_INGEST_LINGER_MS=0; with a linger the
//   edge joins requests into larger messages), with acks, many in flight.
// - chDB: bulk insert of the same rated rows, the rater's way (insertRowBinary: RowBinary read
//   from a file by the engine, one block with a dedup token), a rater batch's worth of rows each.
// - Postgres: one set-based UPDATE of the credit blocks per transaction for the same debits.
import { join } from 'node:path';
import { insertRowBinary, migrateClickHouse, openClickHouse } from '@drawdown/clickhouse';
import { encodeBatch, groupByPartition, type AcceptedEvent } from '@drawdown/events';
import { jetstream, names } from '@drawdown/nats';
import { RATED_COLUMNS, encodeRated, type RatedRow } from '@drawdown/rater';
import { acceptedEvents } from '../workload';
import { benchEnv, createCustomers, log, openStores } from '../setup';
import { debitBatches, EVENT_PICOS, type ScenarioResult } from './common';
import { round } from '../util';

export interface CeilingOpts {
  seconds: number;
  customers: number;
}

function ratedRow(e: AcceptedEvent, seq: number, batch: string): RatedRow {
  return {
    partition: seq % 8, seq, batch_id: batch, customer_id: `bc${e.c.slice(6)}`, external_customer_id: e.c.slice(2),
    idempotency_key: e.k, event_name: e.n, timestamp: e.t, received_at: e.r, properties: JSON.stringify(e.p),
    subscription_id: 'bench-sub', price_id: 'bench-price', metric_id: 'bench-metric', group_key: '', period_start: e.t - 86_400_000, quantity: '1', amount: '0.001',
    pricing_unit: 'credits', status: 'rated', reason: '', catalog_version: 1,
  };
}

/** A rated_events payload as the rater's worker writes it. */
function payloadOf(rows: RatedRow[]): { columns: readonly string[]; body: Uint8Array; rows: number } {
  return { columns: RATED_COLUMNS, body: encodeRated(rows, []).body, rows: rows.length };
}

export async function run(opts: CeilingOpts): Promise<ScenarioResult[]> {
  const env = benchEnv();
  const s = await openStores(env);
  const out: ScenarioResult[] = [];
  try {
    const n = names(s.config.namespace);
    const js = jetstream(s.nc);
    const events = acceptedEvents({ count: 100_000, customers: opts.customers, shape: 'uniform', seed: 1, tag: 'ceil', timestampMs: Date.now() });
    const messages: Uint8Array[] = [];
    for (let i = 0; i < events.length; i += 100) messages.push(encodeBatch(events.slice(i, i + 100)));

    // JetStream, 100 events per message, up to 256 publishes awaiting their ack.
    const publishFor = async (payloads: { subject: string; data: Uint8Array; events: number }[], label: string) => {
      const until = performance.now() + opts.seconds * 1000;
      const t0 = performance.now();
      let sent = 0, evs = 0, bytes = 0, i = 0;
      const inflight = new Set<Promise<unknown>>();
      while (performance.now() < until) {
        const m = payloads[i++ % payloads.length]!;
        const p = js.publish(m.subject, m.data, { msgID: `${label}-${i}` }).then(() => {
          sent++;
          evs += m.events;
          bytes += m.data.length;
        });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        if (inflight.size >= 256) await Promise.race(inflight);
      }
      await Promise.all(inflight);
      const secs = (performance.now() - t0) / 1000;
      return { eventsPerS: Math.round(evs / secs), messagesPerS: Math.round(sent / secs), mbPerS: round(bytes / secs / 1048576, 1), seconds: round(secs, 1), avgMessageBytes: Math.round(bytes / Math.max(1, sent)) };
    };
    const whole = await publishFor(messages.map((data, i) => ({ subject: `${n.eventsSubjectPrefix}.${i % 8}`, data, events: 100 })), 'w');
    const split: { subject: string; data: Uint8Array; events: number }[] = [];
    for (let i = 0; i < events.length; i += 100) {
      for (const [p, group] of groupByPartition(events.slice(i, i + 100), 8)) split.push({ subject: `${n.eventsSubjectPrefix}.${p}`, data: encodeBatch(group), events: group.length });
    }
    const perPartition = await publishFor(split, 's');
    out.push({
      name: 'ceiling_jetstream',
      title: 'Ceiling: JetStream publish of the same msgpack batches',
      figures: { hundredEventsPerMessage: whole, splitPerPartitionAsTheEdgeDoes: perPartition, inflightPublishes: 256 },
    });

    // chDB: a rater batch's worth of rated rows per insert (DRAWDOWN_RATER_BATCH_MAX_EVENTS),
    // written the rater's way: RowBinary read from a file by the engine, one block, dedup token.
    // Set-up only, so at once: chDB's start and the Postgres ceiling's customers.
    const customersReady = createCustomers(s.pool, { count: opts.customers });
    customersReady.catch(() => {}); // awaited below
    const ch = await openClickHouse({ url: '', dataDir: join(s.config.dataDir, 'chdb') }, log);
    await migrateClickHouse(ch);
    await customersReady;
    const perInsert = Math.min(events.length, s.config.raterBatchMaxEvents);
    const rows = events.slice(0, perInsert).map((e, i) => ratedRow(e, i + 1, 'ceil'));
    const body = payloadOf(rows);
    // The fixed cost of one insert (a one-row insert), median of three.
    const one: number[] = [];
    for (let i = 0; i < 3; i++) {
      const single = payloadOf(rows.slice(i, i + 1));
      const a = performance.now();
      await insertRowBinary(ch, 'rated_events', single, `one:${i}`);
      one.push(performance.now() - a);
    }
    one.sort((a, b) => a - b);
    {
      const until = performance.now() + opts.seconds * 1000;
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      let inserted = 0, k = 0;
      while (performance.now() < until) {
        await insertRowBinary(ch, 'rated_events', body, `ceil:${k++}`);
        inserted += rows.length;
      }
      const secs = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      out.push({
        name: 'ceiling_chdb',
        title: `Ceiling: chDB bulk insert of the same rated rows (RowBinary INSERT FROM INFILE, one block with a dedup token, ${perInsert.toLocaleString('en-US')} rows per insert)`,
        figures: {
          engineVersion: ch.version, oneRowInsertMs: round(one[1]!, 1), rowsPerS: Math.round(inserted / secs), inserts: k, rowsPerInsert: rows.length,
          bytesPerRow: Math.round(body.body.byteLength / rows.length), processCpuUsPerRow: round((cpu.user + cpu.system) / inserted, 1), seconds: round(secs, 1),
        },
      });
    }
    await ch.close();

    // Postgres: the same debits as the ledger stage, one set-based UPDATE per 8 batches.
    const batches = debitBatches({ count: 64, customers: opts.customers, eventsPerBatch: 2500, shape: 'uniform', seed: 7, tag: 'ceil' });
    {
      const until = performance.now() + opts.seconds * 1000;
      const t0 = performance.now();
      let lines = 0, applied = 0, i = 0;
      while (performance.now() < until) {
        const group = [0, 1, 2, 3, 4, 5, 6, 7].map(() => batches[i++ % batches.length]!);
        const merged = new Map<string, bigint>();
        for (const b of group) for (const l of b.lines) merged.set(l.customerId, (merged.get(l.customerId) ?? 0n) + BigInt(l.amountPicos));
        const ids = [...merged.keys()].sort();
        const amounts = ids.map((id) => {
          const v = merged.get(id)!;
          return `${v / 1_000_000_000_000n}.${String(v % 1_000_000_000_000n).padStart(12, '0')}`;
        });
        await s.pool.query(
          `UPDATE credit_blocks k SET remaining = k.remaining - t.a
             FROM unnest($1::text[], $2::numeric[]) AS t(c, a)
            WHERE k.id = 'bb' || substr(t.c, 3)`,
          [ids, amounts],
        );
        applied += group.length;
        lines += group.reduce((a, b) => a + b.lines.length, 0);
      }
      const secs = (performance.now() - t0) / 1000;
      out.push({
        name: 'ceiling_postgres',
        title: 'Ceiling: Postgres set-based UPDATE of the same debits (8 batches per statement)',
        figures: { customerDebitsPerS: Math.round(lines / secs), batchesPerS: round(applied / secs, 1), eventsCoveredPerS: Math.round((applied * 2500) / secs), customers: opts.customers, seconds: round(secs, 1), eventPricePicos: String(EVENT_PICOS) },
      });
    }
    return out;
  } finally {
    await s.close();
    await env.cleanup();
  }
}
