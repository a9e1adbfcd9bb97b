//! `rmf-dash proxy`: a process that fans the main process's room stream out to more clients
//! (DESIGN.md: only the main process ingests, derives and writes RMF data; proxies read).
//!
//! A proxy serves the same socket.io protocol and rooms as the main process from its own hub,
//! fed by one replication link to its upstream (the main process or another proxy: proxies
//! chain into a tree), subscribing rooms upstream on demand ([`link`]); it serves
//! `/_replicate` itself ([`replicate`]), `/health` and `/metrics` of its own, the reads of one
//! followed state room from its hub ([`cache`]), and forwards every other REST request (reads
//! and ★ commands) to its upstream ([`forward`]).

pub mod cache;
pub mod forward;
pub mod frame;
pub mod grants;
pub mod link;
pub mod replicate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use thiserror::Error;

use crate::access::rooms::RoomAccess;
use crate::access::token::{Auth, AuthConfigError};
use crate::hub::Hub;
use crate::hub::socketio::{self, SocketState};
use crate::metrics::Metrics;

#[derive(Debug, Error)]
pub enum ProxyError {
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error(transparent)]
    Upstream(#[from] forward::ForwardError),
    #[error(transparent)]
    Edge(#[from] crate::edge::EdgeError),
    #[error(transparent)]
    Listen(#[from] crate::listener::ListenError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Everything `proxy` needs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `http://host:port[/prefix]` of the main process or of another proxy; several: the main
    /// processes of one site (the link follows the active one).
    pub upstreams: Vec<String>,
    /// JWT the proxy gives upstream on `/_replicate`.
    pub upstream_token: Option<String>,
    pub listen: SocketAddr,
    /// URL prefix of every route ("" or like "/api").
    pub prefix: String,
    pub jwt_secret: Option<String>,
    pub jwt_public_key: Option<String>,
    pub jwt_aud: String,
    pub jwt_iss: Option<String>,
    pub no_auth: bool,
    /// socket.io rooms restricted to some roles (the grants are asked of the upstream).
    pub room_permissions: Vec<crate::access::rooms::RoomRule>,
    /// Changes from upstream are gathered this long before they are delivered (`--batch-ms`).
    pub batch: std::time::Duration,
    /// CORS origins and the public URL (`--cors-origin`, `--public-url`).
    pub edge: crate::edge::EdgeConfig,
    /// Header and idle timeouts, open connections (`--header-timeout-ms`, ...).
    pub listener: crate::listener::ListenerConfig,
    /// Rooms held and per client, bytes per socket queue (`--max-rooms`, ...).
    pub hub: crate::hub::HubBounds,
}

/// What the proxy's handlers share.
pub struct Proxy {
    pub hub: Arc<Hub>,
    pub auth: Auth,
    /// Every upstream; the one followed is `link.current`.
    pub upstreams: Vec<forward::Upstream>,
    pub link: Arc<link::LinkStatus>,
    pub sockets: Arc<SocketState>,
    pub replicas: Arc<replicate::Replicas>,
    pub cache: cache::CacheMetrics,
    pub started: std::time::Instant,
    /// The HTTP listener's connection counters.
    pub http: Arc<crate::listener::ListenerMetrics>,
}

pub type ProxyState = Arc<Proxy>;

impl Proxy {
    /// The upstream followed now (or last): where REST requests are forwarded.
    pub fn upstream(&self) -> &forward::Upstream {
        let i = self.link.current.load(Ordering::Relaxed);
        &self.upstreams[i.min(self.upstreams.len().saturating_sub(1))]
    }
}

/// The proxy's routes, under `prefix`.
pub fn router(proxy: ProxyState, prefix: &str) -> axum::Router {
    use axum::routing::get;
    let routes = axum::Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/_internal", axum::routing::any(not_here))
        .merge(replicate::router(proxy.replicas.clone()))
        .fallback(forward::forward)
        .with_state(proxy);
    if prefix.is_empty() || prefix == "/" {
        routes
    } else {
        axum::Router::new().nest(prefix, routes)
    }
}

async fn not_here() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(
            json!({"detail": "a proxy does not ingest: connect fleet adapters to the main process"}),
        ),
    )
}

/// Readiness: the upstream link is up (503 otherwise, so a load balancer sends clients to a
/// proxy that has data).
async fn health(State(p): State<ProxyState>) -> impl IntoResponse {
    let connected = p.link.connected.load(Ordering::Relaxed);
    let body = json!({
        "status": if connected { "ok" } else { "unavailable" },
        "role": "proxy",
        "upstream": {
            "url": format!("http://{}{}", p.upstream().authority, p.upstream().prefix),
            "urls": p.upstreams.iter().map(|u| format!("http://{}{}", u.authority, u.prefix)).collect::<Vec<_>>(),
            "connected": connected,
            "epoch": p.link.epoch.lock().clone(),
            "connects": p.link.connects.load(Ordering::Relaxed),
            "restarts_seen": p.link.epochs.load(Ordering::Relaxed),
            "rooms": p.link.rooms.load(Ordering::Relaxed),
        },
        "epoch": p.replicas.epoch,
        "uptime_s": p.started.elapsed().as_secs(),
    });
    let status = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus text format: the upstream link, the REST cache, replication, and the families
/// every process with sockets has ([`SocketState::write_metrics`]).
async fn metrics(State(p): State<ProxyState>) -> Metrics {
    let mut m = Metrics::new();
    let l = &p.link;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    m.gauge(
        "rmf_dash_proxy_upstream_connected",
        "Whether the upstream link is up.",
        u64::from(l.connected.load(Ordering::Relaxed)),
    );
    m.counter(
        "rmf_dash_proxy_upstream_connects_total",
        "Upstream link connections made.",
        load(&l.connects),
    );
    m.counter(
        "rmf_dash_proxy_upstream_restarts_total",
        "Upstream epoch changes seen (upstream restarts).",
        load(&l.epochs),
    );
    m.counter(
        "rmf_dash_proxy_frames_total",
        "Frames received from upstream.",
        load(&l.frames),
    );
    m.counter(
        "rmf_dash_proxy_frames_stale_total",
        "Frames dropped as duplicates or older than the value held.",
        load(&l.stale),
    );
    m.counter(
        "rmf_dash_proxy_frames_invalid_total",
        "Frames from upstream that could not be decoded.",
        load(&l.invalid),
    );
    m.gauge(
        "rmf_dash_proxy_upstream_rooms",
        "Rooms subscribed upstream.",
        load(&l.rooms),
    );
    m.counter(
        "rmf_dash_proxy_rest_cached_total",
        "REST reads answered from the proxy's hub (not forwarded).",
        load(&p.cache.hits),
    );
    m.gauge(
        "rmf_dash_replication_links",
        "Connected downstream replication links (chained proxies).",
        load(&p.replicas.connections),
    );
    p.sockets.write_metrics(&mut m);
    p.http.write_metrics(&mut m);
    crate::metrics::write_json_refused(&mut m);
    m
}

/// A running proxy.
pub struct Running {
    pub addr: SocketAddr,
    pub proxy: ProxyState,
    server: crate::listener::Server,
}

/// Starts the link and the server; returns once the server listens.
pub async fn start(config: ProxyConfig) -> Result<Running, ProxyError> {
    let auth = Auth::new(
        config.jwt_secret.as_deref(),
        config.jwt_public_key.as_deref(),
        &config.jwt_aud,
        config.jwt_iss.as_deref(),
        config.no_auth,
    )?;
    if !auth.enabled() {
        tracing::warn!(
            "authentication is disabled (--no-auth): every client is user `stub`; do not expose this proxy"
        );
    }
    let upstreams = config
        .upstreams
        .iter()
        .map(|u| forward::Upstream::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    if upstreams.is_empty() {
        return Err(forward::ForwardError::Url("no upstream given".into()).into());
    }
    let listener = crate::listener::bind(config.listen, &config.listener).await?;
    let edge = crate::edge::Edge::new(&config.edge, listener.local_addr()?, &config.prefix)?;
    let hub = Arc::new(Hub::with_bounds(config.hub));
    // The map's image URLs point at this proxy (which forwards their reads upstream).
    hub.set_rewrite(Arc::new(edge.map_urls()));
    let link = link::spawn(
        hub.clone(),
        link::LinkConfig {
            urls: upstreams.iter().map(|u| u.replicate_url()).collect(),
            token: config.upstream_token.clone(),
            batch: config.batch,
        },
    );
    let rooms = RoomAccess::new(
        config.room_permissions.clone(),
        Arc::new(grants::UpstreamGrants {
            upstreams: upstreams.clone(),
            link: link.clone(),
        }),
    );
    let sockets = SocketState::new(hub.clone(), auth.clone(), rooms);
    let (layer, _io) = socketio::layer(sockets.clone(), &config.prefix);
    let bounds = crate::listener::Bounds {
        config: config.listener.clone(),
        metrics: Default::default(),
    };
    let proxy = Arc::new(Proxy {
        replicas: replicate::Replicas::new(
            hub.clone(),
            auth.clone(),
            sockets.room_access().cloned(),
            None,
        ),
        hub: hub.clone(),
        auth,
        upstreams,
        link,
        sockets,
        cache: cache::CacheMetrics::default(),
        started: std::time::Instant::now(),
        http: bounds.metrics.clone(),
    });
    hub.spawn_flush();
    let routes = socketio::mount(router(proxy.clone(), &config.prefix), layer);
    let server = crate::listener::Server::spawn(listener, routes.layer(edge.cors()), bounds)?;
    let addr = server.addr;
    tracing::info!(%addr, upstream = %config.upstreams.join(","), public_url = edge.public_url(), epoch = %proxy.replicas.epoch, "proxy listening (socket.io at {}/socket.io)", config.prefix);
    Ok(Running {
        addr,
        proxy,
        server,
    })
}

impl Running {
    pub async fn stop(self) -> Result<(), ProxyError> {
        tracing::info!("shutting down");
        self.server.stop().await?;
        tracing::info!("proxy stopped");
        Ok(())
    }
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(config: ProxyConfig) -> Result<(), ProxyError> {
    let running = start(config).await?;
    crate::stop::until_stopped().await;
    running.stop().await
}
