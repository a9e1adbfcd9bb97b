//! The hub's bounds (DESIGN.md invariant 10: every structure an outsider can grow has a bound):
//! how many rooms it holds, how many one client follows, and how many bytes may wait in one
//! socket's queue; and which rooms go first when it holds too many.
//!
//! - A room that never had a value (its entity never appeared) is kept only while someone
//!   follows it: the last unsubscribe or disconnect frees it, so subscriptions to names that do
//!   not exist leave nothing behind. Subscribing to it still works (invariant 4): the room is
//!   made again, and its first value arrives when the entity appears.
//! - `max_rooms_per_client` (`--max-rooms-per-client`): rooms one socket (or one subscriber of
//!   any kind but a replication link, which has its own bound) may follow; a subscription beyond
//!   is refused (`subscribe_error`), counted, and warned once per socket.
//! - `max_rooms` (`--max-rooms`): rooms held. When a new room would pass it, the hub evicts
//!   rooms nobody follows, about 1% of the bound at once (so that the scan it takes is paid once
//!   per that many new rooms), in this order ([`Tier`]): rooms without a value (never had one,
//!   or their value went away), then stream rooms (their events are in the store), then state
//!   rooms with a value, oldest-updated first within each. Evicting a value is counted by tier
//!   (`rmf_dash_rooms_evicted_total{reason}`) and a value of a live entity (the last tier) is
//!   warned about with the rooms it took; the room comes back with its next change. Rooms a
//!   subscription would create never evict a value: they are refused when only rooms with a value
//!   could make space. A room made again after an eviction numbers its changes after every
//!   evicted sequence number, so a room's sequence numbers never go back.
//! - `socket_queue_bytes` (`--socket-queue-bytes`): read by the socket.io transport
//!   ([`super::drain`]).

use std::collections::HashMap;
use std::sync::Arc;

use rmf_dash_dataflows::derived::RoomKind;

use super::Room;

/// Default of `--max-rooms`: a 10,000-robot site holds about 60,000 rooms (fleets, robots'
/// derived rooms, doors, lifts) plus two per task it keeps; a million leaves room for the tasks
/// of a long run and for every dashboard's subscriptions, at roughly 300 bytes a room without
/// its value.
pub const DEFAULT_MAX_ROOMS: usize = 1_000_000;

/// Default of `--max-rooms-per-client`: the built-in live view follows three rooms per robot, four
/// per fleet, three per door and two per lift (about 31,000 at a 10,000-robot site); rmf-web's
/// dashboard follows one per fleet, door, lift, dispenser and ingestor, and the tasks it shows.
pub const DEFAULT_MAX_ROOMS_PER_CLIENT: usize = 50_000;

/// Default of `--socket-queue-bytes`: 8 MiB waiting per socket (a dashboard's few deliveries a
/// second are a few KiB each; a building map is a few MiB).
pub const DEFAULT_SOCKET_QUEUE_BYTES: u64 = 8 << 20;

/// The bounds of a hub and of its sockets; `0` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubBounds {
    /// Rooms held at most (`--max-rooms`).
    pub max_rooms: usize,
    /// Rooms one client may follow (`--max-rooms-per-client`).
    pub max_rooms_per_client: usize,
    /// Bytes that may wait in one socket's queue before the hub coalesces for it
    /// (`--socket-queue-bytes`).
    pub socket_queue_bytes: u64,
    /// Final values of retired rooms kept (`--archived-rooms`, [`super::retire`]).
    pub archived_rooms: usize,
}

impl Default for HubBounds {
    fn default() -> Self {
        HubBounds {
            max_rooms: DEFAULT_MAX_ROOMS,
            max_rooms_per_client: DEFAULT_MAX_ROOMS_PER_CLIENT,
            socket_queue_bytes: DEFAULT_SOCKET_QUEUE_BYTES,
            archived_rooms: super::retire::DEFAULT_ARCHIVED_ROOMS,
        }
    }
}

impl HubBounds {
    /// Rooms evicted at once when the hub is full: 1% of the bound.
    pub(super) fn batch(&self) -> usize {
        (self.max_rooms / 100).max(1)
    }
}

/// Why a room may go, in the order rooms go (rooms nobody follows only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// No present value: its entity never appeared, or its value went away.
    Gone = 0,
    /// A stream room: its events are in the store.
    Stream = 1,
    /// A state room's present value: a live entity's latest value.
    Live = 2,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Gone, Tier::Stream, Tier::Live];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Gone => "gone",
            Tier::Stream => "stream",
            Tier::Live => "live",
        }
    }

    /// The tier of a room nobody follows; `None` for a followed room (never evicted).
    pub(super) fn of(room: &Room) -> Option<Tier> {
        if !room.subscribers.is_empty() {
            return None;
        }
        Some(match room.kind {
            RoomKind::State if room.value.is_some() => Tier::Live,
            RoomKind::State => Tier::Gone,
            RoomKind::Stream if room.seq == 0 => Tier::Gone,
            RoomKind::Stream => Tier::Stream,
        })
    }
}

/// The `n` rooms to evict first: nobody follows them, lowest tier then oldest update first;
/// rooms of the tiers above `up_to` are never taken.
pub(super) fn victims(
    rooms: &HashMap<Arc<str>, Room>,
    n: usize,
    up_to: Tier,
) -> Vec<(Tier, Arc<str>)> {
    let mut candidates: Vec<(Tier, u64, &Arc<str>)> = rooms
        .iter()
        .filter_map(|(k, r)| Tier::of(r).filter(|t| *t <= up_to).map(|t| (t, r.t, k)))
        .collect();
    if candidates.len() > n {
        candidates.select_nth_unstable(n);
        candidates.truncate(n);
    }
    candidates
        .into_iter()
        .map(|(t, _, k)| (t, k.clone()))
        .collect()
}

/// Gives back the memory of a map that shrank to a quarter of its capacity (after a crowd of
/// subscribers left): a hash map keeps its largest capacity otherwise. Returns whether it did.
pub(super) fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) -> bool {
    if map.capacity() > 1024 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
        return true;
    }
    false
}

/// Asks the allocator to return the memory freed to the system: glibc keeps what a crowd of
/// subscribers freed in its arenas otherwise (15 MB after 100,000 subscriptions left, measured),
/// so that the process would not shrink back after an attack. Called after a map shrank (rare:
/// the trim walks the heap, a few milliseconds).
pub(super) fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe and reads no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}
