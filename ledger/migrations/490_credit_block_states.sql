-- Billing (400) adds block sources and states the credit ledger (100) did not list:
-- scheduled purchases, the zero-remaining block an overage invoice settles, and blocks voided
-- with their unpaid invoice.
ALTER TABLE credit_blocks DROP CONSTRAINT IF EXISTS credit_blocks_source;
ALTER TABLE credit_blocks ADD CONSTRAINT credit_blocks_source CHECK (source IN ('manual', 'allocation', 'top_up', 'commitment', 'scheduled_purchase', 'overage_invoice'));
ALTER TABLE credit_blocks DROP CONSTRAINT IF EXISTS credit_blocks_status;
ALTER TABLE credit_blocks ADD CONSTRAINT credit_blocks_status CHECK (status IN ('active', 'pending_payment', 'void'));

-- A purchase awaiting payment has a pending increment entry; when its invoice is paid the entry
-- is committed. That status change (pending -> committed, nothing else) is the one update the
-- append-only rule allows besides grouped usage decrements growing.
CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'ledger_entries are append-only' USING ERRCODE = 'P0001';
  END IF;
  IF OLD.entry_status = 'pending' AND NEW.entry_status = 'committed'
     AND (to_jsonb(NEW) - 'entry_status') = (to_jsonb(OLD) - 'entry_status') THEN
    RETURN NEW;
  END IF;
  IF OLD.usage_day IS NULL OR OLD.entry_type <> 'decrement'
     OR ROW(NEW.id, NEW.customer_id, NEW.pricing_unit, NEW.ledger_sequence_number, NEW.entry_type, NEW.entry_status, NEW.block_id,
            NEW.starting_balance, NEW.price_id, NEW.usage_day, NEW.usage_customer_id, NEW.created_at, NEW.entry_no)
        IS DISTINCT FROM
        ROW(OLD.id, OLD.customer_id, OLD.pricing_unit, OLD.ledger_sequence_number, OLD.entry_type, OLD.entry_status, OLD.block_id,
            OLD.starting_balance, OLD.price_id, OLD.usage_day, OLD.usage_customer_id, OLD.created_at, OLD.entry_no) THEN
    RAISE EXCEPTION 'ledger_entries are append-only (only grouped usage decrements grow, pending entries commit)' USING ERRCODE = 'P0001';
  END IF;
  RETURN NEW;
END $$;
