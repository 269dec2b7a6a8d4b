// Reading credit blocks and ledger entries in Orb's response shapes.
import { ApiError, encodeCursor } from '@drawdown/http';
import { formatDecimal } from '@drawdown/money';
import type { Queryable } from '@drawdown/pg';
import { balanceKey, readBalances, toPicos } from './balances';
import type { BlockFilter } from './parse';

export interface AffectedBlockDto {
  id: string;
  expiry_date: string | null;
  filters: BlockFilter[];
  per_unit_cost_basis: string | null;
}

/** One of Orb's ledger entry types (the SDK's LedgerListResponse union, by entry_type). */
export interface LedgerEntryDto {
  id: string;
  ledger_sequence_number: number;
  entry_type: string;
  entry_status: 'committed' | 'pending';
  /** Signed change of the block: negative for decrements, expiries and voids. For
   *  expiration_change it is the amount moved (balance unchanged), as Orb has it. */
  amount: bigint;
  starting_balance: bigint;
  ending_balance: bigint;
  created_at: string;
  description: string | null;
  metadata: Record<string, string>;
  credit_block: AffectedBlockDto;
  customer: { id: string; external_customer_id: string | null };
  currency: string;
  [extra: string]: unknown;
}

export interface CreditBlockDto {
  id: string;
  balance: bigint;
  effective_date: string | null;
  expiry_date: string | null;
  per_unit_cost_basis: string | null;
  status: 'active' | 'pending_payment';
  credit_block_source: string;
  maximum_initial_balance: bigint;
  filters: BlockFilter[];
  metadata: Record<string, string>;
  credit_allocation: null;
  /** Not in Orb's block: the pricing unit (several per customer). */
  currency: string;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

interface EntryRow {
  id: string;
  ledger_sequence_number: string;
  entry_type: string;
  entry_status: 'committed' | 'pending';
  amount: string;
  starting_balance: string;
  ending_balance: string;
  created_at: Date;
  created_text: string;
  entry_no: string;
  description: string | null;
  metadata: Record<string, string>;
  block_id: string | null;
  block_expiry: Date | null;
  block_filters: BlockFilter[] | null;
  block_cost_basis: string | null;
  customer_id: string;
  external_customer_id: string | null;
  pricing_unit: string;
  price_id: string | null;
  usage_customer_id: string | null;
  void_amount: string | null;
  void_reason: string | null;
  new_block_expiry_date: Date | null;
}

const ENTRY_SELECT = `
  SELECT e.id, e.ledger_sequence_number::text, e.entry_type, e.entry_status, e.amount::text, e.starting_balance::text,
         e.ending_balance::text, e.created_at, e.created_at::text AS created_text, e.entry_no::text, e.description, e.metadata,
         e.block_id, k.expiry_date AS block_expiry, k.filters AS block_filters, trim_scale(k.per_unit_cost_basis)::text AS block_cost_basis,
         e.customer_id, c.external_customer_id, e.pricing_unit, e.price_id, e.usage_customer_id, e.void_amount::text,
         e.void_reason, e.new_block_expiry_date
    FROM ledger_entries e
    JOIN customers c ON c.id = e.customer_id
    LEFT JOIN credit_blocks k ON k.id = e.block_id`;

function entryDto(r: EntryRow): LedgerEntryDto {
  const metadata = { ...r.metadata };
  if (r.usage_customer_id && r.usage_customer_id !== r.customer_id) metadata.usage_customer_id = r.usage_customer_id;
  const dto: LedgerEntryDto = {
    id: r.id,
    ledger_sequence_number: Number(r.ledger_sequence_number),
    entry_type: r.entry_type,
    entry_status: r.entry_status,
    amount: toPicos(r.amount),
    starting_balance: toPicos(r.starting_balance),
    ending_balance: toPicos(r.ending_balance),
    created_at: r.created_at.toISOString(),
    description: r.description,
    metadata,
    credit_block: { id: r.block_id ?? '', expiry_date: iso(r.block_expiry), filters: r.block_filters ?? [], per_unit_cost_basis: r.block_cost_basis },
    customer: { id: r.customer_id, external_customer_id: r.external_customer_id },
    currency: r.pricing_unit,
  };
  switch (r.entry_type) {
    case 'increment':
      dto.created_invoices = [];
      break;
    case 'decrement':
      dto.event_id = null;
      dto.invoice_id = null;
      dto.price_id = r.price_id;
      break;
    case 'expiration_change':
      dto.new_block_expiry_date = iso(r.new_block_expiry_date);
      break;
    case 'void_initiated':
      dto.new_block_expiry_date = iso(r.new_block_expiry_date);
      dto.void_amount = r.void_amount ? toPicos(r.void_amount) : 0n;
      dto.void_reason = r.void_reason;
      break;
    case 'void':
      dto.void_amount = r.void_amount ? toPicos(r.void_amount) : 0n;
      dto.void_reason = r.void_reason;
      break;
  }
  return dto;
}

export async function entriesById(db: Queryable, ids: string[]): Promise<LedgerEntryDto[]> {
  const r = await db.query<EntryRow>(`${ENTRY_SELECT} WHERE e.id = ANY($1::text[]) ORDER BY e.entry_no`, [ids]);
  return r.rows.map(entryDto);
}

export interface EntryFilters {
  entryType?: string;
  entryStatus?: string;
  currency?: string;
  /** Entries whose |amount| is at least this. */
  minimumAmount?: bigint;
  createdGt?: Date;
  createdGte?: Date;
  createdLt?: Date;
  createdLte?: Date;
  limit: number;
  /** [created_at text, entry_no] of the last row of the previous page. */
  after?: unknown[];
}

/** Newest first (created_at, then insertion order), Orb's order. */
export async function listEntries(db: Queryable, customerId: string, f: EntryFilters): Promise<{ rows: LedgerEntryDto[]; next: string | null }> {
  const r = await db.query<EntryRow>(
    `${ENTRY_SELECT}
      WHERE e.customer_id = $1
        AND ($2::text IS NULL OR e.entry_type = $2) AND ($3::text IS NULL OR e.entry_status = $3)
        AND ($4::text IS NULL OR e.pricing_unit = $4) AND ($5::numeric IS NULL OR abs(e.amount) >= $5)
        AND ($6::timestamptz IS NULL OR e.created_at > $6) AND ($7::timestamptz IS NULL OR e.created_at >= $7)
        AND ($8::timestamptz IS NULL OR e.created_at < $8) AND ($9::timestamptz IS NULL OR e.created_at <= $9)
        AND ($10::timestamptz IS NULL OR (e.created_at, e.entry_no) < ($10::timestamptz, $11::bigint))
      ORDER BY e.created_at DESC, e.entry_no DESC
      LIMIT $12`,
    [
      customerId, f.entryType ?? null, f.entryStatus ?? null, f.currency ?? null,
      f.minimumAmount === undefined ? null : formatDecimal(f.minimumAmount < 0n ? -f.minimumAmount : f.minimumAmount),
      f.createdGt ?? null, f.createdGte ?? null, f.createdLt ?? null, f.createdLte ?? null,
      f.after ? String(f.after[0]) : null, f.after ? String(f.after[1]) : null, f.limit + 1,
    ],
  );
  const more = r.rows.length > f.limit;
  const rows = more ? r.rows.slice(0, f.limit) : r.rows;
  const last = rows[rows.length - 1];
  return { rows: rows.map(entryDto), next: more && last ? encodeCursor([last.created_text, last.entry_no]) : null };
}

interface BlockRow {
  id: string;
  remaining: string;
  initial_amount: string;
  effective_date: Date;
  expiry_date: Date | null;
  per_unit_cost_basis: string | null;
  status: 'active' | 'pending_payment';
  source: string;
  filters: BlockFilter[];
  metadata: Record<string, string>;
  pricing_unit: string;
  created_text: string;
}

const BLOCK_SELECT = `SELECT id, remaining::text, initial_amount::text, effective_date, expiry_date, trim_scale(per_unit_cost_basis)::text AS per_unit_cost_basis, status, source,
                             filters, metadata, pricing_unit, created_at::text AS created_text FROM credit_blocks`;

function blockDto(row: BlockRow): CreditBlockDto {
  return {
    id: row.id,
    balance: toPicos(row.remaining),
    effective_date: iso(row.effective_date),
    expiry_date: iso(row.expiry_date),
    per_unit_cost_basis: row.per_unit_cost_basis,
    status: row.status,
    credit_block_source: row.source,
    maximum_initial_balance: toPicos(row.initial_amount),
    filters: row.filters,
    metadata: row.metadata,
    credit_allocation: null,
    currency: row.pricing_unit,
  };
}

/** Orb's GET credits: by default blocks with credits left that have not expired; all blocks
 *  (also used up, expired, voided) with include_all_blocks. Oldest first. */
export async function listBlocks(db: Queryable, customerId: string, opts: { currency?: string; includeAllBlocks: boolean; limit: number; after?: unknown[] }): Promise<{ rows: CreditBlockDto[]; next: string | null }> {
  const r = await db.query<BlockRow>(
    `${BLOCK_SELECT}
      WHERE customer_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR pricing_unit = $2)
        AND ($3 OR (remaining > 0 AND (expiry_date IS NULL OR expiry_date > now())))
        AND ($4::timestamptz IS NULL OR (created_at, id) > ($4::timestamptz, $5::text))
      ORDER BY created_at, id LIMIT $6`,
    [customerId, opts.currency ?? null, opts.includeAllBlocks, opts.after ? String(opts.after[0]) : null, opts.after ? String(opts.after[1]) : null, opts.limit + 1],
  );
  const more = r.rows.length > opts.limit;
  const rows = more ? r.rows.slice(0, opts.limit) : r.rows;
  const last = rows[rows.length - 1];
  return { rows: rows.map(blockDto), next: more && last ? encodeCursor([last.created_text, last.id]) : null };
}

export async function getBlock(db: Queryable, id: string): Promise<CreditBlockDto> {
  const r = await db.query<BlockRow>(`${BLOCK_SELECT} WHERE id = $1 AND deleted_at IS NULL`, [id]);
  if (!r.rows[0]) throw new ApiError('not_found', `no credit block with id "${id}"`);
  return blockDto(r.rows[0]);
}

/** Balances per pricing unit (our GET .../credits/balance): available in blocks, overage, balance. */
export async function balancesOf(db: Queryable, customerId: string): Promise<{ pricing_unit: string; balance: bigint; available: bigint; overage: bigint }[]> {
  const units = await db.query<{ pricing_unit: string }>('SELECT pricing_unit FROM credit_balances WHERE customer_id = $1 ORDER BY pricing_unit', [customerId]);
  const pairs = units.rows.map((r) => ({ customerId, pricingUnit: r.pricing_unit }));
  if (pairs.length === 0) return [];
  const m = await readBalances(db, pairs);
  return pairs.map((p) => {
    const b = m.get(balanceKey(p.customerId, p.pricingUnit))!;
    return { pricing_unit: p.pricingUnit, balance: b.balance, available: b.available, overage: b.overage };
  });
}
