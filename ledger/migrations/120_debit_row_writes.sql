-- Debit hot path, row writes (issue 5). A grouped usage decrement is inserted for nearly every
-- customer debit when there are many customers (its first debit of the day), and its foreign key
-- to credit_blocks cost a lookup and a row lock (a WAL record) on the block per insert: the
-- constraint trigger was about a third of the fused debit statement's time at 100,000 customers.
-- Every entry's block_id comes from a block read in the same transaction, and blocks are never
-- deleted (DELETE /v1/credit_blocks voids and hides them), so the key is kept by refusing
-- deletes of blocks instead of checking every insert.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_block_id_fkey;

CREATE FUNCTION credit_blocks_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'credit_blocks are never deleted (ledger entries name them); void the block instead' USING ERRCODE = 'P0001';
END $$;
CREATE TRIGGER credit_blocks_no_delete BEFORE DELETE ON credit_blocks FOR EACH ROW EXECUTE FUNCTION credit_blocks_no_delete();
