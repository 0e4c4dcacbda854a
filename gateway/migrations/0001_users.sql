-- Users of the platform. Passwords are Argon2id hashes; usernames are compared
-- case-insensitively (stored lower-case).
CREATE TABLE users (
    id              uuid        PRIMARY KEY,
    username        text        NOT NULL
                                CONSTRAINT users_username_format CHECK (username ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    password_hash   text        NOT NULL,
    role            text        NOT NULL
                                CONSTRAINT users_role_valid CHECK (role IN ('viewer', 'analyst', 'admin')),
    disabled        boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_unique UNIQUE (username)
);
