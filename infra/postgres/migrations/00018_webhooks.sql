-- Webhooks (package infra/webhooks): subscriptions, the deliveries queued
-- for them from the change feed (readmodels.feed), and every attempt.
--
-- A subscription's checkpoint is the feed position up to which its
-- deliveries are queued; moving it and inserting the deliveries happen in
-- one transaction, so a crash queues nothing twice and skips nothing. A
-- delivery stays pending until a receiver answered 2xx: at least once.
-- Signing secrets are stored sealed (AES-256-GCM under a key derived from
-- the keyring's index secret, which the master key wraps): the database
-- alone cannot sign.

-- +goose Up
CREATE TABLE rapport.webhook_subscriptions (
    id                     uuid        PRIMARY KEY,
    url                    text        NOT NULL,
    -- Integration event types delivered; empty: every type.
    event_types            text[]      NOT NULL,
    description            text        NOT NULL DEFAULT '',
    secret_sealed          bytea       NOT NULL,
    -- After a rotation the previous secret also signs, until it expires.
    previous_secret_sealed bytea,
    previous_expires_at    timestamptz,
    state                  text        NOT NULL DEFAULT 'active'
                           CONSTRAINT webhook_state CHECK (state IN ('active', 'failing', 'disabled')),
    failing_since          timestamptz,
    failing_reason         text,
    checkpoint             bigint      NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rapport.webhook_deliveries (
    id               bigserial   PRIMARY KEY,
    subscription_id  uuid        NOT NULL REFERENCES rapport.webhook_subscriptions (id) ON DELETE CASCADE,
    position         bigint      NOT NULL,
    customer_id      uuid        NOT NULL,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    -- The integration event as delivered: no personal data.
    payload          jsonb       NOT NULL,
    replay           boolean     NOT NULL DEFAULT false,
    delivered        boolean     NOT NULL DEFAULT false,
    attempts         integer     NOT NULL DEFAULT 0,
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- The head of each customer's queue: the oldest pending delivery.
CREATE INDEX webhook_deliveries_pending ON rapport.webhook_deliveries (subscription_id, customer_id, id) WHERE NOT delivered;
CREATE INDEX webhook_deliveries_log ON rapport.webhook_deliveries (subscription_id, id);

CREATE TABLE rapport.webhook_attempts (
    delivery_id bigint      NOT NULL REFERENCES rapport.webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL,
    duration_ms integer     NOT NULL,
    status      integer,
    error       text,
    PRIMARY KEY (delivery_id, attempt)
);

-- +goose Down
DROP TABLE rapport.webhook_attempts;
DROP TABLE rapport.webhook_deliveries;
DROP TABLE rapport.webhook_subscriptions;
