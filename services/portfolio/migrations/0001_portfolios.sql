-- Portfolios belong to one user (the token's subject). The transaction ledger,
-- positions and targets come with the portfolio feature work.
CREATE TABLE portfolios (
    id              uuid        PRIMARY KEY,
    owner_id        text        NOT NULL,
    name            text        NOT NULL CONSTRAINT portfolios_name_length CHECK (length(name) BETWEEN 1 AND 100),
    base_currency   text        NOT NULL DEFAULT 'USD'
                                CONSTRAINT portfolios_currency_format CHECK (base_currency ~ '^[A-Z]{3}$'),
    cash            numeric(20,4) NOT NULL DEFAULT 0 CONSTRAINT portfolios_cash_nonnegative CHECK (cash >= 0),
    version         integer     NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT portfolios_owner_name_unique UNIQUE (owner_id, name)
);

CREATE INDEX portfolios_owner_idx ON portfolios (owner_id, created_at, id);
