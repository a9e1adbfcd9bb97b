//! The routes of scheduled tasks (rmf-web's `routes/tasks/scheduled_tasks.py`):
//! `POST /scheduled_tasks` (201), `GET /scheduled_tasks?start_before=&until_after=` (with
//! `limit`, `offset`, `order_by`), `GET /scheduled_tasks/{task_id}`,
//! `POST /scheduled_tasks/{task_id}/except_date` (201), `POST /scheduled_tasks/{task_id}/update`,
//! `DELETE /scheduled_tasks/{task_id}`, and rmf-dash's `GET /scheduled_tasks/{task_id}/runs`
//! (the claimed occurrences and their outcome), answered from [`ScheduleStore`]: the store's
//! tables, or memory with `--no-db` (the same answers, kept for the life of the process).
//! Writing needs `task_submit` in the group of the task request (`authz_grp=` label, see
//! [`crate::api::access`]; with the store only, as on the command routes); reading needs a
//! token.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::storage::ScheduleStore;
use super::store::{self, Write};
use super::{Occurrences, Plan, Schedule, ScheduleError, local_date, parse_datetime};
use crate::api::commands::{Body, Reject, TaskRequest};
use crate::api::routes::{In, Param, Route};
use crate::api::{ApiError, AppState, AuthUser};

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        match e {
            ScheduleError::Invalid(m) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, m),
            ScheduleError::NotFound(_) => ApiError(StatusCode::NOT_FOUND, "Not Found".into()),
            ScheduleError::Full(m) => {
                tracing::warn!(error = %m, "scheduled tasks: in-memory bound reached");
                ApiError(StatusCode::INSUFFICIENT_STORAGE, m)
            }
            ScheduleError::Pg(_) | ScheduleError::Store(_) => {
                tracing::warn!(error = %crate::error::chain(&e), "scheduled tasks: store request failed");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the scheduled task store is unavailable".into(),
                )
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ScheduleError::Store(e).into()
    }
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

const fn doc(
    method: &'static str,
    path: &'static str,
    name: &'static str,
    summary: &'static str,
    params: &'static [Param],
) -> Route {
    Route {
        method,
        path,
        name,
        tag: "Tasks",
        summary,
        params,
        auth: true,
        content: "application/json",
        handler: None,
        action: None,
    }
}

/// The routes of [`router`], for `GET /openapi.json` (rmf-web's handler names).
pub const DOCS: &[Route] = &[
    doc(
        "post",
        "/scheduled_tasks",
        "post_scheduled_task",
        "Body `{task_request, schedules: [{every?, period, at}], start_from?, until?, \
         except_dates?}`: 201 with the scheduled task; 422 when it would never run; needs \
         `task_submit` in the task request's group.",
        &[],
    ),
    doc(
        "get",
        "/scheduled_tasks",
        "get_scheduled_tasks",
        "Scheduled tasks starting before `start_before` and ending after `until_after`.",
        &[
            query("start_before", "string", "A datetime (required)."),
            query("until_after", "string", "A datetime (required)."),
            query("limit", "integer", "Page size, 1 to 1000 (default 100)."),
            query("offset", "integer", "Items to skip (default 0)."),
            query(
                "order_by",
                "string",
                "Comma separated: id, created_by, start_from, until, last_ran; `-` for \
                 descending.",
            ),
        ],
    ),
    doc(
        "get",
        "/scheduled_tasks/{task_id}",
        "get_scheduled_task",
        "A scheduled task.",
        &[],
    ),
    doc(
        "delete",
        "/scheduled_tasks/{task_id}",
        "del_scheduled_tasks",
        "Deletes a scheduled task.",
        &[],
    ),
    doc(
        "post",
        "/scheduled_tasks/{task_id}/except_date",
        "add_except_date",
        "Body `{except_date}`: no occurrence on that date (in the server's time zone); 201.",
        &[],
    ),
    doc(
        "post",
        "/scheduled_tasks/{task_id}/update",
        "update_schedule_task",
        "Body as for creation: replaces the request, schedules, bounds and except dates.",
        &[],
    ),
    doc(
        "get",
        "/scheduled_tasks/{task_id}/runs",
        "get_scheduled_task_runs",
        "rmf-dash: the claimed occurrences (`occurrence` unix ms, `request_id`, `status`, \
         `task_id`, `attempts`, `detail`), oldest first.",
        &[],
    ),
];

/// The routes (merged into the API router).
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/scheduled_tasks", post(create).get(list))
        .route(
            "/scheduled_tasks/{task_id}",
            get(get_one).delete(delete_one),
        )
        .route("/scheduled_tasks/{task_id}/except_date", post(except_date))
        .route("/scheduled_tasks/{task_id}/update", post(update))
        .route("/scheduled_tasks/{task_id}/runs", get(runs))
}

/// rmf-web's `PostScheduledTaskRequest`.
#[derive(Debug, Deserialize)]
pub struct PostScheduledTask {
    pub task_request: TaskRequest,
    pub schedules: Vec<Schedule>,
    #[serde(default)]
    pub start_from: Option<Value>,
    #[serde(default)]
    pub until: Option<Value>,
    #[serde(default)]
    pub except_dates: Vec<Value>,
}

/// A date-time given as a string or a number.
fn datetime(v: &Value, what: &str) -> Result<i64, ScheduleError> {
    match v {
        Value::String(s) => parse_datetime(s),
        Value::Number(n) => parse_datetime(&n.to_string()),
        _ => Err(ScheduleError::Invalid(format!(
            "{what}: expected a datetime"
        ))),
    }
    .map_err(|e| ScheduleError::Invalid(format!("{what}: {e}")))
}

fn optional_datetime(v: Option<&Value>, what: &str) -> Result<Option<i64>, ScheduleError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => datetime(v, what).map(Some),
    }
}

fn path_id(raw: &str) -> Result<i64, Reject> {
    raw.parse::<i64>().map_err(|_| {
        Reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!([{"type": "int_parsing", "loc": ["path", "task_id"],
                "msg": "Input should be a valid integer, unable to parse string as an integer"}]),
        )
    })
}

/// 403 unless `username` may submit tasks in the group of `labels` (users enforced only: see
/// [`crate::api::access::enforced`]).
async fn may_submit(
    app: &AppState,
    username: &str,
    labels: Option<&[String]>,
) -> Result<(), ApiError> {
    let info = crate::users::routes::current(app, username).await?;
    let Some(users) = crate::api::access::enforced(app) else {
        return Ok(());
    };
    let group = crate::access::groups::task_group(labels);
    if users.is_authorized(&info, &group, "task_submit").await? {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            crate::access::groups::forbidden(username, &group, "task_submit"),
        ))
    }
}

/// Checks a request and turns it into what is stored; 422 when it would never run after `now`.
fn to_write(app: &AppState, body: PostScheduledTask, now: i64) -> Result<Write, ScheduleError> {
    let tz = app.scheduling.config.tz;
    let task_request = serde_json::to_string(&body.task_request)
        .map_err(|e| ScheduleError::Invalid(e.to_string()))?;
    if task_request.len() > super::MAX_TASK_REQUEST {
        return Err(ScheduleError::Invalid(format!(
            "a task request is at most {} bytes",
            super::MAX_TASK_REQUEST
        )));
    }
    if body.except_dates.len() > super::MAX_EXCEPT_DATES {
        return Err(ScheduleError::Invalid(format!(
            "at most {} except dates",
            super::MAX_EXCEPT_DATES
        )));
    }
    let mut except_dates = Vec::with_capacity(body.except_dates.len());
    for d in &body.except_dates {
        let date = local_date(tz, datetime(d, "except_dates")?)
            .ok_or_else(|| ScheduleError::Invalid("except_dates: out of range".into()))?;
        if !except_dates.contains(&date) {
            except_dates.push(date);
        }
    }
    let w = Write {
        task_request,
        schedules: body.schedules,
        start_from_ms: optional_datetime(body.start_from.as_ref(), "start_from")?,
        until_ms: optional_datetime(body.until.as_ref(), "until")?,
        except_dates,
    };
    let plan = Plan {
        schedules: w.schedules.clone(),
        start_from: w.start_from_ms,
        until: w.until_ms,
        except_dates: w.except_dates.clone(),
        created: now,
    };
    // As rmf-web: a scheduled task that never runs is refused.
    if Occurrences::new(&plan, tz)?.next_after(now).is_none() {
        return Err(ScheduleError::Invalid("Task is never going to run".into()));
    }
    Ok(w)
}

/// `POST /scheduled_tasks`: 201 with the created task.
async fn create(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Body(body): Body<PostScheduledTask>,
) -> Result<Response, ApiError> {
    may_submit(&app, &user.username, body.task_request.labels.as_deref()).await?;
    let now = app.scheduling.config.clock.now_ms();
    let w = to_write(&app, body, now)?;
    let stored = tasks(&app).create(&user.username, now, &w).await?;
    tracing::info!(id = stored.id, by = %user.username, "scheduled task created");
    app.scheduling.wake.notify_one();
    Ok((StatusCode::CREATED, Json(stored.to_api())).into_response())
}

/// The decoded `name=value` pairs of a query string.
fn query_params(raw: Option<&str>) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for pair in raw.unwrap_or_default().split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            params.insert(k.to_string(), v);
        }
    }
    params
}

/// The sort keys of `order_by` (comma separated, `-` for descending) as columns; FastAPI's
/// details of the unknown ones into `errors`.
fn order_by(params: &HashMap<String, String>, errors: &mut Vec<Value>) -> Vec<(String, bool)> {
    let mut order_by = Vec::new();
    for key in params
        .get("order_by")
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
    {
        let (desc, name) = match key.strip_prefix('-') {
            Some(k) => (true, k),
            None => (false, key),
        };
        match store::order_column(name) {
            Some(column) => order_by.push((column.to_string(), desc)),
            None => errors.push(json!({"type": "value_error", "loc": ["query", "order_by"],
                "msg": format!("cannot sort by {name}")})),
        }
    }
    order_by
}

/// What a list asks for.
struct ListQuery {
    start_before: i64,
    until_after: i64,
    order_by: Vec<(String, bool)>,
    limit: i64,
    offset: i64,
}

/// The query of a list, or FastAPI's details of what is missing or invalid in it.
fn list_query(raw: Option<&str>) -> Result<ListQuery, Vec<Value>> {
    let params = query_params(raw);
    let mut errors = Vec::new();
    let mut required = |name: &str| -> i64 {
        match params.get(name).map(|v| parse_datetime(v)) {
            Some(Ok(t)) => t,
            Some(Err(_)) => {
                errors.push(json!({"type": "datetime_parsing", "loc": ["query", name],
                    "msg": "Input should be a valid datetime"}));
                0
            }
            None => {
                errors.push(json!({"type": "missing", "loc": ["query", name],
                    "msg": "Field required"}));
                0
            }
        }
    };
    let start_before = required("start_before");
    let until_after = required("until_after");
    let limit = params
        .get("limit")
        .map_or(Ok(100), |v| v.parse::<i64>())
        .ok()
        .filter(|l| (1..=1000).contains(l));
    let offset = params
        .get("offset")
        .map_or(Ok(0), |v| v.parse::<i64>())
        .ok()
        .filter(|o| *o >= 0);
    if limit.is_none() {
        errors.push(json!({"type": "value_error", "loc": ["query", "limit"],
            "msg": "limit must be an integer from 1 to 1000"}));
    }
    if offset.is_none() {
        errors.push(json!({"type": "value_error", "loc": ["query", "offset"],
            "msg": "offset must be a non-negative integer"}));
    }
    let order_by = order_by(&params, &mut errors);
    match (limit, offset) {
        (Some(limit), Some(offset)) if errors.is_empty() => Ok(ListQuery {
            start_before,
            until_after,
            order_by,
            limit,
            offset,
        }),
        _ => Err(errors),
    }
}

/// `GET /scheduled_tasks?start_before=&until_after=&limit=&offset=&order_by=`.
async fn list(
    State(app): State<AppState>,
    AuthUser(_user): AuthUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = match list_query(raw.as_deref()) {
        Ok(q) => q,
        Err(errors) => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "detail": errors })),
            )
                .into_response());
        }
    };
    let tasks = tasks(&app)
        .list(
            q.start_before,
            q.until_after,
            &q.order_by,
            q.limit,
            q.offset,
        )
        .await?;
    Ok(Json(tasks.iter().map(store::Stored::to_api).collect::<Vec<_>>()).into_response())
}

/// Where the scheduled tasks are kept.
fn tasks(app: &AppState) -> &ScheduleStore {
    &app.scheduling.store
}

async fn stored(app: &AppState, id: i64) -> Result<store::Stored, ApiError> {
    Ok(tasks(app)
        .get(id)
        .await?
        .ok_or(ScheduleError::NotFound(id))?)
}

/// Checks that `username` may change `task` (`task_submit` in the group of its request).
async fn may_change(app: &AppState, username: &str, task: &store::Stored) -> Result<(), ApiError> {
    may_submit(app, username, labels_of(&task.task_request).as_deref()).await
}

fn labels_of(task_request: &str) -> Option<Vec<String>> {
    serde_json::from_str::<TaskRequest>(task_request)
        .ok()
        .and_then(|r| r.labels)
}

/// `GET /scheduled_tasks/{task_id}`.
async fn get_one(
    State(app): State<AppState>,
    AuthUser(_user): AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = match path_id(&id) {
        Ok(id) => id,
        Err(r) => return Ok(r.into_response()),
    };
    Ok(Json(stored(&app, id).await?.to_api()).into_response())
}

#[derive(Debug, Deserialize)]
struct PostExceptDate {
    except_date: Value,
}

/// `POST /scheduled_tasks/{task_id}/except_date {except_date}`: no occurrence on that date (the
/// configured zone's date of the given instant); 201.
async fn except_date(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<PostExceptDate>,
) -> Result<Response, ApiError> {
    let id = match path_id(&id) {
        Ok(id) => id,
        Err(r) => return Ok(r.into_response()),
    };
    let task = stored(&app, id).await?;
    may_change(&app, &user.username, &task).await?;
    let date = local_date(
        app.scheduling.config.tz,
        datetime(&body.except_date, "except_date")?,
    )
    .ok_or_else(|| ScheduleError::Invalid("except_date: out of range".into()))?;
    tasks(&app).add_except_date(id, &date).await?;
    tracing::info!(id, %date, by = %user.username, "scheduled task: except date added");
    app.scheduling.wake.notify_one();
    Ok((StatusCode::CREATED, Json(Value::Null)).into_response())
}

/// `POST /scheduled_tasks/{task_id}/update`: replaces the task request, schedules, bounds and
/// except dates (occurrences already claimed are not dispatched again).
async fn update(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<PostScheduledTask>,
) -> Result<Response, ApiError> {
    let id = match path_id(&id) {
        Ok(id) => id,
        Err(r) => return Ok(r.into_response()),
    };
    let task = stored(&app, id).await?;
    may_change(&app, &user.username, &task).await?;
    may_submit(&app, &user.username, body.task_request.labels.as_deref()).await?;
    let now = app.scheduling.config.clock.now_ms();
    let w = to_write(&app, body, now)?;
    let updated = tasks(&app).update(id, &w).await?;
    tracing::info!(id, by = %user.username, "scheduled task updated");
    app.scheduling.wake.notify_one();
    Ok(Json(updated.to_api()).into_response())
}

/// `DELETE /scheduled_tasks/{task_id}`.
async fn delete_one(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = match path_id(&id) {
        Ok(id) => id,
        Err(r) => return Ok(r.into_response()),
    };
    let task = stored(&app, id).await?;
    may_change(&app, &user.username, &task).await?;
    tasks(&app).delete(id).await?;
    tracing::info!(id, by = %user.username, "scheduled task deleted");
    Ok(Json(Value::Null).into_response())
}

/// `GET /scheduled_tasks/{task_id}/runs` (rmf-dash): the claimed occurrences, oldest first.
async fn runs(
    State(app): State<AppState>,
    AuthUser(_user): AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = match path_id(&id) {
        Ok(id) => id,
        Err(r) => return Ok(r.into_response()),
    };
    stored(&app, id).await?;
    let runs = tasks(&app).runs(id).await?;
    Ok(Json(runs).into_response())
}
