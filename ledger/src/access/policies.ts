// Access policies per customer or subscription, and the unpaid-overage hook for invoicing.
import { formatDecimal, parseDecimal } from '@drawdown/money';
import type { Pool, Queryable } from '@drawdown/pg';
import { ApiError, Problems } from '@drawdown/http';
import { newId } from '../ids';
import { toPicos } from '../credits/balances';

export const ACCESS_MODES = ['block_when_depleted', 'allow_overage', 'always_allow'] as const;
export type AccessMode = (typeof ACCESS_MODES)[number];

export interface Policy {
  mode: AccessMode;
  /** allow_overage: the most the balance may go below zero (null: unlimited). */
  overageLimit: bigint | null;
  blockOnUnpaidOverage: boolean;
}

export interface PolicyDto {
  customer_id: string | null;
  subscription_id: string | null;
  mode: AccessMode;
  overage_limit: bigint | null;
  block_on_unpaid_overage: boolean;
  updated_at: string;
}

export function parsePolicy(body: unknown): Policy {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('invalid_body', 'request body must be a JSON object');
  const b = body as Record<string, unknown>;
  const p = new Problems();
  if (typeof b.mode !== 'string' || !(ACCESS_MODES as readonly string[]).includes(b.mode)) p.add('mode', `is required: one of ${ACCESS_MODES.join(', ')}`);
  let overageLimit: bigint | null = null;
  if (b.overage_limit !== undefined && b.overage_limit !== null) {
    if (b.mode !== 'allow_overage') p.add('overage_limit', 'applies only to mode allow_overage');
    try {
      overageLimit = parseDecimal(b.overage_limit as string, 'overage_limit');
      if (overageLimit < 0n) p.add('overage_limit', 'must be 0 or more');
    } catch (err) {
      p.add('overage_limit', (err as Error).message.replace(/^[^:]*: /, ''));
    }
  }
  if (b.block_on_unpaid_overage !== undefined && typeof b.block_on_unpaid_overage !== 'boolean') p.add('block_on_unpaid_overage', 'must be true or false');
  p.throwIfAny('access policy');
  return { mode: b.mode as AccessMode, overageLimit, blockOnUnpaidOverage: b.block_on_unpaid_overage === true };
}

export async function putPolicy(pool: Pool, scope: { customerId?: string; subscriptionId?: string }, policy: Policy): Promise<PolicyDto> {
  const conflict = scope.customerId ? '(customer_id) WHERE customer_id IS NOT NULL' : '(subscription_id) WHERE subscription_id IS NOT NULL';
  const r = await pool.query<PolicyRow>(
    `INSERT INTO access_policies (id, customer_id, subscription_id, mode, overage_limit, block_on_unpaid_overage) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT ${conflict} DO UPDATE SET mode = excluded.mode, overage_limit = excluded.overage_limit,
       block_on_unpaid_overage = excluded.block_on_unpaid_overage, txid = pg_current_xact_id(), updated_at = now()
     RETURNING customer_id, subscription_id, mode, overage_limit::text, block_on_unpaid_overage, updated_at`,
    [newId(), scope.customerId ?? null, scope.subscriptionId ?? null, policy.mode, policy.overageLimit === null ? null : formatDecimal(policy.overageLimit), policy.blockOnUnpaidOverage],
  );
  return policyDto(r.rows[0]!);
}

interface PolicyRow {
  customer_id: string | null;
  subscription_id: string | null;
  mode: AccessMode;
  overage_limit: string | null;
  block_on_unpaid_overage: boolean;
  updated_at: Date;
}

function policyDto(r: PolicyRow): PolicyDto {
  return {
    customer_id: r.customer_id,
    subscription_id: r.subscription_id,
    mode: r.mode,
    overage_limit: r.overage_limit === null ? null : toPicos(r.overage_limit),
    block_on_unpaid_overage: r.block_on_unpaid_overage,
    updated_at: r.updated_at.toISOString(),
  };
}

export async function getPolicy(db: Queryable, scope: { customerId?: string; subscriptionId?: string }): Promise<PolicyDto> {
  const r = await db.query<PolicyRow>(
    `SELECT customer_id, subscription_id, mode, overage_limit::text, block_on_unpaid_overage, updated_at FROM access_policies
      WHERE ${scope.customerId ? 'customer_id' : 'subscription_id'} = $1 AND mode <> 'default'`,
    [scope.customerId ?? scope.subscriptionId],
  );
  if (r.rowCount === 0) throw new ApiError('not_found', `no access policy for this ${scope.customerId ? 'customer' : 'subscription'} (the default applies)`);
  return policyDto(r.rows[0]!);
}

export async function deletePolicy(pool: Pool, scope: { customerId?: string; subscriptionId?: string }): Promise<void> {
  // Deleting is an update to mode 'default', so access caches (which follow txid) see it.
  const r = await pool.query(
    `UPDATE access_policies SET mode = 'default', overage_limit = NULL, txid = pg_current_xact_id(), updated_at = now()
      WHERE ${scope.customerId ? 'customer_id' : 'subscription_id'} = $1 AND mode <> 'default' RETURNING 1`,
    [scope.customerId ?? scope.subscriptionId],
  );
  if (r.rowCount === 0) throw new ApiError('not_found', 'no access policy to delete');
}

/** A stored policy row; null for a deleted one (mode 'default'). */
export function rowToPolicy(r: { mode: string; overage_limit: string | null; block_on_unpaid_overage: boolean }): Policy | null {
  if (r.mode === 'default') return null;
  return { mode: r.mode as AccessMode, overageLimit: r.overage_limit === null ? null : toPicos(r.overage_limit), blockOnUnpaidOverage: r.block_on_unpaid_overage };
}

/**
 * The hook for invoicing (issue 8): call it in the transaction that issues an overage invoice
 * (unpaid = true) and in the one that marks it paid or voids it (unpaid = false). Access
 * checks of customers whose policy says block_on_unpaid_overage are refused meanwhile.
 */
export async function setUnpaidOverage(db: Queryable, x: { invoiceId: string; customerId: string; unpaid: boolean }): Promise<void> {
  await db.query(
    `INSERT INTO unpaid_overage_invoices (invoice_id, customer_id, unpaid) VALUES ($1, $2, $3)
     ON CONFLICT (invoice_id) DO UPDATE SET unpaid = excluded.unpaid, txid = pg_current_xact_id(), updated_at = now()`,
    [x.invoiceId, x.customerId, x.unpaid],
  );
}
