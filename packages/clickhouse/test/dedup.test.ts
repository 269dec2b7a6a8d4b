// A replayed insert (same dedup token) is stored once in rated_events AND in the hourly
// rollup the materialized view feeds; a different token is a new insert.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@drawdown/log';
import { RowBinaryWriter, command, insertRowBinary, insertRows, insertSelect, insertTsv, migrateClickHouse, openClickHouse, queryRows, tsvDateTime64, tsvField, type Ch } from '../src/index';

const row = (seq: number, amount: string) => ({
  partition: 0, seq, batch_id: 'b', customer_id: 'cus_1', external_customer_id: 'acme', idempotency_key: `k${seq}`, event_name: 'call',
  timestamp: Date.UTC(2026, 0, 1, 10, 30), received_at: Date.UTC(2026, 0, 1, 10, 30), properties: '{}', subscription_id: 's', price_id: 'p', metric_id: 'm',
  group_key: '', period_start: Date.UTC(2026, 0, 1), quantity: '1', amount, pricing_unit: 'credits', status: 'rated', reason: '', catalog_version: 1,
});

/** An embedded ClickHouse with the schema, in a data directory of its own, for the enclosing describe. */
function embeddedClickHouse(): { ch: Ch; dir: string } {
  const db = { ch: undefined as unknown as Ch, dir: '' };
  beforeAll(async () => {
    db.dir = mkdtempSync(join(tmpdir(), 'drawdown-ch-'));
    db.ch = await openClickHouse({ url: '', dataDir: db.dir }, silentLogger);
    await migrateClickHouse(db.ch);
  });
  afterAll(async () => {
    await db.ch?.close();
    rmSync(db.dir, { recursive: true, force: true });
  });
  return db;
}

/** The rated_events columns the TabSeparated and RowBinary tests write. */
const columns = ['partition', 'seq', 'batch_id', 'idempotency_key', 'timestamp', 'received_at', 'period_start', 'properties', 'quantity', 'amount', 'status'];

describe('ClickHouse insert dedup', () => {
  const db = embeddedClickHouse();

  it('drops a replayed batch in the table and in the rollup', async () => {
    const batch = [row(1, '0.000000000001'), row(2, '1.5'), row(3, '2.333333333333')];
    await insertRows(db.ch, 'rated_events', batch, 'rated:0:1-3');
    await insertRows(db.ch, 'rated_events', batch, 'rated:0:1-3'); // replay
    await insertRows(db.ch, 'rated_events', [row(1, '0.000000000001')], 'rated:0:1-3'); // replay with other content: still dropped
    await insertRows(db.ch, 'rated_events', [row(4, '10')], 'rated:0:4-4'); // a new batch
    const t = await queryRows<{ n: string; a: string }>(db.ch, 'SELECT count() AS n, sum(amount) AS a FROM rated_events');
    expect(t[0]).toEqual({ n: '4', a: '13.833333333334' });
    const r = await queryRows<{ n: string; a: string }>(db.ch, 'SELECT sum(events) AS n, sum(amount) AS a FROM usage_hourly');
    expect(r[0]).toEqual({ n: '4', a: '13.833333333334' });
    // A large batch is one block (one part): all of it or none of it lands, and a replay's
    // token covers the whole batch rather than block by block.
    const parts = async () => Number((await queryRows<{ n: string }>(db.ch, "SELECT count() AS n FROM system.parts WHERE table = 'rated_events' AND active"))[0]!.n);
    const before = await parts();
    const big = Array.from({ length: 50_000 }, (_, i) => ({ ...row(100 + i, '0.5'), properties: JSON.stringify({ pad: 'x'.repeat(50), i }) }));
    await insertRows(db.ch, 'rated_events', big, 'rated:0:100-50099');
    expect(await parts()).toBe(before + 1);
    await insertRows(db.ch, 'rated_events', big.slice(0, 30_000), 'rated:0:100-50099');
    expect((await queryRows<{ n: string }>(db.ch, 'SELECT count() AS n FROM rated_events WHERE seq >= 100'))[0]!.n).toBe('50000');
    // A later statement without a token is not affected by the earlier one (chDB keeps settings per session).
    await insertRows(db.ch, 'rated_events', [row(5, '1')]);
    await insertRows(db.ch, 'rated_events', [row(5, '1')]);
    const u = await queryRows<{ n: string }>(db.ch, 'SELECT count() AS n FROM rated_events WHERE seq = 5');
    expect(u[0]!.n).toBe('2');
  });
});

describe('TabSeparated inserts (insertTsv)', () => {
  const db = embeddedClickHouse();

  const line = (seq: number, key: string, props: string, ts: number) =>
    [0, seq, 'b', tsvField(key), tsvDateTime64(ts), tsvDateTime64(ts + 1), tsvDateTime64(0), tsvField(props), '1', '0.000000000001', 'rated'].join('\t') + '\n';

  it('stores awkward strings and timestamps exactly, and drops a replay with the same token', async () => {
    const key = 'k\twith\ttabs\nand newline\\ and \\t backslashes\r';
    const props = JSON.stringify({ note: 'tab\there', path: 'C:\\dir', nl: 'a\nb' });
    const body = line(1, key, props, 1_767_263_400_123) + line(2, 'plain', '{}', 86_400_000);
    await insertTsv(db.ch, 'rated_events', { columns, body, rows: 2 }, 'tsv:1');
    await insertTsv(db.ch, 'rated_events', { columns, body: Buffer.from(line(3, 'other', '{}', 1)), rows: 1 }, 'tsv:1'); // replay: dropped
    const rows = await queryRows<{ k: string; p: string; t: string; r: string; ps: string; a: string }>(db.ch,
      'SELECT idempotency_key AS k, properties AS p, toUnixTimestamp64Milli(timestamp) AS t, toUnixTimestamp64Milli(received_at) AS r, toUnixTimestamp64Milli(period_start) AS ps, amount AS a FROM rated_events ORDER BY seq');
    expect(rows).toEqual([
      { k: key, p: props, t: '1767263400123', r: '1767263400124', ps: '0', a: '0.000000000001' },
      { k: 'plain', p: '{}', t: '86400000', r: '86400001', ps: '0', a: '0.000000000001' },
    ]);
    expect(() => tsvDateTime64(-1)).toThrow(/timestamp -1/);
  });
});

describe('RowBinary inserts (insertRowBinary)', () => {
  const db = embeddedClickHouse();

  const write = (w: RowBinaryWriter, seq: number, key: string, props: Record<string, unknown> | string, ts: number, amount: bigint) => {
    w.u16(1).u64(seq).string('b').string(key).dateTime64(ts).dateTime64(ts + 1).dateTime64(0);
    if (typeof props === 'string' || !w.json(props)) w.string(typeof props === 'string' ? props : JSON.stringify(props));
    w.decimal128(1_000_000_000_000n).decimal128(amount).string('rated');
  };
  const read = () => queryRows<{ s: string; k: string; p: string; t: string; r: string; a: string }>(db.ch,
    'SELECT seq AS s, idempotency_key AS k, properties AS p, toUnixTimestamp64Milli(timestamp) AS t, toUnixTimestamp64Milli(received_at) AS r, toString(amount) AS a FROM rated_events ORDER BY seq');

  it('stores binary numbers holding newline bytes, awkward strings, long JSON and 128-bit decimals exactly, and drops a replay with the same token', async () => {
    const w = new RowBinaryWriter(16);
    // seq 2570 and timestamp 0x0a0a... hold two newline bytes in a row (inline insert data would end there).
    const key = 'k\twith\ttabs\n\nand newlines\\ \u00e9\u4e2d\ud83d\ude00 lone \ud800 end';
    const props = { note: 'tab\there "quoted" \\ \u0001', path: 'C:\\dir', nl: 'a\n\nb', n: 1.5, big: 'x'.repeat(300), t: true, z: null, u: '\u00e9\ud83d\ude00\udc00' };
    write(w, 2570, key, props, 0x0a0a0a0a0a, -123_456_789_012_345_678_901_234_567n);
    write(w, 2571, 'plain', {}, 86_400_000, 2n ** 100n + 1n);
    write(w, 2572, 'k'.repeat(200), 'not json but a long string: ' + 'y'.repeat(20_000), 1, 1n);
    await insertRowBinary(db.ch, 'rated_events', { columns, body: w.bytes(), rows: 3 }, 'rb:1');
    const replay = new RowBinaryWriter();
    write(replay, 3000, 'other', {}, 1, 1n);
    await insertRowBinary(db.ch, 'rated_events', { columns, body: replay.bytes(), rows: 1 }, 'rb:1'); // replay: dropped
    const rows = await read();
    expect(rows).toEqual([
      { s: '2570', k: key.replace('\ud800', '\ufffd'), p: JSON.stringify(props), t: String(0x0a0a0a0a0a), r: String(0x0a0a0a0a0a + 1), a: '-123456789012345.678901234567' },
      { s: '2571', k: 'plain', p: '{}', t: '86400000', r: '86400001', a: '1267650600228229401.496703205377' },
      { s: '2572', k: 'k'.repeat(200), p: 'not json but a long string: ' + 'y'.repeat(20_000), t: '1', r: '2', a: '0.000000000001' },
    ]);
    // One payload file, reused by the inserts that ran one after the other.
    expect(readdirSync(db.ch.insertFilesDir!)).toHaveLength(1);
  });

  it('inserts a large payload as one part, and drops a replay of it with other content', async () => {
    const parts = async () => Number((await queryRows<{ n: string }>(db.ch, "SELECT count() AS n FROM system.parts WHERE table = 'rated_events' AND active"))[0]!.n);
    const before = await parts();
    const big = (n: number, amount: bigint) => {
      const w = new RowBinaryWriter();
      for (let i = 0; i < n; i++) write(w, 100_000 + i, `big${i}`, { pad: 'x'.repeat(50), i }, 1_767_263_400_000 + i, amount);
      return w.bytes();
    };
    await insertRowBinary(db.ch, 'rated_events', { columns, body: big(50_000, 1n), rows: 50_000 }, 'rb:big');
    expect(await parts()).toBe(before + 1);
    await insertRowBinary(db.ch, 'rated_events', { columns, body: big(30_000, 2n), rows: 30_000 }, 'rb:big'); // replay, other content
    const r = await queryRows<{ n: string; a: string }>(db.ch, 'SELECT count() AS n, toString(sum(amount)) AS a FROM rated_events WHERE seq >= 100000');
    expect(r[0]).toEqual({ n: '50000', a: '0.00000005' });
  });

  it('stores nothing of a payload that does not parse; a shorter payload in a reused file is read to its own end; the files go with the connection', async () => {
    const before = await read();
    const w = new RowBinaryWriter();
    write(w, 5000, 'good', {}, 1, 1n);
    w.u16(1).u64(5001); // a row cut short
    await expect(insertRowBinary(db.ch, 'rated_events', { columns, body: w.bytes(), rows: 2 }, 'rb:2')).rejects.toThrow();
    expect(await read()).toEqual(before);
    // The file held the longer payloads before: only this one's bytes are read.
    const short = new RowBinaryWriter();
    write(short, 6000, 'short', {}, 1, 1n);
    await insertRowBinary(db.ch, 'rated_events', { columns, body: short.bytes(), rows: 1 }, 'rb:3');
    expect((await read()).filter((x) => x.s === '6000')).toEqual([{ s: '6000', k: 'short', p: '{}', t: '1', r: '2', a: '0.000000000001' }]);
    // Two inserts at once: two files.
    const two = [7000, 7001].map((seq) => {
      const x = new RowBinaryWriter();
      write(x, seq, `c${seq}`, {}, 1, 1n);
      return insertRowBinary(db.ch, 'rated_events', { columns, body: x.bytes(), rows: 1 }, `rb:${seq}`);
    });
    await Promise.all(two);
    expect((await read()).map((x) => x.s).filter((x) => x.startsWith('700'))).toEqual(['7000', '7001']);
    const filesDir = db.ch.insertFilesDir!;
    expect(readdirSync(filesDir)).toHaveLength(2);
    await db.ch.close();
    expect(() => readdirSync(filesDir)).toThrow(/ENOENT/);
    db.ch = await openClickHouse({ url: '', dataDir: db.dir }, silentLogger);
    expect(() => new RowBinaryWriter().dateTime64(-1)).toThrow(/timestamp -1/);
    expect(() => new RowBinaryWriter().decimal128(2n ** 127n)).toThrow(/out of range/);
  });
});

describe('completing an insert a crash cut short (insertSelect)', () => {
  const db = embeddedClickHouse();

  it('gives the rollup the stored rows once, where a replay priced again would give it other amounts', async () => {
    const rollup = async (batch: string) =>
      (await queryRows<{ n: string; a: string }>(db.ch, 'SELECT sum(events) AS n, sum(amount) AS a FROM usage_hourly WHERE customer_id = {c:String}', { c: batch }))[0];
    const stored = (b: string) => [row(1, '1.5'), row(2, '2.25')].map((r) => ({ ...r, batch_id: b, customer_id: b }));
    const select = "SELECT * FROM rated_events WHERE partition = 0 AND batch_id = {b:String} ORDER BY seq";
    // What a process killed between the two parts leaves: the batch in rated_events (its token
    // recorded there), nothing in the rollup. Emulated by inserting while the view is detached.
    const cutShort = async (b: string) => {
      await command(db.ch, 'DETACH TABLE usage_hourly_mv');
      await insertRows(db.ch, 'rated_events', stored(b), `rated:${b}`);
      await command(db.ch, 'ATTACH TABLE usage_hourly_mv');
      expect(await rollup(b)).toEqual({ n: '0', a: '0' });
    };

    // Replaying the batch priced again (other amounts, same token): the table drops it, the
    // rollup takes the new amounts and no longer matches the table. This is what the rater did.
    await cutShort('crash-a');
    await insertRows(db.ch, 'rated_events', stored('crash-a').map((r) => ({ ...r, amount: '9' })), 'rated:crash-a');
    expect(await rollup('crash-a')).toEqual({ n: '2', a: '18' });

    // Re-inserting the stored rows under the same token: the rollup gets exactly them, once.
    await cutShort('crash-b');
    await insertSelect(db.ch, 'rated_events', select, { b: 'crash-b' }, 'rated:crash-b');
    await insertSelect(db.ch, 'rated_events', select, { b: 'crash-b' }, 'rated:crash-b');
    expect(await rollup('crash-b')).toEqual({ n: '2', a: '3.75' });
    const t = await queryRows<{ n: string; a: string }>(db.ch, "SELECT count() AS n, sum(amount) AS a FROM rated_events WHERE batch_id = 'crash-b'");
    expect(t[0]).toEqual({ n: '2', a: '3.75' });

    // After an insert that completed, the same repair changes nothing anywhere.
    await insertRows(db.ch, 'rated_events', stored('whole'), 'rated:whole');
    await insertSelect(db.ch, 'rated_events', select, { b: 'whole' }, 'rated:whole');
    expect(await rollup('whole')).toEqual({ n: '2', a: '3.75' });
    expect((await queryRows<{ n: string }>(db.ch, "SELECT count() AS n FROM rated_events WHERE batch_id = 'whole'"))[0]!.n).toBe('2');
  });
});
