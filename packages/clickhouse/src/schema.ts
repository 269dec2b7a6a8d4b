// The analytics schema. Statements are idempotent (IF NOT EXISTS) and run at every start.
// Amounts and quantities are Decimal128(12): the scale of @drawdown/money.

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
    quantity Decimal128(12),
    amount Decimal128(12),
    pricing_unit LowCardinality(String),
    status LowCardinality(String),
    reason String,
    catalog_version UInt64,
    INDEX idx_key idempotency_key TYPE bloom_filter GRANULARITY 4,
    INDEX idx_seq seq TYPE minmax GRANULARITY 1
  ) ENGINE = MergeTree
  PARTITION BY toYYYYMM(timestamp)
  ORDER BY (customer_id, timestamp)
  SETTINGS non_replicated_deduplication_window = 100000`,

  `CREATE TABLE IF NOT EXISTS usage_hourly (
    customer_id String,
    price_id String,
    metric_id String,
    pricing_unit LowCardinality(String),
    hour DateTime('UTC'),
    events UInt64,
    quantity Decimal128(12),
    amount Decimal128(12)
  ) ENGINE = SummingMergeTree((events, quantity, amount))
  PARTITION BY toYYYYMM(hour)
  ORDER BY (customer_id, price_id, hour, metric_id, pricing_unit)
  SETTINGS non_replicated_deduplication_window = 100000`,

  `CREATE MATERIALIZED VIEW IF NOT EXISTS usage_hourly_mv TO usage_hourly AS
    SELECT customer_id, price_id, metric_id, pricing_unit, toStartOfHour(timestamp) AS hour,
           count() AS events, sum(quantity) AS quantity, sum(amount) AS amount
    FROM rated_events WHERE status = 'rated'
    GROUP BY customer_id, price_id, metric_id, pricing_unit, hour`,
];
