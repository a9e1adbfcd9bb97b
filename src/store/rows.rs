//! What one flush writes: the engine's inputs and complete-time batches turned into the rows of
//! each table ([`WriteSet`]). The inputs become input-log blocks ([`super::input_log`]), the
//! output history's rows are kept in order;
//! latest-state rows (rooms, tasks, alerts) keep only the last value per key; log entries are
//! de-duplicated by (key, stream, seq). The output history keeps a room's changes as its event
//! declares ([`Persistence`]): none for `Latest`, insertions only for `Stream`. A task-state
//! room's value is kept once, in `task_state` ([`WriteSet::seal`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use rmf_dash_dataflows::derived::{Output, Persistence, Rooms};
use rmf_dash_dataflows::model::input::{Input, Payload};
use rmf_dash_dataflows::prelude::Time;

use super::input_log::{self, Block, Command};
use crate::engine::Batch;

/// What the writer receives, in this order per logical time: the inputs of a time (before the
/// engine sees them), the output batch of a time, and the engine's output frontier.
#[derive(Debug)]
pub enum Msg {
    /// The inputs of engine command `cmd` of time `time`.
    Inputs {
        time: Time,
        cmd: u32,
        inputs: Vec<Input>,
    },
    /// A complete-time output batch, with the new sequence number of every room it touched.
    Outputs {
        batch: Batch,
        seqs: Vec<(Arc<str>, u64)>,
    },
    /// Every output of a time before this one has been delivered.
    Frontier(Time),
    /// The engine's state after every time up to `time` (an encoded
    /// `ops::snapshot::Snapshot`, see [`crate::store::restore::encode_snapshot`]).
    Snapshot {
        time: Time,
        fingerprint: String,
        data: Vec<u8>,
    },
}

impl Msg {
    /// The logical time the message belongs to (`None` for a frontier).
    pub fn time(&self) -> Option<Time> {
        match self {
            Msg::Inputs { time, .. } => Some(*time),
            Msg::Outputs { batch, .. } => Some(batch.time),
            Msg::Frontier(_) => None,
            Msg::Snapshot { time, .. } => Some(*time),
        }
    }

    /// Rows it will give (for the flush threshold).
    pub fn rows(&self) -> usize {
        match self {
            Msg::Inputs { inputs, .. } => inputs.len(),
            Msg::Outputs { batch, .. } => batch.changes.len() * 2,
            Msg::Frontier(_) => 0,
            Msg::Snapshot { .. } => 1,
        }
    }

    /// Approximate memory held (for the memory bound).
    pub fn bytes(&self) -> usize {
        match self {
            Msg::Inputs { inputs, .. } => inputs.len() * 160,
            Msg::Outputs { batch, .. } => batch
                .changes
                .iter()
                .map(|(o, _)| 48 + o.room.len() + o.value.as_str().len())
                .sum(),
            Msg::Frontier(_) => 0,
            Msg::Snapshot { data, .. } => data.len(),
        }
    }
}

/// A task's indexed columns and its state JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskRow {
    pub category: Option<String>,
    pub status: Option<String>,
    pub requester: Option<String>,
    pub fleet: Option<String>,
    pub robot: Option<String>,
    pub request_ms: Option<i64>,
    pub start_ms: Option<i64>,
    pub finish_ms: Option<i64>,
    pub labels: Vec<String>,
    pub time: i64,
    pub state: String,
}

/// One log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub tier: Option<String>,
    pub unix_ms: Option<i64>,
    pub text: Option<String>,
    pub time: i64,
}

/// An alert request.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub task_id: Option<String>,
    pub time: i64,
    pub request: String,
}

/// What the output history keeps of `room`: what its event declares (every change for a room of
/// no registered event, which the engine does not produce: nothing is lost if it ever does).
fn persistence(room: &str) -> Persistence {
    static ROOMS: std::sync::LazyLock<Rooms> = std::sync::LazyLock::new(Rooms::new);
    ROOMS
        .event(room)
        .map_or(Persistence::History, |d| d.persistence)
}

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct WriteSet {
    /// Every input and output up to this time is in this set or already stored.
    pub checkpoint: Time,
    /// The inputs by engine command, until [`WriteSet::seal`] encodes them as `blocks`.
    pub commands: Vec<Command>,
    pub blocks: Vec<Block>,
    /// Inputs in the set.
    pub inputs: usize,
    pub history: Vec<(i64, String, i32, Payload)>,
    /// room -> (seq, time, value).
    pub rooms: BTreeMap<Arc<str>, (i64, i64, Option<Payload>)>,
    /// Task-state rooms whose value is their task's state in this set, by task id: the store
    /// keeps that value once, in `task_state` (`room_state.task_id` refers to it).
    pub room_tasks: BTreeMap<Arc<str>, String>,
    pub tasks: BTreeMap<String, TaskRow>,
    /// (task id, stream, seq).
    pub task_logs: BTreeMap<(String, String, i64), LogRow>,
    /// (fleet, robot, seq).
    pub fleet_logs: BTreeMap<(String, String, i64), LogRow>,
    pub alerts: BTreeMap<String, AlertRow>,
    /// id -> (response JSON, time).
    pub responses: BTreeMap<String, (String, i64)>,
    /// Dropped by the memory bound: (from, to, rows).
    pub gaps: Vec<(i64, i64, i64)>,
    /// The latest engine snapshot of the set: (time, fingerprint, encoded snapshot).
    pub snapshot: Option<(i64, String, Vec<u8>)>,
}

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str().map(str::to_string)
}

fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_i64()
}

/// The columns of a task state payload (`None` when it is not JSON with a `booking.id`).
pub fn task_row(value: &str, time: i64) -> Option<(String, TaskRow)> {
    let v: Value = serde_json::from_str(value).ok()?;
    let id = str_at(&v, &["booking", "id"])?;
    let labels = v
        .pointer("/booking/labels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Some((
        id,
        TaskRow {
            category: str_at(&v, &["category"]),
            status: str_at(&v, &["status"]),
            requester: str_at(&v, &["booking", "requester"]),
            fleet: str_at(&v, &["assigned_to", "group"]),
            robot: str_at(&v, &["assigned_to", "name"]),
            request_ms: int_at(&v, &["booking", "unix_millis_request_time"]),
            start_ms: int_at(&v, &["unix_millis_start_time"]),
            finish_ms: int_at(&v, &["unix_millis_finish_time"]),
            labels,
            time,
            state: value.to_string(),
        },
    ))
}

fn log_rows(
    entries: Option<&Value>,
    key: &str,
    stream: &str,
    time: i64,
    out: &mut BTreeMap<(String, String, i64), LogRow>,
) {
    for e in entries.and_then(Value::as_array).into_iter().flatten() {
        let Some(seq) = e.get("seq").and_then(Value::as_i64) else {
            continue;
        };
        out.entry((key.to_string(), stream.to_string(), seq))
            .or_insert_with(|| LogRow {
                tier: str_at(e, &["tier"]),
                unix_ms: int_at(e, &["unix_millis_time"]),
                text: str_at(e, &["text"]),
                time,
            });
    }
}

impl WriteSet {
    /// Rows in the set.
    pub fn len(&self) -> usize {
        self.inputs
            + self.history.len()
            + self.rooms.len()
            + self.tasks.len()
            + self.task_logs.len()
            + self.fleet_logs.len()
            + self.alerts.len()
            + self.responses.len()
            + usize::from(self.snapshot.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate memory held by the set (for the writer's memory bound).
    pub fn held_bytes(&self) -> usize {
        self.len() * 64
    }

    /// Adds the inputs of one engine command (a command without inputs leaves no trace).
    pub fn add_inputs(&mut self, time: Time, cmd: u32, inputs: Vec<Input>) {
        if inputs.is_empty() {
            return;
        }
        self.inputs += inputs.len();
        self.commands.push(Command { time, cmd, inputs });
    }

    /// Ends the set: encodes the commands added as input-log blocks, in feeding order (by time,
    /// then command number, whatever order they were added in), and finds the task-state rooms
    /// whose value `task_state` holds.
    pub fn seal(&mut self) {
        let mut commands = std::mem::take(&mut self.commands);
        commands.sort_by_key(|c| (c.time, c.cmd));
        self.blocks.extend(input_log::encode(&commands));
        for (room, (_, _, value)) in &self.rooms {
            let task = match room.split('/').collect::<Vec<_>>().as_slice() {
                ["", "tasks", id, "state"] => self.tasks.get(*id).map(|t| (*id, t)),
                _ => None,
            };
            if let (Some((id, t)), Some(v)) = (task, value)
                && t.state == v.as_str()
            {
                self.room_tasks.insert(room.clone(), id.to_string());
            }
        }
    }

    /// Adds one output batch and the sequence numbers the hub gave its rooms.
    pub fn add_outputs(&mut self, batch: &Batch, seqs: &[(Arc<str>, u64)]) {
        let time = batch.time as i64;
        // A room's value after the batch: its last insertion; none if it was only retracted.
        let mut last: BTreeMap<&str, Option<&Payload>> = BTreeMap::new();
        for (Output { room, value }, diff) in &batch.changes {
            if persistence(room).keeps(*diff) {
                self.history
                    .push((time, room.clone(), *diff as i32, value.clone()));
            }
            let slot = last.entry(room.as_str()).or_insert(None);
            if *diff > 0 {
                *slot = Some(value);
                self.add_record(room, value.as_str(), time);
            }
        }
        for (room, seq) in seqs {
            let value = last.get(&**room).copied().flatten().cloned();
            self.rooms.insert(room.clone(), (*seq as i64, time, value));
        }
    }

    /// The rows a room's new value gives in the tables of tasks, logs and alerts.
    fn add_record(&mut self, room: &str, value: &str, time: i64) {
        let parts: Vec<&str> = room.split('/').collect();
        match parts.as_slice() {
            ["", "tasks", _, "state"] => {
                if let Some((id, row)) = task_row(value, time) {
                    self.tasks.insert(id, row);
                }
            }
            ["", "tasks", task, "log"] => {
                let Ok(v) = serde_json::from_str::<Value>(value) else {
                    return;
                };
                log_rows(v.get("log"), task, "", time, &mut self.task_logs);
                for (phase, p) in v
                    .get("phases")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    log_rows(p.get("log"), task, phase, time, &mut self.task_logs);
                    for (event, log) in p
                        .get("events")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        let stream = format!("{phase}/{event}");
                        log_rows(Some(log), task, &stream, time, &mut self.task_logs);
                    }
                }
            }
            ["", "fleets", fleet, "log"] => {
                let Ok(v) = serde_json::from_str::<Value>(value) else {
                    return;
                };
                log_rows(v.get("log"), fleet, "", time, &mut self.fleet_logs);
                for (robot, log) in v
                    .get("robots")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    log_rows(Some(log), fleet, robot, time, &mut self.fleet_logs);
                }
            }
            ["", "alerts", "requests"] => {
                let Ok(v) = serde_json::from_str::<Value>(value) else {
                    return;
                };
                if let Some(id) = str_at(&v, &["id"]) {
                    self.alerts.insert(
                        id,
                        AlertRow {
                            task_id: str_at(&v, &["task_id"]),
                            time,
                            request: value.to_string(),
                        },
                    );
                }
            }
            ["", "alerts", "responses"] => {
                let Ok(v) = serde_json::from_str::<Value>(value) else {
                    return;
                };
                if let Some(id) = str_at(&v, &["id"]) {
                    self.responses.insert(id, (value.to_string(), time));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_value_per_room_and_logs_deduplicated() {
        let out = |room: &str, v: &str| Output::new(room.into(), Payload(Arc::from(v)));
        let batch = Batch {
            time: 20,
            changes: vec![
                (out("/doors/d1/state", "{\"a\":1}"), -1),
                (out("/doors/d1/state", "{\"a\":2}"), 1),
                (out("/doors/d2/state", "{\"a\":3}"), -1),
                (out("/doors/d1/held_open", "{\"h\":1}"), 1),
                (
                    out(
                        "/tasks/t1/log",
                        r#"{"task_id":"t1","log":[{"seq":0,"tier":"info","unix_millis_time":5,"text":"x"}],"phases":{"1":{"log":[],"events":{"0":[{"seq":3,"tier":"warning","unix_millis_time":6,"text":"y"}]}}}}"#,
                    ),
                    1,
                ),
            ],
        };
        let mut w = WriteSet::default();
        w.add_outputs(
            &batch,
            &[("/doors/d1/state".into(), 7), ("/doors/d2/state".into(), 4)],
        );
        // Door states are `Latest` (no history), and so is a task log (its entries are in
        // `task_logs`); a door held open is `History`.
        let history: Vec<_> = w
            .history
            .iter()
            .map(|(t, r, d, _)| (*t, r.as_str(), *d))
            .collect();
        assert_eq!(history, vec![(20, "/doors/d1/held_open", 1)]);
        assert_eq!(
            w.rooms.get("/doors/d1/state"),
            Some(&(7, 20, Some(Payload(Arc::from("{\"a\":2}")))))
        );
        assert_eq!(w.rooms.get("/doors/d2/state"), Some(&(4, 20, None)));
        let keys: Vec<_> = w.task_logs.keys().cloned().collect();
        assert_eq!(
            keys,
            vec![
                ("t1".to_string(), "".to_string(), 0),
                ("t1".to_string(), "1/0".to_string(), 3)
            ]
        );
    }

    #[test]
    fn a_task_state_room_refers_to_its_task_row() {
        let out = |room: &str, v: &str| Output::new(room.into(), Payload(Arc::from(v)));
        let state = r#"{"booking":{"id":"t1"},"status":"underway"}"#;
        let batch = Batch {
            time: 3,
            changes: vec![
                (out("/tasks/t1/state", state), 1),
                // A value whose booking names another task keeps its own value.
                (out("/tasks/t2/state", r#"{"booking":{"id":"t3"}}"#), 1),
            ],
        };
        let mut w = WriteSet::default();
        let seqs = [("/tasks/t1/state".into(), 1), ("/tasks/t2/state".into(), 1)];
        w.add_outputs(&batch, &seqs);
        w.seal();
        let refs: Vec<_> = w
            .room_tasks
            .iter()
            .map(|(r, t)| (&**r, t.as_str()))
            .collect();
        assert_eq!(refs, vec![("/tasks/t1/state", "t1")]);
        assert_eq!(w.tasks["t1"].state, state);
    }

    #[test]
    fn task_columns() {
        let (id, row) = task_row(
            r#"{"booking":{"id":"t9","requester":"ann","unix_millis_request_time":10,"labels":["a=b"]},"category":"patrol","status":"completed","assigned_to":{"group":"f","name":"r"},"unix_millis_start_time":11,"unix_millis_finish_time":12}"#,
            5,
        )
        .expect("a task");
        assert_eq!(id, "t9");
        assert_eq!(row.requester.as_deref(), Some("ann"));
        assert_eq!(
            (row.request_ms, row.start_ms, row.finish_ms),
            (Some(10), Some(11), Some(12))
        );
        assert_eq!(row.labels, vec!["a=b".to_string()]);
        assert_eq!(row.fleet.as_deref(), Some("f"));
    }
}
