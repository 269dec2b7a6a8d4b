// Orb's cursor pagination: `?limit=&cursor=`, answered as {data, pagination_metadata:
// {has_more, next_cursor}}. Cursors are opaque base64url of the last row's sort key.
import { ApiError } from './errors';

export interface Page<T> {
  data: T[];
  pagination_metadata: { has_more: boolean; next_cursor: string | null };
}

export const DEFAULT_LIMIT = 20;
export const MAX_LIMIT = 100;

export function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor(cursor: string | null): unknown[] | undefined {
  if (!cursor) return undefined;
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v)) return v;
  } catch {
    // fall through
  }
  throw new ApiError('validation_failed', 'cursor: not a cursor this API returned', [{ field: 'cursor', message: 'not a cursor this API returned' }]);
}

export function parseLimit(query: URLSearchParams): number {
  const raw = query.get('limit');
  if (raw === null || raw === '') return DEFAULT_LIMIT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) {
    throw new ApiError('validation_failed', `limit: must be an integer from 1 to ${MAX_LIMIT}`, [{ field: 'limit', message: `must be an integer from 1 to ${MAX_LIMIT}` }]);
  }
  return n;
}

/** Builds a page from `limit + 1` fetched rows; `keyOf` gives the sort key of a row. */
export function paginate<R, T>(rows: R[], limit: number, keyOf: (r: R) => unknown[], toDto: (r: R) => T): Page<T> {
  const has_more = rows.length > limit;
  const slice = has_more ? rows.slice(0, limit) : rows;
  const last = slice[slice.length - 1];
  return {
    data: slice.map(toDto),
    pagination_metadata: { has_more, next_cursor: has_more && last !== undefined ? encodeCursor(keyOf(last)) : null },
  };
}
