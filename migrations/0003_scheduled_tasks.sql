-- rmf-dash store, version 2: scheduled tasks. The placeholder table of version 1 was never
-- written; it is replaced. Times are unix milliseconds.

DROP TABLE scheduled_tasks;

-- One row per scheduled task (rmf-web's ScheduledTask; `schedules` is the JSON array of its
-- {every, period, at}). Every occurrence up to `checked_until_ms` has been claimed (a row in
-- scheduled_task_runs) or let pass; both move in the same transaction.
CREATE TABLE scheduled_tasks (
    id bigserial PRIMARY KEY,
    created_by text NOT NULL,
    created_ms bigint NOT NULL,
    task_request text NOT NULL,
    schedules text NOT NULL,
    start_from_ms bigint,
    until_ms bigint,
    except_dates text[] NOT NULL DEFAULT '{}',
    last_ran_ms bigint,
    checked_until_ms bigint NOT NULL
);
CREATE INDEX scheduled_tasks_checked ON scheduled_tasks (checked_until_ms);

-- One row per claimed occurrence: the claim is what makes a dispatch happen at most once per
-- occurrence whichever process claims it. `status`: claimed (sent or about to be, no answer
-- recorded yet), dispatched, failed, unanswered, not_permitted.
CREATE TABLE scheduled_task_runs (
    scheduled_task bigint NOT NULL REFERENCES scheduled_tasks ON DELETE CASCADE,
    occurrence_ms bigint NOT NULL,
    request_id text NOT NULL,
    status text NOT NULL,
    claimed_ms bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 1,
    task_id text,
    answered_ms bigint,
    detail text,
    PRIMARY KEY (scheduled_task, occurrence_ms)
);
CREATE INDEX scheduled_task_runs_unconfirmed ON scheduled_task_runs (scheduled_task)
    WHERE status = 'claimed';
