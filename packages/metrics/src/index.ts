// Prometheus metrics for every service. One registry per process: in the all-in-one
// process every service registers into it and /metrics shows them all.
import client from 'prom-client';

export const registry = new client.Registry();
let defaultsOn = false;

/** Process metrics (CPU, RSS, event loop lag, GC), once per process. */
export function collectProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  client.collectDefaultMetrics({ register: registry, prefix: 'drawdown_' });
}

// Re-registration returns the existing metric: services are started more than once in one
// test process, and prom-client throws on duplicate names.
function existing<T>(name: string): T | undefined {
  return registry.getSingleMetric(name) as T | undefined;
}

export function counter<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): client.Counter<L> {
  return existing<client.Counter<L>>(name) ?? new client.Counter<L>({ name, help, labelNames, registers: [registry] });
}

export function gauge<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): client.Gauge<L> {
  return existing<client.Gauge<L>>(name) ?? new client.Gauge<L>({ name, help, labelNames, registers: [registry] });
}

/** Latency buckets in seconds, 0.5 ms to 10 s. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function histogram<L extends string = string>(name: string, help: string, labelNames: readonly L[] = [], buckets: number[] = LATENCY_BUCKETS): client.Histogram<L> {
  return existing<client.Histogram<L>>(name) ?? new client.Histogram<L>({ name, help, labelNames, buckets, registers: [registry] });
}

export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/** This thread's metrics as data, to be merged with other threads' (aggregateMetrics). */
export type MetricsSnapshot = client.MetricObjectWithValues<client.MetricValue<string>>[];

export function metricsSnapshot(): Promise<MetricsSnapshot> {
  return registry.getMetricsAsJSON();
}

/** Several threads' snapshots as one /metrics text: counters, histograms and gauges summed. */
export async function aggregateMetrics(snapshots: MetricsSnapshot[]): Promise<{ contentType: string; body: string }> {
  const merged = client.AggregatorRegistry.aggregate(snapshots);
  return { contentType: merged.contentType, body: await merged.metrics() };
}

export type { Counter, Gauge, Histogram } from 'prom-client';
