-- Erasures in progress. An erasure is written here before its
-- CustomerDataErased event is appended and deleted once the customer's
-- data key is destroyed and its emails released, so that a crash in
-- between is found and completed by the sweep every process runs at start
-- (and by any retry): an erasure completes or is completed.

-- +goose Up
CREATE TABLE rapport.pending_erasures (
    customer_id  uuid        PRIMARY KEY,
    requested_at timestamptz NOT NULL DEFAULT now()
);

-- Erasures that an earlier version left incomplete (the event stored, the
-- key not destroyed) are found in the embedded store's log. (With
-- EventStoreDB the log is elsewhere; this finds nothing there.)
INSERT INTO rapport.pending_erasures (customer_id)
SELECT DISTINCT substring(e.stream FROM 10)::uuid
FROM eventstore.events e
JOIN rapport.customer_keys k ON k.customer_id = substring(e.stream FROM 10)::uuid
WHERE e.event_type = 'rapport.CustomerDataErased.v1' AND e.stream LIKE 'customer-%' AND k.wrapped_key IS NOT NULL
ON CONFLICT DO NOTHING;

-- +goose Down
DROP TABLE rapport.pending_erasures;
