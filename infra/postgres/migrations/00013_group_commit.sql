-- Group commit: several appends, to any streams, in one transaction and
-- one statement, so that they share one round trip, one transaction id and
-- one WAL flush (infra/postgres/groupcommit.go forms the groups).
--
-- Each append keeps its own expected-revision check, its own idempotent
-- retry recognition and its own outcome: a conflict answers 'wrong' for
-- that append only and writes nothing for it, the others go on.
--
-- The ordering argument of ARCHITECTURE.md ("Ordering") still holds:
-- every stream lock of the group is taken before the transaction has an id
-- (the function refuses to run otherwise), so for each of its streams the
-- group's id is larger than the id of every earlier holder of that stream's
-- lock. The locks are taken in ascending key order, the same total order
-- for every group (a single append takes one lock), so no two groups can
-- wait for each other in a cycle. Positions are (xid << 20) + the index of
-- the event among the events the group wrote, so they stay unique,
-- increasing in the log and contiguous for one append; the group writes at
-- most 2^20 - 1 events.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION eventstore.append_group(
    p_streams  text[],
    p_expected bigint[],
    p_counts   int[],
    p_ids      uuid[],
    p_types    text[],
    p_data     json[],
    p_metadata json[]
) RETURNS TABLE (idx int, outcome text, revision bigint, "position" bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_appends int := cardinality(p_streams);
    v_total   int := cardinality(p_ids);
    v_key     bigint;
    v_xid     bigint;
    v_written int := 0; -- events written by the group so far
    v_lo      int := 1; -- first index of the current append in the flat arrays
    v_count   int;
    v_stream  text;
    v_exp     bigint;
    v_ids     uuid[];
    v_current bigint;
    v_retry   bigint;
BEGIN
    IF v_appends IS NULL OR v_appends = 0
       OR cardinality(p_expected) IS DISTINCT FROM v_appends
       OR cardinality(p_counts) IS DISTINCT FROM v_appends
       OR (SELECT sum(c) FROM unnest(p_counts) c) IS DISTINCT FROM v_total::bigint
       OR EXISTS (SELECT 1 FROM unnest(p_counts) c WHERE c IS NULL OR c < 1)
       OR cardinality(p_types) IS DISTINCT FROM v_total
       OR cardinality(p_data) IS DISTINCT FROM v_total
       OR cardinality(p_metadata) IS DISTINCT FROM v_total
       OR v_total >= (1 << 20) THEN
        RAISE EXCEPTION 'eventstore.append_group: inconsistent group (% appends, % events; at most 1048575 events)',
            coalesce(v_appends, 0), coalesce(v_total, 0)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'eventstore.append_group must be the first write of its transaction'
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    -- Every stream lock before the first write, in ascending key order.
    FOR v_key IN SELECT DISTINCT hashtextextended(s, 0) AS k FROM unnest(p_streams) s ORDER BY k LOOP
        PERFORM pg_advisory_xact_lock(v_key);
    END LOOP;

    FOR a IN 1 .. v_appends LOOP
        v_stream := p_streams[a];
        v_exp := p_expected[a];
        v_count := p_counts[a];
        v_ids := p_ids[v_lo : v_lo + v_count - 1];
        v_retry := NULL;

        SELECT e.revision INTO v_current
        FROM eventstore.events e
        WHERE e.stream = v_stream
        ORDER BY e.revision DESC
        LIMIT 1;
        v_current := coalesce(v_current, -1);

        -- The checks of eventstore.append, append by append; an earlier
        -- append of the group to the same stream is visible here.
        IF v_exp >= 0 THEN
            IF v_exp > v_current THEN
                RETURN QUERY SELECT a, 'wrong'::text, v_current, NULL::bigint;
                v_lo := v_lo + v_count;
                CONTINUE;
            ELSIF v_exp < v_current THEN
                v_retry := v_exp + 1;
            END IF;
        ELSIF v_exp = -1 THEN
            IF v_current >= 0 THEN
                v_retry := 0;
            END IF;
        ELSIF v_exp = -2 OR v_exp = -4 THEN
            IF v_exp = -4 AND v_current < 0 THEN
                RETURN QUERY SELECT a, 'wrong'::text, v_current, NULL::bigint;
                v_lo := v_lo + v_count;
                CONTINUE;
            END IF;
            SELECT e.revision INTO v_retry
            FROM eventstore.events e
            WHERE e.event_id = v_ids[1] AND e.stream = v_stream
            ORDER BY e.revision
            LIMIT 1;
        ELSE
            RAISE EXCEPTION 'eventstore.append_group: expected revision % is not valid', v_exp
                USING ERRCODE = 'invalid_parameter_value';
        END IF;

        IF v_retry IS NOT NULL THEN
            IF (SELECT array_agg(e.event_id ORDER BY e.revision)
                FROM eventstore.events e
                WHERE e.stream = v_stream AND e.revision BETWEEN v_retry AND v_retry + v_count - 1) = v_ids THEN
                RETURN QUERY
                    SELECT a, 'ok'::text, e.revision, e.position
                    FROM eventstore.events e
                    WHERE e.stream = v_stream AND e.revision = v_retry + v_count - 1;
            ELSE
                RETURN QUERY SELECT a, 'wrong'::text, v_current, NULL::bigint;
            END IF;
            v_lo := v_lo + v_count;
            CONTINUE;
        END IF;

        IF v_xid IS NULL THEN
            v_xid := pg_current_xact_id()::text::bigint;
            IF v_xid >= (1::bigint << 43) THEN
                RAISE EXCEPTION 'eventstore.append_group: transaction id % no longer fits a position', v_xid;
            END IF;
        END IF;
        INSERT INTO eventstore.events (position, stream, revision, event_id, event_type, data, metadata)
        SELECT (v_xid << 20) + v_written + i - 1, v_stream, v_current + i,
               p_ids[v_lo + i - 1], p_types[v_lo + i - 1], p_data[v_lo + i - 1], p_metadata[v_lo + i - 1]
        FROM generate_series(1, v_count) AS i;

        RETURN QUERY SELECT a, 'ok'::text, v_current + v_count, (v_xid << 20) + v_written + v_count - 1;
        v_written := v_written + v_count;
        v_lo := v_lo + v_count;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION eventstore.append_group(text[], bigint[], int[], uuid[], text[], json[], json[]);
