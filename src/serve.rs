//! `rmf-dash serve`: the process a site runs. Starts the engine, the feeder (inputs from a
//! replayed recording, the `/_internal` websocket, ...), the hub and the HTTP server (REST,
//! socket.io, `/health`, `/metrics`), and stops them in order on Ctrl-C or SIGTERM. One log line
//! per lifecycle event.
//!
//! With a store, the process first listens as a standby ([`listen`]: `/health` says `standby`,
//! everything else answers 503, see [`crate::api::standby`]) until it holds the leadership of
//! its site ([`crate::store::leader`]); then it restores, starts every part and switches its
//! routes to the active ones ([`Listening::activate`]). A deposed process stops with
//! [`ServeError::Deposed`] (the command exits with status 75 for its supervisor to restart it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use thiserror::Error;

use crate::access::rooms::RoomAccess;
use crate::access::token::{Auth, AuthConfigError};
use crate::api::{App, router};
use crate::engine::{Engine, EngineConfig, EngineError};
use crate::hub::Hub;
use crate::hub::socketio::{self, SocketState};
use crate::ingest::decode::ReleasePolicy;
use crate::ingest::feed::{self, Feeder};
use crate::ingest::internal::InternalAccess;
use crate::ingest::source::Pacing;
use crate::replay::{ReplayOptions, ReplaySummary};
use crate::store::leader::{Leadership, Lease};

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Edge(#[from] crate::edge::EdgeError),
    #[error(transparent)]
    Listen(#[from] crate::listener::ListenError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Users(#[from] crate::users::UsersError),
    #[error(transparent)]
    Ros2(#[from] crate::ros2::Ros2Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("stepped down: {0}")]
    Deposed(String),
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// URL prefix of every route ("" or like "/api").
    pub prefix: String,
    pub replay: Option<String>,
    pub speed: Pacing,
    pub policy: ReleasePolicy,
    pub tick_ms: u64,
    pub engine: EngineConfig,
    pub jwt_secret: Option<String>,
    pub jwt_public_key: Option<String>,
    pub jwt_aud: String,
    pub jwt_iss: Option<String>,
    pub no_auth: bool,
    /// The link commands to RMF go through.
    pub rmf_link: crate::rmf_link::LinkKind,
    /// Wait for a task API answer (ms), restarted by an acknowledgement.
    pub task_timeout_ms: u64,
    /// Token `/_internal` clients may give (`?token=` or `Authorization: Bearer`), if any;
    /// with client authentication on, a valid client JWT is accepted too.
    pub internal_token: Option<String>,
    /// Leave `/_internal` open although client authentication is on (`--internal-open`, labs;
    /// ignored when `internal_token` is given).
    pub internal_open: bool,
    /// Bounds of `/_internal` connections (frame size, rate limit).
    pub internal: crate::ingest::internal::InternalConfig,
    /// The PostgreSQL store (`None`: no persistence).
    pub store: Option<crate::store::WriterConfig>,
    /// Retention applied to the store while active (`None`: only by `store prune`).
    pub prune: Option<crate::store::prune::Periodic>,
    /// The user made an admin at start.
    pub admin_user: String,
    /// Join the ROS 2 graph (`--ros2`): ingest the live RMF topics and send commands over ROS 2
    /// (replaces `rmf_link`); the RMF release of `policy` is then required of every message.
    pub ros2: bool,
    /// Scheduled tasks: time zone, clock, catch-up window.
    pub schedule: crate::scheduled::dispatch::ScheduleConfig,
    /// socket.io rooms restricted to some roles (needs a store; none: every room for everyone).
    pub room_permissions: Vec<crate::access::rooms::RoomRule>,
    /// CORS origins and the public URL (`--cors-origin`, `--public-url`).
    pub edge: crate::edge::EdgeConfig,
    /// Header and idle timeouts, open connections (`--header-timeout-ms`, ...).
    pub listener: crate::listener::ListenerConfig,
    /// Rooms held and per client, bytes per socket queue (`--max-rooms`, ...).
    pub hub: crate::hub::HubBounds,
    /// Fleet and robot names taken in (`--max-fleets`, `--max-robots`).
    pub names: crate::ingest::admission::NameBounds,
}

impl ServeConfig {
    /// A server on `listen` with every default and no authentication, no replay, and no
    /// `/_internal` rate limit (benchmarks and in-process tests).
    pub fn local(listen: SocketAddr) -> Self {
        ServeConfig {
            listen,
            prefix: String::new(),
            replay: None,
            speed: Pacing::Speed(1.0),
            policy: ReleasePolicy::default(),
            tick_ms: 10,
            engine: EngineConfig::default(),
            jwt_secret: None,
            jwt_public_key: None,
            jwt_aud: "rmf_api_server".into(),
            jwt_iss: None,
            no_auth: true,
            rmf_link: crate::rmf_link::LinkKind::Loopback,
            task_timeout_ms: 5000,
            internal_token: None,
            internal_open: false,
            internal: crate::ingest::internal::InternalConfig {
                rate: 0,
                ..Default::default()
            },
            store: None,
            prune: None,
            admin_user: "admin".into(),
            ros2: false,
            schedule: Default::default(),
            room_permissions: Vec::new(),
            edge: Default::default(),
            listener: Default::default(),
            hub: Default::default(),
            names: Default::default(),
        }
    }
}

fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The router a server answers with, switched once (standby, then active) on one listener.
#[derive(Clone)]
pub struct Switch(Arc<parking_lot::RwLock<axum::Router>>);

impl Switch {
    pub fn new(routes: axum::Router) -> Self {
        Switch(Arc::new(parking_lot::RwLock::new(routes)))
    }

    /// Requests from now on go to `routes` (connections already upgraded stay where they are).
    pub fn set(&self, routes: axum::Router) {
        *self.0.write() = routes;
    }

    /// A router that hands every request to the present routes.
    pub fn router(&self) -> axum::Router {
        axum::Router::new().fallback_service(self.clone())
    }
}

impl tower_service::Service<axum::extract::Request> for Switch {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = axum::routing::future::RouteFuture<std::convert::Infallible>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        let mut routes = self.0.read().clone();
        routes.call(request)
    }
}

/// A server that listens as a standby and waits for the leadership of its site.
pub struct Listening {
    config: ServeConfig,
    auth: Auth,
    /// Who may connect to `/_internal` (logged at start).
    internal_access: InternalAccess,
    pub addr: SocketAddr,
    /// This process's role (active at once without a store).
    pub leadership: Leadership,
    switch: Switch,
    /// CORS and the public URL of this listener.
    edge: crate::edge::Edge,
    /// Its timeouts and connection bound, and their counters.
    bounds: crate::listener::Bounds,
    /// Bound, not served yet: requests wait in the backlog until the process is active, or a
    /// standby (the lock is held by another process).
    listener: Option<tokio::net::TcpListener>,
    http: Option<crate::listener::Server>,
}

/// Checks the configuration and binds the listener.
pub async fn listen(config: ServeConfig) -> Result<Listening, ServeError> {
    let auth = Auth::new(
        config.jwt_secret.as_deref(),
        config.jwt_public_key.as_deref(),
        &config.jwt_aud,
        config.jwt_iss.as_deref(),
        config.no_auth,
    )?;
    if !auth.enabled() {
        tracing::warn!(
            "authentication is disabled (--no-auth): every client is user `stub`; do not expose this server"
        );
    }
    let internal_access =
        InternalAccess::new(&auth, config.internal_token.clone(), config.internal_open);
    internal_access.log();
    let leadership = match &config.store {
        Some(c) => Leadership::standby(&c.leader.site),
        None => Leadership::single(),
    };
    let switch = Switch::new(crate::api::standby::router(
        Arc::new(crate::api::standby::Standby {
            leadership: leadership.clone(),
            started: std::time::Instant::now(),
        }),
        &config.prefix,
    ));
    let listener = crate::listener::bind(config.listen, &config.listener).await?;
    let addr = listener.local_addr()?;
    let edge = crate::edge::Edge::new(&config.edge, addr, &config.prefix)?;
    tracing::info!(%addr, prefix = %config.prefix, public_url = edge.public_url(), any_origin = edge.any_origin(), "listening (socket.io at {}/socket.io)", config.prefix);
    let bounds = crate::listener::Bounds {
        config: config.listener.clone(),
        metrics: Default::default(),
    };
    Ok(Listening {
        config,
        auth,
        internal_access,
        addr,
        leadership,
        switch,
        edge,
        bounds,
        listener: Some(listener),
        http: None,
    })
}

impl Listening {
    /// Serves the present routes (the standby's until activation).
    fn serve(&mut self) -> Result<(), ServeError> {
        if let Some(listener) = self.listener.take() {
            let routes = self.switch.router().layer(self.edge.cors());
            let server = crate::listener::Server::spawn(listener, routes, self.bounds.clone())?;
            self.http = Some(server);
        }
        Ok(())
    }

    /// Waits until this process holds the leadership of its site (at once without a store).
    /// When another process holds it, this one answers as a standby meanwhile.
    pub async fn acquire(&mut self) -> Result<Option<Lease>, ServeError> {
        let Some(c) = self.config.store.clone() else {
            return Ok(None);
        };
        if let Some(lease) =
            crate::store::leader::try_acquire(&c.url, &c.leader, &self.leadership).await?
        {
            return Ok(Some(lease));
        }
        self.serve()?;
        tracing::info!(site = %c.leader.site, "standby: answering /health as a standby until this process is active");
        Ok(Some(
            crate::store::leader::acquire(&c.url, &c.leader, &self.leadership).await?,
        ))
    }

    /// Stops a standby.
    pub async fn stop(self) {
        tracing::info!("shutting down (standby)");
        if let Some(server) = self.http {
            let _ = server.stop().await;
        }
    }
}

/// A running server (for tests and the CLI).
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    /// The leadership held (`None` without a store); dropped last, releasing the lock.
    lease: Option<Lease>,
    server: crate::listener::Server,
    feeder: std::thread::JoinHandle<Result<u64, EngineError>>,
    replay: Option<std::thread::JoinHandle<()>>,
    applier: Option<std::thread::JoinHandle<()>>,
    writer: Option<tokio::task::JoinHandle<()>>,
    ros2: Option<crate::ros2::Ros2>,
    /// The scheduled tasks' dispatch loop.
    scheduler: Option<tokio::task::JoinHandle<()>>,
    pruner: Option<tokio::task::JoinHandle<()>>,
}

/// Starts every part and returns once the server listens and is active (with a store: once it
/// holds the leadership of its site).
pub async fn start(config: ServeConfig) -> Result<Running, ServeError> {
    let mut listening = listen(config).await?;
    let lease = listening.acquire().await?;
    listening.activate(lease).await
}

impl Listening {
    /// Restores from the store, starts the engine, the feeder, the writer and the replay, and
    /// switches the routes to the active ones. `lease`: the leadership held (with a store).
    pub async fn activate(self, lease: Option<Lease>) -> Result<Running, ServeError> {
        let mut this = self;
        if let (Some(store), Some(lease)) = (this.config.store.as_mut(), lease.as_ref()) {
            store.fence = Some(lease.fence());
        }
        activate(this, lease).await
    }
}

async fn activate(mut this: Listening, lease: Option<Lease>) -> Result<Running, ServeError> {
    let config = this.config.clone();
    let auth = this.auth.clone();
    let internal_access = this.internal_access.clone();
    let leadership = this.leadership.clone();
    let addr = this.addr;
    let hub = Arc::new(Hub::with_bounds(config.hub));
    hub.set_rewrite(Arc::new(this.edge.map_urls()));
    let engine_running = Arc::new(AtomicBool::new(true));
    // With a store: the hub is seeded from it before anything else, and the engine's state is
    // rebuilt from its snapshot and input log (see `store::pipeline`).
    let mut restoring = match &config.store {
        Some(c) => {
            let restoring = crate::store::pipeline::restore_start(c.clone(), &hub).await?;
            // Before the restore feeds the input log: quarantined inputs are skipped there.
            crate::store::quarantine::open(&c.url, &config.engine.quarantine).await?;
            Some(restoring)
        }
        None => {
            tracing::warn!("running without persistence (--no-db)");
            None
        }
    };
    let mut engine = match restoring.as_mut() {
        Some(r) => tokio::task::block_in_place(|| r.start_engine(config.engine.clone()))?,
        // Its snapshots stay in memory: the recovery point after a worker panic.
        None => Engine::start(config.engine.clone())?,
    };
    tracing::info!(workers = config.engine.workers, "engine started");
    let delivered = engine.delivered.clone();
    let engine_held = engine.held();
    let horizon = restoring.as_ref().and_then(|r| r.checkpoint);
    // Users and scheduled tasks live in the same store (its schema is migrated by the restore
    // above); without one (`--no-db`), in memory for the life of the process.
    let (users, schedules) = match &config.store {
        Some(c) => (
            crate::users::Users::open(&c.url, &config.admin_user).await?,
            crate::scheduled::storage::ScheduleStore::open(&c.url).await?,
        ),
        None => (
            crate::users::Users::memory(&config.admin_user)?,
            crate::scheduled::storage::ScheduleStore::memory(),
        ),
    };
    let users = Arc::new(users);
    let history = config
        .store
        .as_ref()
        .map(|c| crate::store::history::History::new(&c.url));
    if let Some(h) = &history {
        hub.set_recall(h.clone());
    }
    let task_requests = Arc::new(match &config.store {
        Some(c) => crate::store::task_requests::TaskRequests::Store(
            crate::store::SharedClient::connect(&c.url).await?,
        ),
        None => crate::store::task_requests::TaskRequests::memory(),
    });
    let applier = match engine.take_outputs() {
        Some(outputs) => Some(crate::store::pipeline::spawn_applier(
            outputs,
            crate::store::pipeline::Applier {
                hub: hub.clone(),
                store: restoring.as_ref().map(|r| r.store.clone()),
                delivered: delivered.clone(),
                horizon,
                on_batch: None,
                snapshots: if restoring.is_some() {
                    engine.take_snapshots()
                } else {
                    None
                },
                running: Some(engine_running.clone()),
            },
            tokio::runtime::Handle::current(),
        )?),
        None => None,
    };
    let mut feeder = Feeder::new(engine, config.tick_ms, config.replay.is_some());
    feeder.set_name_bounds(config.names);
    let mut writer = None;
    // The engine's state is rebuilt on the feeder thread while the server already serves the
    // restored sticky values; new inputs queue until it is done.
    let (store_metrics, prelude) = match restoring {
        Some(mut r) => {
            feeder.set_input_log(crate::store::pipeline::input_log(r.store.clone()));
            let metrics = r.store.metrics.clone();
            writer = r.take_writer();
            (
                Some(metrics),
                Some(r.prelude(tokio::runtime::Handle::current())),
            )
        }
        None => (None, None),
    };
    let map_images = feeder.images.clone();
    let (feed, feed_metrics, feeder_thread) = feed::spawn_after(
        feeder,
        65_536,
        Duration::from_millis(config.tick_ms.max(1)),
        prelude,
    )?;
    let task_timeout = Duration::from_millis(config.task_timeout_ms);
    let ros2 = if config.ros2 {
        Some(crate::ros2::start(
            &crate::ros2::Ros2Config {
                node_name: crate::rmf_link::NODE_NAME.into(),
                release: config.policy.preferred,
                task_timeout,
            },
            feed.clone(),
            feed_metrics.clone(),
            config.replay.is_some(),
        )?)
    } else {
        None
    };
    let link: Arc<dyn crate::rmf_link::RmfLink> = match &ros2 {
        Some(r) => r.link.clone(),
        None => crate::rmf_link::connect(&crate::rmf_link::LinkConfig {
            kind: config.rmf_link,
            node_name: crate::rmf_link::NODE_NAME.into(),
            task_timeout,
        }),
    };
    let rooms = RoomAccess::new(config.room_permissions.clone(), users.clone());
    let sockets = SocketState::new(hub.clone(), auth.clone(), rooms);
    let (layer, _io) = socketio::layer(sockets.clone(), &config.prefix);
    let app = Arc::new(App {
        hub: hub.clone(),
        auth,
        feed: feed.clone(),
        feed_metrics,
        link,
        sockets,
        started: std::time::Instant::now(),
        delivered,
        engine_running,
        store: store_metrics,
        internal: crate::ingest::internal::Internal::new(config.internal.clone(), internal_access),
        map_images,
        users,
        scheduling: crate::scheduled::dispatch::Scheduling::new(config.schedule.clone(), schedules),
        history,
        task_requests,
        leader: leadership,
        http: this.bounds.metrics.clone(),
        quarantine: config.engine.quarantine.clone(),
        engine_held,
    });
    hub.spawn_flush();
    this.switch
        .set(socketio::mount(router(app.clone(), &config.prefix), layer));
    this.serve()?;
    let Some(server) = this.http.take() else {
        return Err(ServeError::Io(std::io::Error::other(
            "the server did not start",
        )));
    };
    tracing::info!(%addr, "active: serving");
    // Scheduled tasks are dispatched, and the store pruned, by the main process only, while it is
    // the active one.
    let mut pruner = None;
    let scheduler = Some({
        let (tx, active) = tokio::sync::watch::channel(app.leader.is_active());
        let mut roles = app.leader.watch();
        tokio::spawn(async move {
            while roles.changed().await.is_ok() {
                let role = *roles.borrow_and_update();
                if tx.send(role == crate::store::leader::Role::Active).is_err() {
                    break;
                }
            }
        });
        if let Some(p) = config.prune.clone() {
            pruner = Some(crate::store::prune::spawn(p, active.clone()));
        }
        crate::scheduled::dispatch::spawn(app.clone(), active)
    });
    let replay = match &config.replay {
        Some(path) => {
            let path = path.clone();
            let opts = ReplayOptions {
                pacing: config.speed,
                policy: config.policy,
                tick_ms: config.tick_ms,
                engine: config.engine.clone(),
            };
            let mut sink = crate::replay::Resume {
                inner: feed.clone(),
                after: horizon,
                tick_ms: config.tick_ms,
            };
            Some(
                std::thread::Builder::new()
                    .name("rmf-dash-replay".into())
                    .spawn(move || {
                        tracing::info!(path, "replay started");
                        let mut summary = ReplaySummary::default();
                        match crate::replay::drive(&path, &opts, &mut sink, &mut summary) {
                            Ok(()) => tracing::info!(
                                path,
                                messages = summary.messages,
                                dropped = summary.dropped,
                                "replay finished; serving the final state (what clients send is still taken)"
                            ),
                            Err(e) => tracing::error!(path, "replay stopped: {}", crate::error::chain(&e)),
                        }
                        let end = summary
                            .end
                            .or(sink.after.map(|h| h + 1))
                            .unwrap_or_else(|| crate::engine::Clock::logical(wall_ns(), opts.tick_ms));
                        sink.inner.blocking_send(feed::Feed::ReplayEnded(end));
                    })?,
            )
        }
        None => None,
    };
    drop(feed);
    Ok(Running {
        addr,
        app,
        lease,
        server,
        feeder: feeder_thread,
        replay,
        applier,
        writer,
        ros2,
        scheduler,
        pruner,
    })
}

impl Running {
    /// Stops the HTTP server, then the inputs and the engine.
    pub async fn stop(self) -> Result<(), ServeError> {
        tracing::info!("shutting down");
        // Long-lived connections (socket.io, /_internal) would keep a graceful shutdown waiting:
        // they get a moment, then are cut.
        self.server.stop().await?;
        // The scheduled tasks' loop (and its sends) hold the app: stopped first.
        for task in [self.scheduler, self.pruner].into_iter().flatten() {
            task.abort();
            let _ = task.await;
        }
        // Producers stop at their next send; the feeder ends when the last handle is dropped.
        self.app.feed.close();
        drop(self.app);
        if let Some(r) = self.ros2 {
            let _ = tokio::task::spawn_blocking(move || r.stop()).await;
        }
        if let Some(r) = self.replay {
            let _ = tokio::task::spawn_blocking(move || r.join()).await;
        }
        let feeder = self.feeder;
        let result = tokio::task::spawn_blocking(move || feeder.join())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        match result {
            Ok(Ok(t)) => tracing::info!(logical_time = t, "engine stopped"),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => tracing::error!("the feeder thread panicked"),
        }
        // The engine has ended: the applier sends the last batches, then the writer writes them.
        if let Some(a) = self.applier {
            let _ = tokio::task::spawn_blocking(move || a.join()).await;
        }
        if let Some(w) = self.writer {
            let _ = w.await;
        }
        // Last: the lock goes once everything is written.
        drop(self.lease);
        Ok(())
    }

    /// Waits until this process is deposed (never without a store); returns why.
    pub async fn deposed(&self) -> String {
        match &self.lease {
            Some(_) => self.app.leader.deposed().await,
            None => std::future::pending().await,
        }
    }
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(config: ServeConfig) -> Result<(), ServeError> {
    run_announced(config, |_| {}).await
}

/// Runs until Ctrl-C or SIGTERM; `announce` gets the address once the server listens.
pub async fn run_announced(
    config: ServeConfig,
    announce: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let mut listening = listen(config).await?;
    announce(listening.addr);
    let lease = {
        let acquire = listening.acquire();
        tokio::pin!(acquire);
        tokio::select! {
            lease = &mut acquire => Some(lease?),
            _ = crate::stop::until_stopped() => None,
        }
    };
    let Some(lease) = lease else {
        listening.stop().await;
        return Ok(());
    };
    let running = listening.activate(lease).await?;
    tokio::select! {
        _ = crate::stop::until_stopped() => running.stop().await,
        // The writer writes nothing more: stop at once (the caller exits for a supervisor).
        why = running.deposed() => Err(ServeError::Deposed(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary's last line on a taken port says the OS's reason once.
    #[test]
    fn a_taken_port_is_said_once() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let source = std::net::TcpListener::bind(addr).unwrap_err();
        let cause = source.to_string();
        let bind = crate::listener::ListenError::Bind { addr, source };
        let text = crate::error::chain(&ServeError::from(bind));
        assert_eq!(text, format!("listening on {addr}: {cause}"));
        assert_eq!(text.matches(cause.as_str()).count(), 1, "{text}");
    }
}
