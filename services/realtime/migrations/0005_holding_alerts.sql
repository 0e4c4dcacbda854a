-- Alerts that no rule fired: portfolio's flagged holdings (a holding whose recommendation
-- turned SELL) are delivered to their owner as alerts, once per flag.
CREATE UNIQUE INDEX alerts_holding_flag_once ON alerts (owner_id, trigger_key)
    WHERE rule_id IS NULL AND condition = 'holding_turned_sell';
