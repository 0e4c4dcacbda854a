-- Issue 11: the model's view of each stock, for GET /stocks/{ticker}/analysis?include_ml=true.
--
-- A read model of the recommendations context's latest live run, fed by its run events and
-- recommendations.rpc.latest (never a read of its schema). One run at a time: the calls of
-- the run named in recommendation_run, replaced whole, in one transaction, and only by a
-- newer run (services/market/model_view.py).

-- The run the calls belong to. One row, always present (run_id null: no run received yet),
-- so that a refresh can lock it FOR UPDATE and two replicas replace the run one after the
-- other.
CREATE TABLE recommendation_run (
    id            smallint PRIMARY KEY CONSTRAINT recommendation_run_single_row CHECK (id = 1),
    run_id        uuid,
    as_of         date,
    generated_at  timestamptz,
    model_version text,
    calls         integer,
    refreshed_at  timestamptz,
    CONSTRAINT recommendation_run_complete CHECK (
        (run_id IS NULL) = (as_of IS NULL)
        AND (run_id IS NULL) = (generated_at IS NULL)
        AND (run_id IS NULL) = (model_version IS NULL)
        AND (run_id IS NULL) = (calls IS NULL)
        AND (run_id IS NULL) = (refreshed_at IS NULL)
    )
);
INSERT INTO recommendation_run (id) VALUES (1);

-- One call per ticker of that run, as the recommendations context published it.
CREATE TABLE recommendation_calls (
    ticker                 text PRIMARY KEY,
    run_id                 uuid NOT NULL,
    recommendation_id      uuid NOT NULL,
    action                 text NOT NULL
        CONSTRAINT recommendation_calls_action CHECK (action IN ('BUY', 'HOLD', 'SELL')),
    confidence             double precision NOT NULL
        CONSTRAINT recommendation_calls_confidence CHECK (confidence BETWEEN 0 AND 1),
    score                  double precision NOT NULL,
    target_price           double precision,
    price_at_call          double precision NOT NULL,
    horizon_days           integer NOT NULL,
    factors                jsonb NOT NULL,  -- [{key, value, z_score, contribution, percentile}]
    thesis                 text NOT NULL,
    risk_factors           text[] NOT NULL,
    methodology_disclosure text NOT NULL,
    data_sources           text[] NOT NULL
);
