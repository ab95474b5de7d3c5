-- The horizon ignores transactions of other databases.
--
-- Transaction ids are the whole server's, so the snapshot's xmin is the
-- oldest transaction in flight in ANY database of the cluster: another
-- application's long transaction, or a parallel test package's, held every
-- subscriber of this event store back until it ended, although a
-- transaction of another database can never append here (a backend serves
-- one database for its life).
--
-- The horizon is now the lowest id among the snapshot's in-flight
-- transactions that are not known to belong to another database, or the
-- snapshot's xmax when there is none. It stays safe when pg_stat_activity is
-- older than the snapshot or hides a session (a role without the right to
-- see it, a prepared transaction): an id is left out only when it is seen
-- as another database's, and which database an id belongs to never changes.
-- While nothing is held back (no event at or above xmin) the cheap xmin
-- answer is exact, so pg_stat_activity is only read when it matters.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION eventstore.horizon() RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
DECLARE
    snap   pg_snapshot := pg_current_snapshot();
    lowest bigint      := pg_snapshot_xmin(snap)::text::bigint;
    first  bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM eventstore.events WHERE position >= lowest << 20) THEN
        RETURN lowest << 20;
    END IF;
    SELECT min(x.id) INTO first
    FROM (SELECT xip::text::bigint AS id FROM pg_snapshot_xip(snap) AS xip) AS x
    WHERE NOT EXISTS (
        SELECT 1 FROM pg_stat_activity a
        WHERE a.backend_xid IS NOT NULL
          AND a.backend_xid::text::bigint = x.id % 4294967296
          AND a.datname IS DISTINCT FROM current_database()
          AND a.datid IS NOT NULL);
    RETURN coalesce(first, pg_snapshot_xmax(snap)::text::bigint) << 20;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION eventstore.horizon() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20
$$;
-- +goose StatementEnd
