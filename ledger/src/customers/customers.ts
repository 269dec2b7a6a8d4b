// Customers (Orb's shape). The skeleton keeps the fields the walkthrough needs; the rest of
// Orb's customer fields are stored as given in `attrs`.
import type { Queryable } from '@drawdown/pg';
import { ApiError, Problems } from '@drawdown/http';
import { newId } from '../ids';

export interface CustomerRow {
  id: string;
  external_customer_id: string | null;
  name: string;
  email: string;
  currency: string | null;
  timezone: string;
  metadata: Record<string, string>;
  attrs: Record<string, unknown>;
  created_at: Date;
}

const COLUMNS = 'id, external_customer_id, name, email, currency, timezone, metadata, attrs, created_at';

export function customerDto(c: CustomerRow): Record<string, unknown> {
  return {
    id: c.id,
    external_customer_id: c.external_customer_id,
    name: c.name,
    email: c.email,
    currency: c.currency,
    timezone: c.timezone,
    metadata: c.metadata,
    created_at: c.created_at.toISOString(),
    balance: '0.00',
    ...c.attrs,
  };
}

const KNOWN = new Set(['name', 'email', 'external_customer_id', 'currency', 'timezone', 'metadata']);

export async function createCustomer(db: Queryable, body: unknown): Promise<CustomerRow> {
  const p = new Problems();
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('invalid_body', 'request body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.name !== 'string' || b.name.trim() === '') p.add('name', 'is required: a non-empty string');
  if (typeof b.email !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(b.email)) p.add('email', 'is required: an email address');
  if (b.external_customer_id !== undefined && b.external_customer_id !== null && (typeof b.external_customer_id !== 'string' || b.external_customer_id === '' || b.external_customer_id.length > 256)) {
    p.add('external_customer_id', 'must be a non-empty string of at most 256 characters');
  }
  if (b.timezone !== undefined && b.timezone !== null) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: String(b.timezone) });
    } catch {
      p.add('timezone', `"${String(b.timezone)}" is not an IANA time zone`);
    }
  }
  if (b.metadata !== undefined && b.metadata !== null && (typeof b.metadata !== 'object' || Array.isArray(b.metadata))) p.add('metadata', 'must be an object of strings');
  p.throwIfAny('customer');
  const attrs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(b)) if (!KNOWN.has(k)) attrs[k] = v;
  try {
    const r = await db.query<CustomerRow>(
      `INSERT INTO customers (id, external_customer_id, name, email, currency, timezone, metadata, attrs)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
      [newId(), b.external_customer_id ?? null, b.name, b.email, b.currency ?? null, b.timezone ?? 'UTC', JSON.stringify(b.metadata ?? {}), JSON.stringify(attrs)],
    );
    return r.rows[0]!;
  } catch (err) {
    if ((err as { code?: string }).code === '23505') {
      throw new ApiError('conflict', `external_customer_id: a customer with external_customer_id "${String(b.external_customer_id)}" exists already`, [{ field: 'external_customer_id', message: 'is taken' }]);
    }
    throw err;
  }
}

export async function findCustomer(db: Queryable, ref: { id?: string; externalId?: string }): Promise<CustomerRow> {
  const r = ref.id !== undefined
    ? await db.query<CustomerRow>(`SELECT ${COLUMNS} FROM customers WHERE id = $1`, [ref.id])
    : await db.query<CustomerRow>(`SELECT ${COLUMNS} FROM customers WHERE external_customer_id = $1`, [ref.externalId]);
  const row = r.rows[0];
  if (!row) throw new ApiError('not_found', ref.id !== undefined ? `no customer with id "${ref.id}"` : `no customer with external_customer_id "${ref.externalId}"`);
  return row;
}
