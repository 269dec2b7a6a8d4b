// Every balance change of a transaction passes through one place: `finishChanges` sees
// (customer, pricing unit, balance before, balance after) for each pair the transaction
// locked, and runs the crossing hooks in the same transaction, so whatever they write
// (outbox rows, alert state) commits or rolls back with the change itself.
// Hooks: the built-in one below (depleted / recovered notifications); alerts (issue 7)
// add theirs with `addCrossingHook`.
import { formatDecimal } from '@drawdown/money';
import type { Queryable } from '@drawdown/pg';
import { writeOutbox } from '../outbox/outbox';
import { balanceKey, lockBalances, readBalances, type Balance } from './balances';

export interface BalanceChange {
  customerId: string;
  pricingUnit: string;
  before: bigint;
  after: bigint;
  /** What caused it: a debit batch, or the API entry type, or 'expiry'. */
  cause: string;
}

export type CrossingHook = (db: Queryable, changes: BalanceChange[]) => Promise<void>;

const hooks: CrossingHook[] = [];

/** Registers a hook run inside every balance-changing transaction; returns its remover. */
export function addCrossingHook(hook: CrossingHook): () => void {
  hooks.push(hook);
  return () => {
    const i = hooks.indexOf(hook);
    if (i >= 0) hooks.splice(i, 1);
  };
}

/** Built in: `customer.credit_balance_depleted` when a positive balance reaches zero or below,
 *  `customer.credit_balance_recovered` when a balance at or below zero becomes positive. */
const depletionHook: CrossingHook = async (db, changes) => {
  const depleted = changes.filter((x) => x.before > 0n && x.after <= 0n);
  const recovered = changes.filter((x) => x.before <= 0n && x.after > 0n);
  if (depleted.length + recovered.length === 0) return;
  const flip = [...depleted.map((x) => ({ x, v: true })), ...recovered.map((x) => ({ x, v: false }))];
  await db.query(
    `UPDATE credit_balances cb SET depleted = t.v FROM unnest($1::text[], $2::text[], $3::boolean[]) AS t(customer_id, pricing_unit, v)
      WHERE cb.customer_id = t.customer_id AND cb.pricing_unit = t.pricing_unit`,
    [flip.map((f) => f.x.customerId), flip.map((f) => f.x.pricingUnit), flip.map((f) => f.v)],
  );
  await writeOutbox(db, [
    ...depleted.map((x) => ({
      topic: 'customer.credit_balance_depleted',
      customerId: x.customerId,
      payload: { customer_id: x.customerId, pricing_unit: x.pricingUnit, balance: formatDecimal(x.after), previous_balance: formatDecimal(x.before) },
    })),
    ...recovered.map((x) => ({
      topic: 'customer.credit_balance_recovered',
      customerId: x.customerId,
      payload: { customer_id: x.customerId, pricing_unit: x.pricingUnit, balance: formatDecimal(x.after), previous_balance: formatDecimal(x.before) },
    })),
  ]);
};

export interface Pair {
  customerId: string;
  pricingUnit: string;
}

/**
 * The balance side of one transaction: `lock` takes the balance rows (fixed order) and
 * remembers the balances before; `finish` reads them after and runs the hooks.
 */
export class BalanceTracker {
  private readonly before = new Map<string, Balance>();
  constructor(
    private readonly db: Queryable,
    private readonly cause: string,
  ) {}

  /** Locks every pair in one statement (call once per transaction: one lock order). */
  async lock(pairs: Pair[], create: boolean): Promise<Map<string, Balance>> {
    await lockBalances(this.db, pairs, create);
    const b = await readBalances(this.db, pairs);
    for (const [k, v] of b) this.before.set(k, v);
    return b;
  }

  beforeOf(p: Pair): Balance {
    const b = this.before.get(balanceKey(p.customerId, p.pricingUnit));
    if (!b) throw new Error(`balance of ${p.customerId}/${p.pricingUnit} was not locked`);
    return b;
  }

  /** For the expiry job: the balance before is what it was just before the expiry time
   *  (the balance read at lock time already leaves expired blocks out). */
  setBefore(p: Pair, balance: bigint): void {
    const b = this.beforeOf(p);
    this.before.set(balanceKey(p.customerId, p.pricingUnit), { ...b, balance });
  }

  async current(p: Pair): Promise<Balance> {
    return (await readBalances(this.db, [p])).get(balanceKey(p.customerId, p.pricingUnit))!;
  }

  /** Reads balances after (unless given, read after the last change), runs every hook with the pairs that changed; returns the after map. */
  async finish(known?: Map<string, Balance>): Promise<Map<string, Balance>> {
    const pairs = [...this.before.values()].map((b) => ({ customerId: b.customerId, pricingUnit: b.pricingUnit }));
    const after = known ?? (pairs.length > 0 ? await readBalances(this.db, pairs) : new Map<string, Balance>());
    const changes: BalanceChange[] = [];
    for (const [k, b] of this.before) {
      const a = after.get(k);
      if (a && a.balance !== b.balance) changes.push({ customerId: b.customerId, pricingUnit: b.pricingUnit, before: b.balance, after: a.balance, cause: this.cause });
    }
    if (changes.length > 0) {
      await depletionHook(this.db, changes);
      for (const h of hooks) await h(this.db, changes);
    }
    return after;
  }
}
