//! Tasks: `GET /tasks` (filtered, sorted, paginated task states, as stored: the fleet adapter's
//! JSON unchanged), `GET /tasks/{task_id}/state`, `GET /tasks/{task_id}/log?between=` (rmf-web's
//! `TaskEventLog`, default window the last minute), `GET /tasks/{task_id}/booking_label` (the
//! booking labels as `{key: value}`), and the original requests of the tasks dispatched here,
//! `GET /tasks/requests` and `GET /tasks/{task_id}/request` ([`crate::store::task_requests`]).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{ReadError, ReadResult, found, now_ms};
use crate::api::query::{Params, QueryError};
use crate::api::read;
use crate::api::{App, AppState, AuthUser};
use crate::error::chain;
use crate::hub::Raw;
use crate::query::{TASK_ORDER_FIELDS, TASK_STATUSES, TaskQuery};

/// The query of `GET /tasks` (rmf-web's parameters and their meaning).
pub fn task_query(params: &Params, now: u64) -> Result<TaskQuery, ReadError> {
    let labels = params
        .list("label")
        .unwrap_or_default()
        .into_iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l, String::new()),
        })
        .collect();
    Ok(TaskQuery {
        task_id: params.list("task_id"),
        category: params.list("category"),
        requester: params.list("requester"),
        assigned_to: params.list("assigned_to"),
        status: params.list("status").map(|s| {
            s.into_iter()
                .filter(|s| TASK_STATUSES.contains(&s.as_str()))
                .collect()
        }),
        labels,
        request_time: params.between("request_time_between", None, now)?,
        start_time: params.between("start_time_between", None, now)?,
        finish_time: params.between("finish_time_between", None, now)?,
        pagination: params.pagination(&TASK_ORDER_FIELDS, true)?,
    })
}

pub async fn query_task_states(
    _: AuthUser,
    State(app): State<AppState>,
    params: Params,
) -> ReadResult<Json<Vec<Raw>>> {
    let query = task_query(&params, now_ms(&app))?;
    if let Some(history) = &app.history {
        // The merge reads the store from its first row: only for pages near the start (a huge
        // `offset` would read every stored task while the writer lags).
        let near = query.pagination.offset <= crate::query::MAX_LIMIT;
        let current = super::stored_now(&app).await || !near;
        let asked = if current {
            query.clone()
        } else {
            query.first_pages()
        };
        match history.tasks(&asked).await {
            Ok(tasks) if current => return Ok(Json(tasks.into_iter().map(Raw::from).collect())),
            Ok(tasks) => {
                let stored = tasks.into_iter().map(Raw::from).collect();
                return Ok(Json(read::tasks_with(&app.hub, &query, stored)));
            }
            Err(e) => tracing::warn!(error = %chain(&e), "task query answered from memory"),
        }
    }
    Ok(Json(read::tasks(&app.hub, &query)))
}

/// A task that ended and left memory (`--ended-task-retention`) is answered from the store.
pub async fn get_task_state(
    _: AuthUser,
    State(app): State<AppState>,
    Path(task_id): Path<String>,
) -> ReadResult<Json<Raw>> {
    found(recall_task_state(&app, &task_id).await, || {
        not_found(&app, &task_id)
    })
    .map(Json)
}

/// The present state of a task: the hub's (the archive's for a task that left memory lately),
/// else the store's ([`crate::hub::Hub::recall`]).
async fn recall_task_state(app: &App, task_id: &str) -> Option<Raw> {
    app.hub.recall(&format!("/tasks/{task_id}/state")).await
}

/// The 404 of a task: without a store, a task that ended long ago may have left memory.
fn not_found(app: &App, task_id: &str) -> String {
    if app.history.is_none() {
        format!(
            "task {task_id} not found (without a store, tasks that ended more than \
             --ended-task-retention ago are evicted from memory)"
        )
    } else {
        format!("task {task_id} not found")
    }
}

pub async fn get_task_log(
    _: AuthUser,
    State(app): State<AppState>,
    Path(task_id): Path<String>,
    params: Params,
) -> ReadResult<Json<Value>> {
    let window = params.between("between", Some("-60000"), now_ms(&app))?;
    let recent = read::task_log_streams(&app.hub, &task_id, window);
    let stored = match &app.history {
        Some(h) => h.task_log(&task_id, window).await.unwrap_or_else(|e| {
            tracing::warn!(error = %chain(&e), "task log answered from memory");
            None
        }),
        None => None,
    };
    let streams = match (recent, stored) {
        (None, None) => None,
        (a, b) => Some(read::merge_streams(
            a.unwrap_or_default(),
            b.unwrap_or_default(),
        )),
    };
    found(streams, || format!("task {task_id} not found"))
        .map(|s| Json(read::task_log(&task_id, s)))
}

/// rmf-web answers its `Labels` model, a bare object `{key: value}`; 404 for an unknown task
/// or one without labels.
pub async fn get_task_booking_label(
    _: AuthUser,
    State(app): State<AppState>,
    Path(task_id): Path<String>,
) -> ReadResult<Json<Map<String, Value>>> {
    let state = recall_task_state(&app, &task_id).await;
    let labels = found(state.as_ref().map(read::task_booking_labels), || {
        not_found(&app, &task_id)
    })?;
    found((!labels.is_empty()).then_some(labels), || {
        format!("task {task_id} has no booking labels")
    })
    .map(Json)
}

/// Task ids one `GET /tasks/requests` may ask for (a bound on the store query).
const MAX_REQUEST_IDS: usize = 1000;

/// `GET /tasks/requests?task_ids=a,b`: the kept requests of those tasks, in the order asked
/// (tasks without one are left out); `[]` without ids.
pub async fn query_task_requests(
    _: AuthUser,
    State(app): State<AppState>,
    params: Params,
) -> ReadResult<Json<Vec<Box<RawValue>>>> {
    let ids = params.list("task_ids").unwrap_or_default();
    if ids.len() > MAX_REQUEST_IDS {
        return Err(QueryError::new(
            "task_ids",
            "too_long",
            format!("At most {MAX_REQUEST_IDS} task ids"),
            &format!("{} ids", ids.len()),
        )
        .into());
    }
    Ok(Json(requests(&app, &ids).await))
}

/// `GET /tasks/{task_id}/request`: the kept request of the task, 404 without one.
pub async fn get_task_request(
    _: AuthUser,
    State(app): State<AppState>,
    Path(task_id): Path<String>,
) -> ReadResult<Json<Box<RawValue>>> {
    let found = requests(&app, std::slice::from_ref(&task_id)).await;
    super::found(found.into_iter().next(), || {
        format!("request of task {task_id} not found")
    })
    .map(Json)
}

/// The kept requests of `ids` (a store that fails answers none, logged).
async fn requests(app: &AppState, ids: &[String]) -> Vec<Box<RawValue>> {
    app.task_requests.get(ids).await.unwrap_or_else(|e| {
        tracing::warn!(error = %chain(&e), "task requests unavailable");
        Vec::new()
    })
}
