//! Enforcement of permissions on the ★ command routes: each route needs one action (rmf-web's
//! `task_submit` and `task_cancel`, and rmf-dash's finer actions for the other commands); admins
//! may do everything. Refusals are 403 `{"detail": ...}` naming the user and the missing
//! permission. With `--no-auth` nothing is enforced; nor without a store (`--no-db`): users
//! then live in memory ([`enforced`] says why they are not enforced).
//!
//! Groups (`authz_grp`), as rmf-web's authorization model: a task belongs to one group, the
//! value of its booking label `authz_grp=<group>` (no such label: the site-wide group `""`). A
//! task action (`task_*`) needs the permission in the task's group. A permission in the
//! site-wide group `""` covers every group. The other commands need their action in `""`.
//!
//! Which group, by route, never by the shape of the body (DESIGN.md invariant 11):
//! - a dispatch or robot task (`task_submit`) creates the task: the group of the request's own
//!   `request.labels`;
//! - every other task command acts on an existing task, named by `task_id` (`for_task` for
//!   resume and undo skip): the group of that task as stored, from the `booking.labels` of its
//!   present state (`/tasks/{id}/state`). Labels the client sends (`labels`, or anything else in
//!   the body) never choose the group; the bodies of these routes reject unknown fields.
//! - A task the server does not know (no state), or a body that names no task: the site-wide
//!   group. Only a user whose permission covers every group may command a task whose group the
//!   server cannot prove (an admin, or one with the action in `""`; RMF may know a task whose
//!   state never reached the server). Not 404: a command on a task RMF knows but the server
//!   has not seen still works for those users, as in rmf-web, which forwards it.

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Users;
use crate::api::auth::Auth;
use crate::api::{ApiError, AppState};

/// The site-wide group: the group of the non-task commands, and of tasks without a group
/// label; a permission in it covers every group.
pub const SITE_GROUP: &str = "";

/// The booking label key that names a task's group.
pub const GROUP_LABEL: &str = "authz_grp";

/// The action of the routes that create a task (dispatch, robot task).
const SUBMIT: &str = "task_submit";

/// Largest body read to find a task command's group.
const MAX_BODY: usize = 1 << 20;

/// The users whose permissions are enforced (on command routes, scheduled tasks and their
/// dispatch): the store's. Users in memory (`--no-db`) are answered but not enforced, as before
/// they existed: their roles would be lost at every restart, leaving everyone but the admin
/// unable to send a command.
pub fn enforced(app: &AppState) -> Option<&Users> {
    Some(&*app.users).filter(|u| !u.in_memory())
}

/// The group of a task from its labels (`authz_grp=<group>`, else [`SITE_GROUP`]).
pub fn task_group(labels: Option<&[String]>) -> String {
    labels
        .into_iter()
        .flatten()
        .find_map(|l| {
            l.split_once('=')
                .filter(|(k, _)| *k == GROUP_LABEL)
                .map(|(_, v)| v.to_string())
        })
        .unwrap_or_else(|| SITE_GROUP.to_string())
}

fn labels_of(v: Option<&serde_json::Value>) -> Option<Vec<String>> {
    v?.as_array().map(|a| {
        a.iter()
            .filter_map(|l| l.as_str().map(str::to_string))
            .collect()
    })
}

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
    task_group(labels_of(state.as_ref().and_then(|s| s.pointer("/booking/labels"))).as_deref())
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

/// The 403 detail of a refused action.
pub fn forbidden(username: &str, group: &str, action: &str) -> String {
    format!(
        "user {username} may not do this: it needs the permission \
         {{authz_grp: \"{group}\", action: \"{action}\"}} through one of its roles"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_s_group_is_its_authz_grp_label() {
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(task_group(None), "");
        assert_eq!(
            task_group(Some(&labels(&["zone=a", "authz_grp=west"]))),
            "west"
        );
        assert_eq!(task_group(Some(&labels(&["authz_grp"]))), "");
        assert_eq!(task_group(Some(&labels(&["authz_grp="]))), "");
    }
}
