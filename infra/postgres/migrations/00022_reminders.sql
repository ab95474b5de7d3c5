-- The reminder scheduler's state (readmodels/reminders). The reminders
-- themselves are events in the log (streams reminder-<uuid>, appended with
-- "no stream", so the log alone makes each one unique); these tables only
-- spare the scheduler work:
--
-- reminders is every reminder emitted, keyed by what identifies it (kind,
-- subject, basis), so that a scan does not append again what it already
-- emitted. A row lost (a crash between the append and its row) is found
-- again by the next scan, whose append is then recognised as a retry.
--
-- reminder_scheduler is the scheduler's checkpoint: every reminder due at
-- or before scanned_to was judged on the log up to position, so a scan
-- looks only at what fell due since and at the customers whose events
-- came after position; swept_at is the last full scan and config the SLA
-- targets and cadence it judged with (a change makes the next scan full);
-- floor, set at the first scan, is the earliest due time any scan emits
-- (the back-fill: reminders whose time came before are never emitted).

-- +goose Up
CREATE TABLE rapport.reminders (
    kind        text        NOT NULL,
    subject_id  uuid        NOT NULL,
    basis       timestamptz NOT NULL,
    id          uuid        NOT NULL UNIQUE,
    customer_id uuid        NOT NULL,
    due_at      timestamptz NOT NULL,
    -- position is the log position of its event (NULL when the append
    -- found it already there).
    position    bigint,
    emitted_at  timestamptz NOT NULL,
    PRIMARY KEY (kind, subject_id, basis)
);

CREATE TABLE rapport.reminder_scheduler (
    id         boolean     PRIMARY KEY DEFAULT true CHECK (id),
    scanned_to timestamptz NOT NULL,
    position   bigint      NOT NULL,
    swept_at   timestamptz NOT NULL,
    config     text        NOT NULL,
    floor      timestamptz NOT NULL
);

-- +goose Down
DROP TABLE rapport.reminder_scheduler;
DROP TABLE rapport.reminders;
