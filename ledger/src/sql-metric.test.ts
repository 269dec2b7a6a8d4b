import { describe, expect, it } from 'vitest';
import { parseMetricSql } from './sql-metric';

describe('parseMetricSql', () => {
  it.each([
    ["SELECT count(*) FROM events WHERE event_name = 'api_call'", { event_name: 'api_call', aggregation: 'count', filters: [] }],
    ["select sum(properties.bytes) from events where event_name = 'upload' and region IN ('eu', 'us')", { event_name: 'upload', aggregation: 'sum', property: 'bytes', filters: [{ property: 'region', values: ['eu', 'us'] }] }],
    ["SELECT max(gpu) FROM events WHERE event_name = 'job' AND properties['tier'] = 'gold' GROUP BY region", { event_name: 'job', aggregation: 'max', property: 'gpu', filters: [{ property: 'tier', values: ['gold'] }], group_by: 'region' }],
    ["SELECT count(DISTINCT user_id) FROM events WHERE event_name = 'login';", { event_name: 'login', aggregation: 'unique_count', property: 'user_id', filters: [] }],
  ])('%s', (sql, def) => {
    expect(parseMetricSql(sql)).toEqual(def);
  });

  it.each([
    ["SELECT avg(x) FROM events WHERE event_name = 'a'", 'sql: SELECT clause "avg(x)" is not supported; use count(*), sum(property), max(property), count(DISTINCT property) or latest(property)'],
    ["SELECT count(*) FROM users WHERE event_name = 'a'", 'sql: FROM users is not supported; metrics read FROM events'],
    ['SELECT count(*) FROM events', "sql: WHERE must name the event: event_name = '...'"],
    ["SELECT count(*) FROM events WHERE event_name = 'a' OR event_name = 'b'", 'sql: OR in WHERE condition "event_name = \'a\' OR event_name = \'b\'" is not supported; use IN (...)'],
    ["SELECT count(*) FROM events WHERE event_name = 'a' AND x > 3", 'sql: WHERE condition "x > 3" is not supported; use property = \'value\' or property IN (\'a\', \'b\') joined by AND'],
    ["SELECT count(*) FROM events WHERE event_name = 'a' AND x = y", 'sql: in WHERE condition "x = y", y is not a literal (quote strings with \'...\')'],
  ])('rejects %s', (sql, message) => {
    expect(() => parseMetricSql(sql)).toThrow(message);
  });
});
