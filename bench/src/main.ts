// `pnpm bench [--quick | --long] [--only=a,b]`: runs the benchmark scenarios one after
// another (each in its own process) and writes bench/results.json, bench/RESULTS.md and the
// plots (bench/e2e.png, bench/long.png). See bench/README.md.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig, SETTINGS } from '@drawdown/config';
import { BUNDLE_DIR_ENV, runScenario, startScenario, type Child } from './procs';
import { bundleChildren, childEntries } from './bundle';
import { createTemplate, settingsFromEnv, TEMPLATE_ENV } from './setup';
import { lineChart } from './plot';
import { machineCpu, machineFacts, round, treeCpuS } from './util';
import { LONG_OVERLOAD } from './search';
import { checksOf, checkSummary, failedChecks } from './check';
import type { ScenarioResult } from './scenarios/common';
import type { E2eOpts } from './scenarios/e2e';
import type { AlertsOpts } from './scenarios/alerts';

type Mode = 'quick' | 'full' | 'long';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const unknown = argv.filter((a) => !/^--(quick|long|only=.+|long-events=\d+|long-rate=\d+|long-pairs=\d+|long-systems=(drawdown|baseline)(,(drawdown|baseline))?|window=\d+|out=.+|e2e-probe=.+)$/.test(a));
const USAGE = 'usage: pnpm bench [--quick | --long [--long-events=N] [--long-rate=N] [--long-pairs=N] [--long-systems=drawdown|baseline] [--window=SECONDS]] [--only=ceilings,ingest,rater,ledger,alerts,e2e] [--out=DIR]\n       pnpm bench --e2e-probe=RATE[,uniform|zipf[,SECONDS]] --out=DIR\n';
if (unknown.length > 0) {
  process.stderr.write(`unknown argument(s): ${unknown.join(' ')}\n${USAGE}`);
  process.exit(2);
}
const mode: Mode = flag('long') ? 'long' : flag('quick') ? 'quick' : 'full';
/**
 * --e2e-probe=RATE[,SHAPE[,SECONDS]]: one end-to-end step of Drawdown alone at a fixed rate
 * (default uniform, 30 s) after the usual warm-up, with freshness, stage figures and CPU per
 * process: where an event's time and the cores go at a chosen rate, without the search. Only
 * with --out (it must not overwrite the committed results) and not with --quick or --long.
 */
const probe = parseProbe(value('e2e-probe'));
const only = probe ? ['e2e'] : value('only')?.split(',');
const outDir = new URL(value('out') ? `file://${value('out')!.replace(/\/?$/, '/')}` : '../', import.meta.url);

// BENCH_BUNDLE=0: child processes load the TypeScript sources through tsx instead of the run's
// bundles (bundle.ts), e.g. for source-mapped stack traces; slower to start.
const bundling = process.env.BENCH_BUNDLE ?? '1';
if (bundling !== '0' && bundling !== '1') {
  process.stderr.write(`BENCH_BUNDLE must be 0 or 1, not ${JSON.stringify(bundling)}\n`);
  process.exit(2);
}
const runStart = performance.now();
/** A progress line with the UTC time and the seconds since the run started. */
const say = (msg: string) => process.stdout.write(`bench ${new Date().toISOString().slice(11, 19)} +${round((performance.now() - runStart) / 1000, 1)} s: ${msg}\n`);

const Q = mode === 'quick';
const PLAN = {
  ceilings: { seconds: Q ? 0.5 : 5, customers: 10_000 },
  // Quick: no half-peak latency run (request latency is reported at the peak).
  ingest: { seconds: Q ? 0.5 : 8, connections: 32, customers: 10_000, halfLoad: !Q },
  rater: { events: Q ? 100_000 : 1_000_000, customers: 10_000, dedupSample: Q ? 100_000 : 1_000_000, maxSeconds: Q ? 20 : 180 },
  // Quick: 10,000 customers only (seeding 100,000 takes longer than the rest of the scenario).
  ledger: { seconds: Q ? 1 : 5, customerCounts: Q ? [10_000] : [10_000, 100_000], batchesPerTx: 8, backlogMaxCustomers: Q ? 10_000 : 1_000_000, sustainRate: 50_000, sustainSeconds: Q ? 0 : 60 },
  alerts: { customers: Q ? 500 : 10_000, seconds: Q ? 1 : 5, connections: 16, crossings: Q ? 20 : 400, crossingsPerS: 20, waitSeconds: Q ? 5 : 30 } satisfies AlertsOpts,
  // Quick: short search steps, the first one aimed above the capacity (see adaptStartRate),
  // stopping at the first bracket (a sustained step below a failed one; a third step only when
  // the first two did not make one), no drain after a sustained step (a standing backlog only
  // makes a step's growth easier to see), growth judged on 250 ms samples past 0.6 s; no
  // half-rate runs (request latency is reported at the sustained step), a 1 s warm-up.
  e2e: {
    customers: 10_000, stepSeconds: Q ? 1.25 : 15, halfSeconds: Q ? 1.25 : 15, startRate: 2_000, growth: Q ? 1.5 : 1.4, maxSteps: Q ? 3 : 10, precision: Q ? 2 : 1.1, stopAtBracket: Q,
    connections: 64, drainSeconds: Q ? 15 : 120, drainBetweenSteps: !Q, growthLimit: Q ? 0.1 : 0.05, settleSeconds: Q ? 0.6 : 3, sampleMs: Q ? 250 : 1000,
    warmupSeconds: Q ? 1 : 5, halfRate: !Q, shapes: ['uniform', 'zipf'], systems: ['drawdown', 'baseline'],
    // Default mode: one more step per shape at issue 9's goal rate (freshness at exactly it).
    ...(Q ? {} : { goalRate: 100_000 }),
  } satisfies E2eOpts,
  long: {
    customers: 10_000, stepSeconds: 0, halfSeconds: 0, startRate: Number(value('long-rate') ?? 100_000), growth: 1, maxSteps: 0, precision: 1.1, stopAtBracket: false, connections: 64, drainSeconds: 60,
    drainBetweenSteps: false, growthLimit: 0.05, settleSeconds: 5, sampleMs: 1000, warmupSeconds: 0, halfRate: false,
    shapes: ['uniform'], systems: [...new Set((value('long-systems') ?? 'drawdown,baseline').split(','))] as ('drawdown' | 'baseline')[],
    // pairs: Drawdown's side-by-side reading after its long run (src/long-pairs.ts; 0: none).
    long: { events: Number(value('long-events') ?? 50_000_000), windowSeconds: Number(value('window') ?? 20), pairs: Number(value('long-pairs') ?? 10) },
  } satisfies E2eOpts,
};

/** A long run of one system only (each takes an hour or more here) writes files of its own: results-long-<system>.json, RESULTS-long-<system>.md, long-<system>.png. */
if (probe) Object.assign(PLAN.e2e, { probe: true, goalRate: undefined, startRate: probe.rate, maxSteps: 1, stepSeconds: probe.seconds, halfRate: false, shapes: [probe.shape], systems: ['drawdown'] });

const LONG_SYSTEMS = PLAN.long.systems.length === 1 ? ` --long-systems=${PLAN.long.systems[0]}` : '';
/** The mode's arguments as a command repeats them (every scenario's command and the run's). */
const MODE_ARGS = probe ? ` --e2e-probe=${probe.rate},${probe.shape},${probe.seconds}` : mode === 'quick' ? ' --quick' : mode === 'long' ? ` --long --long-events=${PLAN.long.long.events} --long-rate=${PLAN.long.startRate}${PLAN.long.systems.includes('drawdown') ? ` --long-pairs=${PLAN.long.long.pairs}` : ''}${LONG_SYSTEMS} --window=${PLAN.long.long.windowSeconds}` : '';
const LONG_SUFFIX = PLAN.long.systems.length === 1 ? `-long-${PLAN.long.systems[0]}` : '-long';

const ORDER: (keyof typeof PLAN)[] = mode === 'long' ? ['long'] : ['ceilings', 'ingest', 'rater', 'ledger', 'alerts', 'e2e'];

function commandFor(name: string): string {
  return probe ? `pnpm bench${MODE_ARGS} --out=DIR` : `pnpm bench${MODE_ARGS} --only=${name}`;
}

async function main(): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  const started = new Date();
  const cpu0 = machineCpu();
  // The settings every scenario runs with (see benchEnv), for results.json.
  const config = loadConfig({ DATABASE_URL: process.env.DATABASE_URL, NATS_URL: process.env.NATS_URL, ...settingsFromEnv() });
  const c = new pg.Client({ connectionString: config.databaseUrl.replace(/\/[^/]*$/, '/postgres') });
  await c.connect();
  const pgVersion = (await c.query<{ v: string }>('SELECT current_setting($1) AS v', ['server_version'])).rows[0]!.v;
  await c.end();
  let chdbVersion = 'unknown';
  try {
    chdbVersion = (JSON.parse(readFileSync(fileURLToPath(new URL('../../packages/clickhouse/node_modules/chdb/package.json', import.meta.url)), 'utf8')) as { version: string }).version;
  } catch {
    // reported as unknown
  }
  const facts = machineFacts(pgVersion, chdbVersion);
  // The ledger's schema, migrated once: every scenario's database starts as a copy of it. The
  // first scenario's process starts meanwhile (it inherits the template's name).
  const t0 = performance.now();
  const templateName = `bench_template_${process.pid}_${Date.now().toString(36)}`;
  process.env[TEMPLATE_ENV] = templateName;
  const template = createTemplate(config.databaseUrl, templateName).then((t) => {
    say(`migrated template database ready in ${round((performance.now() - t0) / 1000, 1)} s`);
    return t;
  });
  template.catch(() => {}); // a failure is reported by the first scenario, which awaits it
  const results: Results = [];
  let bundles: { dir: string; remove(): void } | undefined;
  try {
    // The child processes' bundles, while the template is made.
    if (bundling === '1') {
      const scenarios = [...new Set(ORDER.filter((name) => !only || only.includes(name)).map((name) => (name === 'long' ? 'e2e' : name)))];
      bundles = await bundleChildren(childEntries(scenarios));
      process.env[BUNDLE_DIR_ENV] = bundles.dir;
      say(`bundled the child processes in ${round((performance.now() - t0) / 1000, 1)} s`);
    }
    await runAll(results, template);
  } finally {
    delete process.env[TEMPLATE_ENV];
    delete process.env[BUNDLE_DIR_ENV];
    bundles?.remove();
    await (await template.catch(() => undefined))?.drop();
  }
  await writeResults(started, cpu0, config, facts, results);
}

async function runAll(results: Results, ready: Promise<unknown>): Promise<void> {
  const names = ORDER.filter((name) => !only || only.includes(name));
  // Every scenario's process starts now and loads its modules (about 0.3 s of CPU each from
  // the bundles, 1 s through tsx), both cores busy, while the template is finished if it is
  // not yet; then each waits, idle, for its turn.
  const started = new Map<string, Promise<Child>>(names.map((name) => [name, startScenario(name === 'long' ? 'e2e' : name)]));
  for (const p of started.values()) p.catch(() => {}); // reported by runScenario
  // Every scenario's process has loaded before the first measurement (nothing runs beside one).
  await Promise.allSettled(started.values());
  say(`scenario processes loaded`);
  for (const name of names) {
    const t0 = performance.now();
    const cpu0 = treeCpuS();
    say(`${name} ...`);
    try {
      if (name === 'e2e' || name === 'long') adaptStartRate(PLAN[name], results);
      const r = await runScenario<ScenarioResult[]>(started.get(name)!, PLAN[name], ready);
      const cpuSeconds = round(treeCpuS() - cpu0, 1);
      results.push({ scenario: name, command: commandFor(name), seconds: round((performance.now() - t0) / 1000, 1), cpuSeconds, results: r });
      for (const x of r) process.stdout.write(`  ${x.name}: ${headline(x)}\n`);
      say(`${name} done in ${round((performance.now() - t0) / 1000, 1)} s, ${cpuSeconds} s of CPU in the bench's processes`);
    } catch (err) {
      results.push({ scenario: name, command: commandFor(name), seconds: round((performance.now() - t0) / 1000, 1), cpuSeconds: round(treeCpuS() - cpu0, 1), error: (err as Error).message.slice(0, 2000) });
      process.stdout.write(`  ${name} FAILED: ${(err as Error).message.split('\n')[0]}\n`);
    }
  }
}

/**
 * Per scenario: wall seconds, and CPU seconds of the bench's processes (this one and every
 * child it and its children waited for: the scenario's process with its services and load
 * generators, loading included; not Postgres or nats-server).
 */
type Results = { scenario: string; command: string; seconds: number; cpuSeconds?: number; results?: ScenarioResult[]; error?: string }[];

async function writeResults(started: Date, cpu0: { busy: number; total: number }, config: ReturnType<typeof loadConfig>, facts: ReturnType<typeof machineFacts>, results: Results): Promise<void> {
  const cpu1 = machineCpu();
  const machineBusy = round((cpu1.busy - cpu0.busy) / Math.max(1, cpu1.total - cpu0.total), 2);
  const settings = Object.fromEntries(Object.entries(SETTINGS).filter(([k]) => !/url|key/i.test(k)).map(([k, s]) => [s.env, (config as Record<string, unknown>)[k]]));
  const doc = {
    generatedBy: 'pnpm bench (bench/src/main.ts)',
    mode,
    command: probe ? commandFor('e2e') : `pnpm bench${MODE_ARGS}${only ? ` --only=${only.join(',')}` : ''}`,
    startedAt: started.toISOString(),
    wallSeconds: round((Date.now() - started.getTime()) / 1000, 1),
    machine: { ...facts, machineCpuBusyShareDuringRun: machineBusy, loadAverageAtEnd: (await import('node:os')).loadavg().map((x) => round(x, 2)) },
    settings,
    plan: PLAN[mode === 'long' ? 'long' : 'e2e'] && Object.fromEntries(ORDER.map((n) => [n, PLAN[n]])),
    scenarios: results,
  };
  const suffix = mode === 'long' ? LONG_SUFFIX : '';
  writeFileSync(new URL(`results${suffix}.json`, outDir), JSON.stringify(doc, null, 2) + '\n');
  writeFileSync(new URL(`RESULTS${suffix}.md`, outDir), renderMarkdown(doc));
  for (const r of results.flatMap((x) => x.results ?? [])) {
    if (!r.series?.t) continue;
    const x = (r.series.t as string[]).map(Number);
    const png = lineChart({
      title: mode === 'long' ? 'LONG RUN: EVENTS/S AND BACKLOG' : 'END TO END: EVENTS/S AND BACKLOG',
      x,
      series: [
        { name: 'offered ev/s', values: r.series.offered as number[], color: [160, 160, 160], axis: 'left' },
        { name: 'acked ev/s', values: r.series.achieved as number[], color: [31, 119, 180], axis: 'left' },
        { name: 'backlog events', values: r.series.backlog as number[], color: [214, 39, 40], axis: 'right' },
      ],
      leftLabel: 'events/s (1 s buckets)',
      rightLabel: 'rater backlog (events)',
      marks: phaseMarks(x, r.series.label as string[]),
    });
    writeFileSync(new URL(mode === 'long' ? `${LONG_SUFFIX.slice(1)}.png` : 'e2e.png', outDir), png);
  }
  process.stdout.write(`bench: wrote results${suffix}.json and RESULTS${suffix}.md in ${fileURLToPath(outDir)} (${doc.wallSeconds} s)\n`);
  // An event lost, double-counted, unpriced or mis-debited fails the command (the results are written).
  const failed = failedChecks(results.flatMap((x) => x.results ?? []));
  if (failed.length > 0) throw new Error(`end-to-end check failed:\n  ${failed.join('\n  ')}`);
}

/**
 * Starts the rate search near what the stages measured alone in this run (the slowest of the
 * edge, the rater and the ledger): quick mode at that rate, which the all-in-one (every stage
 * on the same cores) should not sustain, so its first step is a real upper bound and shows what
 * the pipeline processes when over its capacity; the default mode at a quarter of it, rising.
 */
function adaptStartRate(plan: E2eOpts, done: { results?: ScenarioResult[] }[]): void {
  const f = new Map(done.flatMap((d) => d.results ?? []).map((r) => [r.name, r.figures as Record<string, number>]));
  const stage = [f.get('ingest_json')?.peakEventsPerS, f.get('rater')?.eventsPerS, f.get('ledger_10000')?.eventsCoveredPerS].filter((x): x is number => typeof x === 'number' && x > 0);
  if (stage.length === 0 || mode === 'long' || probe) return;
  const slowest = Math.min(...stage);
  plan.startRate = Math.max(500, Math.round((slowest * (mode === 'quick' ? 1 : 0.25)) / 100) * 100);
}

function parseProbe(v: string | undefined): { rate: number; shape: 'uniform' | 'zipf'; seconds: number } | undefined {
  if (v === undefined) return undefined;
  const [rate, shape = 'uniform', seconds = '30'] = v.split(',');
  const fail = (why: string): never => {
    process.stderr.write(`--e2e-probe: ${why}\n${USAGE}`);
    process.exit(2);
  };
  if (!/^\d+$/.test(rate ?? '') || Number(rate) < 100) fail(`RATE must be a whole number of events/s >= 100, got ${JSON.stringify(rate)}`);
  if (shape !== 'uniform' && shape !== 'zipf') fail(`SHAPE must be uniform or zipf, got ${JSON.stringify(shape)}`);
  if (!/^\d+$/.test(seconds) || Number(seconds) < 5) fail(`SECONDS must be a whole number >= 5, got ${JSON.stringify(seconds)}`);
  if (!value('out')) fail('needs --out=DIR (a probe must not overwrite the committed results)');
  if (flag('quick') || flag('long') || value('only')) fail('cannot be combined with --quick, --long or --only');
  return { rate: Number(rate), shape: shape as 'uniform' | 'zipf', seconds: Number(seconds) };
}

function phaseMarks(x: number[], labels: string[]): { x: number; label: string }[] {
  const out: { x: number; label: string }[] = [];
  let prev = '';
  for (let i = 0; i < labels.length; i++) {
    if (/idle|set-up/.test(labels[i]!)) continue;
    const sys = labels[i]!.split(' ').slice(0, 2).join(' ');
    if (sys !== prev) out.push({ x: x[i]!, label: sys.replace('drawdown', 'DD').replace('baseline', 'PG') });
    prev = sys;
  }
  return out;
}

function headline(r: ScenarioResult): string {
  const f = r.figures as Record<string, unknown>;
  const keys = ['peakChecksPerS', 'peakEventsPerS', 'eventsPerS', 'customerDebitsPerS', 'rowsPerS', 'sustainedEventsPerS', 'ratedRowsInClickHouse', 'lastVsFirst'];
  const parts = keys.filter((k) => f[k] !== undefined).map((k) => `${k}=${String(f[k])}`);
  if (f.hundredEventsPerMessage) parts.push(`eventsPerS=${(f.hundredEventsPerMessage as { eventsPerS: number }).eventsPerS}`);
  return parts.join(' ') || 'done';
}

const num = (x: unknown) => (typeof x === 'number' ? x.toLocaleString('en') : x === undefined || x === null ? 'n/a' : String(x));

function flatten(o: unknown, prefix = '', out: [string, string][] = []): [string, string][] {
  if (o && typeof o === 'object' && !Array.isArray(o)) {
    for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (Array.isArray(o)) {
    out.push([prefix, o.length > 0 && typeof o[0] === 'object' ? `${o.length} entries (see results.json)` : JSON.stringify(o)]);
  } else out.push([prefix, num(o)]);
  return out;
}

type Doc = { mode: Mode; command: string; startedAt: string; wallSeconds: number; machine: Record<string, unknown>; scenarios: Results };

function renderMarkdown(doc: Doc): string {
  const all = new Map(doc.scenarios.flatMap((s) => (s.results ?? []).map((r) => [r.name, r.figures as Record<string, unknown>] as const)));
  const gv = (name: string, path: string): unknown => {
    let v: unknown = all.get(name);
    for (const p of path.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
    return v;
  };
  const g = (name: string, path: string): number | undefined => {
    const v = gv(name, path);
    return typeof v === 'number' ? v : undefined;
  };
  const ratio = (a?: number, b?: number) => (a !== undefined && b ? `${round(a / b, 2)}x` : 'n/a');
  const js = g('ceiling_jetstream', 'hundredEventsPerMessage.eventsPerS');
  const lines: string[] = [];
  lines.push('# Benchmark results', '');
  lines.push(`Generated by \`${doc.command}\` (bench/src/main.ts) at ${doc.startedAt}, mode **${doc.mode}**, ${doc.wallSeconds} s wall time. Do not edit: re-run the command.`, '');
  const loadAtStart = (doc.machine.loadAverageAtStart as number[] | undefined)?.[0] ?? 0;
  if (loadAtStart > 1.5) {
    lines.push('> **These figures were measured while other work loaded the same 2-core machine.** Absolute figures are',
      '> low and noisy; ratios measured side by side in one run are more meaningful than the absolute numbers.');
  } else {
    lines.push('> Measured with no other work of note on the machine (1-minute load average below 1.5 at start); every',
      '> component (Postgres, NATS, the pipeline, the load generator) shares its 2 cores.');
  }
  lines.push(`> Machine CPU busy during the run: ${Math.round(Number(doc.machine.machineCpuBusyShareDuringRun) * 100)} % (all processes, the benchmark's own included); load average at start ${JSON.stringify(doc.machine.loadAverageAtStart)}.`, '');
  if (doc.mode === 'quick') {
    lines.push('Quick mode, for checks, trades precision for a run of under a minute on a quiet machine: stage steps of 0.5 s (ceilings, ingest edge) and 1 s (ledger, alerts); the ingest edge without its half-peak run (request latency at the peak only); the ledger with 10,000 customers only (no 100,000-customer figure); end to end, a 1 s warm-up and 1.25 s search steps (backlog growth judged past 0.6 s), each search stopping at its first bracket (a sustained step below a failed one), however wide: two steps, a third only when the first two made none. Drawdown\'s uniform search starts at the slowest stage\'s rate (above what the all-in-one sustains), the others where the earlier searches point; after a failed step the next is at 90 % of what it processed (30-90 % of its rate), after a sustained one 1.5 times higher. The bracket (sustained .. upper bound) and what the system processed when over it are reported with each figure; the bracket may be several times wide. No half-rate runs: request latency and freshness are those of the sustained step, under load near capacity (higher than at half the rate). The default mode (`pnpm bench`) runs 15 s steps from a quarter of the stage figure, 1.4 times the rate each until a step fails, then bisects to 10 %, draining between steps, and measures latency at half the sustained rate.', '');
  }
  if (doc.mode === 'long') {
    const plan = (doc as unknown as { plan: { long?: { long?: { events: number; windowSeconds: number } } } }).plan.long?.long;
    if (plan && plan.events < 50_000_000) lines.push(`**Scaled down:** this long run pushed ${plan.events.toLocaleString('en')} events per system in ${plan.windowSeconds} s windows, not the 50 million of the full long run (\`pnpm bench --long\`). It proves the mode works; its rates say nothing yet about 50 million stored events.`, '');
  } else {
    lines.push('The long run (50 million events through both systems) is not part of this file: `pnpm bench --long` writes `RESULTS-long.md`, `results-long.json` and `long.png`; `--long-systems=drawdown` or `=baseline` runs one half, into `RESULTS-long-<system>.md`, `results-long-<system>.json` and `long-<system>.png`.', '');
  }
  lines.push('## Machine', '');
  for (const [k, v] of flatten(doc.machine)) lines.push(`- ${k}: ${v}`);
  lines.push('', '## Summary', '', '| what | measured | goal | ratio |', '| --- | --- | --- | --- |');
  const row = (what: string, v: number | undefined, unit: string, goal: string, r = '') => lines.push(`| ${what} | ${v === undefined ? 'n/a' : `${num(v)} ${unit}`} | ${goal} | ${r} |`);
  // A long run's file carries the long-run rows only (its other scenarios did not run).
  if (doc.mode !== 'long') {
    row('JetStream publish ceiling (100 events per message)', js, 'events/s', '', '');
    row('JetStream publish, split per partition as the edge does', g('ceiling_jetstream', 'splitPerPartitionAsTheEdgeDoes.eventsPerS'), 'events/s', '', '');
    row('chDB insert ceiling (rated rows)', g('ceiling_chdb', 'rowsPerS'), 'rows/s', '', '');
    row('Postgres set-based UPDATE ceiling (same debits)', g('ceiling_postgres', 'customerDebitsPerS'), 'customer debits/s', '', '');
    row('Ingest edge alone, JSON', g('ingest_json', 'peakEventsPerS'), 'events/s', '300,000', `${ratio(g('ingest_json', 'peakEventsPerS'), js)} of JetStream`);
    row('Ingest edge alone, msgpack', g('ingest_msgpack', 'peakEventsPerS'), 'events/s', '400,000', `${ratio(g('ingest_msgpack', 'peakEventsPerS'), js)} of JetStream`);
    row('Rater alone', g('rater', 'eventsPerS'), 'events/s', '150,000', `${ratio(g('rater', 'eventsPerS'), g('ceiling_chdb', 'rowsPerS'))} of chDB insert; start-up included`);
    row('Rater alone, past its first batch', g('rater', 'eventsPerSAfterFirstBatch'), 'events/s', '150,000', `${ratio(g('rater', 'eventsPerSAfterFirstBatch'), g('ceiling_chdb', 'rowsPerS'))} of chDB insert`);
    row('Dedup memory per fingerprint', g('rater', 'dedupBytesPerFingerprint'), 'bytes', '', '');
    row('Ledger alone, 10,000 customers', g('ledger_10000', 'customerDebitsPerS'), 'customer debits/s', '50,000', `${ratio(g('ledger_10000', 'customerDebitsPerS'), g('ceiling_postgres', 'customerDebitsPerS'))} of PG ceiling`);
    row('Ledger alone, 100,000 customers', g('ledger_100000', 'customerDebitsPerS'), 'customer debits/s', '50,000', '');
    // What the ledger's consumer does when it has a backlog: DRAWDOWN_LEDGER_BATCH_MAX batches per transaction.
    row('Ledger alone, 10,000 customers, backlog-sized transactions', g('ledger_10000', 'backlogCustomerDebitsPerS'), 'customer debits/s', '50,000', `${g('ledger_10000', 'backlogBatchesPerTx') ?? '?'} batches per transaction`);
    row('Ledger alone, 100,000 customers, backlog-sized transactions', g('ledger_100000', 'backlogCustomerDebitsPerS'), 'customer debits/s', '50,000', `${g('ledger_100000', 'backlogBatchesPerTx') ?? '?'} batches per transaction`);
    // The goal rate offered to the ledger's own consumer (JetStream, lanes, growing transactions).
    for (const c of ['10000', '100000']) {
      const x = (k: string) => gv(`ledger_${c}`, k);
      if (x('sustainOfferedCustomerDebitsPerS') === undefined) continue;
      row(`Ledger's consumer fed 50,000 customer debits/s, ${Number(c).toLocaleString('en')} customers`, g(`ledger_${c}`, 'sustainOfferedCustomerDebitsPerS'), 'customer debits/s offered', '50,000 sustained',
        `${x('sustained') === true ? 'sustained' : 'not sustained'} for ${String(x('sustainSeconds'))} s (${String(x('sustainWhy'))}); balances behind by the lag: ${String(x('sustainLagSecondsLastThird'))} s over the last third, at most ${String(x('sustainLagSecondsMax'))} s; caught up ${String(x('sustainCatchUpSeconds'))} s after`);
    }
    row('Access checks (hot cache), peak', g('access_checks', 'peakChecksPerS'), 'checks/s', '', `p50 ${num(g('access_checks', 'halfLoadLatencyMs.p50'))} ms, p99 ${num(g('access_checks', 'halfLoadLatencyMs.p99'))} ms at half the peak`);
    row('Threshold crossing to signed webhook received, p99', g('crossing_to_webhook', 'commitToReceivedMs.p99'), 'ms', 'seconds', `p50 ${num(g('crossing_to_webhook', 'commitToReceivedMs.p50'))} ms over ${num(g('crossing_to_webhook', 'received'))} crossings, from the debit's commit`);
    for (const shape of ['uniform', 'zipf']) {
      const dd = g(`e2e_drawdown_${shape}`, 'sustainedEventsPerS');
      const bl = g(`e2e_baseline_${shape}`, 'sustainedEventsPerS');
      const lastWhy = (name: string) => {
        const steps = (all.get(name)?.steps ?? []) as { offered: number; why: string; ok: boolean }[];
        const bad = steps.find((x) => !x.ok);
        return bad ? `; first failed step ${num(bad.offered)}/s: ${bad.why.slice(0, 140)}` : '';
      };
      // The bracket: highest sustained step .. lowest failed step (a real upper bound), or "capped" when every step was sustained.
      const bracket = (name: string) => {
        const f = all.get(name);
        if (!f) return '';
        if (f.searchCappedAtLastStep) return ' (search capped: every step tried was sustained, so this is a lower bound)';
        const over = typeof f.processedWhenOverEventsPerS === 'number' ? `, processed ${num(f.processedWhenOverEventsPerS)}/s when over it` : '';
        return `; upper bound ${num(f.upperBoundEventsPerS)}/s (lowest failed step${over})`;
      };
      row(`End to end Drawdown, ${shape}: sustained`, dd, 'events/s', '100,000', `${ratio(dd, bl)} of baseline (goal 3x)${bracket(`e2e_drawdown_${shape}`)}${lastWhy(`e2e_drawdown_${shape}`)}`);
      row(`End to end Drawdown, ${shape}: freshness p50 / p99 at sustained`, g(`e2e_drawdown_${shape}`, 'atSustained.freshnessMs.p99'), 'ms (p99)', '< 2,000', `p50 ${num(g(`e2e_drawdown_${shape}`, 'atSustained.freshnessMs.p50'))} ms, ${num(g(`e2e_drawdown_${shape}`, 'atSustained.freshnessMs.samples'))} markers`);
      if (g(`e2e_drawdown_${shape}`, 'atGoal.offeredEventsPerS') !== undefined) {
        const ok = gv(`e2e_drawdown_${shape}`, 'atGoal.ok') === true;
        row(`End to end Drawdown, ${shape}: freshness p50 / p99 at the goal rate (${num(g(`e2e_drawdown_${shape}`, 'atGoal.offeredEventsPerS'))} events/s)`, g(`e2e_drawdown_${shape}`, 'atGoal.freshnessMs.p99'), 'ms (p99)', '< 2,000', `p50 ${num(g(`e2e_drawdown_${shape}`, 'atGoal.freshnessMs.p50'))} ms, ${num(g(`e2e_drawdown_${shape}`, 'atGoal.freshnessMs.samples'))} markers; step ${ok ? 'sustained' : `not sustained: ${String(gv(`e2e_drawdown_${shape}`, 'atGoal.why')).slice(0, 140)}`}, request p99 ${num(g(`e2e_drawdown_${shape}`, 'atGoal.latencyMs.p99'))} ms`);
      }
      // Quick mode runs no half-rate step: its latency row is the sustained step's.
      const at = doc.mode === 'quick' ? 'atSustained' : 'halfRate';
      const atWhat = doc.mode === 'quick' ? 'at sustained (quick mode: no half-rate run)' : 'at half rate';
      row(`End to end Drawdown, ${shape}: request p50 / p99 ${atWhat}`, g(`e2e_drawdown_${shape}`, `${at}.latencyMs.p99`), 'ms (p99)', '', `p50 ${num(g(`e2e_drawdown_${shape}`, `${at}.latencyMs.p50`))} ms; all-in-one CPU ${num(g(`e2e_drawdown_${shape}`, `${at}.cpuShare.allInOne`))}, load generator CPU ${num(g(`e2e_drawdown_${shape}`, `${at}.cpuShare.loadgen`))} (cores); RSS ${num(g(`e2e_drawdown_${shape}`, `${at}.rssMB.allInOne`))} MB`);
      row(`Baseline, ${shape}: request p50 / p99 ${atWhat}`, g(`e2e_baseline_${shape}`, `${at}.latencyMs.p99`), 'ms (p99)', '', `p50 ${num(g(`e2e_baseline_${shape}`, `${at}.latencyMs.p50`))} ms; baseline CPU ${num(g(`e2e_baseline_${shape}`, `${at}.cpuShare.baseline`))}, Postgres CPU ${num(g(`e2e_baseline_${shape}`, `${at}.cpuShare.postgres`))}`);
      row(`Baseline (Postgres only), ${shape}: sustained`, bl, 'events/s', '', `${bracket(`e2e_baseline_${shape}`)}${lastWhy(`e2e_baseline_${shape}`)}`.replace(/^[ ;]+/, ''));
    }
  }
  for (const name of all.keys()) if (name.startsWith('long_') && name !== 'long_check') row(`Long run ${name.slice(5)}: capacity in the last tenth / in the first tenth (${name.startsWith('long_drawdown') ? `mean events/s processed, every window offered ${LONG_OVERLOAD} times what the one before processed` : 'mean events/s answered in closed loop'})`, g(name, 'lastVsFirst'), '', name.startsWith('long_drawdown') ? '>= 0.9' : '', g(name, 'lastVsFirst') === undefined ? 'no window counted: every window was warm-up (see the note under the scenario); raise --long-events' : `${num(g(name, 'firstTenthCapacity'))} -> ${num(g(name, 'lastTenthCapacity'))} events/s; least-squares trend over the counted windows: ${num(g(name, 'trend.atStart'))} -> ${num(g(name, 'trend.atEnd'))} events/s, ${num(g(name, 'trend.endVsStart'))}${g(name, 'costLastVsFirst.total') ? `; CPU per event, last tenth over first: edge and pricing ${num(g(name, 'costLastVsFirst.edgeAndPricing'))} (grows when the machine slows), ClickHouse ${num(g(name, 'costLastVsFirst.clickHouse'))}, Postgres ${num(g(name, 'costLastVsFirst.postgres'))}` : ''}`);
  // The same question asked side by side (src/long-pairs.ts): the aged instance and an empty one taking turns in the same minutes.
  for (const name of all.keys()) {
    if (!name.startsWith('long_drawdown') || g(name, 'sideBySide.agedPerS') === undefined) continue;
    const x = (k: string) => num(g(name, `sideBySide.${k}`));
    row(`Long run ${name.slice(5)}, side by side after it: the instance that stored ${x('agedStoredEventsAtStart')} events / an empty one, taking turns`, g(name, 'sideBySide.agedVsFresh'), '', '>= 0.9',
      `${x('agedPerS')} / ${x('freshPerS')} events/s over ${x('pairs')} pairs (pair by pair ${JSON.stringify(gv(name, 'sideBySide.perPair'))}); CPU per event ${x('agedUsPerEvent')} / ${x('freshUsPerEvent')} µs, whenever spent (empty / aged ${x('freshVsAgedCost')}); the idle instance used ${x('otherCpuDuringAged')} / ${x('otherCpuDuringFresh')} cores meanwhile`);
  }
  // The end-to-end checks (src/check.ts): every accepted event rated once, priced, and debited exactly.
  for (const c of checksOf([...all].map(([name, figures]) => ({ name, figures })))) {
    const x = checkSummary(c.check);
    const what = c.sideBySide ? `Long run ${c.name.slice(5)}, side by side: the empty instance's end-to-end check` : `End-to-end check after the ${c.name === 'long_check' ? 'long run' : 'runs'} (all-in-one)`;
    if (x) lines.push(`| ${what} | ${x.measured} | holds | ${x.detail} |`);
  }
  lines.push('');
  if (doc.scenarios.some((s) => s.scenario === 'e2e' && s.results)) lines.push('![throughput and backlog over time](e2e.png)', '');
  if (doc.mode === 'long') lines.push(`![long run: throughput and backlog over time](${LONG_SUFFIX.slice(1)}.png)`, '');
  lines.push('## Scenarios', '');
  for (const s of doc.scenarios) {
    lines.push(`### ${s.scenario}`, '', `Command: \`${s.command}\` (${s.seconds} s including set-up${s.cpuSeconds !== undefined ? `; ${s.cpuSeconds} s of CPU in the bench's processes` : ''})`, '');
    if (s.error) lines.push('**Failed:**', '', '```', s.error, '```', '');
    for (const r of s.results ?? []) {
      lines.push(`#### ${r.title}`, '', '| figure | value |', '| --- | --- |');
      for (const [k, v] of flatten(r.figures)) lines.push(`| ${k} | ${v.replace(/\|/g, '\\|')} |`);
      for (const n of r.notes ?? []) lines.push('', `Note: ${n}`);
      const f = r.figures as { steps?: unknown[]; windows?: unknown[]; diagnostics?: unknown[]; costPerEvent?: unknown[]; sideBySide?: { windows?: unknown[] } };
      for (const [title, rows] of [
        ['', f.steps ?? f.windows],
        ['CPU per processed event in each tenth (µs; counted windows only): `main` and `other` (the edge, the rater\'s and ledger\'s coordination, pricing) do not depend on stored data, merges, the rest of ClickHouse and Postgres may', f.costPerEvent],
        ['What each window cost (long run diagnostics: CPU shares of a core, the two stages, the ClickHouse engine)', f.diagnostics],
        ['Side by side after the long run (the aged instance and an empty one taking turns; `ownCpu`: the measured instance, Postgres and NATS, split into `main` (its event loop), `other` (its other threads), `merges` and `clickHouseRest` (its ClickHouse engine), `postgres` and `nats`; `idleInstanceCpu`: the other instance meanwhile; all in cores)', f.sideBySide?.windows],
      ] as const) {
        if (!rows || rows.length === 0) continue;
        const cols = Object.keys(rows[0] as object);
        if (title) lines.push('', `${title}:`);
        lines.push('', `| ${cols.join(' | ')} |`, `| ${cols.map(() => '---').join(' | ')} |`);
        for (const st of rows as Record<string, unknown>[]) lines.push(`| ${cols.map((c) => num(st[c]).replace(/\|/g, '\\|')).join(' | ')} |`);
      }
      lines.push('');
    }
  }
  return lines.join('\n') + '\n';
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench failed: ${err.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
