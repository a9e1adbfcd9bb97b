//! The hub: the sticky state of every room, who subscribes to it, and the delivery of every
//! change to every subscriber (DESIGN.md invariants 4 and 5).
//!
//! - A state room holds its present value and a sequence number that grows with every change; a
//!   subscriber gets the present value at once, then every change, in sequence order, never an
//!   older value after a newer one. A stream room (alerts, logs, beacons) delivers each event;
//!   the last [`STREAM_TAIL`] events are kept for subscribers that fall behind.
//! - A change is encoded once (the engine's JSON payload, wrapped once as raw JSON) and the same
//!   bytes go to every subscriber.
//! - A subscriber whose transport buffer is full is not waited for: the room is marked behind for
//!   it, and [`Hub::flush`] later sends what it missed coalesced (the present value of a state
//!   room; the events of a stream room still in its tail). Memory per slow subscriber is bounded
//!   by its rooms.
//! - Subscribing to a room whose entity does not exist yet is fine: the first value arrives when
//!   it appears. Subscribing twice is the same as once.
//!
//! The transport is behind [`Subscriber`] (socket.io sockets in production, fakes in tests).
//!
//! Replication (proxies, `src/proxy/`): [`Hub::replicate`] subscribes a downstream link and
//! always sends the room's present state (seq 0 and no value for a room never seen);
//! [`Hub::apply_remote`] applies a value received from upstream with its sequence number,
//! dropping duplicates and older values; an [`Interest`] hears when a room gets its first
//! subscriber or loses its last one, and [`Hub::evict`] forgets a room nobody follows.
//!
//! Bounds ([`bounds`]): a room that never had a value is freed when its last subscriber leaves;
//! the rooms held, the rooms one client follows and the bytes waiting per socket are bounded
//! ([`HubBounds`]), with a stated eviction order.
//!
//! A [`Rewrite`] (set once) changes the values of some state rooms as they enter the hub, from
//! the engine, the store or upstream (the building map's image URLs made absolute under this
//! server's public URL): what is delivered and read is rewritten, what is stored is not.

pub mod bounds;
pub mod drain;
pub mod retire;
pub mod socketio;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::value::RawValue;
use thiserror::Error;

use rmf_dash_dataflows::derived::{Output, RoomKind};
use rmf_dash_dataflows::prelude::Time;

use crate::engine::Batch;
use crate::metrics::{Kind, Metrics};

pub use bounds::HubBounds;
use bounds::Tier;
use retire::{Archive, Archived};

/// Events of a stream room kept for subscribers that fall behind.
pub const STREAM_TAIL: usize = 256;

/// A payload wrapped once as raw JSON, shared by every delivery.
pub type Raw = Arc<RawValue>;

/// What travels with every delivery, as the event's second argument (dashboards that read only
/// the first argument see exactly rmf-web's payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// Per-room sequence number: consecutive for a subscriber that keeps up; a jump means the
    /// subscriber was behind and got the latest value (state) or lost events (stream).
    pub seq: u64,
    /// Logical time (ms) of the change.
    pub t: Time,
    /// Wall-clock time (ms since the epoch) the hub delivered it (for latency measurements); on
    /// a proxy, the main process's (so latency counts from the main process's output).
    pub sent_ms: u64,
}

/// Outcome of handing a delivery to a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Ok,
    /// The transport's buffer is full: try again later.
    Full,
    /// The subscriber is gone.
    Closed,
}

/// A transport endpoint (one socket.io socket).
pub trait Subscriber: Send + Sync {
    fn id(&self) -> u64;
    /// Sends one room event; must not block.
    fn send(&self, room: &str, value: Option<&RawValue>, meta: Meta) -> Sent;
}

/// Told when a room gets its first subscriber or loses its last one (a proxy subscribes
/// upstream on demand). Called with the hub locked: must not block nor call the hub.
pub trait Interest: Send + Sync {
    fn changed(&self, room: &str);
}

/// Rewrites the value of a state room as it enters the hub; `None` keeps it as it is. Called
/// with the hub locked: must not block nor call the hub.
pub trait Rewrite: Send + Sync {
    fn rewrite(&self, room: &str, value: &str) -> Option<String>;
}

/// Counters of the hub, read by `/metrics`.
#[derive(Debug, Default)]
pub struct HubMetrics {
    pub deliveries: AtomicU64,
    /// Deliveries that found a full buffer (the room was then sent coalesced).
    pub coalesced: AtomicU64,
    /// Stream events a slow subscriber lost (they left the tail before it caught up).
    pub lost: AtomicU64,
    pub changes: AtomicU64,
    /// The logical time of the latest engine batch applied: every change a subscriber may
    /// have seen is of this time or earlier.
    pub applied_time: AtomicU64,
    /// Rooms evicted because the hub held `max_rooms`, by [`Tier`].
    pub evicted: [AtomicU64; 3],
    /// Subscriptions refused: the client followed `max_rooms_per_client` rooms.
    pub refused_client: AtomicU64,
    /// Subscriptions refused: the hub held `max_rooms` and no room without a value could go.
    pub refused_server: AtomicU64,
    /// Rooms retired: their entity ended and left the engine ([`retire`]).
    pub retired: AtomicU64,
    /// Retired rooms taken back from the archive or the store for a subscriber or a read.
    pub revived: AtomicU64,
}

impl HubMetrics {
    /// The hub's deliveries and the counters of its bounds (`/metrics`).
    pub fn write_metrics(&self, m: &mut Metrics) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        m.counter(
            "rmf_dash_deliveries_total",
            "Room events sent to subscribers.",
            load(&self.deliveries),
        );
        m.counter(
            "rmf_dash_coalesced_total",
            "Deliveries that found a full buffer and were coalesced.",
            load(&self.coalesced),
        );
        m.counter(
            "rmf_dash_stream_events_lost_total",
            "Stream events a slow subscriber lost.",
            load(&self.lost),
        );
        m.by(
            "rmf_dash_rooms_evicted_total",
            "Rooms nobody followed that were evicted because the hub held --max-rooms, by what they held (gone: no value; stream: events; live: a present value).",
            Kind::Counter,
            "reason",
            Tier::ALL.map(|tier| (tier.as_str(), load(&self.evicted[tier as usize]))),
        );
        m.by(
            "rmf_dash_subscribe_refused_total",
            "Subscriptions refused by a bound: the client's rooms (--max-rooms-per-client) or the server's (--max-rooms).",
            Kind::Counter,
            "reason",
            [
                ("client_rooms", load(&self.refused_client)),
                ("server_rooms", load(&self.refused_server)),
            ],
        );
    }
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SubscribeError {
    #[error("unknown room")]
    UnknownRoom,
    #[error("too many rooms for one client (at most {0}: --max-rooms-per-client)")]
    ClientRooms(usize),
    #[error("the server holds too many rooms (at most {0}: --max-rooms)")]
    ServerRooms(usize),
}

/// What makes a room (bounds differ, see [`bounds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A change (engine, store, upstream): may evict rooms with a value to make space, and is
    /// never refused.
    Change,
    /// A subscription: may evict only rooms without a value; refused otherwise.
    Subscription,
    /// A replication link (bounded by its own room count): not bounded here.
    Link,
}

struct Room {
    kind: RoomKind,
    seq: u64,
    t: Time,
    /// State rooms: the present value.
    value: Option<Raw>,
    /// The present record as the engine sent it (to apply its retraction).
    record: Option<String>,
    /// Stream rooms: the recent events.
    tail: VecDeque<(u64, Time, Raw)>,
    subscribers: Vec<Arc<dyn Subscriber>>,
    /// Its entity ended and left the engine: it leaves with its last subscriber
    /// ([`retire`]).
    retired: bool,
}

impl Room {
    fn new(kind: RoomKind) -> Self {
        Room {
            kind,
            seq: 0,
            t: 0,
            value: None,
            record: None,
            tail: VecDeque::new(),
            subscribers: Vec::new(),
            retired: false,
        }
    }
}

type Behind = HashMap<u64, (Arc<dyn Subscriber>, BTreeSet<(Arc<str>, u64)>)>;

/// Marks `room` behind for `sub`, whose buffer was full for the change numbered `seq` (it got
/// the one before at most); [`Hub::flush`] sends it what it missed.
fn mark_behind(behind: &mut Behind, sub: &Arc<dyn Subscriber>, room: Arc<str>, seq: u64) {
    behind
        .entry(sub.id())
        .or_insert_with(|| (sub.clone(), BTreeSet::new()))
        .1
        .insert((room, seq.saturating_sub(1)));
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<Arc<str>, Room>,
    /// Subscriber -> rooms it is behind on, with the last sequence it received there.
    behind: Behind,
    /// Subscriber -> its rooms (to unsubscribe everything on disconnect).
    of: HashMap<u64, BTreeSet<Arc<str>>>,
    /// The highest sequence number of an evicted room: a room numbers its first change after
    /// it, so that a room made again never goes back.
    seq_floor: u64,
    /// Rooms made or left by their last subscriber since the last eviction scan.
    since_scan: usize,
    /// The final values of the last rooms retired.
    archive: Archive,
}

/// The sequence number of a room's next change (a first change numbers after `floor`).
fn next_seq(seq: u64, floor: u64) -> u64 {
    if seq == 0 { floor + 1 } else { seq + 1 }
}

/// The hub. Cheap to share (`Arc<Hub>`).
pub struct Hub {
    inner: Mutex<Inner>,
    bounds: HubBounds,
    kind_of: rmf_dash_dataflows::derived::Rooms,
    interest: std::sync::OnceLock<Arc<dyn Interest>>,
    rewrite: std::sync::OnceLock<Arc<dyn Rewrite>>,
    recall: std::sync::OnceLock<Arc<dyn retire::Recall>>,
    pub metrics: HubMetrics,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Wraps a payload as raw JSON (done once per change). An invalid payload (never produced by the
/// engine) becomes `null` rather than breaking the stream.
pub fn raw(payload: &str) -> Raw {
    Arc::from(
        RawValue::from_string(payload.to_string()).unwrap_or_else(|_| {
            RawValue::from_string("null".into())
                .unwrap_or_else(|_| unreachable!("null is valid JSON"))
        }),
    )
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// A hub within the default bounds.
    pub fn new() -> Self {
        Hub::with_bounds(HubBounds::default())
    }

    pub fn with_bounds(bounds: HubBounds) -> Self {
        Hub {
            inner: Mutex::new(Inner {
                archive: Archive::new(bounds.archived_rooms),
                ..Inner::default()
            }),
            bounds,
            kind_of: rmf_dash_dataflows::derived::Rooms::new(),
            interest: std::sync::OnceLock::new(),
            rewrite: std::sync::OnceLock::new(),
            recall: std::sync::OnceLock::new(),
            metrics: HubMetrics::default(),
        }
    }

    pub fn bounds(&self) -> HubBounds {
        self.bounds
    }

    /// Sets who hears about first and last subscribers (once; later calls are ignored).
    pub fn set_interest(&self, interest: Arc<dyn Interest>) {
        let _ = self.interest.set(interest);
    }

    /// Sets where retired rooms are recalled from (once; later calls are ignored).
    pub fn set_recall(&self, recall: Arc<dyn retire::Recall>) {
        let _ = self.recall.set(recall);
    }

    /// The present value of a state room; for a retiring room neither held nor archived, its
    /// final value recalled from the store (then given to its subscribers and archived, see
    /// [`Hub::revive`]).
    pub async fn recall(&self, room: &str) -> Option<Raw> {
        if let Some((_, Some(v))) = self.get(room) {
            return Some(v);
        }
        let recall = self.recall.get().filter(|_| retire::retiring(room))?;
        let (t, value) = recall.recall(room).await?;
        let value = self.delivered_raw(room, value);
        self.revive(room, t, value.clone());
        Some(value)
    }

    /// Sets how values are rewritten as they enter (once; later calls are ignored).
    pub fn set_rewrite(&self, rewrite: Arc<dyn Rewrite>) {
        let _ = self.rewrite.set(rewrite);
    }

    /// A state room's value as delivered: `value` rewritten, or as it is.
    fn delivered(&self, room: &str, value: &str) -> Raw {
        match self.rewrite.get().and_then(|r| r.rewrite(room, value)) {
            Some(v) => raw(&v),
            None => raw(value),
        }
    }

    /// [`Hub::delivered`] of a value already wrapped (kept as it is unless rewritten).
    fn delivered_raw(&self, room: &str, value: Raw) -> Raw {
        match self
            .rewrite
            .get()
            .and_then(|r| r.rewrite(room, value.get()))
        {
            Some(v) => raw(&v),
            None => value,
        }
    }

    fn interest_changed(&self, room: &str) {
        if let Some(i) = self.interest.get() {
            i.changed(room);
        }
    }

    /// The kind of a room, `None` when it is not a room rmf-dash serves.
    pub fn kind(&self, room: &str) -> Option<RoomKind> {
        self.kind_of.kind(room)
    }

    /// Subscribers that fell behind get their coalesced rooms a few times a second (a task on
    /// the current tokio runtime).
    pub fn spawn_flush(self: &Arc<Self>) {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_millis(20));
            loop {
                every.tick().await;
                hub.flush();
            }
        });
    }

    /// Applies one complete-time batch of the engine and delivers every change.
    pub fn apply(&self, batch: &Batch) {
        self.apply_with_seqs(batch);
    }

    /// [`Hub::apply`], returning the new sequence number of every room the batch touched (the
    /// store keeps them, so that sequence numbers keep growing across restarts).
    pub fn apply_with_seqs(&self, batch: &Batch) -> Vec<(Arc<str>, u64)> {
        let mut seqs: Vec<(Arc<str>, u64)> = Vec::new();
        let sent_ms = now_ms();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        // State rooms: the value after the whole batch (retractions come first).
        let mut touched: Vec<Arc<str>> = Vec::new();
        let mut retiring: Vec<Arc<str>> = Vec::new();
        let mut outbox = Vec::new();
        for (Output { room, value }, diff) in &batch.changes {
            let Some(kind) = self.kind_of.kind(room) else {
                tracing::debug!(room, "output for a room the hub does not serve");
                continue;
            };
            self.admit_room(inner, room, Origin::Change);
            let floor = inner.seq_floor;
            let (key, r) = room_entry(&mut inner.rooms, room.as_str(), kind);
            match (kind, *diff > 0) {
                (RoomKind::State, false) if retire::retiring(room) => {
                    if r.record.as_deref() == Some(value.as_str()) {
                        retiring.push(key);
                    }
                }
                (RoomKind::State, false) => {
                    if r.record.as_deref() == Some(value.as_str()) {
                        r.record = None;
                        r.value = None;
                        // Updated now: a room evicted later in the batch is an older one.
                        r.t = batch.time;
                        if !touched.contains(&key) {
                            touched.push(key);
                        }
                    }
                }
                (RoomKind::State, true) => {
                    r.retired = false;
                    r.t = batch.time;
                    r.record = Some(value.as_str().to_string());
                    r.value = Some(self.delivered(room, value.as_str()));
                    if !touched.contains(&key) {
                        touched.push(key);
                    }
                }
                (RoomKind::Stream, true) => {
                    let payload = raw(value.as_str());
                    for _ in 0..*diff {
                        r.seq = next_seq(r.seq, floor);
                        r.t = batch.time;
                        r.tail.push_back((r.seq, batch.time, payload.clone()));
                        if r.tail.len() > STREAM_TAIL {
                            r.tail.pop_front();
                        }
                        let meta = Meta {
                            seq: r.seq,
                            t: batch.time,
                            sent_ms,
                        };
                        queue(&mut outbox, &key, &r.subscribers, Some(&payload), meta);
                    }
                    match seqs.iter_mut().rev().find(|(k, _)| *k == key) {
                        Some((_, seq)) => *seq = r.seq,
                        None => seqs.push((key, r.seq)),
                    }
                }
                (RoomKind::Stream, false) => {}
            }
        }
        // A retiring room retracted and not replaced: its entity left the engine.
        for key in retiring {
            if !touched.contains(&key) {
                self.retire(inner, &key);
            }
        }
        let floor = inner.seq_floor;
        for key in touched {
            let Some(r) = inner.rooms.get_mut(&key) else {
                continue;
            };
            let seq = publish_state(&mut outbox, &key, r, batch.time, floor, sent_ms);
            seqs.push((key, seq));
        }
        self.metrics
            .applied_time
            .fetch_max(batch.time, Ordering::Release);
        self.send(inner, outbox);
        self.metrics
            .changes
            .fetch_add(batch.changes.len() as u64, Ordering::Relaxed);
        seqs
    }

    /// Seeds rooms restored from the store: their value (state rooms; `None` for a room whose
    /// value went away) and sequence number, so that a restart serves the stored values at once
    /// and numbers later changes after them. Rooms the hub does not serve are skipped; returns
    /// how many were seeded.
    pub fn seed(&self, rooms: impl IntoIterator<Item = (String, u64, Time, Option<Raw>)>) -> usize {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let mut n = 0;
        for (room, seq, t, value) in rooms {
            let Some(kind) = self.kind_of.kind(&room) else {
                continue;
            };
            if value.is_none() && retire::retiring(&room) {
                // Retired before the restart: it stays out, its numbers stay behind.
                inner.seq_floor = inner.seq_floor.max(seq);
                continue;
            }
            self.admit_room(inner, &room, Origin::Change);
            let (_, r) = room_entry(&mut inner.rooms, &room, kind);
            r.seq = seq;
            r.t = t;
            if kind == RoomKind::State {
                r.record = value.as_ref().map(|v| v.get().to_string());
                r.value = value.map(|v| self.delivered_raw(&room, v));
            }
            n += 1;
        }
        n
    }

    /// Subscribes `sub` to `room` and sends the present value of a state room at once. Refused
    /// (nothing changes) for a room the hub does not serve, and beyond the bounds (the client's
    /// rooms, the hub's rooms: see [`bounds`]).
    pub fn subscribe(&self, sub: Arc<dyn Subscriber>, room: &str) -> Result<(), SubscribeError> {
        let kind = self.kind_of.kind(room).ok_or(SubscribeError::UnknownRoom)?;
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        if let Some(r) = inner.rooms.get(room)
            && r.subscribers.iter().any(|s| s.id() == sub.id())
        {
            return Ok(()); // Already subscribed: nothing is delivered twice.
        }
        self.within_client_bound(inner, sub.id())?;
        if !self.admit_room(inner, room, Origin::Subscription) {
            self.metrics.refused_server.fetch_add(1, Ordering::Relaxed);
            return Err(SubscribeError::ServerRooms(self.bounds.max_rooms));
        }
        if !inner.rooms.contains_key(room)
            && let Some(archived) = inner.archive.take(room)
        {
            self.metrics.revived.fetch_add(1, Ordering::Relaxed);
            let (_, r) = room_entry(&mut inner.rooms, room, kind);
            restore_archived(r, archived);
        }
        let (key, r) = room_entry(&mut inner.rooms, room, kind);
        r.subscribers.push(sub.clone());
        if r.subscribers.len() == 1 {
            self.interest_changed(&key);
        }
        inner.of.entry(sub.id()).or_default().insert(key.clone());
        // The present value; `null` for a room that had a value and has none now (a condition
        // that ended); nothing for a room whose entity never appeared.
        if kind == RoomKind::State && r.seq > 0 {
            let meta = Meta {
                seq: r.seq,
                t: r.t,
                sent_ms: now_ms(),
            };
            let mut outbox = Vec::with_capacity(1);
            queue(&mut outbox, &key, [&sub], r.value.as_ref(), meta);
            self.send(inner, outbox);
        }
        Ok(())
    }

    /// Refuses (and counts) a new subscription of `sub` when it follows as many rooms as a
    /// client may.
    fn within_client_bound(&self, inner: &Inner, sub: u64) -> Result<(), SubscribeError> {
        let max = self.bounds.max_rooms_per_client;
        if max > 0 && inner.of.get(&sub).map_or(0, BTreeSet::len) >= max {
            self.metrics.refused_client.fetch_add(1, Ordering::Relaxed);
            return Err(SubscribeError::ClientRooms(max));
        }
        Ok(())
    }

    /// Whether a room named `room` may be made (always when it exists): when the hub holds
    /// `max_rooms`, rooms nobody follows are evicted first (see [`bounds`]). Rooms made from a
    /// change are never refused (at most one batch over the bound while no scan is due).
    fn admit_room(&self, inner: &mut Inner, room: &str, origin: Origin) -> bool {
        if inner.rooms.contains_key(room) {
            return true;
        }
        let max = self.bounds.max_rooms;
        let admitted = max == 0
            || origin == Origin::Link
            || inner.rooms.len() < max
            || self.evict_for(inner, origin)
            || origin == Origin::Change;
        if admitted {
            inner.since_scan += 1;
        }
        admitted
    }

    /// Evicts rooms to bring the hub one batch below `max_rooms` (when a scan is due: once per
    /// batch of rooms made or left since the last one); whether there is space now.
    fn evict_for(&self, inner: &mut Inner, origin: Origin) -> bool {
        let (max, batch) = (self.bounds.max_rooms, self.bounds.batch());
        if inner.since_scan < batch {
            return false;
        }
        inner.since_scan = 0;
        let up_to = match origin {
            Origin::Change => Tier::Live,
            Origin::Subscription | Origin::Link => Tier::Gone,
        };
        let want = inner.rooms.len() + batch - max;
        let mut live = Vec::new();
        for (tier, key) in bounds::victims(&inner.rooms, want, up_to) {
            if let Some(r) = inner.rooms.remove(&key) {
                inner.seq_floor = inner.seq_floor.max(r.seq);
                self.metrics.evicted[tier as usize].fetch_add(1, Ordering::Relaxed);
                if tier == Tier::Live {
                    live.push(key);
                }
            }
        }
        if !live.is_empty() {
            let some: Vec<&str> = live.iter().take(5).map(|k| &**k).collect();
            tracing::warn!(
                max_rooms = max,
                evicted = live.len(),
                rooms = ?some,
                "the hub holds --max-rooms rooms: evicted the present value of rooms nobody follows (oldest-updated first; each comes back with its next change)"
            );
        }
        inner.rooms.len() < max
    }

    /// Takes `sub` out of `room`'s subscribers; a room left by its last subscriber is told to
    /// the interest and, when it never had a value, freed.
    fn leave(&self, inner: &mut Inner, room: &str, sub: u64) {
        let Some(r) = inner.rooms.get_mut(room) else {
            return;
        };
        let before = r.subscribers.len();
        r.subscribers.retain(|s| s.id() != sub);
        if before > 0 && r.subscribers.is_empty() {
            inner.since_scan += 1;
            if r.seq == 0 {
                inner.rooms.remove(room);
            } else if r.retired {
                self.free_retired(inner, room);
            }
            self.interest_changed(room);
        }
    }

    pub fn unsubscribe(&self, sub: u64, room: &str) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        self.leave(inner, room, sub);
        if let Some(rooms) = inner.of.get_mut(&sub) {
            rooms.remove(room);
        }
        if let Some((_, behind)) = inner.behind.get_mut(&sub) {
            behind.retain(|(r, _)| &**r != room);
        }
    }

    /// Forgets a subscriber everywhere (disconnect).
    pub fn remove(&self, sub: u64) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let rooms = inner.of.remove(&sub).unwrap_or_default();
        for room in rooms {
            self.leave(inner, &room, sub);
        }
        inner.behind.remove(&sub);
        let shrunk = bounds::shrink(&mut inner.rooms) | bounds::shrink(&mut inner.of);
        drop(guard);
        if shrunk {
            bounds::give_back();
        }
    }

    /// Subscribes a replication link (a proxy downstream) to `room` and sends, in order and
    /// before any later change, the room's present state:
    /// - a state room: its value and seq, always (seq 0 and no value for a room never seen, so
    ///   the link learns that it holds nothing);
    /// - a stream room: a marker without value whose seq is the last event not sent, then the
    ///   events after `since` still in the tail (`None`: none, like a socket subscriber).
    ///
    /// Returns `false` for a room the hub does not serve.
    pub fn replicate(&self, sub: Arc<dyn Subscriber>, room: &str, since: Option<u64>) -> bool {
        let Some(kind) = self.kind_of.kind(room) else {
            return false;
        };
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        self.admit_room(inner, room, Origin::Link);
        let (key, r) = room_entry(&mut inner.rooms, room, kind);
        if !r.subscribers.iter().any(|s| s.id() == sub.id()) {
            r.subscribers.push(sub.clone());
            if r.subscribers.len() == 1 {
                self.interest_changed(&key);
            }
            inner.of.entry(sub.id()).or_default().insert(key.clone());
        }
        // A room it is behind on gets its present state from `flush`.
        if let Some((_, rooms)) = inner.behind.get_mut(&sub.id()) {
            rooms.retain(|(r, _)| r != &key);
        }
        let sent_ms = now_ms();
        let mut send = |value: Option<&RawValue>, seq: u64, t: Time| -> bool {
            match sub.send(&key, value, Meta { seq, t, sent_ms }) {
                Sent::Ok => {
                    self.metrics.deliveries.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Sent::Full => {
                    self.metrics.coalesced.fetch_add(1, Ordering::Relaxed);
                    mark_behind(&mut inner.behind, &sub, key.clone(), seq);
                    false
                }
                Sent::Closed => false,
            }
        };
        match kind {
            RoomKind::State => {
                send(r.value.as_deref(), r.seq, r.t);
            }
            RoomKind::Stream => {
                let oldest = r.tail.front().map_or(r.seq, |e| e.0.saturating_sub(1));
                let base = since.map_or(r.seq, |s| s.max(oldest)).min(r.seq);
                if send(None, base, r.t) {
                    for (seq, t, payload) in r.tail.iter().filter(|e| e.0 > base) {
                        if !send(Some(payload), *seq, *t) {
                            break;
                        }
                    }
                }
            }
        }
        true
    }

    /// Applies a value replicated from an upstream hub, with the upstream's sequence number
    /// (proxies). A seq not above the room's present one is a duplicate or an older value and is
    /// dropped (returns `false`). A state room takes `value` as its present value (`None`: it
    /// has none); a stream room delivers the event, or, for `None` (the marker of
    /// [`Hub::replicate`]), only moves its seq on. `meta.sent_ms` is kept as the upstream's, so
    /// latency is measured from the main process's output.
    pub fn apply_remote(&self, room: &str, value: Option<Raw>, meta: Meta) -> bool {
        self.apply_remote_many([(room, value, meta)]) == 1
    }

    /// [`Hub::apply_remote`] for every change of a batch (what the link read at once), in
    /// order; the deliveries leave grouped by subscriber. Returns how many were applied.
    pub fn apply_remote_many<R: AsRef<str>>(
        &self,
        changes: impl IntoIterator<Item = (R, Option<Raw>, Meta)>,
    ) -> usize {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let mut outbox = Vec::new();
        let mut applied = 0;
        for (room, value, meta) in changes {
            let room = room.as_ref();
            let Some(kind) = self.kind_of.kind(room) else {
                continue;
            };
            self.admit_room(inner, room, Origin::Change);
            let (key, r) = room_entry(&mut inner.rooms, room, kind);
            if meta.seq <= r.seq {
                continue;
            }
            applied += 1;
            r.seq = meta.seq;
            r.t = meta.t;
            match (kind, value) {
                (RoomKind::State, value) => {
                    r.record = None;
                    r.value = value.map(|v| self.delivered_raw(room, v));
                    queue(&mut outbox, &key, &r.subscribers, r.value.as_ref(), meta);
                }
                (RoomKind::Stream, Some(payload)) => {
                    r.tail.push_back((meta.seq, meta.t, payload.clone()));
                    if r.tail.len() > STREAM_TAIL {
                        r.tail.pop_front();
                    }
                    queue(&mut outbox, &key, &r.subscribers, Some(&payload), meta);
                }
                (RoomKind::Stream, None) => {}
            }
        }
        self.metrics
            .changes
            .fetch_add(applied as u64, Ordering::Relaxed);
        self.send(inner, outbox);
        applied
    }

    /// Whether anyone subscribes to `room`.
    pub fn has_subscribers(&self, room: &str) -> bool {
        let inner = self.inner.lock();
        inner
            .rooms
            .get(room)
            .is_some_and(|r| !r.subscribers.is_empty())
    }

    /// Forgets a room nobody subscribes to (a proxy that stopped following it upstream must not
    /// serve its value later as present). Returns whether it was forgotten.
    pub fn evict(&self, room: &str) -> bool {
        let mut inner = self.inner.lock();
        if inner
            .rooms
            .get(room)
            .is_some_and(|r| r.subscribers.is_empty())
        {
            inner.rooms.remove(room);
            return true;
        }
        false
    }

    /// Retries the subscribers that were behind: each gets, per room, the present value (state)
    /// or the events it missed that are still in the tail (stream).
    pub fn flush(&self) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let behind = std::mem::take(&mut inner.behind);
        let sent_ms = now_ms();
        for (id, (sub, rooms)) in behind {
            let mut still = BTreeSet::new();
            for (room, last) in rooms {
                let Some(r) = inner.rooms.get(&room) else {
                    continue;
                };
                let result = match r.kind {
                    RoomKind::State => {
                        let meta = Meta {
                            seq: r.seq,
                            t: r.t,
                            sent_ms,
                        };
                        sub.send(&room, r.value.as_deref(), meta)
                    }
                    RoomKind::Stream => {
                        let mut result = Sent::Ok;
                        let first = r.tail.front().map_or(r.seq + 1, |e| e.0);
                        if first > last + 1 {
                            self.metrics
                                .lost
                                .fetch_add(first - last - 1, Ordering::Relaxed);
                        }
                        let mut delivered = last;
                        for (seq, t, payload) in r.tail.iter().filter(|e| e.0 > last) {
                            result = sub.send(
                                &room,
                                Some(payload),
                                Meta {
                                    seq: *seq,
                                    t: *t,
                                    sent_ms,
                                },
                            );
                            if result != Sent::Ok {
                                break;
                            }
                            delivered = *seq;
                        }
                        if result == Sent::Full {
                            still.insert((room.clone(), delivered));
                            continue;
                        }
                        result
                    }
                };
                match result {
                    Sent::Ok => {
                        self.metrics.deliveries.fetch_add(1, Ordering::Relaxed);
                    }
                    Sent::Full => {
                        still.insert((room, last));
                    }
                    Sent::Closed => {}
                }
            }
            if !still.is_empty() {
                inner.behind.insert(id, (sub, still));
            }
        }
    }

    /// The present value of a state room and its sequence number (REST reads and proxies).
    /// A retired room is answered from the archive while it is there.
    pub fn get(&self, room: &str) -> Option<(u64, Option<Raw>)> {
        let inner = self.inner.lock();
        match inner.rooms.get(room) {
            Some(r) => Some((r.seq, r.value.clone())),
            None => inner
                .archive
                .get(room)
                .map(|a| (a.seq, Some(a.value.clone()))),
        }
    }

    /// The sequence number and logical time of what a room holds (proxies).
    pub fn held(&self, room: &str) -> Option<(u64, Time)> {
        let inner = self.inner.lock();
        inner.rooms.get(room).map(|r| (r.seq, r.t))
    }

    /// Present values of the state rooms whose name starts with `prefix` and ends with `suffix`.
    pub fn values(&self, prefix: &str, suffix: &str) -> Vec<(String, Raw)> {
        let inner = self.inner.lock();
        let mut out: Vec<(String, Raw)> = inner
            .rooms
            .iter()
            .filter(|(k, r)| {
                r.kind == RoomKind::State && k.starts_with(prefix) && k.ends_with(suffix)
            })
            .filter_map(|(k, r)| r.value.clone().map(|v| (k.to_string(), v)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The recent events of a stream room (oldest first).
    pub fn tail(&self, room: &str) -> Vec<Raw> {
        let inner = self.inner.lock();
        inner
            .rooms
            .get(room)
            .map(|r| r.tail.iter().map(|e| e.2.clone()).collect())
            .unwrap_or_default()
    }

    /// Retires `key` (its entity left the engine; [`retire`]): it goes now when nobody follows
    /// it, else with its last subscriber; its companion rooms go when nobody follows them.
    fn retire(&self, inner: &mut Inner, key: &Arc<str>) {
        let Some(r) = inner.rooms.get_mut(key) else {
            return;
        };
        r.retired = true;
        self.metrics.retired.fetch_add(1, Ordering::Relaxed);
        if r.subscribers.is_empty() {
            self.free_retired(inner, key);
        }
        for companion in retire::companions(key).unwrap_or_default() {
            if inner
                .rooms
                .get(companion.as_str())
                .is_some_and(|c| c.subscribers.is_empty())
                && let Some(c) = inner.rooms.remove(companion.as_str())
            {
                inner.seq_floor = inner.seq_floor.max(c.seq);
            }
        }
    }

    /// Frees a retired room nobody follows; its final value goes to the archive.
    fn free_retired(&self, inner: &mut Inner, room: &str) {
        let Some((key, r)) = inner.rooms.remove_entry(room) else {
            return;
        };
        inner.seq_floor = inner.seq_floor.max(r.seq);
        if let Some(value) = r.value {
            let archived = Archived {
                seq: r.seq,
                t: r.t,
                value,
            };
            inner.archive.put(key, archived);
        }
    }

    /// Gives a retired room its final value recalled from the store (a subscriber or a read
    /// asked for it and it was neither held nor archived): subscribers that are there get it,
    /// numbered after every number the hub gave; nobody following, it goes to the archive.
    /// Nothing changes for a room that has a value meanwhile.
    pub fn revive(&self, room: &str, t: Time, value: Raw) {
        if !retire::retiring(room) {
            return;
        }
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        self.metrics.revived.fetch_add(1, Ordering::Relaxed);
        let floor = inner.seq_floor;
        let Some(r) = inner.rooms.get_mut(room) else {
            if inner.archive.get(room).is_none() {
                let seq = next_seq(0, floor);
                inner.seq_floor = seq;
                inner.archive.put(room.into(), Archived { seq, t, value });
            }
            return;
        };
        if r.value.is_some() {
            return;
        }
        r.retired = true;
        r.value = Some(value);
        let mut outbox = Vec::new();
        publish_state(&mut outbox, &room.into(), r, t, floor, now_ms());
        self.send(inner, outbox);
    }

    /// Final values of retired rooms held in the archive.
    pub fn archived(&self) -> usize {
        self.inner.lock().archive.len()
    }

    /// (rooms, subscriptions, subscribers behind).
    pub fn sizes(&self) -> (usize, usize, usize) {
        let inner = self.inner.lock();
        let subs = inner.rooms.values().map(|r| r.subscribers.len()).sum();
        (inner.rooms.len(), subs, inner.behind.len())
    }
}

/// Numbers a state room's value (new at `t`) and queues it for the room's subscribers; the
/// room's new sequence number.
fn publish_state(
    outbox: &mut Vec<Pending>,
    key: &Arc<str>,
    r: &mut Room,
    t: Time,
    floor: u64,
    sent_ms: u64,
) -> u64 {
    r.seq = next_seq(r.seq, floor);
    r.t = t;
    let meta = Meta {
        seq: r.seq,
        t,
        sent_ms,
    };
    queue(outbox, key, &r.subscribers, r.value.as_ref(), meta);
    r.seq
}

/// A room made again from its archived final value.
fn restore_archived(r: &mut Room, a: Archived) {
    r.seq = a.seq;
    r.t = a.t;
    r.record = None;
    r.value = Some(a.value);
    r.retired = true;
}

/// The room named `room` (created, of `kind`, when new) and its name, shared with the map.
fn room_entry<'a>(
    rooms: &'a mut HashMap<Arc<str>, Room>,
    room: &str,
    kind: RoomKind,
) -> (Arc<str>, &'a mut Room) {
    let key: Arc<str> = match rooms.get_key_value(room) {
        Some((k, _)) => k.clone(),
        None => Arc::from(room),
    };
    let r = rooms.entry(key.clone()).or_insert_with(|| Room::new(kind));
    (key, r)
}

/// A delivery waiting for the end of its batch ([`Hub::send`]).
struct Pending {
    id: u64,
    sub: Arc<dyn Subscriber>,
    room: Arc<str>,
    value: Option<Raw>,
    meta: Meta,
}

/// Queues a change of room `key` for each of `subscribers`.
fn queue<'a>(
    outbox: &mut Vec<Pending>,
    key: &Arc<str>,
    subscribers: impl IntoIterator<Item = &'a Arc<dyn Subscriber>>,
    value: Option<&Raw>,
    meta: Meta,
) {
    outbox.extend(subscribers.into_iter().map(|sub| Pending {
        id: sub.id(),
        sub: sub.clone(),
        room: key.clone(),
        value: value.cloned(),
        meta,
    }));
}

impl Hub {
    /// Sends a batch's deliveries grouped by subscriber, in order within each: a socket's
    /// packets of one batch are queued back to back and its writer sends them in one write,
    /// instead of waking for each (one `send` per delivery otherwise: BENCHMARKS.md, "Proxy
    /// load test"). A full buffer marks the room behind for that subscriber (coalesced later by
    /// [`Hub::flush`]); a subscriber already behind on a room is skipped there; closed
    /// subscribers leave their rooms. Runs with the hub locked.
    fn send(&self, inner: &mut Inner, mut outbox: Vec<Pending>) {
        // Stable: a room's changes keep their order for each subscriber.
        outbox.sort_by_key(|p| p.id);
        let (mut sent, mut coalesced) = (0, 0);
        let mut closed: Vec<(Arc<str>, u64)> = Vec::new();
        for p in outbox {
            // Already behind on this room: it gets the latest value when it catches up.
            if let Some((_, rooms)) = inner.behind.get(&p.id)
                && rooms.iter().any(|(r, _)| *r == p.room)
            {
                continue;
            }
            match p.sub.send(&p.room, p.value.as_deref(), p.meta) {
                Sent::Ok => sent += 1,
                Sent::Full => {
                    coalesced += 1;
                    mark_behind(&mut inner.behind, &p.sub, p.room, p.meta.seq);
                }
                Sent::Closed => closed.push((p.room, p.id)),
            }
        }
        self.metrics.deliveries.fetch_add(sent, Ordering::Relaxed);
        self.metrics
            .coalesced
            .fetch_add(coalesced, Ordering::Relaxed);
        for (room, id) in closed {
            self.leave(inner, &room, id);
        }
    }
}

#[cfg(test)]
mod tests;
