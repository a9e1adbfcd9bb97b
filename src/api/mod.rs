//! The HTTP surface (axum): REST routes of COMPAT.md, `/health`, `/metrics`, and the shared
//! state of the handlers. Every route needs a valid token (`Authorization: Bearer <JWT>`, checked
//! by the [`AuthUser`] extractor) but the public ones: `/health`, `/metrics`, `/time`,
//! `/openapi.json` and the building map images (loaded by browsers from `<img>` URLs);
//! `/_internal` checks its own credential (see [`crate::ingest::internal::InternalAccess`]).

pub mod access;
pub mod body;
pub mod commands;
pub mod query;
pub mod read;
pub mod routes;
pub mod standby;
pub mod system;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::access::token::{Auth, User};
use crate::hub::Hub;
use crate::ingest::feed::{FeedHandle, FeedMetrics};

/// What every handler shares.
pub struct App {
    pub hub: Arc<Hub>,
    pub auth: Auth,
    /// Inputs from `/_internal` and other live sources go here.
    pub feed: FeedHandle,
    pub feed_metrics: Arc<FeedMetrics>,
    /// Commands to RMF go through it.
    pub link: Arc<dyn crate::rmf_link::RmfLink>,
    pub sockets: Arc<crate::hub::socketio::SocketState>,
    pub started: std::time::Instant,
    /// The engine's output frontier (logical ms).
    pub delivered: Arc<std::sync::atomic::AtomicU64>,
    /// Whether the engine still runs.
    pub engine_running: Arc<std::sync::atomic::AtomicBool>,
    /// The store writer's state; `None` when running without a database.
    pub store: Option<Arc<crate::store::StoreMetrics>>,
    /// `/_internal` access, bounds and counters.
    pub internal: crate::ingest::internal::Internal,
    /// The images of the latest building map (`GET /building_map/images/...`).
    pub map_images: Arc<crate::ingest::feed::MapImages>,
    /// Users, roles, permissions and favorites: the store's, or in memory with `--no-db` (then
    /// answered, not enforced: see [`access::enforced`]).
    pub users: Arc<crate::users::Users>,
    /// Scheduled tasks: time zone, clock, and the dispatch loop's wake-up.
    pub scheduling: Arc<crate::scheduled::dispatch::Scheduling>,
    /// The requests of the tasks dispatched here (store, or memory without one).
    pub task_requests: Arc<crate::store::task_requests::TaskRequests>,
    /// History reads from the store; `None` without one (history is the hub's recent events).
    pub history: Option<Arc<crate::store::history::History>>,
    /// This process's role among the main processes of its site (always active without a
    /// store): anything that must act only on the active process checks `is_active()` or
    /// follows `watch()`.
    pub leader: crate::store::leader::Leadership,
    /// The HTTP listener's connection counters.
    pub http: Arc<crate::listener::ListenerMetrics>,
    /// Engine inputs that made a worker panic (`/health`, `/metrics`).
    pub quarantine: Arc<crate::quarantine::Quarantine>,
    /// What the engine holds (`/metrics`).
    pub engine_held: crate::engine::Held,
}

/// Every route, under `prefix`.
pub fn router(app: AppState, prefix: &str) -> axum::Router {
    use axum::routing::get;
    let routes = axum::Router::new()
        .route("/health", get(system::health))
        .route("/metrics", get(system::metrics))
        .route("/time", get(system::time))
        .merge(crate::users::routes::router())
        .merge(crate::scheduled::routes::router())
        .merge(
            commands::routes(app.link.as_loopback().is_some()).route_layer(
                axum::middleware::from_fn_with_state(app.clone(), access::enforce),
            ),
        )
        .route("/_internal", get(crate::ingest::internal::handler))
        // Proxies replicate the rooms through it.
        .merge(crate::proxy::replicate::router(
            crate::proxy::replicate::Replicas::new(
                app.hub.clone(),
                app.auth.clone(),
                app.sockets.room_access().cloned(),
                app.leader.lineage(),
            ),
        ))
        .merge(
            routes::router().route_layer(axum::middleware::from_fn_with_state(
                app.clone(),
                access::restrict_reads,
            )),
        )
        .merge(crate::view::routes(prefix))
        .with_state(app);
    if prefix.is_empty() || prefix == "/" {
        routes
    } else {
        axum::Router::new().nest(prefix, routes)
    }
}

pub type AppState = Arc<App>;

/// An error answered as rmf-web does: a status and `{"detail": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({"detail": self.1}))).into_response()
    }
}

/// The authenticated user of a request.
pub struct AuthUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        app.auth
            .verify(Auth::bearer(header))
            .map(AuthUser)
            .map_err(|e| ApiError(StatusCode::UNAUTHORIZED, e.to_string()))
    }
}
