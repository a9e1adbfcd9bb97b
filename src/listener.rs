//! The bounds of every HTTP listener (main process and proxy): what a client that connects and
//! then sends nothing, or too little, can hold.
//!
//! - A header-read timeout (`--header-timeout-ms`, 10 s): a connection that does not send complete
//!   request headers in time (from its accept, or from the first byte after an idle time) is
//!   closed and counted.
//! - An idle timeout (`--idle-timeout-ms`, 60 s): a keep-alive connection with no request in
//!   flight and nothing sent is closed.
//! - A bound on open connections (`--max-connections`, 10,000). At the bound a new connection
//!   takes the place of the oldest one that has not yet sent a complete request (a half-open
//!   connection: it is closed and counted as evicted), so that thousands of half-open
//!   connections cannot lock real clients out until the header timeout; when every open
//!   connection has been served (requests in flight, keep-alive, websockets), the new one is
//!   closed at once and counted. Both are logged at most once per 10 s. The process raises its
//!   file-descriptor limit at start ([`raise_fd_limit`]) so that this bound, not the fd limit,
//!   is what binds.
//!
//! Connections upgraded to a websocket (socket.io, `/_internal`, `/_replicate`) leave these
//! timeouts when they upgrade (their protocols have their own pings) and stay counted until they
//! close. On shutdown, connections without a request in flight are closed at once; those with
//! one finish it (the caller bounds the wait).
//!
//! [`bind`] opens the socket and, with `--listen-file FILE`, writes the address it bound to FILE
//! (`--listen 127.0.0.1:0` then takes a free port without a race: supervisors and tests read it).
//!
//! Each accepted connection is served here with hyper's HTTP/1.1 connection (as `axum::serve`
//! does, which exposes none of these bounds); a watchdog per connection follows its phase
//! (reading headers, a request in flight, idle) from its reads and its requests.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The bounds of one listener; a zero turns that bound off.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Complete request headers must arrive within this time.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this time.
    pub idle_timeout: Duration,
    /// Open connections (websockets included) beyond which new ones are closed at once.
    pub max_connections: u64,
    /// Where [`bind`] writes the address it bound (`None`: nowhere).
    pub listen_file: Option<std::path::PathBuf>,
}

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("listening on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("writing the bound address to {}", path.display())]
    ListenFile {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Binds `addr` and writes the bound address (`127.0.0.1:40123`, a line) to the configured
/// listen file: written to a temporary file beside it, then renamed, so a reader never sees half
/// an address.
pub async fn bind(
    addr: std::net::SocketAddr,
    config: &ListenerConfig,
) -> Result<TcpListener, ListenError> {
    let bind_error = |source| ListenError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    if let Some(path) = &config.listen_file {
        let file_error = |source| ListenError::ListenFile {
            path: path.clone(),
            source,
        };
        let mut temp = path.clone().into_os_string();
        temp.push(".part");
        std::fs::write(&temp, format!("{bound}\n")).map_err(file_error)?;
        std::fs::rename(&temp, path).map_err(file_error)?;
    }
    Ok(listener)
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            listen_file: None,
        }
    }
}

/// A listener's counters (on `/metrics`).
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: AtomicU64,
    /// Half-open connections closed at the bound to make room for a new one.
    pub evicted: AtomicU64,
    /// Connections closed because their request headers did not arrive in time.
    pub header_timeouts: AtomicU64,
    /// Keep-alive connections closed after the idle timeout.
    pub idle_closed: AtomicU64,
}

impl ListenerMetrics {
    /// The connections open and closed by a bound (`/metrics`).
    pub fn write_metrics(&self, m: &mut crate::metrics::Metrics) {
        use crate::metrics::Kind;
        for (name, help, kind, v) in [
            (
                "rmf_dash_http_connections",
                "HTTP connections open (websockets included).",
                Kind::Gauge,
                &self.open,
            ),
            (
                "rmf_dash_http_connections_refused_total",
                "Connections closed at once because --max-connections were open.",
                Kind::Counter,
                &self.refused,
            ),
            (
                "rmf_dash_http_connections_evicted_total",
                "Half-open connections (no complete request yet) closed at --max-connections to make room for a new one.",
                Kind::Counter,
                &self.evicted,
            ),
            (
                "rmf_dash_http_header_timeouts_total",
                "Connections closed because their request headers did not arrive in time.",
                Kind::Counter,
                &self.header_timeouts,
            ),
            (
                "rmf_dash_http_idle_closed_total",
                "Keep-alive connections closed after the idle timeout.",
                Kind::Counter,
                &self.idle_closed,
            ),
        ] {
            m.family(name, help, kind, [("", v.load(Ordering::Relaxed))]);
        }
    }
}

/// A listener's bounds and where it counts.
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    pub config: ListenerConfig,
    pub metrics: Arc<ListenerMetrics>,
}

/// File descriptors this process asks for when its hard limit is lower (granted to root or with
/// `CAP_SYS_RESOURCE`): `--max-connections`' default plus the store's, the engine's and a
/// client's own.
const WANTED_FILES: u64 = 1 << 16;

/// Raises this process's soft limit of open files to its hard limit, and both to
/// [`WANTED_FILES`] when allowed; returns the new soft limit.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid rlimit for the calls to read and write.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
            let wanted = (WANTED_FILES as libc::rlim_t).max(limit.rlim_max);
            for max in [wanted, limit.rlim_max] {
                let raised = libc::rlimit {
                    rlim_cur: max,
                    rlim_max: max,
                };
                if limit.rlim_cur < max && libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                    break;
                }
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// How long between two warnings about refused connections.
const REFUSED_WARN_EVERY: Duration = Duration::from_secs(10);

/// The connections that have not sent a complete request yet, oldest first: the ones a new
/// connection may take the place of at the bound.
#[derive(Default)]
struct Pending {
    next: AtomicU64,
    waiting: parking_lot::Mutex<BTreeMap<u64, Arc<Notify>>>,
}

impl Pending {
    /// A new connection, pending until its first request ([`Entry::served`]) or its end.
    fn enter(self: &Arc<Self>) -> Entry {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        self.waiting.lock().insert(id, evict.clone());
        Entry {
            id,
            evict,
            pending: self.clone(),
        }
    }

    /// Tells the oldest pending connection to close; `false` when there is none.
    fn evict_oldest(&self) -> bool {
        let oldest = self.waiting.lock().pop_first();
        oldest.is_some_and(|(_, evict)| {
            evict.notify_one();
            true
        })
    }
}

/// A connection's place among the pending ones.
struct Entry {
    id: u64,
    evict: Arc<Notify>,
    pending: Arc<Pending>,
}

impl Entry {
    /// The connection sent a complete request: it is no longer evicted for a newer one.
    fn served(&self) {
        self.pending.waiting.lock().remove(&self.id);
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.served();
    }
}

/// How long connections with a request in flight (and long-lived ones: socket.io,
/// `/_internal`) get to finish when a server stops; then they are cut.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// An HTTP server running on a task of its own ([`serve`]).
#[derive(Debug)]
pub struct Server {
    pub addr: std::net::SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl Server {
    /// Serves `routes` on `listener` within `bounds` until [`Server::stop`].
    pub fn spawn(listener: TcpListener, routes: axum::Router, bounds: Bounds) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let (shutdown, stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve(listener, routes, bounds, stop));
        Ok(Server {
            addr,
            shutdown,
            task,
        })
    }

    /// Stops it: connections without a request in flight close at once, the others get
    /// [`STOP_GRACE`], then are cut.
    pub async fn stop(self) -> io::Result<()> {
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        match tokio::time::timeout(STOP_GRACE, &mut task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!("server task: {e}");
                Ok(())
            }
            Err(_) => {
                task.abort();
                tracing::info!("closed the remaining connections");
                Ok(())
            }
        }
    }
}

/// Serves `routes` on `listener` within `bounds` until `stop` turns true; then closes every
/// connection without a request in flight and returns once the others have finished theirs.
async fn serve(
    listener: TcpListener,
    routes: axum::Router,
    bounds: Bounds,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    let mut admission = Admission {
        pending: Arc::new(Pending::default()),
        bounds: bounds.clone(),
        last_warn: None,
        since_warn: (0, 0),
    };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = connections.join_next() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors (or the like): the pending connection stays in the
                // backlog; try again shortly rather than spin.
                if admission.may_warn() {
                    tracing::warn!(error = %e, "accepting a connection failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(entry) = admission.admit(peer) else {
            drop(stream);
            continue;
        };
        connections.spawn(connection(
            stream,
            routes.clone(),
            bounds.clone(),
            entry,
            stop.clone(),
        ));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// The listener's decision on each accepted connection, and its rate-limited warnings.
struct Admission {
    pending: Arc<Pending>,
    bounds: Bounds,
    last_warn: Option<Instant>,
    /// Connections (evicted, refused) since the last warning.
    since_warn: (u64, u64),
}

impl Admission {
    /// Whether a warning may be logged now (at most one per [`REFUSED_WARN_EVERY`]).
    fn may_warn(&mut self) -> bool {
        let now = Instant::now();
        let may = self.last_warn.is_none_or(|t| now - t >= REFUSED_WARN_EVERY);
        if may {
            self.last_warn = Some(now);
        }
        may
    }

    /// A place for the connection from `peer`: below the bound, or the place of the oldest
    /// half-open connection; `None` (refused, counted) when every open connection was served.
    fn admit(&mut self, peer: std::net::SocketAddr) -> Option<Entry> {
        let max = self.bounds.config.max_connections;
        let metrics = self.bounds.metrics.clone();
        if max > 0 && metrics.open.load(Ordering::Relaxed) >= max {
            let evicted = self.pending.evict_oldest();
            if evicted {
                self.since_warn.0 += 1;
            } else {
                metrics.refused.fetch_add(1, Ordering::Relaxed);
                self.since_warn.1 += 1;
            }
            if self.may_warn() {
                let (evicted, refused) = std::mem::take(&mut self.since_warn);
                tracing::warn!(%peer, max_connections = max, evicted, refused, "connection limit reached: the oldest half-open connections make room for new ones; new ones are refused when none is half-open");
            }
            if !evicted {
                return None;
            }
        }
        metrics.open.fetch_add(1, Ordering::Relaxed);
        Some(self.pending.enter())
    }
}

/// Where a connection is in its life (what its watchdog times).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for complete request headers since then.
    Headers(Instant),
    /// This many requests in flight (their responses not yet fully sent).
    Requests(usize),
    /// Nothing in flight and nothing received since then.
    Idle(Instant),
}

/// A connection's phase, shared by its stream (reads), its requests and its watchdog.
struct Tracker {
    phase: parking_lot::Mutex<Phase>,
    changed: Notify,
}

impl Tracker {
    fn received(&self) {
        let mut p = self.phase.lock();
        if matches!(*p, Phase::Idle(_)) {
            *p = Phase::Headers(Instant::now());
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        let mut p = self.phase.lock();
        *p = match *p {
            Phase::Requests(n) => Phase::Requests(n + 1),
            _ => Phase::Requests(1),
        };
        self.changed.notify_one();
    }

    fn request_ended(&self) {
        let mut p = self.phase.lock();
        *p = match *p {
            Phase::Requests(n) if n > 1 => Phase::Requests(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
        self.changed.notify_one();
    }

    fn in_flight(&self) -> bool {
        matches!(*self.phase.lock(), Phase::Requests(_))
    }

    /// Returns when a timeout of `config` expires: `true` for the header timeout, `false` for
    /// the idle one.
    async fn expired(&self, config: &ListenerConfig) -> bool {
        loop {
            let notified = self.changed.notified();
            let phase = *self.phase.lock();
            let (deadline, headers) = match phase {
                Phase::Headers(since) if !config.header_timeout.is_zero() => {
                    (Some(since + config.header_timeout), true)
                }
                Phase::Idle(since) if !config.idle_timeout.is_zero() => {
                    (Some(since + config.idle_timeout), false)
                }
                _ => (None, false),
            };
            match deadline {
                Some(d) => tokio::select! {
                    _ = tokio::time::sleep_until(d) => {
                        if *self.phase.lock() == phase {
                            return headers;
                        }
                    }
                    _ = notified => {}
                },
                None => notified.await,
            }
        }
    }
}

/// Serves one connection until it ends, upgrades, times out, or (without a request in flight)
/// the listener stops.
async fn connection(
    stream: TcpStream,
    routes: axum::Router,
    bounds: Bounds,
    entry: Entry,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let entry = Arc::new(entry);
    let tracker = Arc::new(Tracker {
        phase: parking_lot::Mutex::new(Phase::Headers(Instant::now())),
        changed: Notify::new(),
    });
    // The client's address, for the routes that log it (axum's `ConnectInfo`).
    let peer = stream.peer_addr().ok().map(axum::extract::ConnectInfo);
    let written = Written(Arc::default());
    let io = Tracked {
        stream,
        tracker: tracker.clone(),
        written: written.0.clone(),
        _slot: Slot(bounds.metrics.clone()),
    };
    let requests = tracker.clone();
    let served = entry.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        requests.request_started();
        served.served();
        let guard = InFlight(requests.clone());
        let mut routes = routes.clone();
        let mut req = req.map(axum::body::Body::new);
        if let Some(peer) = peer {
            req.extensions_mut().insert(peer);
        }
        req.extensions_mut().insert(written.clone());
        async move {
            let response = tower_service::Service::call(&mut routes, req).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| TrackedBody {
                body,
                guard: Some(guard),
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog below times the headers (hyper's own timeout would also cut idle
    // keep-alive connections at the header timeout).
    builder.header_read_timeout(None);
    let conn = builder
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        // Ended, or upgraded (the websocket then runs on its own task).
        _ = conn.as_mut() => return,
        headers = tracker.expired(&bounds.config) => {
            let counter = if headers { &bounds.metrics.header_timeouts } else { &bounds.metrics.idle_closed };
            counter.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Evicted while half-open (a request that started meanwhile is served).
        _ = async {
            entry.evict.notified().await;
            if tracker.in_flight() {
                std::future::pending::<()>().await;
            }
        } => {
            bounds.metrics.evicted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        _ = stop.wait_for(|s| *s) => {}
    }
    // Stopping: a request in flight is finished, anything else is closed now.
    if tracker.in_flight() {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// One open connection, counted while it lives (upgraded or not).
struct Slot(Arc<ListenerMetrics>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request in flight until its response is fully sent (or dropped).
struct InFlight(Arc<Tracker>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A response body that ends its request's flight when it ends.
struct TrackedBody {
    body: axum::body::Body,
    guard: Option<InFlight>,
}

impl Body for TrackedBody {
    type Data = <axum::body::Body as Body>::Data;
    type Error = <axum::body::Body as Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.guard = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The bytes a connection has written to its socket so far, in each of its requests'
/// extensions (the socket.io transport bounds a socket's queue by what left:
/// `crate::hub::drain`).
#[derive(Debug, Clone)]
pub struct Written(pub Arc<AtomicU64>);

/// The connection's stream: its reads move the phase from idle to reading headers; its writes
/// are counted ([`Written`]).
struct Tracked {
    stream: TcpStream,
    tracker: Arc<Tracker>,
    written: Arc<AtomicU64>,
    _slot: Slot,
}

impl Tracked {
    fn wrote(&self, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Ordering::Release);
        }
        r
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.tracker.received();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote(r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
