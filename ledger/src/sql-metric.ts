// Orb's metric `sql`, for the subset that maps onto a structured definition:
//   SELECT count(*) | sum(prop) | max(prop) | count(DISTINCT prop) | latest(prop) FROM events
//   WHERE event_name = '...' [AND prop = '...' | prop IN ('a', 'b')]... [GROUP BY prop]
// Property references may be bare (`region`) or `properties.region` / `properties['region']`.
// Anything else is rejected with an error that points at the clause.
import type { Aggregation, MetricDefinition, PropertyFilter } from '@drawdown/catalog';

export class MetricSqlError extends Error {
  override readonly name = 'MetricSqlError';
  readonly code = 'validation_failed';
  readonly field = 'sql';
}

const PROP = String.raw`(?:properties\.([A-Za-z_][\w]*)|properties\[\s*'([^']+)'\s*\]|([A-Za-z_][\w]*))`;
const propOf = (m: RegExpExecArray, i: number) => m[i] ?? m[i + 1] ?? m[i + 2];

function parseSelect(sel: string): { aggregation: Aggregation; property?: string } {
  const s = sel.trim();
  if (/^count\s*\(\s*\*\s*\)$/i.test(s)) return { aggregation: 'count' };
  let m = new RegExp(String.raw`^count\s*\(\s*distinct\s+${PROP}\s*\)$`, 'i').exec(s);
  if (m) return { aggregation: 'unique_count', property: propOf(m, 1)! };
  m = new RegExp(String.raw`^(sum|max|latest)\s*\(\s*${PROP}\s*\)$`, 'i').exec(s);
  if (m) {
    const fn = m[1]!.toLowerCase() as 'sum' | 'max' | 'latest';
    return { aggregation: fn, property: propOf(m, 2)! };
  }
  throw new MetricSqlError(`sql: SELECT clause "${s}" is not supported; use count(*), sum(property), max(property), count(DISTINCT property) or latest(property)`);
}

function parseLiteral(lit: string, clause: string): string {
  const t = lit.trim();
  const q = /^'((?:[^']|'')*)'$/.exec(t);
  if (q) return q[1]!.replace(/''/g, "'");
  if (/^-?\d+(\.\d+)?$/.test(t) || /^(true|false)$/i.test(t)) return t.toLowerCase();
  throw new MetricSqlError(`sql: in WHERE condition "${clause}", ${t} is not a literal (quote strings with '...')`);
}

export function parseMetricSql(sql: string): MetricDefinition {
  const text = sql.trim().replace(/;\s*$/, '');
  const m = /^select\s+(.+?)\s+from\s+(\S+)(?:\s+where\s+(.+?))?(?:\s+group\s+by\s+(.+?))?$/is.exec(text);
  if (!m) throw new MetricSqlError('sql: expected SELECT <aggregate> FROM events [WHERE ...] [GROUP BY property]');
  if (m[2]!.toLowerCase() !== 'events') throw new MetricSqlError(`sql: FROM ${m[2]} is not supported; metrics read FROM events`);
  const { aggregation, property } = parseSelect(m[1]!);
  let eventName: string | undefined;
  const filters: PropertyFilter[] = [];
  if (m[3]) {
    const conditions = m[3].split(/\s+and\s+/i);
    for (const cond of conditions) {
      const c = cond.trim();
      if (/\s+or\s+/i.test(c)) throw new MetricSqlError(`sql: OR in WHERE condition "${c}" is not supported; use IN (...)`);
      const eq = new RegExp(String.raw`^${PROP}\s*=\s*(.+)$`, 'is').exec(c);
      const inn = new RegExp(String.raw`^${PROP}\s+in\s*\((.+)\)$`, 'is').exec(c);
      if (eq) {
        const name = propOf(eq, 1)!;
        const value = parseLiteral(eq[4]!, c);
        if (name === 'event_name' && eq[3]) {
          if (eventName !== undefined) throw new MetricSqlError(`sql: event_name is constrained twice ("${c}")`);
          eventName = value;
        } else filters.push({ property: name, values: [value] });
      } else if (inn) {
        const name = propOf(inn, 1)!;
        const values = inn[4]!.split(',').map((v) => parseLiteral(v, c));
        if (name === 'event_name' && inn[3]) throw new MetricSqlError(`sql: event_name IN (...) is not supported; one metric counts one event name ("${c}")`);
        filters.push({ property: name, values });
      } else {
        throw new MetricSqlError(`sql: WHERE condition "${c}" is not supported; use property = 'value' or property IN ('a', 'b') joined by AND`);
      }
    }
  }
  if (eventName === undefined) throw new MetricSqlError("sql: WHERE must name the event: event_name = '...'");
  const def: MetricDefinition = { event_name: eventName, aggregation, filters };
  if (property !== undefined) def.property = property;
  if (m[4]) {
    const g = new RegExp(String.raw`^${PROP}$`, 'i').exec(m[4].trim());
    if (!g) throw new MetricSqlError(`sql: GROUP BY "${m[4].trim()}" is not supported; group by one property`);
    def.group_by = propOf(g, 1)!;
  }
  return def;
}
