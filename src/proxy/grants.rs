//! A proxy's source of grants for the access layer's room rules: the upstream it follows now
//! (`link.current`), asked `/user` and `/permissions` with the client's own token, so a proxy
//! decides as the main process would without a store of its own.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{StatusCode, header};
use futures_util::future::BoxFuture;

use super::forward::{self, Upstream};
use super::link::LinkStatus;
use crate::access::rooms::{GrantSource, Grants};

/// Largest `/user` or `/permissions` answer read from upstream.
const MAX_ANSWER: usize = 1 << 20;

/// The upstreams of a proxy and which one it follows now.
pub struct UpstreamGrants {
    pub upstreams: Vec<Upstream>,
    pub link: Arc<LinkStatus>,
}

/// One permission as `/permissions` answers it.
#[derive(serde::Deserialize)]
struct Permission {
    authz_grp: String,
    action: String,
}

impl GrantSource for UpstreamGrants {
    fn grants<'a>(
        &'a self,
        _username: &'a str,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Grants, String>> {
        Box::pin(async move {
            let i = self.link.current.load(Ordering::Relaxed);
            let upstream = self
                .upstreams
                .get(i)
                .or(self.upstreams.first())
                .ok_or("no upstream")?;
            let token = token.ok_or("no token")?;
            let user = upstream_get(upstream, "/user", token).await?;
            let admin = user
                .get("is_admin")
                .and_then(serde_json::Value::as_bool)
                .ok_or("upstream /user has no is_admin")?;
            let permissions: Vec<Permission> = if admin {
                Vec::new()
            } else {
                serde_json::from_value(upstream_get(upstream, "/permissions", token).await?)
                    .map_err(|e| format!("upstream /permissions: {e}"))?
            };
            Ok(Grants::from_permissions(
                admin,
                permissions.into_iter().map(|p| (p.authz_grp, p.action)),
            ))
        })
    }

    fn needs_token(&self) -> bool {
        true
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
