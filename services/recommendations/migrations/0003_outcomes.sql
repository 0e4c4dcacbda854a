-- What became of each call once its horizon passed (derived from market's prices, so
-- recomputable; not part of the hash-chained ledger). One outcome per call. No foreign
-- key: checking one locks the referenced row FOR KEY SHARE, which needs the UPDATE
-- privilege on recommendations that the service role gave up (0002).
CREATE TABLE outcomes (
    recommendation_id   uuid             PRIMARY KEY,
    matured_on          date             NOT NULL,
    realised_return     double precision NOT NULL,
    benchmark_return    double precision NOT NULL,
    excess_return       double precision NOT NULL,
    hit                 boolean          NOT NULL,
    benchmark           text             NOT NULL,  -- e.g. universe-equal-weight
    evaluated_at        timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX recommendations_history_idx ON recommendations (as_of DESC, seq DESC);
