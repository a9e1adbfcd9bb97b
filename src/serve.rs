//! `rmf-dash serve`: the process a site runs. Starts the engine, the feeder (inputs from a
//! replayed recording, the `/_internal` websocket, ...), the hub and the HTTP server (REST,
//! socket.io, `/health`, `/metrics`), and stops them in order on Ctrl-C or SIGTERM. One log line
//! per lifecycle event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use thiserror::Error;

use crate::api::auth::{Auth, AuthConfigError};
use crate::api::{App, router};
use crate::engine::{Engine, EngineConfig, EngineError};
use crate::hub::Hub;
use crate::hub::socketio::{self, SocketState};
use crate::ingest::decode::ReleasePolicy;
use crate::ingest::feed::{self, Feeder};
use crate::ingest::source::Pacing;
use crate::replay::{ReplayOptions, ReplaySummary};

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Users(#[from] crate::users::UsersError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
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
    /// Token `/_internal` clients must give (`?token=` or `Authorization: Bearer`), if any.
    pub internal_token: Option<String>,
    /// Bounds of `/_internal` connections (frame size, rate limit).
    pub internal: crate::ingest::internal::InternalConfig,
    /// The PostgreSQL store (`None`: no persistence).
    pub store: Option<crate::store::WriterConfig>,
    /// The user made an admin at start (with a store).
    pub admin_user: String,
    /// Scheduled tasks: time zone, clock, catch-up window.
    pub schedule: crate::scheduled::dispatch::ScheduleConfig,
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
            internal: crate::ingest::internal::InternalConfig {
                rate: 0,
                ..Default::default()
            },
            store: None,
            admin_user: "admin".into(),
            schedule: Default::default(),
        }
    }
}

/// Subscribers that fell behind get their coalesced rooms a few times a second.
pub fn spawn_flush(hub: Arc<Hub>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        loop {
            every.tick().await;
            hub.flush();
        }
    });
}

/// A running HTTP server: its address, what stops it (gracefully), and its task.
pub type Http = (
    SocketAddr,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), std::io::Error>>,
);

/// Serves `routes` on `listener` until the returned sender says stop.
pub fn serve_http(
    listener: tokio::net::TcpListener,
    routes: axum::Router,
) -> Result<Http, std::io::Error> {
    let addr = listener.local_addr()?;
    let (shutdown, mut stop) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        axum::serve(listener, routes)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await
    });
    Ok((addr, shutdown, server))
}

/// A running server (for tests and the CLI).
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), std::io::Error>>,
    feeder: std::thread::JoinHandle<Result<u64, EngineError>>,
    replay: Option<std::thread::JoinHandle<()>>,
    applier: Option<std::thread::JoinHandle<()>>,
    writer: Option<tokio::task::JoinHandle<()>>,
    /// The scheduled tasks' dispatch loop.
    scheduler: Option<tokio::task::JoinHandle<()>>,
}

/// Starts every part and returns once the server listens.
pub async fn start(config: ServeConfig) -> Result<Running, ServeError> {
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
    let mut engine = Engine::start(config.engine.clone())?;
    tracing::info!(workers = config.engine.workers, "engine started");
    let delivered = engine.delivered.clone();
    let hub = Arc::new(Hub::new());
    let engine_running = Arc::new(AtomicBool::new(true));
    // With a store: the hub is seeded from it before anything else, and the engine's state is
    // rebuilt from its input log (see `store::pipeline`).
    let restoring = match &config.store {
        Some(c) => Some(crate::store::pipeline::restore_start(c.clone(), &hub).await?),
        None => {
            tracing::warn!("running without persistence (--no-db)");
            None
        }
    };
    let horizon = restoring.as_ref().and_then(|r| r.checkpoint);
    // Users live in the same store (its schema is migrated by the restore above).
    let users = match &config.store {
        Some(c) => Some(Arc::new(
            crate::users::Users::open(&c.url, &config.admin_user).await?,
        )),
        None => None,
    };
    let history = config
        .store
        .as_ref()
        .map(|c| crate::store::history::History::new(&c.url));
    let applier = match engine.take_outputs() {
        Some(outputs) => Some(crate::store::pipeline::spawn_applier(
            outputs,
            crate::store::pipeline::Applier {
                hub: hub.clone(),
                store: restoring.as_ref().map(|r| r.store.clone()),
                delivered: delivered.clone(),
                horizon,
                on_batch: None,
                running: Some(engine_running.clone()),
            },
            tokio::runtime::Handle::current(),
        )?),
        None => None,
    };
    let mut feeder = Feeder::new(engine, config.tick_ms, config.replay.is_some());
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
    let sockets = SocketState::new(hub.clone(), auth.clone());
    let (layer, _io) = socketio::layer(sockets.clone(), &config.prefix);
    let app = Arc::new(App {
        hub: hub.clone(),
        auth,
        feed: feed.clone(),
        feed_metrics,
        link: crate::rmf_link::connect(&crate::rmf_link::LinkConfig {
            kind: config.rmf_link,
            node_name: crate::rmf_link::NODE_NAME.into(),
            task_timeout: Duration::from_millis(config.task_timeout_ms),
        }),
        sockets,
        started: std::time::Instant::now(),
        delivered,
        engine_running,
        store: store_metrics,
        internal_token: config.internal_token.clone(),
        internal: crate::ingest::internal::Internal::new(config.internal.clone()),
        map_images,
        users,
        scheduling: crate::scheduled::dispatch::Scheduling::new(config.schedule.clone()),
        history,
    });
    spawn_flush(hub.clone());
    // Scheduled tasks are dispatched by the main process only, while it is the active one
    // (always, until leadership exists: give the dispatcher leadership's watch then).
    let scheduler = config.store.as_ref().map(|c| {
        let (_, active) = tokio::sync::watch::channel(true);
        crate::scheduled::dispatch::spawn(app.clone(), c.url.clone(), active)
    });
    let routes = router(app.clone(), &config.prefix).layer(layer);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let (addr, shutdown, server) = serve_http(listener, routes)?;
    tracing::info!(%addr, prefix = %config.prefix, "listening (socket.io at {}/socket.io)", config.prefix);
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
                                "replay finished; serving the final state"
                            ),
                            Err(e) => tracing::error!(path, "replay stopped: {e}"),
                        }
                    })?,
            )
        }
        None => None,
    };
    drop(feed);
    Ok(Running {
        addr,
        app,
        shutdown,
        server,
        feeder: feeder_thread,
        replay,
        applier,
        writer,
        scheduler,
    })
}

impl Running {
    /// Stops the HTTP server, then the inputs and the engine.
    pub async fn stop(self) -> Result<(), ServeError> {
        tracing::info!("shutting down");
        let _ = self.shutdown.send(true);
        // Long-lived connections (socket.io, /_internal) would keep a graceful shutdown waiting:
        // they get a moment, then are cut.
        let mut server = self.server;
        match tokio::time::timeout(Duration::from_secs(2), &mut server).await {
            Ok(Ok(r)) => r?,
            Ok(Err(e)) => tracing::warn!("server task: {e}"),
            Err(_) => {
                server.abort();
                tracing::info!("closed the remaining connections");
            }
        }
        // The scheduled tasks' loop (and its sends) hold the app: stopped first.
        if let Some(s) = self.scheduler {
            s.abort();
            let _ = s.await;
        }
        // Producers stop at their next send; the feeder ends when the last handle is dropped.
        self.app.feed.close();
        drop(self.app);
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
        Ok(())
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
    let running = start(config).await?;
    announce(running.addr);
    until_stopped().await;
    running.stop().await
}

/// Waits for Ctrl-C or SIGTERM and logs which came.
pub async fn until_stopped() {
    let term = async {
        #[cfg(unix)]
        {
            if let Ok(mut s) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                s.recv().await;
                return;
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        _ = term => tracing::info!("terminated"),
    }
}
