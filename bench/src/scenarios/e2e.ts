// End to end, all-in-one, against the baseline under the same loads. For each load shape
// (uniform, Zipf s=1.1 over 10,000 customers) and system: steady 100-event requests (open loop)
// in steps; the rate search looks for the highest rate sustained: at least 95 % of the offered
// events acknowledged (90 % while the step ran), no errors and, for Drawdown, no growing
// backlog (edge-accepted minus rater-processed events) past the step's settling time and no
// pile of DEBITS; for the baseline, request p99 under 2 s (its balances are fresh at the answer,
// so its latency is its freshness). The search rises until a step fails (a real upper bound),
// then narrows between the best sustained step and the lowest failed one: the first step after a
// failure aims just under what the failed step showed the system can process (its capacity at
// saturation), later ones bisect. Then a run at half the highest sustained rate for request
// latency, with marker events (own customers, outside the load) timing ingest ack -> balance
// endpoint reflecting the event.
// The long mode runs the same loads until a total number of events went through each system and
// reports, per window, what the system processed while pushed at or over its capacity: Drawdown
// offered LONG_OVERLOAD times what its last window processed, the baseline in closed loop.
import { prepareBaseline } from '../baseline/server';
import { startLoadGen, startServer, type Server, type LoadGen } from '../procs';
import type { AppStats } from '../server';
import { stageFigures, type StageFigures } from '../app-metrics';
import type { LoadResult } from '../loadgen';
import { benchEnv, createCatalog, createCustomers, GRANT, openStores, UNIT_PRICE, type Stores } from '../setup';
import type { ScenarioResult } from './common';
import { cpuBetween, cpuByPid, groupSample, MB, percentile, pidsByComm, procSample, round, sleep, threadGroupCpuS, threadGroupsBetween, threadNamesBetween, calibrationMs } from '../util';
import { externalId, zipfTopShare, type Shape } from '../workload';
import { costLastVsFirst, costPerEventByTenth, cpuParts, windowDiagnostics, type WindowDiagnostics } from '../long-diagnostics';
import type { ChStats } from '../server';
import { pairedReading, pairSchedule, type PairWindow } from '../long-pairs';
import { checkPipeline } from '../check';
import { LONG_OVERLOAD, longRunTenths, longRunTrend, nextLongRate, nextSearchRate, roundRate, slopePerS } from '../search';

export interface E2eOpts {
  customers: number;
  stepSeconds: number;
  halfSeconds: number;
  /** First rate of the search (events/s); later shapes and the baseline start from what the search found before. */
  startRate: number;
  /** Rise per step until a step fails. */
  growth: number;
  /** Most search steps per system and shape. */
  maxSteps: number;
  /** The search stops when the lowest failed rate is within this factor of the highest sustained one. */
  precision: number;
  /** Stop a search at its first bracket (a sustained step below a failed one), however wide (quick mode). */
  stopAtBracket: boolean;
  connections: number;
  /** Longest wait for the backlog to drain. */
  drainSeconds: number;
  /** Drain Drawdown's backlog after every search step (clean start for each); otherwise only before the half-rate run. */
  drainBetweenSteps: boolean;
  /** Backlog growth allowed past the settling time, as a share of the offered rate per second. */
  growthLimit: number;
  /** Seconds at the start of a step excluded from the backlog-growth judgement (the pipeline fills up). */
  settleSeconds: number;
  /** How often the backlog is read during a step (ms). */
  sampleMs: number;
  /** Warm-up load of both systems at once before the first step (not measured). */
  warmupSeconds: number;
  /** Run a step at half the sustained rate for each system and shape (request latency, freshness); quick mode skips it. */
  halfRate: boolean;
  /** `pnpm bench --e2e-probe`: one step at a fixed rate, reported whole (`probe`) whether it was sustained or not. */
  probe?: boolean;
  /**
   * Issue 9's goal rate (events/s): the default mode runs one more Drawdown step per shape at
   * exactly this rate (halfSeconds long), reported whole as `atGoal` whether sustained or not,
   * so freshness is stated at the rate the goal names, not only at the search's best step.
   */
  goalRate?: number;
  shapes: Shape[];
  systems: ('drawdown' | 'baseline')[];
  /**
   * Long mode: events per system and window length; `pairs`: Drawdown's side-by-side reading
   * after its long run (long-pairs.ts), that many pairs of windows beside an empty instance (0: none).
   */
  long?: { events: number; windowSeconds: number; pairs: number };
}

const MARKERS = 4;
/**
 * Long mode: the first window is warm-up (JIT, pools): stored, not averaged. Drawdown's windows
 * are warm-up until the first one it did not keep up with, too (the rate climbing to capacity).
 */
const LONG_WARMUP_WINDOWS = 1;
/** Drained: what the markers keep in flight at most. */
const IDLE_BACKLOG = 50;
const IDLE_DEBITS = 4;
const progress = (msg: string) => process.stderr.write(`  e2e ${new Date().toISOString().slice(11, 19)} ${msg}\n`);

interface Timeline {
  t: number[];
  offered: number[];
  achieved: number[];
  backlog: number[];
  debitsPending: number[];
  label: string[];
}

class Markers {
  private running = false;
  private loop: Promise<void> | undefined;
  samples: { atMs: number; freshnessMs: number }[] = [];
  unresolved = 0;
  private n = 0;
  constructor(private readonly base: string, private readonly key: string, private readonly first: number) {}
  start(): void {
    this.running = true;
    this.loop = Promise.all(Array.from({ length: MARKERS }, (_, i) => this.probe(this.first + i, i * 250))).then(() => {});
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
  private async balance(ext: string): Promise<number> {
    const r = await fetch(`${this.base}/v1/customers/external_customer_id/${ext}/credits/balance`, { headers: { authorization: `Bearer ${this.key}` } });
    const j = (await r.json()) as { data: { balance: number }[] };
    return j.data[0]?.balance ?? NaN;
  }
  private async probe(customer: number, offsetMs: number): Promise<void> {
    const ext = externalId(customer);
    await sleep(offsetMs);
    while (this.running) {
      try {
        const before = await this.balance(ext);
        const res = await fetch(`${this.base}/v1/ingest`, {
          method: 'POST',
          headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ events: [{ idempotency_key: `marker-${process.pid}-${this.n++}`, external_customer_id: ext, event_name: 'api_call', timestamp: new Date().toISOString(), properties: {} }] }),
        });
        await res.text();
        const acked = Date.now();
        if (res.status !== 200) {
          await sleep(500);
          continue;
        }
        let seen = false;
        while (Date.now() - acked < 30_000) {
          if ((await this.balance(ext)) !== before) {
            this.samples.push({ atMs: acked, freshnessMs: Date.now() - acked });
            seen = true;
            break;
          }
          await sleep(50);
        }
        if (!seen) this.unresolved++;
        await sleep(1000);
      } catch {
        await sleep(500);
      }
    }
  }
  private within(a: number, b: number): { atMs: number; freshnessMs: number }[] {
    return this.samples.filter((s) => s.atMs >= a && s.atMs < b);
  }
  /** The markers acked in [a, b), in ack-time order. */
  timed(a: number, b: number): { atMs: number; freshnessMs: number }[] {
    return this.within(a, b).sort((x, y) => x.atMs - y.atMs);
  }
  /** The freshness of the markers acked in [a, b). */
  between(a: number, b: number): number[] {
    return this.within(a, b).map((s) => s.freshnessMs);
  }
}

interface StepResult {
  offeredEventsPerS: number;
  achievedEventsPerS: number;
  /** Events acknowledged while the step ran, per second. */
  inWindowEventsPerS: number;
  /** What the system processed past the settling time (Drawdown: rater-processed events/s; baseline: events acknowledged in the step): its capacity when the step was over it. */
  processedEventsPerS: number;
  /** Backlog change past the settling time, events per second (least squares). */
  backlogSlopePerS: number;
  ok: boolean;
  why: string;
  latencyMs: LoadResult['latencyMs'];
  backlogStart: number;
  backlogEnd: number;
  backlogMax: number;
  debitsPendingEnd: number;
  freshnessMs?: { p50: number; p99: number; samples: number };
  /** Drawdown: where an event's time goes over the step (from the all-in-one's histograms). */
  stages?: StageFigures;
  cpuShare: Record<string, number>;
  /** Drawdown: the all-in-one's CPU share per thread name (pools folded into one name; names under 1 % left out). */
  threadsCpuShare?: Record<string, number>;
  rssMB: Record<string, number>;
}

export async function run(opts: E2eOpts): Promise<ScenarioResult[]> {
  const env = benchEnv();
  const baselineUrl = new URL(env.config.databaseUrl);
  baselineUrl.pathname = `${baselineUrl.pathname}_baseline`;
  let app: Server | undefined;
  let s: Stores | undefined;
  let baseline: Server | undefined;
  let gen: LoadGen | undefined;
  // The long run's empty instance for the side-by-side reading (started after the long windows).
  let emptyInstance: { env: ReturnType<typeof benchEnv>; s?: Stores; app?: Server } | undefined;
  const out: ScenarioResult[] = [];
  const startedAt = Date.now();
  const tl: Timeline = { t: [], offered: [], achieved: [], backlog: [], debitsPending: [], label: [] };
  // What the load generator is driving now: the timeline charts Drawdown's backlog only while
  // Drawdown runs (the baseline has none: its events are stored within the request).
  // (`app`: the Drawdown instance whose backlog the timeline reads; the run's own unless a step says otherwise.)
  const current: { offered: number; acked: number; label: string; system: 'drawdown' | 'baseline'; app?: Server } = { offered: 0, acked: 0, label: 'set-up', system: 'drawdown' };
  let timeline: NodeJS.Timeout | undefined;
  try {
    // Set-up, the three parts at once: the all-in-one with its catalog and customers, the
    // baseline with its balances, the load generator.
    const setup0 = performance.now();
    const drawdownReady = (async () => {
      s = await openStores(env);
      app = await startServer({ kind: 'app', config: env.config });
      const { planId } = await createCatalog(s, { baseUrl: `http://127.0.0.1:${app.port}`, adminKey: app.adminKey });
      await createCustomers(s.pool, { count: opts.customers + MARKERS, planId });
    })();
    const baselineReady = (async () => {
      if (!opts.systems.includes('baseline')) return;
      await prepareBaseline(baselineUrl.toString(), { count: opts.customers + MARKERS, grant: GRANT, unitPrice: UNIT_PRICE, eventName: 'api_call', customerName: externalId });
      baseline = await startServer({ kind: 'baseline', config: env.config, baseline: { databaseUrl: baselineUrl.toString(), apiKey: 'baseline-key', poolMax: 16 } });
    })();
    const genReady = startLoadGen().then((g) => (gen = g));
    const settled = await Promise.allSettled([drawdownReady, baselineReady, genReady]);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    if (!app || !s || !gen) throw new Error('e2e set-up did not finish');
    const dd: Server = app;
    const baseUrl = `http://127.0.0.1:${dd.port}`;
    const setupS = (performance.now() - setup0) / 1000;
    progress(`set-up done in ${round(setupS, 1)} s`);
    const natsPids = pidsByComm('nats-server');

    // The long run's side-by-side reading starts a second, empty all-in-one (long-pairs.ts):
    // drains, steps and the timeline then take the instance they are given.
    const statsOf = (server: Server) => server.call<AppStats>('stats');
    // An instance's end-to-end check (src/check.ts), once it has drained: what its edge accepted
    // against what it rated, priced and debited.
    const endToEndCheck = async (server: Server) => {
      const v = await server.call<{ ratedRows: number; uniqueKeys: number; unpricedRows: number; debitedCredits: string }>('verify', { timeoutMs: 300_000 });
      const accepted = (await statsOf(server)).eventsAccepted;
      return checkPipeline({ eventsAcceptedByEdge: accepted, ratedRowsInClickHouse: v.ratedRows, uniqueRatedKeys: v.uniqueKeys, unpricedRows: v.unpricedRows, debitedCredits: v.debitedCredits }, UNIT_PRICE);
    };
    const drain = async (timeoutMs: number, server: Server = dd) => {
      const stats = () => statsOf(server);
      const until = Date.now() + timeoutMs;
      const t0 = Date.now();
      let said = t0;
      for (;;) {
        const st = await stats();
        if (st.eventsBacklog <= IDLE_BACKLOG && st.debitsPending <= IDLE_DEBITS) return st;
        if (Date.now() > until) {
          progress(`drain: gave up after ${round((Date.now() - t0) / 1000)} s: ${JSON.stringify(st)}`);
          return st;
        }
        if (Date.now() - said > 5000) {
          said = Date.now();
          progress(`draining: ${JSON.stringify(st)}`);
        }
        await sleep(100);
      }
    };

    // What every ingest load of the scenario sends: 100-event JSON requests over the customers.
    const ingestLoad = (server: Server, shape: Shape) => ({
      host: '127.0.0.1', port: server.port, path: '/v1/ingest', authorization: `Bearer ${server.adminKey}`,
      templates: { count: 200, eventsPerRequest: 100, customers: opts.customers, shape, format: 'json' as const, seed: shape === 'zipf' ? 21 : 22 },
    });

    /** `target`: a Drawdown instance other than the run's (`app`), and the one idling beside it (`idle`: its CPU is read too). */
    const step = async (system: 'drawdown' | 'baseline', shape: Shape, eventsPerS: number, seconds: number, label: string, markers?: Markers, target?: { app: Server; idle: Server }): Promise<StepResult> => {
      const server = target?.app ?? (system === 'drawdown' ? dd : baseline!);
      const stats = () => statsOf(server);
      const procs: Record<string, () => { cpuS: number; rssBytes: number } | undefined> = {
        [system === 'drawdown' ? 'allInOne' : 'baseline']: () => procSample(server.pid),
        loadgen: () => procSample(gen!.pid),
        benchOrchestrator: () => procSample(process.pid),
        natsServer: () => groupSample(natsPids),
        ...(target ? { idleAllInOne: () => procSample(target.idle.pid) } : {}),
      };
      const cpu0 = Object.fromEntries(Object.entries(procs).map(([k, f]) => [k, f()?.cpuS ?? 0]));
      // Postgres backends come and go: per-backend deltas (a backend that exits mid-step is missed).
      const pg0 = cpuByPid('postgres');
      const threads0 = system === 'drawdown' ? threadGroupCpuS(server.pid) : undefined;
      const rssMax: Record<string, number> = {};
      const samples: { t: number; backlog: number; processed: number }[] = [];
      const first = system === 'drawdown' ? await stats() : undefined;
      const t0 = Date.now();
      if (first) samples.push({ t: (first.atMs - t0) / 1000, backlog: first.eventsBacklog, processed: first.eventsProcessed });
      const rssTimer = setInterval(() => {
        for (const [k, f] of Object.entries(procs)) rssMax[k] = Math.max(rssMax[k] ?? 0, f()?.rssBytes ?? 0);
      }, 1000);
      let sampling = system === 'drawdown';
      // The sampler's wait between readings ends with the load (no idle wait after the step).
      let loadDone = () => {};
      const loadEnded = new Promise<void>((r) => (loadDone = r));
      const sampler = (async () => {
        while (sampling) {
          const st = await stats().catch(() => undefined);
          if (st) samples.push({ t: (st.atMs - t0) / 1000, backlog: st.eventsBacklog, processed: st.eventsProcessed });
          await Promise.race([sleep(opts.sampleMs), loadEnded]);
        }
      })();
      const rps = eventsPerS / 100;
      current.offered = eventsPerS;
      current.label = label;
      current.system = system;
      // (The baseline has no stats: the timeline keeps reading the run's Drawdown instance.)
      current.app = system === 'drawdown' ? server : dd;
      const result = await gen!.run(
        {
          ...ingestLoad(server, shape),
          connections: opts.connections, mode: 'open', rateRps: rps, durationMs: seconds * 1000, warmupMs: Math.min(500, seconds * 200), maxQueue: Math.max(50, Math.round(rps * 2)),
        },
        (sec) => {
          current.acked += sec.okEvents;
        },
      );
      current.offered = 0;
      current.label = `${system} idle`;
      current.app = dd;
      sampling = false;
      loadDone();
      clearInterval(rssTimer);
      await sampler;
      const wall = (Date.now() - t0) / 1000;
      const end = system === 'drawdown' ? await stats() : undefined;
      if (end) samples.push({ t: (end.atMs - t0) / 1000, backlog: end.eventsBacklog, processed: end.eventsProcessed });
      const cpuShare: Record<string, number> = Object.fromEntries(Object.entries(procs).map(([k, f]) => [k, Math.max(0, round(((f()?.cpuS ?? 0) - cpu0[k]!) / wall, 2))]));
      cpuShare.postgres = round(cpuBetween(pg0, cpuByPid('postgres')) / wall, 2);
      let threadsCpuShare: Record<string, number> | undefined;
      if (threads0) {
        // The all-in-one's share split by thread: its event loop, the embedded ClickHouse
        // engine's named threads, and the rest (pricing workers, GC helpers, libuv).
        const threads1 = threadGroupCpuS(server.pid);
        const byGroup = threadGroupsBetween(threads0, threads1);
        cpuShare.allInOneMainThread = round(byGroup.main / wall, 2);
        cpuShare.allInOneClickHouseThreads = round(byGroup.named / wall, 2);
        cpuShare.allInOneOtherThreads = round(byGroup.other / wall, 2);
        const byName = Object.entries(threadNamesBetween(threads0, threads1, 0.01 * wall)).sort((a, b) => b[1] - a[1]);
        threadsCpuShare = Object.fromEntries(byName.map(([k, v]) => [k, round(v / wall, 2)]));
      }
      rssMax.postgres = groupSample(pidsByComm('postgres')).rssBytes;
      const achieved = result.eventsPerS;
      // Past the settling time, up to the end of the load (later samples see the load stopped).
      const settle = Math.min(opts.settleSeconds, seconds / 2);
      // The reading right after the load (the loop above stopped with it) closes the window.
      const settled = samples.filter((x) => x.t >= settle && x.t <= seconds + 0.5);
      const slope = slopePerS(settled.map((x) => [x.t, x.backlog]));
      const w0 = settled[0];
      const w1 = settled[settled.length - 1];
      // Few samples (a starved process answers stats late): the whole step, from its first to its last reading.
      const [p0, p1] = w0 && w1 && w1.t - w0.t >= 0.5 ? [w0, w1] : [samples[0], samples[samples.length - 1]];
      const processed = system === 'baseline' ? result.inWindowEventsPerS : p0 && p1 && p1.t > p0.t ? Math.round((p1.processed - p0.processed) / (p1.t - p0.t)) : NaN;
      const errors = result.requests - result.okRequests + result.socketErrors; // non-2xx, socket errors and requests unanswered 5 s after the step
      // Judged against the requests the schedule made due (whole requests: 2.5 s at 3 requests/s is 7, not 7.5).
      const due = Math.max(1, result.scheduledRequests);
      // While the step ran: 90 % of them, less the two last ones (an answer may miss the end by a hair).
      let ok = result.okRequests >= 0.95 * due && result.inWindowOkRequests >= 0.9 * due - 2 && errors === 0 && result.dropped === 0;
      let why = ok ? 'sustained' : `${result.okRequests} of ${due} requests answered (${result.inWindowOkRequests} while the step ran; ${achieved} events/s of ${eventsPerS}), ${errors} errors, ${result.dropped} dropped${result.errorSample ? ` (${result.errorSample.slice(0, 160)})` : ''}`;
      if (ok && system === 'drawdown') {
        // A growing backlog past the settling time; or, for a step that started drained, a
        // backlog at its end that two seconds of load would not clear; or DEBITS piling up.
        const startedDrained = (first?.eventsBacklog ?? 0) <= Math.max(IDLE_BACKLOG, 0.5 * eventsPerS);
        const endBacklog = end?.eventsBacklog ?? 0;
        // (A starved process answers stats late: with fewer than two readings past the settling
        // time, the step's first and last readings judge it.)
        const growth = settled.length >= 2 ? slope : p0 && p1 && p1.t > p0.t ? (p1.backlog - p0.backlog) / (p1.t - p0.t) : 0;
        if (growth > Math.max(IDLE_BACKLOG, opts.growthLimit * eventsPerS) || (startedDrained && endBacklog > 2 * eventsPerS) || (end?.debitsPending ?? 0) > 500) {
          ok = false;
          why = `backlog: ${growth >= 0 ? '+' : ''}${Math.round(growth)} events/s past ${round(settle, 1)} s (limit ${Math.max(IDLE_BACKLOG, Math.round(opts.growthLimit * eventsPerS))}), ${first?.eventsBacklog ?? 0} -> ${endBacklog} events, DEBITS pending ${end?.debitsPending}`;
        }
      }
      if (ok && system === 'baseline' && result.latencyMs.p99 > 2000) {
        ok = false;
        why = `request p99 ${result.latencyMs.p99} ms over 2 s`;
      }
      const fresh = markers ? markers.between(t0, Date.now()) : [];
      const tEnd = Date.now();
      progress(`${label}: offered ${eventsPerS} achieved ${achieved} processed ${processed} slope ${Math.round(slope)}/s p99 ${result.latencyMs.p99} ms backlog ${first?.eventsBacklog ?? 0} -> ${end?.eventsBacklog ?? 0} -> ${why}`);
      const stepResult: StepResult = {
        offeredEventsPerS: eventsPerS, achievedEventsPerS: achieved, inWindowEventsPerS: result.inWindowEventsPerS, processedEventsPerS: processed,
        backlogSlopePerS: Math.round(slope), ok, why, latencyMs: result.latencyMs,
        backlogStart: first?.eventsBacklog ?? 0, backlogEnd: end?.eventsBacklog ?? 0, backlogMax: Math.max(0, ...samples.map((x) => x.backlog)),
        debitsPendingEnd: end?.debitsPending ?? 0,
        ...(markers ? { freshnessMs: { p50: round(percentile(fresh, 50)), p99: round(percentile(fresh, 99)), samples: fresh.length } } : {}),
        ...(first && end ? { stages: stageFigures(first, end) } : {}),
        cpuShare,
        ...(threadsCpuShare ? { threadsCpuShare } : {}),
        rssMB: Object.fromEntries(Object.entries(rssMax).map(([k, v]) => [k, round(v / MB)])),
      };
      if (markers) windows.push({ r: stepResult, t0, t1: tEnd });
      return stepResult;
    };
    // Markers acked in a step may resolve after it: freshness is filled in once they are done.
    const windows: { r: StepResult; t0: number; t1: number }[] = [];
    const stepTables: { figures: Record<string, unknown>; steps: StepResult[] }[] = [];

    const markers = new Markers(baseUrl, dd.adminKey, opts.customers);
    markers.start();
    // The timeline: one sample a second for the whole scenario (steps and drains alike).
    timeline = setInterval(() => {
      void statsOf(current.app ?? dd).then(
        (st) => {
          tl.t.push(round((Date.now() - startedAt) / 1000, 1));
          tl.offered.push(current.offered);
          tl.achieved.push(current.acked);
          current.acked = 0;
          tl.backlog.push(current.system === 'drawdown' ? st.eventsBacklog : NaN);
          tl.debitsPending.push(st.debitsPending);
          tl.label.push(current.label);
        },
        () => {},
      );
    }, 1000);
    /**
     * One long-run window of the baseline: closed loop on every connection for `seconds` (each
     * answer is its freshness, so what it answers is what it processes).
     */
    const baselineWindow = async (shape: Shape, seconds: number) => {
      const server = baseline!;
      current.label = `baseline ${shape} long`;
      current.system = 'baseline';
      const result = await gen!.run(
        {
          ...ingestLoad(server, shape),
          connections: opts.connections, mode: 'closed', durationMs: seconds * 1000, warmupMs: 0,
        },
        (sec) => {
          current.acked += sec.okEvents;
          current.offered = sec.okEvents;
        },
      );
      current.offered = 0;
      return { result, errors: result.requests - result.okRequests + result.socketErrors };
    };
    /**
     * Drawdown's long run, side by side: an empty all-in-one starts beside the aged one and the
     * two take turns (pairSchedule). Both windows of a pair are offered the same rate:
     * LONG_OVERLOAD times the most either window of the pair before processed (the first pair:
     * `startRate` or more), so both are pushed over their capacity by the same load; how far over
     * sways what a window processes (the rater's batches grow with its backlog), so the two must
     * not get different offers. Every window is drained after it, so neither instance has a
     * backlog to work off while the other is measured.
     */
    const sideBySide = async (shape: Shape, W: number, pairs: number, startRate: number, agedStored: number) => {
      progress(`side by side: starting an empty all-in-one beside the one that stored ${agedStored.toLocaleString('en')} events`);
      const empty: NonNullable<typeof emptyInstance> = (emptyInstance = { env: benchEnv() });
      const freshStores = (empty.s = await openStores(empty.env));
      const freshApp = (empty.app = await startServer({ kind: 'app', config: empty.env.config }));
      const { planId } = await createCatalog(freshStores, { baseUrl: `http://127.0.0.1:${freshApp.port}`, adminKey: freshApp.adminKey });
      await createCustomers(freshStores.pool, { count: opts.customers + MARKERS, planId });
      const apps = { aged: dd, fresh: freshApp };
      let rate = startRate;
      let pairBest = 0;
      let pair = 0;
      const stored = { aged: agedStored, fresh: 0 };
      const rows: (PairWindow & { storedEventsBefore: number; offered: number; keptUp: boolean; raterBatchMs: number | null; ledgerTxMs: number | null; rssMB: number | null; why: string })[] = [];
      for (const slot of pairSchedule(pairs)) {
        const app = apps[slot.side];
        const idle = apps[slot.side === 'aged' ? 'fresh' : 'aged'];
        if (slot.pair !== pair) {
          // A new pair: one offer for both of its windows.
          if (pairBest > 0) rate = Math.max(slot.pair === 1 ? rate : 0, nextLongRate({ processed: pairBest, acked: pairBest, reached: true }));
          pair = slot.pair;
          pairBest = 0;
        }
        const offered = rate;
        const r = await step('drawdown', shape, offered, W, `drawdown side-by-side ${shape} ${slot.side}`, undefined, { app, idle });
        const c = r.cpuShare;
        const ownCpu = (c.allInOne ?? 0) + (c.postgres ?? 0) + (c.natsServer ?? 0);
        // The window's readings as the long run's diagnostics read them (no engine stats), split as its CPU per event by tenth.
        const d = windowDiagnostics({ window: rows.length, storedEventsBefore: stored[slot.side], processedPerS: r.processedEventsPerS, cpuShare: c, threadsCpuShare: r.threadsCpuShare, stages: r.stages, rssMB: r.rssMB, drainS: 0 });
        const parts = Object.fromEntries(Object.entries(cpuParts(d)).map(([k, v]) => [k, round(v, 2)]));
        rows.push({ ...slot, storedEventsBefore: stored[slot.side], offered, processedPerS: r.processedEventsPerS, keptUp: r.ok, ownCpu: round(ownCpu, 2), otherCpu: c.idleAllInOne ?? 0, parts, raterBatchMs: d.raterBatchMs, ledgerTxMs: d.ledgerTxMs, rssMB: d.allInOneRssMB, why: r.why });
        stored[slot.side] += r.achievedEventsPerS * W;
        pairBest = Math.max(pairBest, Number.isFinite(r.processedEventsPerS) ? r.processedEventsPerS : 0.85 * r.achievedEventsPerS);
        // Every window starts with both instances drained: the idle one only merges meanwhile.
        await drain(opts.drainSeconds * 1000, app);
        progress(`side by side, pair ${slot.pair} ${slot.side}${slot.warmup ? ' (warm-up)' : ''}: ${stored[slot.side].toLocaleString('en')} stored after, offered ${offered}, processed ${r.processedEventsPerS}/s, the idle instance used ${r.cpuShare.idleAllInOne ?? 0} cores`);
      }
      await drain(opts.drainSeconds * 1000, freshApp);
      // The empty instance's own end-to-end check: every event it accepted rated once and priced.
      const freshCheck = await endToEndCheck(freshApp);
      const reading = pairedReading(rows);
      // Done with it: the baseline's half of a long run does not share the machine with it.
      await freshApp.stop();
      await freshStores.close();
      await empty.env.cleanup();
      emptyInstance = undefined;
      progress(`side by side: aged ${reading.agedPerS}/s, fresh ${reading.freshPerS}/s, aged / fresh ${reading.agedVsFresh} (pairs ${JSON.stringify(reading.perPair)}); CPU per event aged ${reading.agedUsPerEvent} µs, fresh ${reading.freshUsPerEvent} µs`);
      return {
        method: `after the long run an empty all-in-one starts beside the aged one; the two take turns in ${W} s windows (a warm-up window for the empty one, then ${pairs} pairs, odd pairs aged first, even pairs fresh first), both windows of a pair offered ${LONG_OVERLOAD} times the most either window of the pair before processed, each drained after it; the idle instance's CPU during the other's windows (merges) is charged to it in the CPU per event`,
        agedStoredEventsAtStart: agedStored,
        ...reading,
        freshCheck,
        windows: rows.map(({ ownCpu, otherCpu, parts, why, ...x }) => ({ ...x, ownCpu, ...parts, idleInstanceCpu: otherCpu, why })),
      };
    };
    if (opts.long) {
      for (const system of opts.systems) {
        for (const shape of opts.shapes) {
          const windows: { window: number; storedEventsBefore: number; seconds: number; offered: number | null; acked: number; processedPerS: number; keptUp: boolean; warmup: boolean; counted: boolean; why: string; requestP99Ms: number; freshnessP99Ms: number | null; backlogEnd: number; debitsPendingEnd: number }[] = [];
          let rate = roundRate(opts.startRate);
          let stored = 0;
          const W = opts.long.windowSeconds;
          // Drawdown's windows count from the first it did not keep up with: before it, the rate
          // is still climbing from the start rate towards the capacity.
          let reached = system === 'baseline';
          // Drawdown's windows' spans: their markers' freshness is read once the run has drained
          // (a marker acked near a window's end resolves after it).
          const spans = new Map<number, [number, number]>();
          // What each Drawdown window cost and where (long-diagnostics.ts).
          const diagnostics: WindowDiagnostics[] = [];
          const chStats = () => dd.call<ChStats>('chStats').catch((err: Error) => {
            progress(`chStats failed: ${err.message}`);
            return undefined;
          });
          for (let w = 1; stored < opts.long.events; w++) {
            let warmup = w <= LONG_WARMUP_WINDOWS;
            if (system === 'drawdown') {
              // Pushed at or over capacity by design: each window offers LONG_OVERLOAD times what
              // the last one processed. Its figure is what the rater processed past the settling
              // time, whether the all-in-one kept up (then near its capacity from below) or not
              // (its backlog grew or its edge, which shares the process, left requests unanswered:
              // then its throughput flat out). After a window it did not keep up with, the backlog
              // drains before the next.
              const ch0 = await chStats();
              const t0 = Date.now();
              const r = await step('drawdown', shape, rate, W, `drawdown ${shape} long`);
              spans.set(w, [t0, Date.now()]);
              const ch1 = await chStats();
              reached ||= !r.ok;
              warmup ||= !reached;
              const counted = !warmup && Number.isFinite(r.processedEventsPerS) && r.processedEventsPerS > 0;
              windows.push({ window: w, storedEventsBefore: stored, seconds: W, offered: rate, acked: r.achievedEventsPerS, processedPerS: r.processedEventsPerS, keptUp: r.ok, warmup, counted, why: r.why, requestP99Ms: r.latencyMs.p99, freshnessP99Ms: null, backlogEnd: r.backlogEnd, debitsPendingEnd: r.debitsPendingEnd });
              stored += r.achievedEventsPerS * W;
              rate = nextLongRate({ processed: r.processedEventsPerS, acked: r.achievedEventsPerS, reached });
              const d0 = Date.now();
              if (!r.ok) await drain(opts.drainSeconds * 1000);
              const drainS = (Date.now() - d0) / 1000;
              const d = windowDiagnostics({ window: w, storedEventsBefore: windows[windows.length - 1]!.storedEventsBefore, processedPerS: r.processedEventsPerS, cpuShare: r.cpuShare, threadsCpuShare: r.threadsCpuShare, stages: r.stages, rssMB: r.rssMB, ch0, ch1, drainS, calibrationMs: calibrationMs() });
              diagnostics.push(d);
              progress(`diagnostics: ${JSON.stringify(d)}`);
            } else {
              const { result, errors } = await baselineWindow(shape, W);
              const why = errors > 0 ? `${errors} errors${result.errorSample ? ` (${result.errorSample.slice(0, 160)})` : ''}` : 'closed loop';
              windows.push({ window: w, storedEventsBefore: stored, seconds: W, offered: null, acked: result.eventsPerS, processedPerS: result.eventsPerS, keptUp: errors === 0, warmup, counted: !warmup && errors === 0, why, requestP99Ms: result.latencyMs.p99, freshnessP99Ms: null, backlogEnd: 0, debitsPendingEnd: 0 });
              stored += result.okEvents;
            }
            const x = windows[windows.length - 1]!;
            progress(`${system} ${shape} long window ${w}: ${x.storedEventsBefore.toLocaleString('en')} stored before, offered ${x.offered ?? 'closed loop'}, processed ${x.processedPerS}/s, ${warmup ? 'warm-up' : x.counted ? 'counted' : 'not counted'} (${x.why})`);
          }
          if (system === 'drawdown') {
            await drain(opts.drainSeconds * 1000);
            await sleep(1000); // the markers' balance polls see the last debits
            for (const x of windows) {
              const span = spans.get(x.window);
              const fresh = span ? markers.between(span[0], span[1]) : [];
              x.freshnessP99Ms = fresh.length ? round(percentile(fresh, 99)) : null;
            }
          }
          let paired: Awaited<ReturnType<typeof sideBySide>> | { error: string } | undefined;
          if (system === 'drawdown' && opts.long.pairs > 0) {
            // The markers poll the aged instance only: paused, so neither side carries them.
            await markers.stop();
            // A failure here (the empty instance's set-up, say) is reported with the long run's
            // figures rather than losing them.
            paired = await sideBySide(shape, W, opts.long.pairs, rate, stored).catch((err: Error) => {
              progress(`side by side failed: ${err.stack ?? err.message}`);
              return { error: err.message };
            });
            markers.start();
          }
          // The capacity per tenth: the mean of what its windows processed (stored events before a
          // window place it); the last tenth's over the first's is the ageing figure.
          const tenths = longRunTenths(windows, opts.long.events);
          // Drawdown: where the CPU per event went in each tenth (and, in the figures, the last
          // tenth's over the first's): work that does not depend on stored data (edge, pricing)
          // growing means the machine slowed; the stores' growing alone means the data did.
          const costPerEvent = costPerEventByTenth(diagnostics.map((d, i) => ({ ...d, counted: windows[i]!.counted })), opts.long.events);
          const firstRate = tenths.find((t) => t.rate > 0)?.rate ?? 0;
          const lastRate = [...tenths].reverse().find((t) => t.rate > 0)?.rate ?? 0;
          // A run too short for its windows has no figure to give: say so rather than show zeros.
          const notCounted = windows.some((w) => w.counted) ? undefined : `no window counted: ${windows.length === 1 ? 'the only one was' : `all ${windows.length} were`} warm-up (${system === 'drawdown' ? 'the all-in-one kept up with every offer, so the run ended before a window pushed it past its capacity' : 'the first window is warm-up'}); raise --long-events (or shorten --window) so that several windows fall in each tenth`;
          if (notCounted) progress(`${system} ${shape} long: ${notCounted}`);
          out.push({
            name: `long_${system}_${shape}`,
            title: `Long run: ${system}, ${shape}, ${opts.long.events.toLocaleString('en')} events, ${W} s windows, ${system === 'drawdown' ? `each offered ${LONG_OVERLOAD} times what the last processed` : `closed loop on ${opts.connections} connections`}`,
            figures: {
              events: stored,
              method: system === 'drawdown' ? `each window offers ${LONG_OVERLOAD} times what the last one processed and counts with what the rater processed past the settling time (the all-in-one kept up or not); warm-up: the first window, and every window before the first one the all-in-one did not keep up with` : `closed loop on ${opts.connections} connections; each window counts with the events/s answered; the first window is warm-up`,
              windows,
              capacityPerTenth: tenths.map((t) => t.rate),
              countedWindowsPerTenth: tenths.map((t) => t.windows),
              firstTenthCapacity: firstRate,
              lastTenthCapacity: lastRate,
              lastVsFirst: firstRate ? round(lastRate / firstRate, 3) : null,
              // The same question read from every counted window at once (less swayed by one).
              trend: longRunTrend(windows),
              // The machine's own speed over the same windows (calibrationMs after each, as a
              // speed index: 100,000 / ms), read the same way: below 1, the machine slowed over the run.
              ...(system === 'drawdown'
                ? {
                  machineSpeedTrend: longRunTrend(diagnostics.map((d, i) => ({ storedEventsBefore: d.storedEventsBefore, processedPerS: d.calibrationMs ? 100_000 / d.calibrationMs : NaN, counted: windows[i]!.counted }))),
                  costPerEvent,
                  costLastVsFirst: costLastVsFirst(costPerEvent),
                  diagnostics,
                  ...(paired ? { sideBySide: paired } : {}),
                }
                : {}),
            },
            ...(notCounted ? { notes: [notCounted] } : {}),
          });
        }
      }
    } else {
      // Warm-up (JIT, connection pools, the catalog snapshot): both systems at once, not measured.
      const warmRate = Math.max(500, roundRate(opts.startRate / 4));
      await Promise.all(opts.systems.map((system) => step(system, opts.shapes[0]!, warmRate, opts.warmupSeconds, `${system} warm-up`)));
      await drain(opts.drainSeconds * 1000);
      const last = new Map<string, { lo?: StepResult; hi?: number }>();
      for (const shape of opts.shapes) {
        for (const system of opts.systems) {
          // Start where earlier searches point: this system's previous shape, else Drawdown's
          // result for this shape (the baseline), else the plan's start rate.
          const prev = last.get(system) ?? last.get('drawdown');
          const start = prev?.hi ?? (prev?.lo ? prev.lo.offeredEventsPerS * opts.growth : opts.startRate);
          const steps: StepResult[] = [];
          let lo: StepResult | undefined;
          let hi: number | undefined;
          let rate = roundRate(start);
          for (let i = 0; i < opts.maxSteps; i++) {
            const r = await step(system, shape, rate, opts.stepSeconds, `${system} ${shape} ${round(rate / 1000, 1)}K`, markers);
            steps.push(r);
            // A failed step leaves a backlog that would be charged to the next (lower) step: drain
            // it first, also in quick mode.
            if (system === 'drawdown' && (opts.drainBetweenSteps || !r.ok)) await drain(opts.drainSeconds * 1000);
            if (r.ok) lo = !lo || r.offeredEventsPerS > lo.offeredEventsPerS ? r : lo;
            else hi = Math.min(hi ?? Infinity, rate);
            const next = nextSearchRate({ rate, ok: r.ok, processed: r.processedEventsPerS, lo: lo?.offeredEventsPerS, hi }, opts);
            if (next === undefined) break;
            rate = next;
          }
          last.set(system, { lo, hi });
          const sustained = lo?.achievedEventsPerS ?? 0;
          if (system === 'drawdown') await drain(opts.drainSeconds * 1000);
          const half = sustained > 0 && opts.halfRate
            ? await step(system, shape, Math.max(100, roundRate(sustained / 2)), opts.halfSeconds, `${system} ${shape} half`, markers)
            : undefined;
          if (system === 'drawdown' && half) await drain(opts.drainSeconds * 1000);
          const atGoal = system === 'drawdown' && opts.goalRate ? await step(system, shape, opts.goalRate, opts.halfSeconds, `${system} ${shape} goal ${round(opts.goalRate / 1000, 1)}K`, markers) : undefined;
          if (atGoal) await drain(opts.drainSeconds * 1000);
          const capacities = steps.filter((x) => !x.ok && Number.isFinite(x.processedEventsPerS)).map((x) => x.processedEventsPerS);
          const figures: Record<string, unknown> = {};
          stepTables.push({ figures, steps });
          out.push({
            name: `e2e_${system}_${shape}`,
            title: `End to end, ${system === 'drawdown' ? 'Drawdown all-in-one' : 'baseline (Postgres only)'}, ${shape === 'zipf' ? 'Zipf s=1.1' : 'uniform'} over ${opts.customers.toLocaleString('en')} customers`,
            figures: Object.assign(figures, {
              sustainedEventsPerS: sustained,
              upperBoundEventsPerS: hi ?? null,
              processedWhenOverEventsPerS: capacities.length > 0 ? Math.max(...capacities) : null,
              searchCappedAtLastStep: hi === undefined,
              atSustained: lo ?? null,
              halfRate: half ?? null,
              ...(atGoal ? { atGoal } : {}),
              ...(opts.probe ? { probe: steps[0] ?? null } : {}),
              steps: [],
              ...(shape === 'zipf' ? { top10CustomersShare: round(zipfTopShare(opts.customers, 10), 3) } : {}),
            }),
          });
        }
      }
    }
    await markers.stop();
    clearInterval(timeline);
    for (const w of windows) {
      const f = markers.between(w.t0, w.t1);
      w.r.freshnessMs = { p50: round(percentile(f, 50)), p99: round(percentile(f, 99)), samples: f.length };
      // A probe also lists its markers in time order (seconds into the step: freshness), to show
      // whether the tail is spread or a few spikes.
      if (opts.probe) progress(`freshness by ack time: ${markers.timed(w.t0, w.t1).map((x) => `${round((x.atMs - w.t0) / 1000, 1)}s:${x.freshnessMs}`).join(' ')}`);
    }
    for (const t of stepTables) {
      t.figures.steps = t.steps.map((x) => ({ offered: x.offeredEventsPerS, achieved: x.achievedEventsPerS, processed: x.processedEventsPerS, backlogSlope: x.backlogSlopePerS, ok: x.ok, why: x.why, p99: x.latencyMs.p99, backlogMax: x.backlogMax, freshnessP50: x.freshnessMs?.p50, freshnessP99: x.freshnessMs?.p99, freshnessSamples: x.freshnessMs?.samples, ...(x.stages ? { raterBatchMs: x.stages.raterBatchMsAvg, raterEventsPerBatch: x.stages.raterEventsPerBatch, ledgerTxMs: x.stages.ledgerTxMsAvg, ledgerBatchesPerTx: x.stages.ledgerBatchesPerTx } : {}) }));
    }
    const check = await endToEndCheck(dd);
    out.push({
      name: opts.long ? 'long_check' : 'e2e_check',
      title: 'End-to-end check after the runs (all-in-one)',
      figures: {
        ...check,
        markerSamples: markers.samples.length,
        markersUnresolved: markers.unresolved,
        setupSeconds: round(setupS, 1),
      },
      series: { t: tl.t.map(String), offered: tl.offered, achieved: tl.achieved, backlog: tl.backlog, debitsPending: tl.debitsPending, label: tl.label },
    });
    return out;
  } finally {
    clearInterval(timeline);
    await Promise.all([gen?.stop(), baseline?.stop(), app?.stop(), emptyInstance?.app?.stop()]);
    await Promise.all([s?.close(), emptyInstance?.s?.close()]);
    const dropBaseline = async () => {
      const { Client } = (await import('pg')).default;
      const admin = new URL(env.config.databaseUrl);
      admin.pathname = '/postgres';
      const c = new Client({ connectionString: admin.toString() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${baselineUrl.pathname.slice(1)}" WITH (FORCE)`).finally(() => c.end());
    };
    await Promise.all([env.cleanup(), dropBaseline(), emptyInstance?.env.cleanup()]);
  }
}

