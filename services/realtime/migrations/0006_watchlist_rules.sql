-- Alert rules that target a watchlist (portfolio's), and realtime's own copy of who owns
-- which watchlist and what it holds, fed by portfolio.watchlist.changed.

-- The newest version of each watchlist seen (a deleted one stays, as a tombstone, so an
-- older event redelivered later cannot bring it back).
CREATE TABLE watchlists (
    id          uuid        PRIMARY KEY,
    owner_id    text        NOT NULL,
    name        text        NOT NULL,
    tickers     text[]      NOT NULL DEFAULT '{}',
    version     integer     NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A watchlist rule has no ticker of its own: it holds one child rule per ticker of the
-- list (same condition and settings), each evaluated and fired like any ticker rule, so a
-- crossing on one ticker neither fires nor disarms the others. Children follow the list.
ALTER TABLE alert_rules ALTER COLUMN ticker DROP NOT NULL;
ALTER TABLE alert_rules
    ADD COLUMN watchlist_id uuid,
    ADD COLUMN parent_id    uuid CONSTRAINT alert_rules_parent_fk REFERENCES alert_rules (id) ON DELETE CASCADE;
ALTER TABLE alert_rules
    ADD CONSTRAINT alert_rules_target CHECK (
        CASE WHEN parent_id IS NOT NULL THEN ticker IS NOT NULL AND watchlist_id IS NOT NULL
             WHEN watchlist_id IS NOT NULL THEN ticker IS NULL
             ELSE ticker IS NOT NULL END),
    ADD CONSTRAINT alert_rules_child_unique UNIQUE (parent_id, ticker);

CREATE INDEX alert_rules_watchlist_idx ON alert_rules (watchlist_id) WHERE parent_id IS NULL AND watchlist_id IS NOT NULL;
