//! Enforcement of permissions on the ★ command routes: each route needs one action (rmf-web's
//! `task_submit` and `task_cancel`, and rmf-dash's finer actions for the other commands) in the
//! site-wide group `authz_grp = ""`; admins may do everything. Refusals are 403
//! `{"detail": ...}` naming the user and the missing permission. Without a store (`--no-db`) or
//! with `--no-auth` nothing is enforced.

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::auth::Auth;
use crate::api::{ApiError, AppState};

/// The group of the permissions the command routes check.
pub const SITE_GROUP: &str = "";

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
    let (Some(action), Some(users)) = (action, &app.users) else {
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
    let allowed = async {
        let info = users.load_or_create(&user.username).await?;
        users.is_authorized(&info, SITE_GROUP, action).await
    }
    .await;
    match allowed {
        Ok(true) => next.run(request).await,
        Ok(false) => {
            tracing::info!(username = %user.username, action, "users: command refused (no permission)");
            ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "user {} may not do this: it needs the permission \
                     {{authz_grp: \"{SITE_GROUP}\", action: \"{action}\"}} through one of its roles",
                    user.username
                ),
            )
            .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
