-- Parked streams (package projections): a customer stream whose event a
-- projector generation could not apply. The generation's checkpoint moved
-- past the event in the transaction that wrote the row, so every other
-- stream goes on; the stream's later events are not applied but counted
-- in waiting, and a retry (POST /v1/projections/{name}/parked/{stream}/retry)
-- re-reads the stream from revision on, applies its events in order and
-- deletes the row in one transaction.

-- +goose Up
CREATE TABLE projections.parked (
    projector       text        NOT NULL,
    generation      integer     NOT NULL,
    stream          text        NOT NULL,
    -- The first event that could not be applied.
    position        bigint      NOT NULL,
    revision        bigint      NOT NULL,
    event_id        uuid,
    event_type      text        NOT NULL,
    error           text        NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    -- attempts counts the tries to apply the event: 1 when parked, one
    -- more for each retry that failed.
    attempts        integer     NOT NULL DEFAULT 1,
    last_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- The stream's later events the generation passed without applying.
    waiting         bigint      NOT NULL DEFAULT 0,
    -- A retry asked of a process that does not run the projector: the
    -- one that does retries it.
    retry_requested boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (projector, generation, stream),
    FOREIGN KEY (projector, generation) REFERENCES projections.generations (projector, generation) ON DELETE CASCADE
);

-- +goose Down
DROP TABLE projections.parked;
