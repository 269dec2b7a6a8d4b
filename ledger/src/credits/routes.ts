// Credit routes: Orb's paths under /v1/customers/{id}/credits (also by external_customer_id)
// and /v1/credit_blocks/{id}.
import { ApiError, decodeCursor, parseLimit, Problems, type Request, type Route } from '@drawdown/http';
import { parseDecimal } from '@drawdown/money';
import type { Pool } from '@drawdown/pg';
import { findCustomer } from '../customers/customers';
import { customerRef } from '../customers/routes';
import { createLedgerEntry, deleteBlock } from './entries';
import { ENTRY_TYPES, parseDate, parseLedgerEntry } from './parse';
import { balancesOf, getBlock, listBlocks, listEntries, type EntryFilters } from './queries';

function parseEntryFilters(q: URLSearchParams): EntryFilters {
  const p = new Problems();
  const entryType = q.get('entry_type') ?? undefined;
  if (entryType !== undefined && !(ENTRY_TYPES as readonly string[]).includes(entryType)) p.add('entry_type', `must be one of ${ENTRY_TYPES.join(', ')}`);
  const entryStatus = q.get('entry_status') ?? undefined;
  if (entryStatus !== undefined && entryStatus !== 'committed' && entryStatus !== 'pending') p.add('entry_status', 'must be committed or pending');
  let minimumAmount: bigint | undefined;
  const min = q.get('minimum_amount');
  if (min !== null) {
    try {
      minimumAmount = parseDecimal(min, 'minimum_amount');
    } catch (err) {
      p.add('minimum_amount', (err as Error).message.replace(/^minimum_amount: /, ''));
    }
  }
  const date = (name: string) => parseDate(p, name, q.get(name)) ?? undefined;
  const f: EntryFilters = {
    entryType, entryStatus, minimumAmount,
    currency: q.get('currency') ?? undefined,
    createdGt: date('created_at[gt]'), createdGte: date('created_at[gte]'), createdLt: date('created_at[lt]'), createdLte: date('created_at[lte]'),
    limit: parseLimit(q),
    after: decodeCursor(q.get('cursor')),
  };
  p.throwIfAny('query');
  return f;
}

export function creditRoutes(pool: Pool): Route[] {
  const credits = async (req: Request) => {
    const customer = await findCustomer(pool, customerRef(req));
    const include = req.query.get('include_all_blocks');
    if (include !== null && include !== 'true' && include !== 'false') {
      throw new ApiError('validation_failed', 'include_all_blocks: must be true or false', [{ field: 'include_all_blocks', message: 'must be true or false' }]);
    }
    const page = await listBlocks(pool, customer.id, {
      currency: req.query.get('currency') ?? undefined,
      includeAllBlocks: include === 'true',
      limit: parseLimit(req.query),
      after: decodeCursor(req.query.get('cursor')),
    });
    return { body: { data: page.rows, pagination_metadata: { has_more: page.next !== null, next_cursor: page.next } } };
  };

  const ledger = async (req: Request) => {
    const customer = await findCustomer(pool, customerRef(req));
    const page = await listEntries(pool, customer.id, parseEntryFilters(req.query));
    return { body: { data: page.rows, pagination_metadata: { has_more: page.next !== null, next_cursor: page.next } } };
  };

  // Idempotency-Key: ledgerRoutes wraps every POST (../http/idempotency.ts).
  const ledgerEntry = async (req: Request) => {
    const customer = await findCustomer(pool, customerRef(req));
    const input = parseLedgerEntry(req.json());
    return { status: 201, body: await createLedgerEntry(pool, customer, input) };
  };

  const balance = async (req: Request) => {
    const customer = await findCustomer(pool, customerRef(req));
    const data = await balancesOf(pool, customer.id);
    return { body: { customer_id: customer.id, external_customer_id: customer.external_customer_id, data } };
  };

  const forPrefix = (prefix: string): Route[] => [
    { method: 'GET', path: `${prefix}/credits`, scope: 'read', handler: credits },
    { method: 'GET', path: `${prefix}/credits/balance`, scope: 'read', handler: balance },
    { method: 'GET', path: `${prefix}/credits/ledger`, scope: 'read', handler: ledger },
    { method: 'POST', path: `${prefix}/credits/ledger_entry`, scope: 'admin', handler: ledgerEntry },
  ];
  return [
    ...forPrefix('/v1/customers/:id'),
    ...forPrefix('/v1/customers/external_customer_id/:externalId'),
    { method: 'GET', path: '/v1/credit_blocks/:blockId', scope: 'read', handler: async (req) => ({ body: await getBlock(pool, req.params.blockId!) }) },
    { method: 'DELETE', path: '/v1/credit_blocks/:blockId', scope: 'admin', handler: async (req) => {
      await deleteBlock(pool, req.params.blockId!);
      return { status: 204 };
    } },
  ];
}
