// Items (what a price bills for), billable metrics (what is metered, Orb's sql subset) and
// pricing units (custom currencies such as credits, with an exact rate to a fiat currency).
import { bumpCatalogVersion, type MetricDefinition } from '@drawdown/catalog';
import { ApiError, Problems } from '@drawdown/http';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { withTx, type Pool, type Queryable } from '@drawdown/pg';
import { newId } from '../ids';
import { parseMetricSql } from '../sql-metric';
import {
  badRef, cleanMetadata, decimal, given, mergeMetadata, metadata, notFound, obj, pageFilters, pageKey, pageQuery, str, toPage, type Json,
} from './input';

// ---- items

interface ItemRow {
  id: string;
  name: string;
  metadata: Record<string, string>;
  external_connections: Json[];
  archived_at: Date | null;
  created_at: Date;
}

const itemDto = (r: ItemRow): Json => ({
  id: r.id, name: r.name, metadata: r.metadata, external_connections: r.external_connections,
  archived_at: r.archived_at ? r.archived_at.toISOString() : null, created_at: r.created_at.toISOString(),
});

const CONNECTIONS = ['stripe', 'quickbooks', 'bill.com', 'netsuite', 'taxjar', 'avalara', 'anrok', 'numeral', 'stripe_tax'];

export async function createItem(pool: Pool, body: unknown): Promise<Json> {
  const b = obj(body);
  const p = new Problems();
  const name = str(p, b, 'name', { required: true, max: 500 });
  const meta = metadata(p, b);
  p.throwIfAny('item');
  return withTx(pool, async (c) => {
    const r = await c.query<ItemRow>('INSERT INTO items (id, name, metadata) VALUES ($1, $2, $3) RETURNING *', [newId(), name, JSON.stringify(cleanMetadata(meta))]);
    await bumpCatalogVersion(c);
    return itemDto(r.rows[0]!);
  });
}

export async function fetchItem(db: Queryable, id: string): Promise<Json> {
  const r = await db.query<ItemRow>('SELECT * FROM items WHERE id = $1', [id]);
  if (!r.rows[0]) throw notFound('item', 'id', id);
  return itemDto(r.rows[0]);
}

export async function updateItem(pool: Pool, id: string, body: unknown): Promise<Json> {
  const b = obj(body);
  const p = new Problems();
  const name = str(p, b, 'name', { max: 500 });
  const meta = metadata(p, b);
  let connections: Json[] | undefined;
  if (given(b.external_connections)) {
    if (!Array.isArray(b.external_connections)) p.add('external_connections', 'must be an array of {external_connection_name, external_entity_id}');
    else {
      connections = [];
      for (const [i, x] of (b.external_connections as Json[]).entries()) {
        if (!CONNECTIONS.includes(x?.external_connection_name as string)) p.add(`external_connections[${i}].external_connection_name`, `must be one of ${CONNECTIONS.join(', ')}`);
        if (typeof x?.external_entity_id !== 'string' || x.external_entity_id === '') p.add(`external_connections[${i}].external_entity_id`, 'is required: a non-empty string');
        connections.push({ external_connection_name: x?.external_connection_name, external_entity_id: x?.external_entity_id });
      }
    }
  }
  p.throwIfAny('item');
  return withTx(pool, async (c) => {
    const cur = await c.query<ItemRow>('SELECT * FROM items WHERE id = $1 FOR UPDATE', [id]);
    if (!cur.rows[0]) throw notFound('item', 'id', id);
    const r = await c.query<ItemRow>(
      'UPDATE items SET name = $2, metadata = $3, external_connections = $4 WHERE id = $1 RETURNING *',
      [id, name ?? cur.rows[0].name, JSON.stringify(mergeMetadata(cur.rows[0].metadata, meta)), JSON.stringify(connections ?? cur.rows[0].external_connections)],
    );
    await bumpCatalogVersion(c);
    return itemDto(r.rows[0]!);
  });
}

export async function listItems(db: Queryable, query: URLSearchParams): Promise<Json> {
  const pq = pageQuery(query);
  const params: unknown[] = [];
  const where = pageFilters(pq, query, 'i', params);
  params.push(pq.limit + 1);
  const r = await db.query<ItemRow & { page_us: string }>(
    `SELECT i.*, ${pageKey('i')} FROM items i ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY i.created_at DESC, i.id DESC LIMIT $${params.length}`,
    params,
  );
  return toPage(r.rows, pq.limit, itemDto);
}

// ---- metrics

interface MetricRow {
  id: string;
  name: string;
  description: string | null;
  item_id: string;
  sql: string;
  definition: Json;
  status: string;
  metadata: Record<string, string>;
  created_at: Date;
}

const METRIC_SELECT = `SELECT m.*, row_to_json(i.*) AS item FROM metrics m JOIN items i ON i.id = m.item_id`;

const metricDto = (r: MetricRow & { item: Json }): Json => ({
  id: r.id, name: r.name, description: r.description, sql: r.sql, status: r.status, metadata: r.metadata,
  item: itemDto({ ...(r.item as unknown as ItemRow), created_at: new Date(r.item.created_at as string), archived_at: r.item.archived_at ? new Date(r.item.archived_at as string) : null }),
  definition: r.definition, parameter_definitions: null, created_at: r.created_at.toISOString(),
});

export async function createMetric(pool: Pool, body: unknown): Promise<Json> {
  const b = obj(body);
  const p = new Problems();
  const name = str(p, b, 'name', { required: true, max: 500 });
  const itemId = str(p, b, 'item_id', { required: true });
  if (given(b.description) && typeof b.description !== 'string') p.add('description', 'must be a string or null');
  let definition: MetricDefinition | undefined;
  if (typeof b.sql !== 'string' || b.sql.trim() === '') p.add('sql', "is required, e.g. SELECT count(*) FROM events WHERE event_name = 'api_call'");
  else if (b.sql.length > 10_000) p.add('sql', 'must be at most 10000 characters');
  else {
    try {
      definition = parseMetricSql(b.sql);
    } catch (err) {
      p.add('sql', (err as Error).message.replace(/^sql: /, ''));
    }
  }
  const meta = metadata(p, b);
  p.throwIfAny('metric');
  return withTx(pool, async (c) => {
    const item = await c.query('SELECT 1 FROM items WHERE id = $1', [itemId]);
    if (item.rowCount === 0) throw badRef('item_id', 'item', itemId);
    const id = newId();
    await c.query(
      'INSERT INTO metrics (id, name, description, item_id, sql, definition, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [id, name, b.description ?? null, itemId, b.sql, JSON.stringify(definition), JSON.stringify(cleanMetadata(meta))],
    );
    await bumpCatalogVersion(c);
    return fetchMetric(c, id);
  });
}

export async function fetchMetric(db: Queryable, id: string): Promise<Json> {
  const r = await db.query<MetricRow & { item: Json }>(`${METRIC_SELECT} WHERE m.id = $1`, [id]);
  if (!r.rows[0]) throw notFound('metric', 'id', id);
  return metricDto(r.rows[0]);
}

/** Orb lets a metric's metadata change; its definition is fixed once prices use it. */
export async function updateMetric(pool: Pool, id: string, body: unknown): Promise<Json> {
  const b = obj(body);
  const p = new Problems();
  const meta = metadata(p, b);
  for (const k of ['sql', 'name', 'item_id']) if (b[k] !== undefined) p.add(k, 'cannot be changed: create a new metric (prices refer to this one)');
  p.throwIfAny('metric');
  return withTx(pool, async (c) => {
    const cur = await c.query<MetricRow>('SELECT * FROM metrics WHERE id = $1 FOR UPDATE', [id]);
    if (!cur.rows[0]) throw notFound('metric', 'id', id);
    await c.query('UPDATE metrics SET metadata = $2 WHERE id = $1', [id, JSON.stringify(mergeMetadata(cur.rows[0].metadata, meta))]);
    return fetchMetric(c, id);
  });
}

export async function listMetrics(db: Queryable, query: URLSearchParams): Promise<Json> {
  const pq = pageQuery(query);
  const params: unknown[] = [];
  const where = pageFilters(pq, query, 'm', params);
  params.push(pq.limit + 1);
  const r = await db.query<MetricRow & { item: Json; page_us: string }>(
    `${METRIC_SELECT.replace('SELECT m.*', `SELECT m.*, ${pageKey('m')}`)} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY m.created_at DESC, m.id DESC LIMIT $${params.length}`,
    params,
  );
  return toPage(r.rows, pq.limit, metricDto);
}

// ---- pricing units

interface UnitRow {
  name: string;
  display_name: string;
  currency: string;
  conversion_rate: string;
  metadata: Record<string, string>;
  created_at: Date;
  updated_at: Date;
}

const unitDto = (r: UnitRow): Json => ({
  id: r.name, name: r.name, display_name: r.display_name, currency: r.currency,
  conversion_rate: formatDecimal(parseDecimal(r.conversion_rate)), metadata: r.metadata,
  created_at: r.created_at.toISOString(), updated_at: r.updated_at.toISOString(),
});

const UNIT_NAME = /^[a-z][a-z0-9_]{0,62}$/;

function parseUnit(b: Json, create: boolean): { name?: string; display_name?: string; currency?: string; rate?: string; meta: ReturnType<typeof metadata> } {
  const p = new Problems();
  let name: string | undefined;
  if (create) {
    name = str(p, b, 'name', { required: true, max: 63 });
    if (name !== undefined && !UNIT_NAME.test(name)) p.add('name', 'must be lower case letters, digits and _ starting with a letter (e.g. compute_credits), so it never looks like a currency code');
  } else if (b.name !== undefined) p.add('name', 'cannot be changed (prices and balances are kept in it)');
  const display = str(p, b, 'display_name', { required: create, max: 200 });
  let currency: string | undefined;
  if (create || b.currency !== undefined) {
    if (!create) p.add('currency', 'cannot be changed; create another pricing unit');
    else if (typeof b.currency !== 'string' || !/^[A-Z]{3}$/.test(b.currency)) p.add('currency', 'is required: the ISO 4217 fiat currency it converts to, e.g. USD');
    else currency = b.currency;
  }
  const rate = decimal(p, b.conversion_rate, 'conversion_rate', { required: create, min: 'positive' });
  const meta = metadata(p, b);
  p.throwIfAny('pricing unit');
  return { name, display_name: display, currency, rate, meta };
}

export async function createPricingUnit(pool: Pool, body: unknown): Promise<Json> {
  const u = parseUnit(obj(body), true);
  return withTx(pool, async (c) => {
    try {
      const r = await c.query<UnitRow>(
        'INSERT INTO pricing_units (name, display_name, currency, conversion_rate, metadata) VALUES ($1, $2, $3, $4, $5) RETURNING *',
        [u.name, u.display_name, u.currency, u.rate, JSON.stringify(cleanMetadata(u.meta))],
      );
      await bumpCatalogVersion(c);
      return unitDto(r.rows[0]!);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new ApiError('conflict', `name: a pricing unit named "${u.name}" exists already`, [{ field: 'name', message: 'is taken' }]);
      throw err;
    }
  });
}

export async function fetchPricingUnit(db: Queryable, name: string): Promise<Json> {
  const r = await db.query<UnitRow>('SELECT * FROM pricing_units WHERE name = $1', [name]);
  if (!r.rows[0]) throw notFound('pricing unit', 'name', name);
  return unitDto(r.rows[0]);
}

/** Display name, metadata and the conversion rate (used for overage from then on) may change. */
export async function updatePricingUnit(pool: Pool, name: string, body: unknown): Promise<Json> {
  const u = parseUnit(obj(body), false);
  return withTx(pool, async (c) => {
    const cur = await c.query<UnitRow>('SELECT * FROM pricing_units WHERE name = $1 FOR UPDATE', [name]);
    if (!cur.rows[0]) throw notFound('pricing unit', 'name', name);
    const r = await c.query<UnitRow>(
      'UPDATE pricing_units SET display_name = $2, conversion_rate = $3, metadata = $4, updated_at = now() WHERE name = $1 RETURNING *',
      [name, u.display_name ?? cur.rows[0].display_name, u.rate ?? cur.rows[0].conversion_rate, JSON.stringify(mergeMetadata(cur.rows[0].metadata, u.meta))],
    );
    await bumpCatalogVersion(c);
    return unitDto(r.rows[0]!);
  });
}

export async function listPricingUnits(db: Queryable, query: URLSearchParams): Promise<Json> {
  const pq = pageQuery(query);
  const params: unknown[] = [];
  // Keyset on (created_at, name): the page helpers expect an `id` column.
  const where = pageFilters(pq, query, 'u', params).map((w) => w.replace('u.id)', 'u.name)'));
  params.push(pq.limit + 1);
  const r = await db.query<UnitRow & { page_us: string; id: string }>(
    `SELECT u.*, u.name AS id, ${pageKey('u')} FROM pricing_units u ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY u.created_at DESC, u.name DESC LIMIT $${params.length}`,
    params,
  );
  return toPage(r.rows, pq.limit, unitDto);
}
