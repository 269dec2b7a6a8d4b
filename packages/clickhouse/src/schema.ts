// The analytics schema. Statements are idempotent (IF NOT EXISTS) and run at every start.
// Amounts and quantities are Decimal128(12): the scale of @drawdown/money.
//
// Every table the rater inserts into with a dedup token (and every materialized view target)
// sets non_replicated_deduplication_window: without it a plain MergeTree ignores
// insert_deduplication_token and a replayed batch would be stored twice.

export const SCHEMA: string[] = [
  `CREATE TABLE IF NOT EXISTS rated_events (
    partition UInt16,
    seq UInt64,
    batch_id String,
    customer_id String,
    external_customer_id String,
    idempotency_key String,
    event_name LowCardinality(String),
    timestamp DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    properties String,
    subscription_id String,
    price_id String,
    metric_id String,
    group_key String,
    period_start DateTime64(3, 'UTC'),
    quantity Decimal128(12),
    amount Decimal128(12),
    pricing_unit LowCardinality(String),
    status LowCardinality(String),
    reason String,
    catalog_version UInt64,
    INDEX idx_key idempotency_key TYPE bloom_filter GRANULARITY 4,
    INDEX idx_seq seq TYPE minmax GRANULARITY 1,
    INDEX idx_partition partition TYPE minmax GRANULARITY 1
  ) ENGINE = MergeTree
  PARTITION BY toYYYYMM(timestamp)
  ORDER BY (customer_id, timestamp)
  SETTINGS non_replicated_deduplication_window = 100000`,

  // Tables created by an earlier version of the schema get the newer columns.
  `ALTER TABLE rated_events ADD COLUMN IF NOT EXISTS group_key String AFTER metric_id`,
  `ALTER TABLE rated_events ADD COLUMN IF NOT EXISTS period_start DateTime64(3, 'UTC') AFTER group_key`,

  `CREATE TABLE IF NOT EXISTS usage_hourly (
    customer_id String,
    price_id String,
    metric_id String,
    group_key String,
    pricing_unit LowCardinality(String),
    hour DateTime('UTC'),
    events UInt64,
    quantity Decimal128(12),
    amount Decimal128(12)
  ) ENGINE = SummingMergeTree((events, quantity, amount))
  PARTITION BY toYYYYMM(hour)
  ORDER BY (customer_id, price_id, hour, metric_id, group_key, pricing_unit)
  SETTINGS non_replicated_deduplication_window = 100000`,

  `CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv TO usage_hourly AS
    SELECT customer_id, price_id, metric_id, group_key, pricing_unit, toStartOfHour(timestamp) AS hour,
           count() AS events, sum(quantity) AS quantity, sum(amount) AS amount
    FROM rated_events WHERE status = 'rated'
    GROUP BY customer_id, price_id, metric_id, group_key, pricing_unit, hour`,

  // An unpriced event (a rated_events row with status 'unpriced') is resolved once a re-rating
  // copy of it went through the rater: priced, found a duplicate, or unpriced again (then the
  // newer row is the one listed). Keyed by the original row's (partition, seq, idempotency_key).
  `CREATE TABLE IF NOT EXISTS unpriced_resolved (
    partition UInt16,
    seq UInt64,
    idempotency_key String,
    resolved_by_seq UInt64,
    resolved_at DateTime64(3, 'UTC')
  ) ENGINE = ReplacingMergeTree
  ORDER BY (partition, seq, idempotency_key)
  SETTINGS non_replicated_deduplication_window = 100000`,
];
