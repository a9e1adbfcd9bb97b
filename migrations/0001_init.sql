-- rmf-dash store, version 1. Times are logical milliseconds (DESIGN.md invariant 1).
-- Payloads are kept as text exactly as the engine produced them (byte-identical restore);
-- they are validated when read back.

-- The logical time up to which everything (inputs and outputs) is written. One row.
CREATE TABLE checkpoint (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    time_ms bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every engine input with its logical time, in the order it was fed: `cmd` numbers the engine
-- commands of one time, `ord` the inputs of a command. `value` is the input encoded with bincode.
-- Partitioned by day of logical time (partitions are created by the writer, dropped by prune).
CREATE TABLE input_log (
    time_ms bigint NOT NULL,
    cmd integer NOT NULL,
    ord integer NOT NULL,
    kind text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (time_ms, cmd, ord)
) PARTITION BY RANGE (time_ms);

-- Every output change of the engine (derived events and rooms), append-only, by time.
CREATE TABLE output_history (
    time_ms bigint NOT NULL,
    room text NOT NULL,
    diff integer NOT NULL,
    value text NOT NULL
) PARTITION BY RANGE (time_ms);
CREATE INDEX output_history_room ON output_history (room, time_ms);

-- The latest value and sequence number of every room (NULL: the room has no value now; stream
-- rooms keep their last event).
CREATE TABLE room_state (
    room text PRIMARY KEY,
    seq bigint NOT NULL,
    time_ms bigint NOT NULL,
    value text
);

-- Task states with a column for every filter of GET /tasks, and the full JSON.
CREATE TABLE task_state (
    task_id text PRIMARY KEY,
    category text,
    status text,
    requester text,
    assigned_fleet text,
    assigned_robot text,
    request_time_ms bigint,
    start_time_ms bigint,
    finish_time_ms bigint,
    labels text[] NOT NULL DEFAULT '{}',
    time_ms bigint NOT NULL,
    state text NOT NULL
);
CREATE INDEX task_state_category ON task_state (category);
CREATE INDEX task_state_status ON task_state (status);
CREATE INDEX task_state_requester ON task_state (requester);
CREATE INDEX task_state_assigned ON task_state (assigned_fleet, assigned_robot);
CREATE INDEX task_state_request_time ON task_state (request_time_ms);
CREATE INDEX task_state_start_time ON task_state (start_time_ms);
CREATE INDEX task_state_finish_time ON task_state (finish_time_ms);
CREATE INDEX task_state_labels ON task_state USING gin (labels);

-- Log entries, unique by seq within their stream ("" = the task's own log, "phase" or
-- "phase/event" for the logs of phases and events).
CREATE TABLE task_log (
    task_id text NOT NULL,
    stream text NOT NULL,
    seq bigint NOT NULL,
    tier text,
    unix_millis_time bigint,
    text text,
    time_ms bigint NOT NULL,
    PRIMARY KEY (task_id, stream, seq)
);
CREATE INDEX task_log_time ON task_log (time_ms);
CREATE INDEX task_log_task_time ON task_log (task_id, unix_millis_time);

-- Fleet and robot logs ("" = the fleet's own log, else the robot name).
CREATE TABLE fleet_log (
    fleet text NOT NULL,
    robot text NOT NULL,
    seq bigint NOT NULL,
    tier text,
    unix_millis_time bigint,
    text text,
    time_ms bigint NOT NULL,
    PRIMARY KEY (fleet, robot, seq)
);
CREATE INDEX fleet_log_time ON fleet_log (time_ms);
CREATE INDEX fleet_log_fleet_time ON fleet_log (fleet, unix_millis_time);

-- Alert requests and their responses.
CREATE TABLE alerts (
    id text PRIMARY KEY,
    task_id text,
    time_ms bigint NOT NULL,
    request text,
    response text,
    response_time_ms bigint
);
CREATE INDEX alerts_task ON alerts (task_id);
CREATE INDEX alerts_time ON alerts (time_ms);
CREATE INDEX alerts_unresponded ON alerts (time_ms) WHERE response IS NULL;

-- Buffered rows the writer dropped when its memory bound was hit during an outage.
CREATE TABLE store_gaps (
    from_ms bigint NOT NULL,
    to_ms bigint NOT NULL,
    rows bigint NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- User data (filled by the users and favorites features).
CREATE TABLE users (
    username text PRIMARY KEY,
    is_admin boolean NOT NULL DEFAULT false
);
CREATE TABLE roles (
    name text PRIMARY KEY
);
CREATE TABLE user_roles (
    username text NOT NULL REFERENCES users ON DELETE CASCADE,
    role text NOT NULL REFERENCES roles ON DELETE CASCADE,
    PRIMARY KEY (username, role)
);
CREATE TABLE role_permissions (
    role text NOT NULL REFERENCES roles ON DELETE CASCADE,
    authz_grp text NOT NULL,
    action text NOT NULL,
    PRIMARY KEY (role, authz_grp, action)
);
CREATE TABLE favorite_tasks (
    id text PRIMARY KEY,
    username text NOT NULL,
    name text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE scheduled_tasks (
    id bigserial PRIMARY KEY,
    created_by text NOT NULL,
    task_request text NOT NULL,
    schedule text NOT NULL,
    last_ran timestamptz
);
