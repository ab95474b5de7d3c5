-- appenders_horizon() asked "was anything written above the xmin?" as
-- EXISTS (position >= x). On a log the planner has no statistics for (a bulk
-- load, autovacuum off) PostgreSQL planned that as a sequential scan of the
-- whole log, 0.5-1 s at 1.9M events, paid by every poll of a held-back
-- subscriber, ReadAll and the head. max(position) is always one step down
-- the primary key. Same answer: nothing above x exactly when the largest
-- position is below x (or the log is empty).

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION eventstore.appenders_horizon() RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
DECLARE
    snap   pg_snapshot := pg_current_snapshot();
    lowest bigint      := pg_snapshot_xmin(snap)::text::bigint;
    first  bigint;
BEGIN
    -- max() is planned as one step down the primary key whatever the
    -- statistics; EXISTS (position >= x) on a log without statistics was
    -- planned as a sequential scan of the whole log.
    IF coalesce((SELECT max(position) FROM eventstore.events) < lowest << 20, true) THEN
        RETURN lowest << 20; -- nothing waits above the xmin: it is exact
    END IF;
    -- The activity is read once (a hashed subplan), not once per id.
    SELECT min(x.id) INTO first
    FROM (SELECT xip::text::bigint AS id FROM pg_snapshot_xip(snap) AS xip) AS x
    WHERE x.id % 4294967296 NOT IN (
        SELECT a.backend_xid::text::bigint
        FROM pg_stat_get_activity(NULL) AS a
        WHERE a.backend_xid IS NOT NULL
          AND a.datid IS NOT NULL
          AND (a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
               OR a.application_name = 'rapport:readmodel'));
    RETURN coalesce(first, pg_snapshot_xmax(snap)::text::bigint) << 20;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION eventstore.appenders_horizon() RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
DECLARE
    snap   pg_snapshot := pg_current_snapshot();
    lowest bigint      := pg_snapshot_xmin(snap)::text::bigint;
    first  bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM eventstore.events WHERE position >= lowest << 20) THEN
        RETURN lowest << 20; -- nothing waits above the xmin: it is exact
    END IF;
    -- The activity is read once (a hashed subplan), not once per id.
    SELECT min(x.id) INTO first
    FROM (SELECT xip::text::bigint AS id FROM pg_snapshot_xip(snap) AS xip) AS x
    WHERE x.id % 4294967296 NOT IN (
        SELECT a.backend_xid::text::bigint
        FROM pg_stat_get_activity(NULL) AS a
        WHERE a.backend_xid IS NOT NULL
          AND a.datid IS NOT NULL
          AND (a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
               OR a.application_name = 'rapport:readmodel'));
    RETURN coalesce(first, pg_snapshot_xmax(snap)::text::bigint) << 20;
END
$$;
-- +goose StatementEnd
