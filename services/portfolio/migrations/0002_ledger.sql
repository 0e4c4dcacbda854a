-- The transaction ledger (append-only), the default portfolio, idempotency keys.
--
-- portfolios.cash becomes a materialised balance of the ledger, rewritten in the same
-- transaction as every ledger row (its CHECK is a last guard against an overdraft);
-- portfolios.version is the ETag (bumped on every change). Cash given at creation before
-- this migration becomes an opening DEPOSIT, so the ledger explains every balance.

ALTER TABLE portfolios ADD COLUMN is_default boolean NOT NULL DEFAULT false;
ALTER TABLE portfolios ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

UPDATE portfolios p SET is_default = true
 WHERE p.id = (SELECT q.id FROM portfolios q WHERE q.owner_id = p.owner_id
               ORDER BY q.created_at, q.id LIMIT 1);

CREATE UNIQUE INDEX portfolios_one_default ON portfolios (owner_id) WHERE is_default;

CREATE TABLE transactions (
    id            uuid          PRIMARY KEY,
    portfolio_id  uuid          NOT NULL CONSTRAINT transactions_portfolio_fk REFERENCES portfolios (id),
    seq           bigint        GENERATED ALWAYS AS IDENTITY CONSTRAINT transactions_seq_unique UNIQUE,
    kind          text          NOT NULL CONSTRAINT transactions_kind_known
                                CHECK (kind IN ('BUY', 'SELL', 'DEPOSIT', 'WITHDRAWAL', 'DIVIDEND', 'FEE', 'SPLIT')),
    executed_at   timestamptz   NOT NULL,
    ticker        text,
    quantity      numeric(28,10),
    price         numeric(20,6),
    fee           numeric(20,4) NOT NULL DEFAULT 0,
    amount        numeric(20,4) NOT NULL,
    split_to      integer,
    split_from    integer,
    reverses      uuid          CONSTRAINT transactions_reverses_fk REFERENCES transactions (id)
                                CONSTRAINT transactions_reversed_once UNIQUE,
    note          text          CONSTRAINT transactions_note_length CHECK (length(note) <= 500),
    created_at    timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT transactions_ticker_needed CHECK (
        (kind IN ('BUY', 'SELL', 'DIVIDEND', 'SPLIT')) = (ticker IS NOT NULL) OR kind = 'FEE'),
    CONSTRAINT transactions_trade_fields CHECK (
        (kind IN ('BUY', 'SELL')) = (quantity IS NOT NULL AND price IS NOT NULL)),
    CONSTRAINT transactions_split_fields CHECK (
        (kind = 'SPLIT') = (split_to IS NOT NULL AND split_from IS NOT NULL))
);

CREATE INDEX transactions_portfolio_order ON transactions (portfolio_id, executed_at, seq);

-- Append-only: corrections are reversing entries, never edits.
CREATE FUNCTION transactions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the transaction ledger is append-only (% refused)', TG_OP;
END $$;

CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_append_only();

INSERT INTO transactions (id, portfolio_id, kind, executed_at, amount, note)
SELECT gen_random_uuid(), id, 'DEPOSIT', created_at, cash, 'opening balance'
  FROM portfolios WHERE cash > 0;

-- A POST that changes money or positions, by the caller's Idempotency-Key: the
-- fingerprint of what was asked and the response that was given (kept 24 hours).
CREATE TABLE idempotency_keys (
    owner_id      text        NOT NULL,
    key           text        NOT NULL CONSTRAINT idempotency_keys_key_length CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint   text        NOT NULL,
    status_code   integer,
    etag          text,
    response      bytea,        -- the body as sent, so a replay is byte-identical
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (owner_id, key)
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
