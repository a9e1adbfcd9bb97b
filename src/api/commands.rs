//! The command routes (COMPAT.md ★): what users ask of RMF, sent through the [`RmfLink`] with
//! the request bodies, query parameters, answers and status codes of rmf-web's api-server
//! (`routes/doors.py`, `lifts.py`, `tasks/tasks.py`, `fleets.py`, `alerts.py`,
//! `building_map.py`, `delivery_alerts.py`).
//!
//! - Bodies are checked against the shapes of rmf-web's pydantic models; an invalid body or
//!   query is answered 422 with FastAPI's `{"detail": [{type, loc, msg}]}`. The bodies of the
//!   commands on an existing task (cancel, kill, interrupt, resume, rewind, skip, undo skip)
//!   reject unknown fields (422 `extra_forbidden`), as the schemas of RMF's task API do: a
//!   field the server would not act on must not look as if it counted (a `request.labels` once
//!   chose the permission group). Other bodies ignore unknown fields, as rmf-web; nothing
//!   unknown is forwarded to RMF (the request is re-serialized without it and without null
//!   fields).
//! - Task API calls pass RMF's JSON answer back as the response body. A dispatch or robot task
//!   that RMF refuses (`success` not true) is 400 with that body; the other task requests are
//!   200 whatever RMF says, as in rmf-web; no answer within the task timeout is 504 naming the
//!   request and the timeout; no link is 503.
//! - Alerts created here and responses to alerts are fed to the engine (live records), which
//!   shows them in `/alerts/requests` and `/alerts/responses`; the alert state the 400/409 rules
//!   need is read back from those rooms' recent tails.
//! - `/_loopback/published` (GET, DELETE) shows what the loopback link published (only with
//!   `--rmf-link loopback`): every user's commands, so admins only (403 otherwise; with
//!   `--no-auth` the stub user is an admin).
//!
//! [`RmfLink`]: crate::rmf_link::RmfLink

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use rmf_dash_dataflows::model::Record;
use rmf_dash_dataflows::model::ros::{
    Alert, AlertParameter, AlertResponse, DeliveryAlert, EnumValue,
};

pub use super::body::Body;
use super::body::invalid;
use super::routes::{In, Param, Route};
use super::{ApiError, AppState, AuthUser};
use crate::ingest::feed::{Feed, Source, Stamp};
use crate::rmf_link::LinkError;

/// How long a command that feeds the engine waits for its record to show in the room.
const VISIBLE_WITHIN: Duration = Duration::from_secs(2);

macro_rules! command {
    ($path:literal, $name:literal, $tag:literal, $action:literal, $summary:literal, $params:expr, $handler:expr) => {
        Route {
            method: "post",
            path: $path,
            name: $name,
            tag: $tag,
            summary: $summary,
            params: $params,
            auth: true,
            content: "application/json",
            handler: Some(|| post($handler)),
            action: Some($action),
        }
    };
}

const fn q(name: &'static str, schema: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: In::Query,
        schema,
        description,
        default: None,
    }
}

const ROBOT_NAME: Param = q("robot_name", "string", "The robot.");

/// The command routes (the ★ routes of COMPAT.md): registered, documented and permission-checked
/// from this table.
pub const COMMANDS: &[Route] = &[
    command!(
        "/doors/{door_name}/request",
        "post_door_request",
        "Doors",
        "door_request",
        "Body `{mode: 0|1|2}`: a DoorRequest on `adapter_door_requests`.",
        &[],
        door_request
    ),
    command!(
        "/lifts/{lift_name}/request",
        "_post_lift_request",
        "Lifts",
        "lift_request",
        "Body `{request_type, door_mode, destination, additional_session_ids?}`: a LiftRequest \
            on `adapter_lift_requests`.",
        &[],
        lift_request
    ),
    command!(
        "/tasks/dispatch_task",
        "post_dispatch_task",
        "Tasks",
        "task_submit",
        "Body: a `dispatch_task_request`; RMF's answer (the task state), 400 when refused, 504 \
            when RMF does not answer in time.",
        &[],
        dispatch_task
    ),
    command!(
        "/tasks/robot_task",
        "post_robot_task",
        "Tasks",
        "task_submit",
        "Body: a `robot_task_request`; RMF's answer as for dispatch.",
        &[],
        robot_task
    ),
    command!(
        "/tasks/cancel_task",
        "post_cancel_task",
        "Tasks",
        "task_cancel",
        "Body: a `cancel_task_request`; RMF's answer.",
        &[],
        simple::<TaskIdRequest<CancelTaskType>>
    ),
    command!(
        "/tasks/kill_task",
        "post_kill_task",
        "Tasks",
        "task_cancel",
        "Body: a `kill_task_request`; RMF's answer.",
        &[],
        simple::<TaskIdRequest<KillTaskType>>
    ),
    command!(
        "/tasks/interrupt_task",
        "post_interrupt_task",
        "Tasks",
        "task_interrupt",
        "Body: an `interrupt_task_request`; RMF's answer.",
        &[],
        simple::<TaskIdRequest<InterruptTaskType>>
    ),
    command!(
        "/tasks/resume_task",
        "post_resume_task",
        "Tasks",
        "task_resume",
        "Body: a `resume_task_request`; RMF's answer.",
        &[],
        simple::<TokensRequest<ResumeTaskType>>
    ),
    command!(
        "/tasks/rewind_task",
        "post_rewind_task",
        "Tasks",
        "task_rewind",
        "Body: a `rewind_task_request`; RMF's answer.",
        &[],
        simple::<RewindTaskRequest>
    ),
    command!(
        "/tasks/skip_phase",
        "post_skip_phase",
        "Tasks",
        "task_skip",
        "Body: a `task_phase_skip_request`; RMF's answer.",
        &[],
        simple::<SkipPhaseRequest>
    ),
    command!(
        "/tasks/undo_skip_phase",
        "post_undo_skip_phase",
        "Tasks",
        "task_skip",
        "Body: an `undo_phase_skip_request`; RMF's answer.",
        &[],
        simple::<TokensRequest<UndoPhaseSkipType>>
    ),
    command!(
        "/fleets/{name}/decommission",
        "decommission_robot",
        "Fleets",
        "robot_commission",
        "A robot commission request taking the robot out of service; 400 when RMF refused.",
        &[
            ROBOT_NAME,
            q(
                "reassign_tasks",
                "boolean",
                "Give its queued tasks to other robots."
            ),
            q(
                "allow_idle_behavior",
                "boolean",
                "Let it keep its idle behavior."
            ),
        ],
        decommission
    ),
    command!(
        "/fleets/{name}/recommission",
        "recommission_robot",
        "Fleets",
        "robot_commission",
        "A robot commission request putting the robot back in service; 400 when RMF refused.",
        &[ROBOT_NAME],
        recommission
    ),
    command!(
        "/fleets/{name}/unlock_mutex_group",
        "unlock_mutex_group",
        "Fleets",
        "mutex_release",
        "A MutexGroupManualRelease of a group the robot holds (400 otherwise).",
        &[
            ROBOT_NAME,
            q("mutex_group", "string", "The group to release.")
        ],
        unlock_mutex_group
    ),
    command!(
        "/alerts/request",
        "create_new_alert",
        "Alerts",
        "alert_create",
        "Body: an alert request; 201 with it, 409 when its id exists.",
        &[],
        create_alert
    ),
    command!(
        "/alerts/request/{alert_id}/respond",
        "respond_to_alert",
        "Alerts",
        "alert_respond",
        "An AlertResponse to RMF; 201, 404 for an unknown alert, 400 for a response it does \
            not offer, 409 when already answered.",
        &[q(
            "response",
            "string",
            "One of the alert's responses_available."
        )],
        respond_to_alert
    ),
    command!(
        "/delivery_alerts/{delivery_alert_id}/response",
        "respond_to_delivery_alert",
        "Delivery Alerts",
        "alert_respond",
        "A DeliveryAlert on `delivery_alert_response` (deprecated in rmf-web for /alerts).",
        &[
            q(
                "category",
                "string",
                "missing, wrong, obstructed or cancelled."
            ),
            q("tier", "string", "warning or error."),
            q("task_id", "string", "The task."),
            q("action", "string", "waiting, cancel, override or resume."),
            q("message", "string", "Text for the operator."),
        ],
        respond_to_delivery_alert
    ),
    command!(
        "/building_map/reset_fire_alarm_trigger",
        "reset_fire_alarm_trigger",
        "Building",
        "fire_alarm_reset",
        "Resets the fire alarm trigger (`{unix_millis_time, trigger: false}`).",
        &[],
        reset_fire_alarm_trigger
    ),
];

/// The command routes; `loopback` adds the loopback link's test routes.
pub fn routes(loopback: bool) -> axum::Router<AppState> {
    let routes = super::routes::register(COMMANDS);
    if loopback {
        routes.route(
            "/_loopback/published",
            get(loopback_published).delete(loopback_clear),
        )
    } else {
        routes
    }
}

// ---------------------------------------------------------------------------------------------
// Validation (FastAPI's 422)

/// Why a command was not carried out: `{"detail": ...}` with a status (FastAPI's shape: a
/// string, a list of validation errors, or an object).
#[derive(Debug)]
pub struct Reject(pub StatusCode, pub Value);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"detail": self.1}))).into_response()
    }
}

fn unprocessable(errors: Vec<Value>) -> Reject {
    Reject(StatusCode::UNPROCESSABLE_ENTITY, Value::Array(errors))
}

/// Parses a JSON body into `T` within the process's JSON bounds, or the answer naming where it
/// is wrong (the core of [`Body`], which every route with a body takes).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Reject> {
    super::body::decode(bytes, &crate::json_limits::limits()).map_err(|e| {
        let status = match e {
            super::body::BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Reject(status, e.detail())
    })
}

/// Query parameters (the last of repeated names wins, as in Starlette).
struct Query(HashMap<String, String>);

fn decode_component(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        let mut params = HashMap::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(decode_component(k), decode_component(v));
        }
        Query(params)
    }

    fn string(&self, name: &str, errors: &mut Vec<Value>) -> String {
        match self.0.get(name) {
            Some(v) => v.clone(),
            None => {
                errors.push(invalid(
                    "missing",
                    vec![json!("query"), json!(name)],
                    "Field required",
                ));
                String::new()
            }
        }
    }

    /// pydantic's lax booleans.
    fn boolean(&self, name: &str, errors: &mut Vec<Value>) -> bool {
        let Some(v) = self.0.get(name) else {
            errors.push(invalid(
                "missing",
                vec![json!("query"), json!(name)],
                "Field required",
            ));
            return false;
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => true,
            "false" | "0" | "no" | "off" | "f" | "n" => false,
            _ => {
                errors.push(invalid(
                    "bool_parsing",
                    vec![json!("query"), json!(name)],
                    "Input should be a valid boolean, unable to interpret input",
                ));
                false
            }
        }
    }

    /// One of `choices`; its index.
    fn choice(&self, name: &str, choices: &[&str], errors: &mut Vec<Value>) -> u32 {
        let v = self.string(name, errors);
        if !self.0.contains_key(name) {
            return 0;
        }
        match choices.iter().position(|c| *c == v) {
            Some(i) => i as u32,
            None => {
                errors.push(invalid(
                    "enum",
                    vec![json!("query"), json!(name)],
                    format!("Input should be {}", choices.join(", ")),
                ));
                0
            }
        }
    }
}

fn check(errors: Vec<Value>) -> Result<(), Reject> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(unprocessable(errors))
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

fn link_error(e: LinkError) -> Reject {
    let status = match e {
        LinkError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        LinkError::Disabled | LinkError::Publish { .. } | LinkError::Closed { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    Reject(status, Value::String(e.to_string()))
}

fn error(status: StatusCode, detail: impl Into<String>) -> Reject {
    Reject(status, Value::String(detail.into()))
}

/// A JSON text answered as is.
fn raw_json(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// Sends a record to the engine as received now.
async fn feed(app: &AppState, record: Record) -> Result<(), Reject> {
    send(
        app,
        Feed::Record {
            record: Box::new(record),
            stamp: Stamp::Live,
            source: Source::Internal,
        },
    )
    .await
}

/// [`feed`] for inputs already made from a record.
async fn feed_inputs(
    app: &AppState,
    inputs: Vec<rmf_dash_dataflows::model::input::Input>,
) -> Result<(), Reject> {
    let item = Feed::Inputs {
        inputs,
        stamp: Stamp::Live,
        source: Source::Internal,
    };
    send(app, item).await
}

async fn send(app: &AppState, item: Feed) -> Result<(), Reject> {
    if app.feed.send(item).await {
        Ok(())
    } else {
        Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Doors, lifts

#[derive(Debug, Deserialize)]
pub struct DoorRequestBody {
    /// A `rmf_door_msgs/DoorMode` value.
    pub mode: u32,
}

/// `POST /doors/{door_name}/request {mode}`: a DoorRequest on `adapter_door_requests`.
async fn door_request(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Path(door_name): Path<String>,
    Body(body): Body<DoorRequestBody>,
) -> Result<Response, Reject> {
    app.link
        .request_door(&door_name, body.mode)
        .map_err(link_error)?;
    tracing::info!(user = %user.username, door = %door_name, mode = body.mode, "door request");
    Ok(Json(Value::Null).into_response())
}

#[derive(Debug, Deserialize)]
pub struct LiftRequestBody {
    /// `rmf_lift_msgs/LiftRequest` request type (END_SESSION 0, AGV_MODE 1, HUMAN_MODE 2).
    pub request_type: u8,
    /// LiftRequest door state (DOOR_CLOSED 0, DOOR_OPEN 2).
    pub door_mode: u8,
    pub destination: String,
    #[serde(default)]
    pub additional_session_ids: Vec<String>,
}

/// `POST /lifts/{lift_name}/request`: a LiftRequest for rmf-dash's session, then one per
/// additional session id.
async fn lift_request(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Path(lift_name): Path<String>,
    Body(body): Body<LiftRequestBody>,
) -> Result<Response, Reject> {
    app.link
        .request_lift(
            &lift_name,
            &body.destination,
            body.request_type,
            body.door_mode,
            &body.additional_session_ids,
        )
        .map_err(link_error)?;
    tracing::info!(user = %user.username, lift = %lift_name, request_type = body.request_type, destination = %body.destination, "lift request");
    Ok(Json(Value::Null).into_response())
}

// ---------------------------------------------------------------------------------------------
// Tasks (rmf_api_msgs request schemas, as rmf-web's generated models)

/// A `type` field that must hold one string: the request type of the task API.
pub trait Literal {
    const VALUE: &'static str;
}

/// A [`Literal`] type.
macro_rules! literal {
    ($name:ident, $value:literal) => {
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
        pub enum $name {
            #[default]
            #[serde(rename = $value)]
            Value,
        }

        impl Literal for $name {
            const VALUE: &'static str = $value;
        }
    };
}

literal!(DispatchTaskType, "dispatch_task_request");
literal!(CancelTaskType, "cancel_task_request");
literal!(KillTaskType, "kill_task_request");
literal!(InterruptTaskType, "interrupt_task_request");
literal!(ResumeTaskType, "resume_task_request");
literal!(RewindTaskType, "rewind_task_request");
literal!(SkipPhaseType, "skip_phase_request");
literal!(UndoPhaseSkipType, "undo_phase_skip_request");

/// `task_request.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TaskRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_millis_earliest_start_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_millis_request_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Map<String, Value>>,
    pub category: String,
    /// Required; any JSON (the fleet's schema for the category decides).
    #[serde(deserialize_with = "any_value")]
    pub description: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_name: Option<String>,
}

/// A required field that may hold any JSON, null included.
fn any_value<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Value::deserialize(d)
}

/// A required field that may be null.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

#[derive(Debug, Deserialize, Serialize)]
pub struct DispatchTaskRequest {
    #[serde(rename = "type")]
    pub type_: DispatchTaskType,
    pub request: TaskRequest,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RobotTaskRequest {
    /// Any string in rmf-web's model (RMF answers only `robot_task_request`).
    #[serde(rename = "type")]
    pub type_: String,
    pub robot: String,
    pub fleet: String,
    pub request: TaskRequest,
}

/// Cancel, kill and interrupt requests share their shape.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskIdRequest<T> {
    #[serde(rename = "type")]
    pub type_: T,
    pub task_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// Resume and undo-phase-skip requests (every field optional in the schema; a missing `type`
/// is filled in, as RMF ignores requests without one).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "T: Deserialize<'de> + Default"))]
pub struct TokensRequest<T: Default> {
    #[serde(rename = "type", default, deserialize_with = "default_if_null")]
    pub type_: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_task: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty"
    )]
    pub for_tokens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// An optional field whose null means its default.
fn default_if_null<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `for_tokens` has `minItems: 1`.
fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v = Option::<Vec<String>>::deserialize(d)?;
    if v.as_ref().is_some_and(Vec::is_empty) {
        return Err(serde::de::Error::custom(
            "List should have at least 1 item after validation, not 0",
        ));
    }
    Ok(v)
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RewindTaskRequest {
    #[serde(rename = "type")]
    pub type_: RewindTaskType,
    pub task_id: String,
    pub phase_id: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SkipPhaseRequest {
    #[serde(rename = "type")]
    pub type_: SkipPhaseType,
    pub task_id: String,
    pub phase_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// Sends a task API request; RMF's answer as text and as JSON.
async fn call(
    app: &AppState,
    request_type: &str,
    request: &impl Serialize,
) -> Result<(String, Value), Reject> {
    let json_msg = serde_json::to_string(request)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let answer = app
        .link
        .call(request_type, json_msg)
        .await
        .map_err(link_error)?;
    let value: Value = serde_json::from_str(&answer).map_err(|e| {
        error(
            StatusCode::BAD_GATEWAY,
            format!("RMF answered {request_type} with invalid JSON: {e}"),
        )
    })?;
    Ok((answer, value))
}

/// Other task requests: RMF's answer, 200.
async fn task_simple(
    app: &AppState,
    user: &str,
    request_type: &str,
    request: &impl Serialize,
) -> Result<Response, Reject> {
    let (text, value) = call(app, request_type, request).await?;
    let success = value.get("success") == Some(&Value::Bool(true));
    tracing::info!(user, request_type, success, "task request");
    Ok(raw_json(StatusCode::OK, text))
}

async fn dispatch_task(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Body(body): Body<DispatchTaskRequest>,
) -> Result<Response, Reject> {
    let (status, text, _) = dispatch(&app, &user.username, &body, None).await?;
    Ok(raw_json(status, text))
}

/// A task dispatch, as `POST /tasks/dispatch_task` does it (scheduled tasks go through here
/// too): the request to RMF (under `request_id`, or a new one), RMF's answer (200 when it
/// succeeded, 400 otherwise, with its text and JSON), and, as rmf-web does, the task state of
/// a successful answer fed to the engine (so `/tasks/{id}/state` and `GET /tasks` show the task
/// before its fleet adapter reports it).
pub async fn dispatch(
    app: &AppState,
    user: &str,
    body: &DispatchTaskRequest,
    request_id: Option<&str>,
) -> Result<(StatusCode, String, Value), Reject> {
    let request_id = compact_str::CompactString::from(
        request_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string),
    );
    let kept = Some(&body.request);
    with_state(app, user, "dispatch_task_request", body, request_id, kept).await
}

/// A request whose answer holds a task state (dispatch, robot task), as rmf-web answers it:
/// RMF's answer in rmf-web's `TaskDispatchResponse` shape (every field of the state, `null`
/// when absent), 200 when it succeeded, 400 otherwise. On success the task's request is kept
/// (`keep`: dispatches only, as rmf-web) and its state fed to the engine, and the answer waits
/// until the state is shown: a client that reads the task right after the answer finds it.
async fn with_state(
    app: &AppState,
    user: &str,
    request_type: &str,
    body: &impl Serialize,
    request_id: compact_str::CompactString,
    keep: Option<&TaskRequest>,
) -> Result<(StatusCode, String, Value), Reject> {
    let json_msg = serde_json::to_string(body)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let answer = app
        .link
        .call_with_id(request_type, json_msg, request_id)
        .await
        .map_err(link_error)?;
    let answer =
        rmf_dash_dataflows::model::shape::task_dispatch_response(&answer).ok_or_else(|| {
            error(
                StatusCode::BAD_GATEWAY,
                format!("RMF answered {request_type} with invalid JSON: {answer}"),
            )
        })?;
    let value: Value = serde_json::from_str(&answer).unwrap_or_default();
    let success = value.get("success") == Some(&Value::Bool(true));
    let task_id = value
        .pointer("/state/booking/id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    tracing::info!(user, request_type, success, task_id, "task request");
    if !success {
        return Ok((StatusCode::BAD_REQUEST, answer, value));
    }
    if let Some(request) = keep {
        keep_request(app, task_id, request, user).await?;
    }
    if let Some(state) = value.get("state").filter(|_| !task_id.is_empty()) {
        let frame = json!({"type": "task_state_update", "data": state}).to_string();
        match crate::ingest::internal::parse_frame(&frame, &crate::json_limits::depth_only()) {
            Ok(record) => {
                feed(app, record).await?;
                shown(app, &format!("/tasks/{task_id}/state")).await;
            }
            Err(e) => tracing::warn!(task_id, error = %e, "RMF's task state not recorded"),
        }
    }
    Ok((StatusCode::OK, answer, value))
}

/// Waits until state room `room` has a value (at most [`VISIBLE_WITHIN`]).
async fn shown(app: &AppState, room: &str) {
    let until = tokio::time::Instant::now() + VISIBLE_WITHIN;
    while app.hub.get(room).and_then(|(_, v)| v).is_none() {
        if tokio::time::Instant::now() >= until {
            tracing::warn!(room, "the engine did not show the record in time");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Keeps the request of a dispatched task (before anything names the task: its state is fed
/// after), in rmf-web's `TaskRequest` shape: every field, `null` when absent.
async fn keep_request(
    app: &AppState,
    task_id: &str,
    request: &TaskRequest,
    user: &str,
) -> Result<(), Reject> {
    if task_id.is_empty() {
        return Ok(());
    }
    let shaped = serde_json::to_value(request)
        .map(rmf_dash_dataflows::model::shape::task_request)
        .and_then(|v| serde_json::to_string(&v))
        .and_then(serde_json::value::RawValue::from_string)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let at = request
        .unix_millis_request_time
        .unwrap_or_else(|| crate::api::routes::now_ms(app) as i64);
    let requester = request.requester.as_deref().unwrap_or(user);
    app.task_requests
        .put(task_id, &shaped, requester, at)
        .await
        .map_err(|e| {
            let e = crate::error::chain(&e);
            tracing::warn!(task_id, error = %e, "the task's request was not kept");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                // The chain can name tables or values: it stays in the log line above.
                format!("the store did not keep the request of task {task_id}; try again"),
            )
        })
}

async fn robot_task(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Body(body): Body<RobotTaskRequest>,
) -> Result<Response, Reject> {
    let request_id = uuid::Uuid::new_v4().to_string().into();
    let (status, text, _) = with_state(
        &app,
        &user.username,
        "robot_task_request",
        &body,
        request_id,
        None,
    )
    .await?;
    Ok(raw_json(status, text))
}

/// A task API request that RMF answers as it is (cancel, kill, interrupt, resume, rewind, skip
/// and undo-skip): the body's type names its request type.
pub trait SimpleRequest: DeserializeOwned + Serialize + Send + Sync + 'static {
    const TYPE: &'static str;
}

impl<T: Literal + DeserializeOwned + Serialize + Send + Sync + 'static> SimpleRequest
    for TaskIdRequest<T>
{
    const TYPE: &'static str = T::VALUE;
}

impl<T> SimpleRequest for TokensRequest<T>
where
    T: Literal + Default + DeserializeOwned + Serialize + Send + Sync + 'static,
{
    const TYPE: &'static str = T::VALUE;
}

impl SimpleRequest for RewindTaskRequest {
    const TYPE: &'static str = RewindTaskType::VALUE;
}

impl SimpleRequest for SkipPhaseRequest {
    const TYPE: &'static str = SkipPhaseType::VALUE;
}

/// The handler of every [`SimpleRequest`] route: RMF's answer, 200.
async fn simple<T: SimpleRequest>(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Body(body): Body<T>,
) -> Result<Response, Reject> {
    task_simple(&app, &user.username, T::TYPE, &body).await
}

// ---------------------------------------------------------------------------------------------
// Fleets

/// The present state of robot `robot` of fleet `fleet` (404 as rmf-web when either is unknown).
fn robot_state(app: &AppState, fleet: &str, robot: &str) -> Result<Value, Reject> {
    let state: Option<Value> = app
        .hub
        .get(&format!("/fleets/{fleet}/state"))
        .and_then(|(_, v)| v)
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    let Some(state) = state else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("Fleet {fleet} not found"),
        ));
    };
    state
        .get("robots")
        .and_then(|r| r.get(robot))
        .cloned()
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("Robot {robot} not found in fleet {fleet}"),
            )
        })
}

/// Sends a robot commission request; 400 with `{"detail": answer}` when RMF refused it.
async fn commission(app: &AppState, user: &str, request: Value) -> Result<Response, Reject> {
    let (text, value) = call(app, "robot_commission_request", &request).await?;
    let success = value.pointer("/commission/success") == Some(&Value::Bool(true));
    tracing::info!(
        user,
        fleet = request["fleet"].as_str().unwrap_or_default(),
        robot = request["robot"].as_str().unwrap_or_default(),
        commission = %request["commission"],
        success,
        "robot commission request"
    );
    if success {
        Ok(raw_json(StatusCode::OK, text))
    } else {
        Err(Reject(StatusCode::BAD_REQUEST, value))
    }
}

/// `POST /fleets/{name}/decommission?robot_name=&reassign_tasks=&allow_idle_behavior=`.
async fn decommission(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Reject> {
    let q = Query::parse(raw.as_deref());
    let mut errors = Vec::new();
    let robot = q.string("robot_name", &mut errors);
    let reassign = q.boolean("reassign_tasks", &mut errors);
    let idle = q.boolean("allow_idle_behavior", &mut errors);
    check(errors)?;
    robot_state(&app, &name, &robot)?;
    let request = json!({
        "type": "robot_commission_request",
        "robot": robot,
        "fleet": name,
        "commission": {"dispatch_tasks": false, "direct_tasks": false, "idle_behavior": idle},
        "pending_dispatch_tasks_policy": if reassign { "reassign" } else { "cancel" },
        "pending_direct_tasks_policy": "cancel",
    });
    commission(&app, &user.username, request).await
}

/// `POST /fleets/{name}/recommission?robot_name=`.
async fn recommission(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Reject> {
    let q = Query::parse(raw.as_deref());
    let mut errors = Vec::new();
    let robot = q.string("robot_name", &mut errors);
    check(errors)?;
    robot_state(&app, &name, &robot)?;
    let request = json!({
        "type": "robot_commission_request",
        "robot": robot,
        "fleet": name,
        "commission": {"dispatch_tasks": true, "direct_tasks": true, "idle_behavior": true},
        "pending_dispatch_tasks_policy": "complete",
        "pending_direct_tasks_policy": "complete",
    });
    commission(&app, &user.username, request).await
}

/// `POST /fleets/{name}/unlock_mutex_group?robot_name=&mutex_group=`: a MutexGroupManualRelease,
/// only for a group the robot holds (400 otherwise).
async fn unlock_mutex_group(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Reject> {
    let q = Query::parse(raw.as_deref());
    let mut errors = Vec::new();
    let robot = q.string("robot_name", &mut errors);
    let group = q.string("mutex_group", &mut errors);
    check(errors)?;
    let state = robot_state(&app, &name, &robot)?;
    let locked = state
        .pointer("/mutex_groups/locked")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|g| g.as_str() == Some(group.as_str())));
    if !locked {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("Robot {robot} in fleet {name} does not have mutex group {group} locked"),
        ));
    }
    app.link
        .release_mutex_groups(&name, &robot, std::slice::from_ref(&group))
        .map_err(link_error)?;
    tracing::info!(user = %user.username, fleet = %name, robot = %robot, mutex_group = %group, "manual mutex group release");
    Ok(Json(Value::Null).into_response())
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// Alert creation and responses check, then act: one at a time.
static ALERTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlertTier {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AlertParameterBody {
    pub name: String,
    pub value: String,
}

/// rmf-web's `AlertRequest` (every field required; `task_id` may be null).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AlertRequestBody {
    pub id: String,
    pub unix_millis_alert_time: i64,
    pub title: String,
    pub subtitle: String,
    pub message: String,
    pub display: bool,
    pub tier: AlertTier,
    pub responses_available: Vec<String>,
    pub alert_parameters: Vec<AlertParameterBody>,
    #[serde(deserialize_with = "nullable")]
    pub task_id: Option<String>,
}

/// The last event of stream `room` whose `id` is `id`.
fn last_with_id(app: &AppState, room: &str, id: &str) -> Option<Value> {
    app.hub
        .tail(room)
        .iter()
        .rev()
        .filter_map(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        .find(|v| v.get("id").and_then(Value::as_str) == Some(id))
}

/// Waits until the engine shows `id` in stream `room`.
async fn visible(app: &AppState, room: &str, id: &str) -> Option<Value> {
    let until = tokio::time::Instant::now() + VISIBLE_WITHIN;
    loop {
        if let Some(v) = last_with_id(app, room, id) {
            return Some(v);
        }
        if tokio::time::Instant::now() >= until {
            tracing::warn!(room, id, "the engine did not show the record in time");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `POST /alerts/request`: a new alert (409 when its id exists), shown in `/alerts/requests`;
/// 201 with the alert.
async fn create_alert(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Body(body): Body<AlertRequestBody>,
) -> Result<Response, Reject> {
    let _one_at_a_time = ALERTS.lock().await;
    if last_with_id(&app, "/alerts/requests", &body.id).is_some() {
        return Err(error(
            StatusCode::CONFLICT,
            format!("Alert with ID {} already exists", body.id),
        ));
    }
    let alert = Alert {
        id: body.id.as_str().into(),
        title: body.title.clone(),
        subtitle: body.subtitle.clone(),
        message: body.message.clone(),
        display: body.display,
        tier: match body.tier {
            AlertTier::Info => Alert::TIER_INFO,
            AlertTier::Warning => Alert::TIER_WARNING,
            AlertTier::Error => Alert::TIER_ERROR,
        },
        responses_available: body
            .responses_available
            .iter()
            .map(|r| r.as_str().into())
            .collect(),
        alert_parameters: body
            .alert_parameters
            .iter()
            .map(|p| AlertParameter {
                name: p.name.as_str().into(),
                value: p.value.clone(),
            })
            .collect(),
        task_id: body.task_id.as_deref().unwrap_or_default().into(),
    };
    // The alert keeps the time its author gave it (rmf-web stores the request as sent), not
    // the time it was received.
    let at = u64::try_from(body.unix_millis_alert_time).unwrap_or(0);
    let inputs = rmf_dash_dataflows::model::input::inputs(
        &Record::Alert(alert),
        at,
        &mut rmf_dash_dataflows::model::input::Names::default(),
    )
    .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    feed_inputs(&app, inputs).await?;
    visible(&app, "/alerts/requests", &body.id).await;
    tracing::info!(user = %user.username, alert = %body.id, "alert created");
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /alerts/request/{alert_id}/respond?response=`: 409 when already answered, 404 for an
/// unknown alert, 400 when not one of its `responses_available`; otherwise an AlertResponse to
/// RMF, shown in `/alerts/responses`; 201 with `{id, unix_millis_response_time, response}`.
async fn respond_to_alert(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Path(alert_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Reject> {
    let q = Query::parse(raw.as_deref());
    let mut errors = Vec::new();
    let response = q.string("response", &mut errors);
    check(errors)?;
    let _one_at_a_time = ALERTS.lock().await;
    if let Some(existing) = last_with_id(&app, "/alerts/responses", &alert_id) {
        return Err(error(
            StatusCode::CONFLICT,
            format!(
                "Alert with ID {alert_id} already has a response of {}",
                existing["response"].as_str().unwrap_or_default()
            ),
        ));
    }
    let Some(alert) = last_with_id(&app, "/alerts/requests", &alert_id) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("Alert with ID {alert_id} does not exists"),
        ));
    };
    let available = alert["responses_available"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r.as_str() == Some(response.as_str())));
    if !available {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("Response [{response}] is not a response option of alert with ID {alert_id}"),
        ));
    }
    app.link
        .respond_to_alert(&alert_id, &response)
        .map_err(link_error)?;
    let record = Record::AlertResponse(AlertResponse {
        id: alert_id.as_str().into(),
        response: response.as_str().into(),
    });
    feed(&app, record).await?;
    tracing::info!(user = %user.username, alert = %alert_id, response = %response, "alert response");
    let shown = visible(&app, "/alerts/responses", &alert_id)
        .await
        .unwrap_or_else(
            || json!({"id": alert_id, "unix_millis_response_time": now_ms(), "response": response}),
        );
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

const DELIVERY_CATEGORIES: [&str; 4] = ["missing", "wrong", "obstructed", "cancelled"];
const DELIVERY_TIERS: [&str; 2] = ["warning", "error"];
const DELIVERY_ACTIONS: [&str; 4] = ["waiting", "cancel", "override", "resume"];

/// `POST /delivery_alerts/{id}/response?category=&tier=&task_id=&action=&message=` (deprecated
/// in rmf-web for `/alerts`): a DeliveryAlert on `delivery_alert_response`, also shown in
/// `/delivery_alerts` as rmf-web does.
async fn respond_to_delivery_alert(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Reject> {
    let q = Query::parse(raw.as_deref());
    let mut errors = Vec::new();
    let category = q.choice("category", &DELIVERY_CATEGORIES, &mut errors);
    let tier = q.choice("tier", &DELIVERY_TIERS, &mut errors);
    let task_id = q.string("task_id", &mut errors);
    let action = q.choice("action", &DELIVERY_ACTIONS, &mut errors);
    let message = q.string("message", &mut errors);
    check(errors)?;
    let alert = DeliveryAlert {
        id: id.as_str().into(),
        category: EnumValue { value: category },
        tier: EnumValue { value: tier },
        task_id: task_id.as_str().into(),
        action: EnumValue { value: action },
        message: message.clone(),
    };
    app.link
        .respond_to_delivery_alert(alert.clone())
        .map_err(link_error)?;
    feed(&app, Record::DeliveryAlertRequest(alert)).await?;
    tracing::info!(user = %user.username, delivery_alert = %id, action = DELIVERY_ACTIONS[action as usize], "delivery alert response");
    Ok(Json(json!({
        "id": id,
        "category": DELIVERY_CATEGORIES[category as usize],
        "tier": DELIVERY_TIERS[tier as usize],
        "task_id": task_id,
        "action": DELIVERY_ACTIONS[action as usize],
        "message": message,
    }))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Building

/// `POST /building_map/reset_fire_alarm_trigger`: `fire_alarm_trigger` false, also shown in
/// `/building_map/fire_alarm_trigger`; `{unix_millis_time, trigger: false}`.
async fn reset_fire_alarm_trigger(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
) -> Result<Response, Reject> {
    app.link.reset_fire_alarm_trigger().map_err(link_error)?;
    feed(&app, Record::FireAlarmTrigger(false)).await?;
    tracing::info!(user = %user.username, "fire alarm trigger reset");
    Ok(Json(json!({"unix_millis_time": now_ms(), "trigger": false})).into_response())
}

// ---------------------------------------------------------------------------------------------
// Loopback link (tests)

/// The loopback link, for an admin: it holds what every user published (404 without it, 403
/// for another user).
async fn loopback_for_admin<'a>(
    app: &'a AppState,
    username: &str,
) -> Result<&'a crate::rmf_link::loopback::Loopback, Reject> {
    let info = crate::users::routes::current(app, username)
        .await
        .map_err(|ApiError(status, detail)| error(status, detail))?;
    if !info.is_admin {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("admin only: user {username} is not an admin"),
        ));
    }
    app.link
        .as_loopback()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "Not Found"))
}

/// `GET /_loopback/published`: `[{topic, type, message}]`, oldest first (admins only).
async fn loopback_published(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
) -> Result<Response, Reject> {
    let l = loopback_for_admin(&app, &user.username).await?;
    Ok(Json(l.published()).into_response())
}

/// `DELETE /_loopback/published`: forgets them (204; admins only).
async fn loopback_clear(
    AuthUser(user): AuthUser,
    State(app): State<AppState>,
) -> Result<Response, Reject> {
    let l = loopback_for_admin(&app, &user.username).await?;
    l.clear();
    tracing::info!(user = %user.username, "loopback: published messages cleared");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(r: Reject) -> (StatusCode, Value) {
        let r = r.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn missing_and_mistyped_fields_are_422_with_their_location() {
        let r = parse_body::<DispatchTaskRequest>(
            br#"{"type":"dispatch_task_request","request":{"description":{}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            body_of(r).await,
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"detail": [{"type": "missing", "loc": ["body", "request", "category"], "msg": "Field required"}]})
            )
        );
        let r = parse_body::<DoorRequestBody>(br#"{"mode":"open"}"#).unwrap_err();
        assert_eq!(
            body_of(r).await.1,
            json!({"detail": [{"type": "type_error", "loc": ["body", "mode"], "msg": "invalid type: string \"open\", expected u32"}]})
        );
        let r = parse_body::<TaskIdRequest<CancelTaskType>>(
            br#"{"type":"kill_task_request","task_id":"t"}"#,
        )
        .unwrap_err();
        assert_eq!(
            body_of(r).await.1,
            json!({"detail": [{"type": "enum", "loc": ["body", "type"], "msg": "unknown variant `kill_task_request`, expected `cancel_task_request`"}]})
        );
        let r = parse_body::<TokensRequest<ResumeTaskType>>(br#"{"for_task":"t","for_tokens":[]}"#)
            .unwrap_err();
        assert_eq!(
            body_of(r).await.1,
            json!({"detail": [{"type": "value_error", "loc": ["body", "for_tokens"], "msg": "List should have at least 1 item after validation, not 0"}]})
        );
        let r = parse_body::<DoorRequestBody>(b"").unwrap_err();
        assert_eq!(
            body_of(r).await.1,
            json!({"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required"}]})
        );
        let r = parse_body::<DoorRequestBody>(b"{").unwrap_err();
        let (status, v) = body_of(r).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["detail"][0]["type"], "json_invalid");
    }

    #[test]
    fn task_requests_are_forwarded_without_unknown_or_null_fields() {
        let r: DispatchTaskRequest = parse_body(
            br#"{"type":"dispatch_task_request","extra":1,"request":{"category":"patrol","priority":null,"description":{"places":["a"],"x":null},"unknown":true}}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"dispatch_task_request","request":{"category":"patrol","description":{"places":["a"],"x":null}}}"#
        );
        let r: TokensRequest<UndoPhaseSkipType> =
            parse_body(br#"{"type":null,"for_task":"t"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"undo_phase_skip_request","for_task":"t"}"#
        );
    }

    #[tokio::test]
    async fn commands_on_a_task_reject_unknown_fields() {
        let extra = |body: &[u8]| -> Result<(), Reject> {
            match body {
                b if b.starts_with(br#"{"type":"cancel"#) => {
                    parse_body::<TaskIdRequest<CancelTaskType>>(b).map(drop)
                }
                b if b.starts_with(br#"{"type":"resume"#) => {
                    parse_body::<TokensRequest<ResumeTaskType>>(b).map(drop)
                }
                b if b.starts_with(br#"{"type":"rewind"#) => {
                    parse_body::<RewindTaskRequest>(b).map(drop)
                }
                b => parse_body::<SkipPhaseRequest>(b).map(drop),
            }
        };
        let cases: [&[u8]; 4] = [
            br#"{"type":"cancel_task_request","task_id":"t","request":{"labels":["authz_grp=a"]}}"#,
            br#"{"type":"resume_task_request","for_task":"t","request":{"labels":["authz_grp=a"]}}"#,
            br#"{"type":"rewind_task_request","task_id":"t","phase_id":1,"request":{"labels":["authz_grp=a"]}}"#,
            br#"{"type":"skip_phase_request","task_id":"t","phase_id":1,"request":{"labels":["authz_grp=a"]}}"#,
        ];
        for body in cases {
            let r = extra(body).expect_err("an unknown field");
            assert_eq!(
                body_of(r).await,
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"detail": [{"type": "extra_forbidden", "loc": ["body", "request"], "msg": "Extra inputs are not permitted"}]})
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // The schemas' own fields are accepted (rewind has no labels).
        assert!(
            parse_body::<TaskIdRequest<CancelTaskType>>(
                br#"{"type":"cancel_task_request","task_id":"t","labels":["x"]}"#
            )
            .is_ok()
        );
        assert!(
            parse_body::<RewindTaskRequest>(
                br#"{"type":"rewind_task_request","task_id":"t","phase_id":1,"labels":["x"]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn alert_task_id_is_required_but_nullable() {
        let base = json!({"id": "a", "unix_millis_alert_time": 1, "title": "t", "subtitle": "s",
            "message": "m", "display": true, "tier": "warning", "responses_available": [],
            "alert_parameters": []});
        assert!(parse_body::<AlertRequestBody>(base.to_string().as_bytes()).is_err());
        let mut with_null = base.clone();
        with_null["task_id"] = Value::Null;
        let a: AlertRequestBody = parse_body(with_null.to_string().as_bytes()).unwrap();
        assert_eq!(a.task_id, None);
    }

    #[test]
    fn query_parameters_decode_and_validate() {
        let q = Query::parse(Some("robot_name=tiny%201&reassign_tasks=True&x=a+b&x=c"));
        let mut errors = Vec::new();
        assert_eq!(q.string("robot_name", &mut errors), "tiny 1");
        assert!(q.boolean("reassign_tasks", &mut errors));
        assert_eq!(q.string("x", &mut errors), "c");
        assert!(errors.is_empty());
        q.boolean("allow_idle_behavior", &mut errors);
        let q = Query::parse(Some("b=maybe&tier=fatal"));
        q.boolean("b", &mut errors);
        q.choice("tier", &DELIVERY_TIERS, &mut errors);
        assert_eq!(
            errors,
            vec![
                json!({"type": "missing", "loc": ["query", "allow_idle_behavior"], "msg": "Field required"}),
                json!({"type": "bool_parsing", "loc": ["query", "b"], "msg": "Input should be a valid boolean, unable to interpret input"}),
                json!({"type": "enum", "loc": ["query", "tier"], "msg": "Input should be warning, error"}),
            ]
        );
    }
}
