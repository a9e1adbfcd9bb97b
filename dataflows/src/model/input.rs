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
use super::{JsonKind, Record, api};
use std::borrow::Cow;

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

/// An entity name (door, lift, fleet/robot, task id, level, ...): shared text, so that clones
/// through the dataflow are a reference-count increment; ordered and hashed by its text.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(Arc::from(s))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(Arc::from(s))
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name(Arc::from(s.as_str()))
    }
}

impl From<CompactString> for Name {
    fn from(s: CompactString) -> Self {
        Name(Arc::from(s.as_str()))
    }
}

impl From<&CompactString> for Name {
    fn from(s: &CompactString) -> Self {
        Name(Arc::from(s.as_str()))
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

/// Interns the names that recur in every message (robots, fleets, levels, devices) so that
/// turning a message into inputs does not allocate for them. Task ids are not interned (they
/// never stop coming).
#[derive(Default)]
pub struct Names {
    known: rustc_hash::FxHashMap<Box<str>, Name>,
    scratch: String,
}

impl Names {
    /// At most this many names are kept (a bound against unbounded inputs); beyond, names are
    /// allocated as they come.
    pub const LIMIT: usize = 1 << 20;

    /// Names kept.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    pub fn get(&mut self, s: &str) -> Name {
        if let Some(n) = self.known.get(s) {
            return n.clone();
        }
        let n = Name::from(s);
        if self.known.len() < Self::LIMIT {
            self.known.insert(Box::from(s), n.clone());
        }
        n
    }

    /// The name `fleet/robot`.
    pub fn robot(&mut self, fleet: &str, robot: &str) -> Name {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.push_str(fleet);
        scratch.push('/');
        scratch.push_str(robot);
        let n = self.get(&scratch);
        self.scratch = scratch;
        n
    }
}

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

impl TaskSample {
    /// Whether the task has ended (RMF's final statuses): nothing more is expected of it.
    pub fn ended(&self) -> bool {
        matches!(
            self.status.as_ref(),
            "completed" | "failed" | "canceled" | "killed"
        )
    }
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

    /// Robot samples are only read by keyed operators, which ignore retractions: the engine
    /// appends them (the last of a key per time, a sample identical to the key's previous one
    /// skipped) instead of sending `-old +new`, halving the traffic of the busiest input.
    pub fn is_sample(self) -> bool {
        matches!(self, Kind::Robot(_))
    }
}

/// An engine input value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum InputValue {
    Device(DeviceSample),
    Lift(LiftSample),
    Robot(RobotSample),
    /// Boxed: a task sample is large and rare next to robot samples, and every input element
    /// is as large as the largest variant.
    Task(Box<TaskSample>),
    Log(LogBatch),
    Alert(AlertSample),
    Payload(Payload),
}

/// Upsert key of an input: kind and entity (`fleet/robot` for robots, `""` for singletons).
pub type InputKey = (Kind, Name);

/// One engine input.
pub type Input = (InputKey, InputValue);

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
fn api_robots(fleet: &api::FleetState<'_>, names: &mut Names, out: &mut Vec<Input>) {
    for (name, r) in fleet.robots.iter().flatten() {
        let loc = r.location.as_ref();
        // A missing location is NaN: it neither moves nor anchors a robot.
        let num = |v: Option<f64>| F64(v.unwrap_or(f64::NAN));
        let issues = r
            .issues
            .iter()
            .flatten()
            .map(|i| {
                let detail = i.detail.map(|d| {
                    serde_json::from_str::<String>(d.get()).unwrap_or_else(|_| d.get().to_string())
                });
                format!(
                    "{}: {}",
                    i.category.as_deref().unwrap_or_default(),
                    detail.unwrap_or_default()
                )
            })
            .collect();
        let sample = RobotSample {
            source: RobotSource::Api,
            status: r.status.as_deref().and_then(RobotStatus::parse),
            mode: None,
            stamp: r.unix_millis_time.unwrap_or(0),
            battery: r.battery.map(F64),
            x: num(loc.and_then(|l| l.x)),
            y: num(loc.and_then(|l| l.y)),
            level: names.get(loc.and_then(|l| l.map.as_deref()).unwrap_or_default()),
            task_id: r.task_id.as_deref().unwrap_or_default().into(),
            issues,
        };
        out.push((
            (
                Kind::Robot(RobotSource::Api),
                names.robot(&fleet.name, name),
            ),
            InputValue::Robot(sample),
        ));
    }
}

/// The entity name of a robot input: `fleet/robot`.
pub fn robot_name(fleet: &str, robot: &str) -> Name {
    Name::from(format!("{fleet}/{robot}"))
}

/// Splits `fleet/robot` (fleet names contain no `/` in RMF).
pub fn split_robot(name: &str) -> RobotKey {
    match name.split_once('/') {
        Some((f, r)) => (f.into(), r.into()),
        None => (name.into(), Name::default()),
    }
}

fn task_sample(text: &Arc<str>) -> Result<(Name, TaskSample), InputError> {
    let k = JsonKind::TaskStateUpdate;
    let t: api::TaskState = serde_json::from_str(text).map_err(|e| invalid(k, e.to_string()))?;
    if t.booking.id.is_empty() {
        return Err(invalid(k, "empty booking.id"));
    }
    let nonempty =
        |c: &Option<Cow<str>>| c.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let assigned = t.assigned_to.as_ref();
    let assignment = t.dispatch.as_ref().and_then(|d| d.assignment.as_ref());
    let fleet = assigned
        .and_then(|a| nonempty(&a.group))
        .or_else(|| assignment.and_then(|a| nonempty(&a.fleet_name)))
        .unwrap_or_default();
    let robot = assigned
        .and_then(|a| nonempty(&a.name))
        .or_else(|| assignment.and_then(|a| nonempty(&a.expected_robot_name)))
        .unwrap_or_default();
    let active_phase = t.active.map(|id| {
        let category = t
            .phases
            .as_ref()
            .and_then(|p| p.get(id.to_string().as_str()))
            .and_then(|p| p.category.as_deref())
            .unwrap_or_default();
        (id, Name::from(category))
    });
    let dispatch_errors = t
        .dispatch
        .as_ref()
        .and_then(|d| d.errors)
        .map(|e| e.get().trim())
        .filter(|e| e.starts_with('[') && *e != "[]" && e.len() > 2)
        .map(str::to_string)
        .unwrap_or_default();
    Ok((
        Name::from(&*t.booking.id),
        TaskSample {
            status: t.status.as_deref().unwrap_or_default().into(),
            category: t.category.as_deref().unwrap_or_default().into(),
            fleet: fleet.into(),
            robot: robot.into(),
            request_ms: t.booking.unix_millis_request_time,
            start_ms: t.unix_millis_start_time,
            finish_ms: t.unix_millis_finish_time,
            estimate_ms: t.estimate_millis,
            active_phase,
            dispatch_status: t
                .dispatch
                .as_ref()
                .and_then(|d| d.status.as_deref())
                .unwrap_or_default()
                .into(),
            dispatch_errors,
            payload: shaped(text, super::shape::task_state),
        },
    ))
}

/// The document rmf-web would send of an adapter's JSON `text` (see [`super::shape`]).
fn shaped(text: &Arc<str>, shape: fn(&str) -> Option<String>) -> Payload {
    Payload(shape(text).map_or_else(|| text.clone(), Arc::from))
}

fn log_entries(stream: &str, v: Option<&Vec<api::LogEntry<'_>>>, out: &mut Vec<(Name, LogEntry)>) {
    for e in v.into_iter().flatten() {
        let Some(seq) = e.seq else { continue };
        out.push((
            stream.into(),
            LogEntry {
                seq: seq as u32,
                tier: e.tier.as_deref().unwrap_or_default().into(),
                unix_millis_time: e.unix_millis_time.unwrap_or(0),
                text: e.text.as_deref().unwrap_or_default().to_string(),
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
pub fn inputs(record: &Record, unix_ms: u64, names: &mut Names) -> Result<Vec<Input>, InputError> {
    let mut out = Vec::new();
    match record {
        Record::DoorState(d) => out.push((
            (Kind::Door, names.get(&d.door_name)),
            InputValue::Device(DeviceSample {
                mode: i64::from(d.current_mode.value),
                payload: Payload::of(d),
            }),
        )),
        Record::LiftState(l) => out.push((
            (Kind::Lift, names.get(&l.lift_name)),
            InputValue::Lift(LiftSample {
                mode: l.current_mode,
                door_state: l.door_state,
                current_floor: names.get(&l.current_floor),
                session_id: names.get(&l.session_id),
                payload: Payload::of(l),
            }),
        )),
        Record::DispenserState(w) | Record::IngestorState(w) => {
            let kind = if matches!(record, Record::DispenserState(_)) { Kind::Dispenser } else { Kind::Ingestor };
            out.push((
                (kind, names.get(&w.guid)),
                InputValue::Device(DeviceSample {
                    mode: i64::from(w.mode),
                    payload: Payload::of(w),
                }),
            ));
        }
        Record::FleetState(f) => {
            for r in &f.robots {
                out.push((
                    (Kind::Robot(RobotSource::Ros), names.robot(&f.name, &r.name)),
                    InputValue::Robot(RobotSample {
                        source: RobotSource::Ros,
                        status: None,
                        mode: Some(r.mode.mode),
                        stamp: r.seq,
                        battery: Some(F64(f64::from(r.battery_percent) / 100.0)),
                        x: F64(f64::from(r.location.x)),
                        y: F64(f64::from(r.location.y)),
                        level: names.get(&r.location.level_name),
                        task_id: Name::from(&r.task_id),
                        issues: Vec::new(),
                    }),
                ));
            }
        }
        Record::BuildingMap(m) => out.push(((Kind::BuildingMap, Name::default()), InputValue::Payload(building_map_payload(m)))),
        Record::BeaconState(b) => out.push(((Kind::Beacon, names.get(&b.id)), InputValue::Payload(Payload::of(b)))),
        Record::Alert(a) => out.push((
            (Kind::Alert, names.get(&a.id)),
            InputValue::Alert(AlertSample {
                task_id: Name::from(&a.task_id),
                payload: alert_payload(a, unix_ms),
            }),
        )),
        Record::AlertResponse(r) => out.push((
            (Kind::AlertResponse, names.get(&r.id)),
            InputValue::Payload(Payload::of(&serde_json::json!({"id": r.id, "unix_millis_response_time": unix_ms, "response": r.response}))),
        )),
        Record::DeliveryAlertRequest(d) => {
            let category = ["missing", "wrong", "obstructed", "cancelled"].get(d.category.value as usize).copied().unwrap_or("missing");
            let tier = if d.tier.value == 1 { "error" } else { "warning" };
            let action = ["waiting", "cancel", "override", "resume"].get(d.action.value as usize).copied().unwrap_or("waiting");
            out.push((
                (Kind::DeliveryAlert, names.get(&d.id)),
                InputValue::Payload(Payload::of(&serde_json::json!({"id": d.id, "category": category, "tier": tier, "action": action, "task_id": d.task_id, "message": d.message}))),
            ));
        }
        Record::FireAlarmTrigger(trigger) => out.push((
            (Kind::FireAlarm, Name::default()),
            InputValue::Payload(Payload::of(&serde_json::json!({"unix_millis_time": unix_ms, "trigger": trigger}))),
        )),
        Record::Json { kind, data } => match kind {
            JsonKind::FleetStateUpdate => {
                let f: api::FleetState = serde_json::from_str(data).map_err(|e| invalid(*kind, e.to_string()))?;
                if f.name.is_empty() {
                    return Err(invalid(*kind, "empty name"));
                }
                out.push(((Kind::Fleet, names.get(&f.name)), InputValue::Payload(shaped(data, super::shape::fleet_state))));
                api_robots(&f, names, &mut out);
            }
            JsonKind::TaskStateUpdate => {
                let (id, sample) = task_sample(data)?;
                out.push(((Kind::Task, id), InputValue::Task(Box::new(sample))));
            }
            JsonKind::TaskLogUpdate => {
                let l: api::TaskLog = serde_json::from_str(data).map_err(|e| invalid(*kind, e.to_string()))?;
                if l.task_id.is_empty() {
                    return Err(invalid(*kind, "empty task_id"));
                }
                let mut entries = Vec::new();
                log_entries("", l.log.as_ref(), &mut entries);
                for (phase, p) in l.phases.iter().flatten() {
                    log_entries(phase, p.log.as_ref(), &mut entries);
                    for (event, log) in p.events.iter().flatten() {
                        log_entries(&format!("{phase}/{event}"), Some(log), &mut entries);
                    }
                }
                out.push(((Kind::TaskLog, Name::from(&*l.task_id)), InputValue::Log(LogBatch { entries })));
            }
            JsonKind::FleetLogUpdate => {
                let l: api::FleetLog = serde_json::from_str(data).map_err(|e| invalid(*kind, e.to_string()))?;
                if l.name.is_empty() {
                    return Err(invalid(*kind, "empty name"));
                }
                let mut entries = Vec::new();
                for (robot, log) in l.robots.iter().flatten() {
                    log_entries(robot, Some(log), &mut entries);
                }
                out.push(((Kind::FleetLog, names.get(&l.name)), InputValue::Log(LogBatch { entries })));
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
