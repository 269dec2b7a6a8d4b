import { parseInvoiceSettings, type InvoiceSettings } from '../invoices/purchase';
// Input of POST .../credits/ledger_entry: one named input per entry type, validated here,
// every problem reported at once (field names as in Orb's request).
import { ApiError, Problems } from '@drawdown/http';
import { formatDecimal, parseDecimal } from '@drawdown/money';

export const DEFAULT_PRICING_UNIT = 'credits';

export interface BlockFilter {
  field: 'item_id';
  operator: 'includes' | 'excludes';
  values: string[];
}

interface Common {
  /** null when not given: the block's unit for block entries, else DEFAULT_PRICING_UNIT. */
  currency: string | null;
  description: string | null;
  metadata: Record<string, string>;
}

export interface IncrementInput extends Common {
  entryType: 'increment';
  amount: bigint;
  effectiveDate: Date | null;
  expiryDate: Date | null;
  perUnitCostBasis: string | null;
  filters: BlockFilter[];
  invoiceSettings: InvoiceSettings | null;
}
export interface DecrementInput extends Common {
  entryType: 'decrement';
  amount: bigint;
}
export interface ExpirationChangeInput extends Common {
  entryType: 'expiration_change';
  amount: bigint | null;
  blockId: string | null;
  expiryDate: Date | null;
  targetExpiryDate: Date;
}
export interface VoidInput extends Common {
  entryType: 'void';
  amount: bigint;
  blockId: string;
  voidReason: 'refund' | null;
}
export interface AmendmentInput extends Common {
  entryType: 'amendment';
  amount: bigint;
  blockId: string;
}
export type LedgerEntryInput = IncrementInput | DecrementInput | ExpirationChangeInput | VoidInput | AmendmentInput;

export const ENTRY_TYPES = ['increment', 'decrement', 'expiration_change', 'credit_block_expiry', 'void', 'void_initiated', 'amendment'] as const;
const WRITABLE = ['increment', 'decrement', 'expiration_change', 'void', 'amendment'];

export function parseDate(p: Problems, field: string, v: unknown): Date | null {
  if (v === undefined || v === null) return null;
  // YYYY-MM-DD is the start of that day, UTC (Date.parse reads date-only forms as UTC).
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(Date.parse(v))) {
    p.add(field, 'must be an ISO 8601 date (YYYY-MM-DD) or date-time');
    return null;
  }
  return new Date(v);
}

function parseAmount(p: Problems, v: unknown, opts: { required: boolean; sign: 'positive' | 'nonzero' }): bigint | null {
  if (v === undefined || v === null) {
    if (opts.required) p.add('amount', `is required: a ${opts.sign === 'positive' ? 'positive' : 'non-zero'} number`);
    return null;
  }
  if (typeof v !== 'number' && typeof v !== 'string') {
    p.add('amount', 'must be a number');
    return null;
  }
  try {
    const a = parseDecimal(v, 'amount');
    if (opts.sign === 'positive' && a <= 0n) p.add('amount', 'must be greater than 0');
    if (opts.sign === 'nonzero' && a === 0n) p.add('amount', 'must not be 0');
    return a;
  } catch (err) {
    p.add('amount', (err as Error).message.replace(/^amount: /, ''));
    return null;
  }
}

function parseString(p: Problems, field: string, v: unknown, max = 1024): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    p.add(field, `must be a non-empty string of at most ${max} characters`);
    return null;
  }
  return v;
}

function parseMetadata(p: Problems, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) {
    p.add('metadata', 'must be an object of strings');
    return {};
  }
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (x === null) continue; // Orb: a null value unsets the key
    if (typeof x !== 'string') p.add(`metadata.${k}`, 'must be a string or null');
    else out[k] = x;
  }
  return out;
}

function parseFilters(p: Problems, v: unknown): BlockFilter[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    p.add('filters', 'must be an array of {field, operator, values}');
    return [];
  }
  const out: BlockFilter[] = [];
  v.forEach((f: unknown, i) => {
    const x = (f ?? {}) as Record<string, unknown>;
    const bad = (field: string, message: string) => p.add(`filters[${i}].${field}`, message);
    const okField = x.field === 'item_id';
    const okOp = x.operator === 'includes' || x.operator === 'excludes';
    const okValues = Array.isArray(x.values) && x.values.length > 0 && x.values.every((s) => typeof s === 'string');
    if (!okField) bad('field', 'must be "item_id"');
    if (!okOp) bad('operator', 'must be "includes" or "excludes"');
    if (!okValues) bad('values', 'must be a non-empty array of strings');
    const ok = okField && okOp && okValues;
    if (ok) out.push({ field: 'item_id', operator: x.operator as BlockFilter['operator'], values: x.values as string[] });
  });
  return out;
}

export function parseLedgerEntry(body: unknown): LedgerEntryInput {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('invalid_body', 'request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const p = new Problems();
  const type = b.entry_type;
  if (typeof type !== 'string' || !WRITABLE.includes(type)) {
    p.add('entry_type', `is required: one of ${WRITABLE.join(', ')}`);
    p.throwIfAny('ledger entry');
  }
  const currency = b.currency === undefined || b.currency === null ? null : parseString(p, 'currency', b.currency, 64);
  const description = b.description === undefined || b.description === null ? null : parseString(p, 'description', b.description, 4096);
  const common: Common = { currency, description, metadata: parseMetadata(p, b.metadata) };
  let out: LedgerEntryInput;
  switch (type as LedgerEntryInput['entryType']) {
    case 'increment': {
      const amount = parseAmount(p, b.amount, { required: true, sign: 'positive' });
      const effectiveDate = parseDate(p, 'effective_date', b.effective_date);
      const expiryDate = parseDate(p, 'expiry_date', b.expiry_date);
      if (expiryDate && expiryDate <= (effectiveDate ?? new Date())) p.add('expiry_date', 'must be after effective_date (or now, without one)');
      let perUnitCostBasis: string | null = null;
      if (b.per_unit_cost_basis !== undefined && b.per_unit_cost_basis !== null) {
        try {
          const v = parseDecimal(b.per_unit_cost_basis as string, 'per_unit_cost_basis');
          if (v < 0n) p.add('per_unit_cost_basis', 'must not be negative');
          perUnitCostBasis = formatDecimal(v);
        } catch (err) {
          p.add('per_unit_cost_basis', (err as Error).message.replace(/^per_unit_cost_basis: /, ''));
        }
      }
      // Orb's invoice_settings make the increment a purchase, invoiced at per_unit_cost_basis (ledger/src/invoices).
      const invoiceSettings = parseInvoiceSettings(p, b.invoice_settings, perUnitCostBasis);
      out = { ...common, entryType: 'increment', amount: amount ?? 0n, effectiveDate, expiryDate, perUnitCostBasis, filters: parseFilters(p, b.filters), invoiceSettings };
      break;
    }
    case 'decrement':
      out = { ...common, entryType: 'decrement', amount: parseAmount(p, b.amount, { required: true, sign: 'positive' }) ?? 0n };
      break;
    case 'expiration_change': {
      const amount = parseAmount(p, b.amount, { required: false, sign: 'positive' });
      const blockId = parseString(p, 'block_id', b.block_id, 64);
      const expiryDate = parseDate(p, 'expiry_date', b.expiry_date);
      const target = parseDate(p, 'target_expiry_date', b.target_expiry_date);
      if (b.target_expiry_date === undefined || b.target_expiry_date === null) p.add('target_expiry_date', 'is required: the new expiry date');
      else if (target && target <= new Date()) p.add('target_expiry_date', 'must be in the future');
      if (!blockId && !expiryDate && b.expiry_date == null) p.add('block_id', 'is required (or expiry_date): which block to move credits from');
      out = { ...common, entryType: 'expiration_change', amount, blockId, expiryDate, targetExpiryDate: target ?? new Date(0) };
      break;
    }
    case 'void': {
      const amount = parseAmount(p, b.amount, { required: true, sign: 'positive' }) ?? 0n;
      const blockId = parseString(p, 'block_id', b.block_id, 64);
      if (!blockId && (b.block_id === undefined || b.block_id === null)) p.add('block_id', 'is required: the block to void');
      if (b.void_reason !== undefined && b.void_reason !== null && b.void_reason !== 'refund') p.add('void_reason', 'must be "refund" or null');
      out = { ...common, entryType: 'void', amount, blockId: blockId ?? '', voidReason: b.void_reason === 'refund' ? 'refund' : null };
      break;
    }
    case 'amendment': {
      const amount = parseAmount(p, b.amount, { required: true, sign: 'nonzero' }) ?? 0n;
      const blockId = parseString(p, 'block_id', b.block_id, 64);
      if (!blockId && (b.block_id === undefined || b.block_id === null)) p.add('block_id', 'is required: the block to amend');
      out = { ...common, entryType: 'amendment', amount, blockId: blockId ?? '' };
      break;
    }
  }
  p.throwIfAny('ledger entry');
  return out;
}
