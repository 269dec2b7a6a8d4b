// CPU per event of the edge's request work without HTTP or NATS: prepareRequest (decode,
// validate, group by partition, encode) on bench-shaped 100-event bodies, then the publisher's
// per-message work (join the parts of ~9 requests per partition, message id). For quick
// comparisons of changes to that code on a busy machine (process CPU time, not wall time).
//
//   nice -n 19 node --import tsx ingest/scripts/prepare-cpu.ts [--rounds=5] [--requests=4000] [--format=json|msgpack]
import { Packr } from 'msgpackr';
import { batchMessageId, joinBatches, type EventKey } from '@drawdown/events';
import { prepareRequest } from '../src/prepare';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt;
const rounds = Number(opt('rounds', '5'));
const requests = Number(opt('requests', '4000'));
const formats = opt('format', 'json,msgpack').split(',');
const PARTITIONS = 2;
const REQUESTS_PER_MESSAGE = 9;

let seed = 3;
const draw = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 10_000;
const packr = new Packr({ useRecords: false });

function bodies(format: string, nowMs: number): Buffer[] {
  const ts = new Date(nowMs - 1000).toISOString();
  const out: Buffer[] = [];
  for (let r = 0; r < 200; r++) {
    const events = [];
    for (let j = 0; j < 100; j++) {
      events.push({
        idempotency_key: `tag${String(r).padStart(10, '0')}-${String(j).padStart(3, '0')}`,
        external_customer_id: `ext-${draw()}`,
        event_name: 'api_call',
        timestamp: ts,
        properties: { region: j % 3 === 0 ? 'eu-west-1' : 'us-east-1', bytes: 1000 + j, model: 'small' },
      });
    }
    out.push(format === 'json' ? Buffer.from(JSON.stringify({ events })) : Buffer.from(packr.pack({ events })));
  }
  return out;
}

const limits = { maxEventsPerRequest: 10_000, maxKeyLength: 256, maxPropertyKeyLength: 128, maxStringValueLength: 1024, maxProperties: 100 };
for (const format of formats) {
  const nowMs = Date.now();
  const list = bodies(format, nowMs);
  const type = format === 'json' ? 'application/json' : 'application/msgpack';
  const window = { nowMs, graceMs: 3_600_000, futureMs: 300_000 };
  const run = (): { prepare: number; publish: number; events: number } => {
    let events = 0;
    let prepare = 0;
    let publish = 0;
    let open: { parts: Uint8Array[]; events: EventKey[] }[] = [];
    let n = 0;
    for (let i = 0; i < requests; i++) {
      const t0 = process.cpuUsage();
      const p = prepareRequest(type, list[i % list.length]!, window, limits, PARTITIONS);
      const t1 = process.cpuUsage(t0);
      prepare += t1.user + t1.system;
      for (const part of p.parts) {
        events += part.events.length;
        const m = (open[part.partition] ??= { parts: [], events: [] });
        m.parts.push(part.payload);
        for (const e of part.events) m.events.push(e);
      }
      if (++n === REQUESTS_PER_MESSAGE) {
        const t2 = process.cpuUsage();
        open.forEach((m, partition) => {
          joinBatches(m.parts);
          batchMessageId(partition, m.events);
        });
        const t3 = process.cpuUsage(t2);
        publish += t3.user + t3.system;
        open = [];
        n = 0;
      }
    }
    return { prepare, publish, events };
  };
  run(); // warm-up
  const prep: number[] = [];
  const pub: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const x = run();
    prep.push(x.prepare / x.events);
    pub.push(x.publish / x.events);
  }
  const med = (xs: number[]) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]!.toFixed(3);
  process.stdout.write(`${format}: prepare ${med(prep)} µs/event, per message ${med(pub)} µs/event (medians of ${rounds}: ${prep.map((x) => x.toFixed(3)).join(' ')} | ${pub.map((x) => x.toFixed(3)).join(' ')})\n`);
}
