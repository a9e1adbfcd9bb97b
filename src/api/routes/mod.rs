//! The REST read routes of COMPAT.md (rmf-web's api-server paths and JSON shapes) and
//! `GET /openapi.json`, all from one table, [`ROUTES`]: each entry registers its handler and
//! documents itself (summary, parameters, answers), so the OpenAPI document cannot miss a route
//! of the table. Handlers take the [`AuthUser`](super::AuthUser) extractor (401 without a valid
//! token) unless the entry says `auth: false`, read through [`super::read`] only, and answer
//! rmf-web's shapes; a missing entity is 404 `{"detail": ...}`, a bad query parameter 422 in
//! FastAPI's validation shape ([`super::query`]).

pub mod alerts;
pub mod beacons;
pub mod building_map;
pub mod doors;
pub mod fleets;
pub mod lifts;
pub mod tasks;
pub mod workcells;

use std::sync::atomic::Ordering;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::{Map, Value, json};

use super::query::QueryError;
use super::{App, AppState};
use crate::hub::Raw;

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// 404 `{"detail": ...}`.
    #[error("{0}")]
    NotFound(String),
    /// 422 in FastAPI's validation shape.
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl IntoResponse for ReadError {
    fn into_response(self) -> Response {
        match self {
            ReadError::NotFound(detail) => {
                (StatusCode::NOT_FOUND, Json(json!({ "detail": detail }))).into_response()
            }
            ReadError::Query(e) => e.into_response(),
        }
    }
}

pub type ReadResult<T> = Result<T, ReadError>;

/// `Some(value)` or 404 with `detail`.
pub fn found<T>(value: Option<T>, detail: impl FnOnce() -> String) -> ReadResult<T> {
    value.ok_or_else(|| ReadError::NotFound(detail()))
}

/// The present value of a state room as the answer, or 404 with `detail`.
pub fn room(app: &App, room: &str, detail: impl FnOnce() -> String) -> ReadResult<Json<Raw>> {
    found(super::read::value(&app.hub, room), detail).map(Json)
}

/// "Now" for relative time windows (`between=-60000`): the logical time of the data, which is
/// the wall clock when serving live and the recording's time when replaying (rmf-web uses the
/// ROS clock, which is the simulation's clock in simulation). The wall clock before any data.
pub fn now_ms(app: &App) -> u64 {
    let t = app
        .delivered
        .load(Ordering::Relaxed)
        .max(app.feed_metrics.time.load(Ordering::Relaxed));
    if t > 0 {
        t
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// The longest a read of the store waits for the writer (see [`stored_now`]).
const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits until the store holds every change a client may have seen so far (up to the time of
/// the latest batch the hub applied: it applies a batch before the writer gets it), so that a
/// read of the store never misses what a room has shown (DESIGN.md invariant 9). Immediate
/// without a store; at most [`READ_WAIT`]. False when the store is still behind then (counted
/// as `rmf_dash_store_stale_reads_total`): the caller merges the hub's state into the answer.
pub async fn stored_now(app: &App) -> bool {
    match &app.store {
        Some(store) => {
            let seen = app.hub.metrics.applied_time.load(Ordering::Acquire);
            store.stored_up_to(seen, READ_WAIT).await
        }
        None => true,
    }
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Query,
}

/// A documented query parameter (path parameters are read from the path).
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub location: In,
    /// OpenAPI schema type: `string`, `integer` or `boolean`.
    pub schema: &'static str,
    pub description: &'static str,
    pub default: Option<&'static str>,
}

const fn query(name: &'static str, schema: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: In::Query,
        schema,
        description,
        default: None,
    }
}

const fn with_default(p: Param, default: &'static str) -> Param {
    Param {
        default: Some(default),
        ..p
    }
}

const BETWEEN: &str = "Time window in unix ms: \"<from>,<to>\", or \"-<ms>\" for the last <ms> \
    milliseconds. Both ends included.";
const LIMIT: Param = query("limit", "integer", "Page size, 1 to 1000 (default 100).");
const OFFSET: Param = query("offset", "integer", "Items to skip (default 0).");
const ORDER_BY: Param = query(
    "order_by",
    "string",
    "Comma separated fields to sort by, `-` prefix for descending: id, category, \
     assigned_to, status, requester, unix_millis_request_time, unix_millis_start_time, \
     unix_millis_finish_time, label=<key>. A missing value sorts last (first when descending); \
     ties go by task id.",
);
const LOG_BETWEEN: Param = with_default(query("between", "string", BETWEEN), "-60000");

/// One route: what registers it and what documents it.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    /// The name of rmf-web's handler, from which the OpenAPI operationId is made as FastAPI
    /// makes it (so clients generated from either document share method names).
    pub name: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    pub auth: bool,
    /// Content type of a 200 answer.
    pub content: &'static str,
    /// `None` for routes registered elsewhere (`/health`, `/time`, ... in `api/mod.rs`),
    /// listed here for the document only.
    pub handler: Option<fn() -> MethodRouter<AppState>>,
    /// The permission action a command route needs (`crate::api::access`); `None` for reads.
    pub action: Option<&'static str>,
}

const JSON: &str = "application/json";

macro_rules! r {
    ($path:literal, $name:literal, $tag:literal, $summary:literal, $params:expr, $handler:expr) => {
        Route {
            method: "get",
            path: $path,
            name: $name,
            tag: $tag,
            summary: $summary,
            params: $params,
            auth: true,
            content: JSON,
            handler: Some(|| get($handler)),
            action: None,
        }
    };
}

/// Every route of this module, and the system routes for the document.
pub const ROUTES: &[Route] = &[
    // Building
    r!(
        "/building_map",
        "get_building_map",
        "Building",
        "The building map; each image's data is the URL it is served at.",
        &[],
        building_map::get_building_map
    ),
    Route {
        method: "get",
        path: "/building_map/images/{level}/{image}",
        name: "get_building_map_image",
        tag: "Building",
        summary: "An image of the building map (its bytes, with the content type of its \
            encoding). No token needed: browsers load it from an <img> URL.",
        params: &[],
        auth: false,
        content: "image/*",
        handler: Some(|| get(building_map::get_image)),
        action: None,
    },
    r!(
        "/building_map/previous_fire_alarm_trigger",
        "get_previous_fire_alarm_trigger",
        "Building",
        "The latest fire alarm trigger.",
        &[],
        building_map::get_previous_fire_alarm_trigger
    ),
    // Doors
    r!(
        "/doors",
        "get_doors",
        "Doors",
        "The doors of the building map (every level).",
        &[],
        doors::get_doors
    ),
    r!(
        "/doors/{door_name}/state",
        "get_door_state",
        "Doors",
        "A door's latest state.",
        &[],
        doors::get_door_state
    ),
    r!(
        "/doors/{door_name}/health",
        "get_door_health",
        "Doors",
        "A door's health (Healthy, Unhealthy or Dead).",
        &[],
        doors::get_door_health
    ),
    // Lifts
    r!(
        "/lifts",
        "get_lifts",
        "Lifts",
        "The lifts of the building map.",
        &[],
        lifts::get_lifts
    ),
    r!(
        "/lifts/{lift_name}/state",
        "get_lift_state",
        "Lifts",
        "A lift's latest state.",
        &[],
        lifts::get_lift_state
    ),
    r!(
        "/lifts/{lift_name}/health",
        "get_lift_health",
        "Lifts",
        "A lift's health (Healthy, Unhealthy or Dead).",
        &[],
        lifts::get_lift_health
    ),
    // Dispensers and ingestors
    r!(
        "/dispensers",
        "get_dispensers",
        "Dispensers",
        "The dispensers heard from ([{guid}]).",
        &[],
        workcells::get_dispensers
    ),
    r!(
        "/dispensers/{guid}/state",
        "get_dispenser_state",
        "Dispensers",
        "A dispenser's latest state.",
        &[],
        workcells::get_dispenser_state
    ),
    r!(
        "/dispensers/{guid}/health",
        "get_dispenser_health",
        "Dispensers",
        "A dispenser's health (Healthy, Unhealthy or Dead).",
        &[],
        workcells::get_dispenser_health
    ),
    r!(
        "/ingestors",
        "get_ingestors",
        "Ingestors",
        "The ingestors heard from ([{guid}]).",
        &[],
        workcells::get_ingestors
    ),
    r!(
        "/ingestors/{guid}/state",
        "get_ingestor_state",
        "Ingestors",
        "An ingestor's latest state.",
        &[],
        workcells::get_ingestor_state
    ),
    r!(
        "/ingestors/{guid}/health",
        "get_ingestor_health",
        "Ingestors",
        "An ingestor's health (Healthy, Unhealthy or Dead).",
        &[],
        workcells::get_ingestor_health
    ),
    // Fleets and robots
    r!(
        "/fleets",
        "get_fleets",
        "Fleets",
        "The latest state of every fleet.",
        &[],
        fleets::get_fleets
    ),
    r!(
        "/fleets/{name}/state",
        "get_fleet_state",
        "Fleets",
        "A fleet's latest state.",
        &[],
        fleets::get_fleet_state
    ),
    r!(
        "/fleets/{name}/log",
        "get_fleet_log",
        "Fleets",
        "A fleet's robot log entries in a time window (default: the last minute).",
        &[LOG_BETWEEN],
        fleets::get_fleet_log
    ),
    r!(
        "/fleets/{name}/task_queue",
        "get_fleet_task_queue",
        "Fleets",
        "A fleet's queued and underway tasks, in the order they run.",
        &[],
        fleets::get_task_queue
    ),
    r!(
        "/fleets/{name}/throughput_1m",
        "get_fleet_throughput_1m",
        "Fleets",
        "Tasks completed and failed in the current minute, robots by status (null before any).",
        &[],
        fleets::get_throughput_1m
    ),
    r!(
        "/fleets/{name}/throughput_15m",
        "get_fleet_throughput_15m",
        "Fleets",
        "Tasks completed and failed in the last 15 minutes, robots by status (null before any).",
        &[],
        fleets::get_throughput_15m
    ),
    r!(
        "/robots/{fleet}/{robot}/health",
        "get_robot_health",
        "Robots",
        "A robot's health (Healthy, Unhealthy or Dead).",
        &[],
        fleets::get_robot_health
    ),
    r!(
        "/robots/{fleet}/{robot}/task",
        "get_robot_task",
        "Robots",
        "The task a robot works on (null when none).",
        &[],
        fleets::get_robot_task
    ),
    r!(
        "/robots/{fleet}/{robot}/battery_low",
        "get_robot_battery_low",
        "Robots",
        "The robot's low-battery condition (null when its battery is not low).",
        &[],
        fleets::get_robot_battery_low
    ),
    r!(
        "/robots/{fleet}/{robot}/stuck",
        "get_robot_stuck",
        "Robots",
        "The robot's stuck condition (null when it is not stuck).",
        &[],
        fleets::get_robot_stuck
    ),
    // Tasks
    r!(
        "/tasks",
        "query_task_states",
        "Tasks",
        "Task states, filtered (every filter given must hold), sorted and paginated.",
        &[
            query("task_id", "string", "Comma separated task ids."),
            query("category", "string", "Comma separated task categories."),
            query("requester", "string", "Comma separated requester names."),
            query("assigned_to", "string", "Comma separated robot names."),
            query(
                "status",
                "string",
                "Comma separated statuses (unknown ones are ignored)."
            ),
            query(
                "label",
                "string",
                "Comma separated <key>=<value> booking labels; a task must have them all."
            ),
            query("request_time_between", "string", BETWEEN),
            query("start_time_between", "string", BETWEEN),
            query("finish_time_between", "string", BETWEEN),
            LIMIT,
            OFFSET,
            ORDER_BY,
        ],
        tasks::query_task_states
    ),
    r!(
        "/tasks/requests",
        "query_task_requests",
        "Tasks",
        "The original requests of the tasks dispatched through this server, in the order \
         of `task_ids` (unknown ones left out; at most 1000 ids).",
        &[query("task_ids", "string", "Comma separated task ids.")],
        tasks::query_task_requests
    ),
    r!(
        "/tasks/{task_id}/request",
        "get_task_request",
        "Tasks",
        "The original request of a task dispatched through this server (404 without one).",
        &[],
        tasks::get_task_request
    ),
    r!(
        "/tasks/{task_id}/state",
        "get_task_state",
        "Tasks",
        "A task's latest state.",
        &[],
        tasks::get_task_state
    ),
    r!(
        "/tasks/{task_id}/log",
        "get_task_log",
        "Tasks",
        "A task's log entries in a time window (default: the last minute).",
        &[LOG_BETWEEN],
        tasks::get_task_log
    ),
    r!(
        "/tasks/{task_id}/booking_label",
        "get_task_booking_label",
        "Tasks",
        "A task's booking labels as an object {key: value}.",
        &[],
        tasks::get_task_booking_label
    ),
    // Alerts
    r!(
        "/alerts/request/{alert_id}",
        "get_alert",
        "Alerts",
        "An alert.",
        &[],
        alerts::get_alert
    ),
    r!(
        "/alerts/request/{alert_id}/response",
        "get_alert_response",
        "Alerts",
        "The response to an alert.",
        &[],
        alerts::get_alert_response
    ),
    r!(
        "/alerts/requests/task/{task_id}",
        "get_alerts_of_task",
        "Alerts",
        "The alerts of a task.",
        &[with_default(
            query(
                "unresponded",
                "boolean",
                "Only the alerts that expect a response and have none."
            ),
            "true"
        )],
        alerts::get_alerts_of_task
    ),
    r!(
        "/alerts/unresponded_requests",
        "get_unresponded_alerts",
        "Alerts",
        "The alerts that expect a response and have none.",
        &[],
        alerts::get_unresponded_alerts
    ),
    // Beacons
    r!(
        "/beacons",
        "get_beacons",
        "Beacons",
        "The latest state of every beacon.",
        &[],
        beacons::get_beacons
    ),
    r!(
        "/beacons/{beacon_id}",
        "get_beacon",
        "Beacons",
        "A beacon's latest state.",
        &[],
        beacons::get_beacon
    ),
    // This document, and the system routes of api/mod.rs (documented only).
    Route {
        method: "get",
        path: "/openapi.json",
        name: "openapi",
        tag: "Default",
        summary: "This OpenAPI document.",
        params: &[],
        auth: false,
        content: JSON,
        handler: Some(|| get(openapi)),
        action: None,
    },
    system(
        "/health",
        "health",
        "Readiness: engine (and store) state; 503 when not ready.",
        false,
        JSON,
    ),
    system(
        "/metrics",
        "metrics",
        "Prometheus metrics.",
        false,
        "text/plain",
    ),
    system("/time", "get_time", "Server time in unix ms.", false, JSON),
    system("/user", "get_user", "The user of the token.", true, JSON),
    system(
        "/permissions",
        "get_effective_permissions",
        "The user's permissions.",
        true,
        JSON,
    ),
];

const fn system(
    path: &'static str,
    name: &'static str,
    summary: &'static str,
    auth: bool,
    content: &'static str,
) -> Route {
    Route {
        method: "get",
        path,
        name,
        tag: "Default",
        summary,
        params: &[],
        auth,
        content,
        handler: None,
        action: None,
    }
}

/// Whether a matched route path (possibly under a prefix) is a public entry of [`ROUTES`]
/// (`auth: false`).
pub fn is_public(matched: &str) -> bool {
    ROUTES
        .iter()
        .find(|r| matched.ends_with(r.path))
        .is_some_and(|r| !r.auth)
}

/// The routes of the table that have a handler here, and those of the derived rooms.
pub fn router() -> axum::Router<AppState> {
    register(ROUTES).merge(register(derived_routes()))
}

/// `GET` of every registered state room that has no route of the table (the rooms a site's new
/// derived events add: `/doors/{name}/flapping`, ...): its present value, `null` when it holds
/// no record. Read rules apply by path, as on every read route.
pub fn derived_routes() -> &'static [Route] {
    static DERIVED: std::sync::LazyLock<Vec<Route>> = std::sync::LazyLock::new(|| {
        let shape = |path: &str| fill_params(path);
        let taken: std::collections::HashSet<String> =
            documented().map(|r| shape(r.path)).collect();
        let mut routes: Vec<Route> = Vec::new();
        for d in rmf_dash_dataflows::derived::registry() {
            let kind = d.kind == rmf_dash_dataflows::derived::RoomKind::State;
            if kind && !taken.contains(&shape(d.room)) && !routes.iter().any(|r| r.path == d.room) {
                routes.push(Route {
                    method: "get",
                    path: d.room,
                    name: d.name,
                    tag: "Derived",
                    summary: "The present value of a derived event's room (null when it holds no \
                        record; `rmf-dash events` describes it).",
                    params: &[],
                    auth: true,
                    content: JSON,
                    handler: Some(|| get(derived_room)),
                    action: None,
                });
            }
        }
        routes
    });
    &DERIVED
}

/// A path template with every parameter spelled `{}` (two routes of one shape conflict).
fn fill_params(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// `GET <room>` of [`derived_routes`].
async fn derived_room(
    _: super::AuthUser,
    axum::extract::State(app): axum::extract::State<AppState>,
    uri: axum::http::Uri,
) -> Json<Option<Raw>> {
    let room = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy();
    Json(super::read::value(&app.hub, &room))
}

/// The routes of `table` that have a handler.
pub fn register(table: &[Route]) -> axum::Router<AppState> {
    table
        .iter()
        .filter_map(|r| r.handler.map(|h| (r.path, h)))
        .fold(axum::Router::new(), |router, (path, handler)| {
            router.route(path, handler())
        })
}

/// FastAPI's operationId: handler name, path with every non-word character as `_`, method.
fn operation_id(r: &Route) -> String {
    let path: String = r
        .path
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}{path}_{}", r.name, r.method)
}

/// The path parameters of a path template.
fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn operation(r: &Route) -> Value {
    let mut params: Vec<Value> = path_params(r.path)
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    params.extend(r.params.iter().map(|p| {
        let mut schema = json!({"type": p.schema});
        if let Some(d) = p.default {
            schema["default"] = Value::from(d);
        }
        let location = match p.location {
            In::Query => "query",
        };
        json!({"name": p.name, "in": location, "required": false, "schema": schema,
            "description": p.description})
    }));
    let error = |description: &str| json!({"description": description, "content": {JSON: {"schema": {"$ref": "#/components/schemas/HTTPError"}}}});
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "Successful Response", "content": {r.content: {}}}),
    );
    if r.auth {
        responses.insert("401".into(), error("Missing or invalid token"));
    }
    if r.path.contains('{') {
        responses.insert("404".into(), error("Not found"));
    }
    if !r.params.is_empty() {
        responses.insert(
            "422".into(),
            json!({"description": "Validation Error",
                "content": {JSON: {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}),
        );
    }
    let mut op = json!({
        "tags": [r.tag],
        "summary": r.summary,
        "operationId": operation_id(r),
        "parameters": params,
        "responses": responses,
    });
    if r.auth {
        op["security"] = json!([{"bearer": []}]);
    }
    op
}

/// Every documented route: this table, the commands, the users' and scheduled tasks' routes.
pub fn documented() -> impl Iterator<Item = &'static Route> + Clone {
    ROUTES
        .iter()
        .chain(super::commands::COMMANDS)
        .chain(crate::users::routes::DOCS)
        .chain(crate::scheduled::routes::DOCS)
}

/// The OpenAPI 3 document of [`documented`] routes.
pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for r in documented().chain(derived_routes()) {
        let item = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        item[r.method] = operation(r);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "rmf-dash",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Real-time backend for Open-RMF dashboards; the REST API of \
                rmf-web's api-server. Live updates: socket.io rooms of the same paths.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "HTTPError": {"type": "object", "properties": {"detail": {"type": "string"}},
                    "required": ["detail"]},
                "HTTPValidationError": {"type": "object", "properties": {"detail": {
                    "type": "array", "items": {"type": "object", "properties": {
                        "type": {"type": "string"},
                        "loc": {"type": "array", "items": {"type": "string"}},
                        "msg": {"type": "string"},
                        "input": {"type": "string"}}}}}},
            },
        },
    })
}

/// `GET /openapi.json` (public, as in rmf-web: API clients and docs load it without a token).
pub async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_reads_are_the_map_images_and_the_document() {
        assert!(is_public("/building_map/images/{level}/{image}"));
        assert!(is_public("/api/building_map/images/{level}/{image}"));
        assert!(is_public("/api/openapi.json"));
        assert!(!is_public("/api/building_map"));
        assert!(!is_public("/doors/{door_name}/state"));
        assert!(!is_public("/tasks"));
    }

    #[test]
    fn operation_ids_are_fastapi_s() {
        let r = ROUTES
            .iter()
            .find(|r| r.path == "/tasks/{task_id}/booking_label");
        assert_eq!(
            r.map(operation_id).as_deref(),
            Some("get_task_booking_label_tasks__task_id__booking_label_get")
        );
    }

    #[test]
    fn every_route_is_documented_once() {
        let doc = openapi_document();
        let mut seen = std::collections::BTreeSet::new();
        for r in documented() {
            assert!(seen.insert((r.method, r.path)), "{} twice", r.path);
            let op = &doc["paths"][r.path][r.method];
            assert_eq!(op["summary"], r.summary);
            let documented: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str())
                .collect();
            let expected: Vec<&str> = path_params(r.path)
                .chain(r.params.iter().map(|p| p.name))
                .collect();
            assert_eq!(documented, expected, "{}", r.path);
            assert_eq!(op["security"].is_array(), r.auth, "{}", r.path);
        }
        let all = documented();
        let ids: std::collections::BTreeSet<String> = all.clone().map(operation_id).collect();
        assert_eq!(ids.len(), all.count());
    }
}
