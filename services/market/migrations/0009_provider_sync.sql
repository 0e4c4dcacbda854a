-- Issue 13: the scheduled end-of-day sync from a provider (Polygon, Tiingo, Alpha Vantage).
-- One row per provider: where it is, and its last error (served on /market/status, the same
-- on every replica). The provider's key is never stored here (settings only).
CREATE TABLE provider_sync (
    provider         text        PRIMARY KEY,
    last_session     date,
    sessions_synced  integer     NOT NULL DEFAULT 0,
    last_attempt_at  timestamptz,
    last_success_at  timestamptz,
    last_error       text,
    last_error_at    timestamptz
);

-- The ledger of synced sessions: a session is synced once (checked again inside the
-- transaction that writes its bars, actions and market.eod.completed, under the sync's lock).
CREATE TABLE provider_sessions (
    provider         text        NOT NULL,
    session          date        NOT NULL,
    bars_inserted    integer     NOT NULL,
    bars_updated     integer     NOT NULL,
    bars_rejected    integer     NOT NULL,
    splits           integer     NOT NULL,
    dividends        integer     NOT NULL,
    unknown_tickers  integer     NOT NULL,
    synced_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, session)
);
