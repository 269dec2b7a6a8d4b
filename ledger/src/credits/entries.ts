// Manual ledger entries (POST .../credits/ledger_entry) and block deletion. Each runs in one
// transaction that first locks the customer's balance row (BalanceTracker), so it queues
// behind debit batches and other writers of the same balance instead of racing them, and
// ends in BalanceTracker.finish, which hands the balance change to the crossing hooks.
import { ApiError } from '@drawdown/http';
import { formatDecimal, min } from '@drawdown/money';
import { withTx, type Pool, type PoolClient, type Queryable } from '@drawdown/pg';
import { newId } from '../ids';
import { writeOutbox } from '../outbox/outbox';
import { createPurchaseInvoice } from '../invoices/purchase';
import { toPicos } from './balances';
import { BalanceTracker, type Pair } from './crossings';
import { DEFAULT_PRICING_UNIT, type BlockFilter, type LedgerEntryInput } from './parse';
import { entriesById, type LedgerEntryDto } from './queries';

export interface CustomerRef {
  id: string;
  external_customer_id: string | null;
}

interface NewEntry {
  pair: Pair;
  type: string;
  blockId: string | null;
  amount: bigint;
  starting: bigint;
  ending: bigint;
  description: string | null;
  metadata?: Record<string, string>;
  createdAt?: Date;
  voidReason?: string | null;
  voidAmount?: bigint;
  newBlockExpiry?: Date | null;
  settlesOverage?: boolean;
  /** 'pending' for a purchase awaiting payment; committed otherwise. */
  status?: 'committed' | 'pending';
}

/** Appends entries to one customer's ledger with its next sequence numbers: one past the
 *  ledger's last (unique index). The caller holds the balance row's lock (BalanceTracker.lock,
 *  lockBalances), taken in an earlier statement, so no other writer appends to this ledger
 *  until the transaction ends and this statement sees every entry committed before. */
export async function insertEntries(db: Queryable, entries: NewEntry[]): Promise<string[]> {
  const ids: string[] = [];
  for (const e of entries) {
    const id = newId();
    await db.query(
      `WITH s AS (
         SELECT coalesce(max(ledger_sequence_number), 0) + 1 AS seq FROM ledger_entries WHERE customer_id = $2 AND pricing_unit = $3)
       INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount, starting_balance,
                                   ending_balance, description, metadata, created_at, void_reason, void_amount, new_block_expiry_date, settles_overage, entry_status)
       SELECT $1, $2, $3, s.seq, $4, $5, $6, $7, $8, $9, $10, coalesce($11::timestamptz, now()), $12, $13, $14, $15, $16 FROM s`,
      [
        id, e.pair.customerId, e.pair.pricingUnit, e.type, e.blockId, formatDecimal(e.amount), formatDecimal(e.starting), formatDecimal(e.ending),
        e.description, JSON.stringify(e.metadata ?? {}), e.createdAt ?? null, e.voidReason ?? null,
        e.voidAmount === undefined ? null : formatDecimal(e.voidAmount), e.newBlockExpiry ?? null, e.settlesOverage ?? false, e.status ?? 'committed',
      ],
    );
    ids.push(id);
  }
  return ids;
}

interface BlockState {
  id: string;
  customer_id: string;
  pricing_unit: string;
  initial: bigint;
  remaining: bigint;
  per_unit_cost_basis: string | null;
  effective_date: Date;
  expiry_date: Date | null;
  source: string;
  status: string;
  filters: BlockFilter[];
  /** Active, effective, unexpired: its credits are part of the balance. */
  counts: boolean;
  expired: boolean;
}

async function blockState(db: Queryable, where: string, params: unknown[]): Promise<BlockState[]> {
  const r = await db.query(
    `SELECT id, customer_id, pricing_unit, initial_amount::text AS initial, remaining::text, per_unit_cost_basis::text, effective_date, expiry_date,
            source, status, filters,
            (status = 'active' AND effective_date <= now() AND (expiry_date IS NULL OR expiry_date > now())) AS counts,
            (expiry_date IS NOT NULL AND expiry_date <= now()) AS expired
       FROM credit_blocks WHERE deleted_at IS NULL AND ${where}
      ORDER BY expiry_date ASC NULLS LAST, coalesce(per_unit_cost_basis, 0), created_at, id`,
    params,
  );
  return r.rows.map((x) => ({ ...x, initial: toPicos(x.initial), remaining: toPicos(x.remaining) }) as BlockState);
}

async function findBlock(db: Queryable, customerId: string, blockId: string): Promise<BlockState> {
  const [b] = await blockState(db, 'id = $1 AND customer_id = $2', [blockId, customerId]);
  if (!b) throw new ApiError('not_found', `block_id: no credit block "${blockId}" for this customer`, [{ field: 'block_id', message: 'no such credit block for this customer' }]);
  return b;
}

const fieldError = (field: string, message: string) => new ApiError('validation_failed', `${field}: ${message}`, [{ field, message }]);

async function setRemaining(db: Queryable, blockId: string, delta: bigint): Promise<void> {
  // Credits added back to a block the expiry job had settled empty make it due again.
  await db.query('UPDATE credit_blocks SET remaining = remaining + $2, expiry_done = expiry_done AND $2::numeric <= 0 WHERE id = $1', [blockId, formatDecimal(delta)]);
}

/** New credits fill earlier overage first: takes up to `available` from the block into the overage. */
export async function settleOverage(c: PoolClient, t: BalanceTracker, pair: Pair, blockId: string, available: bigint, balanceNow: bigint): Promise<void> {
  const cur = await t.current(pair);
  const fill = min(cur.overage, available);
  if (fill <= 0n) return;
  await setRemaining(c, blockId, -fill);
  await c.query('UPDATE credit_balances SET overage = overage - $3 WHERE customer_id = $1 AND pricing_unit = $2', [pair.customerId, pair.pricingUnit, formatDecimal(fill)]);
  await insertEntries(c, [{ pair, type: 'decrement', blockId, amount: -fill, starting: balanceNow, ending: balanceNow, description: 'earlier overage settled from this block', settlesOverage: true }]);
}

export interface IncrementOptions {
  source?: 'manual' | 'allocation' | 'top_up' | 'commitment' | 'scheduled_purchase';
  status?: 'active' | 'pending_payment';
}

/** An increment: always a new block. Exported for allocations and top-ups (same transaction rules). */
export async function incrementInTx(c: PoolClient, t: BalanceTracker, pair: Pair, input: Extract<LedgerEntryInput, { entryType: 'increment' }>, opts: IncrementOptions = {}): Promise<string[]> {
  // A purchase that requires payment waits, out of the balance, until its invoice is paid.
  const status = opts.status ?? (input.invoiceSettings?.require_successful_payment ? 'pending_payment' : 'active');
  const now = (await c.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
  const effective = input.effectiveDate ?? now;
  const counts = status === 'active' && effective <= now;
  const before = await t.current(pair);
  const blockId = newId();
  await c.query(
    `INSERT INTO credit_blocks (id, customer_id, pricing_unit, initial_amount, remaining, per_unit_cost_basis, effective_date, expiry_date, source, status, metadata, filters, invoice_settings, starts_pending)
     VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
    [blockId, pair.customerId, pair.pricingUnit, formatDecimal(input.amount), input.perUnitCostBasis, effective, input.expiryDate, opts.source ?? 'manual', status,
      JSON.stringify(input.metadata), JSON.stringify(input.filters), input.invoiceSettings ? JSON.stringify(input.invoiceSettings) : null, effective > now],
  );
  // A block not yet effective or not yet paid is not part of the balance: its entry shows the
  // amount with the balance unchanged.
  const ending = counts ? before.balance + input.amount : before.balance;
  const ids = await insertEntries(c, [{ pair, type: 'increment', blockId, amount: input.amount, starting: before.balance, ending, description: input.description, metadata: input.metadata, status: status === 'pending_payment' ? 'pending' : 'committed' }]);
  if (counts) await settleOverage(c, t, pair, blockId, input.amount, ending);
  // A purchase: its invoice, in this transaction (ledger/src/invoices).
  if (input.invoiceSettings) {
    await createPurchaseInvoice(c, { customerId: pair.customerId, blockId, pricingUnit: pair.pricingUnit, amount: input.amount, perUnitCostBasis: input.perUnitCostBasis ?? '0', settings: input.invoiceSettings, source: opts.source ?? 'manual' });
  }
  await writeOutbox(c, [{
    topic: 'credit_balance.created',
    customerId: pair.customerId,
    payload: { customer_id: pair.customerId, credit_block_id: blockId, pricing_unit: pair.pricingUnit, amount: formatDecimal(input.amount), status, expiry_date: input.expiryDate?.toISOString() ?? null },
  }]);
  return ids;
}

async function decrementInTx(c: PoolClient, t: BalanceTracker, pair: Pair, amount: bigint, description: string | null, metadata: Record<string, string>): Promise<string[]> {
  const before = await t.current(pair);
  if (amount > before.available) {
    throw fieldError('amount', `exceeds the available balance (${formatDecimal(before.available)} ${pair.pricingUnit}); a manual decrement does not create overage`);
  }
  const blocks = (await blockState(c, 'customer_id = $1 AND pricing_unit = $2 AND remaining > 0', [pair.customerId, pair.pricingUnit])).filter((b) => b.counts);
  let left = amount;
  let bal = before.balance;
  const entries: NewEntry[] = [];
  for (const b of blocks) {
    if (left === 0n) break;
    const take = min(b.remaining, left);
    await setRemaining(c, b.id, -take);
    entries.push({ pair, type: 'decrement', blockId: b.id, amount: -take, starting: bal, ending: bal - take, description, metadata });
    bal -= take;
    left -= take;
  }
  return insertEntries(c, entries);
}

async function expirationChangeInTx(c: PoolClient, t: BalanceTracker, pair: Pair, input: Extract<LedgerEntryInput, { entryType: 'expiration_change' }>): Promise<string[]> {
  let block: BlockState | undefined;
  if (input.blockId) block = await findBlock(c, pair.customerId, input.blockId);
  else {
    const day = input.expiryDate!.toISOString().slice(0, 10);
    const candidates = await blockState(c, "customer_id = $1 AND pricing_unit = $2 AND remaining > 0 AND (expiry_date AT TIME ZONE 'UTC')::date = $3::date", [pair.customerId, pair.pricingUnit, day]);
    block = candidates.find((b) => !b.expired);
    if (!block) throw fieldError('expiry_date', `no ${pair.pricingUnit} block with credits left expires on ${day}`);
  }
  if (input.expiryDate && input.blockId && (block.expiry_date?.toISOString().slice(0, 10) ?? null) !== input.expiryDate.toISOString().slice(0, 10)) {
    throw fieldError('expiry_date', `does not match the expiry of block ${block.id}`);
  }
  if (block.expired) throw fieldError('block_id', 'the block has expired already');
  const amount = input.amount ?? block.remaining;
  if (amount <= 0n) throw fieldError('block_id', 'the block has no credits left to move');
  if (amount > block.remaining) throw fieldError('amount', `exceeds the block's remaining balance (${formatDecimal(block.remaining)})`);
  const bal = (await t.current(pair)).balance;
  const newBlockId = newId();
  // The moved credits keep the block's cost basis, filters, source and status.
  await c.query(
    `INSERT INTO credit_blocks (id, customer_id, pricing_unit, initial_amount, remaining, per_unit_cost_basis, effective_date, expiry_date, source, status, metadata, filters)
     SELECT $1, customer_id, pricing_unit, $3, $3, per_unit_cost_basis, effective_date, $4, source, status, metadata, filters FROM credit_blocks WHERE id = $2`,
    [newBlockId, block.id, formatDecimal(amount), input.targetExpiryDate],
  );
  await setRemaining(c, block.id, -amount);
  const metadata = { ...input.metadata, target_block_id: newBlockId };
  // Orb: one entry on the source block; amount = credits moved; balance unchanged.
  // (If the source block was not yet effective, the moved credits keep its effective date.)
  return insertEntries(c, [{ pair, type: 'expiration_change', blockId: block.id, amount, starting: bal, ending: bal, description: input.description, metadata, newBlockExpiry: input.targetExpiryDate }]);
}

async function voidInTx(c: PoolClient, t: BalanceTracker, pair: Pair, block: BlockState, amount: bigint, reason: string | null, description: string | null, metadata: Record<string, string>): Promise<string[]> {
  if (block.expired && block.remaining > 0n) throw fieldError('block_id', 'the block has expired; its credits are being expired');
  if (amount > block.remaining) throw fieldError('amount', `exceeds the block's remaining balance (${formatDecimal(block.remaining)})`);
  const bal = (await t.current(pair)).balance;
  await setRemaining(c, block.id, -amount);
  // A block bought through an invoice that is still open (draft or issued): the void starts
  // now (void_initiated: the credits leave the block and the balance at once, and stop counting
  // from now, new_block_expiry_date) and completes when the invoice closes (completeVoids).
  const open = await c.query("SELECT 1 FROM credit_blocks k JOIN invoices i ON i.id = k.invoice_id WHERE k.id = $1 AND i.status IN ('draft', 'issued')", [block.id]);
  const type = open.rows.length > 0 ? 'void_initiated' : 'void';
  return insertEntries(c, [{
    pair, type, blockId: block.id, amount: -amount, starting: bal, ending: block.counts ? bal - amount : bal, description, metadata, voidReason: reason, voidAmount: amount,
    newBlockExpiry: type === 'void_initiated' ? new Date() : null,
  }]);
}

/**
 * Completes initiated voids whose block's invoice has closed (paid: the voided credits are
 * owed back; void: nothing is owed): a `void` entry per void_initiated entry, with
 * amount 0 (the credits left the balance when the void was initiated), the same void_amount
 * and void_reason, and `metadata.void_initiated_entry_id` naming the entry it completes.
 * Runs in the ledger jobs; one transaction per entry, under the balance lock.
 */
export async function completeVoids(pool: Pool, limit: number): Promise<number> {
  const due = await pool.query<{ id: string; customer_id: string; pricing_unit: string }>(
    `SELECT e.id, e.customer_id, e.pricing_unit FROM ledger_entries e
       JOIN credit_blocks k ON k.id = e.block_id JOIN invoices i ON i.id = k.invoice_id
      WHERE e.entry_type = 'void_initiated' AND i.status IN ('paid', 'void')
        AND NOT EXISTS (SELECT 1 FROM ledger_entries v WHERE v.entry_type = 'void' AND v.block_id = e.block_id AND v.metadata->>'void_initiated_entry_id' = e.id)
      ORDER BY e.entry_no LIMIT $1`,
    [limit],
  );
  let n = 0;
  for (const row of due.rows) {
    n += await withTx(pool, async (c) => {
      const pair = { customerId: row.customer_id, pricingUnit: row.pricing_unit };
      const t = new BalanceTracker(c, 'void');
      await t.lock([pair], false);
      // Under the lock: completed by a concurrent run already?
      const e = await c.query<{ block_id: string; void_amount: string; void_reason: string | null; description: string | null }>(
        `SELECT e.block_id, e.void_amount::text, e.void_reason, e.description FROM ledger_entries e
          WHERE e.id = $1 AND NOT EXISTS (SELECT 1 FROM ledger_entries v WHERE v.entry_type = 'void' AND v.block_id = e.block_id AND v.metadata->>'void_initiated_entry_id' = e.id)`,
        [row.id],
      );
      const x = e.rows[0];
      if (!x) return 0;
      const bal = (await t.current(pair)).balance;
      await insertEntries(c, [{
        pair, type: 'void', blockId: x.block_id, amount: 0n, starting: bal, ending: bal, description: x.description,
        metadata: { void_initiated_entry_id: row.id }, voidReason: x.void_reason, voidAmount: toPicos(x.void_amount),
      }]);
      await t.finish();
      return 1;
    });
  }
  return n;
}

async function amendmentInTx(c: PoolClient, t: BalanceTracker, pair: Pair, block: BlockState, amount: bigint, description: string | null, metadata: Record<string, string>): Promise<string[]> {
  if (block.expired) throw fieldError('block_id', 'the block has expired');
  if (amount > 0n && block.remaining + amount > block.initial) {
    throw fieldError('amount', `would take the block above its initial amount (${formatDecimal(block.initial)}; ${formatDecimal(block.remaining)} left)`);
  }
  if (amount < 0n && block.remaining + amount < 0n) throw fieldError('amount', `would take the block below zero (${formatDecimal(block.remaining)} left)`);
  const bal = (await t.current(pair)).balance;
  await setRemaining(c, block.id, amount);
  const ending = block.counts ? bal + amount : bal;
  const ids = await insertEntries(c, [{ pair, type: 'amendment', blockId: block.id, amount, starting: bal, ending, description, metadata }]);
  if (amount > 0n && block.counts) await settleOverage(c, t, pair, block.id, amount, ending);
  return ids;
}

/** Applies one API ledger entry in one transaction; returns the entry Orb returns (the last written). */
export async function createLedgerEntry(pool: Pool, customer: CustomerRef, input: LedgerEntryInput): Promise<LedgerEntryDto> {
  return withTx(pool, async (c) => {
    let unit = input.currency;
    let blockId: string | null = null;
    if (input.entryType === 'void' || input.entryType === 'amendment' || (input.entryType === 'expiration_change' && input.blockId)) {
      blockId = input.blockId!;
      const b = await c.query<{ pricing_unit: string }>('SELECT pricing_unit FROM credit_blocks WHERE id = $1 AND customer_id = $2 AND deleted_at IS NULL', [blockId, customer.id]);
      if (!b.rows[0]) throw new ApiError('not_found', `block_id: no credit block "${blockId}" for this customer`, [{ field: 'block_id', message: 'no such credit block for this customer' }]);
      if (unit !== null && unit !== b.rows[0].pricing_unit) throw fieldError('currency', `the block is in "${b.rows[0].pricing_unit}"`);
      unit = b.rows[0].pricing_unit;
    }
    const pair = { customerId: customer.id, pricingUnit: unit ?? DEFAULT_PRICING_UNIT };
    const t = new BalanceTracker(c, input.entryType);
    await t.lock([pair], true);
    let ids: string[];
    switch (input.entryType) {
      case 'increment':
        ids = await incrementInTx(c, t, pair, input);
        break;
      case 'decrement':
        ids = await decrementInTx(c, t, pair, input.amount, input.description, input.metadata);
        break;
      case 'expiration_change':
        ids = await expirationChangeInTx(c, t, pair, input);
        break;
      case 'void':
        ids = await voidInTx(c, t, pair, await findBlock(c, customer.id, blockId!), input.amount, input.voidReason, input.description, input.metadata);
        break;
      case 'amendment':
        ids = await amendmentInTx(c, t, pair, await findBlock(c, customer.id, blockId!), input.amount, input.description, input.metadata);
        break;
    }
    await t.finish();
    // Orb returns the entry the request asked for: the first written (later ones settle overage),
    // except a decrement spanning blocks, which returns its final deduction.
    const pick = input.entryType === 'decrement' ? ids[ids.length - 1] : ids[0];
    return (await entriesById(c, [pick!]))[0]!;
  });
}

/** DELETE /v1/credit_blocks/{id}: voids what the block has left and hides it. Credits already
 *  used stay used (entries are append-only; nothing is replayed). */
export async function deleteBlock(pool: Pool, blockId: string): Promise<void> {
  await withTx(pool, async (c) => {
    const r = await c.query<{ customer_id: string; pricing_unit: string }>('SELECT customer_id, pricing_unit FROM credit_blocks WHERE id = $1 AND deleted_at IS NULL', [blockId]);
    const row = r.rows[0];
    if (!row) throw new ApiError('not_found', `no credit block with id "${blockId}"`);
    const pair = { customerId: row.customer_id, pricingUnit: row.pricing_unit };
    const t = new BalanceTracker(c, 'block_deleted');
    await t.lock([pair], false);
    const block = await findBlock(c, row.customer_id, blockId);
    if (block.remaining > 0n && !block.expired) await voidInTx(c, t, pair, block, block.remaining, null, 'credit block deleted', {});
    await c.query('UPDATE credit_blocks SET deleted_at = now() WHERE id = $1', [blockId]);
    await t.finish();
  });
}

/** A pending_payment block becomes active (its payment arrived: issue 8's top-ups). Its credits
 *  start to count, settle overage first, and the change goes through the crossing hooks. */
export async function activateBlock(pool: Pool, blockId: string): Promise<void> {
  await withTx(pool, (c) => activateBlockInTx(c, blockId));
}

/** activateBlock inside the caller's transaction (an invoice paid). */
export async function activateBlockInTx(c: PoolClient, blockId: string): Promise<void> {
  {
    const r = await c.query<{ customer_id: string; pricing_unit: string }>('SELECT customer_id, pricing_unit FROM credit_blocks WHERE id = $1 AND deleted_at IS NULL', [blockId]);
    const row = r.rows[0];
    if (!row) throw new ApiError('not_found', `no credit block with id "${blockId}"`);
    const pair = { customerId: row.customer_id, pricingUnit: row.pricing_unit };
    const t = new BalanceTracker(c, 'block_activated');
    await t.lock([pair], false);
    const b = await findBlock(c, row.customer_id, blockId);
    if (b.status === 'active') return;
    const later = (await c.query<{ later: boolean }>('SELECT $1::timestamptz > now() AS later', [b.effective_date])).rows[0]!.later;
    await c.query("UPDATE credit_blocks SET status = 'active', starts_pending = $2 WHERE id = $1", [blockId, later]);
    // Its increment entry, pending while the block awaited payment, is committed now.
    await c.query("UPDATE ledger_entries SET entry_status = 'committed' WHERE block_id = $1 AND entry_type = 'increment' AND entry_status = 'pending'", [blockId]);
    const after = await t.current(pair);
    if (b.remaining > 0n && !later && !b.expired) await settleOverage(c, t, pair, blockId, b.remaining, after.balance);
    await t.finish();
  }
}
