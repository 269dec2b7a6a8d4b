-- The access cache's balance feed moves off balance_snapshots: an indexed txid there changed on
-- every write, so no snapshot upsert could be a HOT update. Now every balance-changing
-- transaction appends one row naming its (customer, pricing unit) pairs; balance_snapshots
-- keeps only its primary key and the partial pending index (unchanged while a pair stays
-- pending), so a repeated upsert of a pair is HOT when its page has room.
CREATE TABLE balance_feed (
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at timestamptz NOT NULL DEFAULT now(),
  customer_ids text[] NOT NULL,
  pricing_units text[] NOT NULL
);
CREATE INDEX balance_feed_txid ON balance_feed (txid);

-- The highest txid pruned from balance_feed: a reader whose position is at or below it may
-- have missed changes and reloads (ledger/src/access/cache.ts).
CREATE TABLE balance_feed_pruned (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  upto xid8 NOT NULL
);
INSERT INTO balance_feed_pruned (upto) VALUES ('0');

DROP INDEX balance_snapshots_txid;
ALTER TABLE balance_snapshots SET (fillfactor = 80);
