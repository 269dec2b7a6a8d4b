-- Alerts, webhooks and access control (issue 7). Amounts are numeric(38,12).

-- Alert configurations (Orb's shape). Customer-scoped: credit_balance_{depleted,dropped,recovered}
-- per (customer, currency); subscription-scoped: usage_exceeded (per metric), cost_exceeded.
CREATE TABLE alerts (
  id text PRIMARY KEY,
  type text NOT NULL,
  customer_id text REFERENCES customers (id),
  subscription_id text REFERENCES subscriptions (id),
  currency text,
  metric_id text REFERENCES metrics (id),
  thresholds numeric(38,12)[] NOT NULL DEFAULT '{}',
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((customer_id IS NULL) <> (subscription_id IS NULL))
);
-- Orb: at most one alert of each type per customer and currency; one per subscription and metric.
CREATE UNIQUE INDEX alerts_customer_type ON alerts (customer_id, currency, type) WHERE customer_id IS NOT NULL;
CREATE UNIQUE INDEX alerts_subscription_type ON alerts (subscription_id, type, coalesce(metric_id, '')) WHERE subscription_id IS NOT NULL;

-- Per threshold of an alert: whether the watched value is past it now. A crossing fires only
-- when this flips, so a crossing fires once whatever is replayed; the flip back re-arms it.
-- scope is '' for balance alerts, the period start (YYYY-MM-DD) for usage and cost alerts.
CREATE TABLE alert_threshold_state (
  alert_id text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
  scope text NOT NULL,
  threshold numeric(38,12) NOT NULL,
  in_alert boolean NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (alert_id, scope, threshold)
);

-- Usage and cost per subscription, billing period and price (from debit batch lines), for
-- usage_exceeded and cost_exceeded alerts.
CREATE TABLE subscription_usage (
  subscription_id text NOT NULL REFERENCES subscriptions (id),
  period_start date NOT NULL,
  price_id text NOT NULL,
  metric_id text,
  currency text NOT NULL,
  quantity numeric(38,12) NOT NULL DEFAULT 0,
  cost numeric(38,12) NOT NULL DEFAULT 0,
  PRIMARY KEY (subscription_id, period_start, price_id)
);

-- The latest balance per (customer, pricing unit), written by every balance change in its
-- transaction: the access cache follows it (by transaction id) and the coalescer emits
-- credit_balance.updated from it.
CREATE TABLE balance_snapshots (
  customer_id text NOT NULL,
  pricing_unit text NOT NULL,
  balance numeric(38,12) NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now(),
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  update_pending boolean NOT NULL DEFAULT false,
  update_emitted_at timestamptz,
  PRIMARY KEY (customer_id, pricing_unit)
);
CREATE INDEX balance_snapshots_txid ON balance_snapshots (txid);
CREATE INDEX balance_snapshots_pending ON balance_snapshots (customer_id) WHERE update_pending;

-- Webhook endpoints (Drawdown's own API, Orb style). The secret signs deliveries; after a
-- rotation the previous one also signs until previous_secret_until.
CREATE TABLE webhook_endpoints (
  id text PRIMARY KEY,
  url text NOT NULL,
  description text,
  event_types text[] NOT NULL,             -- empty: every type
  secret text NOT NULL,
  previous_secret text,
  previous_secret_until timestamptz,
  status text NOT NULL DEFAULT 'enabled',  -- enabled | disabled
  disabled_reason text,
  failing_since timestamptz,
  deleted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One event per outbox row of a webhook type, with the exact body delivered.
CREATE TABLE webhook_events (
  id text PRIMARY KEY,
  outbox_id bigint NOT NULL UNIQUE,
  customer_id text,
  type text NOT NULL,
  body text NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

-- One row per (endpoint, event): the delivery state machine. Per endpoint and customer,
-- only the lowest pending seq is attempted (events arrive in order).
CREATE TABLE webhook_deliveries (
  endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  event_id text NOT NULL REFERENCES webhook_events (id),
  seq bigint NOT NULL,                     -- the event's outbox id: commit order per customer
  customer_key text NOT NULL,              -- customer id, or '' for events of no customer
  status text NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
  attempts int NOT NULL DEFAULT 0,
  first_attempt_at timestamptz,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz,
  last_status int,
  last_error text,
  delivered_at timestamptz,
  PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, customer_key, seq) WHERE status = 'pending';

-- Delivery log: every attempt.
CREATE TABLE webhook_attempts (
  id bigserial PRIMARY KEY,
  endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  event_id text NOT NULL,
  attempt int NOT NULL,
  status_code int,
  error text,
  duration_ms int NOT NULL,
  attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);

-- Access policies per customer or subscription (a subscription's wins for its prices).
CREATE TABLE access_policies (
  id text PRIMARY KEY,
  customer_id text REFERENCES customers (id),
  subscription_id text REFERENCES subscriptions (id),
  mode text NOT NULL,                      -- block_when_depleted | allow_overage | always_allow
  overage_limit numeric(38,12),            -- allow_overage: most negative balance allowed (null: no limit)
  block_on_unpaid_overage boolean NOT NULL DEFAULT false,
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((customer_id IS NULL) <> (subscription_id IS NULL))
);
CREATE UNIQUE INDEX access_policies_customer ON access_policies (customer_id) WHERE customer_id IS NOT NULL;
CREATE UNIQUE INDEX access_policies_subscription ON access_policies (subscription_id) WHERE subscription_id IS NOT NULL;
CREATE INDEX access_policies_txid ON access_policies (txid);

-- Overage invoices not yet paid: filled by invoicing (issue 8) through
-- setUnpaidOverage() in ledger/src/access, in the transaction that issues, pays or voids.
CREATE TABLE unpaid_overage_invoices (
  invoice_id text PRIMARY KEY,
  customer_id text NOT NULL,
  unpaid boolean NOT NULL,
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unpaid_overage_customer ON unpaid_overage_invoices (customer_id) WHERE unpaid;
CREATE INDEX unpaid_overage_txid ON unpaid_overage_invoices (txid);
