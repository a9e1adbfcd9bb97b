//! Restore at start: the hub gets the stored room values and sequence numbers (served at once),
//! then the engine starts from the latest stored snapshot at or before the checkpoint (when it
//! fits the engine) and is fed the stored input log after it up to the checkpoint, in its
//! original commands, which rebuilds every dataflow state (latest values, windows, heartbeats,
//! joins) exactly; without a usable snapshot, the whole input log is fed. A stored row that
//! cannot be read (a payload edited to invalid JSON, an undecodable input block or snapshot) is
//! logged and skipped, never fatal. A quarantined input (one that made an engine worker panic,
//! [`crate::quarantine`]) is skipped too: the input log keeps what arrived, the engine never
//! sees it again.

use futures_util::TryStreamExt;
use serde_json::value::RawValue;

use rmf_dash_dataflows::ops::snapshot::Snapshot;
use rmf_dash_dataflows::prelude::Time;

use super::StoreError;
use super::input_log::{self, Format};
use crate::engine::Engine;
use crate::hub::Hub;

/// What a restore found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    pub checkpoint: Option<Time>,
    pub rooms: usize,
    pub inputs: u64,
    /// Rows skipped because they could not be read.
    pub skipped: u64,
}

/// Every stored room with its value (a task-state room's is its task's state).
pub const ROOMS: &str = "SELECT r.room, r.seq, r.time_ms, coalesce(r.value, t.state) \
    FROM room_state r LEFT JOIN task_state t ON t.task_id = r.task_id";

/// Seeds `hub` with every stored room; returns (rooms seeded, rows skipped).
pub async fn seed_hub(
    client: &tokio_postgres::Client,
    hub: &Hub,
) -> Result<(usize, u64), StoreError> {
    let rows = client.query(ROOMS, &[]).await?;
    let mut skipped = 0;
    let mut rooms = Vec::with_capacity(rows.len());
    for row in rows {
        let room: String = row.get(0);
        let seq: i64 = row.get(1);
        let time: i64 = row.get(2);
        let value: Option<String> = row.get(3);
        let value = match value.map(RawValue::from_string).transpose() {
            Ok(v) => v.map(std::sync::Arc::from),
            Err(e) => {
                tracing::warn!(room, error = %e, "stored room value is not valid JSON: skipped");
                skipped += 1;
                continue;
            }
        };
        rooms.push((room, seq.max(0) as u64, time.max(0) as u64, value));
    }
    Ok((hub.seed(rooms), skipped))
}

/// A snapshot as the store keeps it.
pub fn encode_snapshot(snapshot: &Snapshot) -> Result<Vec<u8>, bincode::Error> {
    bincode::serialize(snapshot)
}

/// The latest stored snapshot at or before `checkpoint`; one that cannot be read is logged and
/// not used.
pub async fn load_snapshot(
    client: &tokio_postgres::Client,
    checkpoint: Time,
) -> Result<Option<Snapshot>, StoreError> {
    let row = client
        .query_opt(
            "SELECT time_ms, data FROM dataflow_snapshot WHERE time_ms <= $1 \
             ORDER BY time_ms DESC LIMIT 1",
            &[&(checkpoint as i64)],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let time: i64 = row.get(0);
    let data: &[u8] = row.get(1);
    match bincode::deserialize::<Snapshot>(data) {
        Ok(s) if s.time as i64 == time => Ok(Some(s)),
        Ok(s) => {
            tracing::warn!(
                time,
                inner = s.time,
                "stored snapshot is of another time: not used"
            );
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(time, error = %e, "stored snapshot cannot be decoded: not used");
            Ok(None)
        }
    }
}

/// Feeds the stored input log after `after` (from the start with `None`) up to `checkpoint` to
/// `engine`, one engine command per stored command, its quarantined inputs left out, then moves
/// the engine past the checkpoint. A block that cannot be decoded is skipped whole, with a
/// warning. Returns (inputs fed, inputs skipped: those of undecodable blocks).
pub async fn feed_engine(
    client: &tokio_postgres::Client,
    engine: &Engine,
    after: Option<Time>,
    checkpoint: Time,
) -> Result<(u64, u64), StoreError> {
    let after = after.map_or(-1, |t| t as i64);
    // Blocks do not overlap in time: the last one starting at or before `after` is the only
    // one before it that may hold later commands.
    let start: Option<i64> = client
        .query_one(
            "SELECT greatest((SELECT max(first_ms) FROM input_block WHERE first_ms <= $1), \
                             (SELECT max(first_ms) FROM input_recent WHERE first_ms <= $1))",
            &[&after],
        )
        .await?
        .get(0);
    let stream = client
        .query_raw(input_log::BLOCKS, [start.unwrap_or(-1), checkpoint as i64])
        .await?;
    futures_util::pin_mut!(stream);
    let (mut fed, mut skipped, mut quarantined) = (0u64, 0u64, 0u64);
    let quarantine = engine.quarantine();
    while let Some(row) = stream.try_next().await? {
        let first: i64 = row.get(0);
        let commands = match input_log::decode(Format::of(row.get(3)), row.get(4)) {
            Ok(c) => c,
            Err(e) => {
                let inputs: i32 = row.get(2);
                tracing::warn!(first_ms = first, inputs, error = %crate::error::chain(&e), "stored input block cannot be decoded: skipped");
                skipped += inputs.max(0) as u64;
                continue;
            }
        };
        for c in commands {
            if (c.time as i64) <= after || c.time > checkpoint {
                continue;
            }
            let n = c.inputs.len();
            let inputs: Vec<_> = c
                .inputs
                .into_iter()
                .filter(|i| !quarantine.contains(i))
                .collect();
            quarantined += (n - inputs.len()) as u64;
            if inputs.is_empty() {
                continue;
            }
            fed += inputs.len() as u64;
            // The engine's command queue is bounded: a full queue blocks this thread briefly.
            tokio::task::block_in_place(|| engine.restore_input(c.time, inputs))
                .map_err(|_| StoreError::Stopped)?;
        }
    }
    engine
        .advance(checkpoint + 1)
        .map_err(|_| StoreError::Stopped)?;
    if quarantined > 0 {
        quarantine
            .metrics
            .skipped
            .fetch_add(quarantined, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            quarantined,
            "quarantined inputs skipped in the input log (they made an engine worker panic)"
        );
    }
    Ok((fed, skipped))
}
