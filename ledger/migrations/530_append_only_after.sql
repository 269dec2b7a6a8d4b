-- The append-only rule of ledger_entries (100, 110, 490) as an AFTER trigger (issue 5). A BEFORE
-- UPDATE row trigger makes Postgres lock the old row version before its WHEN clause is even
-- evaluated (to hand the trigger a stable OLD): one more WAL record and row lock per updated
-- row, for every grouped usage decrement a debit transaction grows, although the WHEN clause
-- lets exactly those through. An AFTER trigger reads OLD without locking it and queues nothing
-- when WHEN is false. What it refuses is unchanged: any other update raises the same error,
-- which rolls the update back with its statement. Deletes stay refused before they happen
-- (ledger_entries_no_delete).
DROP TRIGGER ledger_entries_append_only ON ledger_entries;
CREATE TRIGGER ledger_entries_append_only AFTER UPDATE ON ledger_entries FOR EACH ROW
  WHEN (NOT (OLD.usage_day IS NOT NULL AND OLD.entry_type = 'decrement'
             AND ROW(NEW.id, NEW.customer_id, NEW.pricing_unit, NEW.ledger_sequence_number, NEW.entry_type, NEW.entry_status, NEW.block_id,
                     NEW.starting_balance, NEW.price_id, NEW.usage_day, NEW.usage_customer_id, NEW.created_at, NEW.entry_no)
                 IS NOT DISTINCT FROM
                 ROW(OLD.id, OLD.customer_id, OLD.pricing_unit, OLD.ledger_sequence_number, OLD.entry_type, OLD.entry_status, OLD.block_id,
                     OLD.starting_balance, OLD.price_id, OLD.usage_day, OLD.usage_customer_id, OLD.created_at, OLD.entry_no)))
  EXECUTE FUNCTION ledger_entries_append_only();
