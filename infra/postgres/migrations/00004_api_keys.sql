-- API keys: who may call Rapport, in which roles. Only a SHA-256 hash of
-- each key is stored; the key itself is shown once, when it is created.

-- +goose Up
CREATE TABLE rapport.api_keys (
    id         uuid        PRIMARY KEY,
    -- name is the actor recorded on every event the key's holder causes.
    name       text        NOT NULL,
    roles      text[]      NOT NULL,
    key_hash   bytea       NOT NULL UNIQUE,
    -- prefix is the key's first characters, to recognise it in listings.
    prefix     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT api_keys_roles_check CHECK (roles <@ ARRAY['writer', 'analyst', 'auditor', 'admin'] AND cardinality(roles) > 0),
    CONSTRAINT api_keys_name_check CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$')
);
-- One active key per name, so that an actor in the audit trail is one key.
CREATE UNIQUE INDEX api_keys_active_name_idx ON rapport.api_keys (name) WHERE revoked_at IS NULL;

-- +goose Down
DROP TABLE rapport.api_keys;
