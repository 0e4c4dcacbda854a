-- Alert rules belong to one user (the token's subject). Evaluation on the tick
-- stream and the alert history come with the realtime feature work.
CREATE TABLE alert_rules (
    id          uuid          PRIMARY KEY,
    owner_id    text          NOT NULL,
    ticker      text          NOT NULL
                              CONSTRAINT alert_rules_ticker_format CHECK (ticker ~ '^[A-Z]{1,5}([.-][A-Z])?$'),
    condition   text          NOT NULL
                              CONSTRAINT alert_rules_condition_valid CHECK (condition IN ('price_above', 'price_below')),
    threshold   numeric(18,4) NOT NULL CONSTRAINT alert_rules_threshold_positive CHECK (threshold > 0),
    active      boolean       NOT NULL DEFAULT true,
    created_at  timestamptz   NOT NULL DEFAULT now()
);

CREATE INDEX alert_rules_owner_idx ON alert_rules (owner_id, created_at, id);
CREATE INDEX alert_rules_ticker_active_idx ON alert_rules (ticker) WHERE active;
