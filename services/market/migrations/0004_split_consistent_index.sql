-- Issue 10: the universe index and sector returns made split-consistent.
--
-- The index is rebuilt from the bars with weights = market value (split-adjusted price x
-- shares outstanding), in two variants: price return (`level`) and total return
-- (`total_return_level`, dividends reinvested). Levels stored by the earlier formula
-- (as-traded price x today's share count) are wrong, and so are the statistics derived
-- with them: both tables hold derived data only, so they are emptied here and the service
-- recomputes them at start-up from the bars (`universe_loader`).
DELETE FROM market_index;
ALTER TABLE market_index ADD COLUMN total_return_level double precision NOT NULL;

-- Split-adjusted (not dividend-adjusted) base closes, for price-return figures: a
-- sector's cap-weighted return is the change of its market value, which dividends do not
-- enter. The existing base_* columns stay split- and dividend-adjusted (total return).
DELETE FROM security_stats;
ALTER TABLE security_stats
    ADD COLUMN price_base_1w  double precision,
    ADD COLUMN price_base_1m  double precision,
    ADD COLUMN price_base_3m  double precision,
    ADD COLUMN price_base_6m  double precision,
    ADD COLUMN price_base_ytd double precision,
    ADD COLUMN price_base_1y  double precision;
