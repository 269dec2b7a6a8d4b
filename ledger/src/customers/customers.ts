// Customers in Orb's shape, with every billing setting of the onboarding as a real column:
// timezone (billing periods), currency (invoicing), net terms, auto-collection, auto-issuance,
// payment provider and its id, tax exemption, parent (a shared credit pool, one level deep).
import type { Queryable, Pool } from '@drawdown/pg';
import { withTx } from '@drawdown/pg';
import { bumpCatalogVersion, isTimeZone } from '@drawdown/catalog';
import { ApiError, Problems } from '@drawdown/http';
import { newId } from '../ids';
import {
  bool, cleanMetadata, DEFAULT_LIMITS, given, int, mergeMetadata, metadata, obj, pageFilters, pageKey, pageQuery, str, toPage, type CatalogLimits, type Json,
} from '../catalog/input';

export interface CustomerRow {
  id: string;
  external_customer_id: string | null;
  name: string;
  email: string;
  currency: string | null;
  timezone: string;
  metadata: Record<string, string>;
  attrs: Record<string, unknown>;
  parent_id: string | null;
  additional_emails: string[];
  auto_collection: boolean;
  auto_issuance: boolean | null;
  email_delivery: boolean;
  net_terms: number | null;
  payment_provider: string | null;
  payment_provider_id: string | null;
  billing_address: Json | null;
  shipping_address: Json | null;
  tax_id: Json | null;
  tax_exempt: boolean | null;
  tax_configuration: Json | null;
  created_at: Date;
}

const COLUMNS = `c.id, c.external_customer_id, c.name, c.email, c.currency, c.timezone, c.metadata, c.attrs, c.parent_id,
  c.additional_emails, c.auto_collection, c.auto_issuance, c.email_delivery, c.net_terms, c.payment_provider, c.payment_provider_id,
  c.billing_address, c.shipping_address, c.tax_id, c.tax_exempt, c.tax_configuration, c.created_at`;

export const PAYMENT_PROVIDERS = ['quickbooks', 'bill.com', 'stripe_charge', 'stripe_invoice', 'netsuite', 'adyen'] as const;
const TAX_PROVIDERS = ['avalara', 'taxjar', 'sphere', 'numeral', 'anrok', 'stripe'];
const ADDRESS_FIELDS = ['city', 'country', 'line1', 'line2', 'postal_code', 'state'] as const;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

interface Minified {
  id: string;
  external_customer_id: string | null;
}

export function customerDto(c: CustomerRow, hierarchy: { parent: Minified | null; children: Minified[] } = { parent: null, children: [] }): Json {
  const taxCfg = c.tax_configuration as { automatic_tax_enabled?: boolean | null } | null;
  return {
    ...c.attrs,
    id: c.id,
    external_customer_id: c.external_customer_id,
    name: c.name,
    email: c.email,
    additional_emails: c.additional_emails,
    auto_collection: c.auto_collection,
    auto_issuance: c.auto_issuance,
    balance: '0.00',
    billing_address: c.billing_address,
    shipping_address: c.shipping_address,
    created_at: c.created_at.toISOString(),
    currency: c.currency,
    email_delivery: c.email_delivery,
    exempt_from_automated_tax: c.tax_exempt,
    automatic_tax_enabled: taxCfg?.automatic_tax_enabled ?? null,
    tax_configuration: c.tax_configuration,
    hierarchy,
    metadata: c.metadata,
    net_terms: c.net_terms,
    payment_provider: c.payment_provider,
    payment_provider_id: c.payment_provider_id,
    portal_url: null,
    tax_id: c.tax_id,
    timezone: c.timezone,
    accounting_sync_configuration: (c.attrs.accounting_sync_configuration as unknown) ?? null,
    reporting_configuration: (c.attrs.reporting_configuration as unknown) ?? null,
    payment_configuration: (c.attrs.payment_configuration as unknown) ?? null,
    default_payment_method: null,
  };
}

function address(p: Problems, b: Json, field: string): Json | null | undefined {
  const v = b[field];
  if (v === undefined) return undefined;
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) {
    p.add(field, `must be an object with ${ADDRESS_FIELDS.join(', ')}`);
    return undefined;
  }
  const out: Json = {};
  const a = v as Json;
  for (const k of Object.keys(a)) if (!(ADDRESS_FIELDS as readonly string[]).includes(k)) p.add(`${field}.${k}`, `is not an address field; use ${ADDRESS_FIELDS.join(', ')}`);
  for (const k of ADDRESS_FIELDS) {
    const x = a[k];
    if (given(x) && (typeof x !== 'string' || x.length > 500)) p.add(`${field}.${k}`, 'must be a string of at most 500 characters');
    out[k] = given(x) ? x : null;
  }
  if (given(a.country) && typeof a.country === 'string' && !/^[A-Z]{2}$/.test(a.country)) p.add(`${field}.country`, 'must be an ISO 3166-1 alpha-2 code, e.g. US');
  return out;
}

interface Parsed {
  cols: Record<string, unknown>;
  metadata: Record<string, string | null> | null | undefined;
  attrs: Json;
  hierarchy?: { parent?: string | null; children?: string[] };
}

/** Validates a create (all required fields) or an update (every field optional) body. */
function parseCustomer(body: unknown, mode: 'create' | 'update', limits: CatalogLimits): Parsed {
  const b = obj(body);
  const p = new Problems();
  const cols: Record<string, unknown> = {};
  const set = (k: string, v: unknown) => {
    if (v !== undefined) cols[k] = v;
  };
  const create = mode === 'create';
  const name = str(p, b, 'name', { required: create, max: 500 });
  if (!create && b.name === null) p.add('name', 'cannot be null');
  set('name', name);
  if (given(b.email) || create) {
    if (typeof b.email !== 'string' || !EMAIL.test(b.email) || b.email.length > 320) p.add('email', create && !given(b.email) ? 'is required: an email address' : 'must be an email address');
    else set('email', b.email);
  }
  if (b.external_customer_id !== undefined) {
    if (b.external_customer_id === null) set('external_customer_id', create ? null : undefined);
    else if (typeof b.external_customer_id !== 'string' || b.external_customer_id === '' || b.external_customer_id.length > 256 || /[/?#]/.test(b.external_customer_id)) {
      p.add('external_customer_id', 'must be a non-empty string of at most 256 characters without /, ? or #');
    } else set('external_customer_id', b.external_customer_id);
  }
  if (b.additional_emails !== undefined) {
    const v = b.additional_emails;
    if (v === null) set('additional_emails', []);
    else if (!Array.isArray(v)) p.add('additional_emails', 'must be an array of email addresses');
    else if (v.length > limits.maxAdditionalEmails) p.add('additional_emails', `must hold at most ${limits.maxAdditionalEmails} addresses`);
    else {
      v.forEach((e, i) => {
        if (typeof e !== 'string' || !EMAIL.test(e)) p.add(`additional_emails[${i}]`, 'must be an email address');
      });
      set('additional_emails', v);
    }
  }
  set('auto_collection', bool(p, b, 'auto_collection'));
  if (b.auto_issuance === null) set('auto_issuance', null);
  else set('auto_issuance', bool(p, b, 'auto_issuance'));
  set('email_delivery', bool(p, b, 'email_delivery'));
  if (b.net_terms === null) set('net_terms', null);
  else set('net_terms', int(p, b, 'net_terms', 0, 365));
  if (b.currency !== undefined) {
    if (b.currency === null) set('currency', create ? null : undefined);
    else if (typeof b.currency !== 'string' || !/^[A-Z]{3}$/.test(b.currency)) p.add('currency', 'must be an ISO 4217 currency code such as USD (the invoicing currency)');
    else set('currency', b.currency);
  }
  if (b.timezone !== undefined && b.timezone !== null) {
    if (!create) p.add('timezone', 'cannot be changed after the customer is created (billing periods are anchored in it)');
    else if (typeof b.timezone !== 'string' || !isTimeZone(b.timezone)) p.add('timezone', `"${String(b.timezone)}" is not an IANA time zone such as America/New_York`);
    else set('timezone', b.timezone);
  }
  if (b.payment_provider !== undefined) {
    if (b.payment_provider !== null && !(PAYMENT_PROVIDERS as readonly unknown[]).includes(b.payment_provider)) p.add('payment_provider', `must be one of ${PAYMENT_PROVIDERS.join(', ')}`);
    else set('payment_provider', b.payment_provider);
  }
  if (b.payment_provider_id !== undefined) {
    if (b.payment_provider_id !== null && (typeof b.payment_provider_id !== 'string' || b.payment_provider_id === '' || b.payment_provider_id.length > 256)) p.add('payment_provider_id', 'must be a non-empty string of at most 256 characters');
    else set('payment_provider_id', b.payment_provider_id);
  }
  const billing = address(p, b, 'billing_address');
  if (billing !== undefined) set('billing_address', billing === null ? null : JSON.stringify(billing));
  const shipping = address(p, b, 'shipping_address');
  if (shipping !== undefined) set('shipping_address', shipping === null ? null : JSON.stringify(shipping));
  if (b.tax_id !== undefined) {
    const t = b.tax_id as Json | null;
    if (t === null) set('tax_id', null);
    else if (typeof t !== 'object' || Array.isArray(t)) p.add('tax_id', 'must be an object {country, type, value}');
    else {
      if (typeof t.country !== 'string' || !/^[A-Z]{2}$/.test(t.country)) p.add('tax_id.country', 'must be an ISO 3166-1 alpha-2 code, e.g. DE');
      if (typeof t.type !== 'string' || !/^[a-z]{2}_[a-z_]+$/.test(t.type)) p.add('tax_id.type', 'must be a tax id type such as eu_vat or us_ein');
      if (typeof t.value !== 'string' || t.value.trim() === '' || t.value.length > 100) p.add('tax_id.value', 'must be a non-empty string');
      set('tax_id', JSON.stringify({ country: t.country, type: t.type, value: t.value }));
    }
  }
  if (b.tax_configuration !== undefined) {
    const t = b.tax_configuration as Json | null;
    if (t === null) {
      set('tax_configuration', null);
      set('tax_exempt', null);
    } else if (typeof t !== 'object' || Array.isArray(t)) p.add('tax_configuration', 'must be an object {tax_provider, tax_exempt, ...}');
    else {
      if (typeof t.tax_exempt !== 'boolean') p.add('tax_configuration.tax_exempt', 'is required: true or false');
      if (!TAX_PROVIDERS.includes(t.tax_provider as string)) p.add('tax_configuration.tax_provider', `must be one of ${TAX_PROVIDERS.join(', ')}`);
      if (given(t.automatic_tax_enabled) && typeof t.automatic_tax_enabled !== 'boolean') p.add('tax_configuration.automatic_tax_enabled', 'must be true or false');
      if (given(t.tax_exemption_code) && typeof t.tax_exemption_code !== 'string') p.add('tax_configuration.tax_exemption_code', 'must be a string');
      set('tax_configuration', JSON.stringify(t));
      set('tax_exempt', t.tax_exempt);
    }
  }
  const meta = metadata(p, b);
  let hierarchy: Parsed['hierarchy'];
  if (given(b.hierarchy)) {
    const h = b.hierarchy as Json;
    if (typeof h !== 'object' || Array.isArray(h)) p.add('hierarchy', 'must be an object {parent_customer_id, child_customer_ids}');
    else {
      hierarchy = {};
      if (h.parent_customer_id !== undefined) {
        if (h.parent_customer_id !== null && (typeof h.parent_customer_id !== 'string' || h.parent_customer_id === '')) p.add('hierarchy.parent_customer_id', 'must be a customer id');
        else hierarchy.parent = h.parent_customer_id as string | null;
      }
      if (h.child_customer_ids !== undefined && h.child_customer_ids !== null) {
        if (!Array.isArray(h.child_customer_ids) || h.child_customer_ids.some((x) => typeof x !== 'string')) p.add('hierarchy.child_customer_ids', 'must be an array of customer ids');
        else hierarchy.children = h.child_customer_ids as string[];
      }
      if (hierarchy.parent && hierarchy.children?.length) p.add('hierarchy', 'a customer cannot have both a parent and children (one level of hierarchy)');
    }
  }
  const attrs: Json = {};
  for (const k of ['accounting_sync_configuration', 'reporting_configuration', 'payment_configuration']) if (b[k] !== undefined) attrs[k] = b[k];
  p.throwIfAny('customer');
  return { cols, metadata: meta, attrs, hierarchy };
}

async function hierarchyOf(db: Queryable, c: CustomerRow): Promise<{ parent: Minified | null; children: Minified[] }> {
  const parent = c.parent_id ? (await db.query<Minified>('SELECT id, external_customer_id FROM customers WHERE id = $1', [c.parent_id])).rows[0] ?? null : null;
  const children = (await db.query<Minified>('SELECT id, external_customer_id FROM customers WHERE parent_id = $1 ORDER BY created_at, id', [c.id])).rows;
  return { parent, children };
}

export async function customerView(db: Queryable, c: CustomerRow): Promise<Json> {
  return customerDto(c, await hierarchyOf(db, c));
}

/** Parent and children: one level (a parent has no parent, a child no children), no self. */
async function applyHierarchy(db: Queryable, id: string, h: NonNullable<Parsed['hierarchy']>): Promise<void> {
  const p = new Problems();
  if (h.parent !== undefined) {
    if (h.parent !== null) {
      // Locked: a concurrent change of the parent's own parent waits, then sees this child.
      const r = await db.query<{ parent_id: string | null }>('SELECT parent_id FROM customers WHERE id = $1 FOR UPDATE', [h.parent]);
      if (h.parent === id) p.add('hierarchy.parent_customer_id', 'a customer cannot be its own parent');
      else if (r.rowCount === 0) p.add('hierarchy.parent_customer_id', `no customer with id "${h.parent}"`);
      else if (r.rows[0]!.parent_id !== null) p.add('hierarchy.parent_customer_id', 'that customer has a parent itself; hierarchies are one level deep');
      const kids = await db.query('SELECT 1 FROM customers WHERE parent_id = $1 LIMIT 1', [id]);
      if ((kids.rowCount ?? 0) > 0) p.add('hierarchy.parent_customer_id', 'this customer has children; hierarchies are one level deep');
    }
    p.throwIfAny('customer');
    await db.query('UPDATE customers SET parent_id = $2, updated_at = now() WHERE id = $1', [id, h.parent]);
  }
  if (h.children !== undefined) {
    const self = await db.query<{ parent_id: string | null }>('SELECT parent_id FROM customers WHERE id = $1', [id]);
    if (self.rows[0]?.parent_id) p.add('hierarchy.child_customer_ids', 'this customer has a parent; hierarchies are one level deep');
    for (const [i, child] of h.children.entries()) {
      const r = await db.query<{ id: string }>('SELECT id FROM customers WHERE id = $1 FOR UPDATE', [child]);
      const hasKids = await db.query('SELECT 1 FROM customers WHERE parent_id = $1 LIMIT 1', [child]);
      if (child === id) p.add(`hierarchy.child_customer_ids[${i}]`, 'a customer cannot be its own child');
      else if (r.rowCount === 0) p.add(`hierarchy.child_customer_ids[${i}]`, `no customer with id "${child}"`);
      else if ((hasKids.rowCount ?? 0) > 0) p.add(`hierarchy.child_customer_ids[${i}]`, 'that customer has children; hierarchies are one level deep');
    }
    p.throwIfAny('customer');
    // The given list is the whole set of children.
    await db.query('UPDATE customers SET parent_id = NULL, updated_at = now() WHERE parent_id = $1 AND NOT (id = ANY($2))', [id, h.children]);
    await db.query('UPDATE customers SET parent_id = $1, updated_at = now() WHERE id = ANY($2)', [id, h.children]);
  }
}

function conflict(err: unknown, ext: unknown): never {
  if ((err as { code?: string }).code === '23505') {
    throw new ApiError('conflict', `external_customer_id: a customer with external_customer_id "${String(ext)}" exists already`, [{ field: 'external_customer_id', message: 'is taken' }]);
  }
  throw err;
}

export async function createCustomer(pool: Pool, body: unknown, limits: CatalogLimits = DEFAULT_LIMITS): Promise<Json> {
  const input = parseCustomer(body, 'create', limits);
  return withTx(pool, async (db) => {
    const cols = { ...input.cols, id: newId(), metadata: JSON.stringify(cleanMetadata(input.metadata)), attrs: JSON.stringify(input.attrs) };
    const names = Object.keys(cols);
    try {
      await db.query(`INSERT INTO customers (${names.join(', ')}) VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')})`, Object.values(cols));
    } catch (err) {
      conflict(err, input.cols.external_customer_id);
    }
    if (input.hierarchy) await applyHierarchy(db, cols.id, input.hierarchy);
    await bumpCatalogVersion(db);
    return customerView(db, await findCustomer(db, { id: cols.id }));
  });
}

export async function updateCustomer(pool: Pool, ref: { id?: string; externalId?: string }, body: unknown, limits: CatalogLimits = DEFAULT_LIMITS): Promise<Json> {
  const input = parseCustomer(body, 'update', limits);
  return withTx(pool, async (db) => {
    const current = await findCustomer(db, ref, true);
    const p = new Problems();
    if (input.cols.currency !== undefined && current.currency !== null && input.cols.currency !== current.currency) {
      const subs = await db.query('SELECT 1 FROM subscriptions WHERE customer_id = $1 LIMIT 1', [current.id]);
      if ((subs.rowCount ?? 0) > 0) p.add('currency', `cannot change from ${current.currency}: the customer has subscriptions invoiced in it`);
    }
    p.throwIfAny('customer');
    const cols: Record<string, unknown> = { ...input.cols };
    if (input.metadata !== undefined) cols.metadata = JSON.stringify(mergeMetadata(current.metadata, input.metadata));
    if (Object.keys(input.attrs).length > 0) cols.attrs = JSON.stringify({ ...current.attrs, ...input.attrs });
    const names = Object.keys(cols);
    if (names.length > 0) {
      try {
        await db.query(`UPDATE customers SET ${names.map((n, i) => `${n} = $${i + 2}`).join(', ')}, updated_at = now() WHERE id = $1`, [current.id, ...Object.values(cols)]);
      } catch (err) {
        conflict(err, input.cols.external_customer_id);
      }
    }
    if (input.hierarchy) await applyHierarchy(db, current.id, input.hierarchy);
    // External ids feed the rater's customer map: a change is a catalog change.
    await bumpCatalogVersion(db);
    return customerView(db, await findCustomer(db, { id: current.id }));
  });
}

export async function findCustomer(db: Queryable, ref: { id?: string; externalId?: string }, forUpdate = false): Promise<CustomerRow> {
  const lock = forUpdate ? ' FOR UPDATE' : '';
  const r = ref.id !== undefined
    ? await db.query<CustomerRow>(`SELECT ${COLUMNS} FROM customers c WHERE c.id = $1${lock}`, [ref.id])
    : await db.query<CustomerRow>(`SELECT ${COLUMNS} FROM customers c WHERE c.external_customer_id = $1${lock}`, [ref.externalId]);
  const row = r.rows[0];
  if (!row) throw new ApiError('not_found', ref.id !== undefined ? `no customer with id "${ref.id}"` : `no customer with external_customer_id "${ref.externalId}"`);
  return row;
}

export async function listCustomers(db: Queryable, query: URLSearchParams): Promise<Json> {
  const pq = pageQuery(query);
  const params: unknown[] = [];
  const where = pageFilters(pq, query, 'c', params);
  params.push(pq.limit + 1);
  const r = await db.query<CustomerRow & { page_us: string }>(
    `SELECT ${COLUMNS}, ${pageKey('c')} FROM customers c ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY c.created_at DESC, c.id DESC LIMIT $${params.length}`,
    params,
  );
  const page = toPage(r.rows, pq.limit, (row) => row);
  const data = [];
  for (const row of page.data) data.push(await customerView(db, row));
  return { data, pagination_metadata: page.pagination_metadata };
}
