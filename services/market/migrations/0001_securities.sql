-- Securities and their latest quote. Daily bars and corporate actions come with the
-- market-data feature work; the latest quote is a row per security so that reading
-- every quote never scans history.
CREATE TABLE securities (
    ticker              text        PRIMARY KEY
                                    CONSTRAINT securities_ticker_format
                                    CHECK (ticker ~ '^[A-Z]{1,5}([.-][A-Z])?$'),
    name                text        NOT NULL,
    exchange            text        NOT NULL,
    sector              text        NOT NULL,
    industry            text        NOT NULL,
    currency            text        NOT NULL DEFAULT 'USD'
                                    CONSTRAINT securities_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    status              text        NOT NULL DEFAULT 'listed'
                                    CONSTRAINT securities_status_valid CHECK (status IN ('listed', 'delisted')),
    shares_outstanding  bigint      CONSTRAINT securities_shares_positive CHECK (shares_outstanding > 0),
    data_source         text        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX securities_sector_ticker_idx ON securities (sector, ticker);

CREATE TABLE latest_quotes (
    ticker          text          PRIMARY KEY REFERENCES securities (ticker) ON DELETE CASCADE,
    price           numeric(18,4) NOT NULL CONSTRAINT latest_quotes_price_positive CHECK (price > 0),
    previous_close  numeric(18,4) CONSTRAINT latest_quotes_previous_close_positive CHECK (previous_close > 0),
    volume          bigint        NOT NULL DEFAULT 0 CONSTRAINT latest_quotes_volume_nonnegative CHECK (volume >= 0),
    updated_at      timestamptz   NOT NULL
);
