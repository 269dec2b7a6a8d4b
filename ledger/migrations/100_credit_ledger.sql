-- Credit ledger (issue 5): Orb's block and entry fields, shared pools, append-only entries,
-- idempotency reservations. Amounts stay numeric(38,12), the scale of @drawdown/money.

ALTER TABLE credit_blocks
  ADD COLUMN filters jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN invoice_settings jsonb,           -- as given on the increment; issue 8 invoices from it
  ADD COLUMN deleted_at timestamptz,           -- DELETE /v1/credit_blocks/{id}: remaining voided, hidden
  ADD CONSTRAINT credit_blocks_remaining_le_initial CHECK (remaining <= initial_amount),
  ADD CONSTRAINT credit_blocks_source CHECK (source IN ('manual', 'allocation', 'top_up', 'commitment')),
  ADD CONSTRAINT credit_blocks_status CHECK (status IN ('active', 'pending_payment'));
-- The expiry job's scan: blocks with credits left and an expiry.
CREATE INDEX credit_blocks_expiring ON credit_blocks (expiry_date) WHERE remaining > 0 AND expiry_date IS NOT NULL;
CREATE INDEX credit_blocks_customer ON credit_blocks (customer_id, created_at, id);

ALTER TABLE ledger_entries
  ADD COLUMN entry_no bigserial,               -- global insertion order: ties of created_at in listings
  ADD COLUMN void_reason text,
  ADD COLUMN void_amount numeric(38,12),
  ADD COLUMN new_block_expiry_date timestamptz,
  -- Whose usage a grouped decrement is: the block owner itself, or a child drawing on its pool.
  ADD COLUMN usage_customer_id text,
  -- A decrement that settles earlier overage from a new block: balance unchanged by it.
  ADD COLUMN settles_overage boolean NOT NULL DEFAULT false,
  ADD CONSTRAINT ledger_entries_type CHECK (entry_type IN ('increment', 'decrement', 'expiration_change', 'credit_block_expiry', 'void', 'void_initiated', 'amendment')),
  ADD CONSTRAINT ledger_entries_status CHECK (entry_status IN ('committed', 'pending'));
DROP INDEX ledger_usage_group;
CREATE UNIQUE INDEX ledger_usage_group ON ledger_entries (customer_id, pricing_unit, block_id, price_id, usage_day, usage_customer_id)
  WHERE entry_type = 'decrement' AND usage_day IS NOT NULL;
DROP INDEX ledger_customer;
CREATE INDEX ledger_customer ON ledger_entries (customer_id, created_at DESC, entry_no DESC);

-- Append-only: no deletes; the only update allowed is growing a grouped usage decrement
-- (amount and ending_balance of a row with usage_day set).
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'ledger_entries are append-only' USING ERRCODE = 'P0001';
  END IF;
  IF OLD.usage_day IS NULL OR OLD.entry_type <> 'decrement'
     OR ROW(NEW.id, NEW.customer_id, NEW.pricing_unit, NEW.ledger_sequence_number, NEW.entry_type, NEW.entry_status, NEW.block_id,
            NEW.starting_balance, NEW.price_id, NEW.usage_day, NEW.usage_customer_id, NEW.created_at, NEW.entry_no)
        IS DISTINCT FROM
        ROW(OLD.id, OLD.customer_id, OLD.pricing_unit, OLD.ledger_sequence_number, OLD.entry_type, OLD.entry_status, OLD.block_id,
            OLD.starting_balance, OLD.price_id, OLD.usage_day, OLD.usage_customer_id, OLD.created_at, OLD.entry_no) THEN
    RAISE EXCEPTION 'ledger_entries are append-only (only grouped usage decrements grow)' USING ERRCODE = 'P0001';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

CREATE INDEX applied_batches_age ON applied_batches (applied_at);

-- Idempotency-Key: status 0 marks a reservation (the first request is still running).
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- Debits check whether a balance has price-filtered blocks (rare) before the set-based path.
CREATE INDEX credit_blocks_filtered ON credit_blocks (customer_id, pricing_unit) WHERE remaining > 0 AND filters <> '[]'::jsonb;

-- A block created to take effect later: when its effective date passes, the ledger job settles
-- any overage from it and reports the balance change (crossing hooks), then clears the flag.
ALTER TABLE credit_blocks ADD COLUMN starts_pending boolean NOT NULL DEFAULT false;
CREATE INDEX credit_blocks_starting ON credit_blocks (effective_date) WHERE starts_pending;
