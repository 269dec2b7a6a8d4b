-- Drawdown ledger schema. Amounts are numeric(38,12): the scale of @drawdown/money.

CREATE TABLE api_keys (
  id text PRIMARY KEY,
  name text NOT NULL,
  key_hash bytea NOT NULL UNIQUE,          -- sha256 of the key; the key itself is shown once
  prefix text NOT NULL,                    -- first characters, to recognise a key in lists
  scopes text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

CREATE TABLE catalog_version (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version bigint NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO catalog_version (version) VALUES (1);

CREATE TABLE customers (
  id text PRIMARY KEY,
  external_customer_id text UNIQUE,
  name text NOT NULL,
  email text NOT NULL DEFAULT '',
  currency text,
  timezone text NOT NULL DEFAULT 'UTC',
  metadata jsonb NOT NULL DEFAULT '{}',
  attrs jsonb NOT NULL DEFAULT '{}',       -- the rest of Orb's customer fields, as given
  parent_id text REFERENCES customers (id),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE items (
  id text PRIMARY KEY,
  name text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE metrics (
  id text PRIMARY KEY,
  name text NOT NULL,
  description text,
  item_id text NOT NULL REFERENCES items (id),
  sql text NOT NULL,
  definition jsonb NOT NULL,               -- {event_name, aggregation, property, filters, group_by}
  status text NOT NULL DEFAULT 'active',
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE plans (
  id text PRIMARY KEY,
  external_plan_id text UNIQUE,
  name text NOT NULL,
  currency text NOT NULL,
  status text NOT NULL DEFAULT 'active',
  net_terms int,
  description text,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prices (
  id text PRIMARY KEY,
  plan_id text REFERENCES plans (id),
  item_id text NOT NULL REFERENCES items (id),
  metric_id text REFERENCES metrics (id),
  name text NOT NULL,
  model_type text NOT NULL,
  cadence text NOT NULL,
  currency text NOT NULL,                  -- a pricing unit (credits) or a fiat currency
  config jsonb NOT NULL,                   -- the model's config as given (unit_config, ...)
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
  id text PRIMARY KEY,
  customer_id text NOT NULL REFERENCES customers (id),
  plan_id text NOT NULL REFERENCES plans (id),
  start_date timestamptz NOT NULL,
  end_date timestamptz,
  status text NOT NULL DEFAULT 'active',
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);

-- One row per customer and pricing unit: the lock point of every balance change, and the
-- running overage (usage beyond all blocks, filled first by the next increment).
CREATE TABLE credit_balances (
  customer_id text NOT NULL REFERENCES customers (id),
  pricing_unit text NOT NULL,
  overage numeric(38,12) NOT NULL DEFAULT 0 CHECK (overage >= 0),
  next_entry_seq bigint NOT NULL DEFAULT 1,
  depleted boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, pricing_unit)
);

CREATE TABLE credit_blocks (
  id text PRIMARY KEY,
  customer_id text NOT NULL,
  pricing_unit text NOT NULL,
  initial_amount numeric(38,12) NOT NULL CHECK (initial_amount >= 0),
  remaining numeric(38,12) NOT NULL CHECK (remaining >= 0),
  per_unit_cost_basis numeric(38,12),
  effective_date timestamptz NOT NULL,
  expiry_date timestamptz,
  source text NOT NULL DEFAULT 'manual',
  status text NOT NULL DEFAULT 'active',
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (customer_id, pricing_unit) REFERENCES credit_balances (customer_id, pricing_unit)
);
CREATE INDEX credit_blocks_drawdown ON credit_blocks (customer_id, pricing_unit) WHERE remaining > 0;

CREATE TABLE ledger_entries (
  id text PRIMARY KEY,
  customer_id text NOT NULL,
  pricing_unit text NOT NULL,
  ledger_sequence_number bigint NOT NULL,
  entry_type text NOT NULL,
  entry_status text NOT NULL DEFAULT 'committed',
  block_id text REFERENCES credit_blocks (id),
  amount numeric(38,12) NOT NULL,
  starting_balance numeric(38,12) NOT NULL,
  ending_balance numeric(38,12) NOT NULL,
  description text,
  metadata jsonb NOT NULL DEFAULT '{}',
  -- Usage decrements are grouped per customer, block, price and day (usage_key), not per event.
  price_id text,
  usage_day date,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (customer_id, pricing_unit, ledger_sequence_number)
);
CREATE UNIQUE INDEX ledger_usage_group ON ledger_entries (customer_id, pricing_unit, block_id, price_id, usage_day) WHERE entry_type = 'decrement' AND usage_day IS NOT NULL;
CREATE INDEX ledger_customer ON ledger_entries (customer_id, created_at);

-- Overage is usage beyond all blocks, grouped like decrements but with no block.
CREATE TABLE usage_overage (
  customer_id text NOT NULL,
  pricing_unit text NOT NULL,
  price_id text NOT NULL,
  usage_day date NOT NULL,
  amount numeric(38,12) NOT NULL,
  PRIMARY KEY (customer_id, pricing_unit, price_id, usage_day)
);

-- Debit batches applied, by id (pruned after the replay horizon).
CREATE TABLE applied_batches (
  batch_id text PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox: rows written in the same transaction as the change they announce.
CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  topic text NOT NULL,
  customer_id text,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

-- Idempotency-Key on POSTs: the first response is replayed for a repeat of the same request.
CREATE TABLE idempotency_keys (
  key text NOT NULL,
  scope text NOT NULL,                     -- method + path
  request_hash bytea NOT NULL,
  status int NOT NULL,
  response jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key)
);
