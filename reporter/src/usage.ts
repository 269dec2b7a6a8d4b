// Period usage from ClickHouse, for settlement and the upcoming invoice (the ledger's
// UsageSource). Decomposable metrics (count, sum) read the hourly rollup when the period is
// hour-aligned (periods start at whole hours in practice) and the rated events otherwise;
// non-decomposable ones (max, unique_count, latest) always read the rated events, since
// their value over a period cannot be summed from parts. Matrix prices read their quantity per
// combination of dimension values (the raw JSON of each property, '' when absent), so each
// combination is priced at its own unit amount. Decimals leave ClickHouse as text and are
// parsed exactly.
import { parseDecimal, type Picos } from '@drawdown/money';
import { queryRows, type Ch } from '@drawdown/clickhouse';

export interface PeriodUsageSource {
  sums(q: { customerId: string; priceIds: string[]; start: Date; end: Date }): Promise<Map<string, { quantity: Picos; amount: Picos }>>;
  aggregate(q: { customerId: string; priceId: string; eventName: string; aggregation: 'max' | 'unique_count' | 'latest'; property: string; start: Date; end: Date }): Promise<Picos>;
  grouped(q: { customerId: string; priceId: string; eventName: string; aggregation: 'count' | 'sum' | 'max' | 'unique_count' | 'latest'; property: string; dimensions: string[]; start: Date; end: Date }): Promise<{ values: string[]; quantity: Picos }[]>;
}

const HOUR_MS = 3_600_000;
const dec = (s: string | null | undefined): Picos => (s === null || s === undefined || s === '' || s === '\\N' ? 0n : parseDecimal(s));

export function clickhouseUsageSource(ch: Pick<Ch, 'client'>): PeriodUsageSource {
  return {
    async sums(q) {
      const aligned = q.start.getTime() % HOUR_MS === 0 && q.end.getTime() % HOUR_MS === 0;
      const params = { c: q.customerId, p: q.priceIds, s: q.start.getTime(), e: q.end.getTime() };
      const rows = aligned
        ? await queryRows<{ price_id: string; quantity: string; amount: string }>(ch,
          `SELECT price_id, toString(sum(quantity)) AS quantity, toString(sum(amount)) AS amount FROM usage_hourly
            WHERE customer_id = {c:String} AND price_id IN {p:Array(String)}
              AND hour >= toDateTime(intDiv({s:Int64}, 1000), 'UTC') AND hour < toDateTime(intDiv({e:Int64}, 1000), 'UTC')
            GROUP BY price_id`, params)
        : await queryRows<{ price_id: string; quantity: string; amount: string }>(ch,
          `SELECT price_id, toString(sum(quantity)) AS quantity, toString(sum(amount)) AS amount FROM rated_events
            WHERE customer_id = {c:String} AND price_id IN {p:Array(String)} AND status = 'rated'
              AND timestamp >= fromUnixTimestamp64Milli({s:Int64}, 'UTC') AND timestamp < fromUnixTimestamp64Milli({e:Int64}, 'UTC')
            GROUP BY price_id`, params);
      return new Map(rows.map((r) => [r.price_id, { quantity: dec(r.quantity), amount: dec(r.amount) }]));
    },
    async aggregate(q) {
      const rows = await queryRows<{ v: string | null }>(ch,
        `SELECT ${aggregateExpr(q.aggregation)} AS v FROM rated_events
          WHERE customer_id = {c:String} AND price_id = {p:String} AND status = 'rated' AND event_name = {n:String}
            AND timestamp >= fromUnixTimestamp64Milli({s:Int64}, 'UTC') AND timestamp < fromUnixTimestamp64Milli({e:Int64}, 'UTC')`,
        { c: q.customerId, p: q.priceId, n: q.eventName, prop: q.property, s: q.start.getTime(), e: q.end.getTime() });
      return dec(rows[0]?.v);
    },
    async grouped(q) {
      // count and sum: the rated quantity (as sums() reads it); the others as aggregate().
      const expr = q.aggregation === 'count' || q.aggregation === 'sum' ? 'toString(sum(quantity))' : aggregateExpr(q.aggregation);
      const rows = await queryRows<{ vals: string[]; v: string | null }>(ch,
        `SELECT arrayMap(d -> JSONExtractRaw(properties, d), {dims:Array(String)}) AS vals, ${expr} AS v FROM rated_events
          WHERE customer_id = {c:String} AND price_id = {p:String} AND status = 'rated' AND event_name = {n:String}
            AND timestamp >= fromUnixTimestamp64Milli({s:Int64}, 'UTC') AND timestamp < fromUnixTimestamp64Milli({e:Int64}, 'UTC')
          GROUP BY vals ORDER BY vals`,
        { c: q.customerId, p: q.priceId, n: q.eventName, prop: q.property, dims: q.dimensions, s: q.start.getTime(), e: q.end.getTime() });
      return rows.map((r) => ({ values: r.vals, quantity: dec(r.v) }));
    },
  };
}

/** A non-decomposable aggregation of the property {prop} over rated events, as text. */
function aggregateExpr(aggregation: 'max' | 'unique_count' | 'latest'): string {
  const value = "toDecimal128OrNull(trim(BOTH '\"' FROM JSONExtractRaw(properties, {prop:String})), 12)";
  return aggregation === 'max' ? `toString(max(${value}))`
    : aggregation === 'unique_count' ? "toString(uniqExactIf(JSONExtractRaw(properties, {prop:String}), JSONExtractRaw(properties, {prop:String}) != ''))"
    : `toString(argMax(${value}, (timestamp, seq)))`;
}
