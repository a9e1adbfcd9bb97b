//! Which socket.io rooms, and REST reads of the same paths, a role restricts
//! (`--room-permission PREFIX=ACTION`), and where a reader's grants come from: the store on the
//! main process, the main process's `/user` and `/permissions` (asked with the client's own
//! token) on a proxy. Without a rule (the default), any authenticated user reads every room, as
//! with rmf-web.
//!
//! A room restricted by a rule needs the rule's action in the site-wide group `""` (admins may
//! read everything). The rule with the longest matching prefix decides. A connection's grants
//! are read once, at its first subscription to a restricted room, and kept for the connection's
//! life: a change of roles applies when the client reconnects. A REST read whose path falls
//! under a rule ([`restrict_reads`], main process) reads the grants for that request; a proxy
//! forwards such reads to the main process instead of answering them from its cache.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::OnceCell;

use super::enforce::SITE_GROUP;
use super::{Permission, Users};
use crate::api::auth::Auth;
use crate::api::{ApiError, AppState};
use crate::proxy::forward::{self, Upstream};
use crate::proxy::link::LinkStatus;

/// Largest `/user` or `/permissions` answer read from upstream.
const MAX_ANSWER: usize = 1 << 20;

/// Most rules accepted.
pub const MAX_RULES: usize = 256;

/// One rule: rooms whose name starts with `prefix` need `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRule {
    pub prefix: String,
    pub action: String,
}

impl FromStr for RoomRule {
    type Err = String;

    /// `PREFIX=ACTION`, like `/alerts=alert_read`; the prefix starts with `/`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (prefix, action) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected PREFIX=ACTION, like /alerts=alert_read"))?;
        if !prefix.starts_with('/') {
            return Err(format!("{s:?}: the room prefix must start with /"));
        }
        super::check_name("action", action, false).map_err(|e| format!("{s:?}: {e}"))?;
        super::check_name("room prefix", prefix, false).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(RoomRule {
            prefix: prefix.to_string(),
            action: action.to_string(),
        })
    }
}

/// What one user may read: everything (admin), or the rooms of the site-wide actions it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    pub admin: bool,
    pub actions: BTreeSet<String>,
}

impl Grants {
    fn from_permissions(admin: bool, permissions: Vec<Permission>) -> Self {
        Grants {
            admin,
            actions: permissions
                .into_iter()
                .filter(|p| p.authz_grp == SITE_GROUP)
                .map(|p| p.action)
                .collect(),
        }
    }

    pub fn allows(&self, action: &str) -> bool {
        self.admin || self.actions.contains(action)
    }
}

/// Where grants are read.
pub enum GrantSource {
    /// The users' store (the main process).
    Store(Arc<Users>),
    /// The upstream the proxy follows now (`link.current`), asked with the client's token.
    Upstream {
        upstreams: Vec<Upstream>,
        link: Arc<LinkStatus>,
    },
}

/// The rules and where grants come from.
pub struct RoomAccess {
    rules: Vec<RoomRule>,
    source: GrantSource,
}

impl RoomAccess {
    /// `None` without rules: nothing is restricted.
    pub fn new(rules: Vec<RoomRule>, source: GrantSource) -> Option<Arc<Self>> {
        (!rules.is_empty()).then(|| Arc::new(RoomAccess { rules, source }))
    }

    /// Whether grants need the client's token (a proxy asks upstream with it).
    pub fn needs_token(&self) -> bool {
        matches!(self.source, GrantSource::Upstream { .. })
    }

    /// The action reading `room` needs: the longest matching rule's.
    pub fn action_for(&self, room: &str) -> Option<&str> {
        self.rules
            .iter()
            .filter(|r| room.starts_with(&r.prefix))
            .max_by_key(|r| r.prefix.len())
            .map(|r| r.action.as_str())
    }

    /// The grants of `username` (`token`: the client's JWT, for a proxy).
    pub async fn grants(&self, username: &str, token: Option<&str>) -> Result<Grants, String> {
        match &self.source {
            GrantSource::Store(users) => {
                let info = users
                    .load_or_create(username)
                    .await
                    .map_err(|e| e.to_string())?;
                let permissions = if info.is_admin {
                    Vec::new()
                } else {
                    users
                        .effective_permissions(username)
                        .await
                        .map_err(|e| e.to_string())?
                };
                Ok(Grants::from_permissions(info.is_admin, permissions))
            }
            GrantSource::Upstream { upstreams, link } => {
                let i = link.current.load(Ordering::Relaxed);
                let upstream = upstreams
                    .get(i)
                    .or(upstreams.first())
                    .ok_or("no upstream")?;
                let token = token.ok_or("no token")?;
                let user = upstream_get(upstream, "/user", token).await?;
                let admin = user
                    .get("is_admin")
                    .and_then(serde_json::Value::as_bool)
                    .ok_or("upstream /user has no is_admin")?;
                let permissions = if admin {
                    Vec::new()
                } else {
                    serde_json::from_value(upstream_get(upstream, "/permissions", token).await?)
                        .map_err(|e| format!("upstream /permissions: {e}"))?
                };
                Ok(Grants::from_permissions(admin, permissions))
            }
        }
    }

    /// Whether `username` may read `name` (a room, or a REST path named like one). `grants`
    /// holds the user's grants once read (per connection on socket.io, per request on REST);
    /// `token` is the client's JWT, for a proxy.
    pub async fn may_read(
        &self,
        grants: &OnceCell<Grants>,
        username: &str,
        token: Option<&str>,
        name: &str,
    ) -> Result<(), Refusal> {
        let Some(action) = self.action_for(name) else {
            return Ok(());
        };
        let grants = grants
            .get_or_try_init(|| self.grants(username, token))
            .await
            .map_err(|e| {
                Refusal::Unavailable(format!(
                    "the permissions of {username} are unavailable: {e}"
                ))
            })?;
        if grants.allows(action) {
            Ok(())
        } else {
            tracing::info!(%username, name, action, "room rules: read refused (no permission)");
            Err(Refusal::Forbidden(forbidden(username, name, action)))
        }
    }
}

/// Why a read was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The user lacks the permission (the text names it).
    Forbidden(String),
    /// The user's grants could not be read.
    Unavailable(String),
}

/// Middleware of the REST read routes of the main process: a read whose path (under the URL
/// prefix, percent-decoded) falls under a rule needs the rule's permission, as the room of that
/// name does: 401 without a valid token, 403 `{"detail": ...}` without the permission, 503 when
/// the grants cannot be read. Public routes (the map's images, `/openapi.json`) stay public.
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
        .is_some_and(|m| crate::api::routes::is_public(m.as_str()));
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

/// `GET path` on `upstream` with the client's token: the JSON answer of a 200.
async fn upstream_get(
    upstream: &Upstream,
    path: &str,
    token: &str,
) -> Result<serde_json::Value, String> {
    let request = axum::http::Request::get(format!("{}{path}", upstream.prefix))
        .header(header::HOST, &upstream.authority)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONNECTION, "close")
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        forward::send(&upstream.authority, request),
    )
    .await
    .map_err(|_| format!("upstream {path} did not answer in time"))?
    .map_err(|e| format!("upstream {path}: {e}"))?;
    let status = answer.status();
    let body = axum::body::to_bytes(Body::new(answer.into_body()), MAX_ANSWER)
        .await
        .map_err(|e| format!("upstream {path}: {e}"))?;
    if status != StatusCode::OK {
        return Err(format!(
            "upstream {path} answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("upstream {path}: {e}"))
}

/// The refusal of a restricted room.
pub fn forbidden(username: &str, room: &str, action: &str) -> String {
    format!(
        "user {username} may not read {room}: it needs the permission \
         {{authz_grp: \"\", action: \"{action}\"}} through one of its roles"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(rules: &[&str]) -> RoomAccess {
        RoomAccess {
            rules: rules.iter().map(|r| r.parse().expect("rule")).collect(),
            source: GrantSource::Upstream {
                upstreams: Vec::new(),
                link: Arc::new(LinkStatus::default()),
            },
        }
    }

    #[test]
    fn the_longest_matching_prefix_decides() {
        let a = access(&[
            "/alerts=alert_read",
            "/alerts/requests=alert_admin",
            "/=all",
        ]);
        assert_eq!(a.action_for("/alerts/responses"), Some("alert_read"));
        assert_eq!(a.action_for("/alerts/requests"), Some("alert_admin"));
        assert_eq!(a.action_for("/doors/d1/state"), Some("all"));
        let a = access(&["/tasks=task_read"]);
        assert_eq!(a.action_for("/doors/d1/state"), None);
    }

    #[test]
    fn rules_are_checked() {
        assert!("alerts=alert_read".parse::<RoomRule>().is_err());
        assert!("/alerts".parse::<RoomRule>().is_err());
        assert!("/alerts=".parse::<RoomRule>().is_err());
        assert_eq!(
            "/a=b=c".parse::<RoomRule>(),
            Ok(RoomRule {
                prefix: "/a".into(),
                action: "b=c".into()
            })
        );
    }

    #[test]
    fn grants_hold_site_wide_actions_only() {
        let p = |g: &str, a: &str| Permission {
            authz_grp: g.into(),
            action: a.into(),
        };
        let g = Grants::from_permissions(false, vec![p("", "alert_read"), p("west", "task_read")]);
        assert!(g.allows("alert_read"));
        assert!(!g.allows("task_read"));
        assert!(Grants::from_permissions(true, Vec::new()).allows("anything"));
    }
}
