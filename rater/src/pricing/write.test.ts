// rateBatch against the reference it replaces in the worker: priceBatch's rows encoded by
// encodeRated. Generated catalogs and batches (awkward strings, every price model, broken
// configs, subscriptions that start, end or are missing, effective dates, pricing units and
// fiat) must give the same payload bytes, cuts, cumulative rows, debits and unpriced counts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot, MetricSnap, PriceSnap, SubscriptionSnap } from '@drawdown/catalog';
import { encodeRated, priceBatch, resolveCustomer, type PricingEvent } from './price';
import { rateBatch, type RateEvent } from './write';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 15);
// Strings a TabSeparated writer must escape or encode: tab, newline, CR, backslash, non-ASCII, surrogates.
const ODD = ['a\tb', 'l\nm', 'r\rs', 'b\\s', 'é€', '😀', 'x\ud800y', '\udc00', '"q"', ''];
const text = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('a', 'b', 'call', 'eu', 'us', '1', '2.5') }, { weight: 2, arbitrary: fc.constantFrom(...ODD) }, { weight: 1, arbitrary: fc.string({ maxLength: 6, unit: 'binary' }) });
const times = [T0 - 20 * DAY, T0 - 1, T0, T0 + 1, Date.UTC(2026, 0, 31, 23, 59), Date.UTC(2026, 1, 1), Date.UTC(2026, 1, 10), Date.UTC(2026, 2, 15, 12)];
const time = fc.constantFrom(...times);

const PRICE_IDS = ['p_unit', 'p\tunit2', 'p_tier', 'p_pkg', 'p_matrix', 'p_bad', 'p_broken', 'p_nometric', 'p_missing'];

const prices = fc.record({
  currency: fc.constantFrom('credits', 'USD', 'TOK', 'cr\tedits'),
  metric: fc.constantFrom('m_count', 'm_sum', 'm_filter', 'm\tgroup', 'm_gone'),
  unitAmount: fc.constantFrom('0.001', '0.333333333333', '0', '2'),
  fromMs: fc.option(time, { nil: undefined }),
  toMs: fc.option(time, { nil: undefined }),
}, { requiredKeys: ['currency', 'metric', 'unitAmount'] });

function priceSnaps(cfg: { currency: string; metric: string; unitAmount: string; fromMs?: number; toMs?: number }[]): Record<string, PriceSnap> {
  const configs: Record<string, [string, Record<string, unknown>]> = {
    p_unit: ['unit', { unit_config: { unit_amount: cfg[0]!.unitAmount } }],
    'p\tunit2': ['unit', { unit_config: { unit_amount: cfg[1 % cfg.length]!.unitAmount } }],
    p_tier: ['tiered', { tiered_config: { tiers: [{ first_unit: '0', last_unit: '3', unit_amount: '1' }, { first_unit: '3', last_unit: null, unit_amount: '0.25' }] } }],
    p_pkg: ['package', { package_config: { package_amount: '1.5', package_size: '2' } }],
    p_matrix: ['matrix', { matrix_config: { dimensions: ['region'], default_unit_amount: '0.01', matrix_values: [{ dimension_values: ['eu'], unit_amount: '0.5' }] } }],
    p_bad: ['bogus', {}],
    p_broken: ['unit', {}],
    p_nometric: ['unit', { unit_config: { unit_amount: '1' } }],
  };
  const out: Record<string, PriceSnap> = {};
  Object.entries(configs).forEach(([id, [modelType, config]], i) => {
    const c = cfg[i % cfg.length]!;
    out[id] = {
      id, modelType, config, currency: c.currency, metricId: id === 'p_nometric' ? null : c.metric,
      ...(c.fromMs !== undefined ? { effectiveFromMs: c.fromMs } : {}), ...(c.toMs !== undefined ? { effectiveToMs: c.toMs } : {}),
    } as PriceSnap;
  });
  return out;
}

const METRICS: Record<string, MetricSnap> = {
  m_count: { id: 'm_count', event_name: 'call', aggregation: 'count', filters: [] } as unknown as MetricSnap,
  m_sum: { id: 'm_sum', event_name: 'call', aggregation: 'sum', property: 'n', filters: [] } as unknown as MetricSnap,
  m_filter: { id: 'm_filter', event_name: 'call', aggregation: 'count', filters: [{ property: 'region', values: ['eu', 'a\tb'] }] } as unknown as MetricSnap,
  'm\tgroup': { id: 'm\tgroup', event_name: 'c\tall', aggregation: 'sum', property: 'n', group_by: 'region', filters: [] } as unknown as MetricSnap,
};

const subscription = fc.record({
  id: fc.constantFrom('sub_1', 's\tub2', 'sub_é', 'sub_4'),
  startMs: fc.constantFrom(Date.UTC(2026, 0, 1), Date.UTC(2026, 0, 20), Date.UTC(2025, 11, 31, 12)),
  endMs: fc.constantFrom(null, Date.UTC(2026, 1, 10), Date.UTC(2026, 0, 1)),
  priceIds: fc.subarray(PRICE_IDS, { minLength: 0 }),
  billingCadence: fc.constantFrom('monthly', 'quarterly', 'annual', undefined),
  timezone: fc.constantFrom(undefined, 'UTC', 'America/New_York', 'Not/AZone'),
}).map((s) => {
  const out: Record<string, unknown> = { id: s.id, startMs: s.startMs, endMs: s.endMs, priceIds: s.priceIds };
  if (s.billingCadence) out.billingCadence = s.billingCadence;
  if (s.timezone) out.timezone = s.timezone;
  return out as unknown as SubscriptionSnap;
});

const CUSTOMERS: [string, string][] = [['cus_1', 'acme'], ['c\tus2', 'e\\xt2'], ['cus_é3', ''], ['cus_4', '😀']];

const catalog = fc.record({
  version: fc.integer({ min: 1, max: 1000 }),
  subs: fc.array(fc.option(fc.array(subscription, { maxLength: 3 }), { nil: undefined }), { minLength: CUSTOMERS.length, maxLength: CUSTOMERS.length }),
  prices: fc.array(prices, { minLength: 2, maxLength: 4 }),
}).map(({ version, subs, prices: cfg }): CatalogSnapshot => {
  const snap: CatalogSnapshot = { version, byExternalId: {}, customers: {}, subscriptions: {}, prices: priceSnaps(cfg), metrics: METRICS, pricingUnits: { TOK: { name: 'TOK', currency: 'USD', conversionRate: '0.01' } } };
  CUSTOMERS.forEach(([id, ext], i) => {
    snap.customers[id] = ext;
    if (ext) snap.byExternalId[ext] = id;
    if (subs[i]) snap.subscriptions[id] = subs[i]!;
  });
  return snap;
});

const refs = ['cus_1', 'x:acme', 'c\tus2', 'x:e\\xt2', 'cus_é3', 'cus_4', 'x:😀', 'x:nobody', 'stranger\t', 'x:'];
const propValue = fc.oneof(text, fc.integer({ min: -5, max: 1_000_000 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.constantFrom('1.5', '-2', '0.000000000001', 'abc', '1e3'));
const event = fc.record({
  k: text,
  c: fc.constantFrom(...refs),
  n: fc.constantFrom('call', 'call', 'call', 'other', 'c\tall'),
  t: time,
  r: fc.integer({ min: 0, max: 2_000_000_000_000 }),
  p: fc.dictionary(fc.oneof(fc.constantFrom('n', 'region', 'model'), text), propValue, { maxKeys: 4 }),
});

/** The reference: priceBatch's rows, encodeRated's payload. */
function reference(snap: CatalogSnapshot, events: RateEvent[], seqs: number[], partition: number, batchId: string) {
  const r = priceBatch(snap, events.map((e, i): PricingEvent => ({ seq: seqs[i]!, ...e })), partition, batchId);
  const payload = encodeRated(r.rows, r.cumulative);
  return { payload, rows: r.rows.length, cumulative: r.cumulative.map((i) => r.rows[i]!), debits: r.debits, unpriced: r.unpriced };
}

const same = (a: ReturnType<typeof rateBatch>, b: ReturnType<typeof reference>) => {
  expect(Buffer.from(a.payload.body).toString('latin1')).toBe(Buffer.from(b.payload.body).toString('latin1'));
  expect(a.payload.cuts).toEqual(b.payload.cuts);
  expect(a.rows).toBe(b.rows);
  expect(a.cumulative).toEqual(b.cumulative);
  expect(a.debits).toEqual(b.debits);
  expect(a.unpriced).toEqual(b.unpriced);
};

describe('rateBatch (priceBatch + encodeRated in one pass)', () => {
  it('writes the same bytes, cuts, cumulative rows, debits and unpriced counts as the reference, batch after batch', () => {
    fc.assert(
      fc.property(catalog, fc.array(fc.array(event, { maxLength: 25 }), { minLength: 1, maxLength: 3 }), fc.constantFrom(0, 7), fc.constantFrom('3-1-9', 'b\tatch\\'), fc.boolean(), (snap, batches, partition, batchId, resolved) => {
          let seq = 1;
          for (const events of batches) {
            const seqs = events.map((_, i) => (i % 3 === 0 ? ++seq : seq));
            const customers = resolved ? events.map((e) => resolveCustomer(snap, e.c) ?? null) : undefined;
            same(rateBatch(snap, events, seqs, customers, partition, batchId), reference(snap, events, seqs, partition, batchId));
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('matches on the awkward cases named: escapes, unicode, unpriced, invalid and cumulative rows, a catalog change', () => {
    const subs = (priceIds: string[]) => [{ id: 's\t1', startMs: Date.UTC(2026, 0, 1), endMs: null, priceIds, billingCadence: 'monthly' } as SubscriptionSnap];
    const base: CatalogSnapshot = {
      version: 4, byExternalId: { 'a\\cme': 'cus\t1' }, customers: { 'cus\t1': 'a\\cme' }, subscriptions: { 'cus\t1': subs(['p_unit', 'p_tier']) },
      prices: priceSnaps([{ currency: 'credits', metric: 'm_sum', unitAmount: '0.1' }]), metrics: METRICS,
    };
    const ev = (k: string, n: unknown, extra: Record<string, unknown> = {}, c = 'x:a\\cme'): RateEvent => ({ k, c, n: 'call', t: T0, r: T0 + 5, p: { n, ...extra } as RateEvent['p'] });
    const events = [ev('k\t1', '1.5', { note: 'tab\there\nnew "line" \\ é😀 \ud800' }), ev('k2', 'abc'), ev('k3', '2', {}, 'x:nobody'), ev('k4', 3, {}, 'cus\t1'), ev('k\\5', null)];
    const seqs = [5, 5, 6, 6, 7];
    const a = rateBatch(base, events, seqs, undefined, 1, 'b\t1');
    const b = reference(base, events, seqs, 1, 'b\t1');
    same(a, b);
    expect(a.cumulative.length).toBeGreaterThan(0);
    expect(Object.keys(a.unpriced).sort()).toEqual(['invalid_event', 'unknown_customer']);
    // A new snapshot of the same customers: plans are made again, not reused.
    const next: CatalogSnapshot = { ...base, version: 5, subscriptions: { 'cus\t1': subs(['p\tunit2']) }, prices: priceSnaps([{ currency: 'USD', metric: 'm_count', unitAmount: '2' }]) };
    same(rateBatch(next, events, seqs, undefined, 1, 'b\t1'), reference(next, events, seqs, 1, 'b\t1'));
  });
});
