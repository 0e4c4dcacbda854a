-- What portfolio takes from other contexts' events: market's corporate actions applied to
-- each portfolio (splits), and holdings flagged by a recommendation that turned SELL.

-- A corporate action applied to a portfolio, once: the key is what makes applying an
-- action idempotent (a redelivered or re-announced action finds its row). transaction_id
-- is the SPLIT entry written for it; null when the ledger already had a SPLIT of the
-- ticker on the ex-date (recorded by hand or by the demo), which is then not doubled.
CREATE TABLE applied_actions (
    portfolio_id    uuid        NOT NULL CONSTRAINT applied_actions_portfolio_fk REFERENCES portfolios (id),
    ticker          text        NOT NULL,
    ex_date         date        NOT NULL,
    kind            text        NOT NULL CONSTRAINT applied_actions_kind_known CHECK (kind IN ('split')),
    transaction_id  uuid        CONSTRAINT applied_actions_transaction_fk REFERENCES transactions (id),
    applied_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT applied_actions_pkey PRIMARY KEY (portfolio_id, ticker, ex_date, kind)
);

-- A holding whose recommendation turned SELL: one flag per portfolio, ticker and
-- recommendation (a redelivered run event finds it). cleared_at is set when a later call
-- on the ticker is no longer SELL.
CREATE TABLE holding_flags (
    portfolio_id       uuid             NOT NULL CONSTRAINT holding_flags_portfolio_fk REFERENCES portfolios (id),
    ticker             text             NOT NULL,
    recommendation_id  uuid             NOT NULL,
    run_id             uuid             NOT NULL,
    confidence         double precision NOT NULL,
    flagged_at         timestamptz      NOT NULL DEFAULT now(),
    cleared_at         timestamptz,
    CONSTRAINT holding_flags_pkey PRIMARY KEY (portfolio_id, ticker, recommendation_id)
);

CREATE INDEX holding_flags_open ON holding_flags (ticker) WHERE cleared_at IS NULL;

-- Which portfolios ever traded a ticker (the candidates an action or a call concerns).
CREATE INDEX transactions_ticker_portfolio ON transactions (ticker, portfolio_id) WHERE ticker IS NOT NULL;
