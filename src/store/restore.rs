//! Restore at start: the hub gets the stored room values and sequence numbers (served at once),
//! then the engine starts from the latest stored snapshot at or before the checkpoint (when it
//! fits the engine) and is fed the stored input log after it up to the checkpoint, in its
//! original commands, which rebuilds every dataflow state (latest values, windows, heartbeats,
//! joins) exactly; without a usable snapshot, the whole input log is fed. A stored row that
//! cannot be read (a payload edited to invalid JSON, an undecodable input or snapshot) is
//! logged and skipped, never fatal. A quarantined input (one that made an engine worker panic,
//! [`crate::quarantine`]) is skipped too: the input log keeps what arrived, the engine never
//! sees it again.

use futures_util::TryStreamExt;
use serde_json::value::RawValue;

use rmf_dash_dataflows::model::input::Input;
use rmf_dash_dataflows::ops::snapshot::Snapshot;
use rmf_dash_dataflows::prelude::Time;

use super::StoreError;
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

/// Seeds `hub` with every stored room; returns (rooms seeded, rows skipped).
pub async fn seed_hub(
    client: &tokio_postgres::Client,
    hub: &Hub,
) -> Result<(usize, u64), StoreError> {
    let rows = client
        .query("SELECT room, seq, time_ms, value FROM room_state", &[])
        .await?;
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
/// `engine`, one engine command per stored (time, cmd), its quarantined inputs left out, then
/// moves the engine past the checkpoint. Returns (inputs fed, rows skipped).
pub async fn feed_engine(
    client: &tokio_postgres::Client,
    engine: &Engine,
    after: Option<Time>,
    checkpoint: Time,
) -> Result<(u64, u64), StoreError> {
    let after = after.map_or(-1, |t| t as i64);
    let stream = client
        .query_raw(
            "SELECT time_ms, cmd, ord, value FROM input_log WHERE time_ms > $1 AND time_ms <= $2 \
             ORDER BY time_ms, cmd, ord",
            [after, checkpoint as i64],
        )
        .await?;
    futures_util::pin_mut!(stream);
    let (mut fed, mut skipped) = (0u64, 0u64);
    let mut current: Option<(i64, i32)> = None;
    let mut inputs: Vec<Input> = Vec::new();
    let quarantine = engine.quarantine();
    let mut quarantined = 0u64;
    let send = |t: i64, inputs: Vec<Input>| -> Result<(), StoreError> {
        // The engine's command queue is bounded: a full queue blocks this thread briefly.
        tokio::task::block_in_place(|| engine.restore_input(t.max(0) as Time, inputs))
            .map_err(|_| StoreError::Stopped)
    };
    while let Some(row) = stream.try_next().await? {
        let time: i64 = row.get(0);
        let cmd: i32 = row.get(1);
        let ord: i32 = row.get(2);
        let value: &[u8] = row.get(3);
        if current != Some((time, cmd)) {
            if let Some((t, _)) = current
                && !inputs.is_empty()
            {
                fed += inputs.len() as u64;
                send(t, std::mem::take(&mut inputs))?;
            }
            current = Some((time, cmd));
        }
        match bincode::deserialize::<Input>(value) {
            Ok(input) if quarantine.contains(&input) => quarantined += 1,
            Ok(input) => inputs.push(input),
            Err(e) => {
                tracing::warn!(time, cmd, ord, error = %e, "stored input cannot be decoded: skipped");
                skipped += 1;
            }
        }
    }
    if let Some((t, _)) = current
        && !inputs.is_empty()
    {
        fed += inputs.len() as u64;
        send(t, inputs)?;
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
