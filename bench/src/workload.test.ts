import { describe, expect, it } from 'vitest';
import { inflateSync } from 'node:zlib';
import { Packr } from 'msgpackr';
import { buildTemplates, customerSampler, stamp, zipfTopShare } from './workload';
import { axisLabel, encodePng, lineChart } from './plot';
import { percentile } from './util';

describe('pre-encoded request bodies', () => {
  for (const format of ['json', 'msgpack'] as const) {
    it(`${format}: stamping a request number gives 100 valid events with unique keys`, () => {
      const [tpl] = buildTemplates({ count: 1, eventsPerRequest: 100, customers: 50, shape: 'uniform', format, tag: 'ab12', timestampMs: Date.UTC(2026, 0, 1), seed: 1 });
      const body = Buffer.from(tpl!.bytes);
      stamp(body, tpl!.slots, 1234567);
      const parsed = (format === 'json' ? JSON.parse(body.toString('utf8')) : new Packr({ useRecords: false }).unpack(body)) as { events: { idempotency_key: string; external_customer_id: string; timestamp: string }[] };
      expect(parsed.events).toHaveLength(100);
      const keys = new Set(parsed.events.map((e) => e.idempotency_key));
      expect(keys.size).toBe(100);
      expect(parsed.events[7]!.idempotency_key).toBe('ab120001234567-007');
      expect(parsed.events[0]!.timestamp).toBe('2026-01-01T00:00:00.000Z');
    });
  }

  for (const format of ['json', 'msgpack'] as const) {
    it(`${format}: stamping a send time sets every event's timestamp and nothing else`, () => {
      const [tpl] = buildTemplates({ count: 1, eventsPerRequest: 100, customers: 50, shape: 'zipf', format, tag: 'cd34', timestampMs: Date.UTC(2026, 0, 1), seed: 2 });
      const decode = (b: Buffer) => (format === 'json' ? JSON.parse(b.toString('utf8')) : new Packr({ useRecords: false }).unpack(b)) as { events: { idempotency_key: string; external_customer_id: string; timestamp: string; properties: unknown }[] };
      const plain = Buffer.from(tpl!.bytes);
      stamp(plain, tpl!.slots, 42);
      const timed = Buffer.from(tpl!.bytes);
      const sent = Date.UTC(2026, 10, 26, 1, 2, 3, 456);
      stamp(timed, tpl!.slots, 42, tpl!.tsSlots, sent);
      const a = decode(plain).events;
      const b = decode(timed).events;
      expect(b).toHaveLength(100);
      expect(new Set(b.map((e) => e.timestamp))).toEqual(new Set(['2026-11-26T01:02:03.456Z']));
      expect(b.map((e) => ({ ...e, timestamp: '' }))).toEqual(a.map((e) => ({ ...e, timestamp: '' })));
    });
  }

  it('refuses a request number wider than the slot', () => {
    const [tpl] = buildTemplates({ count: 1, eventsPerRequest: 2, customers: 5, shape: 'uniform', format: 'json', tag: 't', timestampMs: 0, seed: 1 });
    expect(() => stamp(Buffer.from(tpl!.bytes), tpl!.slots, 1e10)).toThrow(RangeError);
  });
});

describe('customer skew', () => {
  it('Zipf s=1.1 sends the predicted share to the busiest customers; uniform does not', () => {
    const n = 10_000;
    const zipf = customerSampler(n, 'zipf', 5);
    const uniform = customerSampler(n, 'uniform', 5);
    let zTop = 0, uTop = 0;
    const draws = 200_000;
    for (let i = 0; i < draws; i++) {
      if (zipf() < 10) zTop++;
      if (uniform() < 10) uTop++;
    }
    const expected = zipfTopShare(n, 10);
    expect(expected).toBeGreaterThan(0.2);
    expect(Math.abs(zTop / draws - expected)).toBeLessThan(0.01);
    expect(uTop / draws).toBeLessThan(0.002);
  });
});

describe('plot and figures', () => {
  it('writes a PNG whose pixel data inflates to the declared size', () => {
    const png = encodePng(3, 2, new Uint8Array(18).fill(7));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(16)).toBe(3);
    expect(png.readUInt32BE(20)).toBe(2);
    const idatLen = png.readUInt32BE(33);
    expect(png.subarray(37, 41).toString('latin1')).toBe('IDAT');
    expect(inflateSync(png.subarray(41, 41 + idatLen)).length).toBe((3 * 3 + 1) * 2);
    const chart = lineChart({ title: 'T', x: [0, 1, 2], series: [{ name: 'a', values: [1, 2, 3], color: [0, 0, 255], axis: 'left' }], leftLabel: 'l', rightLabel: 'r' });
    expect(chart.readUInt32BE(16)).toBe(1000);
  });

  it('labels an axis without rounding small fractions to the same number', () => {
    expect([0, 0.88, 1.76, 2.64, 3.52, 4.4].map(axisLabel)).toEqual(['0', '0.9', '1.8', '2.6', '3.5', '4.4']);
    expect([12, 1500, 35_000, 2_500_000].map(axisLabel)).toEqual(['12', '1.5K', '35K', '2.5M']);
  });

  it('percentiles by rank', () => {
    const v = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(v, 50)).toBe(50);
    expect(percentile(v, 99)).toBe(99);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });
});
