-- API keys for automated access. The key is shown once; only its SHA-256 is kept, found
-- by a short public prefix. A key's role never exceeds its owner's (checked on creation
-- and capped again on every use).
CREATE TABLE api_keys (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL
                                CONSTRAINT api_keys_user_fk REFERENCES users (id) ON DELETE CASCADE,
    name            text        NOT NULL
                                CONSTRAINT api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    prefix          text        NOT NULL,
    secret_hash     bytea       NOT NULL,
    role            text        NOT NULL
                                CONSTRAINT api_keys_role_valid CHECK (role IN ('viewer', 'analyst', 'admin')),
    scopes          text[]      NOT NULL
                                CONSTRAINT api_keys_scopes_valid CHECK (scopes <@ ARRAY['read', 'write'] AND cardinality(scopes) > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz,
    CONSTRAINT api_keys_prefix_unique UNIQUE (prefix)
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at);
