//! The client side of the replication link: one websocket from a proxy to its upstream (the
//! main process or another proxy), subscribing rooms on demand and applying what arrives to the
//! proxy's hub with the upstream's sequence numbers.
//!
//! - On demand: the hub's [`Interest`] marks a room when it gets its first local subscriber or
//!   loses its last; the link then subscribes or unsubscribes upstream (and forgets the room's
//!   value, which would go stale).
//! - Gap-free and duplicate-free: every change carries the upstream seq; the hub drops a seq not
//!   above the one it holds, so a snapshot after a reconnect delivers nothing already seen.
//! - Reconnects: after a drop the link reconnects with backoff (0.1 s doubling to 5 s) and
//!   subscribes every room again (stream rooms with the last seq it holds, to resume their tail).
//! - Restarts upstream: the hello's epoch changes; seqs of the new epoch are not comparable, so
//!   each room held gets an offset (its present seq + 1): the new snapshot is accepted as truth
//!   and delivered to local subscribers (a `null` when the room has no value upstream any more),
//!   and local seqs keep growing.
//! - Takeovers: when the new epoch has the same lineage as the old one (a main process that took
//!   over, or restarted, on the same store), its state continues the old one's: its seqs and
//!   logical times go on from the store's checkpoint, which may be behind what this proxy already
//!   got from the process that died. Each room held then keeps what it holds and takes only
//!   frames after it, in (logical time, upstream seq) order, with the same seq offset (raised
//!   only if needed to stay above the seq held). A client sees a pause, never an older value,
//!   and the same seqs as before (a jump when changes went by during the pause).
//! - Several upstreams (the main processes of a site, one active, the others standby): the
//!   link follows whichever accepts it, trying them in turn (a standby answers 503); it stays
//!   with the one it has until that one goes away.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use thiserror::Error;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::frame::{self, Hello, Refused, Request};
use crate::error::chain;
use crate::hub::{Hub, Interest, Meta};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// With several upstreams a standby is expected to take over within a second: tried often
/// (a refused connection or a standby's 503 costs little).
const BACKOFF_MAX_SEVERAL: Duration = Duration::from_millis(250);
/// A ping this often; a link silent for [`SILENT`] is dead.
const PING: Duration = Duration::from_secs(5);
const SILENT: Duration = Duration::from_secs(15);
/// Most frames applied as one batch.
const BATCH: usize = 4096;
/// Largest frame accepted from upstream.
const MAX_FRAME: usize = 16 << 20;

#[derive(Debug, Error)]
pub enum LinkError {
    #[error("connecting")]
    Connect(#[from] tungstenite::Error),
    #[error("bad upstream URL: {0}")]
    Url(String),
    #[error("upstream is a standby main process (503)")]
    Standby,
    #[error("upstream said no hello ({0})")]
    Hello(String),
    #[error("upstream went silent")]
    Silent,
    #[error("upstream closed the link")]
    Closed,
    #[error("encoding a request")]
    Request(#[from] serde_json::Error),
}

/// Where the link goes.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// `ws://host:port/prefix/_replicate` of each upstream (at least one).
    pub urls: Vec<String>,
    /// JWT given as `Authorization: Bearer`.
    pub token: Option<String>,
    /// How long frames are gathered into one batch after the first (`--batch-ms`; zero: only
    /// those already received).
    pub batch: Duration,
}

/// The link's state and counters (`/health`, `/metrics`).
#[derive(Debug, Default)]
pub struct LinkStatus {
    pub connected: AtomicBool,
    /// The upstream followed (or last followed): an index into the configured URLs.
    pub current: AtomicUsize,
    pub epoch: Mutex<Option<String>>,
    /// Successful connections (the first included).
    pub connects: AtomicU64,
    /// Upstream epoch changes seen (upstream restarts).
    pub epochs: AtomicU64,
    pub frames: AtomicU64,
    /// Frames whose seq was already held (duplicates or older; dropped).
    pub stale: AtomicU64,
    pub invalid: AtomicU64,
    /// Rooms subscribed upstream.
    pub rooms: AtomicU64,
}

/// The rooms whose local interest changed since the link last looked.
#[derive(Default)]
struct Wanted {
    dirty: Mutex<HashSet<String>>,
    notify: Notify,
}

impl Interest for Wanted {
    fn changed(&self, room: &str) {
        self.dirty.lock().insert(room.to_string());
        self.notify.notify_one();
    }
}

/// A room followed upstream.
#[derive(Debug, Clone, Copy, Default)]
struct Followed {
    /// Added to upstream seqs (local seq = upstream seq + offset).
    offset: i64,
    /// The last upstream seq applied in the present epoch (stream resume).
    last: u64,
    /// After a takeover (new epoch, same lineage): the (logical time, upstream seq of the old
    /// epoch) of what the room holds; frames not after it are already held.
    floor: Option<(u64, u64)>,
}

/// Starts the link; it runs until the process ends.
pub fn spawn(hub: Arc<Hub>, config: LinkConfig) -> Arc<LinkStatus> {
    let wanted = Arc::new(Wanted::default());
    hub.set_interest(wanted.clone());
    let status = Arc::new(LinkStatus::default());
    let link = Link {
        hub,
        wanted,
        status: status.clone(),
        config,
        rooms: HashMap::new(),
        epoch: None,
        lineage: None,
    };
    tokio::spawn(link.run());
    status
}

struct Link {
    hub: Arc<Hub>,
    wanted: Arc<Wanted>,
    status: Arc<LinkStatus>,
    config: LinkConfig,
    rooms: HashMap<String, Followed>,
    epoch: Option<String>,
    lineage: Option<String>,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Link {
    async fn run(mut self) {
        let n = self.config.urls.len().max(1);
        let max = if n > 1 {
            BACKOFF_MAX_SEVERAL
        } else {
            BACKOFF_MAX
        };
        let mut backoff = BACKOFF_MIN;
        let mut last_error = vec![String::new(); n];
        let mut current = 0;
        loop {
            self.reconcile();
            // The upstream followed last first, then the others.
            for k in 0..n {
                let i = (current + k) % n;
                let url = self.config.urls.get(i).cloned().unwrap_or_default();
                match self.connect(&url).await {
                    Ok(ws) => {
                        current = i;
                        self.status.current.store(i, Ordering::Relaxed);
                        backoff = BACKOFF_MIN;
                        last_error.iter_mut().for_each(String::clear);
                        let why = self.follow(ws).await;
                        self.status.connected.store(false, Ordering::Relaxed);
                        tracing::warn!(%url, "upstream link lost: {}", chain(&why));
                        break;
                    }
                    Err(e) => {
                        let e = chain(&e);
                        // One line per distinct failure, not one per attempt.
                        if e != last_error[i] {
                            tracing::warn!(%url, "upstream unavailable: {e}; retrying");
                            last_error[i] = e;
                        }
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(max);
        }
    }

    /// Connects and reads the hello; adopts its epoch.
    async fn connect(&mut self, url: &str) -> Result<Ws, LinkError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| LinkError::Url(e.to_string()))?;
        if let Some(token) = &self.config.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| LinkError::Url("the token is not a valid header value".into()))?;
            request
                .headers_mut()
                .insert(tungstenite::http::header::AUTHORIZATION, value);
        }
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        let (mut ws, _) = match tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async_with_config(request, Some(config), true),
        )
        .await
        .map_err(|_| LinkError::Silent)?
        {
            Ok(c) => c,
            Err(tungstenite::Error::Http(r)) if r.status() == 503 => {
                return Err(LinkError::Standby);
            }
            Err(e) => return Err(e.into()),
        };
        let hello = match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Hello>(t.as_str())
                .map_err(|e| LinkError::Hello(e.to_string()))?,
            Ok(Some(Ok(other))) => return Err(LinkError::Hello(format!("got {other:?}"))),
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => return Err(LinkError::Closed),
            Err(_) => return Err(LinkError::Silent),
        };
        if hello.protocol != frame::PROTOCOL || hello.version != frame::VERSION {
            return Err(LinkError::Hello(format!(
                "{} version {} (expected {} version {})",
                hello.protocol,
                hello.version,
                frame::PROTOCOL,
                frame::VERSION
            )));
        }
        self.adopt(url, hello.epoch, hello.lineage);
        self.status.connects.fetch_add(1, Ordering::Relaxed);
        self.status.connected.store(true, Ordering::Relaxed);
        Ok(ws)
    }

    /// A new epoch: upstream seqs start over, so every room held moves its offset past the seq
    /// it holds (the next snapshot is then accepted and delivered); or, on the same lineage (a
    /// takeover), every room held keeps what it holds until upstream gives something newer.
    fn adopt(&mut self, url: &str, epoch: String, lineage: Option<String>) {
        if self.epoch.as_deref() == Some(epoch.as_str()) {
            tracing::info!(%url, epoch, "upstream link resumed (same upstream process)");
            return;
        }
        if self.epoch.is_some() {
            self.status.epochs.fetch_add(1, Ordering::Relaxed);
            let continues = lineage.is_some() && lineage == self.lineage;
            for (room, f) in &mut self.rooms {
                let (held, t) = self.hub.held(room).unwrap_or((0, 0));
                if continues {
                    // A floor set by an earlier takeover whose frames did not come yet stays.
                    if f.floor.is_none() && held > 0 {
                        f.floor = Some((t, f.last));
                    }
                } else {
                    f.offset = if held > 0 { held as i64 + 1 } else { 0 };
                    f.floor = None;
                }
                f.last = 0;
            }
            if continues {
                tracing::info!(%url, epoch, rooms = self.rooms.len(), "upstream taken over on the same store (new epoch, same lineage): every room goes on from what it holds");
            } else {
                tracing::info!(%url, epoch, rooms = self.rooms.len(), "upstream restarted (new epoch): resyncing every room");
            }
        } else {
            tracing::info!(%url, epoch, "upstream link connected");
        }
        *self.status.epoch.lock() = Some(epoch.clone());
        self.epoch = Some(epoch);
        self.lineage = lineage;
    }

    /// Applies local interest changes to the followed set; returns the requests to send.
    fn reconcile(&mut self) -> Vec<Request> {
        let dirty = std::mem::take(&mut *self.wanted.dirty.lock());
        let mut requests = Vec::new();
        for room in dirty {
            let want = self.hub.has_subscribers(&room);
            match (want, self.rooms.contains_key(&room)) {
                (true, false) => {
                    let held = self.hub.get(&room).map_or(0, |(seq, _)| seq);
                    self.rooms.insert(
                        room.clone(),
                        Followed {
                            offset: held as i64,
                            last: 0,
                            floor: None,
                        },
                    );
                    requests.push(Request::Sub { room, since: None });
                }
                (false, true) => {
                    self.rooms.remove(&room);
                    self.hub.evict(&room);
                    requests.push(Request::Unsub { room });
                }
                _ => {}
            }
        }
        self.status
            .rooms
            .store(self.rooms.len() as u64, Ordering::Relaxed);
        requests
    }

    /// Subscribes every followed room, then applies frames until the link drops.
    async fn follow(&mut self, mut ws: Ws) -> LinkError {
        let mut first: Vec<Request> = self
            .rooms
            .iter()
            .map(|(room, f)| Request::Sub {
                room: room.clone(),
                since: (f.last > 0).then_some(f.last),
            })
            .collect();
        first.extend(self.reconcile());
        if let Err(e) = send_all(&mut ws, &first).await {
            return e;
        }
        let mut ping = tokio::time::interval(PING);
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                msg = ws.next() => {
                    heard = tokio::time::Instant::now();
                    if let Some(e) = self.apply_batch(&mut ws, msg).await {
                        return e;
                    }
                }
                _ = self.wanted.notify.notified() => {
                    let requests = self.reconcile();
                    if let Err(e) = send_all(&mut ws, &requests).await {
                        return e;
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() > SILENT {
                        return LinkError::Silent;
                    }
                    if let Err(e) = ws.send(Message::Ping(Default::default())).await {
                        return e.into();
                    }
                }
            }
        }
    }

    /// Applies `first`, every message already received and, with `--batch-ms`, those arriving
    /// in that window, as one batch: the hub then sends each socket its share in one go (one
    /// write instead of one per delivery). Returns how the link ended, if it did.
    async fn apply_batch(
        &mut self,
        ws: &mut Ws,
        first: Option<Result<Message, tungstenite::Error>>,
    ) -> Option<LinkError> {
        let deadline = tokio::time::Instant::now() + self.config.batch;
        let mut batch = Vec::new();
        let mut next = Some(first);
        let mut end = None;
        while let Some(msg) = next.take() {
            match msg {
                Some(Ok(Message::Binary(b))) => batch.extend(self.decode(&b)),
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Refused>(t.as_str()) {
                    Ok(r) => tracing::warn!(room = ?r.room, "upstream refused: {}", r.error),
                    Err(_) => {
                        self.status.invalid.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Some(Ok(Message::Close(_))) | None => end = Some(LinkError::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => end = Some(e.into()),
            }
            if end.is_none() && batch.len() < BATCH {
                next = ws.next().now_or_never();
                if next.is_none() && !self.config.batch.is_zero() {
                    next = tokio::time::timeout_at(deadline, ws.next()).await.ok();
                }
            }
        }
        let n = batch.len();
        let applied = self.hub.apply_remote_many(batch);
        self.status
            .stale
            .fetch_add((n - applied) as u64, Ordering::Relaxed);
        end
    }

    /// Decodes one frame into the change to apply (with the seq offset of a takeover), `None`
    /// for an invalid frame, a room no longer followed, or a frame already held.
    fn decode(&mut self, bytes: &[u8]) -> Option<(String, Option<Arc<RawValue>>, Meta)> {
        self.status.frames.fetch_add(1, Ordering::Relaxed);
        let change = match frame::decode(bytes) {
            Ok(c) => c,
            Err(e) => {
                self.status.invalid.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("invalid frame from upstream: {e}");
                return None;
            }
        };
        // A room no longer followed (its frames were in flight): ignored.
        let followed = self.rooms.get_mut(change.room)?;
        let Ok(value) = frame::read_value(&change) else {
            self.status.invalid.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if let Some(floor) = followed.floor {
            if (change.meta.t, change.meta.seq) <= floor {
                // Already held (from the process before the takeover).
                followed.last = followed.last.max(change.meta.seq);
                self.status.stale.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            // Same numbering as before the takeover (the store's); raised only if upstream's
            // seq is not above the one held (a tail the store never got, renumbered).
            let held = self.hub.held(change.room).map_or(0, |(seq, _)| seq);
            followed.offset = followed
                .offset
                .max(held as i64 + 1 - change.meta.seq as i64);
            followed.floor = None;
        }
        followed.last = followed.last.max(change.meta.seq);
        let meta = Meta {
            seq: (change.meta.seq as i64)
                .saturating_add(followed.offset)
                .max(0) as u64,
            ..change.meta
        };
        Some((change.room.to_string(), value, meta))
    }
}

async fn send_all(ws: &mut Ws, requests: &[Request]) -> Result<(), LinkError> {
    if requests.is_empty() {
        return Ok(());
    }
    for r in requests {
        let text = serde_json::to_string(r)?;
        ws.feed(Message::Text(text.into())).await?;
    }
    ws.flush().await?;
    Ok(())
}
