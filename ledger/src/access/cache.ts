// The access cache: answers "may this customer consume now?" from memory. A customer is
// loaded from Postgres on first use; afterwards it is kept fresh by polling three small change
// feeds every accessPollMs: balance_snapshots (written by every balance change in its ledger
// transaction), access_policies and unpaid_overage_invoices. Each feed is read by transaction
// id: rows whose txid >= the xmin of the previous poll's snapshot, which includes every
// transaction that had not committed at that poll, so no commit is ever missed (some rows are
// read twice, harmlessly). Works the same when the ledger runs in other processes.
import type { Logger } from '@drawdown/log';
import { counter, gauge } from '@drawdown/metrics';
import type { Pool } from '@drawdown/pg';
import { balancesOf } from '../credits/queries';
import { DEFAULT_PRICING_UNIT } from '../credits/parse';
import { toPicos } from '../credits/balances';
import { findCustomer } from '../customers/customers';
import { rowToPolicy, type AccessMode, type Policy } from './policies';

const checks = counter('drawdown_access_checks_total', 'Access checks by outcome', ['outcome']);
const cached = gauge('drawdown_access_cache_customers', 'Customers in the access cache');

export type AccessReason =
  | 'balance_available'
  | 'always_allow'
  | 'overage_allowed'
  | 'overage_within_limit'
  | 'depleted'
  | 'overage_limit_reached'
  | 'unpaid_overage_invoice'
  | 'metric_not_in_subscription';

/** Pure: the decision for a balance under a policy. */
export function decideAccess(balance: bigint, policy: Policy, unpaidOverage: boolean): { allowed: boolean; reason: AccessReason } {
  if (policy.blockOnUnpaidOverage && unpaidOverage) return { allowed: false, reason: 'unpaid_overage_invoice' };
  if (policy.mode === 'always_allow') return { allowed: true, reason: 'always_allow' };
  if (balance > 0n) return { allowed: true, reason: 'balance_available' };
  if (policy.mode === 'block_when_depleted') return { allowed: false, reason: 'depleted' };
  if (policy.overageLimit === null) return { allowed: true, reason: 'overage_allowed' };
  return -balance < policy.overageLimit ? { allowed: true, reason: 'overage_within_limit' } : { allowed: false, reason: 'overage_limit_reached' };
}

interface Entry {
  customerId: string;
  externalId: string | null;
  balances: Map<string, bigint>;
  policy: Policy | null;
  subPolicies: Map<string, Policy>;
  unpaidOverage: boolean;
  metrics: Map<string, { pricingUnit: string; subscriptionId: string }>;
  metricsAt: number;
}

export interface AccessAnswer {
  customer_id: string;
  external_customer_id: string | null;
  metric_id: string | null;
  subscription_id: string | null;
  pricing_unit: string;
  allowed: boolean;
  reason: AccessReason;
  balance: bigint;
  unpaid_overage: boolean;
  policy: { mode: AccessMode; overage_limit: bigint | null; block_on_unpaid_overage: boolean; source: 'subscription' | 'customer' | 'default' };
}

export interface AccessCacheOptions {
  pool: Pool;
  log: Logger;
  pollMs: number;
  maxCustomers: number;
  catalogTtlMs: number;
  defaultMode: AccessMode;
}

export class AccessCache {
  private readonly byId = new Map<string, Entry>();
  private readonly byExternal = new Map<string, string>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private xmin = { balances: '', policies: '', unpaid: '' };
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  constructor(private readonly o: AccessCacheOptions) {}

  async start(): Promise<void> {
    const r = await this.o.pool.query<{ xmin: string }>('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin');
    const x = r.rows[0]!.xmin;
    this.xmin = { balances: x, policies: x, unpaid: x };
    this.timer = setInterval(() => {
      if (this.polling) return;
      this.polling = this.poll()
        .catch((err) => this.o.log.warn('access cache poll failed; will retry', { err }))
        .finally(() => (this.polling = undefined));
    }, this.o.pollMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.polling;
  }

  /** Forget every customer's metric mapping (after a catalog change). */
  catalogChanged(): void {
    for (const e of this.byId.values()) e.metricsAt = 0;
  }

  /** Drops a customer (its next check reloads it). */
  invalidate(customerId: string): void {
    const e = this.byId.get(customerId);
    if (!e) return;
    this.byId.delete(customerId);
    if (e.externalId) this.byExternal.delete(e.externalId);
  }

  get size(): number {
    return this.byId.size;
  }

  async check(ref: { id?: string; externalId?: string }, q: { metricId?: string; pricingUnit?: string }): Promise<AccessAnswer> {
    const e = await this.entry(ref);
    if (q.metricId && Date.now() - e.metricsAt > this.o.catalogTtlMs) {
      e.metrics = await this.loadMetrics(e.customerId);
      e.metricsAt = Date.now();
    }
    let pricingUnit = q.pricingUnit ?? DEFAULT_PRICING_UNIT;
    let subscriptionId: string | null = null;
    if (q.metricId) {
      const m = e.metrics.get(q.metricId);
      if (!m) {
        checks.inc({ outcome: 'metric_not_in_subscription' });
        const policy = e.policy ?? this.defaultPolicy();
        return this.answer(e, q.metricId, null, pricingUnit, { allowed: false, reason: 'metric_not_in_subscription' }, policy, e.policy ? 'customer' : 'default');
      }
      pricingUnit = m.pricingUnit;
      subscriptionId = m.subscriptionId;
    }
    const subPolicy = subscriptionId ? e.subPolicies.get(subscriptionId) : undefined;
    const policy = subPolicy ?? e.policy ?? this.defaultPolicy();
    const source = subPolicy ? 'subscription' : e.policy ? 'customer' : 'default';
    const d = decideAccess(e.balances.get(pricingUnit) ?? 0n, policy, e.unpaidOverage);
    checks.inc({ outcome: d.allowed ? 'allowed' : 'refused' });
    return this.answer(e, q.metricId ?? null, subscriptionId, pricingUnit, d, policy, source);
  }

  private answer(e: Entry, metricId: string | null, subscriptionId: string | null, pricingUnit: string, d: { allowed: boolean; reason: AccessReason }, policy: Policy, source: 'subscription' | 'customer' | 'default'): AccessAnswer {
    return {
      customer_id: e.customerId,
      external_customer_id: e.externalId,
      metric_id: metricId,
      subscription_id: subscriptionId,
      pricing_unit: pricingUnit,
      allowed: d.allowed,
      reason: d.reason,
      balance: e.balances.get(pricingUnit) ?? 0n,
      unpaid_overage: e.unpaidOverage,
      policy: { mode: policy.mode, overage_limit: policy.overageLimit, block_on_unpaid_overage: policy.blockOnUnpaidOverage, source },
    };
  }

  private defaultPolicy(): Policy {
    return { mode: this.o.defaultMode, overageLimit: null, blockOnUnpaidOverage: false };
  }

  private async entry(ref: { id?: string; externalId?: string }): Promise<Entry> {
    const id = ref.id ?? (ref.externalId !== undefined ? this.byExternal.get(ref.externalId) : undefined);
    const hit = id !== undefined ? this.byId.get(id) : undefined;
    if (hit) return hit;
    const key = ref.id !== undefined ? `i:${ref.id}` : `x:${ref.externalId}`;
    let p = this.loading.get(key);
    if (!p) {
      p = this.load(ref).finally(() => this.loading.delete(key));
      this.loading.set(key, p);
    }
    return p;
  }

  private async load(ref: { id?: string; externalId?: string }): Promise<Entry> {
    const c = await findCustomer(this.o.pool, ref);
    const [balances, policies, unpaid, metrics] = await Promise.all([
      balancesOf(this.o.pool, c.id),
      this.o.pool.query<{ customer_id: string | null; subscription_id: string | null; mode: string; overage_limit: string | null; block_on_unpaid_overage: boolean }>(
        `SELECT customer_id, subscription_id, mode, overage_limit::text, block_on_unpaid_overage FROM access_policies
          WHERE customer_id = $1 OR subscription_id IN (SELECT id FROM subscriptions WHERE customer_id = $1)`,
        [c.id],
      ),
      this.o.pool.query<{ unpaid: boolean }>('SELECT EXISTS (SELECT 1 FROM unpaid_overage_invoices WHERE customer_id = $1 AND unpaid) AS unpaid', [c.id]),
      this.loadMetrics(c.id),
    ]);
    const e: Entry = {
      customerId: c.id,
      externalId: c.external_customer_id,
      balances: new Map(balances.map((b) => [b.pricing_unit, b.balance])),
      policy: null,
      subPolicies: new Map(),
      unpaidOverage: unpaid.rows[0]!.unpaid,
      metrics,
      metricsAt: Date.now(),
    };
    for (const r of policies.rows) {
      const pol = rowToPolicy(r);
      if (r.customer_id) e.policy = pol;
      else if (r.subscription_id && pol) e.subPolicies.set(r.subscription_id, pol);
    }
    // Bounded: drop the oldest loaded customers first.
    while (this.byId.size >= this.o.maxCustomers) {
      const oldest = this.byId.keys().next().value as string | undefined;
      if (oldest === undefined) break;
      this.invalidate(oldest);
    }
    this.byId.set(e.customerId, e);
    if (e.externalId) this.byExternal.set(e.externalId, e.customerId);
    cached.set(this.byId.size);
    return e;
  }

  private async loadMetrics(customerId: string): Promise<Map<string, { pricingUnit: string; subscriptionId: string }>> {
    const r = await this.o.pool.query<{ metric_id: string; currency: string; subscription_id: string }>(
      `SELECT p.metric_id, p.currency, s.id AS subscription_id FROM subscriptions s JOIN prices p ON p.plan_id = s.plan_id
        WHERE s.customer_id = $1 AND s.status = 'active' AND s.start_date <= now() AND (s.end_date IS NULL OR s.end_date > now())
          AND p.metric_id IS NOT NULL
        ORDER BY s.start_date ASC`,
      [customerId],
    );
    const m = new Map<string, { pricingUnit: string; subscriptionId: string }>();
    for (const row of r.rows) m.set(row.metric_id, { pricingUnit: row.currency, subscriptionId: row.subscription_id }); // the newest subscription wins
    return m;
  }

  /** One round of the three change feeds (exposed for tests). */
  async poll(): Promise<void> {
    const b = await this.o.pool.query<{ xmin: string; customer_id: string | null; pricing_unit: string; balance: string }>(
      `WITH x AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
       SELECT x.xmin::text, s.customer_id, s.pricing_unit, s.balance::text FROM x LEFT JOIN balance_snapshots s ON s.txid >= $1::xid8`,
      [this.xmin.balances],
    );
    for (const r of b.rows) {
      const e = r.customer_id ? this.byId.get(r.customer_id) : undefined;
      if (e) e.balances.set(r.pricing_unit, toPicos(r.balance));
    }
    this.xmin.balances = b.rows[0]!.xmin;

    const p = await this.o.pool.query<{ xmin: string; customer_id: string | null; owner: string | null; subscription_id: string | null; mode: string; overage_limit: string | null; block_on_unpaid_overage: boolean }>(
      `WITH x AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
       SELECT x.xmin::text, p.customer_id, coalesce(p.customer_id, s.customer_id) AS owner, p.subscription_id, p.mode, p.overage_limit::text, p.block_on_unpaid_overage
         FROM x LEFT JOIN access_policies p ON p.txid >= $1::xid8 LEFT JOIN subscriptions s ON s.id = p.subscription_id`,
      [this.xmin.policies],
    );
    for (const r of p.rows) {
      const e = r.owner ? this.byId.get(r.owner) : undefined;
      if (!e) continue;
      const pol = rowToPolicy(r);
      if (r.customer_id) e.policy = pol;
      else if (r.subscription_id) {
        if (pol) e.subPolicies.set(r.subscription_id, pol);
        else e.subPolicies.delete(r.subscription_id);
      }
    }
    this.xmin.policies = p.rows[0]!.xmin;

    const u = await this.o.pool.query<{ xmin: string; customer_id: string | null; unpaid: boolean | null }>(
      `WITH x AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
            c AS (SELECT DISTINCT u.customer_id FROM unpaid_overage_invoices u WHERE u.txid >= $1::xid8)
       SELECT x.xmin::text, c.customer_id,
              EXISTS (SELECT 1 FROM unpaid_overage_invoices v WHERE v.customer_id = c.customer_id AND v.unpaid) AS unpaid
         FROM x LEFT JOIN c ON true`,
      [this.xmin.unpaid],
    );
    for (const r of u.rows) {
      const e = r.customer_id ? this.byId.get(r.customer_id) : undefined;
      if (e) e.unpaidOverage = r.unpaid === true;
    }
    this.xmin.unpaid = u.rows[0]!.xmin;
  }
}
