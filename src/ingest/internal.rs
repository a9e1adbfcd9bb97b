//! `/_internal`: the websocket ingest of RMF fleet adapters and the task dispatcher (RMF.md
//! section 5). They connect as clients and send one JSON object per text frame,
//! `{"type": T, "data": {...}}`; nothing is answered. Each valid frame becomes a
//! [`Record::Json`] (its `data` text exactly as received) fed live to the engine, waiting while
//! the feeder is behind (backpressure on this connection only).
//!
//! - Idempotent by construction: the engine de-duplicates log entries by seq and states are last
//!   writer wins, so the task logs an adapter re-sends after each reconnect add nothing.
//! - A frame that is not a valid update (not JSON, nested deeper than `--max-json-depth`, not
//!   an object, unknown `type`, no `data`, `data` not an object or rejected by the input views,
//!   a binary frame) is counted and logged with its reason and the adapter's address, never its
//!   text; the connection stays open. The frame parser is the pure [`frame_inputs`]
//!   (`internal/frame.rs`, also a fuzz target). Warnings are budgeted per connection (a burst
//!   of [`WARN_BURST`], then one a second) so a broken adapter cannot flood the log; the number
//!   left out is given with the next one.
//! - Bounds: a message larger than `max_frame` closes the connection with close code 1009 (the
//!   websocket library refuses it before it is buffered whole); a text message that is not
//!   UTF-8 closes it with 1007 (RFC 6455), counted as an invalid frame. A token bucket per connection
//!   (`rate` frames/s, `burst`) drops the excess of a flooding adapter, counted as
//!   `rate_limited`: its frames never reach the feeder, so it cannot fill the shared input
//!   queue and delay the other adapters. Dropping rather than waiting keeps the adapter's socket
//!   drained (an RMF adapter queues unsent frames in memory without bound); states are full
//!   snapshots re-sent every second, so a dropped state heals by itself.
//! - Who may connect ([`InternalAccess`], decided at start and logged once): whenever client
//!   authentication is on, a credential is required by default: the internal token
//!   (`--internal-token`) or a client JWT valid as on every other entry point
//!   ([`Auth::verify`]), given as `?token=` or `Authorization: Bearer`. Others are refused with
//!   401 before the upgrade (counted, logged with the reason, never the token). It is open only
//!   with `--no-auth` and no internal token, or with `--internal-open` (labs; warned at start).
//!
//! Counters: `rmf_dash_internal_frames_total{result="ok|invalid|oversized|rate_limited"}` (each
//! data frame counted once), `rmf_dash_internal_connections` and
//! `rmf_dash_internal_refused_total{reason="no_token|bad_token"}` on `/metrics`; frames that are
//! not JSON within the bounds are also counted by reason in
//! `rmf_dash_json_refused_total{door="internal"}` ([`crate::json_limits`]).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::ExtensionRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use thiserror::Error;

use rmf_dash_dataflows::model::input::Names;

use crate::access::token::{Auth, AuthError};
use crate::api::{ApiError, AppState};
use crate::ingest::feed::{Feed, Source, Stamp};
use crate::json_limits::{self, Door, Limits, Reason};

mod frame;

pub use frame::{FrameError, clip, frame_inputs, parse_frame};

/// Largest message accepted by default (bytes).
pub const DEFAULT_MAX_FRAME: usize = 4 << 20;
/// Frames per second a connection may send by default.
pub const DEFAULT_RATE: u32 = 2000;
/// Frames a connection may send at once by default (an adapter's queue after a reconnect).
pub const DEFAULT_BURST: u32 = 4000;
/// Warnings logged at once per connection before they are limited to one a second.
pub const WARN_BURST: u32 = 10;
/// Longest reason logged (serde messages may quote a piece of the frame).
const REASON_MAX: usize = 200;
/// How long a connection closed for an oversized message waits for the adapter's close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Bounds of `/_internal` connections.
#[derive(Debug, Clone, PartialEq)]
pub struct InternalConfig {
    /// Largest message (bytes); a larger one closes the connection with code 1009.
    pub max_frame: usize,
    /// Sustained frames per second per connection (0: no limit).
    pub rate: u32,
    /// Frames a connection may send at once.
    pub burst: u32,
}

impl Default for InternalConfig {
    fn default() -> Self {
        InternalConfig {
            max_frame: DEFAULT_MAX_FRAME,
            rate: DEFAULT_RATE,
            burst: DEFAULT_BURST,
        }
    }
}

/// Counters read by `/metrics`.
#[derive(Debug, Default)]
pub struct InternalMetrics {
    /// Frames fed to the engine.
    pub ok: AtomicU64,
    /// Frames dropped as invalid.
    pub invalid: AtomicU64,
    /// Messages over `max_frame` (each closed its connection).
    pub oversized: AtomicU64,
    /// Frames dropped by the rate limit.
    pub rate_limited: AtomicU64,
    /// Open connections.
    pub connections: AtomicU64,
    /// Connections refused for want of a credential.
    pub refused_no_token: AtomicU64,
    /// Connections refused for a credential that is neither the internal token nor a valid JWT.
    pub refused_bad_token: AtomicU64,
}

impl InternalMetrics {
    /// `(labels, count)` of `rmf_dash_internal_frames_total`.
    pub fn by_result(&self) -> Vec<(String, u64)> {
        [
            ("ok", &self.ok),
            ("invalid", &self.invalid),
            ("oversized", &self.oversized),
            ("rate_limited", &self.rate_limited),
        ]
        .into_iter()
        .map(|(result, n)| {
            (
                format!("{{result=\"{result}\"}}"),
                n.load(Ordering::Relaxed),
            )
        })
        .collect()
    }

    /// `(labels, count)` of `rmf_dash_internal_refused_total`.
    pub fn refused(&self) -> Vec<(String, u64)> {
        [
            ("no_token", &self.refused_no_token),
            ("bad_token", &self.refused_bad_token),
        ]
        .into_iter()
        .map(|(reason, n)| {
            (
                format!("{{reason=\"{reason}\"}}"),
                n.load(Ordering::Relaxed),
            )
        })
        .collect()
    }
}

/// Who may connect to `/_internal`.
#[derive(Clone)]
pub enum InternalAccess {
    /// Anyone: client authentication is off (`--no-auth`) and no internal token is configured.
    Open,
    /// Anyone, although client authentication is on: `--internal-open` (labs).
    OpenedByFlag,
    /// A credential: the internal token (when configured) or a client JWT (when client
    /// authentication is on).
    Credentials {
        token: Option<String>,
        /// The client authentication; `None` with `--no-auth`.
        jwt: Option<Auth>,
    },
}

impl InternalAccess {
    /// From the configuration: with a token, a credential is required (the token, or a client
    /// JWT when clients authenticate) and `open` is ignored; without one, the route is open with
    /// `--no-auth` or `open`, and requires a client JWT otherwise.
    pub fn new(auth: &Auth, token: Option<String>, open: bool) -> Self {
        let jwt = auth.enabled().then(|| auth.clone());
        match (token, jwt) {
            (None, None) => InternalAccess::Open,
            (None, Some(_)) if open => InternalAccess::OpenedByFlag,
            (token, jwt) => InternalAccess::Credentials { token, jwt },
        }
    }

    /// Logs, once at start, how `/_internal` is authenticated (a warning when it is open
    /// although clients must authenticate).
    pub fn log(&self) {
        match self {
            InternalAccess::Open => tracing::info!(
                "/_internal is open to any adapter: authentication is disabled (--no-auth) and no --internal-token is given"
            ),
            InternalAccess::OpenedByFlag => tracing::warn!(
                "/_internal is open to any adapter (--internal-open) although clients must authenticate: anyone who reaches this server can feed it fleet, task and alert states; for labs only"
            ),
            InternalAccess::Credentials {
                token: Some(_),
                jwt: Some(_),
            } => tracing::info!(
                "/_internal requires the internal token or a valid client JWT (?token= or Authorization: Bearer)"
            ),
            InternalAccess::Credentials {
                token: Some(_),
                jwt: None,
            } => tracing::info!(
                "/_internal requires the internal token (?token= or Authorization: Bearer)"
            ),
            InternalAccess::Credentials { token: None, .. } => tracing::info!(
                "/_internal requires a valid client JWT (?token= or Authorization: Bearer); give --internal-token for adapters without one, or --internal-open for a lab"
            ),
        }
    }

    /// Whether a client giving `given` may connect: the user of its JWT, if it gave one; the
    /// refusal otherwise.
    fn admit(&self, given: Option<&str>) -> Result<Option<String>, Refused> {
        let InternalAccess::Credentials { token, jwt } = self else {
            return Ok(None);
        };
        let given = given.filter(|g| !g.is_empty()).ok_or(Refused::NoToken)?;
        if let Some(expected) = token
            && same_secret(given.as_bytes(), expected.as_bytes())
        {
            return Ok(None);
        }
        let Some(auth) = jwt else {
            return Err(Refused::WrongToken);
        };
        match auth.verify(Some(given)) {
            Ok(user) => Ok(Some(user.username)),
            Err(e) if token.is_some() => Err(Refused::NeitherTokenNorJwt(e)),
            Err(e) => Err(Refused::Jwt(e)),
        }
    }
}

/// Why a connection was refused (answered and logged; the credential itself never is).
#[derive(Debug, Error)]
enum Refused {
    #[error("no token (give ?token= or Authorization: Bearer)")]
    NoToken,
    #[error("wrong token")]
    WrongToken,
    #[error("{0}")]
    Jwt(AuthError),
    #[error("wrong token: not the internal token, nor a valid client JWT ({0})")]
    NeitherTokenNorJwt(AuthError),
}

/// The shared state of `/_internal` (in [`crate::api::App`]).
pub struct Internal {
    pub config: InternalConfig,
    pub access: InternalAccess,
    pub metrics: InternalMetrics,
    next_id: AtomicU64,
}

impl Internal {
    pub fn new(config: InternalConfig, access: InternalAccess) -> Self {
        Internal {
            config,
            access,
            metrics: InternalMetrics::default(),
            next_id: AtomicU64::new(1),
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket. `rate` 0 never runs out.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Bucket {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Whether two secrets are equal, in a time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of a request: `?token=` (URL-decoded) or `Authorization: Bearer`.
fn token_of(query: Option<&str>, headers: &HeaderMap) -> Option<String> {
    let from_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| {
            let value = pair.strip_prefix("token=")?;
            percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .ok()
                .map(|v| v.into_owned())
        });
    from_query.or_else(|| {
        let header = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        Auth::bearer(header).map(str::to_string)
    })
}

/// `GET /_internal`: checks the credential (see [`InternalAccess`]), then upgrades to a
/// websocket.
pub async fn handler(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    peer: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let peer = json_limits::peer_name(peer.ok().map(|c| c.0));
    let given = token_of(query.as_deref(), &headers);
    let user = match app.internal.access.admit(given.as_deref()) {
        Ok(user) => user,
        Err(refused) => {
            let metrics = &app.internal.metrics;
            let counter = match refused {
                Refused::NoToken => &metrics.refused_no_token,
                _ => &metrics.refused_bad_token,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, reason = %refused, "/_internal connection refused");
            return ApiError(StatusCode::UNAUTHORIZED, format!("/_internal: {refused}"))
                .into_response();
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let max = app.internal.config.max_frame;
    // A single frame up to twice the limit is read whole, so that the message check fails at a
    // frame boundary and the adapter gets a clean close handshake; a longer one is refused from
    // its header, before its payload is buffered.
    ws.max_message_size(max)
        .max_frame_size(max.saturating_mul(2))
        .on_upgrade(move |socket| connection(socket, app, user, peer))
}

/// Warnings of one connection, limited to a burst then one a second.
struct Warnings {
    conn: u64,
    peer: String,
    budget: Bucket,
    left_out: u64,
}

impl Warnings {
    fn warn(&mut self, what: &str, reason: &dyn std::fmt::Display) {
        if !self.budget.take(Instant::now()) {
            self.left_out += 1;
            return;
        }
        let reason = reason.to_string();
        let reason = clip(&reason, REASON_MAX);
        tracing::warn!(
            conn = self.conn,
            peer = %self.peer,
            left_out = self.left_out,
            "/_internal: {what}: {reason}"
        );
        self.left_out = 0;
    }
}

/// Counts of one connection (logged when it ends).
#[derive(Default)]
struct Counts {
    ok: u64,
    invalid: u64,
    rate_limited: u64,
}

/// A receive error that ends the connection.
enum ReceiveError {
    /// A message over `max_frame`; `whole`: it was read whole (the stream is then at a frame
    /// boundary and the close handshake can be completed).
    Oversized {
        whole: bool,
    },
    /// A text message that is not UTF-8 (read whole).
    Utf8,
    Other(axum::Error),
}

impl ReceiveError {
    fn of(e: axum::Error, max_frame: usize) -> ReceiveError {
        let e = match e.into_inner().downcast::<tungstenite::Error>() {
            Ok(e) => *e,
            Err(other) => return ReceiveError::Other(axum::Error::new(other)),
        };
        match e {
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                max_size,
                ..
            }) => ReceiveError::Oversized {
                whole: max_size == max_frame,
            },
            // Its text (the frame, decoded lossily) is never logged.
            tungstenite::Error::Utf8(_) => ReceiveError::Utf8,
            other => ReceiveError::Other(axum::Error::new(other)),
        }
    }
}

/// One adapter's connection, between its frames.
struct Adapter<'a> {
    app: &'a AppState,
    conn: u64,
    /// The frame bounds: the JSON depth bound, and `max_frame` as the size bound.
    limits: Limits,
    limit: Bucket,
    warnings: Warnings,
    counts: Counts,
    names: Names,
}

/// One adapter's connection: reads frames until it closes. `user`: the user of the JWT it
/// gave, if it gave one.
async fn connection(mut socket: WebSocket, app: AppState, user: Option<String>, peer: String) {
    let internal = &app.internal;
    let conn = internal.next_id.fetch_add(1, Ordering::Relaxed);
    internal.metrics.connections.fetch_add(1, Ordering::Relaxed);
    match &user {
        Some(user) => tracing::info!(conn, %peer, %user, "/_internal: fleet adapter connected"),
        None => tracing::info!(conn, %peer, "/_internal: fleet adapter connected"),
    }
    let now = Instant::now();
    let mut adapter = Adapter {
        app: &app,
        conn,
        limits: Limits {
            max_depth: json_limits::limits().max_depth,
            max_bytes: internal.config.max_frame,
        },
        limit: Bucket::new(internal.config.rate, internal.config.burst, now),
        warnings: Warnings {
            conn,
            peer,
            budget: Bucket::new(1, WARN_BURST, now),
            left_out: 0,
        },
        counts: Counts::default(),
        names: Names::default(),
    };
    let end = loop {
        let ended = match socket.recv().await {
            None => Some("connection lost".into()),
            Some(Ok(message)) => adapter.message(message).await,
            Some(Err(e)) => Some(adapter.receive_error(&mut socket, e).await),
        };
        if let Some(end) = ended {
            break end;
        }
    };
    internal.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    let Counts {
        ok,
        invalid,
        rate_limited,
    } = adapter.counts;
    let peer = adapter.warnings.peer;
    tracing::info!(
        conn,
        %peer,
        ok,
        invalid,
        rate_limited,
        "/_internal: fleet adapter disconnected ({end})"
    );
}

impl Adapter<'_> {
    /// Handles one message; `Some(why)` when the connection ends.
    async fn message(&mut self, message: Message) -> Option<Cow<'static, str>> {
        let text = match message {
            Message::Text(text) => Ok(text),
            Message::Binary(bytes) => Err(FrameError::Binary(bytes.len())),
            Message::Ping(_) | Message::Pong(_) => return None,
            Message::Close(_) => return Some("closed by the adapter".into()),
        };
        let config = &self.app.internal.config;
        if !self.limit.take(Instant::now()) {
            self.counts.rate_limited += 1;
            let metrics = &self.app.internal.metrics;
            metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            self.warnings.warn(
                "frame dropped",
                &format_args!(
                    "over the rate limit ({} frames/s, burst {})",
                    config.rate, config.burst
                ),
            );
            return None;
        }
        match text.and_then(|t| frame_inputs(t.as_str(), &self.limits, &mut self.names)) {
            Ok(inputs) => {
                let item = Feed::Inputs {
                    inputs,
                    stamp: Stamp::Live,
                    source: Source::Internal,
                };
                if !self.app.feed.send(item).await {
                    return Some("the server is stopping".into());
                }
                self.counts.ok += 1;
                self.app.internal.metrics.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.invalid(&e),
        }
        None
    }

    /// Counts and logs a dropped frame.
    fn invalid(&mut self, e: &FrameError) {
        self.counts.invalid += 1;
        self.app
            .internal
            .metrics
            .invalid
            .fetch_add(1, Ordering::Relaxed);
        if let Some(reason) = e.json_reason() {
            json_limits::count(Door::Internal, reason);
        }
        self.warnings.warn("invalid frame dropped", e);
    }

    /// Handles a receive error: a message over the size limit closes the connection with 1009,
    /// a text message that is not UTF-8 with 1007 (RFC 6455), both counted and logged.
    async fn receive_error(&mut self, socket: &mut WebSocket, e: axum::Error) -> Cow<'static, str> {
        let metrics = &self.app.internal.metrics;
        let max = self.limits.max_bytes;
        match ReceiveError::of(e, max) {
            ReceiveError::Oversized { whole } => {
                metrics.oversized.fetch_add(1, Ordering::Relaxed);
                json_limits::count(Door::Internal, Reason::Bytes);
                tracing::warn!(
                    conn = self.conn,
                    peer = %self.warnings.peer,
                    max_frame = max,
                    "/_internal: message over the size limit, closing the connection (1009)"
                );
                let reason = format!("message larger than {max} bytes");
                close(socket, close_code::SIZE, reason, whole).await;
                "message over the size limit".into()
            }
            ReceiveError::Utf8 => {
                self.counts.invalid += 1;
                metrics.invalid.fetch_add(1, Ordering::Relaxed);
                json_limits::count(Door::Internal, Reason::Utf8);
                tracing::warn!(
                    conn = self.conn,
                    peer = %self.warnings.peer,
                    "/_internal: text frame not UTF-8, closing the connection (1007)"
                );
                let reason = "text frame not UTF-8".to_string();
                close(socket, close_code::INVALID, reason, true).await;
                "text frame not UTF-8".into()
            }
            ReceiveError::Other(e) => format!("receive error: {e}").into(),
        }
    }
}

/// Sends a close frame; with `wait`, waits (at most [`CLOSE_WAIT`]) for the adapter's reply.
async fn close(socket: &mut WebSocket, code: u16, reason: String, wait: bool) {
    let close = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(close))).await.is_ok() && wait {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(m)) = socket.recv().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_gives_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, 3, t0);
        assert_eq!((0..5).filter(|_| b.take(t0)).count(), 3);
        // 0.25 s later: 2.5 tokens.
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!((0..5).filter(|_| b.take(t1)).count(), 2);
        // Never more than the burst saved.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.take(t2)).count(), 3);
        // An earlier instant (another clock read) takes nothing back.
        assert!(!b.take(t1));
        let mut unlimited = Bucket::new(0, 1, t0);
        assert!((0..10_000).all(|_| unlimited.take(t0)));
    }

    #[test]
    fn tokens_come_from_the_query_or_the_bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(token_of(None, &h), None);
        assert_eq!(
            token_of(Some("a=1&token=s%20e%2Fc"), &h).as_deref(),
            Some("s e/c")
        );
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().expect("header"));
        assert_eq!(token_of(None, &h).as_deref(), Some("abc"));
        assert_eq!(token_of(Some("token=q"), &h).as_deref(), Some("q"));
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn internal_access_is_closed_whenever_clients_authenticate() {
        let jwt = Auth::new(Some("k"), None, "rmf_api_server", None, false).expect("auth");
        let off = Auth::Disabled;
        let exp = jsonwebtoken::get_current_timestamp() + 3600;
        let good = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"aud": "rmf_api_server", "exp": exp, "preferred_username": "a"}),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        )
        .expect("token");
        let admit =
            |a: &InternalAccess, g: Option<&str>| a.admit(g).map(|_| ()).map_err(|e| e.to_string());
        let token = || Some("t0k".to_string());

        // --no-auth, no token: open. --internal-open: open.
        let open = InternalAccess::new(&off, None, false);
        assert!(matches!(open, InternalAccess::Open));
        assert_eq!(admit(&open, None), Ok(()));
        let lab = InternalAccess::new(&jwt, None, true);
        assert!(matches!(lab, InternalAccess::OpenedByFlag));
        assert_eq!(admit(&lab, Some("anything")), Ok(()));

        // Client auth on, no token: a valid JWT only.
        let closed = InternalAccess::new(&jwt, None, false);
        assert_eq!(
            admit(&closed, None),
            Err("no token (give ?token= or Authorization: Bearer)".into())
        );
        assert_eq!(admit(&closed, Some("")), admit(&closed, None));
        assert_eq!(
            admit(&closed, Some("x.y.z")),
            Err("invalid token: malformed".into())
        );
        assert_eq!(admit(&closed, Some(&good)), Ok(()));
        assert_eq!(
            closed.admit(Some(&good)).map_err(|e| e.to_string()),
            Ok(Some("a".into())),
            "the adapter's user is logged"
        );

        // A token configured: it, or a valid JWT when clients authenticate; --internal-open
        // does not open a route that has a token.
        let both = InternalAccess::new(&jwt, token(), true);
        assert_eq!(admit(&both, Some("t0k")), Ok(()));
        assert_eq!(admit(&both, Some(&good)), Ok(()));
        assert_eq!(
            admit(&both, Some("t0")),
            Err(
                "wrong token: not the internal token, nor a valid client JWT (invalid token: malformed)"
                    .into()
            )
        );
        let only_token = InternalAccess::new(&off, token(), false);
        assert_eq!(admit(&only_token, Some("t0k")), Ok(()));
        assert_eq!(admit(&only_token, Some(&good)), Err("wrong token".into()));
    }
}
