-- Refresh tokens: opaque, stored as SHA-256 only. Every login starts a family; each
-- refresh marks its token used and adds the next one to the family. Presenting a used
-- token again (after a short grace) revokes the whole family: someone holds a copy.
CREATE TABLE refresh_families (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL
                                CONSTRAINT refresh_families_user_fk REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX refresh_families_user_idx ON refresh_families (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    id              uuid        PRIMARY KEY,
    family_id       uuid        NOT NULL
                                CONSTRAINT refresh_tokens_family_fk REFERENCES refresh_families (id) ON DELETE CASCADE,
    token_hash      bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    CONSTRAINT refresh_tokens_hash_unique UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
