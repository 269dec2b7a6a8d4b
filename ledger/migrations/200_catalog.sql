-- Catalog, customers and subscriptions (issue 6): the billing settings a vendor configures
-- once. Fields the system acts on are real columns; the rest of Orb's shapes are jsonb as given.

-- Customers: every billing setting of the onboarding.
ALTER TABLE customers
  ADD COLUMN additional_emails text[] NOT NULL DEFAULT '{}',
  ADD COLUMN auto_collection boolean NOT NULL DEFAULT true,
  ADD COLUMN auto_issuance boolean,                      -- null: the account default
  ADD COLUMN email_delivery boolean NOT NULL DEFAULT true,
  ADD COLUMN net_terms int CHECK (net_terms BETWEEN 0 AND 365),
  ADD COLUMN payment_provider text,
  ADD COLUMN payment_provider_id text,
  ADD COLUMN billing_address jsonb,
  ADD COLUMN shipping_address jsonb,
  ADD COLUMN tax_id jsonb,
  ADD COLUMN tax_exempt boolean,
  ADD COLUMN tax_configuration jsonb,
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX customers_page ON customers (created_at DESC, id DESC);
CREATE INDEX customers_parent ON customers (parent_id) WHERE parent_id IS NOT NULL;

ALTER TABLE items
  ADD COLUMN external_connections jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN archived_at timestamptz;
CREATE INDEX items_page ON items (created_at DESC, id DESC);
-- The item of recurring credit allocations given without an item_id.
INSERT INTO items (id, name) VALUES ('credit_allocation', 'Credit allocation');

CREATE INDEX metrics_page ON metrics (created_at DESC, id DESC);

-- Pricing units: custom currencies (credits, compute credits, ...). A name never looks like a
-- fiat code (lower case), so currency strings stay unambiguous. rate = fiat per one unit.
CREATE TABLE pricing_units (
  name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
  display_name text NOT NULL,
  currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  conversion_rate numeric(38,12) NOT NULL CHECK (conversion_rate > 0),
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- The walkthrough's unit: plans in "credits" work from the first start. Rate changeable by PUT.
INSERT INTO pricing_units (name, display_name, currency, conversion_rate) VALUES ('credits', 'Credits', 'USD', 1);

ALTER TABLE plans
  ADD COLUMN version int NOT NULL DEFAULT 1,
  ADD COLUMN invoicing_currency text,
  ADD COLUMN billing_cadence text NOT NULL DEFAULT 'monthly' CHECK (billing_cadence IN ('monthly', 'quarterly', 'annual')),
  ADD COLUMN per_credit_overage_amount numeric(38,12) CHECK (per_credit_overage_amount >= 0),
  ADD COLUMN default_invoice_memo text,
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX plans_page ON plans (created_at DESC, id DESC);

-- Price versions: a change makes a new row (same lineage) effective from a date and closes the
-- previous one, so an event is priced by the version in force at its timestamp.
-- Subscription-specific prices (negotiated overrides) carry subscription_id and replace the plan
-- price of lineage `replaces_lineage_id` for that subscription only.
ALTER TABLE prices
  ADD COLUMN lineage_id text,
  ADD COLUMN effective_from timestamptz,
  ADD COLUMN effective_to timestamptz,
  ADD COLUMN subscription_id text,
  ADD COLUMN replaces_price_id text,
  ADD COLUMN replaces_lineage_id text,
  ADD COLUMN price_type text NOT NULL DEFAULT 'usage_price' CHECK (price_type IN ('usage_price', 'fixed_price')),
  ADD COLUMN fixed_price_quantity numeric(38,12),
  ADD COLUMN billed_in_advance boolean NOT NULL DEFAULT false,
  ADD COLUMN external_price_id text,
  ADD COLUMN credit_allocation jsonb,
  ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}',
  ADD CONSTRAINT prices_window CHECK (effective_to IS NULL OR effective_from IS NULL OR effective_to >= effective_from);
UPDATE prices SET lineage_id = id WHERE lineage_id IS NULL;
ALTER TABLE prices ALTER COLUMN lineage_id SET NOT NULL;
CREATE INDEX prices_plan ON prices (plan_id, lineage_id);
CREATE INDEX prices_subscription ON prices (subscription_id) WHERE subscription_id IS NOT NULL;

-- Recurring credit allocations of a plan (or of one subscription, replacing the plan's): what
-- the period settlement grants each period. Zero cost basis unless given.
CREATE TABLE credit_allocations (
  id text PRIMARY KEY,
  plan_id text NOT NULL REFERENCES plans (id),
  subscription_id text,
  price_id text NOT NULL REFERENCES prices (id),
  replaces_allocation_id text REFERENCES credit_allocations (id),
  amount numeric(38,12) NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  cadence text NOT NULL CHECK (cadence IN ('one_time', 'monthly', 'quarterly', 'annual')),
  expires_at_end_of_cadence boolean NOT NULL DEFAULT false,
  custom_expiration jsonb,
  per_unit_cost_basis numeric(38,12) NOT NULL DEFAULT 0 CHECK (per_unit_cost_basis >= 0),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_allocations_plan ON credit_allocations (plan_id);

ALTER TABLE subscriptions
  ADD COLUMN name text,
  ADD COLUMN net_terms int CHECK (net_terms BETWEEN 0 AND 365),
  ADD COLUMN auto_collection boolean,
  ADD COLUMN auto_issuance boolean,
  ADD COLUMN billing_cadence text NOT NULL DEFAULT 'monthly' CHECK (billing_cadence IN ('monthly', 'quarterly', 'annual')),
  ADD COLUMN per_credit_overage_amount numeric(38,12) CHECK (per_credit_overage_amount >= 0),
  ADD COLUMN invoicing_threshold numeric(38,12),
  ADD COLUMN default_invoice_memo text,
  ADD COLUMN cancel_option text,
  ADD COLUMN cancelled_at timestamptz,
  ADD CONSTRAINT subscriptions_window CHECK (end_date IS NULL OR end_date >= start_date);
CREATE INDEX subscriptions_page ON subscriptions (created_at DESC, id DESC);
CREATE INDEX subscriptions_plan ON subscriptions (plan_id);

-- The recurring credit allocations in force for each subscription (what settlement grants):
-- its plan's, except those it replaces, plus its own.
CREATE VIEW subscription_credit_allocations AS
SELECT s.id AS subscription_id, s.customer_id, a.id AS allocation_id, a.price_id, a.amount, a.currency, a.cadence,
       a.expires_at_end_of_cadence, a.custom_expiration, a.per_unit_cost_basis
  FROM subscriptions s JOIN credit_allocations a ON a.plan_id = s.plan_id AND a.subscription_id IS NULL
 WHERE NOT EXISTS (SELECT 1 FROM credit_allocations o WHERE o.subscription_id = s.id AND o.replaces_allocation_id = a.id)
UNION ALL
SELECT s.id, s.customer_id, a.id, a.price_id, a.amount, a.currency, a.cadence, a.expires_at_end_of_cadence, a.custom_expiration, a.per_unit_cost_basis
  FROM subscriptions s JOIN credit_allocations a ON a.subscription_id = s.id;
