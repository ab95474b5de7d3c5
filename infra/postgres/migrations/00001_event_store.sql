-- The event store: one table for every stream, ordered by a global
-- position that subscribers can trust (see ARCHITECTURE.md, "Ordering").

-- +goose Up
CREATE SCHEMA eventstore;

CREATE TABLE eventstore.events (
    -- position = (xid of the appending transaction << 20) + index within the
    -- append. Ordering the log by it orders appends by the transaction id
    -- they got after taking their stream lock, which lets a reader tell the
    -- committed prefix of the log from what may still commit below it.
    position    bigint      NOT NULL PRIMARY KEY,
    stream      text        NOT NULL,
    revision    bigint      NOT NULL,
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    -- json, not jsonb: events are stored byte for byte, because their
    -- hashes are computed over the bytes the writer sent.
    data        json        NOT NULL,
    metadata    json,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT events_stream_revision_key UNIQUE (stream, revision),
    CONSTRAINT events_revision_check CHECK (revision >= 0)
);

-- horizon is the first position that a transaction still in flight could
-- write. Everything below it is final: no append can commit there any more.
-- +goose StatementBegin
CREATE FUNCTION eventstore.horizon() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20
$$;
-- +goose StatementEnd

-- append writes events to the end of a stream if it is at the expected
-- revision (-1 no stream, -2 any, -4 stream exists, n >= 0 exact), or
-- recognises a retry of an append that already happened. It must be the
-- first write of its transaction.
--
-- outcome is 'ok' (revision and position of the last event written, or of
-- the original events for a retry) or 'wrong' (revision is the stream's
-- current revision, -1 for no stream).
-- +goose StatementBegin
CREATE FUNCTION eventstore.append(
    p_stream   text,
    p_expected bigint,
    p_ids      uuid[],
    p_types    text[],
    p_data     json[],
    p_metadata json[]
) RETURNS TABLE (outcome text, revision bigint, "position" bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_count   int := cardinality(p_ids);
    v_current bigint;
    v_retry   bigint; -- revision where a retried append would begin
    v_xid     bigint;
BEGIN
    IF v_count IS NULL OR v_count = 0 OR v_count >= (1 << 20) THEN
        RAISE EXCEPTION 'eventstore.append: % events (1 to 1048575 allowed)', coalesce(v_count, 0)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The stream lock must be taken before the transaction has an id, so
    -- that every lock holder gets a larger id than every earlier holder and
    -- the stream's revisions follow the global order. Advisory locks belong
    -- to the virtual transaction, so waiting for one assigns no id.
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'eventstore.append must be the first write of its transaction'
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, 0));

    SELECT e.revision INTO v_current
    FROM eventstore.events e
    WHERE e.stream = p_stream
    ORDER BY e.revision DESC
    LIMIT 1;
    v_current := coalesce(v_current, -1);

    IF p_expected >= 0 THEN
        IF p_expected > v_current THEN
            RETURN QUERY SELECT 'wrong'::text, v_current, NULL::bigint;
            RETURN;
        ELSIF p_expected < v_current THEN
            v_retry := p_expected + 1;
        END IF;
    ELSIF p_expected = -1 THEN
        IF v_current >= 0 THEN
            v_retry := 0;
        END IF;
    ELSIF p_expected = -2 OR p_expected = -4 THEN
        IF p_expected = -4 AND v_current < 0 THEN
            RETURN QUERY SELECT 'wrong'::text, v_current, NULL::bigint;
            RETURN;
        END IF;
        SELECT e.revision INTO v_retry
        FROM eventstore.events e
        WHERE e.event_id = p_ids[1] AND e.stream = p_stream
        ORDER BY e.revision
        LIMIT 1;
    ELSE
        RAISE EXCEPTION 'eventstore.append: expected revision % is not valid', p_expected
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF v_retry IS NOT NULL THEN
        -- A retry only if the same ids already sit, in order, right where
        -- this append would have put them; anything else is a conflict.
        IF (SELECT array_agg(e.event_id ORDER BY e.revision)
            FROM eventstore.events e
            WHERE e.stream = p_stream AND e.revision BETWEEN v_retry AND v_retry + v_count - 1) = p_ids THEN
            RETURN QUERY
                SELECT 'ok'::text, e.revision, e.position
                FROM eventstore.events e
                WHERE e.stream = p_stream AND e.revision = v_retry + v_count - 1;
        ELSE
            RETURN QUERY SELECT 'wrong'::text, v_current, NULL::bigint;
        END IF;
        RETURN;
    END IF;

    v_xid := pg_current_xact_id()::text::bigint;
    IF v_xid >= (1::bigint << 43) THEN
        RAISE EXCEPTION 'eventstore.append: transaction id % no longer fits a position', v_xid;
    END IF;
    INSERT INTO eventstore.events (position, stream, revision, event_id, event_type, data, metadata)
    SELECT (v_xid << 20) + i - 1, p_stream, v_current + i, p_ids[i], p_types[i], p_data[i], p_metadata[i]
    FROM generate_subscripts(p_ids, 1) AS i;

    RETURN QUERY SELECT 'ok'::text, v_current + v_count, (v_xid << 20) + v_count - 1;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP SCHEMA eventstore CASCADE;
