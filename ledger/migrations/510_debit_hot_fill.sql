-- Debit hot path, page room for in-place updates (issue 5). A debit transaction updates one
-- block, one balance snapshot and (after a customer's first debit of the day) one grouped usage
-- entry per customer it debits; with 10,000 customers that is most rows of each of these
-- tables' pages, every transaction. An update stays in place (HOT: no new index entries, one
-- WAL record) only when the new row version fits in the same page, and the versions the
-- previous transaction left can be pruned, but not those of the running one: a page whose rows
-- all change in one transaction needs about as much free room as its rows take. At fillfactor
-- 80 (migration 110) that held for a quarter to a third of the updates; the others wrote a new
-- entry into every index of the table (four on ledger_entries). At 50 nearly all are HOT
-- (measured: `node --import tsx bench/src/ledger-history.ts cost 10000 8 8`, see
-- ledger/src/credits/README.md).
--
-- The cost is room: these tables' pages are at most half full when rows are inserted. For
-- credit_blocks and balance_snapshots (a few rows per customer) that is small. ledger_entries
-- grows with history, and pages of past days, whose rows no longer change, stay half empty:
-- its heap takes up to twice the space it did (indexes unchanged). Fillfactor applies to pages
-- filled from now on; existing pages keep their layout.
ALTER TABLE credit_blocks SET (fillfactor = 50);
ALTER TABLE balance_snapshots SET (fillfactor = 50);
ALTER TABLE ledger_entries SET (fillfactor = 50);
