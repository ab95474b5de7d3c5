-- The projection engine's bookkeeping (package projections) and the schema
-- of the stable read-model views. Each projector generation keeps its own
-- tables in a schema of its own (rm_<projector>_g<generation>), created by
-- the engine; readmodels.<table> views point at the active generation, so
-- readers and analysts never name a generation.

-- +goose Up
CREATE SCHEMA projections;
CREATE SCHEMA readmodels;

-- One row per projector, whoever runs it.
CREATE TABLE projections.projectors (
    name              text        PRIMARY KEY,
    -- lock_epoch grows each time a process takes the projector's advisory
    -- lock. A process that lost its locking connection and locks again
    -- knows from it whether someone else held the projector in between.
    lock_epoch        bigint      NOT NULL DEFAULT 0,
    -- owner and state are written by the lock holder: what GET
    -- /v1/projections shows for a projector run by another process.
    owner             text,
    state             text        NOT NULL DEFAULT 'idle',
    -- Rebuild requests (POST /v1/projections/{name}/rebuild): the lock
    -- holder rebuilds when requested > handled.
    rebuild_requested bigint      NOT NULL DEFAULT 0,
    rebuild_handled   bigint      NOT NULL DEFAULT 0,
    -- Why the last rebuild failed, if it did.
    rebuild_error     text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One row per generation of a projector: its schema, its checkpoint (the
-- global log position up to which every event has been applied, committed
-- in the same transaction as the read-model rows) and, when a permanent
-- error stopped it, the poison event.
CREATE TABLE projections.generations (
    projector        text        NOT NULL REFERENCES projections.projectors (name),
    generation       integer     NOT NULL,
    version          integer     NOT NULL,
    schema_name      text        NOT NULL UNIQUE,
    -- building: a rebuild fills it while the active one serves;
    -- active: the views point at it; retired: replaced, schema dropped;
    -- failed: a rebuild that stopped on a poison event.
    state            text        NOT NULL CHECK (state IN ('building', 'active', 'retired', 'failed')),
    checkpoint       bigint      NOT NULL DEFAULT 0,
    events_applied   bigint      NOT NULL DEFAULT 0,
    -- recorded_at of the last event applied.
    last_recorded_at timestamptz,
    -- For a rebuild: how many events it had to go through when it started.
    rebuild_total    bigint,
    -- A generation being built has unlogged tables (no WAL while it is
    -- filled; made logged before it serves). A server crash empties
    -- unlogged tables, so a rebuild is only resumed on the server start it
    -- began under.
    build_server_start timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    activated_at     timestamptz,
    retired_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    stopped_at       timestamptz,
    poison_position  bigint,
    poison_stream    text,
    poison_revision  bigint,
    poison_event_id  uuid,
    poison_type      text,
    poison_error     text,
    PRIMARY KEY (projector, generation)
);
CREATE UNIQUE INDEX generations_one_active ON projections.generations (projector) WHERE state = 'active';
CREATE UNIQUE INDEX generations_one_building ON projections.generations (projector) WHERE state = 'building';

-- Trigram indexes make the read models' substring searches fast (the
-- customer directory's q). The extension is optional: where the server
-- does not ship it, or the role may not create it, searches scan instead.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm not installed: %', SQLERRM;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE s text;
BEGIN
    FOR s IN SELECT schema_name FROM projections.generations WHERE state <> 'retired' LOOP
        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s);
    END LOOP;
END
$$;
-- +goose StatementEnd
DROP SCHEMA readmodels CASCADE;
DROP SCHEMA projections CASCADE;
