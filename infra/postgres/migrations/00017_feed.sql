-- The change feed's broker relays (package infra/brokers): each relay
-- publishes the feed (readmodels.feed) to one broker and keeps here the
-- position it has published through. It moves only after the broker
-- confirmed every message up to it: at least once.

-- +goose Up
CREATE TABLE rapport.feed_relays (
    name       text        PRIMARY KEY,
    checkpoint bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE rapport.feed_relays;
