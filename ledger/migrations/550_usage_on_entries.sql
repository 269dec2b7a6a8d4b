-- Usage and cost for subscription alerts ride on rows the debit path writes anyway (issue 5).
-- Until now every debit line was also added to subscription_usage (subscription, period,
-- price): one more upsert per customer debit, about a sixth of the debit transaction's Postgres
-- CPU (43 -> 36 µs per debit at 10,000 customers, 70 -> 56 at 100,000; `node --import tsx
-- bench/src/ledger-history.ts cost 10000 8 8`, ledger/src/credits/README.md "Sixth pass"), for
-- usage_exceeded and cost_exceeded alerts, which few subscriptions have.
-- Now a line's quantity and cost are recorded where its amount goes: on the grouped usage
-- decrement it grows (the whole quantity on the entry of the block its usage starts in, and
-- each entry's share of the cost), or, for usage no block covered, on its usage_overage row.
-- Lines of zero or negative amount (they draw nothing) still go to subscription_usage. An
-- alert's total for a period is the sum of the three (ledger/src/alerts/evaluate.ts).
--
-- The new columns start at NULL / 0: what was recorded before this migration is in
-- subscription_usage only, what comes after only here, so nothing counts twice.
ALTER TABLE ledger_entries ADD COLUMN usage_quantity numeric(38,12), ADD COLUMN usage_cost numeric(38,12);
ALTER TABLE usage_overage ADD COLUMN usage_quantity numeric(38,12) NOT NULL DEFAULT 0, ADD COLUMN usage_cost numeric(38,12) NOT NULL DEFAULT 0;
