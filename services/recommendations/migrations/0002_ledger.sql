-- The recommendation ledger: the API contract's fields, the model's reasons, the recorded
-- inputs, and a hash chain. 0001's tables only ever held the random demo run (placeholder
-- calls, never advice), so they are dropped rather than carried over with made-up values.
DROP TABLE recommendations;
DROP TABLE runs;
DROP FUNCTION recommendations_are_immutable();

CREATE TABLE runs (
    id              uuid        PRIMARY KEY,
    kind            text        NOT NULL
                                CONSTRAINT runs_kind_valid CHECK (kind IN ('scheduled', 'on_demand', 'backfill')),
    trading_day     date,                  -- the as-of session: the last whose data it used
    hypothetical    boolean     NOT NULL,  -- backfilled, not published at the time
    status          text        NOT NULL
                                CONSTRAINT runs_status_valid CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    model_version   text        NOT NULL,
    requested_by    text,                  -- the user of an on-demand run
    trigger_event   uuid,                  -- the market.eod.completed event of a scheduled run
    universe        integer,               -- securities whose data came back
    called          integer,               -- calls published
    changed         integer,               -- calls whose action changed
    calibration     jsonb       NOT NULL DEFAULT '{}',  -- the confidence map the run used
    timings         jsonb       NOT NULL DEFAULT '{}',  -- seconds per phase
    error           text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    CONSTRAINT runs_completion CHECK ((status IN ('queued', 'running')) = (completed_at IS NULL)),
    -- an on-demand run learns its trading day (the latest session with data) when it starts
    CONSTRAINT runs_day_known CHECK (trading_day IS NOT NULL OR status IN ('queued', 'failed'))
);

-- One live (and one hypothetical) run per trading day, whoever asks and however often the
-- EOD event is delivered; a failed run does not block a retry.
CREATE UNIQUE INDEX runs_one_per_trading_day ON runs (trading_day, hypothetical)
    WHERE status <> 'failed';
CREATE INDEX runs_started_idx ON runs (started_at DESC, id DESC);

CREATE TABLE recommendations (
    seq                     bigint        NOT NULL CONSTRAINT recommendations_seq_unique UNIQUE,
    id                      uuid          PRIMARY KEY,
    run_id                  uuid          NOT NULL REFERENCES runs (id),
    ticker                  text          NOT NULL
                                          CONSTRAINT recommendations_ticker_format CHECK (ticker ~ '^[A-Z]{1,5}([.-][A-Z])?$'),
    sector                  text,
    action                  text          NOT NULL
                                          CONSTRAINT recommendations_action_valid CHECK (action IN ('BUY', 'HOLD', 'SELL')),
    confidence              numeric(4,3)  NOT NULL
                                          CONSTRAINT recommendations_confidence_range CHECK (confidence BETWEEN 0 AND 1),
    score                   double precision NOT NULL,
    target_price            numeric(18,4) CONSTRAINT recommendations_target_positive CHECK (target_price > 0),
    price_at_call           numeric(18,4) NOT NULL CONSTRAINT recommendations_price_positive CHECK (price_at_call > 0),
    thesis                  text          NOT NULL,
    risk_factors            text[]        NOT NULL,
    methodology_disclosure  text          NOT NULL,
    data_sources            text[]        NOT NULL,
    generated_at            timestamptz   NOT NULL,
    model_version           text          NOT NULL,
    horizon_days            integer       NOT NULL CONSTRAINT recommendations_horizon_positive CHECK (horizon_days > 0),
    as_of                   date          NOT NULL,
    hypothetical            boolean       NOT NULL,
    factors                 jsonb         NOT NULL,  -- [{key, value, z_score, contribution, percentile}]
    inputs                  jsonb         NOT NULL,  -- what the call read besides its factors (replay)
    inputs_hash             text          NOT NULL,
    content_hash            text          NOT NULL,  -- sha256 of the row's canonical content
    prev_hash               text          NOT NULL,  -- the previous row's hash (zeros for the first)
    hash                    text          NOT NULL CONSTRAINT recommendations_hash_unique UNIQUE,
    CONSTRAINT recommendations_one_per_run UNIQUE (run_id, ticker)
);

CREATE INDEX recommendations_run_idx ON recommendations (run_id, score DESC);
CREATE INDEX recommendations_ticker_idx ON recommendations (ticker, as_of DESC);
CREATE INDEX recommendations_as_of_idx ON recommendations (as_of DESC, id DESC);

-- Immutable once published, for every role: row triggers refuse UPDATE and DELETE, a
-- statement trigger refuses TRUNCATE (row triggers do not see it), and the owning role's
-- own UPDATE/DELETE/TRUNCATE privileges are revoked as well. The owner could still undo
-- all that with DDL; the hash chain is what makes such an edit visible (ledger/verify).
CREATE FUNCTION recommendations_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'recommendations are immutable once published'
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER recommendations_immutable
    BEFORE UPDATE OR DELETE ON recommendations
    FOR EACH ROW EXECUTE FUNCTION recommendations_are_immutable();

CREATE TRIGGER recommendations_no_truncate
    BEFORE TRUNCATE ON recommendations
    FOR EACH STATEMENT EXECUTE FUNCTION recommendations_are_immutable();

REVOKE UPDATE, DELETE, TRUNCATE ON recommendations FROM CURRENT_USER;
