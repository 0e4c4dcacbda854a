-- Every latest quote as one pre-encoded JSON document (the body of GET /market/quotes and
-- the fastest read of the whole universe's quotes: one row, no aggregation, no per-row
-- decoding). Rebuilt from latest_quotes in the same transaction as every change to it, so
-- the two never disagree.
CREATE TABLE quote_snapshot (
    id      smallint PRIMARY KEY CONSTRAINT quote_snapshot_single_row CHECK (id = 1),
    as_of   bigint   NOT NULL,  -- epoch milliseconds of the newest quote
    count   integer  NOT NULL,
    body    bytea    NOT NULL
);
