//! Fleets and robots: `GET /fleets` (the latest fleet_state of every fleet, by name),
//! `GET /fleets/{name}/state`, `GET /fleets/{name}/log?between=` (rmf-web's `FleetLog`
//! `{name, log, robots: {robot: [entry]}}`, default window the last minute), and the derived
//! views `GET /fleets/{name}/task_queue|throughput_1m|throughput_15m` and
//! `GET /robots/{fleet}/{robot}/health|task|battery_low|stuck`.
//!
//! A derived view that holds only while something is true (a robot's task, low battery, stuck;
//! a fleet's throughput before its first count) answers `null` when it does not hold and the
//! robot or fleet is known, and 404 for an unknown robot or fleet; an empty task queue is
//! `{fleet, tasks: []}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ReadResult, found, now_ms, room};
use crate::api::query::Params;
use crate::api::{App, AppState, AuthUser, read};
use crate::hub::Raw;

pub async fn get_fleets(_: AuthUser, State(app): State<AppState>) -> Json<Vec<Raw>> {
    Json(read::fleets(&app.hub))
}

pub async fn get_fleet_state(
    _: AuthUser,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> ReadResult<Json<Raw>> {
    room(&app, &format!("/fleets/{name}/state"), || {
        format!("no state of fleet {name}")
    })
}

pub async fn get_fleet_log(
    _: AuthUser,
    State(app): State<AppState>,
    Path(name): Path<String>,
    params: Params,
) -> ReadResult<Json<Value>> {
    let window = params.between("between", Some("-60000"), now_ms(&app))?;
    let recent = read::fleet_log_streams(&app.hub, &name, window);
    let stored = match &app.history {
        Some(h) => h.fleet_log(&name, window).await.unwrap_or_else(|e| {
            tracing::warn!(error = %crate::error::chain(&e), "fleet log answered from memory");
            Default::default()
        }),
        None => Default::default(),
    };
    // A fleet is known by its state or robots, or by what the store holds of it.
    let streams = match recent {
        Some(recent) => Some(read::merge_streams(recent, stored)),
        None => (!stored.is_empty()).then_some(stored),
    };
    found(streams, || format!("fleet {name} not found")).map(|s| Json(read::fleet_log(&name, s)))
}

/// A fleet's view: its value, `absent` when the fleet is known but the view has none, 404 for
/// an unknown fleet.
fn fleet_view(app: &App, name: &str, view: &str, absent: Value) -> ReadResult<Response> {
    if let Some(v) = read::value(&app.hub, &format!("/fleets/{name}/{view}")) {
        return Ok(Json(v).into_response());
    }
    found(read::fleet_known(&app.hub, name).then_some(absent), || {
        format!("fleet {name} not found")
    })
    .map(|v| Json(v).into_response())
}

pub async fn get_task_queue(
    _: AuthUser,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> ReadResult<Response> {
    let empty = json!({"fleet": name, "tasks": []});
    fleet_view(&app, &name, "task_queue", empty)
}

pub async fn get_throughput_1m(
    _: AuthUser,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> ReadResult<Response> {
    fleet_view(&app, &name, "throughput_1m", Value::Null)
}

pub async fn get_throughput_15m(
    _: AuthUser,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> ReadResult<Response> {
    fleet_view(&app, &name, "throughput_15m", Value::Null)
}

/// A robot's view: its value, `null` when the robot is known but the view has none, 404 for an
/// unknown robot.
fn robot_view(app: &App, fleet: &str, robot: &str, view: &str) -> ReadResult<Json<Option<Raw>>> {
    if let Some(v) = read::value(&app.hub, &format!("/robots/{fleet}/{robot}/{view}")) {
        return Ok(Json(Some(v)));
    }
    found(
        read::robot_known(&app.hub, fleet, robot).then_some(None),
        || format!("robot {robot} of fleet {fleet} not found"),
    )
    .map(Json)
}

pub async fn get_robot_health(
    _: AuthUser,
    State(app): State<AppState>,
    Path((fleet, robot)): Path<(String, String)>,
) -> ReadResult<Json<Raw>> {
    room(&app, &format!("/robots/{fleet}/{robot}/health"), || {
        format!("robot {robot} of fleet {fleet} not found")
    })
}

pub async fn get_robot_task(
    _: AuthUser,
    State(app): State<AppState>,
    Path((fleet, robot)): Path<(String, String)>,
) -> ReadResult<Json<Option<Raw>>> {
    robot_view(&app, &fleet, &robot, "task")
}

pub async fn get_robot_battery_low(
    _: AuthUser,
    State(app): State<AppState>,
    Path((fleet, robot)): Path<(String, String)>,
) -> ReadResult<Json<Option<Raw>>> {
    robot_view(&app, &fleet, &robot, "battery_low")
}

pub async fn get_robot_stuck(
    _: AuthUser,
    State(app): State<AppState>,
    Path((fleet, robot)): Path<(String, String)>,
) -> ReadResult<Json<Option<Raw>>> {
    robot_view(&app, &fleet, &robot, "stuck")
}
