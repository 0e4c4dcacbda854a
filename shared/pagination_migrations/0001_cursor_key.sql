-- The key that signs this part's pagination cursors (shared.pagination) when
-- <P>_CURSOR_KEY is not set: random, made once per deployment, read by every replica.
-- gen_random_uuid() draws from the server's strong random source; two of them make
-- 32 bytes (244 random bits).
CREATE TABLE cursor_key (
    singleton  boolean     PRIMARY KEY DEFAULT true CONSTRAINT cursor_key_singleton CHECK (singleton),
    key        bytea       NOT NULL CONSTRAINT cursor_key_length CHECK (length(key) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO cursor_key (key)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
