-- Issue 13: fundamentals, point in time. Every fact as filed (SEC companyfacts, or the
-- simulator's for the simulated universe): a restated period is a second row with its later
-- filing date, and a reader as of a day sees only what was filed by then.
CREATE TABLE fundamental_facts (
    security_id   integer  NOT NULL REFERENCES securities (security_id),
    metric        text     NOT NULL CONSTRAINT fundamental_facts_metric_valid CHECK (metric IN (
                      'revenue', 'net_income', 'eps', 'shares_outstanding',
                      'dividends_per_share', 'total_debt', 'equity')),
    period_start  date     NOT NULL,  -- = period_end for a balance-sheet (instant) fact
    period_end    date     NOT NULL,
    filed         date     NOT NULL,
    value         float8   NOT NULL,
    concept       text     NOT NULL,  -- e.g. us-gaap:Revenues, dei:EntityCommonStockSharesOutstanding
    fiscal_year   smallint,
    fiscal_period text,
    form          text,
    data_source   text     NOT NULL,
    CONSTRAINT fundamental_facts_period_order CHECK (period_start <= period_end),
    PRIMARY KEY (security_id, metric, period_start, period_end, filed)
);
CREATE INDEX fundamental_facts_filed_idx ON fundamental_facts (security_id, filed);

-- The price-independent figures as of the latest filing, one row per security, refreshed by
-- every import: what /stocks filters and sorts on (with the live quote for the ratios).
CREATE TABLE fundamental_metrics (
    security_id        integer PRIMARY KEY REFERENCES securities (security_id),
    as_of              date    NOT NULL,
    period_end         date,
    revenue_ttm        float8,
    net_income_ttm     float8,
    eps_ttm            float8,
    dividends_ttm      float8,
    revenue_growth     float8,
    shares_outstanding float8,
    equity             float8,
    total_debt         float8,
    data_source        text    NOT NULL
);
