-- rmf-dash store, version 7: engine inputs quarantined because processing them made an engine
-- worker panic (src/quarantine). A restore and every later arrival skip an input whose digest is
-- here. The payload is not copied here: the input log keeps what arrived.
CREATE TABLE quarantine (
    -- SHA-256 of the input's bincode encoding (the bytes of input_log.value), 64 hex digits.
    digest text PRIMARY KEY,
    -- As in input_log: the input's kind (`Fleet`, `Robot(Api)`, ...) and entity.
    kind text NOT NULL,
    key text NOT NULL,
    -- The logical time it was fed at.
    time_ms bigint NOT NULL,
    -- `live` (from a source) or `restore` (from the input log).
    source text NOT NULL,
    -- What the worker's panic said.
    reason text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);
