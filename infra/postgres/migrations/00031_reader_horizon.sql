-- The horizon for a read that runs in a later statement than the one that
-- computed it (ReadAll, HeadPosition): eventstore.reader_horizon().
--
-- appenders_horizon() leaves out an in-flight id only when pg_stat_activity
-- shows it as another database's (or a projector's). Activity is read after
-- the snapshot, so an id of another database that ended in between is no
-- longer shown, cannot be told apart from this database's, and is taken as
-- an appender: the horizon falls below events committed long before. That
-- is right for a read in the same statement (a subscription's poll), whose
-- snapshot does not see that transaction's commit; it is only late, never
-- wrong. But a reader with no floor yet (a new process: `rapport audit
-- verify`, a rebuild's first page) read a log that ended before events
-- committed before it asked, and the audit of a CI run called every
-- anchored stream deleted.
--
-- A later statement's snapshot sees the outcome of every transaction that
-- had ended when this function ran, so for it such an id holds nothing
-- back: reader_horizon() also leaves out the ids that pg_xact_status()
-- reports as no longer in progress. pg_xact_status reads the transaction's
-- state itself, not a view of the sessions, so a hidden session or a
-- prepared transaction still counts as in progress.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION eventstore.reader_horizon() RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED AS $$
DECLARE
    snap   pg_snapshot := pg_current_snapshot();
    lowest bigint      := pg_snapshot_xmin(snap)::text::bigint;
    others bigint[];
    first  bigint;
BEGIN
    IF coalesce((SELECT max(position) FROM eventstore.events) < lowest << 20, true) THEN
        RETURN lowest << 20; -- nothing waits above the xmin: it is exact
    END IF;
    -- First the sessions, then the transactions' states, in two
    -- statements: in one, the planner runs the cheaper pg_xact_status()
    -- first, and an id that ends between the two reads is then neither
    -- ended nor shown. In this order an id still in progress when its
    -- state is read was in flight when the sessions were read, and so was
    -- shown there if it was another database's.
    others := ARRAY(
        SELECT a.backend_xid::text::bigint
        FROM pg_stat_get_activity(NULL) AS a
        WHERE a.backend_xid IS NOT NULL
          AND a.datid IS NOT NULL
          AND (a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
               OR a.application_name = 'rapport:readmodel'));
    SELECT min(x.id) INTO first
    FROM (SELECT xip AS xid, xip::text::bigint AS id FROM pg_snapshot_xip(snap) AS xip) AS x
    WHERE x.id % 4294967296 <> ALL (others)
      AND pg_xact_status(x.xid) NOT IN ('committed', 'aborted');
    RETURN coalesce(first, pg_snapshot_xmax(snap)::text::bigint) << 20;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION eventstore.reader_horizon();
