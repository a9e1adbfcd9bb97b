//! The routes of a standby main process (it waits for the leadership of its site,
//! [`crate::store::leader`]): `/health` answers 503 with `"status": "standby"` (a load balancer
//! routes to the active process only), `/metrics` has the leader gauges, and every other request
//! (REST, socket.io, commands, `/_internal`, `/_replicate`) answers 503 with a message naming
//! the situation. A standby holds no state: its state is restored from the store when it takes
//! over.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::metrics::Metrics;
use crate::store::leader::{Leadership, Role};

/// What the standby's handlers share.
pub struct Standby {
    pub leadership: Leadership,
    pub started: std::time::Instant,
}

/// The standby's routes, under `prefix`.
pub fn router(state: Arc<Standby>, prefix: &str) -> axum::Router {
    use axum::routing::get;
    let routes = axum::Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics));
    let routes = if prefix.is_empty() || prefix == "/" {
        routes
    } else {
        axum::Router::new().nest(prefix, routes)
    };
    routes.fallback(refuse).with_state(state)
}

fn status(l: &Leadership) -> &'static str {
    match l.role() {
        // The lock is held; the state is being restored.
        Role::Active => "restoring",
        r => r.as_str(),
    }
}

async fn health(State(s): State<Arc<Standby>>) -> impl IntoResponse {
    let l = &s.leadership;
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "status": status(l),
            "role": l.role().as_str(),
            "leader": {
                "site": l.site(),
                "writer": l.writer(),
                "attempts": l.attempts(),
            },
            "uptime_s": s.started.elapsed().as_secs(),
        })),
    )
}

async fn metrics(State(s): State<Arc<Standby>>) -> Metrics {
    let mut m = Metrics::new();
    m.gauge("rmf_dash_leader", super::system::LEADER_HELP, 0);
    m.counter(
        "rmf_dash_leader_attempts_total",
        "Attempts to take the leadership lock.",
        s.leadership.attempts(),
    );
    m
}

async fn refuse(State(s): State<Arc<Standby>>) -> impl IntoResponse {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "detail": format!(
                "standby: this main process is not the active one of site {:?}; it takes over \
                 when the active one is gone (send this to the active main process; see /health)",
                s.leadership.site()
            )
        })),
    )
}
