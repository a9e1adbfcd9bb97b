-- rmf-dash store, version 8: storage a site can afford (BENCHMARKS.md, "What the store keeps").
--
-- The input log as compressed blocks (src/store/input_log.rs): a row holds the inputs of
-- consecutive engine commands in feeding order. The writer writes a plain block per flush
-- into `input_recent` (the commands, bincode then zstd), and packs the plain blocks of each
-- completed minute into one block of `input_block` (the inputs grouped by key, each as the XOR
-- of its previous value, then zstd), in the same transaction. The rows of the version-7
-- `input_log` (one per input) are converted right after this migration, in the same
-- transaction (src/store/migrate.rs), and that table is dropped.
CREATE TABLE input_block (
    -- Time and command number of the block's first command, and the time of its last one.
    first_ms bigint NOT NULL,
    first_cmd integer NOT NULL,
    last_ms bigint NOT NULL,
    -- Inputs in the block.
    inputs integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (first_ms, first_cmd)
) PARTITION BY RANGE (first_ms);
-- Already compressed: kept out of line as is, never compressed again.
ALTER TABLE input_block ALTER COLUMN data SET STORAGE EXTERNAL;
-- The plain blocks of the minute not yet complete: a queue whose space is reused, vacuumed
-- as soon as a minute's blocks leave.
CREATE TABLE input_recent (LIKE input_block INCLUDING ALL);
ALTER TABLE input_recent SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 100, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE input_log RENAME TO input_log_v7;

-- A task-state room's value is its task's state, kept once, in task_state: `task_id` names it
-- and `value` is NULL (restore joins them).
ALTER TABLE room_state ADD COLUMN task_id text;

-- Large JSON values (task states, room values, histories, snapshots) compressed with lz4 rather
-- than pglz: faster to write and read, and smaller here. (A lower `toast_tuple_target` was
-- measured and made room_state larger: values moved out of line are rewritten on every update.)
ALTER TABLE output_history ALTER COLUMN value SET COMPRESSION lz4;
ALTER TABLE room_state ALTER COLUMN value SET COMPRESSION lz4;
ALTER TABLE task_state ALTER COLUMN state SET COMPRESSION lz4;
ALTER TABLE alerts ALTER COLUMN request SET COMPRESSION lz4;
ALTER TABLE alerts ALTER COLUMN response SET COMPRESSION lz4;
ALTER TABLE dataflow_snapshot ALTER COLUMN data SET COMPRESSION lz4;

-- Latest-state tables are updated in place, every flush: room left in every page for the new
-- version of a row (a HOT update, no new index entries when no indexed column changes), and
-- vacuumed after 2 % of their rows changed rather than 20 %, so that dead versions are reused
-- before the table grows.
ALTER TABLE room_state SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0);
ALTER TABLE task_state SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0);
ALTER TABLE alerts SET (fillfactor = 80);
ALTER TABLE checkpoint SET (fillfactor = 10);
ALTER TABLE dataflow_snapshot SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1, autovacuum_vacuum_cost_delay = 0);
