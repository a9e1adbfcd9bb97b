-- rmf-dash store, version 4: snapshots of the engine's dataflow state (every keyed operator's
-- state and the latest inputs as of `time_ms`, bincode; `fingerprint` names the build and
-- configuration that can load it). A restore loads the latest one at or before the checkpoint
-- and feeds only the input log after it. The writer keeps the latest one only.
CREATE TABLE dataflow_snapshot (
    time_ms bigint PRIMARY KEY,
    fingerprint text NOT NULL,
    data bytea NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
