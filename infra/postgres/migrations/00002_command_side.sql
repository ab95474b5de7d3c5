-- Tables the command side needs besides the event log. They live in
-- PostgreSQL whichever event store is used.

-- +goose Up
CREATE SCHEMA rapport;

-- Each customer's data key, wrapped (AES-256-GCM) by the master key from
-- the configuration. Erasure destroys the key: the personal fields of the
-- customer's events, encrypted with it, become unreadable everywhere.
CREATE TABLE rapport.customer_keys (
    customer_id  uuid        PRIMARY KEY,
    wrapped_key  bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CONSTRAINT customer_keys_destroyed_check CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);

-- Email uniqueness, checked when the command runs rather than through an
-- eventually consistent read model. A registration reserves the email
-- before it appends and confirms it after; a reservation whose append
-- never happened is taken over once it is stale. The email itself is not
-- stored, only a keyed hash of its normalised form.
CREATE TABLE rapport.customer_emails (
    email_hash  bytea       PRIMARY KEY,
    customer_id uuid        NOT NULL,
    reserved_at timestamptz NOT NULL DEFAULT now(),
    confirmed   boolean     NOT NULL DEFAULT false
);
CREATE INDEX customer_emails_customer_id_idx ON rapport.customer_emails (customer_id);

-- +goose Down
DROP SCHEMA rapport CASCADE;
