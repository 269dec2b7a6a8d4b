-- Ledger sequence numbers without a counter row update (issue 5). A new entry's number is one
-- past its ledger's last, read through the unique index on (customer_id, pricing_unit,
-- ledger_sequence_number) by the writer holding the balance row's lock (every writer of
-- entries locks it first: debits.ts, entries.ts, settlement/settle.ts). The counter in
-- credit_balances cost one more row version and WAL record per balance and debit transaction
-- that started an entry (most of them at 100,000 customers on a fresh day), and a scan of
-- credit_balances per transaction. Sequence numbers stay 1, 2, 3, ... with no gaps: entries are
-- never deleted (ledger_entries_no_delete).
ALTER TABLE credit_balances DROP COLUMN next_entry_seq;
