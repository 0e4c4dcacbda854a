-- A run produces recommendations; once published a recommendation never changes
-- (the track record depends on it), which the trigger below enforces.
CREATE TABLE runs (
    id              uuid        PRIMARY KEY,
    status          text        NOT NULL
                                CONSTRAINT runs_status_valid CHECK (status IN ('running', 'completed', 'failed')),
    model_version   text        NOT NULL,
    as_of           date        NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);

CREATE TABLE recommendations (
    id              uuid          PRIMARY KEY,
    run_id          uuid          NOT NULL REFERENCES runs (id),
    ticker          text          NOT NULL
                                  CONSTRAINT recommendations_ticker_format CHECK (ticker ~ '^[A-Z]{1,5}([.-][A-Z])?$'),
    action          text          NOT NULL
                                  CONSTRAINT recommendations_action_valid CHECK (action IN ('BUY', 'HOLD', 'SELL')),
    confidence      numeric(4,3)  NOT NULL
                                  CONSTRAINT recommendations_confidence_range CHECK (confidence BETWEEN 0 AND 1),
    price_at_call   numeric(18,4) NOT NULL CONSTRAINT recommendations_price_positive CHECK (price_at_call > 0),
    target_price    numeric(18,4) CONSTRAINT recommendations_target_positive CHECK (target_price > 0),
    rationale       text          NOT NULL,
    disclosure      text          NOT NULL,
    published_at    timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT recommendations_one_per_run UNIQUE (run_id, ticker)
);

CREATE INDEX recommendations_published_idx ON recommendations (published_at DESC, id DESC);
CREATE INDEX recommendations_ticker_idx ON recommendations (ticker, published_at DESC);

CREATE FUNCTION recommendations_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'recommendations are immutable once published'
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER recommendations_immutable
    BEFORE UPDATE OR DELETE ON recommendations
    FOR EACH ROW EXECUTE FUNCTION recommendations_are_immutable();
