-- Durable idempotency: the first answer to each Idempotency-Key, kept at
-- least 24 hours (the service deletes older rows), across restarts and
-- however many other commands the customer gets. A retry is compared with
-- the first request by fingerprint (route, path ids, canonical JSON body);
-- the same key with another fingerprint is 422 idempotency_key_reused.

-- +goose Up
CREATE TABLE rapport.idempotency_keys (
    -- scope is who sent the key (the API key's name): two clients' keys
    -- never meet.
    scope        text        NOT NULL,
    key          text        NOT NULL,
    fingerprint  bytea       NOT NULL,
    -- claim is the run that holds the key until it has an answer; after
    -- leased_until another run may take it over (the first one's process
    -- died). Commands are safe to run again: their event ids derive from
    -- the key.
    claim        uuid        NOT NULL,
    leased_until timestamptz NOT NULL,
    -- The first answer, once there is one: status, headers, body.
    status       integer,
    headers      jsonb,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (scope, key),
    CONSTRAINT idempotency_keys_answer_check CHECK ((status IS NULL) = (completed_at IS NULL))
);
-- Rows arrive in created_at order, which is all the hourly cleanup needs:
-- a BRIN index costs next to nothing per insert, unlike a B-tree.
CREATE INDEX idempotency_keys_created_at_idx ON rapport.idempotency_keys USING brin (created_at);

-- +goose Down
DROP TABLE rapport.idempotency_keys;
