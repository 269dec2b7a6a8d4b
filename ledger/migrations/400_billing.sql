-- Billing (issue 8): invoices, top-ups, payments, period settlement. Amounts numeric(38,12).
-- Columns other domains may also add are added with IF NOT EXISTS so either side can land first.

ALTER TABLE customers ADD COLUMN IF NOT EXISTS net_terms int;
ALTER TABLE customers ADD COLUMN IF NOT EXISTS auto_collection boolean;
ALTER TABLE customers ADD COLUMN IF NOT EXISTS auto_issuance boolean;
ALTER TABLE customers ADD COLUMN IF NOT EXISTS payment_provider text;
ALTER TABLE customers ADD COLUMN IF NOT EXISTS payment_provider_id text;
-- Set while an issued overage invoice is unpaid; the access check may read it.
ALTER TABLE customers ADD COLUMN IF NOT EXISTS unpaid_overage boolean NOT NULL DEFAULT false;

-- A purchased block waiting for its invoice (status 'pending_payment' until paid).
ALTER TABLE credit_blocks ADD COLUMN IF NOT EXISTS invoice_id text;
CREATE INDEX IF NOT EXISTS credit_blocks_invoice ON credit_blocks (invoice_id) WHERE invoice_id IS NOT NULL;

-- Pricing units and their exact conversion to fiat (fiat per unit).
CREATE TABLE IF NOT EXISTS pricing_units (
  name text PRIMARY KEY,
  currency text NOT NULL,
  conversion_rate numeric(38,12) NOT NULL CHECK (conversion_rate > 0),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE IF NOT EXISTS invoice_number_seq;

CREATE TABLE invoices (
  id text PRIMARY KEY,
  invoice_number text NOT NULL UNIQUE,
  customer_id text NOT NULL REFERENCES customers (id),
  subscription_id text REFERENCES subscriptions (id),
  -- credit_purchase | top_up | settlement | allocation
  kind text NOT NULL,
  invoice_source text NOT NULL,            -- Orb: subscription | one_off | partial
  status text NOT NULL CHECK (status IN ('draft', 'issued', 'paid', 'void')),
  currency text NOT NULL,
  subtotal numeric(38,12) NOT NULL,
  total numeric(38,12) NOT NULL,
  amount_due numeric(38,12) NOT NULL,
  invoice_date timestamptz NOT NULL,
  due_date timestamptz,
  net_terms int NOT NULL DEFAULT 0,
  period_start timestamptz,
  period_end timestamptz,
  memo text,
  auto_collection boolean NOT NULL DEFAULT false,
  will_auto_issue boolean NOT NULL DEFAULT true,
  has_overage boolean NOT NULL DEFAULT false,
  issued_at timestamptz,
  paid_at timestamptz,
  voided_at timestamptz,
  payment_started_at timestamptz,
  payment_failed_at timestamptz,
  -- Collection by the payment provider: none | pending | started | awaiting | succeeded | failed
  collection text NOT NULL DEFAULT 'none',
  provider text,
  provider_invoice_id text,
  payment_external_id text,
  payment_notes text,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_customer ON invoices (customer_id, invoice_date);
CREATE INDEX invoices_collect ON invoices (id) WHERE collection = 'pending';
-- One settlement invoice per subscription period (settling twice is a no-op).
CREATE UNIQUE INDEX invoices_period ON invoices (subscription_id, period_start) WHERE kind = 'settlement';
CREATE UNIQUE INDEX invoices_provider ON invoices (provider, provider_invoice_id) WHERE provider_invoice_id IS NOT NULL;

CREATE TABLE invoice_line_items (
  id text PRIMARY KEY,
  invoice_id text NOT NULL REFERENCES invoices (id),
  position int NOT NULL,
  kind text NOT NULL,                      -- credit_purchase | fixed_fee | usage | overage
  name text NOT NULL,
  price_id text,
  pricing_unit text,
  quantity numeric(38,12) NOT NULL,
  unit_amount numeric(38,12),
  amount numeric(38,12) NOT NULL,
  start_date timestamptz NOT NULL,
  end_date timestamptz NOT NULL,
  UNIQUE (invoice_id, position)
);

CREATE TABLE payment_attempts (
  id text PRIMARY KEY,
  invoice_id text NOT NULL REFERENCES invoices (id),
  provider text NOT NULL,
  provider_payment_id text,
  amount numeric(38,12) NOT NULL,
  succeeded boolean NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Automatic top-ups (Orb: one per customer and currency; creating another replaces it).
CREATE TABLE top_ups (
  id text PRIMARY KEY,
  customer_id text NOT NULL REFERENCES customers (id),
  currency text NOT NULL,
  threshold numeric(38,12) NOT NULL,
  amount numeric(38,12) NOT NULL CHECK (amount > 0),
  per_unit_cost_basis numeric(38,12) NOT NULL CHECK (per_unit_cost_basis >= 0),
  invoice_settings jsonb NOT NULL,
  active_from timestamptz NOT NULL,
  expires_after int,
  expires_after_unit text,
  created_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE UNIQUE INDEX top_ups_active ON top_ups (customer_id, currency) WHERE deleted_at IS NULL;

-- A threshold crossing, written in the debit transaction that crossed it (under the balance
-- row lock); the top-up worker turns it into an increment + invoice + payment.
CREATE TABLE top_up_intents (
  id text PRIMARY KEY,
  top_up_id text NOT NULL REFERENCES top_ups (id),
  customer_id text NOT NULL,
  currency text NOT NULL,
  balance_before numeric(38,12) NOT NULL,
  balance_after numeric(38,12) NOT NULL,
  status text NOT NULL DEFAULT 'pending',  -- pending | done | cancelled (top-up deleted first)
  block_id text,
  invoice_id text,
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz
);
CREATE INDEX top_up_intents_pending ON top_up_intents (created_at) WHERE status = 'pending';

-- Scheduled purchases: a fixed block bought every `every_months` months from `next_run_at`.
CREATE TABLE scheduled_purchases (
  id text PRIMARY KEY,
  customer_id text NOT NULL REFERENCES customers (id),
  currency text NOT NULL,
  amount numeric(38,12) NOT NULL CHECK (amount > 0),
  per_unit_cost_basis numeric(38,12) NOT NULL CHECK (per_unit_cost_basis >= 0),
  invoice_settings jsonb NOT NULL,
  every_months int NOT NULL CHECK (every_months IN (1, 3, 6, 12)),
  expires_after_months int,
  next_run_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);

-- Recurring allocations granted, one per subscription, price and period start; next_period_start
-- lets the scheduler skip a subscription until its next period begins.
CREATE TABLE allocation_grants (
  subscription_id text NOT NULL,
  price_id text NOT NULL,
  period_start timestamptz NOT NULL,
  next_period_start timestamptz NOT NULL,
  block_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscription_id, price_id, period_start)
);

-- Per subscription, the end of its oldest unsettled period: the scheduler looks only at
-- subscriptions whose next_period_end + grace has passed.
CREATE TABLE settlement_cursors (
  subscription_id text PRIMARY KEY REFERENCES subscriptions (id),
  next_period_index int NOT NULL,
  next_period_end timestamptz NOT NULL
);

-- Stripe webhook events processed, by event id (Stripe retries deliveries).
CREATE TABLE provider_events (
  provider text NOT NULL,
  event_id text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, event_id)
);
