//! The server side of the replication link: `GET {prefix}/_replicate`, served by the main
//! process and by every proxy (so proxies chain into a tree). The client authenticates with a
//! JWT (`Authorization: Bearer`, checked like every entry point; 401 before the upgrade), gets a
//! [`Hello`] with this process's epoch, then subscribes to rooms; each subscription is answered
//! with the room's present state and then every change, as binary frames ([`super::frame`]).
//!
//! Room rules (`--room-permission`) apply to a link as to a socket: a restricted room needs the
//! rule's permission for the link's user (read once per link, [`RoomAccess`]); a refused
//! subscription is answered `{"error": "forbidden: ...", "room": R}`. A proxy's
//! `--upstream-token` therefore names a user that may read every room its clients may (an admin,
//! or one holding the rules' actions); the proxy applies the rules to its own clients.
//!
//! A link is a hub subscriber like a socket: its buffer is bounded ([`LINK_BUFFER`] frames); when
//! full, the hub coalesces for it (the latest value of a state room later, with its seq).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use serde_json::value::RawValue;
use tokio::sync::{OnceCell, mpsc};

use super::frame::{self, Hello, Refused, Request};
use crate::access::rooms::{Grants, Refusal, RoomAccess};
use crate::access::token::Auth;
use crate::hub::{Hub, Meta, Sent, Subscriber};

/// Frames waiting per link before the hub coalesces for it: a few complete batches of a
/// 1,000-robot site (about 2,500 rooms). Memory per link is bounded by this many payloads.
pub const LINK_BUFFER: usize = 16_384;
/// Frames written per websocket flush.
const BATCH: usize = 256;
/// Rooms one link may follow (more are refused).
pub const MAX_ROOMS: usize = 100_000;

/// What the `/_replicate` handler shares.
pub struct Replicas {
    hub: Arc<Hub>,
    auth: Auth,
    /// The room rules, shared with socket.io (`None`: nothing restricted).
    rooms: Option<Arc<RoomAccess>>,
    /// This process's epoch (a new one at every start).
    pub epoch: String,
    /// The store this process's state comes from (main processes with a store).
    pub lineage: Option<String>,
    next_id: AtomicU64,
    /// Connected links.
    pub connections: AtomicU64,
}

impl Replicas {
    /// `rooms`: the room rules socket.io applies. `lineage` (a main process with a store) names
    /// the store, so that a proxy can tell a takeover or a restart on the same store (sequence
    /// numbers continue) from a new one.
    pub fn new(
        hub: Arc<Hub>,
        auth: Auth,
        rooms: Option<Arc<RoomAccess>>,
        lineage: Option<String>,
    ) -> Arc<Self> {
        Arc::new(Replicas {
            hub,
            auth,
            rooms,
            epoch: uuid::Uuid::new_v4().to_string(),
            lineage,
            next_id: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        })
    }

    /// Subscriber ids of links: the upper half of the id space (sockets count from 1).
    fn next_id(&self) -> u64 {
        (1 << 63) | self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// The `/_replicate` route, to merge into a router of any state.
pub fn router<S: Clone + Send + Sync + 'static>(replicas: Arc<Replicas>) -> axum::Router<S> {
    axum::Router::new()
        .route("/_replicate", axum::routing::get(handler))
        .with_state(replicas)
}

/// A link as a hub subscriber.
struct LinkSub {
    id: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

impl Subscriber for LinkSub {
    fn id(&self) -> u64 {
        self.id
    }

    fn send(&self, room: &str, value: Option<&RawValue>, meta: Meta) -> Sent {
        match self.tx.try_send(frame::encode(room, value, meta)) {
            Ok(()) => Sent::Ok,
            Err(mpsc::error::TrySendError::Full(_)) => Sent::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Sent::Closed,
        }
    }
}

async fn handler(
    State(replicas): State<Arc<Replicas>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let bearer = Auth::bearer(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok()),
    );
    let user = match replicas.auth.verify(bearer) {
        Ok(u) => u,
        Err(e) => {
            tracing::info!("/_replicate refused: {e}");
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({ "detail": format!("/_replicate: {e}") })),
            )
                .into_response();
        }
    };
    let reader = Reader {
        username: user.username,
        token: bearer.map(str::to_string),
        grants: OnceCell::new(),
    };
    ws.max_message_size(frame::MAX_REQUEST)
        .max_frame_size(frame::MAX_REQUEST)
        .on_upgrade(move |socket| serve(replicas, socket, reader))
}

/// The link's user, as the room rules see it.
struct Reader {
    username: String,
    /// The link's JWT (a proxy asks its upstream for the user's grants with it).
    token: Option<String>,
    /// The user's grants, read at the first restricted room.
    grants: OnceCell<Grants>,
}

impl Reader {
    /// Whether the link may follow `room`: the refusal's text otherwise.
    async fn may_read(&self, rooms: Option<&RoomAccess>, room: &str) -> Result<(), String> {
        let Some(rooms) = rooms else { return Ok(()) };
        match rooms
            .may_read(&self.grants, &self.username, self.token.as_deref(), room)
            .await
        {
            Ok(()) => Ok(()),
            Err(Refusal::Forbidden(detail)) => Err(format!("forbidden: {detail}")),
            Err(Refusal::Unavailable(detail)) => Err(format!("unavailable: {detail}")),
        }
    }
}

async fn serve(replicas: Arc<Replicas>, mut socket: WebSocket, reader: Reader) {
    let user = &reader.username;
    let id = replicas.next_id();
    let (tx, mut rx) = mpsc::channel(LINK_BUFFER);
    let sub: Arc<dyn Subscriber> = Arc::new(LinkSub { id, tx });
    replicas.connections.fetch_add(1, Ordering::Relaxed);
    tracing::info!(user, link = id & !(1 << 63), "replication link connected");
    let hello = Hello {
        protocol: frame::PROTOCOL.into(),
        version: frame::VERSION,
        epoch: replicas.epoch.clone(),
        lineage: replicas.lineage.clone(),
    };
    let mut rooms = std::collections::HashSet::new();
    let mut ok = match serde_json::to_string(&hello) {
        Ok(h) => socket.send(Message::Text(h.into())).await.is_ok(),
        Err(_) => false,
    };
    while ok {
        tokio::select! {
            frame = rx.recv() => {
                let Some(first) = frame else { break };
                ok = write_batch(&mut socket, first, &mut rx).await;
            }
            msg = socket.recv() => {
                ok = match msg {
                    Some(Ok(Message::Text(text))) => {
                        let link = Link { sub: &sub, reader: &reader };
                        answer(&replicas, link, &mut rooms, &mut socket, text.as_str()).await
                    }
                    Some(Ok(Message::Binary(_))) => {
                        refuse(&mut socket, "binary requests are not understood", None).await
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => true,
                    Some(Ok(Message::Close(_))) | None => false,
                    Some(Err(e)) => {
                        tracing::info!(link = id & !(1 << 63), "replication link error: {e}");
                        false
                    }
                };
            }
        }
    }
    replicas.hub.remove(id);
    replicas.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(link = id & !(1 << 63), "replication link closed");
}

/// Writes `first` and whatever else is ready (up to [`BATCH`]), then flushes once.
async fn write_batch(
    socket: &mut WebSocket,
    first: Vec<u8>,
    rx: &mut mpsc::Receiver<Vec<u8>>,
) -> bool {
    if socket.feed(Message::Binary(first.into())).await.is_err() {
        return false;
    }
    for _ in 1..BATCH {
        match rx.try_recv() {
            Ok(f) => {
                if socket.feed(Message::Binary(f.into())).await.is_err() {
                    return false;
                }
            }
            Err(_) => break,
        }
    }
    socket.flush().await.is_ok()
}

/// A link as its requests are answered: its hub subscriber and its reader.
struct Link<'a> {
    sub: &'a Arc<dyn Subscriber>,
    reader: &'a Reader,
}

async fn answer(
    replicas: &Replicas,
    link: Link<'_>,
    rooms: &mut std::collections::HashSet<String>,
    socket: &mut WebSocket,
    text: &str,
) -> bool {
    let sub = link.sub;
    match frame::read_request(text) {
        Ok(Request::Sub { room, since }) => {
            if rooms.len() >= MAX_ROOMS && !rooms.contains(&room) {
                refuse(socket, "too many rooms on one link", Some(room)).await
            } else if let Err(refusal) =
                link.reader.may_read(replicas.rooms.as_deref(), &room).await
            {
                refuse(socket, &refusal, Some(room)).await
            } else if replicas.hub.replicate(sub.clone(), &room, since) {
                rooms.insert(room);
                true
            } else {
                refuse(socket, "unknown room", Some(room)).await
            }
        }
        Ok(Request::Unsub { room }) => {
            replicas.hub.unsubscribe(sub.id(), &room);
            rooms.remove(&room);
            true
        }
        Err(e) => refuse(socket, &format!("bad request: {e}"), None).await,
    }
}

async fn refuse(socket: &mut WebSocket, error: &str, room: Option<String>) -> bool {
    let body = Refused {
        error: error.to_string(),
        room,
    };
    match serde_json::to_string(&body) {
        Ok(b) => socket.send(Message::Text(b.into())).await.is_ok(),
        Err(_) => false,
    }
}
