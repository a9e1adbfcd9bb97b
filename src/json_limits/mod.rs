//! The bounds on JSON read from the network, one check for every door: REST bodies
//! ([`crate::api::body`]), `/_internal` frames ([`crate::ingest::internal`]), `/_replicate`
//! requests and frames ([`crate::proxy::frame`]) and socket.io event payloads
//! ([`crate::hub::socketio`]). Each door runs [`check`] (size, UTF-8, nesting depth: a linear
//! scan, [`scan`]) before serde reads the document, counts what it refuses here and logs it
//! with the peer.
//!
//! Why a depth bound, and why [`DEFAULT_MAX_DEPTH`]: serde_json, which every reader of a stored
//! or relayed document uses (the store's restore, `GET /tasks`, a proxy's link, the engine's
//! shapes), refuses documents nested 128 levels or more. Without a bound at the door, a deeper
//! task state was accepted, then silently dropped by those readers, and relayed as it came to
//! dashboards whose parsers recurse (python-socketio died of `RecursionError`). The bound is
//! at most [`MAX_DEPTH_CEILING`], so that a document and the level the server wraps around it
//! (the list of `GET /tasks`, a socket.io event's arguments) stays under serde's 128: nothing
//! accepted can vanish later. Real RMF documents are far shallower: the fleet-adapter frames of
//! the generated hotel recording (task states with phases and events, task logs) are at most 7
//! levels deep, its building map 9, a composed task request about 10; 64 leaves room for
//! free-form `detail` fields.
//!
//! The bounds are set once at start from the command line ([`configure`]) and read by each
//! door ([`limits`]); the counters are the process's (`rmf_dash_json_refused_total{door,
//! reason}` on `/metrics`, [`metrics`]). Nothing here depends on the rest of the crate: the
//! fuzz targets include this module as it is.

mod scan;

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub use scan::{Limits, Reason, Refusal, check, depth_of, within_depth};

/// Deepest nesting accepted by default (`--max-json-depth`).
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// The deepest `--max-json-depth` allowed, and the bound on documents an upstream rmf-dash
/// relays to a proxy (whatever that upstream's own bound): a document this deep, wrapped once
/// more, is still read by serde_json (which refuses 128 levels).
pub const MAX_DEPTH_CEILING: usize = 100;
/// Largest REST body or socket.io message accepted by default (`--max-json-bytes`): 1 MiB, as
/// socket.io's own server (`maxHttpBufferSize`); `/_internal` frames have their own bound
/// (`--internal-max-frame`).
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// The bounds used when [`configure`] was not called (in-process tests, benchmarks).
pub const DEFAULT: Limits = Limits {
    max_depth: DEFAULT_MAX_DEPTH,
    max_bytes: DEFAULT_MAX_BYTES,
};

static LIMITS: OnceLock<Limits> = OnceLock::new();

/// Sets the process's bounds (from the command line, once, before serving); `false` when they
/// were already set (the first ones stay). The depth is clamped to [`MAX_DEPTH_CEILING`].
pub fn configure(limits: Limits) -> bool {
    let limits = Limits {
        max_depth: limits.max_depth.clamp(1, MAX_DEPTH_CEILING),
        ..limits
    };
    LIMITS.set(limits).is_ok()
}

/// The process's bounds.
pub fn limits() -> Limits {
    LIMITS.get().copied().unwrap_or(DEFAULT)
}

/// A peer's address as logged (`unknown` when the listener did not give it).
pub fn peer_name(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "unknown".into(), |p| p.to_string())
}

/// The process's depth bound alone, for documents whose size was bounded on the way in (an
/// answer of RMF's, read by its link).
pub fn depth_only() -> Limits {
    Limits {
        max_bytes: usize::MAX,
        ..limits()
    }
}

/// The entry point a document came through (the `door` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Rest,
    Internal,
    Replicate,
    Socketio,
}

impl Door {
    pub const ALL: [Door; 4] = [Door::Rest, Door::Internal, Door::Replicate, Door::Socketio];

    pub fn as_str(self) -> &'static str {
        match self {
            Door::Rest => "rest",
            Door::Internal => "internal",
            Door::Replicate => "replicate",
            Door::Socketio => "socketio",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

fn reason_index(reason: Reason) -> usize {
    reason as usize
}

static REFUSED: [[AtomicU64; 4]; 4] = [const { [const { AtomicU64::new(0) }; 4] }; 4];
/// Per door: when a refusal was last logged (ms since [`epoch`], plus one; 0: never) and how
/// many were left out since.
static LAST_WARN: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static LEFT_OUT: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// At most one warning a second per door: a hostile client cannot flood the log.
const WARN_EVERY_MS: u64 = 1000;

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Counts a refusal (the door logs it itself).
pub fn count(door: Door, reason: Reason) {
    REFUSED[door.index()][reason_index(reason)].fetch_add(1, Ordering::Relaxed);
}

/// Counts a refusal and logs it (a warning naming the peer, at most one a second per door;
/// the number left out is given with the next one). `what` says what was refused.
pub fn refused(door: Door, refusal: &Refusal, peer: &dyn Display, what: &str) {
    refused_for(door, refusal.reason(), refusal, peer, what);
}

/// [`refused`] for a refusal found outside [`check`] (a body over the bound while it is read).
pub fn refused_for(door: Door, reason: Reason, why: &dyn Display, peer: &dyn Display, what: &str) {
    count(door, reason);
    let now = epoch().elapsed().as_millis() as u64 + 1;
    let last = &LAST_WARN[door.index()];
    let previous = last.load(Ordering::Relaxed);
    let due = previous == 0 || now.saturating_sub(previous) >= WARN_EVERY_MS;
    if !due
        || last
            .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        LEFT_OUT[door.index()].fetch_add(1, Ordering::Relaxed);
        return;
    }
    let left_out = LEFT_OUT[door.index()].swap(0, Ordering::Relaxed);
    tracing::warn!(
        door = door.as_str(),
        reason = reason.as_str(),
        %peer,
        left_out,
        "{what} refused: {why}"
    );
}

/// How many refusals were counted at `door` for `reason`.
pub fn refusals(door: Door, reason: Reason) -> u64 {
    REFUSED[door.index()][reason_index(reason)].load(Ordering::Relaxed)
}

/// `(labels, count)` of `rmf_dash_json_refused_total`, every door and reason (zeros included,
/// so a dashboard sees the series before the first refusal).
pub fn metrics() -> Vec<(String, u64)> {
    Door::ALL
        .iter()
        .flat_map(|&door| {
            Reason::ALL.iter().map(move |&reason| {
                (
                    format!(
                        "{{door=\"{}\",reason=\"{}\"}}",
                        door.as_str(),
                        reason.as_str()
                    ),
                    refusals(door, reason),
                )
            })
        })
        .collect()
}

/// The family of the refusals on `/metrics` (written by [`crate::metrics::write_json_refused`]:
/// this module is also compiled alone, by the fuzz crate, without the metrics writer).
pub const METRIC_NAME: &str = "rmf_dash_json_refused_total";
/// Its help line.
pub const METRIC_HELP: &str = "JSON documents refused before parsing, by door (rest, internal, replicate, socketio) and reason (depth, bytes, syntax, utf8).";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_per_door_and_reason() {
        let before = refusals(Door::Replicate, Reason::Utf8);
        refused(Door::Replicate, &Refusal::Utf8 { at: 0 }, &"test", "test");
        count(Door::Replicate, Reason::Utf8);
        assert_eq!(refusals(Door::Replicate, Reason::Utf8), before + 2);
        let lines = metrics();
        assert_eq!(lines.len(), 16);
        assert!(
            lines
                .iter()
                .any(|(l, n)| l == "{door=\"replicate\",reason=\"utf8\"}" && *n >= 2)
        );
    }
}
