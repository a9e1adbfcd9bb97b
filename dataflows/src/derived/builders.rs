//! Test builders of engine inputs shared by the events' tests: a robot sample, a task state, a
//! door state, as the timed `(key, value, time)` upserts `harness::run_upsert` takes with
//! `Inputs::split`.

use serde_json::json;

use crate::model::input::*;
use crate::prelude::*;

/// One timed engine input.
pub type Step = (InputKey, InputValue, Time);

/// A robot sample of `source` at `t`: a new message (stamp and x change with `t`), working, at
/// `battery` (0.0 to 1.0), naming `task_id`.
pub fn robot(name: &str, source: RobotSource, task_id: &str, battery: f64, t: Time) -> Step {
    let sample = RobotSample {
        source,
        status: (source == RobotSource::Api).then_some(RobotStatus::Working),
        mode: (source == RobotSource::Ros).then_some(2),
        stamp: t,
        battery: Some(F64(battery)),
        x: F64(t as f64),
        y: F64(0.0),
        level: "L1".into(),
        task_id: task_id.into(),
        issues: Vec::new(),
    };
    (
        (Kind::Robot(source), name.into()),
        InputValue::Robot(sample),
        t,
    )
}

/// A task state update of `id` with `status` at `t` (every update is new: its payload differs).
pub fn task(id: &str, status: &str, t: Time) -> Step {
    let sample = TaskSample {
        status: status.into(),
        category: "delivery".into(),
        fleet: "f".into(),
        robot: "r".into(),
        request_ms: Some(1),
        start_ms: None,
        finish_ms: None,
        estimate_ms: None,
        active_phase: None,
        dispatch_status: "".into(),
        dispatch_errors: String::new(),
        payload: Payload::of(&json!({"status": status, "update": t})),
    };
    (
        (Kind::Task, id.into()),
        InputValue::Task(Box::new(sample)),
        t,
    )
}

/// A door state of `name` in `mode` (`DoorMode`) at `t` (a new message: its stamp is `t`).
pub fn door(name: &str, mode: i64, t: Time) -> Step {
    let sample = DeviceSample {
        mode,
        payload: Payload::of(&json!({"current_mode": {"value": mode}, "door_time": t})),
    };
    ((Kind::Door, name.into()), InputValue::Device(sample), t)
}
