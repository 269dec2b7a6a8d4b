// Input checks and list pages shared by the catalog and customer endpoints: every check adds
// to a Problems collector under the field's JSON path, so one request reports every problem.
import { ApiError, Problems, decodeCursor, encodeCursor, parseLimit, type Request } from '@drawdown/http';
import { assertExactJsonNumbers, formatDecimal, parseDecimal } from '@drawdown/money';
import type { Queryable } from '@drawdown/pg';

export type Json = Record<string, unknown>;

/** Size limits of catalog inputs (settings DRAWDOWN_CATALOG_* and DRAWDOWN_CUSTOMER_*). */
export interface CatalogLimits {
  maxPricesPerPlan: number;
  maxPriceEntries: number;
  maxAdditionalEmails: number;
  maxUsageBuckets: number;
}

export const DEFAULT_LIMITS: CatalogLimits = { maxPricesPerPlan: 100, maxPriceEntries: 1000, maxAdditionalEmails: 50, maxUsageBuckets: 1000 };

export function obj(body: unknown): Json {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('invalid_body', 'request body must be a JSON object');
  return body as Json;
}

/** The JSON body, refusing numbers a double cannot hold exactly (send those as strings). */
export function exactJson(req: Request): unknown {
  assertExactJsonNumbers(req.body.toString('utf8'));
  return req.json();
}

export const given = (v: unknown): boolean => v !== undefined && v !== null;

/** A string field: required (non-empty) or optional; `max` characters. Returns it or undefined. */
export function str(p: Problems, b: Json, field: string, opts: { required?: boolean; max?: number; at?: string } = {}): string | undefined {
  const v = b[field];
  const name = opts.at ?? field;
  const max = opts.max ?? 1000;
  if (!given(v)) {
    if (opts.required) p.add(name, 'is required: a non-empty string');
    return undefined;
  }
  if (typeof v !== 'string' || v.trim() === '') {
    p.add(name, 'must be a non-empty string');
    return undefined;
  }
  if (v.length > max) {
    p.add(name, `must be at most ${max} characters`);
    return undefined;
  }
  return v;
}

export function bool(p: Problems, b: Json, field: string, at = field): boolean | undefined {
  const v = b[field];
  if (!given(v)) return undefined;
  if (typeof v !== 'boolean') {
    p.add(at, 'must be true or false');
    return undefined;
  }
  return v;
}

export function int(p: Problems, b: Json, field: string, min: number, max: number, at = field): number | undefined {
  const v = b[field];
  if (!given(v)) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    p.add(at, `must be an integer from ${min} to ${max}`);
    return undefined;
  }
  return v;
}

/** Orb's metadata: string values; null (on update) removes a key. */
export function metadata(p: Problems, b: Json, field = 'metadata', at = field): Record<string, string | null> | null | undefined {
  const v = b[field];
  if (v === undefined) return undefined;
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) {
    p.add(at, 'must be an object of string values');
    return undefined;
  }
  const out: Record<string, string | null> = {};
  for (const [k, x] of Object.entries(v as Json)) {
    if (x !== null && typeof x !== 'string') p.add(`${at}.${k}`, 'must be a string (or null to remove the key)');
    else if (k.length > 256) p.add(at, `key "${k.slice(0, 20)}..." is longer than 256 characters`);
    else out[k] = x;
  }
  return out;
}

/** Applies a metadata patch: keys set, null values removed; a null patch clears everything. */
export function mergeMetadata(current: Record<string, string>, patch: Record<string, string | null> | null | undefined): Record<string, string> {
  if (patch === undefined) return current;
  if (patch === null) return {};
  const out = { ...current };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** Drops null values (metadata on create). */
export function cleanMetadata(m: Record<string, string | null> | null | undefined): Record<string, string> {
  return mergeMetadata({}, m ?? {});
}

/** An exact decimal (string, or a JSON number that survived parsing), as its minimal text. */
export function decimal(p: Problems, v: unknown, at: string, opts: { required?: boolean; min?: 'zero' | 'positive' } = {}): string | undefined {
  if (!given(v)) {
    if (opts.required) p.add(at, 'is required: a decimal string such as "0.25"');
    return undefined;
  }
  if (typeof v !== 'string' && typeof v !== 'number') {
    p.add(at, 'must be a decimal string such as "0.25"');
    return undefined;
  }
  let picos: bigint;
  try {
    picos = parseDecimal(v, at);
  } catch (err) {
    p.add(at, (err as Error).message.replace(`${at}: `, ''));
    return undefined;
  }
  if (opts.min === 'zero' && picos < 0n) {
    p.add(at, 'must not be negative');
    return undefined;
  }
  if (opts.min === 'positive' && picos <= 0n) {
    p.add(at, 'must be greater than zero');
    return undefined;
  }
  return formatDecimal(picos);
}

/** An ISO 8601 date or date-time (a bare date is midnight UTC). */
export function date(p: Problems, v: unknown, at: string): Date | undefined {
  if (!given(v)) return undefined;
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(v) || Number.isNaN(Date.parse(v))) {
    p.add(at, 'must be an ISO 8601 date or date-time, e.g. 2026-01-01T00:00:00Z');
    return undefined;
  }
  return new Date(v);
}

export const isFiat = (code: string): boolean => /^[A-Z]{3}$/.test(code);

/** A currency is a fiat code (ISO 4217 shape) or the name of a pricing unit. */
export async function checkCurrency(db: Queryable, p: Problems, code: string, at: string): Promise<'fiat' | 'pricing_unit' | undefined> {
  if (isFiat(code)) return 'fiat';
  const r = await db.query('SELECT 1 FROM pricing_units WHERE name = $1', [code]);
  if (r.rowCount === 1) return 'pricing_unit';
  p.add(at, `"${code}" is neither a currency code (e.g. USD) nor a pricing unit; create it with POST /v1/pricing_units`);
  return undefined;
}

// ---- list pages: newest first, keyset on (created_at, id); the cursor holds both exactly.

export interface PageQuery {
  limit: number;
  after?: { us: string; id: string };
}

export function pageQuery(query: URLSearchParams): PageQuery {
  const limit = parseLimit(query);
  const key = decodeCursor(query.get('cursor'));
  if (key === undefined) return { limit };
  const [us, id] = key;
  if (typeof us !== 'string' || !/^-?\d{1,20}$/.test(us) || typeof id !== 'string') {
    throw new ApiError('validation_failed', 'cursor: not a cursor this API returned', [{ field: 'cursor', message: 'not a cursor this API returned' }]);
  }
  return { limit, after: { us, id } };
}

/** Column list addition that carries the exact sort key. */
export const pageKey = (alias: string): string => `(extract(epoch FROM ${alias}.created_at) * 1000000)::bigint::text AS page_us`;

/** WHERE fragments for the cursor and Orb's created_at[gt|gte|lt|lte] filters; pushes params. */
export function pageFilters(pq: PageQuery, query: URLSearchParams, alias: string, params: unknown[]): string[] {
  const where: string[] = [];
  if (pq.after) {
    params.push(pq.after.us, pq.after.id);
    where.push(`(${alias}.created_at, ${alias}.id) < ('epoch'::timestamptz + $${params.length - 1}::bigint * interval '1 microsecond', $${params.length})`);
  }
  const p = new Problems();
  for (const [op, sql] of [['gt', '>'], ['gte', '>='], ['lt', '<'], ['lte', '<=']] as const) {
    const field = `created_at[${op}]`;
    const v = query.get(field);
    if (v === null) continue;
    const d = date(p, v, field);
    if (d) {
      params.push(d);
      where.push(`${alias}.created_at ${sql} $${params.length}`);
    }
  }
  p.throwIfAny('query');
  return where;
}

export function toPage<R extends { page_us: string; id: string }, T>(rows: R[], limit: number, dto: (r: R) => T): { data: T[]; pagination_metadata: { has_more: boolean; next_cursor: string | null } } {
  const hasMore = rows.length > limit;
  const slice = hasMore ? rows.slice(0, limit) : rows;
  const last = slice[slice.length - 1];
  return { data: slice.map(dto), pagination_metadata: { has_more: hasMore, next_cursor: hasMore && last ? encodeCursor([last.page_us, last.id]) : null } };
}

export function notFound(what: string, field: string, value: string): ApiError {
  return new ApiError('not_found', `no ${what} with ${field} "${value}"`);
}

/** A reference in the body to a row that does not exist: a 400 naming the field. */
export function badRef(field: string, what: string, value: unknown): ApiError {
  return new ApiError('validation_failed', `${field}: no ${what} with id "${String(value)}"`, [{ field, message: `no such ${what}` }]);
}
