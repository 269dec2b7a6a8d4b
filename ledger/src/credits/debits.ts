// Applying debit batches: one transaction for many batches and customers, set-based SQL,
// idempotent by batch id. Usage is drawn from blocks in draw-down order (soonest expiry,
// then lowest cost basis, then oldest) by overlapping cumulative intervals: each debit line
// covers [d_start, d_end) of its customer's usage, each block [b_start, b_end) of its
// customer's available credits; what a line takes from a block is their overlap. Usage
// beyond every block is overage.
//
// Shared pools: a customer with a parent (customers.parent_id) first uses its own blocks in
// the unit; what they cannot cover is drawn from the parent's blocks (second pass, same
// order); what neither covers is the child's overage. One level: a parent's own parent is
// not consulted. The parent's ledger gets the decrements on its blocks, grouped per child
// (usage_customer_id), and both balances are locked (one sorted lock list).
import type { DebitBatch } from '@drawdown/debits';
import { formatDecimal, parseDecimal } from '@drawdown/money';
import { withTx, type Pool, type PoolClient } from '@drawdown/pg';
import { balanceKey, pgTextArray as arr, readBalances, toPicos, type Balance } from './balances';
import type { BlockFilter } from './parse';
import { BalanceTracker } from './crossings';
import { alertedPeriodsOf, evaluateSubscriptionAlerts, writeSubscriptionUsage, type SubscriptionUsageLines } from '../alerts/evaluate';

export interface ApplyResult {
  applied: string[];
  skipped: string[];
  customers: number;
  depleted: number;
}

interface Line {
  customerId: string;
  pricingUnit: string;
  priceId: string;
  day: string;
  amount: bigint;
  /** Picos. */
  quantity: bigint;
}

/** A line to draw: `owner` owns the blocks drawn, `usage` is the customer whose usage it is. */
interface Draw {
  owner: string;
  usage: string;
  unit: string;
  price: string;
  day: string;
  amount: string;
  /** The line's quantity (credits-scaled decimal): recorded with the first take of the line, or
   *  with its shortfall when no block covers any of it (migration 550). */
  quantity: string;
}

interface Take extends Draw {
  blockId: string | null;
}

export async function applyDebitBatches(pool: Pool, batches: DebitBatch[]): Promise<ApplyResult> {
  return withTx(pool, (c) => applyInTx(c, batches));
}

/** Draws `lines` from their owners' blocks (and updates the blocks); returns per-block takes and leftovers.
 *  Balances with a price-filtered block take the per-line path; all others the set-based one. */
interface Drawn {
  fromBlocks: Take[];
  leftover: Take[];
  /** Per owner pair drawn: what its counting blocks had available before this draw. */
  available: Map<string, bigint>;
}

/** The owner pairs among `lines` holding a price-filtered block (rare): they take the per-line path. */
async function filteredPairs(c: PoolClient, lines: { owner: string; unit: string }[]): Promise<Set<string>> {
  const filtered = await c.query<{ customer_id: string; pricing_unit: string }>(
    `SELECT DISTINCT customer_id, pricing_unit FROM credit_blocks
      WHERE (customer_id, pricing_unit) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND remaining > 0 AND filters <> '[]'::jsonb`,
    [arr(lines.map((l) => l.owner)), arr(lines.map((l) => l.unit))],
  );
  return new Set(filtered.rows.map((r) => balanceKey(r.customer_id, r.pricing_unit)));
}

async function drawDown(c: PoolClient, lines: Draw[], slow?: Set<string>): Promise<Drawn> {
  slow ??= await filteredPairs(c, lines);
  if (slow.size === 0) return drawDownSet(c, lines);
  const isSlow = (l: Draw) => slow.has(balanceKey(l.owner, l.unit));
  const a = await drawDownSet(c, lines.filter((l) => !isSlow(l)));
  const b = await drawDownFiltered(c, lines.filter(isSlow));
  return { fromBlocks: [...a.fromBlocks, ...b.fromBlocks], leftover: [...a.leftover, ...b.leftover], available: new Map([...a.available, ...b.available]) };
}

/** Does a block's filter list admit a price of this item? (Orb: item_id includes / excludes.) */
function admits(filters: BlockFilter[], itemId: string | undefined): boolean {
  return filters.every((f) => (f.operator === 'includes' ? itemId !== undefined && f.values.includes(itemId) : itemId === undefined || !f.values.includes(itemId)));
}

/** Per-line draw-down for balances with filtered blocks: each line, in order, takes from the
 *  blocks its price's item is admitted to, in draw-down order. */
async function drawDownFiltered(c: PoolClient, lines: Draw[]): Promise<Drawn> {
  if (lines.length === 0) return { fromBlocks: [], leftover: [], available: new Map() };
  const blocks = await c.query<{ id: string; customer_id: string; pricing_unit: string; remaining: string; filters: BlockFilter[] }>(
    `SELECT id, customer_id, pricing_unit, remaining::text, filters FROM credit_blocks k
      WHERE (customer_id, pricing_unit) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        AND remaining > 0 AND status = 'active' AND effective_date <= now() AND (expiry_date IS NULL OR expiry_date > now())
      ORDER BY expiry_date ASC NULLS LAST, coalesce(per_unit_cost_basis, 0), created_at, id`,
    [arr(lines.map((l) => l.owner)), arr(lines.map((l) => l.unit))],
  );
  const items = await c.query<{ id: string; item_id: string }>('SELECT id, item_id FROM prices WHERE id = ANY($1::text[])', [[...new Set(lines.map((l) => l.price))]]);
  const itemOf = new Map(items.rows.map((r) => [r.id, r.item_id]));
  const left = new Map(blocks.rows.map((b) => [b.id, toPicos(b.remaining)]));
  const available = new Map<string, bigint>(lines.map((l) => [balanceKey(l.owner, l.unit), 0n]));
  for (const b of blocks.rows) {
    const k = balanceKey(b.customer_id, b.pricing_unit);
    available.set(k, available.get(k)! + left.get(b.id)!);
  }
  const fromBlocks: Take[] = [];
  const leftover: Take[] = [];
  const sorted = [...lines].sort((x, y) => (x.day < y.day ? -1 : x.day > y.day ? 1 : x.price < y.price ? -1 : x.price > y.price ? 1 : x.usage < y.usage ? -1 : x.usage > y.usage ? 1 : 0));
  for (const l of sorted) {
    let need = parseDecimal(l.amount);
    // The line's quantity goes with its first take, or with its shortfall when nothing covers it.
    let quantity = l.quantity;
    for (const b of blocks.rows) {
      if (need === 0n) break;
      if (b.customer_id !== l.owner || b.pricing_unit !== l.unit || !admits(b.filters, itemOf.get(l.price))) continue;
      const have = left.get(b.id)!;
      const take = have < need ? have : need;
      if (take === 0n) continue;
      left.set(b.id, have - take);
      need -= take;
      fromBlocks.push({ ...l, amount: formatDecimal(take), quantity, blockId: b.id });
      quantity = '0';
    }
    if (need > 0n) leftover.push({ ...l, amount: formatDecimal(need), quantity, blockId: null });
  }
  await updateBlocks(c, fromBlocks);
  return { fromBlocks, leftover, available };
}

async function updateBlocks(c: PoolClient, fromBlocks: Take[]): Promise<void> {
  if (fromBlocks.length === 0) return;
  await c.query(
    `UPDATE credit_blocks k SET remaining = k.remaining - s.take
       FROM (SELECT block_id, sum(take) AS take FROM unnest($1::text[], $2::numeric[]) AS t(block_id, take) GROUP BY block_id) s
      WHERE k.id = s.block_id`,
    [arr(fromBlocks.map((x) => x.blockId!)), arr(fromBlocks.map((x) => x.amount))],
  );
}

/** The lines of drawDownSet: $1..$7 (owner, usage, unit, price, day, amount, quantity), merged already. */
const MERGED_LINES = 'unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::numeric[], $7::numeric[]) AS t(owner, usage, unit, price, day, amount, quantity)';

/** The set-based draw-down of `lines` (a FROM item of owner, usage, unit, price, day, amount,
 *  quantity; one line per (owner, usage, unit, price, day)) as CTEs: d (lines as cumulative
 *  intervals), b (counting blocks as cumulative intervals), total (what each owner pair's blocks
 *  had available), takes (per line and block), lowered (the blocks' update) and short (what each
 *  line found no block for). A line's quantity goes with the take of the block its interval
 *  starts in, or with its shortfall when it starts beyond every block (then no block covers any
 *  of it): recorded once, where the usage is (migration 550). $1 holds the lines' owners. */
const drawCtes = (lines: string) => `d AS (
       SELECT owner, usage, unit, price, day, amount, quantity,
              sum(amount) OVER w - amount AS d_start, sum(amount) OVER w AS d_end
         FROM ${lines}
       WINDOW w AS (PARTITION BY owner, unit ORDER BY day, price, usage ROWS UNBOUNDED PRECEDING)
     ), b AS (
       SELECT k.id, k.customer_id, k.pricing_unit,
              sum(k.remaining) OVER w - k.remaining AS b_start, sum(k.remaining) OVER w AS b_end
         FROM credit_blocks k
        WHERE (k.customer_id, k.pricing_unit) IN (SELECT DISTINCT owner, unit FROM d)
          -- $1 holds every owner of the lines (with repeats): restated as a constant, it gives
          -- the planner a row estimate (a CTE's is a guess of a handful) and, where the lines
          -- touch a small share of the customers, an index scan instead of a scan of every block.
          AND k.customer_id = ANY($1::text[])
          AND k.remaining > 0 AND k.status = 'active' AND k.effective_date <= now()
          AND (k.expiry_date IS NULL OR k.expiry_date > now())
       WINDOW w AS (PARTITION BY k.customer_id, k.pricing_unit
                    ORDER BY k.expiry_date ASC NULLS LAST, coalesce(k.per_unit_cost_basis, 0), k.created_at, k.id
                    ROWS UNBOUNDED PRECEDING)
     ), total AS (
       SELECT customer_id, pricing_unit, max(b_end) AS available FROM b GROUP BY 1, 2
     ), takes AS (
       SELECT d.owner, d.usage, d.unit, d.price, d.day, b.id AS block_id,
              least(d.d_end, b.b_end) - greatest(d.d_start, b.b_start) AS take,
              CASE WHEN b.b_start <= d.d_start THEN d.quantity ELSE 0 END AS quantity
         FROM d JOIN b ON b.customer_id = d.owner AND b.pricing_unit = d.unit
                      AND b.b_start < d.d_end AND d.d_start < b.b_end
     ), lowered AS (
       UPDATE credit_blocks k SET remaining = k.remaining - s.take
         FROM (SELECT block_id, sum(take) AS take FROM takes GROUP BY block_id) s
        WHERE k.id = s.block_id AND k.customer_id = ANY($1::text[])
     ), short AS (
       SELECT d.owner, d.usage, d.unit, d.price, d.day, d.d_end - greatest(d.d_start, coalesce(t.available, 0)) AS amount,
              CASE WHEN d.d_start >= coalesce(t.available, 0) THEN d.quantity ELSE 0 END AS quantity
         FROM d LEFT JOIN total t ON t.customer_id = d.owner AND t.pricing_unit = d.unit
        WHERE d.d_end > coalesce(t.available, 0)
     )`;

/** Set-based draw-down (no filtered blocks): cumulative intervals; one statement computes the
 *  takes, lowers the blocks' remaining and returns the takes. */
async function drawDownSet(c: PoolClient, lines: Draw[]): Promise<Drawn> {
  if (lines.length === 0) return { fromBlocks: [], leftover: [], available: new Map() };
  const r = await c.query<{ owner: string; usage: string; unit: string; price: string | null; day: string; block_id: string | null; take: string; quantity: string }>(
    `WITH ${drawCtes(MERGED_LINES)}
     SELECT owner, usage, unit, price, day::text AS day, block_id, take::text AS take, quantity::text FROM takes
     UNION ALL
     SELECT owner, usage, unit, price, day::text, NULL, amount::text, quantity::text FROM short
     UNION ALL
     -- What each owner pair with blocks had available before this draw (price NULL marks these rows).
     SELECT customer_id, NULL, pricing_unit, NULL, NULL, NULL, available::text, NULL FROM total`,
    [
      arr(lines.map((l) => l.owner)), arr(lines.map((l) => l.usage)), arr(lines.map((l) => l.unit)), arr(lines.map((l) => l.price)), arr(lines.map((l) => l.day)),
      arr(lines.map((l) => l.amount)), arr(lines.map((l) => l.quantity)),
    ],
  );
  const fromBlocks: Take[] = [];
  const leftover: Take[] = [];
  const available = new Map<string, bigint>(lines.map((l) => [balanceKey(l.owner, l.unit), 0n]));
  for (const x of r.rows) {
    if (x.price === null) available.set(balanceKey(x.owner, x.unit), toPicos(x.take));
    else (x.block_id === null ? leftover : fromBlocks).push({ owner: x.owner, usage: x.usage, unit: x.unit, price: x.price, day: x.day, amount: x.take, quantity: x.quantity, blockId: x.block_id });
  }
  return { fromBlocks, leftover, available };
}

/** The grouped usage decrements as CTEs over `t` (customer_id, pricing_unit, block_id, price_id,
 *  usage_day, usage_customer_id, take, quantity, start_balance, end_balance; one row per group):
 *  the take and quantity also add to the entry's usage_cost and usage_quantity (migration 550); grow the
 *  day's entry (grown), or start it with the next sequence numbers of the owner's ledger (seq,
 *  new_entries). Such an entry's starting_balance is the owner's balance before the transaction
 *  that created it, its ending_balance the balance after the latest one that grew it (see
 *  README). New entries get their ids in SQL (same shape as newId(): 96 random bits, base64url,
 *  from the random bytes of one UUID). */
const ENTRY_CTES = `grown AS (
       UPDATE ledger_entries e SET amount = e.amount - t.take, ending_balance = t.end_balance,
              usage_quantity = coalesce(e.usage_quantity, 0) + t.quantity, usage_cost = coalesce(e.usage_cost, 0) + t.take
         FROM t
        WHERE e.entry_type = 'decrement' AND e.customer_id = t.customer_id AND e.pricing_unit = t.pricing_unit
          AND e.block_id = t.block_id AND e.price_id = t.price_id AND e.usage_day = t.usage_day
          AND e.usage_customer_id = t.usage_customer_id
          -- Restated as constants for the index (ledger_usage_group): with nested loops off, a
          -- join clause alone makes this a scan of every grouped entry, which grows with days.
          AND e.customer_id = ANY($1::text[]) AND e.usage_day = ANY($5::date[]) AND e.usage_day IS NOT NULL
       RETURNING e.customer_id, e.pricing_unit, e.block_id, e.price_id, e.usage_day, e.usage_customer_id
     ), ins AS (
       SELECT t.*, row_number() OVER (PARTITION BY t.customer_id, t.pricing_unit ORDER BY t.usage_day, t.price_id, t.usage_customer_id, t.block_id) AS n,
              -- One version-4 UUID per new entry: bytes 1-6 and 11-16 are random (96 bits).
              uuid_send(gen_random_uuid()) AS u
         FROM t WHERE NOT EXISTS (
           SELECT 1 FROM grown g WHERE g.customer_id = t.customer_id AND g.pricing_unit = t.pricing_unit
             AND g.block_id = t.block_id AND g.price_id = t.price_id AND g.usage_day = t.usage_day
             AND g.usage_customer_id = t.usage_customer_id)
     ), seq AS (
       -- The owner's next sequence number: one past its ledger's last (1, 2, 3, ... with no
       -- gaps), read through the unique index. The balance row is locked, so no other writer
       -- appends to this ledger until the transaction ends (entries.ts, settle.ts do the same).
       SELECT x.customer_id, x.pricing_unit,
              coalesce((SELECT max(e.ledger_sequence_number) FROM ledger_entries e
                         WHERE e.customer_id = x.customer_id AND e.pricing_unit = x.pricing_unit), 0) + 1 AS first_seq
         FROM (SELECT DISTINCT customer_id, pricing_unit FROM ins) x
     ), new_entries AS (
       INSERT INTO ledger_entries (id, customer_id, pricing_unit, ledger_sequence_number, entry_type, block_id, amount,
                                   starting_balance, ending_balance, description, price_id, usage_day, usage_customer_id, usage_quantity, usage_cost)
       SELECT translate(encode(substr(ins.u, 1, 6) || substr(ins.u, 11, 6), 'base64'), '+/', '-_'),
              ins.customer_id, ins.pricing_unit, seq.first_seq + ins.n - 1, 'decrement', ins.block_id, -ins.take,
              ins.start_balance, ins.end_balance, 'usage', ins.price_id, ins.usage_day, ins.usage_customer_id, ins.quantity, ins.take
         FROM ins JOIN seq ON seq.customer_id = ins.customer_id AND seq.pricing_unit = ins.pricing_unit
       RETURNING 1
     )`;

/** The fused statement's lines, one array literal per column (amounts in picos): in the common
 *  case the fresh batches' lines as they came (not merged; the statement merges them,
 *  RAW_LINES), and the subscription usage statement reads the same literals. */
interface RawLines {
  customers: string | readonly string[];
  units: string | readonly string[];
  prices: string | readonly string[];
  days: string | readonly string[];
  amounts: string;
}

/** The fused statement's lines: $1 customers, $2 units, $3 prices, $4 amounts (picos), $5 days,
 *  $9 quantities (picos), merged per (customer, unit, price, day) as the client merges them
 *  (mergeLines); every raw amount is positive on this path, so every merged one is. ENTRY_CTES
 *  reads $1 and $5 too. */
const RAW_LINES = `(SELECT owner, owner AS usage, unit, price, day, sum(picos) * 0.000000000001 AS amount, sum(qpicos) * 0.000000000001 AS quantity
           FROM unnest($1::text[], $2::text[], $3::text[], $5::date[], $4::numeric[], $9::numeric[]) AS r(owner, unit, price, day, picos, qpicos)
          GROUP BY owner, unit, price, day) AS t`;

/** The subscription periods of the fused statement's lines (d) that have an enabled usage or
 *  cost alert (alertedPeriodsOf; most transactions find none). */
const ALERTED_CTE = `alerted AS (
       ${alertedPeriodsOf('(SELECT usage AS customer_id, price AS price_id, day, quantity, amount AS cost FROM d) AS t', 't.customer_id, t.price_id, t.day', '$1::text[]')}
     )`;

/**
 * The common case (no pools, no price-filtered blocks) in one statement: draws the lines down
 * (DRAW_CTES), grows or starts the grouped entries (ENTRY_CTES) with balances computed in SQL,
 * and returns per owner pair what its blocks had available and what was taken, plus the lines'
 * shortfalls (overage). The take rows never travel to the client and back. The balances after
 * are computed, not read again: the balance rows are locked and every block drawn counted
 * before (active, effective, unexpired), so a take lowers the available credits and a
 * shortfall raises the overage of the owner (here also the usage customer). It also writes the
 * balance snapshots (the crossing hooks then leave them alone: `BalanceTracker.snapshotsWritten`),
 * records each line's quantity and cost where its usage goes (ENTRY_CTES; shortfalls return
 * theirs for recordOverage) and returns the lines' subscription periods that have usage or cost
 * alerts (ALERTED_CTE), for evaluateSubscriptionAlerts. `quantities`: the raw lines' quantities
 * in picos, a literal like raw.amounts.
 */
async function drawAndRecord(
  c: PoolClient,
  raw: RawLines,
  overageBefore: Map<string, bigint>,
  quantities: string,
): Promise<{ before: Map<string, Balance>; after: Map<string, Balance>; overage: Take[]; touched: { subscription_id: string; period_start: string }[] }> {
  // The planner cannot estimate rows coming out of window CTEs (it guesses a handful), and with
  // such guesses it joins the CTEs by nested loops: quadratic over thousands of lines. Hash joins
  // for this statement only (SET LOCAL ends with the transaction; the next line restores it).
  await c.query('SET LOCAL enable_nestloop = off');
  const r = await c.query<{ owner: string; unit: string | null; price: string | null; day: string | null; available: string; taken: string; quantity: string | null }>(
    `WITH ${drawCtes(RAW_LINES)}, over AS (
       -- The overage of the locked balance rows that have any (the lock read it; most have none).
       SELECT * FROM unnest($6::text[], $7::text[], $8::numeric[]) AS o(owner, unit, amount)
     ), pair AS (
       SELECT o.owner, o.unit, coalesce(tot.available, 0) AS available, coalesce(tk.taken, 0) AS taken,
              coalesce(tot.available, 0) - coalesce(ov.amount, 0) AS start_balance,
              coalesce(tot.available, 0) - coalesce(tk.taken, 0) - coalesce(ov.amount, 0) - coalesce(sh.amount, 0) AS end_balance
         FROM (SELECT DISTINCT owner, unit FROM d) o
         LEFT JOIN over ov ON ov.owner = o.owner AND ov.unit = o.unit
         LEFT JOIN total tot ON tot.customer_id = o.owner AND tot.pricing_unit = o.unit
         LEFT JOIN (SELECT owner, unit, sum(take) AS taken FROM takes GROUP BY 1, 2) tk ON tk.owner = o.owner AND tk.unit = o.unit
         LEFT JOIN (SELECT owner, unit, sum(amount) AS amount FROM short GROUP BY 1, 2) sh ON sh.owner = o.owner AND sh.unit = o.unit
     ), snap AS (
       -- The balance snapshot (alerts/evaluate.ts writes it for every other balance change):
       -- existing rows updated, missing ones inserted; marked pending when the balance fell.
       UPDATE balance_snapshots s SET balance = p.end_balance, changed_at = now(), update_pending = s.update_pending OR p.end_balance < p.start_balance
         FROM pair p
        WHERE s.customer_id = p.owner AND s.pricing_unit = p.unit AND p.end_balance <> p.start_balance
          AND s.customer_id = ANY($1::text[]) -- as in b (drawCtes)
       RETURNING s.customer_id, s.pricing_unit
     ), snap_new AS (
       INSERT INTO balance_snapshots (customer_id, pricing_unit, balance, update_pending)
       SELECT p.owner, p.unit, p.end_balance, p.end_balance < p.start_balance FROM pair p
        WHERE p.end_balance <> p.start_balance
          AND NOT EXISTS (SELECT 1 FROM snap WHERE snap.customer_id = p.owner AND snap.pricing_unit = p.unit)
       ON CONFLICT (customer_id, pricing_unit) DO UPDATE
         SET balance = excluded.balance, changed_at = now(), update_pending = balance_snapshots.update_pending OR excluded.update_pending
     ), t AS (
       SELECT k.owner AS customer_id, k.unit AS pricing_unit, k.block_id, k.price AS price_id, k.day AS usage_day, k.usage AS usage_customer_id,
              k.take, k.quantity, p.start_balance, p.end_balance
         FROM takes k JOIN pair p ON p.owner = k.owner AND p.unit = k.unit
     ), ${ENTRY_CTES}, ${ALERTED_CTE}
     -- Shortfalls first (price set marks these rows; the amount in taken), then the pairs in
     -- lock order (that of the lock statement's ORDER BY), then the alerted subscription periods.
     SELECT owner, unit, price, day::text AS day, NULL AS available, amount::text AS taken, quantity::text FROM short
     UNION ALL
     (SELECT owner, unit, NULL AS price, NULL AS day, available::text, taken::text, NULL FROM pair ORDER BY owner, unit)
     UNION ALL
     SELECT subscription_id, NULL, NULL, period_start, NULL, NULL, NULL FROM alerted`,
    [
      raw.customers, raw.units, raw.prices, raw.amounts, raw.days,
      arr([...overageBefore.keys()].map((k) => k.slice(0, k.indexOf('\u0000')))), arr([...overageBefore.keys()].map((k) => k.slice(k.indexOf('\u0000') + 1))),
      `{${[...overageBefore.values()].map(formatDecimal).join(',')}}`,
      quantities,
    ],
  );
  await c.query('SET LOCAL enable_nestloop = on');
  // Shortfall rows first (rare), then one row per owner pair: its balances before and after.
  const overage: Take[] = [];
  const short = new Map<string, bigint>();
  for (const x of r.rows) {
    if (x.price === null) continue;
    overage.push({ owner: x.owner, usage: x.owner, unit: x.unit!, price: x.price, day: x.day!, amount: x.taken, quantity: x.quantity!, blockId: null });
    const k = balanceKey(x.owner, x.unit!);
    short.set(k, (short.get(k) ?? 0n) + toPicos(x.taken));
  }
  // In lock order (sorted), which the crossing hooks keep.
  const before = new Map<string, Balance>();
  const after = new Map<string, Balance>();
  const touched: { subscription_id: string; period_start: string }[] = [];
  for (const x of r.rows) {
    if (x.price !== null) continue;
    if (x.unit === null) {
      touched.push({ subscription_id: x.owner, period_start: x.day! });
      continue;
    }
    const k = balanceKey(x.owner, x.unit);
    const over = overageBefore.get(k) ?? 0n;
    const available = toPicos(x.available);
    const left = available - toPicos(x.taken);
    const overageAfter = short.size === 0 ? over : over + (short.get(k) ?? 0n);
    before.set(k, { customerId: x.owner, pricingUnit: x.unit, available, overage: over, balance: available - over });
    after.set(k, { customerId: x.owner, pricingUnit: x.unit, available: left, overage: overageAfter, balance: left - overageAfter });
  }
  return { before, after, overage, touched };
}

/**
 * With pools or price-filtered blocks: the takes come back (drawDown, then the parents' blocks
 * for what a child's own could not cover), the balances after and the grouped entries are
 * computed from them here.
 */
async function drawAndRecordByLine(c: PoolClient, lines: Draw[], parentOf: Map<string, string>, before: Map<string, Balance>, slow?: Set<string>): Promise<{ after: Map<string, Balance>; overage: Take[] }> {
  const own = await drawDown(c, lines, slow);
  const pooled = own.leftover.filter((x) => parentOf.has(x.usage)).map((x) => ({ ...x, owner: parentOf.get(x.usage)! }));
  const fromParents = pooled.length > 0 ? await drawDown(c, pooled) : { fromBlocks: [], leftover: [], available: new Map<string, bigint>() };
  const fromBlocks = [...own.fromBlocks, ...fromParents.fromBlocks];
  // Overage belongs to the customer whose usage it is (a child's, not its parent's).
  const overage = [...own.leftover.filter((x) => !parentOf.has(x.usage)), ...fromParents.leftover];

  // The balances after, without reading them again (as in drawAndRecord): a take lowers its
  // owner's available credits, overage raises the usage customer's overage.
  const after = new Map<string, Balance>();
  for (const [k, b] of before) after.set(k, { ...b });
  for (const x of fromBlocks) after.get(balanceKey(x.owner, x.unit))!.available -= toPicos(x.amount);
  for (const x of overage) after.get(balanceKey(x.usage, x.unit))!.overage += toPicos(x.amount);
  for (const a of after.values()) a.balance = a.available - a.overage;

  if (fromBlocks.length > 0) {
    // The owner's balance before and after, as text, once per owner.
    const text = new Map<string, [string, string]>();
    const starts: string[] = [];
    const ends: string[] = [];
    for (const r of fromBlocks) {
      const k = balanceKey(r.owner, r.unit);
      let t = text.get(k);
      if (!t) text.set(k, (t = [formatDecimal(before.get(k)!.balance), formatDecimal(after.get(k)!.balance)]));
      starts.push(t[0]);
      ends.push(t[1]);
    }
    await c.query(
      `WITH t AS (
         SELECT customer_id, pricing_unit, block_id, price_id, usage_day, usage_customer_id, sum(take) AS take, sum(quantity) AS quantity,
                min(start_balance) AS start_balance, min(end_balance) AS end_balance
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[], $6::text[], $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[])
             AS t(customer_id, pricing_unit, block_id, price_id, usage_day, usage_customer_id, take, start_balance, end_balance, quantity)
          GROUP BY 1, 2, 3, 4, 5, 6
       ), ${ENTRY_CTES}
       SELECT count(*) FROM new_entries`,
      [
        arr(fromBlocks.map((r) => r.owner)), arr(fromBlocks.map((r) => r.unit)), arr(fromBlocks.map((r) => r.blockId!)), arr(fromBlocks.map((r) => r.price)),
        arr(fromBlocks.map((r) => r.day)), arr(fromBlocks.map((r) => r.usage)), arr(fromBlocks.map((r) => r.amount)), arr(starts), arr(ends),
        arr(fromBlocks.map((r) => r.quantity)),
      ],
    );
  }
  return { after, overage };
}

/** Usage no block covered: per price and day in usage_overage (with the quantity and cost it
 *  records for subscription alerts, migration 550), in total on the balance row. */
async function recordOverage(c: PoolClient, overage: Take[]): Promise<void> {
  if (overage.length === 0) return;
  await c.query(
    `INSERT INTO usage_overage AS o (customer_id, pricing_unit, price_id, usage_day, amount, usage_quantity, usage_cost)
     SELECT customer_id, pricing_unit, price_id, usage_day, sum(amount), sum(quantity), sum(amount)
       FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::numeric[], $6::numeric[]) AS t(customer_id, pricing_unit, price_id, usage_day, amount, quantity)
      GROUP BY 1, 2, 3, 4
     ON CONFLICT (customer_id, pricing_unit, price_id, usage_day) DO UPDATE
       SET amount = o.amount + excluded.amount, usage_quantity = o.usage_quantity + excluded.usage_quantity, usage_cost = o.usage_cost + excluded.usage_cost`,
    [arr(overage.map((r) => r.usage)), arr(overage.map((r) => r.unit)), arr(overage.map((r) => r.price)), arr(overage.map((r) => r.day)), arr(overage.map((r) => r.amount)), arr(overage.map((r) => r.quantity))],
  );
  await c.query(
    `UPDATE credit_balances cb SET overage = cb.overage + s.amount, updated_at = now()
       FROM (SELECT customer_id, pricing_unit, sum(amount) AS amount
               FROM unnest($1::text[], $2::text[], $3::numeric[]) AS t(customer_id, pricing_unit, amount) GROUP BY 1, 2) s
      WHERE cb.customer_id = s.customer_id AND cb.pricing_unit = s.pricing_unit`,
    [arr(overage.map((r) => r.usage)), arr(overage.map((r) => r.unit)), arr(overage.map((r) => r.amount))],
  );
}

async function applyInTx(c: PoolClient, batches: DebitBatch[]): Promise<ApplyResult> {
  // Sorted, so that two transactions holding overlapping batch ids wait instead of deadlocking.
  const ids = [...new Set(batches.map((b) => b.id))].sort();
  // The batches' customers that have a parent (pooled credits; most have none) are read in the
  // same statement: one round trip fewer (each waits for this thread's event loop). All the
  // batches' customers are asked for; only those of fresh lines count below.
  const asked = new Set<string>();
  for (const b of batches) for (const l of b.lines) asked.add(l.customerId);
  const fresh = await c.query<{ batch_id: string | null; id: string | null; parent_id: string | null }>(
    `WITH f AS (INSERT INTO applied_batches (batch_id) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT DO NOTHING RETURNING batch_id)
     SELECT batch_id, NULL AS id, NULL AS parent_id FROM f
     UNION ALL
     SELECT NULL, id, parent_id FROM customers WHERE id = ANY($2::text[]) AND parent_id IS NOT NULL`,
    [ids, arr([...asked])],
  );
  const freshIds = new Set<string>();
  const parentOfAsked = new Map<string, string>();
  for (const r of fresh.rows) {
    if (r.batch_id !== null) freshIds.add(r.batch_id);
    else parentOfAsked.set(r.id!, r.parent_id!);
  }
  const skipped = ids.filter((id) => !freshIds.has(id));
  const applied = ids.filter((id) => freshIds.has(id));

  // The fresh batches, each once (a batch id twice in one call counts once).
  const freshBatches: DebitBatch[] = [];
  for (const b of batches) {
    if (!freshIds.has(b.id)) continue;
    freshIds.delete(b.id);
    freshBatches.push(b);
  }
  if (freshBatches.length === 0) return { applied, skipped, customers: 0, depleted: 0 };

  // The common case needs no merged lines in this process: when every line's amount is
  // positive, every merged line's is, and the customers and balance pairs are those of the raw
  // lines. (A zero or negative amount takes the merging path: a merged line can then vanish.)
  // When many lines merge (several batches per customer: backlog-sized transactions), the
  // lines are merged here all the same (RAW_LINES_MAX_PER_PAIR).
  let lines: Line[] | undefined;
  let nonPositive = false;
  // Merged lines netting to zero or less draw nothing and write no entry; their quantity (and
  // cost) is usage all the same, recorded in subscription_usage (migration 550).
  const dropped: Line[] = [];
  const byUnit = new Map<string, Set<string>>();
  let rawCount = 0;
  for (const b of freshBatches) {
    rawCount += b.lines.length;
    for (const l of b.lines) {
      if (!isPositive(l.amountPicos)) {
        nonPositive = true;
        lines = mergeLines(freshBatches, dropped);
        break;
      }
      let set = byUnit.get(l.pricingUnit);
      if (!set) byUnit.set(l.pricingUnit, (set = new Set()));
      set.add(l.customerId);
    }
    if (lines) break;
  }
  if (!lines) {
    let pairCount = 0;
    for (const set of byUnit.values()) pairCount += set.size;
    if (rawCount > RAW_LINES_MAX_PER_PAIR * pairCount) lines = mergeLines(freshBatches);
  }
  if (lines ? lines.length === 0 : byUnit.size === 0) {
    await evaluateSubscriptionAlerts(c, await writeSubscriptionUsage(c, usageLinesOf(dropped)));
    return { applied, skipped, customers: 0, depleted: 0 };
  }

  const pairs = new Map<string, { customerId: string; pricingUnit: string }>();
  // byUnit holds every raw line's pair unless a non-positive amount stopped its loop; then the
  // pairs are those of the merged lines (a line netting to zero or less is gone). Otherwise no
  // merged line is dropped, so its pairs are byUnit's (cheaper than a key per merged line).
  const fromMerged = lines !== undefined && nonPositive;
  if (fromMerged) for (const l of lines!) pairs.set(balanceKey(l.customerId, l.pricingUnit), { customerId: l.customerId, pricingUnit: l.pricingUnit });
  else for (const [unit, set] of byUnit) for (const customerId of set) pairs.set(balanceKey(customerId, unit), { customerId, pricingUnit: unit });
  const customers = [...new Set(fromMerged ? lines!.map((l) => l.customerId) : [...byUnit.values()].flatMap((x) => [...x]))];
  const parentOf = new Map<string, string>();
  if (parentOfAsked.size > 0) for (const id of customers) {
    const parent = parentOfAsked.get(id);
    if (parent !== undefined) parentOf.set(id, parent);
  }

  for (const p of [...pairs.values()]) {
    const parent = parentOf.get(p.customerId);
    if (parent) pairs.set(balanceKey(parent, p.pricingUnit), { customerId: parent, pricingUnit: p.pricingUnit });
  }
  const pairList = [...pairs.values()];
  const tracker = new BalanceTracker(c, 'usage');
  const ownLinesOf = () =>
    (lines ??= mergeLines(freshBatches)).map((l) => ({ owner: l.customerId, usage: l.customerId, unit: l.pricingUnit, price: l.priceId, day: l.day, amount: formatDecimal(l.amount), quantity: formatDecimal(l.quantity) }));
  // The lines' subscription periods with usage or cost alerts: the fused statement returns them,
  // the per-line path reads them (alertedPeriods).
  let touched: { subscription_id: string; period_start: string }[];
  let before: Map<string, Balance>;
  let drawn: { after: Map<string, Balance>; overage: Take[] };
  if (parentOf.size === 0) {
    const overageBefore = await tracker.lockOnly(pairList, true);
    const slow = await filteredPairs(c, pairList.map((p) => ({ owner: p.customerId, unit: p.pricingUnit })));
    if (slow.size === 0 && !lines) {
      // The common case: one statement merges and draws the lines, records and reports the balances.
      const raw = rawLines(freshBatches);
      const r = await drawAndRecord(c, raw, overageBefore, raw.quantities);
      touched = r.touched;
      before = r.before;
      drawn = r;
      tracker.snapshotsWritten();
    } else if (slow.size === 0) {
      // Lines merged here (some amount not positive, or many lines per pair): the same statement over them.
      const r = await drawAndRecord(c, rawLinesOf(lines!), overageBefore, `{${lines!.map((l) => l.quantity).join(',')}}`);
      touched = r.touched;
      before = r.before;
      drawn = r;
      tracker.snapshotsWritten();
    } else {
      before = await readBalances(c, pairList);
      drawn = await drawAndRecordByLine(c, ownLinesOf(), parentOf, before, slow);
      touched = await alertedPeriods(c, lines!);
    }
    tracker.setBeforeAll(before);
  } else {
    before = await tracker.lock(pairList, true);
    drawn = await drawAndRecordByLine(c, ownLinesOf(), parentOf, before);
    touched = await alertedPeriods(c, lines!);
  }
  const { after, overage } = drawn;
  await recordOverage(c, overage);

  // Usage per subscription period, for usage and cost alerts (ledger/src/alerts): recorded with
  // the entries and overage above, and for dropped lines here; then the alerts it may cross.
  if (dropped.length > 0) touched.push(...(await writeSubscriptionUsage(c, usageLinesOf(dropped))));
  await evaluateSubscriptionAlerts(c, touched);
  await tracker.finish(after);
  let depleted = 0;
  for (const [k, a] of after) if (before.get(k)!.balance > 0n && a.balance <= 0n) depleted++;
  return { applied, skipped, customers: customers.length, depleted };
}

/** Raw lines per balance pair above which the process merges the lines before the fused
 *  statement instead of sending them unmerged. Postgres reads array literals element by element
 *  (array_in), which costs more per line than merging here: sending the raw lines pays only
 *  when few of them merge. Measured at 10,000 customers (µs per customer debit, Node + backend
 *  CPU): 8 batches per transaction (~2 raw lines per pair) about even (14.6 + 29.2 merged here,
 *  11.8 + 31.3 unmerged); 64 batches (~14 per pair) 37 + 36 merged here, 38 + 78 unmerged. */
const RAW_LINES_MAX_PER_PAIR = 1.5;

/** A picos amount (a decimal integer string) greater than zero. */
function isPositive(picos: string): boolean {
  const c0 = picos.charCodeAt(0);
  return c0 === 48 ? /[1-9]/.test(picos) : c0 !== 45;
}

/** The lines of the batches merged per (customer, unit, price, day) (amounts and quantities
 *  summed); those whose amount comes to zero or less left out (added to `dropped` if given). */
function mergeLines(batches: DebitBatch[], dropped?: Line[]): Line[] {
  const merged = new Map<string, Line>();
  for (const b of batches) {
    for (const l of b.lines) {
      const key = `${l.customerId}\u0000${l.pricingUnit}\u0000${l.priceId}\u0000${l.day}`;
      const amount = BigInt(l.amountPicos);
      const quantity = BigInt(l.quantityPicos ?? '0');
      const cur = merged.get(key);
      if (cur) {
        cur.amount += amount;
        cur.quantity += quantity;
      } else merged.set(key, { customerId: l.customerId, pricingUnit: l.pricingUnit, priceId: l.priceId, day: l.day, amount, quantity });
    }
  }
  const kept: Line[] = [];
  for (const l of merged.values()) {
    if (l.amount > 0n) kept.push(l);
    else dropped?.push(l);
  }
  return kept;
}

/** Merged lines as SubscriptionUsageLines (quantities and costs in picos). */
function usageLinesOf(lines: Line[]): SubscriptionUsageLines {
  return {
    customers: arr(lines.map((l) => l.customerId)), prices: arr(lines.map((l) => l.priceId)), days: arr(lines.map((l) => l.day)),
    quantities: `{${lines.map((l) => l.quantity).join(',')}}`, costs: `{${lines.map((l) => l.amount).join(',')}}`,
  };
}

/** The subscription periods of merged lines that have an enabled usage or cost alert (the
 *  per-line path; the fused statement finds them itself). */
async function alertedPeriods(c: PoolClient, lines: Line[]): Promise<{ subscription_id: string; period_start: string }[]> {
  const r = await c.query<{ subscription_id: string; period_start: string }>(
    alertedPeriodsOf('(SELECT customer_id, price_id, day, 0 AS quantity, 0 AS cost FROM unnest($1::text[], $2::text[], $3::date[]) AS u(customer_id, price_id, day)) AS t', 't.customer_id, t.price_id, t.day', '$1::text[]'),
    [arr(lines.map((l) => l.customerId)), arr(lines.map((l) => l.priceId)), arr(lines.map((l) => l.day))],
  );
  return r.rows;
}

/** Every line of the batches as array literals (RawLines), built once for both statements that
 *  read them: one pass, each column's literal concatenated as it goes (pgTextArray's join and
 *  check per column cost more at 20,000 lines). */
function rawLines(batches: DebitBatch[]): RawLines & { quantities: string } {
  let customers = '';
  let units = '';
  let prices = '';
  let days = '';
  let amounts = '';
  let quantities = '';
  let quoted = false;
  let sep = '';
  for (const b of batches) {
    for (const l of b.lines) {
      customers += `${sep}"${l.customerId}`;
      units += `${sep}"${l.pricingUnit}`;
      prices += `${sep}"${l.priceId}`;
      days += `${sep}"${l.day}`;
      amounts += `${sep === '' ? '' : ','}${l.amountPicos}`;
      quantities += `${sep === '' ? '' : ','}${l.quantityPicos ?? '0'}`;
      sep = '",';
      if (!quoted) quoted = hasQuote(l.customerId) || hasQuote(l.pricingUnit) || hasQuote(l.priceId) || hasQuote(l.day);
    }
  }
  if (quoted) {
    // A value holding a quote or backslash: node-postgres serializes the arrays (as pgTextArray does).
    const all = batches.flatMap((b) => b.lines);
    return {
      customers: all.map((l) => l.customerId), units: all.map((l) => l.pricingUnit), prices: all.map((l) => l.priceId), days: all.map((l) => l.day),
      amounts: `{${amounts}}`, quantities: `{${quantities}}`,
    };
  }
  if (sep === '') return { customers: '{}', units: '{}', prices: '{}', days: '{}', amounts: '{}', quantities: '{}' };
  return { customers: `{${customers}"}`, units: `{${units}"}`, prices: `{${prices}"}`, days: `{${days}"}`, amounts: `{${amounts}}`, quantities: `{${quantities}}` };
}

const hasQuote = (v: string) => v.includes('"') || v.includes('\\');

/** Merged lines as RawLines (each is its own group in the statement's merge). */
function rawLinesOf(lines: Line[]): RawLines {
  return { customers: arr(lines.map((l) => l.customerId)), units: arr(lines.map((l) => l.pricingUnit)), prices: arr(lines.map((l) => l.priceId)), days: arr(lines.map((l) => l.day)), amounts: `{${lines.map((l) => l.amount).join(',')}}` };
}

export { parseDecimal };
