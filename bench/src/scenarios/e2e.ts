// End to end, all-in-one, against the baseline under the same loads. For each system and
// load shape (uniform, Zipf s=1.1 over 10,000 customers): steady 100-event requests at rising
// rates (open loop); a step is sustained when the achieved rate is within 5 % of the offered
// one with no errors and, for Drawdown, no growing backlog (edge-accepted minus rater-processed
// events, and DEBITS pending); for the baseline, with request p99 under 2 s (its balances are
// fresh at the answer, so its latency is its freshness). Then a run at half the highest
// sustained rate for request latency, with marker events (own customers, outside the load)
// timing ingest ack -> balance endpoint reflecting the event.
// The long mode runs the same loads until a total number of events went through each system,
// adapting the rate per window to what it sustains, and reports the rate per window.
import { prepareBaseline } from '../baseline/server';
import { startLoadGen, startServer, type Server, type LoadGen } from '../procs';
import type { AppStats } from '../server';
import type { LoadResult } from '../loadgen';
import { benchEnv, createCatalog, createCustomers, GRANT, openStores, UNIT_PRICE } from '../setup';
import type { ScenarioResult } from './common';
import { cpuBetween, cpuByPid, groupSample, MB, percentile, pidsByComm, procSample, round, sleep } from '../util';
import { externalId, zipfTopShare, type Shape } from '../workload';

export interface E2eOpts {
  customers: number;
  stepSeconds: number;
  halfSeconds: number;
  startRate: number;
  growth: number;
  maxSteps: number;
  connections: number;
  /** Longest wait for the backlog to drain between steps. */
  drainSeconds: number;
  shapes: Shape[];
  systems: ('drawdown' | 'baseline')[];
  /** Long mode: events per system and window length. */
  long?: { events: number; windowSeconds: number };
}

const MARKERS = 4;
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
  between(a: number, b: number): number[] {
    return this.samples.filter((s) => s.atMs >= a && s.atMs < b).map((s) => s.freshnessMs);
  }
}

interface StepResult {
  offeredEventsPerS: number;
  achievedEventsPerS: number;
  ok: boolean;
  why: string;
  latencyMs: LoadResult['latencyMs'];
  backlogStart: number;
  backlogEnd: number;
  backlogMax: number;
  debitsPendingEnd: number;
  freshnessMs?: { p50: number; p99: number; samples: number };
  cpuShare: Record<string, number>;
  rssMB: Record<string, number>;
}

export async function run(opts: E2eOpts): Promise<ScenarioResult[]> {
  const env = benchEnv();
  const s = await openStores(env);
  const app = await startServer({ kind: 'app', config: env.config });
  const baseUrl = `http://127.0.0.1:${app.port}`;
  const baselineUrl = new URL(env.config.databaseUrl);
  baselineUrl.pathname = `${baselineUrl.pathname}_baseline`;
  let baseline: Server | undefined;
  let gen: LoadGen | undefined;
  const out: ScenarioResult[] = [];
  const startedAt = Date.now();
  const tl: Timeline = { t: [], offered: [], achieved: [], backlog: [], debitsPending: [], label: [] };
  const current = { offered: 0, acked: 0, label: 'set-up' };
  let timeline: NodeJS.Timeout | undefined;
  try {
    const setup0 = performance.now();
    const { planId } = await createCatalog(s, { baseUrl, adminKey: app.adminKey });
    await createCustomers(s.pool, { count: opts.customers + MARKERS, planId });
    const setupS = (performance.now() - setup0) / 1000;
    progress(`set-up done in ${round(setupS, 1)} s`);
    if (opts.systems.includes('baseline')) {
      await prepareBaseline(baselineUrl.toString(), { count: opts.customers + MARKERS, grant: GRANT, unitPrice: UNIT_PRICE, eventName: 'api_call', customerName: externalId });
      baseline = await startServer({ kind: 'baseline', config: env.config, baseline: { databaseUrl: baselineUrl.toString(), apiKey: 'baseline-key', poolMax: 16 } });
    }
    gen = await startLoadGen();
    const natsPids = pidsByComm('nats-server');
    const stats = () => app.call<AppStats>('stats');

    const drain = async (timeoutMs: number) => {
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
        await sleep(250);
      }
    };

    const step = async (system: 'drawdown' | 'baseline', shape: Shape, eventsPerS: number, seconds: number, label: string, markers?: Markers): Promise<StepResult> => {
      const server = system === 'drawdown' ? app : baseline!;
      const procs: Record<string, () => { cpuS: number; rssBytes: number } | undefined> = {
        [system === 'drawdown' ? 'allInOne' : 'baseline']: () => procSample(server.pid),
        loadgen: () => procSample(gen!.pid),
        benchOrchestrator: () => procSample(process.pid),
        natsServer: () => groupSample(natsPids),
      };
      const cpu0 = Object.fromEntries(Object.entries(procs).map(([k, f]) => [k, f()?.cpuS ?? 0]));
      // Postgres backends come and go: per-backend deltas (a backend that exits mid-step is missed).
      const pg0 = cpuByPid('postgres');
      const rssMax: Record<string, number> = {};
      const backlogs: number[] = [];
      const first = system === 'drawdown' ? await stats() : undefined;
      const t0 = Date.now();
      const sampler = setInterval(() => {
        for (const [k, f] of Object.entries(procs)) rssMax[k] = Math.max(rssMax[k] ?? 0, f()?.rssBytes ?? 0);
        if (system === 'drawdown') void stats().then((st) => backlogs.push(st.eventsBacklog), () => {});
      }, 1000);
      const rps = eventsPerS / 100;
      current.offered = eventsPerS;
      current.label = label;
      const result = await gen!.run(
        {
          host: '127.0.0.1', port: server.port, path: '/v1/ingest', authorization: `Bearer ${server.adminKey}`,
          templates: { count: 200, eventsPerRequest: 100, customers: opts.customers, shape, format: 'json', seed: shape === 'zipf' ? 21 : 22 },
          connections: opts.connections, mode: 'open', rateRps: rps, durationMs: seconds * 1000, warmupMs: 500, maxQueue: Math.max(50, Math.round(rps * 2)),
        },
        (sec) => {
          current.acked += sec.okEvents;
        },
      );
      current.offered = 0;
      current.label = `${system} idle`;
      clearInterval(sampler);
      const wall = (Date.now() - t0) / 1000;
      const end = system === 'drawdown' ? await stats() : undefined;
      const cpuShare: Record<string, number> = Object.fromEntries(Object.entries(procs).map(([k, f]) => [k, Math.max(0, round(((f()?.cpuS ?? 0) - cpu0[k]!) / wall, 2))]));
      cpuShare.postgres = round(cpuBetween(pg0, cpuByPid('postgres')) / wall, 2);
      rssMax.postgres = groupSample(pidsByComm('postgres')).rssBytes;
      const achieved = result.eventsPerS;
      const errors = result.requests - result.okRequests + result.socketErrors; // non-2xx, socket errors and requests unanswered 5 s after the step
      let ok = achieved >= 0.95 * eventsPerS && errors === 0 && result.dropped === 0;
      let why = ok ? 'sustained' : `achieved ${achieved} of ${eventsPerS} events/s, ${errors} errors, ${result.dropped} dropped${result.errorSample ? ` (${result.errorSample.slice(0, 160)})` : ''}`;
      if (ok && system === 'drawdown') {
        // Growing backlog: the last third's mean above the first third's by more than 5 % of a second of load, or above 2 s of load.
        // Growth is judged only on steps long enough to be past the ramp from an empty pipeline
        // (6+ samples); every step must end with no more backlog than 2 s of load clears.
        const third = Math.max(1, Math.floor(backlogs.length / 3));
        const head = backlogs.slice(0, third).reduce((a, b) => a + b, 0) / third;
        const tail = backlogs.slice(-third).reduce((a, b) => a + b, 0) / third;
        const growthPerS = backlogs.length >= 6 ? (tail - head) / Math.max(1, (seconds * 2) / 3) : 0;
        const endBacklog = end?.eventsBacklog ?? tail;
        if (growthPerS > 0.05 * eventsPerS || endBacklog > 2 * eventsPerS || (end?.debitsPending ?? 0) > 500) {
          ok = false;
          why = `backlog: ${Math.round(head)} -> ${Math.round(tail)} events (end ${endBacklog}, limit 2 s of load), DEBITS pending ${end?.debitsPending}`;
        }
      }
      if (ok && system === 'baseline' && result.latencyMs.p99 > 2000) {
        ok = false;
        why = `request p99 ${result.latencyMs.p99} ms over 2 s`;
      }
      const fresh = markers ? markers.between(t0, Date.now()) : [];
      const tEnd = Date.now();
      progress(`${label}: offered ${eventsPerS} achieved ${achieved} p99 ${result.latencyMs.p99} ms backlog max ${Math.max(0, ...backlogs)} -> ${why}`);
      const stepResult: StepResult = {
        offeredEventsPerS: eventsPerS, achievedEventsPerS: achieved, ok, why, latencyMs: result.latencyMs,
        backlogStart: first?.eventsBacklog ?? 0, backlogEnd: end?.eventsBacklog ?? 0, backlogMax: Math.max(0, ...backlogs),
        debitsPendingEnd: end?.debitsPending ?? 0,
        ...(markers ? { freshnessMs: { p50: round(percentile(fresh, 50)), p99: round(percentile(fresh, 99)), samples: fresh.length } } : {}),
        cpuShare,
        rssMB: Object.fromEntries(Object.entries(rssMax).map(([k, v]) => [k, round(v / MB)])),
      };
      if (markers) windows.push({ r: stepResult, t0, t1: tEnd });
      return stepResult;
    };
    // Markers acked in a step may resolve after it: freshness is filled in once they are done.
    const windows: { r: StepResult; t0: number; t1: number }[] = [];
    const stepTables: { figures: Record<string, unknown>; steps: StepResult[] }[] = [];

    const markers = new Markers(baseUrl, app.adminKey, opts.customers);
    markers.start();
    // The timeline: one sample a second for the whole scenario (steps and drains alike).
    timeline = setInterval(() => {
      void stats().then(
        (st) => {
          tl.t.push(round((Date.now() - startedAt) / 1000, 1));
          tl.offered.push(current.offered);
          tl.achieved.push(current.acked);
          current.acked = 0;
          tl.backlog.push(st.eventsBacklog);
          tl.debitsPending.push(st.debitsPending);
          tl.label.push(current.label);
        },
        () => {},
      );
    }, 1000);
    if (opts.long) {
      for (const system of opts.systems) {
        for (const shape of opts.shapes) {
          const windows: { window: number; storedEventsBefore: number; offered: number; achieved: number; ok: boolean; backlogEnd: number }[] = [];
          let rate = opts.startRate;
          let stored = 0;
          for (let w = 1; stored < opts.long.events; w++) {
            const r = await step(system, shape, rate, opts.long.windowSeconds, `${system} ${shape} long`);
            windows.push({ window: w, storedEventsBefore: stored, offered: rate, achieved: r.achievedEventsPerS, ok: r.ok, backlogEnd: r.backlogEnd });
            stored += r.achievedEventsPerS * opts.long.windowSeconds;
            // Track what the system sustains: back off on a failed window, probe upward after a good one.
            rate = Math.max(1000, Math.round(r.ok ? rate * 1.05 : Math.min(rate, r.achievedEventsPerS) * 0.85));
            if (system === 'drawdown' && !r.ok) await drain(opts.drainSeconds * 1000);
          }
          const good = windows.filter((x) => x.ok);
          const firstRate = good[0]?.achieved ?? 0;
          const lastRate = good[good.length - 1]?.achieved ?? 0;
          out.push({
            name: `long_${system}_${shape}`,
            title: `Long run: ${system}, ${shape}, ${opts.long.events.toLocaleString('en')} events, ${opts.long.windowSeconds} s windows`,
            figures: { events: stored, windows, firstSustainedRate: firstRate, lastSustainedRate: lastRate, lastVsFirst: firstRate ? round(lastRate / firstRate, 3) : null },
          });
        }
      }
    } else {
      const warmed = new Set<string>();
      for (const shape of opts.shapes) {
        for (const system of opts.systems) {
          if (!warmed.has(system)) {
            // JIT, connection pools and the catalog snapshot warm up outside the measured steps.
            warmed.add(system);
            await step(system, shape, Math.round(opts.startRate / 2), 2, `${system} ${shape} warm-up`);
            if (system === 'drawdown') await drain(opts.drainSeconds * 1000);
          }
          const steps: StepResult[] = [];
          let rate = opts.startRate;
          let best: StepResult | undefined;
          for (let i = 0; i < opts.maxSteps; i++) {
            const r = await step(system, shape, rate, opts.stepSeconds, `${system} ${shape} ${Math.round(rate / 1000)}K`, markers);
            steps.push(r);
            if (system === 'drawdown') await drain(opts.drainSeconds * 1000);
            if (!r.ok) break;
            best = r;
            rate = Math.round(rate * opts.growth);
          }
          const sustained = best?.achievedEventsPerS ?? 0;
          const half = sustained > 0 ? await step(system, shape, Math.max(100, Math.round(sustained / 2 / 100) * 100), opts.halfSeconds, `${system} ${shape} half`, markers) : undefined;
          if (system === 'drawdown') await drain(opts.drainSeconds * 1000);
          const figures: Record<string, unknown> = {};
          stepTables.push({ figures, steps });
          out.push({
            name: `e2e_${system}_${shape}`,
            title: `End to end, ${system === 'drawdown' ? 'Drawdown all-in-one' : 'baseline (Postgres only)'}, ${shape === 'zipf' ? 'Zipf s=1.1' : 'uniform'} over ${opts.customers.toLocaleString('en')} customers`,
            figures: Object.assign(figures, {
              sustainedEventsPerS: sustained,
              searchCappedAtLastStep: steps.length === opts.maxSteps && steps[steps.length - 1]!.ok,
              atSustained: best ?? null,
              halfRate: half ?? null,
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
    }
    for (const t of stepTables) {
      t.figures.steps = t.steps.map((x) => ({ offered: x.offeredEventsPerS, achieved: x.achievedEventsPerS, ok: x.ok, why: x.why, p99: x.latencyMs.p99, backlogMax: x.backlogMax, freshnessP50: x.freshnessMs?.p50, freshnessP99: x.freshnessMs?.p99, freshnessSamples: x.freshnessMs?.samples }));
    }
    const verify = await app.call<{ ratedRows: number; uniqueKeys: number; unpricedRows: number; debitedCredits: string }>('verify', { timeoutMs: 300_000 });
    const accepted = (await stats()).eventsAccepted;
    out.push({
      name: opts.long ? 'long_check' : 'e2e_check',
      title: 'End-to-end check after the runs (all-in-one)',
      figures: {
        eventsAcceptedByEdge: accepted,
        ratedRowsInClickHouse: verify.ratedRows,
        uniqueRatedKeys: verify.uniqueKeys,
        unpricedRows: verify.unpricedRows,
        debitedCredits: verify.debitedCredits,
        expectedDebitedCredits: round(verify.ratedRows * Number(UNIT_PRICE), 3),
        markerSamples: markers.samples.length,
        markersUnresolved: markers.unresolved,
        setupSeconds: round(setupS, 1),
      },
      series: { t: tl.t.map(String), offered: tl.offered, achieved: tl.achieved, backlog: tl.backlog, debitsPending: tl.debitsPending, label: tl.label },
    });
    return out;
  } finally {
    clearInterval(timeline);
    await gen?.stop();
    await baseline?.stop();
    await app.stop();
    await s.close();
    await env.cleanup();
    const { Client } = (await import('pg')).default;
    const admin = new URL(env.config.databaseUrl);
    admin.pathname = '/postgres';
    const c = new Client({ connectionString: admin.toString() });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${baselineUrl.pathname.slice(1)}" WITH (FORCE)`);
    await c.end();
  }
}
