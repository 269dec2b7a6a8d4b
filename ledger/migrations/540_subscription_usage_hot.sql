-- subscription_usage grows every debit transaction (one row per subscription, period and price
-- of the debited customers), like the debit hot path's tables (510): page room for its updates
-- to stay in place (HOT, no new primary-key entry). Measured at 10,000 subscribed customers
-- (`LEDGER_COST_PLAN=1 node --import tsx bench/src/ledger-history.ts cost 10000 8 6`): 6-28 % of
-- its updates were HOT at the default fillfactor, all of them at 50, and the statement's backend
-- CPU per debit about halved; see ledger/src/credits/README.md. The cost: pages at most half full.
ALTER TABLE subscription_usage SET (fillfactor = 50);
