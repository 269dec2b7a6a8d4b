// Alert evaluation inside the ledger transaction. The caller holds the credit_balances rows of
// every change (the lock point of balance changes), so the alert state read and written here
// is serialized per (customer, pricing unit); outbox rows commit or roll back with the change.
//
// Crossings are decided from per-threshold state, not from before/after alone: a threshold
// fires only when its `in_alert` flag flips, so a replayed or repeated change cannot fire it
// twice; the flip back re-arms it. `before` only seeds the state of a threshold seen first.
import { formatDecimal } from '@drawdown/money';
import type { Queryable } from '@drawdown/pg';
import { writeOutbox, type OutboxRow } from '../outbox/outbox';
import { pgTextArray, toPicos } from '../credits/balances';

// One balance change of a transaction, as every crossing hook sees it (credits/crossings.ts).
import type { BalanceChange } from '../credits/crossings';
export type { BalanceChange };

export interface CrossingResult {
  depleted: number;
  events: number;
}

export const BALANCE_ALERT_TYPES = ['credit_balance_depleted', 'credit_balance_dropped', 'credit_balance_recovered'] as const;

interface AlertRow {
  id: string;
  type: string;
  customer_id: string;
  currency: string;
  thresholds: string[];
}

/** The thresholds a balance alert watches: depleted watches 0; recovered 0 unless given. */
export function effectiveThresholds(type: string, thresholds: bigint[]): bigint[] {
  if (type === 'credit_balance_depleted') return [0n];
  if (type === 'credit_balance_recovered' && thresholds.length === 0) return [0n];
  return thresholds;
}

export interface ThresholdDecision {
  threshold: bigint;
  inAlert: boolean;
  changed: boolean;
  fire: boolean;
}

/**
 * Pure: for one balance alert and one change, each threshold's new state and whether it fires.
 * A balance is "in alert" for threshold t when it is at or below t. dropped and depleted fire
 * on entering, recovered on leaving.
 */
export function decide(type: string, thresholds: bigint[], state: Map<bigint, boolean>, before: bigint, after: bigint): ThresholdDecision[] {
  return effectiveThresholds(type, thresholds).map((t) => {
    // With no state yet, dropped/depleted take the balance before; recovered waits until it has
    // seen the balance at or below t (a first grant to a new customer is not a recovery).
    const was = state.get(t) ?? (type === 'credit_balance_recovered' ? false : before <= t);
    const now = after <= t;
    const fire = type === 'credit_balance_recovered' ? was && !now : !was && now;
    return { threshold: t, inAlert: now, changed: was !== now || !state.has(t), fire };
  });
}

/**
 * Runs inside the transaction of any balance change (debit batch, grant, void, amendment,
 * expiry): records the new balance for the access cache and the credit_balance.updated
 * coalescer, keeps credit_balances.depleted, evaluates the customers' balance alerts and writes
 * the outbox rows of every crossing. Call it once per transaction with every changed pair.
 */
export async function evaluateCrossings(db: Queryable, changes: BalanceChange[], opts: { snapshotsWritten?: boolean } = {}): Promise<CrossingResult> {
  // Last change per pair wins (a transaction may report a pair twice; most report each once).
  let list = changes;
  const byPair = new Map<string, BalanceChange>();
  for (const c of changes) {
    const k = `${c.customerId}\u0000${c.pricingUnit}`;
    const prev = byPair.get(k);
    byPair.set(k, prev ? { ...c, before: prev.before } : c);
  }
  if (byPair.size !== changes.length) list = [...byPair.values()];
  const cmp = (a: BalanceChange, b: BalanceChange) => (a.customerId < b.customerId ? -1 : a.customerId > b.customerId ? 1 : a.pricingUnit < b.pricingUnit ? -1 : a.pricingUnit > b.pricingUnit ? 1 : 0);
  let sorted = true;
  for (let i = 1; i < list.length && sorted; i++) sorted = cmp(list[i - 1]!, list[i]!) < 0;
  if (!sorted) list = [...list].sort(cmp);
  if (list.length === 0) return { depleted: 0, events: 0 };

  // First the snapshot row (it orders this transaction against the coalescer, see coalescer.ts).
  // Arrays go as one text literal each (pgTextArray); balances as picos, scaled in SQL.
  const customers = pgTextArray(list.map((c) => c.customerId));
  const units = pgTextArray(list.map((c) => c.pricingUnit));
  // Rows that exist are updated (an INSERT ... ON CONFLICT DO UPDATE would also lock each
  // conflicting row first, one more WAL record per row); only missing ones are inserted.
  // The debit path writes them in its draw statement (opts.snapshotsWritten), the same way.
  if (!opts.snapshotsWritten) await db.query(
    `WITH t AS (
       SELECT c, u, b * 0.000000000001 AS b, p FROM unnest($1::text[], $2::text[], $3::numeric[], $4::boolean[]) AS t(c, u, b, p)
     ), upd AS (
       UPDATE balance_snapshots s SET balance = t.b, changed_at = now(), update_pending = s.update_pending OR t.p
         FROM t WHERE s.customer_id = t.c AND s.pricing_unit = t.u
       RETURNING s.customer_id, s.pricing_unit
     )
     INSERT INTO balance_snapshots (customer_id, pricing_unit, balance, update_pending)
     SELECT c, u, b, p FROM t WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.customer_id = t.c AND upd.pricing_unit = t.u)
     ON CONFLICT (customer_id, pricing_unit) DO UPDATE
       SET balance = excluded.balance, changed_at = now(),
           update_pending = balance_snapshots.update_pending OR excluded.update_pending`,
    [customers, units, `{${list.map((c) => c.after).join(',')}}`, `{${list.map((c) => (c.after < c.before ? 't' : 'f')).join(',')}}`],
  );
  const flips = list.filter((c) => (c.before > 0n) !== (c.after > 0n));
  if (flips.length > 0) {
    await db.query(
      `UPDATE credit_balances cb SET depleted = t.v FROM unnest($1::text[], $2::text[], $3::boolean[]) AS t(customer_id, pricing_unit, v)
        WHERE cb.customer_id = t.customer_id AND cb.pricing_unit = t.pricing_unit`,
      [flips.map((c) => c.customerId), flips.map((c) => c.pricingUnit), flips.map((c) => c.after <= 0n)],
    );
  }

  // The access cache's feed, one appended row per transaction (migrations 310), in the same
  // statement as the read of the pairs' balance alerts: one round trip fewer (each waits for
  // the caller's event loop). A data-modifying CTE runs whether or not it is read.
  const alerts = await db.query<AlertRow>(
    `WITH feed AS (INSERT INTO balance_feed (customer_ids, pricing_units) VALUES ($1::text[], $2::text[]))
     SELECT a.id, a.type, a.customer_id, a.currency, a.thresholds::text[] AS thresholds
       FROM alerts a JOIN unnest($1::text[], $2::text[]) AS t(customer_id, pricing_unit)
         ON a.customer_id = t.customer_id AND a.currency = t.pricing_unit
      WHERE a.enabled AND a.type = ANY($3::text[])`,
    [customers, units, BALANCE_ALERT_TYPES],
  );
  if (alerts.rows.length === 0) return { depleted: 0, events: 0 };

  const states = await db.query<{ alert_id: string; threshold: string; in_alert: boolean }>(
    `SELECT alert_id, threshold::text, in_alert FROM alert_threshold_state WHERE alert_id = ANY($1::text[]) AND scope = ''`,
    [alerts.rows.map((a) => a.id)],
  );
  const stateOf = new Map<string, Map<bigint, boolean>>();
  for (const s of states.rows) {
    let m = stateOf.get(s.alert_id);
    if (!m) stateOf.set(s.alert_id, (m = new Map()));
    m.set(toPicos(s.threshold), s.in_alert);
  }

  const upserts: { alertId: string; threshold: bigint; inAlert: boolean }[] = [];
  const rows: OutboxRow[] = [];
  let depleted = 0;
  const alertsOf = new Map<string, AlertRow[]>();
  for (const a of alerts.rows) {
    const k = `${a.customer_id}\u0000${a.currency}`;
    const m = alertsOf.get(k);
    if (m) m.push(a);
    else alertsOf.set(k, [a]);
  }
  for (const c of list) {
    const mine = alertsOf.get(`${c.customerId}\u0000${c.pricingUnit}`);
    if (!mine) continue;
    // Announce in the order a reader expects: drops from the highest threshold down, then
    // depletion, then recoveries from the lowest threshold up.
    const order = { credit_balance_dropped: 0, credit_balance_depleted: 1, credit_balance_recovered: 2 } as Record<string, number>;
    mine.sort((a, b) => order[a.type]! - order[b.type]!);
    for (const a of mine) {
      const thresholds = a.thresholds.map(toPicos);
      const decisions = decide(a.type, thresholds, stateOf.get(a.id) ?? new Map(), c.before, c.after);
      decisions.sort((x, y) => (a.type === 'credit_balance_recovered' ? (x.threshold < y.threshold ? -1 : 1) : x.threshold > y.threshold ? -1 : 1));
      for (const d of decisions) {
        if (d.changed) upserts.push({ alertId: a.id, threshold: d.threshold, inAlert: d.inAlert });
        if (!d.fire) continue;
        if (a.type === 'credit_balance_depleted') depleted++;
        rows.push({
          topic: `customer.${a.type}`,
          customerId: c.customerId,
          payload: {
            customer_id: c.customerId,
            alert_configuration_id: a.id,
            pricing_unit: c.pricingUnit,
            ...(a.type === 'credit_balance_depleted' ? {} : { balance_threshold: formatDecimal(d.threshold) }),
            balance: formatDecimal(c.after),
            previous_balance: formatDecimal(c.before),
            cause: c.cause,
          },
        });
      }
    }
  }
  if (upserts.length > 0) {
    await db.query(
      `INSERT INTO alert_threshold_state (alert_id, scope, threshold, in_alert)
       SELECT a, '', t, v FROM unnest($1::text[], $2::numeric[], $3::boolean[]) AS x(a, t, v)
       ON CONFLICT (alert_id, scope, threshold) DO UPDATE SET in_alert = excluded.in_alert, changed_at = now()`,
      [upserts.map((u) => u.alertId), upserts.map((u) => formatDecimal(u.threshold)), upserts.map((u) => u.inAlert)],
    );
  }
  await writeOutbox(db, rows);
  return { depleted, events: rows.length };
}

/** Debit lines as array literals (one per column; quantities and costs in picos). */
export interface SubscriptionUsageLines {
  customers: string | readonly string[];
  prices: string | readonly string[];
  days: string | readonly string[];
  quantities: string;
  costs: string;
}

/**
 * Each row of `lines`, a FROM item named t of (customer_id, price_id, day, quantity, cost), with
 * its subscription and period, one row per `key` (columns of t): the customer's subscription
 * whose plan holds the price and which is active on the day (the latest started if several);
 * periods are monthly from the subscription's start date. A SELECT of (subscription_id,
 * price_id, metric_id, currency, quantity, cost, period_start); rows of customers without such a
 * subscription are left out. `customers`, when given, is a parameter holding (at least) the
 * rows' customers: restated as a constant it narrows the subscriptions read (a CTE's row count is
 * a planner's guess).
 */
const subscriptionPeriods = (lines: string, key: string, customers?: string) => `SELECT DISTINCT ON (${key})
                      s.id AS subscription_id, p.id AS price_id, p.metric_id, p.currency, t.quantity, t.cost,
                      (s.start_date::date + ((extract(year FROM age(t.day, s.start_date::date)) * 12
                                              + extract(month FROM age(t.day, s.start_date::date)))::int * interval '1 month'))::date AS period_start
                 FROM ${lines} JOIN prices p ON p.id = t.price_id
                        JOIN subscriptions s ON s.customer_id = t.customer_id AND s.plan_id = p.plan_id
                         AND s.start_date::date <= t.day AND (s.end_date IS NULL OR s.end_date::date > t.day)${customers ? `
                         AND s.customer_id = ANY(${customers})` : ''}
                ORDER BY ${key}, s.start_date DESC`;

/** The alerts that read subscription usage. */
const USAGE_ALERT = `a.enabled AND a.type IN ('usage_exceeded', 'cost_exceeded')`;

/**
 * The subscription usage upsert over `lines` (as subscriptionPeriods), summed per subscription,
 * period and price: SQL for a data-modifying CTE returning (subscription_id, period_start) of
 * the rows it wrote. Since migration 550 only lines of zero or negative amount come here (the
 * others' usage rides on the ledger entries and overage rows they write; usageRowsCtes). $1
 * holds the lines' customers.
 */
const subscriptionUsageUpsert = (lines: string, key: string) => `INSERT INTO subscription_usage AS u (subscription_id, period_start, price_id, metric_id, currency, quantity, cost)
       SELECT subscription_id, period_start, price_id, metric_id, currency, sum(quantity), sum(cost)
         FROM (${subscriptionPeriods(lines, key, '$1::text[]')}) m
        GROUP BY 1, 2, 3, 4, 5
       ON CONFLICT (subscription_id, period_start, price_id) DO UPDATE SET quantity = u.quantity + excluded.quantity, cost = u.cost + excluded.cost
       RETURNING subscription_id, period_start`;

/**
 * The subscription periods of `lines` (as subscriptionPeriods; `customers` as there) whose
 * subscription has an enabled usage or cost alert, as a SELECT of (subscription_id,
 * period_start as text). Only the lines of customers with such a subscription are mapped (most
 * customers have none, so this reads a few alerts and no line goes further).
 */
export const alertedPeriodsOf = (lines: string, key: string, customers?: string) => `SELECT DISTINCT m.subscription_id, m.period_start::text AS period_start
       FROM (${subscriptionPeriods(
         `(SELECT * FROM ${lines} WHERE t.customer_id IN (SELECT s.customer_id FROM alerts a JOIN subscriptions s ON s.id = a.subscription_id WHERE ${USAGE_ALERT})) AS t`,
         key,
         customers,
       )}) m
      WHERE EXISTS (SELECT 1 FROM alerts a WHERE a.subscription_id = m.subscription_id AND ${USAGE_ALERT})`;

/**
 * CTEs over p(subscription_id, period_start) (defined by the caller): usage_rows, the usage of
 * those subscription periods per price, metric and currency (subscription_id, period_start,
 * price_id, metric_id, currency, quantity, cost), from where it is recorded: the grouped usage
 * decrements (usage_quantity, usage_cost; a pooled child's usage may be on its parent's ledger,
 * usage_customer_id names the child), the overage rows (usage no block covered) and
 * subscription_usage (every line before migration 550; since then those of zero or negative
 * amount). The first two are summed per (customer, price, day) and mapped to subscriptions and
 * periods as the lines were (subscriptionPeriods), then kept for the periods asked. A period is
 * at most 31 days: each customer's rows are read from its earliest period start asked to 32 days
 * after its latest.
 */
const usageRowsCtes = `pc AS (
       SELECT s.customer_id, cu.parent_id, min(p.period_start) AS lo, max(p.period_start) + 32 AS hi
         FROM p JOIN subscriptions s ON s.id = p.subscription_id JOIN customers cu ON cu.id = s.customer_id
        GROUP BY 1, 2
     ), recorded AS (
       SELECT customer_id, price_id, day, sum(quantity) AS quantity, sum(cost) AS cost FROM (
         SELECT e.usage_customer_id AS customer_id, e.price_id, e.usage_day AS day, e.usage_quantity AS quantity, e.usage_cost AS cost
           FROM pc JOIN ledger_entries e ON e.customer_id IN (pc.customer_id, pc.parent_id) AND e.usage_customer_id = pc.customer_id
          WHERE e.entry_type = 'decrement' AND e.usage_day >= pc.lo AND e.usage_day < pc.hi AND e.usage_quantity IS NOT NULL
         UNION ALL
         SELECT o.customer_id, o.price_id, o.usage_day, o.usage_quantity, o.usage_cost
           FROM pc JOIN usage_overage o ON o.customer_id = pc.customer_id
          WHERE o.usage_day >= pc.lo AND o.usage_day < pc.hi AND (o.usage_quantity <> 0 OR o.usage_cost <> 0)
       ) x GROUP BY 1, 2, 3
     ), usage_rows AS MATERIALIZED (
       SELECT m.subscription_id, m.period_start, m.price_id, m.metric_id, m.currency, m.quantity, m.cost
         FROM (${subscriptionPeriods('recorded AS t', 't.customer_id, t.price_id, t.day')}) m
        WHERE (m.subscription_id, m.period_start) IN (SELECT subscription_id, period_start FROM p)
       UNION ALL
       SELECT u.subscription_id, u.period_start, u.price_id, u.metric_id, u.currency, u.quantity, u.cost
         FROM subscription_usage u JOIN p ON p.subscription_id = u.subscription_id AND p.period_start = u.period_start
     )`;

/** The usage of subscription periods per price (for checks and tests): quantity and cost, summed
 *  over everywhere it is recorded (usageRowsCtes), as text. */
export async function subscriptionUsageTotals(db: Queryable, periods: readonly { subscriptionId: string; periodStart: string }[]): Promise<{ subscription_id: string; period_start: string; price_id: string; quantity: string; cost: string }[]> {
  const r = await db.query<{ subscription_id: string; period_start: string; price_id: string; quantity: string; cost: string }>(
    `WITH p AS (SELECT DISTINCT * FROM unnest($1::text[], $2::date[]) AS p(subscription_id, period_start)), ${usageRowsCtes}
     SELECT subscription_id, period_start::text, price_id, sum(quantity)::text AS quantity, sum(cost)::text AS cost
       FROM usage_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
    [periods.map((x) => x.subscriptionId), periods.map((x) => x.periodStart)],
  );
  return r.rows;
}

/** Of the rows `cte` (subscriptionUsageUpsert) wrote, those of subscriptions with an enabled usage
 *  or cost alert (the only ones evaluateSubscriptionAlerts looks at; most have none, so most
 *  transactions return no row): subscription_id, period_start as text. */
const alertedSubscriptionUsage = (cte: string) => `SELECT x.subscription_id, x.period_start::text AS period_start FROM ${cte} x
      WHERE EXISTS (SELECT 1 FROM alerts a WHERE a.subscription_id = x.subscription_id AND ${USAGE_ALERT})`;

/** Adds lines given as array literals to subscription_usage (subscriptionUsageUpsert); returns
 *  the periods it wrote of subscriptions with an enabled usage or cost alert (for
 *  evaluateSubscriptionAlerts). */
export async function writeSubscriptionUsage(db: Queryable, lines: SubscriptionUsageLines): Promise<{ subscription_id: string; period_start: string }[]> {
  // The lines go to SQL as they are (one text literal per column, amounts in picos); SQL merges
  // them per (customer, price, day), keeping only those of customers with a subscription.
  if (lines.customers.length === 0 || lines.customers === '{}') return [];
  const touched = await db.query<{ subscription_id: string; period_start: string }>(
    `WITH su AS (
       ${subscriptionUsageUpsert(
         `(SELECT customer_id, price_id, day, sum(quantity) * 0.000000000001 AS quantity, sum(cost) * 0.000000000001 AS cost
             FROM unnest($1::text[], $2::text[], $3::date[], $4::numeric[], $5::numeric[]) AS t(customer_id, price_id, day, quantity, cost)
            WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.customer_id = t.customer_id)
            GROUP BY 1, 2, 3) AS t`,
         't.customer_id, t.price_id, t.day',
       )}
     )
     ${alertedSubscriptionUsage('su')}`,
    [lines.customers, lines.prices, lines.days, lines.quantities, lines.costs],
  );
  return touched.rows;
}

/** The usage_exceeded / cost_exceeded alerts crossed by the usage just recorded in the `touched`
 *  subscription periods (those without such an alert may be left out), in the debit transaction.
 *  A line's usage belongs to the customer's subscription whose plan holds the line's price and
 *  which is active on the line's day; periods are monthly from the subscription's start. Usage
 *  only grows inside a period, so each threshold fires at most once per period. */
export async function evaluateSubscriptionAlerts(db: Queryable, touched: readonly { subscription_id: string; period_start: string }[]): Promise<number> {
  if (touched.length === 0) return 0;
  const totals = await db.query<{ alert_id: string; type: string; subscription_id: string; customer_id: string; metric_id: string | null; period_start: string; total: string; thresholds: string[] }>(
    `WITH p AS (
       -- Only subscriptions with an enabled usage or cost alert go further.
       SELECT DISTINCT x.subscription_id, x.period_start FROM unnest($1::text[], $2::date[]) AS x(subscription_id, period_start)
        WHERE EXISTS (SELECT 1 FROM alerts a WHERE a.subscription_id = x.subscription_id AND ${USAGE_ALERT})
     ), ${usageRowsCtes}
     SELECT a.id AS alert_id, a.type, a.subscription_id, s.customer_id, a.metric_id, p.period_start::text, a.thresholds::text[] AS thresholds,
            coalesce((SELECT CASE WHEN a.type = 'usage_exceeded' THEN sum(u.quantity) ELSE sum(u.cost) END
                        FROM usage_rows u
                       WHERE u.subscription_id = a.subscription_id AND u.period_start = p.period_start
                         AND (a.type <> 'usage_exceeded' OR u.metric_id = a.metric_id)
                         AND (a.type <> 'cost_exceeded' OR a.currency IS NULL OR u.currency = a.currency)), 0)::text AS total
       FROM alerts a JOIN p ON p.subscription_id = a.subscription_id JOIN subscriptions s ON s.id = a.subscription_id
      WHERE ${USAGE_ALERT}`,
    [touched.map((r) => r.subscription_id), touched.map((r) => r.period_start)],
  );
  if (totals.rows.length === 0) return 0;
  const fired = await db.query<{ alert_id: string; scope: string; threshold: string }>(
    `SELECT alert_id, scope, threshold::text FROM alert_threshold_state WHERE alert_id = ANY($1::text[]) AND in_alert`,
    [totals.rows.map((r) => r.alert_id)],
  );
  const done = new Set(fired.rows.map((r) => `${r.alert_id}\u0000${r.scope}\u0000${toPicos(r.threshold)}`));
  const upserts: { alertId: string; scope: string; threshold: bigint }[] = [];
  const rows: OutboxRow[] = [];
  for (const r of totals.rows) {
    const total = toPicos(r.total);
    const ts = r.thresholds.map(toPicos).sort((a, b) => (a < b ? -1 : 1));
    for (const t of ts) {
      if (total < t || done.has(`${r.alert_id}\u0000${r.period_start}\u0000${t}`)) continue;
      upserts.push({ alertId: r.alert_id, scope: r.period_start, threshold: t });
      const end = new Date(`${r.period_start}T00:00:00Z`);
      end.setUTCMonth(end.getUTCMonth() + 1);
      rows.push({
        topic: r.type === 'usage_exceeded' ? 'subscription.usage_exceeded_threshold' : 'subscription.cost_exceeded',
        customerId: r.customer_id,
        payload: {
          customer_id: r.customer_id,
          subscription_id: r.subscription_id,
          alert_configuration_id: r.alert_id,
          timeframe_start: `${r.period_start}T00:00:00.000Z`,
          timeframe_end: end.toISOString(),
          ...(r.type === 'usage_exceeded'
            ? { billable_metric_id: r.metric_id, quantity_threshold: formatDecimal(t), quantity: formatDecimal(total) }
            : { amount_threshold: formatDecimal(t), amount: formatDecimal(total) }),
        },
      });
    }
  }
  if (upserts.length > 0) {
    await db.query(
      `INSERT INTO alert_threshold_state (alert_id, scope, threshold, in_alert)
       SELECT a, s, t, true FROM unnest($1::text[], $2::text[], $3::numeric[]) AS x(a, s, t)
       ON CONFLICT (alert_id, scope, threshold) DO UPDATE SET in_alert = true, changed_at = now()`,
      [upserts.map((u) => u.alertId), upserts.map((u) => u.scope), upserts.map((u) => formatDecimal(u.threshold))],
    );
  }
  await writeOutbox(db, rows);
  return rows.length;
}
