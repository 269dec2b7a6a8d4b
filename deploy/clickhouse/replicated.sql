-- The analytics schema of packages/clickhouse/src/schema.ts for a ClickHouse cluster named
-- `drawdown`: replicated local tables plus Distributed tables under the same names the code
-- uses. Replicated tables deduplicate repeated inserts (same insert_deduplication_token)
-- through Keeper, which is what makes a rater's replayed batch land once.
CREATE DATABASE IF NOT EXISTS drawdown ON CLUSTER drawdown;

CREATE TABLE IF NOT EXISTS drawdown.rated_events_local ON CLUSTER drawdown (
  partition UInt16, seq UInt64, batch_id String,
  customer_id String, external_customer_id String, idempotency_key String,
  event_name LowCardinality(String), timestamp DateTime64(3, 'UTC'), received_at DateTime64(3, 'UTC'),
  properties String, subscription_id String, price_id String, metric_id String,
  quantity Decimal128(12), amount Decimal128(12), pricing_unit LowCardinality(String),
  status LowCardinality(String), reason String, catalog_version UInt64,
  INDEX idx_key idempotency_key TYPE bloom_filter GRANULARITY 4,
  INDEX idx_seq seq TYPE minmax GRANULARITY 1
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/drawdown/rated_events', '{replica}')
PARTITION BY toYYYYMM(timestamp) ORDER BY (customer_id, timestamp);

-- Shard by customer so one customer's events (and their dedup checks) stay on one shard.
CREATE TABLE IF NOT EXISTS drawdown.rated_events ON CLUSTER drawdown AS drawdown.rated_events_local
ENGINE = Distributed(drawdown, drawdown, rated_events_local, cityHash64(customer_id));
