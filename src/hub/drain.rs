//! How many bytes of each socket.io socket's deliveries are still in this process, so that a
//! socket's queue is bounded in bytes (`--socket-queue-bytes`), not only in packets.
//!
//! engineioxide's queue per socket counts packets and tells nobody when a packet leaves it, so
//! what left is read where bytes leave the process: for a websocket, the bytes its connection
//! wrote to the kernel ([`Written`], counted by the HTTP listener for every connection, from the
//! moment the connection became the socket's transport); for HTTP long-polling, the bytes of
//! the socket's polling responses (counted by the socket.io middleware as they are sent,
//! [`count_polled`]). A delivery reserves its bytes ([`Queue::reserve`]); what waits is what was
//! reserved minus what left since. So it covers engineioxide's queue and the websocket's write
//! buffer alike.
//!
//! - What left also counts bytes that are not deliveries (framing, pings, acknowledgements):
//!   whenever what left reaches what was reserved, the queue is empty and the count starts over
//!   from there, so these bytes never pile up as credit. The size reserved for a delivery (its
//!   room's name and its value) is below what it takes on the wire, so an empty queue is always
//!   seen empty.
//! - A delivery that would pass the bound is refused (the hub then coalesces, as for a full
//!   queue), unless nothing waits: a value larger than the bound still goes, alone. The bytes
//!   held per socket are thus at most the bound plus one delivery.
//! - A websocket whose connection's count is unknown (served without [`crate::listener`], as in
//!   some in-process tests) is bounded in packets only.
//!
//! Sockets are found by their engine.io id (`sid`, unique in the process) in a registry that
//! holds only weak references: an entry goes with its socket or its connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::task::{Context, Poll};

use axum::body::Body;
use hyper::body::{Frame, SizeHint};
use parking_lot::Mutex;

use crate::listener::Written;

/// A websocket's connection and its count when it became the socket's transport.
type Connection = (Arc<AtomicU64>, u64);

/// Live sockets' polling counts and the websocket connections they upgraded to, by sid.
#[derive(Default)]
struct Registry {
    polled: Mutex<Sids<Weak<AtomicU64>>>,
    upgrades: Mutex<Sids<(Weak<AtomicU64>, u64)>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// Entries by sid; those whose socket or connection has gone are forgotten whenever the map
/// doubled since it was last cleaned (so cleaning costs a constant per entry).
struct Sids<V> {
    map: HashMap<Box<str>, V>,
    clean_at: usize,
}

impl<V> Default for Sids<V> {
    fn default() -> Self {
        Sids {
            map: HashMap::new(),
            clean_at: 1024,
        }
    }
}

impl<V> Sids<V> {
    fn insert(&mut self, sid: &str, value: V, alive: impl Fn(&V) -> bool) {
        if self.map.len() >= self.clean_at {
            self.map.retain(|_, v| alive(v));
            self.clean_at = (self.map.len() * 2).max(1024);
        }
        self.map.insert(sid.into(), value);
    }
}

/// The socket `sid` now writes on a websocket whose connection wrote `written` bytes so far
/// (an upgrade from polling, seen by the socket.io middleware as it answers it).
pub fn upgraded(sid: &str, written: &Written) {
    let now = written.0.load(Ordering::Acquire);
    REGISTRY
        .upgrades
        .lock()
        .insert(sid, (Arc::downgrade(&written.0), now), |(w, _)| {
            w.strong_count() > 0
        });
}

/// The count that the polling responses of socket `sid` add to; `None` for no live socket.
pub fn polled(sid: &str) -> Option<Arc<AtomicU64>> {
    REGISTRY.polled.lock().map.get(sid).and_then(Weak::upgrade)
}

/// One socket's outgoing bytes.
pub struct Queue {
    sid: Box<str>,
    limit: u64,
    polled: Arc<AtomicU64>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The websocket connection, once known.
    ws: Option<Connection>,
    /// Bytes reserved, on the scale of what left (see [`Queue::reserve`]).
    reserved: u64,
}

impl Queue {
    /// The queue of socket `sid`, bounded at `limit` bytes (0: unbounded); `written`: its
    /// connection's count when it connected over a websocket from the start.
    pub fn new(sid: &str, limit: u64, written: Option<&Written>) -> Arc<Queue> {
        let polled = Arc::new(AtomicU64::new(0));
        let ws = written.map(|w| (w.0.clone(), w.0.load(Ordering::Acquire)));
        REGISTRY
            .polled
            .lock()
            .insert(sid, Arc::downgrade(&polled), |w| w.strong_count() > 0);
        Arc::new(Queue {
            sid: sid.into(),
            limit,
            polled,
            state: Mutex::new(State { ws, reserved: 0 }),
        })
    }

    /// Bytes that left so far; `None` while the websocket's connection is unknown.
    fn left(&self, state: &mut State, websocket: bool) -> Option<u64> {
        // An upgrade may be seen before engineioxide reports the new transport: its bytes
        // count from the upgrade on.
        if state.ws.is_none() {
            state.ws = REGISTRY
                .upgrades
                .lock()
                .map
                .remove(&self.sid)
                .and_then(|(w, base)| Some((w.upgrade()?, base)));
        }
        let polled = self.polled.load(Ordering::Acquire);
        match &state.ws {
            Some((written, base)) => {
                Some(polled + written.load(Ordering::Acquire).saturating_sub(*base))
            }
            None if websocket => None,
            None => Some(polled),
        }
    }

    /// Whether a delivery of `size` bytes may be queued on a transport that is (or is not) a
    /// websocket: `None` when it would pass the bound while something waits; otherwise the
    /// bytes reserved for it (0 when the queue is not counted), to [`Queue::release`] if the
    /// transport does not take it.
    pub fn reserve(&self, size: u64, websocket: bool) -> Option<u64> {
        if self.limit == 0 {
            return Some(0);
        }
        let mut state = self.state.lock();
        let Some(left) = self.left(&mut state, websocket) else {
            return Some(0);
        };
        // Everything reserved has left: start over from here (no credit for other bytes).
        state.reserved = state.reserved.max(left);
        let waiting = state.reserved - left;
        if waiting > 0 && waiting + size > self.limit {
            return None;
        }
        state.reserved += size;
        Some(size)
    }

    /// Gives back what [`Queue::reserve`] reserved for a delivery the transport did not take.
    pub fn release(&self, size: u64) {
        let mut state = self.state.lock();
        state.reserved = state.reserved.saturating_sub(size);
    }

    /// Bytes waiting now (`None`: unknown).
    pub fn waiting(&self, websocket: bool) -> Option<u64> {
        let mut state = self.state.lock();
        let left = self.left(&mut state, websocket)?;
        Some(state.reserved.saturating_sub(left))
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        REGISTRY.polled.lock().map.remove(&self.sid);
        REGISTRY.upgrades.lock().map.remove(&self.sid);
    }
}

/// A polling response whose bytes count as sent by its socket as they go out.
pub fn count_polled(body: Body, count: Arc<AtomicU64>) -> Body {
    Body::new(Counted { body, count })
}

struct Counted {
    body: Body,
    count: Arc<AtomicU64>,
}

impl hyper::body::Body for Counted {
    type Data = <Body as hyper::body::Body>::Data;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame
            && let Some(data) = f.data_ref()
        {
            this.count.fetch_add(data.len() as u64, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn written(n: u64) -> Written {
        Written(Arc::new(AtomicU64::new(n)))
    }

    #[test]
    fn a_websocket_queue_waits_for_what_its_connection_wrote() {
        let conn = written(500); // The handshake, before the socket was connected.
        let q = Queue::new("ws-first", 100, Some(&conn));
        assert_eq!(q.reserve(60, true), Some(60));
        assert_eq!(q.reserve(60, true), None, "60 wait: 120 would pass 100");
        assert_eq!(q.waiting(true), Some(60));
        conn.0.fetch_add(30, Ordering::Release);
        assert_eq!(q.waiting(true), Some(30));
        assert_eq!(q.reserve(70, true), Some(70), "30 + 70 fit");
        assert_eq!(q.reserve(1, true), None);
        // Everything left, plus framing and a ping: empty, and no credit from the extra bytes.
        conn.0.fetch_add(100 + 40, Ordering::Release);
        assert_eq!(q.waiting(true), Some(0));
        assert_eq!(q.reserve(100, true), Some(100));
        assert_eq!(q.reserve(1, true), None);
    }

    #[test]
    fn a_delivery_larger_than_the_bound_goes_alone() {
        let conn = written(0);
        let q = Queue::new("big", 100, Some(&conn));
        assert_eq!(q.reserve(1000, true), Some(1000), "nothing waits: it goes");
        assert_eq!(q.reserve(1, true), None);
        conn.0.fetch_add(1000, Ordering::Release);
        assert_eq!(q.reserve(1, true), Some(1));
        q.release(1);
        assert_eq!(q.waiting(true), Some(0));
    }

    #[test]
    fn polling_bytes_then_an_upgrade_count_as_left() {
        let q = Queue::new("upgrading", 100, None);
        assert_eq!(q.reserve(80, false), Some(80));
        assert_eq!(q.reserve(30, false), None);
        let polled = polled("upgrading").expect("registered");
        polled.fetch_add(50, Ordering::Release);
        assert_eq!(q.reserve(30, false), Some(30), "30 + 30 wait");
        // Upgraded: unknown until the middleware saw the upgrade, then counted from there.
        let conn = written(1234);
        assert_eq!(
            q.reserve(1000, true),
            Some(0),
            "unknown connection: packets only"
        );
        q.release(0);
        upgraded("upgrading", &conn);
        assert_eq!(q.waiting(true), Some(60));
        conn.0.fetch_add(60, Ordering::Release);
        assert_eq!(q.waiting(true), Some(0));
        drop(q);
        assert!(polled_entry("upgrading").is_none(), "gone with its socket");
    }

    fn polled_entry(sid: &str) -> Option<Weak<AtomicU64>> {
        REGISTRY.polled.lock().map.get(sid).cloned()
    }

    #[test]
    fn zero_is_unbounded() {
        let q = Queue::new("unbounded", 0, Some(&written(0)));
        assert!((0..10).all(|_| q.reserve(u64::MAX / 20, true) == Some(0)));
    }
}
