// Access checks and crossing-to-webhook latency, against the all-in-one process (`startApp`,
// its own process).
// - Access: `GET /v1/customers/{id}/access?metric=...` over many customers with keep-alive
//   connections from the load generator (its own process): every customer once (each first
//   check loads the customer into the hot cache), then the peak (closed loop), then latency at
//   half the peak (open loop, from the scheduled send time). The app's cache-load counter
//   during those phases shows whether checks stay in memory.
// - Crossings: a webhook receiver in this process, registered through the API for
//   `customer.credit_balance_dropped`; customers with a dropped alert just under their balance;
//   one debit batch per crossing applied with applyDebitBatches (as the ledger applies a rater's)
//   at a steady rate. Latency: from applyDebitBatches returning (the commit) to the receiver
//   having the whole request, each delivery verified with the orb-billing SDK's webhooks.unwrap.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Orb from 'orb-billing';
import type { DebitBatch } from '@drawdown/debits';
import { applyDebitBatches } from '@drawdown/ledger';
import { startLoadGen, startServer } from '../procs';
import { benchEnv, createCatalog, createCustomers, GRANT, openStores } from '../setup';
import type { ScenarioResult } from './common';
import { MB, percentile, procSample, round, sleep } from '../util';
import { customerId } from '../workload';
import type { LoadResult } from '../loadgen';

export interface AlertsOpts {
  /** Customers whose access is checked. */
  customers: number;
  /** Length of the peak and of the half-load phase. */
  seconds: number;
  connections: number;
  /** Threshold crossings timed to their webhook, and how many are applied per second. */
  crossings: number;
  crossingsPerS: number;
  /** Longest wait for the last webhook after the last crossing. */
  waitSeconds: number;
}

/** Concurrent requests of the bench's own set-up calls. */
const SETUP_CONCURRENCY = 16;

/** Each crossing debits this much (credits) from a balance of GRANT with an alert at GRANT - 1. */
const CROSSING_DEBIT_CREDITS = 2n;
const PICOS_PER_CREDIT = 1_000_000_000_000n;

const progress = (msg: string) => process.stderr.write(`  alerts ${new Date().toISOString().slice(11, 19)} ${msg}\n`);

/** Runs `fn` over `items` with at most `limit` in flight. */
async function inParallel<T>(items: T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

interface Received {
  customerId: string;
  atMs: number;
}

/** A webhook receiver: verifies every delivery with the SDK, records when each arrived. */
async function startReceiver(secret: () => string) {
  const verifier = new Orb({ apiKey: 'unused', baseURL: 'http://127.0.0.1:1' });
  const received: Received[] = [];
  const rejected: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const atMs = performance.now();
      try {
        const body = verifier.webhooks.unwrap(Buffer.concat(chunks).toString('utf8'), req.headers as Record<string, string>, secret()) as { customer?: { id?: string } };
        received.push({ customerId: body.customer?.id ?? '', atMs });
        res.writeHead(200).end('ok');
      } catch (err) {
        rejected.push((err as Error).message);
        res.writeHead(400).end('bad signature');
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    rejected,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

export async function run(opts: AlertsOpts): Promise<ScenarioResult[]> {
  const t0 = performance.now();
  const env = benchEnv();
  let secret = '';
  // In parallel: the app, the load generator, this process's stores (migrations are safe to race) and the receiver.
  const [app, gen, s, receiver] = await Promise.all([startServer({ kind: 'app', config: env.config }), startLoadGen(), openStores(env), startReceiver(() => secret)]);
  const base = `http://127.0.0.1:${app.port}`;
  const auth = `Bearer ${app.adminKey}`;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, { method, headers: { authorization: auth, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const out = (await res.json()) as Record<string, unknown>;
    if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${JSON.stringify(out).slice(0, 300)}`);
    return out;
  };
  /** Sum of a metric's series in the app's /metrics. */
  const metric = async (name: string) => {
    const text = await (await fetch(`${base}/metrics`)).text();
    let sum = 0;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))) sum += Number(m[1]);
    return sum;
  };
  const out: ScenarioResult[] = [];
  try {
    progress(`app started in ${round((performance.now() - t0) / 1000, 1)} s`);
    const { planId } = await createCatalog(s, { baseUrl: base, adminKey: app.adminKey });
    await createCustomers(s.pool, { count: opts.customers + opts.crossings, planId });
    const metricId = ((await call('GET', '/v1/metrics')).data as { id: string }[])[0]!.id;
    progress(`set-up done at ${round((performance.now() - t0) / 1000, 1)} s`);

    // Access checks.
    const paths = Array.from({ length: opts.customers }, (_, i) => `/v1/customers/${customerId(i)}/access?metric=${encodeURIComponent(metricId)}`);
    const spec = { host: '127.0.0.1', port: app.port, path: paths[0]!, authorization: auth, get: { paths }, connections: opts.connections };
    // First checks: every customer once (each loads it from Postgres into the cache).
    const first = await gen.run({ ...spec, mode: 'closed', durationMs: 120_000, maxRequests: paths.length });
    if (first.okRequests !== paths.length) throw new Error(`first access checks: ${first.okRequests} of ${paths.length} answered 2xx: ${JSON.stringify(first.byStatus)} ${first.errorSample}`);
    if (!first.firstBody.includes('"allowed":true')) throw new Error(`access check: expected allowed, got ${first.firstBody}`);
    const cacheCustomers = await metric('drawdown_access_cache_customers');
    const measure = async (f: () => Promise<LoadResult>) => {
      const a0 = procSample(app.pid)!;
      const g0 = procSample(gen.pid)!;
      const l0 = await metric('drawdown_access_cache_loads_total');
      const start = performance.now();
      const r = await f();
      const secs = (performance.now() - start) / 1000;
      const l1 = await metric('drawdown_access_cache_loads_total');
      const a1 = procSample(app.pid)!;
      const g1 = procSample(gen.pid)!;
      return {
        r,
        appCpuShare: round((a1.cpuS - a0.cpuS) / secs, 2),
        loadgenCpuShare: round((g1.cpuS - g0.cpuS) / secs, 2),
        appRssMB: round(a1.rssBytes / MB),
        cacheLoads: l1 - l0,
      };
    };
    const peak = await measure(() => gen.run({ ...spec, mode: 'closed', durationMs: opts.seconds * 1000, warmupMs: 300 }));
    const halfRps = Math.max(1, Math.round(peak.r.requestsPerS / 2));
    const half = await measure(() => gen.run({ ...spec, mode: 'open', rateRps: halfRps, durationMs: opts.seconds * 1000, warmupMs: 300 }));
    const failures = [peak, half].filter((m) => m.r.okRequests !== m.r.requests || m.r.socketErrors > 0).map((m) => `${JSON.stringify(m.r.byStatus)} ${m.r.errorSample}`);
    if (failures.length > 0) throw new Error(`access checks failed: ${failures.join('; ')}`);
    out.push({
      name: 'access_checks',
      title: `Access checks: GET /v1/customers/{id}/access?metric=... over ${opts.customers.toLocaleString('en')} customers`,
      figures: {
        customers: opts.customers,
        connections: opts.connections,
        firstChecksPerS: first.requestsPerS,
        firstChecksLatencyMs: first.latencyMs,
        cacheCustomers,
        peakChecksPerS: peak.r.requestsPerS,
        peakLatencyMs: peak.r.latencyMs,
        halfLoadChecksPerS: half.r.requestsPerS,
        halfLoadLatencyMs: half.r.latencyMs,
        halfLoadDropped: half.r.dropped,
        cacheLoadsDuringPeakAndHalf: peak.cacheLoads + half.cacheLoads,
        appCpuShareAtPeak: peak.appCpuShare,
        loadgenCpuShareAtPeak: peak.loadgenCpuShare,
        loadgenCpuShareAtHalf: half.loadgenCpuShare,
        appRssMB: peak.appRssMB,
        sampleResponse: first.firstBody.slice(0, 160),
      },
      notes: [
        'First checks: each customer once, closed loop on the same connections; each loads the customer from Postgres (the app loads the customers missed together in one batch). Every later check answers from the cache.',
        'Cache loads: the app\'s drawdown_access_cache_loads_total (customers loaded from Postgres, metric mappings reloaded) during the peak and half-load phases; 0 means every check answered from memory.',
      ],
    });
    progress(`access at ${round((performance.now() - t0) / 1000, 1)} s: ${first.requestsPerS} first checks/s, ${peak.r.requestsPerS} checks/s peak, p99 ${half.r.latencyMs.p99} ms at half`);

    // Crossings to webhooks.
    const ep = await call('POST', '/v1/webhook_endpoints', { url: receiver.url, event_types: ['customer.credit_balance_dropped'], description: 'bench receiver' });
    secret = ep.secret as string;
    const crossers = Array.from({ length: opts.crossings }, (_, i) => customerId(opts.customers + i));
    const threshold = String(BigInt(GRANT) - 1n);
    await inParallel(crossers, SETUP_CONCURRENCY, async (id) => {
      await call('POST', `/v1/alerts/customer_id/${id}`, { type: 'credit_balance_dropped', currency: 'credits', thresholds: [{ value: threshold }] });
    });
    const day = new Date().toISOString().slice(0, 10);
    const amount = CROSSING_DEBIT_CREDITS * PICOS_PER_CREDIT;
    const committed = new Map<string, { startMs: number; commitMs: number; commitWallMs: number }>();
    const applying: Promise<void>[] = [];
    const c0 = performance.now();
    for (let i = 0; i < crossers.length; i++) {
      const due = c0 + (i * 1000) / opts.crossingsPerS;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const id = crossers[i]!;
      const batch: DebitBatch = {
        id: `alerts-bench:${process.pid}:${i}`, partition: 0, firstSeq: i + 1, lastSeq: i + 1, receivedAtMax: Date.now(),
        lines: [{ customerId: id, pricingUnit: 'credits', priceId: 'bench-price', day, amountPicos: String(amount), quantityPicos: String(CROSSING_DEBIT_CREDITS * 1000n * PICOS_PER_CREDIT), events: 2000 }],
      };
      const startMs = performance.now();
      applying.push(applyDebitBatches(s.pool, [batch]).then(() => void committed.set(id, { startMs, commitMs: performance.now(), commitWallMs: Date.now() })));
    }
    await Promise.all(applying);
    const until = performance.now() + opts.waitSeconds * 1000;
    while (receiver.received.length < crossers.length && performance.now() < until) await sleep(20);
    await sleep(200); // duplicates, if any, would land now
    const firstAt = new Map<string, number>();
    for (const r of receiver.received) if (!firstAt.has(r.customerId)) firstAt.set(r.customerId, r.atMs);
    const fromCommit: number[] = [];
    const fromStart: number[] = [];
    for (const [id, t] of committed) {
      const at = firstAt.get(id);
      if (at === undefined) continue;
      fromCommit.push(at - t.commitMs);
      fromStart.push(at - t.startMs);
    }
    // Where the time goes, from the service's own records (wall clock, same machine): the relay
    // marking the outbox row published, and the dispatcher leasing the delivery.
    const stages = await s.pool.query<{ customer_id: string; published: string; leased: string }>(
      `SELECT o.customer_id, (extract(epoch FROM o.published_at) * 1000)::text AS published, (extract(epoch FROM d.first_attempt_at) * 1000)::text AS leased
         FROM outbox o JOIN webhook_events e ON e.outbox_id = o.id JOIN webhook_deliveries d ON d.event_id = e.id
        WHERE o.topic = 'customer.credit_balance_dropped'`,
    );
    const toPublished: number[] = [];
    const publishedToLeased: number[] = [];
    for (const r of stages.rows) {
      const t = committed.get(r.customer_id);
      if (!t) continue;
      toPublished.push(Number(r.published) - t.commitWallMs);
      publishedToLeased.push(Number(r.leased) - Number(r.published));
    }
    const txMs = [...committed.values()].map((t) => t.commitMs - t.startMs);
    const ms = (xs: number[]) => ({ p50: round(percentile(xs, 50), 1), p90: round(percentile(xs, 90), 1), p99: round(percentile(xs, 99), 1), max: round(percentile(xs, 100), 1) });
    out.push({
      name: 'crossing_to_webhook',
      title: 'Threshold crossing to signed webhook received (customer.credit_balance_dropped)',
      figures: {
        crossings: crossers.length,
        crossingsPerS: opts.crossingsPerS,
        received: fromCommit.length,
        missing: crossers.length - fromCommit.length,
        duplicates: receiver.received.length - firstAt.size,
        rejectedSignatures: receiver.rejected.length,
        commitToReceivedMs: ms(fromCommit),
        debitStartToReceivedMs: ms(fromStart),
        debitTransactionMs: ms(txMs),
        stagesMs: { commitToOutboxPublished: ms(toPublished), publishedToDeliveryLeased: ms(publishedToLeased) },
      },
      notes: [
        'From applyDebitBatches returning (its transaction committed) to the receiver having the whole request; each delivery verified with orb-billing\'s webhooks.unwrap. One debit batch per crossing, applied by the bench process against the app\'s database; the app\'s outbox relay, fan-out and dispatcher deliver.',
      ],
    });
    progress(`webhooks at ${round((performance.now() - t0) / 1000, 1)} s: ${fromCommit.length}/${crossers.length}, p50 ${round(percentile(fromCommit, 50), 1)} ms, p99 ${round(percentile(fromCommit, 99), 1)} ms`);
    return out;
  } finally {
    await gen.stop();
    await app.stop();
    await receiver.close();
    await s.close();
    await env.cleanup();
  }
}
