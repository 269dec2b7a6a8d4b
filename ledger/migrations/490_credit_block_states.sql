-- Billing (400) adds block sources and states the credit ledger (100) did not list:
-- scheduled purchases, and blocks voided with their unpaid invoice.
ALTER TABLE credit_blocks DROP CONSTRAINT IF EXISTS credit_blocks_source;
ALTER TABLE credit_blocks ADD CONSTRAINT credit_blocks_source CHECK (source IN ('manual', 'allocation', 'top_up', 'commitment', 'scheduled_purchase'));
ALTER TABLE credit_blocks DROP CONSTRAINT IF EXISTS credit_blocks_status;
ALTER TABLE credit_blocks ADD CONSTRAINT credit_blocks_status CHECK (status IN ('active', 'pending_payment', 'void'));
