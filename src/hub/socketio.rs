//! The hub's socket.io transport (socketioxide on axum; COMPAT.md): Socket.IO v5 at
//! `<prefix>/socket.io`, the JWT checked at connect (`auth: {token}`; refused with
//! `connect_error`), `subscribe`/`unsubscribe` with `{room}` (URL-encoded rooms decoded), every
//! change emitted as an event named after the room with the payload as first argument and
//! `{seq, t, sent_ms}` as second. Errors go to the offending socket only (`subscribe_error`, and
//! the acknowledgement when one is asked for). Rooms restricted by role (`--room-permission`,
//! [`crate::access::rooms`]) are refused to users without the permission.
//!
//! Memory per connected socket is bounded here, for the main process and proxies alike
//! ([`layer`], [`mount`]): about 20 KiB for an idle websocket client (engineioxide's packet
//! channel block, its three per-socket tasks, the websocket read buffer). A socket's outgoing
//! queue holds at most [`QUEUE`] packets; when it is full (a client that does not keep up), the
//! hub stops queueing for it and later sends what it missed coalesced ([`super::Hub::flush`]:
//! a state room's present value, a stream room's events still in its tail), so a slow client
//! costs at most its queue, engineioxide's websocket write buffer (128 KiB plus one message,
//! fixed by engineioxide) and the kernel's socket buffer.
//!
//! Bounds ([`super::bounds`]): a socket's outgoing queue holds at most `--socket-queue-bytes`
//! (8 MiB) besides its [`QUEUE`] packets: each delivery reserves its bytes and the hub coalesces
//! as for a full queue when they would pass the bound ([`super::drain`] reads what left, from the
//! connection's writes or the polling responses); both are counted
//! (`rmf_dash_socket_queue_full_total{reason="packets|bytes"}`). A socket follows at most
//! `--max-rooms-per-client` rooms; a subscription refused by a bound answers `subscribe_error`
//! with the bound's flag, is counted, and is warned about once per socket with its user, sid and
//! address.
//!
//! Writes: engineioxide's per-socket task writes every packet queued for its socket, then
//! flushes once (one `send`); at a dashboard's few deliveries per second per socket most packets
//! are alone in their queue (BENCHMARKS.md, "Proxy load test", measures where the time goes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, OriginalUri, Request};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use serde_json::value::RawValue;
use socketioxide::extract::{AckSender, SocketRef, State};
use socketioxide::handler::ConnectHandler;
use socketioxide::handler::{FromMessageParts, Value};
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::Socket;
use socketioxide::{SendError, SocketError, SocketIo, TransportType};

use super::drain::{self, Queue};
use super::{Hub, Meta, Sent, SubscribeError, Subscriber};
use crate::access::rooms::{Grants, Refusal, RoomAccess};
use crate::access::token::{Auth, AuthError, User};
use crate::listener::Written;
use crate::metrics::{Kind, Metrics};
use payload::Checked;

mod payload;

/// What the socket handlers share.
pub struct SocketState {
    pub hub: Arc<Hub>,
    pub auth: Auth,
    /// Rooms restricted to some roles (`None`: any authenticated user reads every room).
    rooms: Option<Arc<RoomAccess>>,
    next_id: AtomicU64,
    pub connections: AtomicU64,
    /// Deliveries that found a socket's queue full, by bound.
    pub queue_full: Arc<QueueFull>,
}

/// Deliveries that found a socket's queue full (the hub coalesced them).
#[derive(Debug, Default)]
pub struct QueueFull {
    /// [`QUEUE`] packets waited.
    pub packets: AtomicU64,
    /// `--socket-queue-bytes` would have been passed.
    pub bytes: AtomicU64,
}

impl SocketState {
    pub fn new(hub: Arc<Hub>, auth: Auth, rooms: Option<Arc<RoomAccess>>) -> Arc<Self> {
        // With authentication off every user is the admin stub: nothing to restrict.
        let rooms = rooms.filter(|_| auth.enabled());
        Arc::new(SocketState {
            hub,
            auth,
            rooms,
            next_id: AtomicU64::new(1),
            connections: AtomicU64::new(0),
            queue_full: Arc::default(),
        })
    }

    /// The families every process with sockets has, main process and proxy alike (`/metrics`):
    /// the hub's rooms, subscriptions and deliveries, the connected clients, and the counters
    /// of the hub's and the sockets' bounds.
    pub fn write_metrics(&self, m: &mut Metrics) {
        let (rooms, subscriptions, behind) = self.hub.sizes();
        m.gauge(
            "rmf_dash_rooms",
            "Rooms with a value or a subscriber.",
            rooms as u64,
        );
        m.gauge(
            "rmf_dash_subscriptions",
            "Room subscriptions.",
            subscriptions as u64,
        );
        m.gauge(
            "rmf_dash_subscribers_behind",
            "Subscribers with coalesced rooms to catch up on.",
            behind as u64,
        );
        m.gauge(
            "rmf_dash_socketio_connections",
            "Connected socket.io clients.",
            self.connections.load(Ordering::Relaxed),
        );
        self.hub.metrics.write_metrics(m);
        let full = &self.queue_full;
        m.by(
            "rmf_dash_socket_queue_full_total",
            &format!("Deliveries that found a socket's queue full and were coalesced, by bound (packets: {QUEUE} packets; bytes: --socket-queue-bytes)."),
            Kind::Counter,
            "reason",
            [
                ("packets", full.packets.load(Ordering::Relaxed)),
                ("bytes", full.bytes.load(Ordering::Relaxed)),
            ],
        );
    }

    /// The room rules in force (`None`: no rule, or authentication off).
    pub fn room_access(&self) -> Option<&Arc<RoomAccess>> {
        self.rooms.as_ref()
    }
}

/// Per-socket data kept in the socket's extensions.
#[derive(Clone)]
struct Conn {
    id: u64,
    user: Arc<User>,
    /// What the user may read, once a restricted room was asked for (with room rules only).
    grants: Option<Arc<tokio::sync::OnceCell<Grants>>>,
    /// The client's token, kept only where grants are asked upstream with it (a proxy with
    /// room rules).
    token: Option<Arc<str>>,
    /// Taken by each subscription in turn (see [`subscribe`]).
    turn: Arc<tokio::sync::Mutex<()>>,
    /// The bytes of its outgoing queue.
    queue: Arc<Queue>,
    /// Whether a subscription refused by a bound was warned about already.
    warned: Arc<AtomicBool>,
}

/// A socket as a hub subscriber.
struct SocketSub {
    id: u64,
    socket: SocketRef,
    queue: Arc<Queue>,
    full: Arc<QueueFull>,
}

impl Subscriber for SocketSub {
    fn id(&self) -> u64 {
        self.id
    }

    fn send(&self, room: &str, value: Option<&RawValue>, meta: Meta) -> Sent {
        // What the delivery takes at least on the wire: its room's name and its value.
        let size = (room.len() + value.map_or(4, |v| v.get().len())) as u64;
        let websocket = self.socket.transport_type() == TransportType::Websocket;
        let Some(reserved) = self.queue.reserve(size, websocket) else {
            self.full.bytes.fetch_add(1, Ordering::Relaxed);
            return Sent::Full;
        };
        let sent = match self.socket.emit(room, &(value, meta)) {
            Ok(()) => return Sent::Ok,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                self.full.packets.fetch_add(1, Ordering::Relaxed);
                Sent::Full
            }
            Err(SendError::Socket(SocketError::Closed)) => Sent::Closed,
            Err(e) => {
                tracing::warn!(room, "emit failed: {e}");
                Sent::Ok
            }
        };
        self.queue.release(reserved);
        sent
    }
}

#[derive(Deserialize)]
struct AuthData {
    token: Option<String>,
}

#[derive(Deserialize)]
struct RoomRequest {
    room: String,
}

/// Packets waiting per socket before the hub coalesces for it (engineioxide's channel; its
/// blocks of 32 are allocated as they fill, so an idle socket pays for one).
pub const QUEUE: usize = 256;

/// Bytes read from a client's websocket at once (engineioxide's default is 4 KiB, allocated per
/// socket; clients only send small `subscribe`s, pongs and acks, and a bigger frame still reads
/// whole: the buffer grows for it).
pub const WS_READ_BUFFER: usize = 1024;

/// Builds the socket.io layer; `prefix` is the URL prefix ("" or "/api"). Mount it with
/// [`mount`].
pub fn layer(state: Arc<SocketState>, prefix: &str) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .req_path(format!("{prefix}/socket.io"))
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        .max_buffer_size(QUEUE)
        .ws_read_buffer_size(WS_READ_BUFFER)
        .max_payload(crate::json_limits::limits().max_bytes as u64)
        .with_state(state)
        .build_layer();
    io.ns("/", connected.with(authenticate));
    (layer, io)
}

/// Serves socket.io in front of `router`: the socket.io layer, and before it [`http`].
pub fn mount<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    layer: SocketIoLayer,
) -> Router<S> {
    router.layer(layer).layer(axum::middleware::from_fn(http))
}

/// Every socket.io HTTP request: its parts get allocations of their own ([`own_parts`]), and
/// what leaves for a socket is counted for its queue's bound ([`drain`]): an upgrade to a
/// websocket tells which connection the socket now writes on, and a polling response counts
/// as it is sent.
async fn http(mut req: Request, next: Next) -> Response {
    if !req.uri().path().contains("/socket.io") {
        return next.run(req).await;
    }
    own_parts(&mut req);
    let query = req.uri().query().unwrap_or_default();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let (sid, transport) = (param("sid"), param("transport"));
    let written = req.extensions().get::<Written>().cloned();
    let get = req.method() == Method::GET;
    let response = next.run(req).await;
    let Some(sid) = sid else {
        return response;
    };
    match (transport.as_deref(), response.status()) {
        (Some("websocket"), StatusCode::SWITCHING_PROTOCOLS) => {
            if let Some(written) = written {
                drain::upgraded(&sid, &written);
            }
            response
        }
        (Some("polling"), StatusCode::OK) if get => match drain::polled(&sid) {
            Some(count) => response.map(|body| drain::count_polled(body, count)),
            None => response,
        },
        _ => response,
    }
}

/// Gives a socket.io request's header values and URIs allocations of their own. hyper parses
/// them as slices of the connection's read buffer (16 KiB after the handshake) and engineioxide
/// keeps the request's parts for the life of the socket: without the copy every connected
/// socket would keep that whole buffer (8 of the 28 KiB an idle socket cost).
fn own_parts(req: &mut Request) {
    for value in req.headers_mut().values_mut() {
        if let Ok(mut own) = HeaderValue::from_bytes(value.as_bytes()) {
            own.set_sensitive(value.is_sensitive());
            *value = own;
        }
    }
    if let Ok(uri) = req.uri().to_string().parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    // axum's copy of the URI as received (`OriginalUri`, for nested routers) shares it too.
    if let Some(original) = req.extensions_mut().get_mut::<OriginalUri>() {
        if let Ok(uri) = original.0.to_string().parse::<Uri>() {
            original.0 = uri;
        }
    }
}

async fn connected(_socket: SocketRef) {}

/// Runs before the CONNECT reply: checks the token, then registers the handlers (registered in
/// the connect handler they could miss the first events a fast client sends).
async fn authenticate(
    socket: SocketRef,
    Checked(auth): Checked<AuthData>,
    State(state): State<Arc<SocketState>>,
) -> Result<(), AuthError> {
    let token = auth.ok().and_then(|a| a.token);
    let user = state.auth.verify(token.as_deref()).inspect_err(|e| {
        tracing::info!(sid = %socket.id, "socket.io connection refused: {e}");
    })?;
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let rooms = state.rooms.as_ref();
    socket.extensions.insert(Conn {
        id,
        user: Arc::new(user),
        grants: rooms.map(|_| Default::default()),
        turn: Default::default(),
        token: token
            .filter(|_| rooms.is_some_and(|r| r.needs_token()))
            .map(Arc::from),
        queue: queue_of(&socket, &state),
        warned: Default::default(),
    });
    state.connections.fetch_add(1, Ordering::Relaxed);
    socket.on("subscribe", subscribe);
    socket.on("unsubscribe", unsubscribe);
    socket.on_disconnect(disconnect);
    Ok(())
}

/// The byte count of a socket's outgoing queue: a socket on a websocket from the start writes on
/// the connection it connected with; one that polls first is told its websocket when it
/// upgrades ([`http`]).
fn queue_of(socket: &SocketRef, state: &SocketState) -> Arc<Queue> {
    let written = (socket.transport_type() == TransportType::Websocket)
        .then(|| socket.req_parts().extensions.get::<Written>())
        .flatten();
    let limit = state.hub.bounds().socket_queue_bytes;
    Queue::new(socket.id.as_str(), limit, written)
}

/// Warns, once per socket, that a bound refused one of its subscriptions (later ones are
/// counted only).
fn warn_refused(socket: &SocketRef, conn: &Conn, room: &str, e: &SubscribeError) {
    if conn.warned.swap(true, Ordering::Relaxed) {
        return;
    }
    let peer = socket
        .req_parts()
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    tracing::warn!(
        user = %conn.user.username,
        sid = %socket.id,
        peer = ?peer,
        room,
        "socket.io subscription refused: {e} (further refusals of this socket are only counted)"
    );
}

/// The room of a `{room}` request, URL-decoded.
fn room_of(req: Result<RoomRequest, impl std::fmt::Display>) -> Result<String, String> {
    let req = req.map_err(|e| format!("expected {{\"room\": \"<room>\"}}: {e}"))?;
    percent_encoding::percent_decode_str(&req.room)
        .decode_utf8()
        .map(|r| r.into_owned())
        .map_err(|e| format!("room is not valid UTF-8 once URL-decoded: {e}"))
}

async fn refuse(socket: &SocketRef, ack: Ack, room: Option<&str>, error: &str) {
    let body = serde_json::json!({"room": room, "error": error});
    let _ = socket.emit("subscribe_error", &body);
    ack.send(&body).await;
}

/// The acknowledgement a client asked for with its event, sent again while the socket's queue
/// is full ([`QUEUE`]). A client that subscribes to hundreds of rooms at once, faster than it
/// reads their present values, fills its queue; socketioxide's [`AckSender`] drops a packet
/// that finds the queue full and cannot send it again, and a client waiting for the
/// acknowledgement would wait forever.
struct Ack {
    socket: Arc<Socket>,
    id: Option<i64>,
}

impl FromMessageParts<socketioxide::adapter::LocalAdapter> for Ack {
    type Error = std::convert::Infallible;

    fn from_message_parts(
        socket: &Arc<Socket>,
        _: &mut Value,
        id: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        Ok(Ack {
            socket: socket.clone(),
            id: *id,
        })
    }
}

/// Longest time an acknowledgement is retried while the socket's queue stays full.
const ACK_WINDOW: Duration = Duration::from_secs(30);

impl Ack {
    /// Sends `body` as the acknowledgement (nothing when none was asked for), retrying every
    /// 5 ms while the queue is full, for at most [`ACK_WINDOW`].
    async fn send<T: serde::Serialize>(self, body: &T) {
        let deadline = tokio::time::Instant::now() + ACK_WINDOW;
        loop {
            let mut unused = Value::Bytes(Default::default());
            let Ok(sender) = AckSender::from_message_parts(&self.socket, &mut unused, &self.id);
            match sender.send(body) {
                Err(SendError::Socket(SocketError::InternalChannelFull))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => {
                    tracing::debug!(sid = %self.socket.id, "acknowledgement not sent: {e}");
                    return;
                }
                Ok(()) => return,
            }
        }
    }
}

/// Waits (at most [`CONNECT_WINDOW`]) until socketioxide marks the socket connected: it does so
/// only after sending the CONNECT reply, and an emit before that fails as if the socket were
/// closed, so a subscription handled in that window would lose its sticky value. False when the
/// socket closed instead.
async fn until_connected(socket: &SocketRef) -> bool {
    let deadline = tokio::time::Instant::now() + CONNECT_WINDOW;
    while !socket.connected() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

/// Longest wait for a socket's CONNECT reply to be marked sent.
const CONNECT_WINDOW: Duration = Duration::from_secs(2);

async fn subscribe(
    socket: SocketRef,
    Checked(req): Checked<RoomRequest>,
    State(state): State<Arc<SocketState>>,
    ack: Ack,
) {
    let Some(conn) = socket.extensions.get::<Conn>() else {
        return;
    };
    if !until_connected(&socket).await {
        return;
    }
    // One subscription of a socket at a time: a burst of them (a dashboard opening) then
    // queues one present value and one acknowledgement at a time, and only one waits when the
    // queue is full.
    let _turn = conn.turn.lock().await;
    let room = match room_of(req) {
        Ok(r) => r,
        Err(e) => return refuse(&socket, ack, None, &e).await,
    };
    if let Err(e) = may_read(&state, &conn, &room).await {
        return refuse(&socket, ack, Some(&room), &e).await;
    }
    let sub = Arc::new(SocketSub {
        id: conn.id,
        socket: socket.clone(),
        queue: conn.queue.clone(),
        full: state.queue_full.clone(),
    });
    match state.hub.subscribe(sub, &room) {
        Ok(()) => {
            tracing::debug!(user = %conn.user.username, room, "subscribed");
            ack.send(&serde_json::json!({"room": room})).await;
            // A task that ended and left memory: its final state from the store.
            if super::retire::retiring(&room) {
                state.hub.recall(&room).await;
            }
        }
        Err(e) => {
            if e != SubscribeError::UnknownRoom {
                warn_refused(&socket, &conn, &room, &e);
            }
            refuse(&socket, ack, Some(&room), &e.to_string()).await;
        }
    }
}

/// Whether the connection's user may read `room` (room rules, `--room-permission`); the refusal
/// otherwise.
async fn may_read(state: &SocketState, conn: &Conn, room: &str) -> Result<(), String> {
    let (Some(access), Some(grants)) = (&state.rooms, &conn.grants) else {
        return Ok(());
    };
    access
        .may_read(grants, &conn.user.username, conn.token.as_deref(), room)
        .await
        .map_err(|(Refusal::Forbidden(e) | Refusal::Unavailable(e))| e)
}

async fn unsubscribe(
    socket: SocketRef,
    Checked(req): Checked<RoomRequest>,
    State(state): State<Arc<SocketState>>,
    ack: Ack,
) {
    let Some(conn) = socket.extensions.get::<Conn>() else {
        return;
    };
    match room_of(req) {
        Ok(room) => {
            state.hub.unsubscribe(conn.id, &room);
            ack.send(&serde_json::json!({"room": room})).await;
        }
        Err(e) => refuse(&socket, ack, None, &e).await,
    }
}

async fn disconnect(socket: SocketRef, State(state): State<Arc<SocketState>>) {
    if let Some(conn) = socket.extensions.get::<Conn>() {
        state.hub.remove(conn.id);
        state.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};

    /// After [`own_parts`], no header value nor the URI points into the buffer they were parsed
    /// from, and they are unchanged.
    #[test]
    fn request_parts_stop_sharing_the_read_buffer() {
        let buffer = Bytes::from(b"/socket.io/?EIO=4&transport=websocket websocket-key".to_vec());
        let inside = |p: *const u8| buffer.as_ptr_range().contains(&p);
        let mut req = Request::new(Body::empty());
        let key = HeaderValue::from_maybe_shared(buffer.slice(38..)).expect("valid value");
        assert!(inside(key.as_bytes().as_ptr()));
        req.headers_mut().insert("sec-websocket-key", key);
        *req.uri_mut() = Uri::from_maybe_shared(buffer.slice(..37)).expect("valid uri");
        assert!(inside(req.uri().path().as_ptr()));
        let original = OriginalUri(req.uri().clone());
        req.extensions_mut().insert(original);
        own_parts(&mut req);
        let key = &req.headers()["sec-websocket-key"];
        assert_eq!(key.as_bytes(), b"websocket-key");
        assert!(!inside(key.as_bytes().as_ptr()));
        assert_eq!(
            req.uri().to_string(),
            "/socket.io/?EIO=4&transport=websocket"
        );
        assert!(!inside(req.uri().path().as_ptr()));
        let original = &req.extensions().get::<OriginalUri>().expect("kept").0;
        assert_eq!(
            original.to_string(),
            "/socket.io/?EIO=4&transport=websocket"
        );
        assert!(!inside(original.path().as_ptr()));
    }
}
