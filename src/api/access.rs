//! The HTTP doors of the access layer ([`crate::access`]): the middleware of the ★ command
//! routes and of the REST reads. Decisions are the access layer's; this file finds what they
//! are about (the user from the token, the task a command names, the path read) and answers
//! rmf-web's way: 401 without a valid token, 403 `{"detail": ...}` naming the user and the missing
//! permission, 503 when grants cannot be read.
//!
//! Commands: each route needs one action (rmf-web's `task_submit` and `task_cancel`, and
//! rmf-dash's finer actions for the other commands); admins may do everything. With
//! `--no-auth` nothing is enforced; nor without a store (`--no-db`): users then live in memory
//! ([`enforced`] says why they are not enforced). Which group, by route, never by the shape of
//! the body (DESIGN.md invariant 11):
//! - a dispatch or robot task (`task_submit`) creates the task: the group of the request's own
//!   `request.labels`;
//! - every other task command acts on an existing task, named by `task_id` (`for_task` for
//!   resume and undo skip): the group of that task as stored ([`stored_task_group`]). Labels the
//!   client sends never choose the group; the bodies of these routes reject unknown fields.
//! - A task the server does not know (no state), or a body that names no task: the site-wide
//!   group. Only a user whose permission covers every group may command a task whose group the
//!   server cannot prove (an admin, or one with the action in `""`; RMF may know a task whose
//!   state never reached the server). Not 404: a command on a task RMF knows but the server
//!   has not seen still works for those users, as in rmf-web, which forwards it.
//!
//! Reads: a REST read whose path (under the URL prefix, percent-decoded) falls under a room rule
//! needs the rule's permission, as the room of that name does ([`restrict_reads`]).

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::OnceCell;

use super::{ApiError, AppState};
use crate::access::groups::{SITE_GROUP, forbidden, group_of_state, labels_of, task_group};
use crate::access::rooms::Refusal;
use crate::access::token::Auth;
use crate::users::Users;

/// The users whose permissions are enforced (on command routes, scheduled tasks and their
/// dispatch): the store's. Users in memory (`--no-db`) are answered but not enforced, as before
/// they existed: their roles would be lost at every restart, leaving everyone but the admin
/// unable to send a command.
pub fn enforced(app: &AppState) -> Option<&Users> {
    Some(&*app.users).filter(|u| !u.in_memory())
}

/// Largest body read to find a task command's group.
const MAX_BODY: usize = 1 << 20;

/// The action of the routes that create a task (dispatch, robot task).
const SUBMIT: &str = "task_submit";

/// The routes whose body names the target task `for_task` (the others name it `task_id`).
const FOR_TASK_ROUTES: [&str; 2] = ["/tasks/resume_task", "/tasks/undo_skip_phase"];

/// The group a task command on route `matched` acts on: for `task_submit` (the task does not
/// exist yet) the group of the request's `request.labels`; otherwise the group of the stored
/// task the body names.
fn group_of_command(app: &AppState, matched: &str, action: &str, body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return SITE_GROUP.into();
    };
    if action == SUBMIT {
        let labels = v.get("request").and_then(|r| r.get("labels"));
        return task_group(labels_of(labels).as_deref());
    }
    let field = if FOR_TASK_ROUTES.iter().any(|r| matched.ends_with(r)) {
        "for_task"
    } else {
        "task_id"
    };
    v.get(field)
        .and_then(serde_json::Value::as_str)
        .map_or_else(|| SITE_GROUP.into(), |task| stored_task_group(app, task))
}

/// The group of task `task_id` as stored: the `authz_grp` booking label of its present state;
/// [`SITE_GROUP`] for a task without state (see the module header).
pub fn stored_task_group(app: &AppState, task_id: &str) -> String {
    let state: Option<serde_json::Value> = app
        .hub
        .get(&format!("/tasks/{task_id}/state"))
        .and_then(|(_, v)| v)
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    group_of_state(state.as_ref())
}

/// The action a matched route path (possibly under a prefix) needs, if any: the `action` of its
/// entry in [`crate::api::commands::COMMANDS`].
pub fn action_of(matched: &str) -> Option<&'static str> {
    crate::api::commands::COMMANDS
        .iter()
        .find(|r| matched.ends_with(r.path))
        .and_then(|r| r.action)
}

/// Middleware of the command routes: lets the request through when its user may do the route's
/// action; 401 without a valid token, 403 without the permission.
pub async fn enforce(
    State(app): State<AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let action = matched.as_ref().and_then(|m| action_of(m.as_str()));
    let (Some(action), Some(users)) = (action, enforced(&app)) else {
        return next.run(request).await;
    };
    if !app.auth.enabled() {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let user = match app.auth.verify(Auth::bearer(header)) {
        Ok(user) => user,
        Err(e) => return ApiError(StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    };
    // Task commands: the group of the task (the body is read, bounded, and passed on).
    let (request, group) = if let Some(matched) = matched.filter(|_| action.starts_with("task_")) {
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a task request is at most {MAX_BODY} bytes"),
                )
                .into_response();
            }
        };
        let group = group_of_command(&app, matched.as_str(), action, &bytes);
        (
            Request::from_parts(parts, axum::body::Body::from(bytes)),
            group,
        )
    } else {
        (request, SITE_GROUP.to_string())
    };
    let allowed = async {
        let info = users.load_or_create(&user.username).await?;
        users.is_authorized(&info, &group, action).await
    }
    .await;
    match allowed {
        Ok(true) => next.run(request).await,
        Ok(false) => {
            tracing::info!(username = %user.username, action, authz_grp = %group, "users: command refused (no permission)");
            ApiError(
                StatusCode::FORBIDDEN,
                forbidden(&user.username, &group, action),
            )
            .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Middleware of the REST read routes of the main process: a read whose path falls under a room
/// rule needs the rule's permission. Public routes (the map's images, `/openapi.json`) stay
/// public.
pub async fn restrict_reads(
    State(app): State<AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let Some(access) = app.sockets.room_access() else {
        return next.run(request).await;
    };
    let public = matched
        .as_ref()
        .is_some_and(|m| super::routes::is_public(m.as_str()));
    let path = percent_encoding::percent_decode_str(request.uri().path())
        .decode_utf8_lossy()
        .into_owned();
    if public || access.action_for(&path).is_none() {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let user = match app.auth.verify(Auth::bearer(header)) {
        Ok(user) => user,
        Err(e) => return ApiError(StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    };
    match access
        .may_read(&OnceCell::new(), &user.username, None, &path)
        .await
    {
        Ok(()) => next.run(request).await,
        Err(Refusal::Forbidden(detail)) => ApiError(StatusCode::FORBIDDEN, detail).into_response(),
        Err(Refusal::Unavailable(detail)) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, detail).into_response()
        }
    }
}
