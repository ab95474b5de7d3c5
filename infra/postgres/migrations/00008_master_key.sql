-- One master key per deployment. The database holds a key check of the
-- master key that wraps its data keys (HMAC-SHA-256 of a fixed label under
-- the key), stored by the first process to start; a process started with
-- another key refuses to start. `rapport keys rotate` re-wraps every data
-- key under a new master key while the service runs: during the rotation
-- the next key is stored wrapped under the current one and the current
-- one under the next, so that processes holding either key learn the
-- other; both are deleted when it finishes.

-- +goose Up
CREATE TABLE rapport.master_key (
    id           integer     PRIMARY KEY DEFAULT 1 CONSTRAINT master_key_single_row CHECK (id = 1),
    -- key_check is HMAC-SHA-256(master key, 'rapport master key check v1');
    -- kek_id, its first 8 bytes, names the key in customer_keys.kek_id.
    key_check    bytea       NOT NULL,
    kek_id       bytea       NOT NULL,
    -- index_secret keys the email index (customer_emails.email_hash),
    -- wrapped under the master key: it is not derived from the key, so
    -- that a rotation does not change the index.
    index_secret bytea       NOT NULL,
    -- A rotation in progress.
    next_key_check    bytea,
    next_kek_id       bytea,
    next_key          bytea, -- the next master key wrapped under the current one
    current_key       bytea, -- the current master key wrapped under the next one
    next_index_secret bytea, -- index_secret wrapped under the next key
    rotation_started_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    rotated_at   timestamptz,
    CONSTRAINT master_key_rotation_check CHECK (
        (next_key_check IS NULL) = (next_kek_id IS NULL) AND (next_key_check IS NULL) = (next_key IS NULL) AND
        (next_key_check IS NULL) = (current_key IS NULL) AND (next_key_check IS NULL) = (next_index_secret IS NULL) AND
        (next_key_check IS NULL) = (rotation_started_at IS NULL))
);

-- Which master key wraps each data key (the first 8 bytes of its key
-- check); NULL for keys wrapped before this column existed, which are
-- wrapped by the current key (a rotation sets it on every key).
ALTER TABLE rapport.customer_keys ADD COLUMN kek_id bytea;

-- +goose Down
ALTER TABLE rapport.customer_keys DROP COLUMN kek_id;
DROP TABLE rapport.master_key;
