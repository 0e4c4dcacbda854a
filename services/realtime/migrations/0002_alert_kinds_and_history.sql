-- More rule kinds (percentage moves, moving-average crossings, recommendation changes),
-- the state that makes a rule fire once per crossing, and the alerts it has fired.
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_condition_valid;
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_threshold_positive;
ALTER TABLE alert_rules ALTER COLUMN threshold DROP NOT NULL;

ALTER TABLE alert_rules
    ADD COLUMN window_days      integer,
    ADD COLUMN cooldown_seconds integer     NOT NULL DEFAULT 300,
    ADD COLUMN armed            boolean     NOT NULL DEFAULT true,
    ADD COLUMN last_fired_at    timestamptz,
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now();

ALTER TABLE alert_rules
    ADD CONSTRAINT alert_rules_condition_valid CHECK (condition IN (
        'price_above', 'price_below', 'percent_move_up', 'percent_move_down',
        'ma_cross_above', 'ma_cross_below', 'recommendation_change')),
    ADD CONSTRAINT alert_rules_threshold_fits CHECK (
        CASE WHEN condition IN ('price_above', 'price_below', 'percent_move_up', 'percent_move_down')
             THEN threshold IS NOT NULL AND threshold > 0
             ELSE threshold IS NULL END),
    ADD CONSTRAINT alert_rules_window_fits CHECK (
        CASE WHEN condition IN ('ma_cross_above', 'ma_cross_below')
             THEN window_days BETWEEN 2 AND 200
             ELSE window_days IS NULL END),
    ADD CONSTRAINT alert_rules_cooldown_range CHECK (cooldown_seconds BETWEEN 0 AND 604800);

-- Every alert a rule fired, kept for users who were offline. ``id`` orders one user's
-- alerts (they are written under a per-user lock), and is what clients resume from.
CREATE TABLE alerts (
    id           bigserial   PRIMARY KEY,
    owner_id     text        NOT NULL,
    rule_id      uuid        REFERENCES alert_rules (id) ON DELETE SET NULL,
    ticker       text        NOT NULL,
    condition    text        NOT NULL,
    -- What made it fire (the tick's timestamp, the recommendation run): with rule_id,
    -- makes writing an alert idempotent.
    trigger_key  text        NOT NULL,
    message      text        NOT NULL,
    data         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    fired_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alerts_rule_trigger_key UNIQUE (rule_id, trigger_key)
);

CREATE INDEX alerts_owner_id_idx ON alerts (owner_id, id);

-- Our own trimmed copy of the last recommendation per ticker (from recommendations'
-- run events), to tell a change from a repeat.
CREATE TABLE recommendation_actions (
    ticker      text        PRIMARY KEY,
    action      text        NOT NULL,
    run_id      text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
