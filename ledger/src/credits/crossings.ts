// Every balance change of a transaction passes through one place: `finishChanges` sees
// (customer, pricing unit, balance before, balance after) for each pair the transaction
// locked, and runs the crossing hooks in the same transaction, so whatever they write
// (outbox rows, alert state) commits or rolls back with the change itself.
// Hooks: the built-in ones below (alert evaluation, threshold top-ups); others add theirs
// with `addCrossingHook`.
import type { Queryable } from '@drawdown/pg';
import { evaluateCrossings } from '../alerts/evaluate';
import { evaluateTopUps } from '../topups/topups';
import { balanceKey, lockBalances, lockBalancesSparse, pgTextArray, readBalances, type Balance } from './balances';

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

/** Built in: alert evaluation (ledger/src/alerts): depleted, dropped, recovered thresholds and
 *  the balance state the access cache and `credit_balance.updated` read, in this transaction. */
const alertHook = async (db: Queryable, changes: BalanceChange[], snapshotsWritten: boolean) => {
  await evaluateCrossings(db, changes, { snapshotsWritten });
};

/** Built in: threshold top-ups (ledger/src/topups): one intent per top-up whose threshold a
 *  balance crossed downwards in this transaction, decided under the balance row locks. */
const topUpHook: CrossingHook = async (db, changes) => {
  const fell = changes.filter((x) => x.after < x.before);
  if (fell.length === 0) return;
  // Most customers have no top-up: only balances with one (in any state) go further, so the
  // check below sees every balance that could cross a top-up threshold.
  const r = await db.query<{ customer_id: string; currency: string }>(
    'SELECT DISTINCT customer_id, currency FROM top_ups WHERE customer_id = ANY($1::text[]) AND deleted_at IS NULL',
    [pgTextArray([...new Set(fell.map((x) => x.customerId))])],
  );
  if (r.rows.length === 0) return;
  const withTopUp = new Set(r.rows.map((x) => balanceKey(x.customer_id, x.currency)));
  const before = new Map<string, Balance>();
  const after = new Map<string, Balance>();
  for (const x of fell) {
    if (!withTopUp.has(balanceKey(x.customerId, x.pricingUnit))) continue;
    const key = balanceKey(x.customerId, x.pricingUnit);
    before.set(key, { customerId: x.customerId, pricingUnit: x.pricingUnit, available: 0n, overage: 0n, balance: x.before });
    after.set(key, { customerId: x.customerId, pricingUnit: x.pricingUnit, available: 0n, overage: 0n, balance: x.after });
  }
  await evaluateTopUps(db, before, after);
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
  private snapshots = false;
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

  /** Locks like `lock` without reading the balances: the caller reads what the blocks had
   *  available in its next statement and hands the balances before to `setBeforeAll`. Returns
   *  the overage of the locked rows that have any (a pair missing from the map has none). */
  async lockOnly(pairs: Pair[], create: boolean): Promise<Map<string, bigint>> {
    return lockBalancesSparse(this.db, pairs, create);
  }

  /** The caller wrote every changed pair's balance snapshot itself, in this transaction, after
   *  its last balance change (the debit path's fused statement): `finish` does not write them. */
  snapshotsWritten(): void {
    this.snapshots = true;
  }

  setBeforeAll(before: Map<string, Balance>): void {
    for (const [k, v] of before) this.before.set(k, v);
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
      await alertHook(this.db, changes, this.snapshots);
      await topUpHook(this.db, changes);
      for (const h of hooks) await h(this.db, changes);
    }
    return after;
  }
}
