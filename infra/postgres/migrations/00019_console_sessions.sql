-- The web console's sessions (infra/console). A session is created when a
-- user signs in with an API key; the browser holds a random session token
-- in an HttpOnly cookie. The database never holds the token nor the key in
-- clear: token_hash is HMAC-SHA-256 of the token, and sealed_key is the
-- API key sealed (AES-256-GCM) under a key derived from the token, so a
-- reader of this table can neither sign in nor learn an API key. The key
-- is kept sealed so that every request re-authenticates it: a revoked key
-- or a changed role takes effect on the next page.

-- +goose Up
CREATE TABLE rapport.console_sessions (
    token_hash   bytea       PRIMARY KEY,
    sealed_key   bytea       NOT NULL,
    -- key_name is the API key's name, for listing and ending sessions.
    key_name     text        NOT NULL,
    created_at   timestamptz NOT NULL,
    -- expires_at is the absolute end; a session idle for longer than the
    -- console's idle timeout ends earlier (last_seen_at).
    expires_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON rapport.console_sessions (expires_at);
CREATE INDEX console_sessions_last_seen_idx ON rapport.console_sessions (last_seen_at);

-- +goose Down
DROP TABLE rapport.console_sessions;
