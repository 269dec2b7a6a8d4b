// The access cache: answers "may this customer consume now?" from memory. A customer is
// loaded from Postgres on first use; afterwards it is kept fresh by polling three small change
// feeds every accessPollMs: balance_feed (appended by every balance change in its ledger
// transaction; pruned by the coalescer, a reader behind the prune reloads), access_policies and unpaid_overage_invoices. Each feed is read by transaction
// id: rows whose txid >= the xmin of the previous poll's snapshot, which includes every
// transaction that had not committed at that poll, so no commit is ever missed (some rows are
// read twice, harmlessly). Works the same when the ledger runs in other processes.
// First checks are loaded in batches: the customers missed in one turn of the event loop are
// read together (a handful of queries for up to LOAD_BATCH customers). While a batch loads,
// the feeds' positions are held at most at the positions the batch started from, so a change
// committed after the batch read a customer and polled before the customer is in the cache is
// read again by the next poll.
import type { Logger } from '@drawdown/log';
import { counter, gauge } from '@drawdown/metrics';
import type { Pool } from '@drawdown/pg';
import { DEFAULT_PRICING_UNIT } from '../credits/parse';
import { readBalances, toPicos, balanceKey } from '../credits/balances';
import { findCustomer } from '../customers/customers';
import { rowToPolicy, type AccessMode, type Policy } from './policies';

const checks = counter('drawdown_access_checks_total', 'Access checks by outcome', ['outcome']);
const cached = gauge('drawdown_access_cache_customers', 'Customers in the access cache');
const loads = counter('drawdown_access_cache_loads_total', 'Postgres reads of access checks: customers loaded on a first check, metric mappings reloaded', ['what']);

/** Most customers loaded by one batch of first checks. */
const LOAD_BATCH = 500;

type Ref = { id?: string; externalId?: string };
type Feed = 'balances' | 'policies' | 'unpaid';
const refKey = (ref: Ref) => (ref.id !== undefined ? `i:${ref.id}` : `x:${ref.externalId}`);

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
  private queued: { ref: Ref; resolve: (e: Entry) => void; reject: (err: unknown) => void }[] = [];
  private xmin: Record<Feed, string> = { balances: '', policies: '', unpaid: '' };
  /** The feed positions each loading batch started from (polls do not move past them). */
  private readonly pins = new Set<Record<Feed, string>>();
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
      e.metrics = (await this.loadMetrics([e.customerId])).get(e.customerId) ?? new Map();
      e.metricsAt = Date.now();
      loads.inc({ what: 'metrics' });
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

  private async entry(ref: Ref): Promise<Entry> {
    const id = ref.id ?? (ref.externalId !== undefined ? this.byExternal.get(ref.externalId) : undefined);
    const hit = id !== undefined ? this.byId.get(id) : undefined;
    if (hit) return hit;
    const key = refKey(ref);
    let p = this.loading.get(key);
    if (!p) {
      p = new Promise<Entry>((resolve, reject) => {
        if (this.queued.length === 0) setImmediate(() => this.loadQueued());
        this.queued.push({ ref, resolve, reject });
      }).finally(() => this.loading.delete(key));
      this.loading.set(key, p);
    }
    return p;
  }

  /** Loads the customers whose first check came in this turn of the event loop, in batches. */
  private loadQueued(): void {
    while (this.queued.length > 0) {
      const batch = this.queued.splice(0, LOAD_BATCH);
      this.loadBatch(batch.map((w) => w.ref)).then(
        (got) => {
          for (const w of batch) {
            const r = got.get(refKey(w.ref));
            if (r instanceof Error || r === undefined) w.reject(r ?? new Error('access cache: customer not loaded'));
            else w.resolve(r);
          }
        },
        (err) => {
          for (const w of batch) w.reject(err);
        },
      );
    }
  }

  private async loadBatch(refs: Ref[]): Promise<Map<string, Entry | Error>> {
    const pin = { ...this.xmin };
    this.pins.add(pin);
    try {
      const ids = refs.filter((r) => r.id !== undefined).map((r) => r.id!);
      const exts = refs.filter((r) => r.id === undefined && r.externalId !== undefined).map((r) => r.externalId!);
      const found = await this.o.pool.query<{ id: string; external_customer_id: string | null }>(
        'SELECT id, external_customer_id FROM customers WHERE id = ANY($1::text[]) OR external_customer_id = ANY($2::text[])',
        [ids, exts],
      );
      const customerIds = found.rows.map((r) => r.id);
      const [balances, policies, unpaid, metrics] = customerIds.length === 0 ? [new Map(), { rows: [] }, { rows: [] }, new Map()] as const : await Promise.all([
        this.loadBalances(customerIds),
        this.o.pool.query<{ customer_id: string | null; subscription_id: string | null; owner: string; mode: string; overage_limit: string | null; block_on_unpaid_overage: boolean }>(
          `SELECT p.customer_id, p.subscription_id, coalesce(p.customer_id, s.customer_id) AS owner, p.mode, p.overage_limit::text, p.block_on_unpaid_overage
             FROM access_policies p LEFT JOIN subscriptions s ON s.id = p.subscription_id
            WHERE p.customer_id = ANY($1::text[]) OR p.subscription_id IN (SELECT id FROM subscriptions WHERE customer_id = ANY($1::text[]))`,
          [customerIds],
        ),
        this.o.pool.query<{ customer_id: string }>('SELECT DISTINCT customer_id FROM unpaid_overage_invoices WHERE customer_id = ANY($1::text[]) AND unpaid', [customerIds]),
        this.loadMetrics(customerIds),
      ]);
      const unpaidIds = new Set(unpaid.rows.map((r) => r.customer_id));
      const entries = new Map<string, Entry>();
      for (const c of found.rows) {
        entries.set(c.id, {
          customerId: c.id,
          externalId: c.external_customer_id,
          balances: balances.get(c.id) ?? new Map(),
          policy: null,
          subPolicies: new Map(),
          unpaidOverage: unpaidIds.has(c.id),
          metrics: metrics.get(c.id) ?? new Map(),
          metricsAt: Date.now(),
        });
      }
      for (const r of policies.rows) {
        const e = entries.get(r.owner);
        if (!e) continue;
        const pol = rowToPolicy(r);
        if (r.customer_id) e.policy = pol;
        else if (r.subscription_id && pol) e.subPolicies.set(r.subscription_id, pol);
      }
      for (const e of entries.values()) this.insert(e);
      loads.inc({ what: 'customer' }, entries.size);
      const byExt = new Map(found.rows.filter((r) => r.external_customer_id !== null).map((r) => [r.external_customer_id!, r.id]));
      const out = new Map<string, Entry | Error>();
      for (const ref of refs) {
        const e = entries.get(ref.id ?? byExt.get(ref.externalId!) ?? '');
        if (e) out.set(refKey(ref), e);
      }
      // Unknown customers: findCustomer gives the usual not-found error (or finds one created since).
      for (const ref of refs.filter((r) => !out.has(refKey(r)))) {
        try {
          await findCustomer(this.o.pool, ref);
          const again = (await this.loadBatch([ref])).get(refKey(ref));
          out.set(refKey(ref), again ?? new Error('access cache: customer not loaded'));
        } catch (err) {
          out.set(refKey(ref), err as Error);
        }
      }
      return out;
    } finally {
      this.pins.delete(pin);
    }
  }

  private insert(e: Entry): void {
    // Bounded: drop the oldest loaded customers first.
    while (this.byId.size >= this.o.maxCustomers && !this.byId.has(e.customerId)) {
      const oldest = this.byId.keys().next().value as string | undefined;
      if (oldest === undefined) break;
      this.invalidate(oldest);
    }
    this.byId.set(e.customerId, e);
    if (e.externalId) this.byExternal.set(e.externalId, e.customerId);
    cached.set(this.byId.size);
  }

  private async loadBalances(customerIds: string[]): Promise<Map<string, Map<string, bigint>>> {
    const units = await this.o.pool.query<{ customer_id: string; pricing_unit: string }>('SELECT customer_id, pricing_unit FROM credit_balances WHERE customer_id = ANY($1::text[])', [customerIds]);
    const pairs = units.rows.map((r) => ({ customerId: r.customer_id, pricingUnit: r.pricing_unit }));
    const read = pairs.length > 0 ? await readBalances(this.o.pool, pairs) : new Map();
    const out = new Map<string, Map<string, bigint>>();
    for (const p of pairs) {
      const b = read.get(balanceKey(p.customerId, p.pricingUnit));
      if (!b) continue;
      let m = out.get(p.customerId);
      if (!m) out.set(p.customerId, (m = new Map()));
      m.set(p.pricingUnit, b.balance);
    }
    return out;
  }

  private async loadMetrics(customerIds: string[]): Promise<Map<string, Map<string, { pricingUnit: string; subscriptionId: string }>>> {
    const r = await this.o.pool.query<{ customer_id: string; metric_id: string; currency: string; subscription_id: string }>(
      `SELECT s.customer_id, p.metric_id, p.currency, s.id AS subscription_id FROM subscriptions s JOIN prices p ON p.plan_id = s.plan_id
        WHERE s.customer_id = ANY($1::text[]) AND s.status = 'active' AND s.start_date <= now() AND (s.end_date IS NULL OR s.end_date > now())
          AND p.metric_id IS NOT NULL
        ORDER BY s.start_date ASC`,
      [customerIds],
    );
    const out = new Map<string, Map<string, { pricingUnit: string; subscriptionId: string }>>();
    for (const row of r.rows) {
      let m = out.get(row.customer_id);
      if (!m) out.set(row.customer_id, (m = new Map()));
      m.set(row.metric_id, { pricingUnit: row.currency, subscriptionId: row.subscription_id }); // the newest subscription wins
    }
    return out;
  }

  /** The position a feed moves to: the poll's xmin, held back to where loading batches started. */
  private advance(feed: Feed, next: string): string {
    let min = BigInt(next);
    for (const p of this.pins) if (p[feed] !== '' && BigInt(p[feed]) < min) min = BigInt(p[feed]);
    return min.toString();
  }

  /** One round of the three change feeds (exposed for tests). */
  async poll(): Promise<void> {
    // The balance feed (migrations 310): pairs named by transactions at or after the position,
    // with their latest snapshot. `lost`: the feed was pruned past our position; reload all.
    const b = await this.o.pool.query<{ xmin: string; lost: boolean; customer_id: string | null; pricing_unit: string; balance: string }>(
      `WITH x AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin, (SELECT upto >= $1::xid8 FROM balance_feed_pruned) AS lost),
            c AS (SELECT DISTINCT u.customer_id, u.pricing_unit
                    FROM balance_feed f, unnest(f.customer_ids, f.pricing_units) AS u(customer_id, pricing_unit)
                   WHERE f.txid >= $1::xid8)
       SELECT x.xmin::text, coalesce(x.lost, false) AS lost, s.customer_id, s.pricing_unit, s.balance::text
         FROM x LEFT JOIN (c JOIN balance_snapshots s ON s.customer_id = c.customer_id AND s.pricing_unit = c.pricing_unit) ON true`,
      [this.xmin.balances],
    );
    if (b.rows[0]!.lost) for (const id of [...this.byId.keys()]) this.invalidate(id);
    for (const r of b.rows) {
      const e = r.customer_id ? this.byId.get(r.customer_id) : undefined;
      if (e) e.balances.set(r.pricing_unit, toPicos(r.balance));
    }
    this.xmin.balances = this.advance('balances', b.rows[0]!.xmin);

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
    this.xmin.policies = this.advance('policies', p.rows[0]!.xmin);

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
    this.xmin.unpaid = this.advance('unpaid', u.rows[0]!.xmin);
  }
}
