import { describe, expect, it } from 'vitest';
import { billingPeriods, type CatalogSnapshot, type PriceSnap } from '@drawdown/catalog';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { RATED_COLUMNS, applyCumulative, encodeRated, joinRated, priceBatch, type CumulativeState, type PricingEvent } from './price';
import { cumulativeTotal, matrixUnit, periodStartMs } from './models';

const T0 = Date.UTC(2026, 0, 15);

function snap(prices: PriceSnap[], metric: Partial<CatalogSnapshot['metrics'][string]> = {}, pricingUnits?: CatalogSnapshot['pricingUnits']): CatalogSnapshot {
  return {
    version: 1,
    byExternalId: { acme: 'cus_1' },
    customers: { cus_1: 'acme' },
    subscriptions: { cus_1: [{ id: 'sub_1', startMs: Date.UTC(2026, 0, 1), endMs: null, priceIds: prices.map((p) => p.id), billingCadence: 'monthly' }] },
    prices: Object.fromEntries(prices.map((p) => [p.id, p])),
    metrics: { m1: { id: 'm1', event_name: 'call', aggregation: 'sum', property: 'n', filters: [], ...metric } },
    ...(pricingUnits ? { pricingUnits } : {}),
  };
}

const price = (id: string, modelType: string, config: Record<string, unknown>, currency = 'credits'): PriceSnap => ({ id, metricId: 'm1', currency, modelType, config });

let seq = 0;
const ev = (n: string | number, p: Record<string, string | number> = {}, t = T0): PricingEvent => ({ seq: ++seq, k: `k${seq}`, c: 'x:acme', n: 'call', t, r: t, p: { n, ...p } });

/** Prices events one batch at a time through the worker function and the cumulative step. */
function rate(s: CatalogSnapshot, batches: PricingEvent[][], state: CumulativeState = new Map()) {
  const amounts: string[] = [];
  let debitTotal = 0n;
  for (const b of batches) {
    const r = priceBatch(s, b, 0, 'b');
    for (const [k, v] of applyCumulative(s, r, state)) state.set(k, v);
    amounts.push(...r.rows.map((x) => x.amount));
    for (const d of r.debits) debitTotal += BigInt(d.amountPicos);
  }
  return { amounts, debitTotal: formatDecimal(debitTotal) };
}

describe('unit', () => {
  it.each([
    ['0.000000000001', '3', '0.000000000003'],
    ['0.333333333333', '3', '0.999999999999'],
    ['1.5', '0.000000000001', '0.000000000002'], // 1.5e-12 rounds half-even to 2e-12
    ['2.5', '0.000000000001', '0.000000000002'], // 2.5e-12 rounds half-even to 2e-12
    ['123456789.123456789012', '2', '246913578.246913578024'],
  ])('unit_amount %s x quantity %s = %s', (unit, q, want) => {
    const s = snap([price('p', 'unit', { unit_config: { unit_amount: unit } })]);
    expect(rate(s, [[ev(q)]]).amounts).toEqual([want]);
  });
});

describe('tiered (graduated over the period)', () => {
  const tiers = { tiered_config: { tiers: [
    { first_unit: '0', last_unit: '10', unit_amount: '0.1' },
    { first_unit: '10', last_unit: '100.5', unit_amount: '0.033333333333' },
    { first_unit: '100.5', last_unit: null, unit_amount: '0.000000000007' },
  ] } };
  it.each([
    ['5', '0.5'],
    ['10', '1'],
    ['11', '1.033333333333'],
    ['100.5', '4.016666666636'], // 1 + 90.5 x 0.033333333333 = 4.0166666666365 -> half-even keeps the 6
    ['1000100.5', '4.016673666636'], // + 1,000,000 x 0.000000000007
  ])('total for %s units is %s', (q, want) => {
    expect(formatDecimal(cumulativeTotal(price('p', 'tiered', tiers), parseDecimal(q)))).toBe(want);
  });

  it('charges increments that sum exactly to the total, however the events are batched', () => {
    const s = snap([price('p', 'tiered', tiers)]);
    const qs = ['3.3', '3.3', '3.3', '0.2', '50', '40.4', '7'];
    const one = rate(s, [qs.map((q) => ev(q))]);
    const split = rate(s, qs.map((q) => [ev(q)]));
    expect(one.amounts).toEqual(split.amounts);
    expect(one.debitTotal).toBe(formatDecimal(cumulativeTotal(s.prices.p!, parseDecimal('107.5'))));
    expect(one.amounts.slice(0, 3)).toEqual(['0.33', '0.33', '0.33']);
  });

  it('starts again in the next billing period', () => {
    const s = snap([price('p', 'tiered', tiers)]);
    const r = rate(s, [[ev('10'), ev('10', {}, Date.UTC(2026, 1, 1))]]);
    expect(r.amounts).toEqual(['1', '1']);
    const r2 = rate(s, [[ev('10'), ev('10', {}, Date.UTC(2026, 0, 31, 23))]]);
    expect(r2.amounts).toEqual(['1', '0.33333333333']);
  });
});

describe('package (per N units, rounded up, over the period)', () => {
  const pkg = (amount: string, size: string) => price('p', 'package', { package_config: { package_amount: amount, package_size: size } });
  it.each([
    ['0.07', '1000', ['1', '999', '1', '1000', '1'], ['0.07', '0', '0.07', '0.07', '0']],
    ['1.000000000001', '2.5', ['2.5', '0.000000000001', '2.499999999999'], ['1.000000000001', '1.000000000001', '0']],
  ])('package_amount %s per %s', (amount, size, qs, want) => {
    const r = rate(snap([pkg(amount, size)]), [qs.map((q) => ev(q))]);
    expect(r.amounts).toEqual(want);
  });
});

describe('matrix', () => {
  const m = price('p', 'matrix', { matrix_config: { dimensions: ['region', 'tier'], default_unit_amount: '0.000000000001', matrix_values: [
    { dimension_values: ['eu', 'gold'], unit_amount: '0.123456789012' },
    { dimension_values: ['eu', null], unit_amount: '0.1' },
    { dimension_values: ['us', '3'], unit_amount: '7' },
  ] } });
  it.each([
    [{ region: 'eu', tier: 'gold' }, '0.123456789012'],
    [{ region: 'eu', tier: 'silver' }, '0.1'],
    [{ region: 'us', tier: 3 }, '7'],
    [{ region: 'us', tier: 'gold' }, '0.000000000001'],
    [{}, '0.000000000001'],
  ])('%j -> unit %s', (props, unit) => {
    expect(formatDecimal(matrixUnit(m, props))).toBe(unit);
  });
  it('multiplies the quantity exactly', () => {
    expect(rate(snap([m]), [[ev('3', { region: 'eu', tier: 'gold' })]]).amounts).toEqual(['0.370370367036']);
  });
});

describe('metrics, currencies and reasons', () => {
  it('filters by event name and property values, counts, groups', () => {
    const s = snap([price('p', 'unit', { unit_config: { unit_amount: '0.5' } })], { aggregation: 'count', filters: [{ property: 'region', values: ['eu', 'us'] }], group_by: 'model' });
    const r = priceBatch(s, [ev(1, { region: 'eu', model: 'gpt' }), ev(1, { region: 'ap' })], 0, 'b');
    expect(r.rows.map((x) => [x.status, x.amount, x.group_key, x.reason])).toEqual([['rated', '0.5', 'gpt', ''], ['unpriced', '0', '', 'no_matching_price']]);
  });

  it('debits pricing units, not fiat; a declared pricing unit with a fiat-like name is debited', () => {
    const s = snap([price('a', 'unit', { unit_config: { unit_amount: '1' } }, 'USD'), price('b', 'unit', { unit_config: { unit_amount: '2' } }, 'TOK')], {}, { TOK: { name: 'TOK', currency: 'USD', conversionRate: '0.01' } });
    const r = priceBatch(s, [ev('1')], 0, 'b');
    expect(r.rows).toHaveLength(2);
    expect(r.debits.map((d) => [d.priceId, d.amountPicos])).toEqual([['b', '2000000000000']]);
  });

  it('honours price effective dates and names every unpriced reason', () => {
    const p = { ...price('p', 'unit', { unit_config: { unit_amount: '1' } }), effectiveFromMs: T0 + 1 };
    const s = snap([p]);
    const r = priceBatch(s, [ev('1'), ev('1', {}, T0 + 1), { ...ev('1'), c: 'x:nobody' }, ev('1', {}, Date.UTC(2025, 0, 1)), ev('abc', {}, T0 + 1)], 0, 'b');
    expect(r.rows.map((x) => x.reason.split(':')[0])).toEqual(['no_matching_price', '', 'unknown_customer', 'no_active_subscription', 'invalid_event']);
  });

  it('uses the catalog billing periods: first from the start instant, then local midnight of the anchor day, month ends clamped', () => {
    const sub = { startMs: Date.UTC(2026, 0, 31, 12), billingCadence: 'monthly' as const };
    expect(new Date(periodStartMs(sub, Date.UTC(2026, 0, 31, 13))).toISOString()).toBe('2026-01-31T12:00:00.000Z');
    expect(new Date(periodStartMs(sub, Date.UTC(2026, 1, 28, 13))).toISOString()).toBe('2026-02-28T00:00:00.000Z');
    expect(new Date(periodStartMs(sub, Date.UTC(2026, 1, 27, 23))).toISOString()).toBe('2026-01-31T12:00:00.000Z');
    expect(new Date(periodStartMs(sub, Date.UTC(2026, 2, 31, 12))).toISOString()).toBe('2026-03-31T00:00:00.000Z');
    expect(new Date(periodStartMs({ ...sub, billingCadence: 'annual' }, Date.UTC(2027, 5, 1))).toISOString()).toBe('2027-01-31T00:00:00.000Z');
    expect(new Date(periodStartMs({ ...sub, billingCadence: 'quarterly' }, Date.UTC(2026, 4, 1))).toISOString()).toBe('2026-04-30T00:00:00.000Z');
    // Past the end: the last (shortened) period.
    expect(new Date(periodStartMs({ ...sub, endMs: Date.UTC(2026, 2, 10) }, Date.UTC(2026, 3, 1))).toISOString()).toBe('2026-02-28T00:00:00.000Z');
  });

  it('agrees with the periods settlement invoices (catalog billingPeriods) for every event time', () => {
    const sub = { startMs: Date.UTC(2026, 0, 15, 17, 30), billingCadence: 'monthly' as const, timezone: 'America/New_York' };
    const periods = billingPeriods(sub.startMs, 'monthly', 'America/New_York', { untilMs: Date.UTC(2027, 0, 1) });
    for (const p of periods) {
      for (const t of [p.startMs, p.startMs + 1, Math.floor((p.startMs + p.endMs) / 2), p.endMs - 1]) expect(periodStartMs(sub, t)).toBe(p.startMs);
    }
  });

  it('follows the subscription time zone across DST', () => {
    // Midnight Jan 1 in New York (UTC-5); the April period starts at midnight EDT (UTC-4).
    const sub = { startMs: Date.UTC(2026, 0, 1, 5), billingCadence: 'monthly' as const, timezone: 'America/New_York' };
    expect(new Date(periodStartMs(sub, Date.UTC(2026, 3, 1, 3, 59))).toISOString()).toBe('2026-03-01T05:00:00.000Z');
    expect(new Date(periodStartMs(sub, Date.UTC(2026, 3, 1, 4))).toISOString()).toBe('2026-04-01T04:00:00.000Z');
    expect(new Date(periodStartMs({ ...sub, timezone: 'Not/AZone' }, Date.UTC(2026, 3, 1, 4))).toISOString()).toBe('2026-04-01T00:00:00.000Z');
  });
});

/** Reads a RowBinary rated_events payload back (RATED_COLUMNS): numbers and decimals as text, timestamps as epoch ms. */
function decodeRated(body: Uint8Array): Record<string, string | number>[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const text = new TextDecoder();
  const rows: Record<string, string | number>[] = [];
  let at = 0;
  const varUInt = () => {
    let n = 0, shift = 0, b: number;
    do {
      b = body[at++]!;
      n += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return n;
  };
  const int64 = () => {
    const v = Number(view.getBigInt64(at, true));
    at += 8;
    return v;
  };
  while (at < body.length) {
    const row: Record<string, string | number> = {};
    for (const c of RATED_COLUMNS) {
      if (c === 'partition') {
        row[c] = view.getUint16(at, true);
        at += 2;
      } else if (c === 'seq' || c === 'catalog_version' || c === 'timestamp' || c === 'received_at' || c === 'period_start') row[c] = int64();
      else if (c === 'quantity' || c === 'amount') {
        const v = (view.getBigInt64(at + 8, true) << 64n) | view.getBigUint64(at, true);
        at += 16;
        row[c] = formatDecimal(v);
      } else {
        const n = varUInt();
        row[c] = text.decode(body.subarray(at, at + n));
        at += n;
      }
    }
    rows.push(row);
  }
  return rows;
}

describe('ClickHouse payload (encodeRated, joinRated)', () => {
  it('leaves out each cumulative amount and puts the amounts back in stream order', () => {
    const s = snap([price('t', 'tiered', { tiered_config: { tiers: [{ first_unit: '0', last_unit: '2', unit_amount: '1' }, { first_unit: '2', unit_amount: '0.5' }] } }), price('u', 'unit', { unit_config: { unit_amount: '0.1' } })]);
    const r = priceBatch(s, [ev('1', { note: 'tab\there' }), ev('2'), ev('3')], 0, 'b');
    const payload = encodeRated(r.rows, r.cumulative);
    expect(payload.cuts).toHaveLength(r.cumulative.length);
    // Before joinRated the cut rows' amounts are zero.
    expect(decodeRated(payload.body).map((x) => x.amount)).toEqual(['0', '0.1', '0', '0.2', '0', '0.3']);
    applyCumulative(s, r, new Map());
    const joined = Buffer.from(joinRated(payload, r.cumulative.map((i) => r.rows[i]!.amount)));
    expect(joined.equals(Buffer.from(encodeRated(r.rows, []).body))).toBe(true);
    const rows = decodeRated(joined);
    expect(rows).toHaveLength(6);
    expect(rows.map((x) => x.amount)).toEqual(['1', '0.1', '1.5', '0.2', '1.5', '0.3']);
    expect(rows[0]!.properties).toBe('{"n":"1","note":"tab\\there"}');
    expect(() => joinRated(payload, [])).toThrow(/cuts/);
  });

  it('writes every column as RowBinary, strings as UTF-8 as TextEncoder writes it (control characters, non-ASCII, surrogate pairs, lone surrogates)', () => {
    const s = snap([price('u', 'unit', { unit_config: { unit_amount: '0.1' } })]);
    const odd = ['a\\b\tc\nd\re', 'é€😀', 'x\ud800y', '\udc00', '', 'long '.repeat(40)];
    const r = priceBatch(s, odd.map((v) => ({ ...ev('1', { v }), k: v })), 0, 'b\tatch');
    const back = decodeRated(encodeRated(r.rows, []).body);
    const utf8 = (v: string) => new TextDecoder().decode(new TextEncoder().encode(v));
    expect(back).toEqual(r.rows.map((x) => Object.fromEntries(RATED_COLUMNS.map((c) => [c, typeof x[c] === 'string' ? utf8(x[c] as string) : x[c]]))));
    expect(back.map((x) => x.idempotency_key)).toEqual(odd.map(utf8));
  });
});
