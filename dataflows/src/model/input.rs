//! Engine inputs: what the dataflows see of each decoded record, keyed by entity.
//!
//! A decoded [`Record`] becomes one or more [`Input`]s (a FleetState is one input per robot). State
//! inputs are upserts: the engine host keeps the latest value per [`InputKey`] and retracts it
//! when a new one arrives; log inputs are appended (+1 only). Values keep the room payload (the
//! JSON a dashboard receives, encoded once here) next to the few fields the derived events read,
//! in ordered types (differential data is `Ord`).

use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ros::*;
use super::{JsonKind, Record};

/// A JSON payload, encoded once and shared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(pub Arc<str>);

impl Payload {
    pub fn of<T: Serialize>(value: &T) -> Payload {
        // Serializing plain data structures to a string cannot fail.
        Payload(Arc::from(
            serde_json::to_string(value).unwrap_or_else(|_| "null".into()),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A float with a total order (differential data must be `Ord`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for F64 {}
impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for F64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for F64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

pub type Name = CompactString;

/// A robot is known by its fleet and name.
pub type RobotKey = (Name, Name);

/// Where a robot sample came from: the ROS FleetState (10 Hz, mode) or the fleet adapter's JSON
/// (1 Hz, status and issues).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RobotSource {
    Ros,
    Api,
}

/// The fleet-adapter robot status (RMF.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RobotStatus {
    Uninitialized,
    Offline,
    Shutdown,
    Idle,
    Charging,
    Working,
    Error,
}

impl RobotStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "uninitialized" => Self::Uninitialized,
            "offline" => Self::Offline,
            "shutdown" => Self::Shutdown,
            "idle" => Self::Idle,
            "charging" => Self::Charging,
            "working" => Self::Working,
            "error" => Self::Error,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uninitialized => "uninitialized",
            Self::Offline => "offline",
            Self::Shutdown => "shutdown",
            Self::Idle => "idle",
            Self::Charging => "charging",
            Self::Working => "working",
            Self::Error => "error",
        }
    }
}

/// One observation of a robot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RobotSample {
    pub source: RobotSource,
    /// Fleet-adapter status (JSON source only).
    pub status: Option<RobotStatus>,
    /// ROS RobotMode (ROS source only).
    pub mode: Option<u32>,
    /// The message's own counter or stamp (ROS `RobotState.seq`, adapter `unix_millis_time`):
    /// every new message differs, a repeated one is recognised as the same sample.
    pub stamp: u64,
    /// 0.0 to 1.0.
    pub battery: Option<F64>,
    /// Position on `level`; NaN when the sample has no location.
    pub x: F64,
    pub y: F64,
    pub level: Name,
    pub task_id: Name,
    /// Issues reported by the adapter: `category: detail`.
    pub issues: Vec<String>,
}

/// One observation of a task (from `task_state_update`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskSample {
    pub status: Name,
    pub category: Name,
    /// `assigned_to.group` (or the dispatch assignment's fleet).
    pub fleet: Name,
    pub robot: Name,
    pub request_ms: Option<u64>,
    pub start_ms: Option<u64>,
    pub finish_ms: Option<u64>,
    pub estimate_ms: Option<u64>,
    /// The active phase: id and category.
    pub active_phase: Option<(u64, Name)>,
    pub dispatch_status: Name,
    /// `dispatch.errors` as JSON text (empty when none).
    pub dispatch_errors: String,
    pub payload: Payload,
}

/// One log entry (RMF.md section 5 log_entry).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u32,
    pub tier: Name,
    pub unix_millis_time: u64,
    pub text: String,
}

/// New log entries of a task (`task_log_update`) or of a fleet's robots (`fleet_log_update`),
/// each with the stream it belongs to: `""` for the task's own log, `phase/event` for an event's
/// log, the robot name for a fleet log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogBatch {
    pub entries: Vec<(Name, LogEntry)>,
}

/// A lift's state with the fields derived events read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LiftSample {
    pub mode: u8,
    pub door_state: u8,
    pub current_floor: Name,
    pub session_id: Name,
    pub payload: Payload,
}

/// A device's mode and payload (doors: DoorMode value; workcells: IDLE/BUSY/OFFLINE).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceSample {
    pub mode: i64,
    pub payload: Payload,
}

/// An alert request (ROS `alert` or derived), with the COMPAT payload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertSample {
    pub task_id: Name,
    pub payload: Payload,
}

/// Kinds of state inputs; with the entity name they form the upsert key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    Door,
    Lift,
    Dispenser,
    Ingestor,
    Robot(RobotSource),
    Fleet,
    Task,
    BuildingMap,
    Beacon,
    Alert,
    AlertResponse,
    DeliveryAlert,
    FireAlarm,
    FleetLog,
    TaskLog,
}

impl Kind {
    /// Logs are appended, everything else is an upsert.
    pub fn is_log(self) -> bool {
        matches!(self, Kind::FleetLog | Kind::TaskLog)
    }
}

/// An engine input value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum InputValue {
    Device(DeviceSample),
    Lift(LiftSample),
    Robot(RobotSample),
    Task(TaskSample),
    Log(LogBatch),
    Alert(AlertSample),
    Payload(Payload),
}

/// Upsert key of an input: kind and entity (`fleet/robot` for robots, `""` for singletons).
pub type InputKey = (Kind, Name);

/// One engine input.
pub type Input = (InputKey, InputValue);

fn json_u64(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn json_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Why a record gave no input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{kind}: {message}")]
    Invalid { kind: &'static str, message: String },
}

fn invalid(kind: JsonKind, message: impl Into<String>) -> InputError {
    InputError::Invalid {
        kind: kind.as_str(),
        message: message.into(),
    }
}

/// The robot samples of a fleet-adapter `fleet_state` JSON object.
fn api_robots(fleet: &str, data: &Value, out: &mut Vec<Input>) {
    let Some(robots) = data.get("robots").and_then(Value::as_object) else {
        return;
    };
    for (name, r) in robots {
        let loc = r.get("location");
        // A missing location is NaN: it neither moves nor anchors a robot.
        let num = |k: &str| {
            F64(loc
                .and_then(|l| l.get(k))
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN))
        };
        let issues = r
            .get("issues")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|i| {
                        format!(
                            "{}: {}",
                            json_str(i, "category"),
                            i.get("detail")
                                .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_string))
                                .unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let sample = RobotSample {
            source: RobotSource::Api,
            status: RobotStatus::parse(json_str(r, "status")),
            mode: None,
            stamp: json_u64(r, "unix_millis_time").unwrap_or(0),
            battery: r.get("battery").and_then(Value::as_f64).map(F64),
            x: num("x"),
            y: num("y"),
            level: loc.map(|l| json_str(l, "map")).unwrap_or_default().into(),
            task_id: json_str(r, "task_id").into(),
            issues,
        };
        out.push((
            (Kind::Robot(RobotSource::Api), robot_name(fleet, name)),
            InputValue::Robot(sample),
        ));
    }
}

/// The entity name of a robot input: `fleet/robot`.
pub fn robot_name(fleet: &str, robot: &str) -> Name {
    compact_str::format_compact!("{fleet}/{robot}")
}

/// Splits `fleet/robot` (fleet names contain no `/` in RMF).
pub fn split_robot(name: &str) -> RobotKey {
    match name.split_once('/') {
        Some((f, r)) => (f.into(), r.into()),
        None => (name.into(), Name::default()),
    }
}

fn task_sample(data: &Value) -> Result<(Name, TaskSample), InputError> {
    let k = JsonKind::TaskStateUpdate;
    let booking = data
        .get("booking")
        .ok_or_else(|| invalid(k, "missing booking"))?;
    let id = booking
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(k, "missing booking.id"))?;
    let assigned = data.get("assigned_to");
    let dispatch = data.get("dispatch");
    let assignment = dispatch.and_then(|d| d.get("assignment"));
    let fleet = assigned
        .map(|a| json_str(a, "group"))
        .filter(|s| !s.is_empty())
        .or_else(|| assignment.map(|a| json_str(a, "fleet_name")))
        .unwrap_or_default();
    let robot = assigned
        .map(|a| json_str(a, "name"))
        .filter(|s| !s.is_empty())
        .or_else(|| assignment.map(|a| json_str(a, "expected_robot_name")))
        .unwrap_or_default();
    let active_phase = data.get("active").and_then(Value::as_u64).map(|id| {
        let category = data
            .get("phases")
            .and_then(|p| p.get(id.to_string()))
            .map(|p| json_str(p, "category"))
            .unwrap_or_default();
        (id, Name::from(category))
    });
    let dispatch_errors = dispatch
        .and_then(|d| d.get("errors"))
        .filter(|e| e.as_array().is_some_and(|a| !a.is_empty()))
        .map(Value::to_string)
        .unwrap_or_default();
    Ok((
        id.into(),
        TaskSample {
            status: json_str(data, "status").into(),
            category: json_str(data, "category").into(),
            fleet: fleet.into(),
            robot: robot.into(),
            request_ms: json_u64(booking, "unix_millis_request_time"),
            start_ms: json_u64(data, "unix_millis_start_time"),
            finish_ms: json_u64(data, "unix_millis_finish_time"),
            estimate_ms: json_u64(data, "estimate_millis"),
            active_phase,
            dispatch_status: dispatch
                .map(|d| json_str(d, "status"))
                .unwrap_or_default()
                .into(),
            dispatch_errors,
            payload: Payload::of(data),
        },
    ))
}

fn log_entries(stream: &str, v: Option<&Value>, out: &mut Vec<(Name, LogEntry)>) {
    let Some(entries) = v.and_then(Value::as_array) else {
        return;
    };
    for e in entries {
        let Some(seq) = e.get("seq").and_then(Value::as_u64) else {
            continue;
        };
        out.push((
            stream.into(),
            LogEntry {
                seq: seq as u32,
                tier: json_str(e, "tier").into(),
                unix_millis_time: json_u64(e, "unix_millis_time").unwrap_or(0),
                text: json_str(e, "text").to_string(),
            },
        ));
    }
}

fn alert_payload(a: &Alert, unix_ms: u64) -> Payload {
    let tier = match a.tier {
        Alert::TIER_WARNING => "warning",
        Alert::TIER_ERROR => "error",
        _ => "info",
    };
    Payload::of(&serde_json::json!({
        "id": a.id,
        "unix_millis_alert_time": unix_ms,
        "title": a.title,
        "subtitle": a.subtitle,
        "message": a.message,
        "display": a.display,
        "tier": tier,
        "responses_available": a.responses_available,
        "alert_parameters": a.alert_parameters.iter().map(|p| serde_json::json!({"name": p.name, "value": p.value})).collect::<Vec<_>>(),
        "task_id": if a.task_id.is_empty() { Value::Null } else { Value::from(a.task_id.as_str()) },
    }))
}

/// The inputs of a decoded record received at `unix_ms` (receive time, for payloads that carry
/// one, like alerts).
pub fn inputs(record: &Record, unix_ms: u64) -> Result<Vec<Input>, InputError> {
    let mut out = Vec::new();
    match record {
        Record::DoorState(d) => out.push((
            (Kind::Door, d.door_name.clone()),
            InputValue::Device(DeviceSample {
                mode: i64::from(d.current_mode.value),
                payload: Payload::of(d),
            }),
        )),
        Record::LiftState(l) => out.push((
            (Kind::Lift, l.lift_name.clone()),
            InputValue::Lift(LiftSample {
                mode: l.current_mode,
                door_state: l.door_state,
                current_floor: l.current_floor.clone(),
                session_id: l.session_id.clone(),
                payload: Payload::of(l),
            }),
        )),
        Record::DispenserState(w) | Record::IngestorState(w) => {
            let kind = if matches!(record, Record::DispenserState(_)) { Kind::Dispenser } else { Kind::Ingestor };
            out.push((
                (kind, w.guid.clone()),
                InputValue::Device(DeviceSample {
                    mode: i64::from(w.mode),
                    payload: Payload::of(w),
                }),
            ));
        }
        Record::FleetState(f) => {
            for r in &f.robots {
                out.push((
                    (Kind::Robot(RobotSource::Ros), robot_name(&f.name, &r.name)),
                    InputValue::Robot(RobotSample {
                        source: RobotSource::Ros,
                        status: None,
                        mode: Some(r.mode.mode),
                        stamp: r.seq,
                        battery: Some(F64(f64::from(r.battery_percent) / 100.0)),
                        x: F64(f64::from(r.location.x)),
                        y: F64(f64::from(r.location.y)),
                        level: r.location.level_name.clone(),
                        task_id: r.task_id.clone(),
                        issues: Vec::new(),
                    }),
                ));
            }
        }
        Record::BuildingMap(m) => out.push(((Kind::BuildingMap, Name::default()), InputValue::Payload(building_map_payload(m)))),
        Record::BeaconState(b) => out.push(((Kind::Beacon, b.id.clone()), InputValue::Payload(Payload::of(b)))),
        Record::Alert(a) => out.push((
            (Kind::Alert, a.id.clone()),
            InputValue::Alert(AlertSample {
                task_id: a.task_id.clone(),
                payload: alert_payload(a, unix_ms),
            }),
        )),
        Record::AlertResponse(r) => out.push((
            (Kind::AlertResponse, r.id.clone()),
            InputValue::Payload(Payload::of(&serde_json::json!({"id": r.id, "unix_millis_response_time": unix_ms, "response": r.response}))),
        )),
        Record::DeliveryAlertRequest(d) => {
            let category = ["missing", "wrong", "obstructed", "cancelled"].get(d.category.value as usize).copied().unwrap_or("missing");
            let tier = if d.tier.value == 1 { "error" } else { "warning" };
            let action = ["waiting", "cancel", "override", "resume"].get(d.action.value as usize).copied().unwrap_or("waiting");
            out.push((
                (Kind::DeliveryAlert, d.id.clone()),
                InputValue::Payload(Payload::of(&serde_json::json!({"id": d.id, "category": category, "tier": tier, "action": action, "task_id": d.task_id, "message": d.message}))),
            ));
        }
        Record::FireAlarmTrigger(trigger) => out.push((
            (Kind::FireAlarm, Name::default()),
            InputValue::Payload(Payload::of(&serde_json::json!({"unix_millis_time": unix_ms, "trigger": trigger}))),
        )),
        Record::Json { kind, value } => match kind {
            JsonKind::FleetStateUpdate => {
                let name = value
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| invalid(*kind, "missing name"))?;
                if !value.get("robots").is_none_or(Value::is_object) {
                    return Err(invalid(*kind, "robots is not an object"));
                }
                out.push(((Kind::Fleet, name.into()), InputValue::Payload(Payload::of(value))));
                api_robots(name, value, &mut out);
            }
            JsonKind::TaskStateUpdate => {
                let (id, sample) = task_sample(value)?;
                out.push(((Kind::Task, id), InputValue::Task(sample)));
            }
            JsonKind::TaskLogUpdate => {
                let id = value
                    .get("task_id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| invalid(*kind, "missing task_id"))?;
                let mut entries = Vec::new();
                log_entries("", value.get("log"), &mut entries);
                if let Some(phases) = value.get("phases").and_then(Value::as_object) {
                    for (phase, p) in phases {
                        log_entries(phase, p.get("log"), &mut entries);
                        if let Some(events) = p.get("events").and_then(Value::as_object) {
                            for (event, log) in events {
                                log_entries(&format!("{phase}/{event}"), Some(log), &mut entries);
                            }
                        }
                    }
                }
                out.push(((Kind::TaskLog, id.into()), InputValue::Log(LogBatch { entries })));
            }
            JsonKind::FleetLogUpdate => {
                let name = value
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| invalid(*kind, "missing name"))?;
                let mut entries = Vec::new();
                if let Some(robots) = value.get("robots").and_then(Value::as_object) {
                    for (robot, log) in robots {
                        log_entries(robot, Some(log), &mut entries);
                    }
                }
                out.push(((Kind::FleetLog, name.into()), InputValue::Log(LogBatch { entries })));
            }
        },
        // Commands and their answers are not engine inputs.
        Record::DoorRequest(_)
        | Record::LiftRequest(_)
        | Record::DispenserRequest(_)
        | Record::DispenserResult(_)
        | Record::DeliveryAlertResponse(_)
        | Record::MutexGroupManualRelease(_)
        | Record::ApiRequest(_)
        | Record::ApiResponse(_)
        | Record::Other { .. } => {}
    }
    Ok(out)
}

/// The `/building_map` payload: the map with every image's bytes replaced by the URL the
/// backend serves them at (`/building_map/images/<level>/<image>`).
pub fn building_map_payload(m: &BuildingMap) -> Payload {
    // Through text, so float32 fields keep their short form (0.1, not 0.10000000149011612).
    let mut v: Value = serde_json::to_string(m)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    if let Some(levels) = v.get_mut("levels").and_then(Value::as_array_mut) {
        for level in levels {
            let level_name = json_str(level, "name").to_string();
            if let Some(images) = level.get_mut("images").and_then(Value::as_array_mut) {
                for image in images {
                    let name = json_str(image, "name").to_string();
                    if let Some(obj) = image.as_object_mut() {
                        obj.insert(
                            "data".into(),
                            Value::from(format!("/building_map/images/{level_name}/{name}")),
                        );
                    }
                }
            }
        }
    }
    Payload::of(&v)
}
