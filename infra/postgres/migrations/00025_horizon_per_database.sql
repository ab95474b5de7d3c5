-- A tighter horizon that leaves out transactions which cannot append here:
-- those of other databases, and projectors' transactions (marked with
-- application_name 'rapport:readmodel', projections.ReadModelApplicationName).
--
-- Transaction ids are the whole server's, so eventstore.horizon(), the
-- snapshot's xmin, is the oldest transaction in flight in ANY database of
-- the cluster: another application's long transaction, a parallel test
-- package's, or a rebuild's long batch in this database held every
-- subscriber back until it ended, although none of them can append here.
--
-- appenders_horizon() is the lowest id among the snapshot's in-flight
-- transactions that are not known to be unable to append, or the
-- snapshot's xmax when there is none. It stays safe when pg_stat_activity
-- is older than the snapshot or hides a session (a role without the right
-- to see it, a prepared transaction): an id is left out only when it is
-- seen as another database's (a backend serves one database for its life,
-- so which database an id belongs to never changes) or as marked by a
-- projector. A projector marks its transaction with SET LOCAL
-- application_name before its first write and never appends in it; the
-- trigger below refuses an insert into the log from a transaction so
-- marked, so the mark cannot lie.
--
-- It reads pg_stat_activity, which costs far more than the xmin, so
-- subscriptions use it only once events have waited above the cheap horizon
-- for a while (EventStoreConfig.TightHorizonAfter). It is plpgsql, not an
-- inlined expression: evaluate it once per statement, never in a row
-- filter or a flattened subquery, where it would run for every row.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION eventstore.appenders_horizon() RETURNS bigint
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

-- +goose StatementBegin
CREATE FUNCTION eventstore.refuse_readmodel_append() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = 'rapport:readmodel' THEN
        RAISE EXCEPTION 'eventstore: a read-model transaction (application_name rapport:readmodel) cannot append'
            USING ERRCODE = '25006'; -- read_only_sql_transaction
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER events_refuse_readmodel_append BEFORE INSERT ON eventstore.events
    FOR EACH STATEMENT EXECUTE FUNCTION eventstore.refuse_readmodel_append();

-- +goose Down
DROP TRIGGER events_refuse_readmodel_append ON eventstore.events;
DROP FUNCTION eventstore.refuse_readmodel_append();
DROP FUNCTION eventstore.appenders_horizon();
