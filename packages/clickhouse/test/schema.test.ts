// The schema's migration: rated_events merges lazily (merge_selector_base), also when the table
// was created by an earlier version of the schema without the setting.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@drawdown/log';
import { RATED_EVENTS_MERGE_SELECTOR_BASE, SCHEMA, command, migrateClickHouse, openClickHouse, queryRows, type Ch } from '../src/index';

const opened: { ch: Ch; dir: string }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0)) {
    await o.ch.close();
    rmSync(o.dir, { recursive: true, force: true });
  }
});

async function open(): Promise<Ch> {
  const dir = mkdtempSync(join(tmpdir(), 'drawdown-ch-schema-'));
  const ch = await openClickHouse({ url: '', dataDir: dir }, silentLogger);
  opened.push({ ch, dir });
  return ch;
}

const createStatement = async (ch: Ch, table: string) => (await queryRows<{ s: string }>(ch, 'SELECT create_table_query AS s FROM system.tables WHERE database = currentDatabase() AND name = {t:String}', { t: table }))[0]?.s ?? '';

describe('migrateClickHouse', () => {
  it('sets the merge selector base on rated_events only', async () => {
    const ch = await open();
    await migrateClickHouse(ch);
    expect(await createStatement(ch, 'rated_events')).toMatch(new RegExp(`merge_selector_base = ${RATED_EVENTS_MERGE_SELECTOR_BASE}\\b`));
    expect(await createStatement(ch, 'usage_hourly')).not.toMatch(/merge_selector_base/);
  });

  it('takes another base when given one (a later start may change it), and refuses one below 2', async () => {
    const ch = await open();
    await migrateClickHouse(ch, { mergeSelectorBase: 50 });
    expect(await createStatement(ch, 'rated_events')).toMatch(/merge_selector_base = 50\b/);
    await migrateClickHouse(ch, { mergeSelectorBase: 7 });
    expect((await createStatement(ch, 'rated_events')).match(/merge_selector_base = (\d+)/g)).toEqual(['merge_selector_base = 7']);
    await expect(migrateClickHouse(ch, { mergeSelectorBase: 1 })).rejects.toThrow(/mergeSelectorBase: must be a whole number of at least 2, got 1/);
  });

  it('gives the setting to a table an earlier schema created, and is idempotent', async () => {
    const ch = await open();
    for (const statement of SCHEMA) await command(ch, statement);
    expect(await createStatement(ch, 'rated_events')).not.toMatch(/merge_selector_base/);
    await migrateClickHouse(ch);
    await migrateClickHouse(ch);
    const after = await createStatement(ch, 'rated_events');
    expect(after.match(/merge_selector_base = (\d+)/g)).toEqual([`merge_selector_base = ${RATED_EVENTS_MERGE_SELECTOR_BASE}`]);
    expect(after).toMatch(/non_replicated_deduplication_window = 100000/);
  });
});
