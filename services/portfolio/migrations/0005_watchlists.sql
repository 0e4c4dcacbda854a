-- A user's named watchlists: an ordered list of tickers each (the array's order is the
-- list's). Owned like portfolios; version is the ETag of the list (name and tickers).
CREATE TABLE watchlists (
    id          uuid        PRIMARY KEY,
    owner_id    text        NOT NULL,
    name        text        NOT NULL CONSTRAINT watchlists_name_length CHECK (length(name) BETWEEN 1 AND 100),
    tickers     text[]      NOT NULL DEFAULT '{}'
                            -- A last guard; the service refuses more with a clear error first.
                            CONSTRAINT watchlists_tickers_limit CHECK (cardinality(tickers) <= 200),
    version     integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT watchlists_owner_name_unique UNIQUE (owner_id, name)
);

CREATE INDEX watchlists_owner_idx ON watchlists (owner_id, created_at, id);
