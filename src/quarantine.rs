//! The quarantine: engine inputs that made an engine worker panic, recorded and skipped from then
//! on. DESIGN.md invariant 7 says no input reaches a panic; this is the net under that promise,
//! so that a bug that one input triggers costs that input, not the site (no crash loop).
//!
//! - An input is named by its kind and key and by its [`Digest`]: SHA-256 of its bincode
//!   encoding, the bytes the store's `input_log.value` holds. An identical input (same key, same
//!   value) is skipped wherever it comes from again: a re-sent adapter state, a replay, the
//!   input log at restore. Another value of the same key is not.
//! - The engine finds the input ([`crate::engine`], recovery) and adds it here; the engine and
//!   the restore ask [`Quarantine::filter`] / [`Quarantine::contains`]. Checking costs one
//!   atomic load while the quarantine is empty, and a hash lookup of the entity name otherwise
//!   (the digest is computed only for names that have an entry).
//! - With a store, entries are written to its `quarantine` table ([`crate::store::quarantine`]) and loaded at
//!   start; without one they live in memory for the life of the process.
//! - Bounded: at most `max_entries` in memory (`--max-quarantined`); past it the oldest is
//!   forgotten (counted, logged). It stays in the table, and is loaded again if it is among the
//!   latest at the next start.
//! - `/health` shows the count and a description of the latest entry (kind, key, time, digest,
//!   the panic), never the payload.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use rmf_dash_dataflows::model::input::Input;
use rmf_dash_dataflows::prelude::Time;

/// Default of `--max-quarantined`: entries kept in memory.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// The longest panic message kept in an entry (characters).
const REASON_CHARS: usize = 300;

/// SHA-256 of an input's bincode encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of an input as the store's input log encodes it.
    pub fn of(input: &Input) -> Digest {
        // Plain data: encoding to a Vec cannot fail (the input log uses the same call).
        Digest::of_encoded(&bincode::serialize(input).unwrap_or_default())
    }

    /// The digest of an encoded input (`input_log.value`).
    pub fn of_encoded(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How an input reached the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// From a source while running (an adapter, ROS 2, a replay).
    Live,
    /// From the store's input log, at restore.
    Restore,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Live => "live",
            Origin::Restore => "restore",
        }
    }
}

/// One quarantined input: what names it, never its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The input's kind (`Fleet`, `Door`, `Robot(Api)`, ... as in `input_log.kind`).
    pub kind: String,
    /// The entity (`input_log.key`).
    pub key: String,
    /// The logical time it was fed at (ms).
    #[serde(rename = "time_ms")]
    pub time: Time,
    /// `live` or `restore` (see [`Origin`]).
    pub source: String,
    pub digest: Digest,
    /// What the worker's panic said (shortened).
    pub reason: String,
}

impl Entry {
    /// The entry of `input`, fed at `time`, that made a worker panic with `reason`.
    pub fn new(input: &Input, time: Time, origin: Origin, reason: &str) -> Entry {
        let ((kind, key), _) = input;
        Entry {
            kind: format!("{kind:?}"),
            key: key.to_string(),
            time,
            source: origin.as_str().into(),
            digest: Digest::of(input),
            reason: reason.chars().take(REASON_CHARS).collect(),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct QuarantineMetrics {
    /// Engine worker panics (each one rebuilt the engine or stopped the process).
    pub panics: AtomicU64,
    /// Arrivals of a quarantined input, skipped (live and at restore).
    pub skipped: AtomicU64,
    /// Entries forgotten by the memory bound.
    pub evicted: AtomicU64,
}

/// The quarantine of one process, shared by the engine, the restore and `/health`.
pub struct Quarantine {
    inner: RwLock<Inner>,
    /// Whether any entry exists (the check's fast path).
    any: AtomicBool,
    max_entries: usize,
    pub metrics: QuarantineMetrics,
    /// Where new entries are written (the store's table), when there is a store.
    persist: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Entry>>>,
    /// Entries sent to `persist` and entries it has written (see [`Quarantine::flush`]).
    written: Mutex<(u64, u64)>,
    written_changed: Condvar,
}

#[derive(Default)]
struct Inner {
    /// Digests by entity name.
    by_key: HashMap<String, Vec<Digest>>,
    /// Every entry, oldest first.
    entries: VecDeque<Entry>,
}

impl fmt::Debug for Quarantine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quarantine")
            .field("entries", &self.len())
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

impl Default for Quarantine {
    fn default() -> Self {
        Quarantine::new(DEFAULT_MAX_ENTRIES)
    }
}

impl Quarantine {
    /// An empty quarantine keeping at most `max_entries` in memory.
    pub fn new(max_entries: usize) -> Quarantine {
        Quarantine {
            inner: RwLock::new(Inner::default()),
            any: AtomicBool::new(false),
            max_entries: max_entries.max(1),
            metrics: QuarantineMetrics::default(),
            persist: Mutex::new(None),
            written: Mutex::new((0, 0)),
            written_changed: Condvar::new(),
        }
    }

    /// The memory bound (`--max-quarantined`).
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Entries in memory.
    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// The latest entry.
    pub fn last(&self) -> Option<Entry> {
        self.inner.read().entries.back().cloned()
    }

    /// Whether `input` is quarantined.
    pub fn contains(&self, input: &Input) -> bool {
        if self.is_empty() {
            return false;
        }
        let inner = self.inner.read();
        let Some(digests) = inner.by_key.get(input.0.1.as_str()) else {
            return false;
        };
        digests.contains(&Digest::of(input))
    }

    /// `inputs` without the quarantined ones (each one skipped is counted).
    pub fn filter(&self, mut inputs: Vec<Input>) -> Vec<Input> {
        if self.is_empty() {
            return inputs;
        }
        let before = inputs.len();
        inputs.retain(|i| !self.contains(i));
        let skipped = (before - inputs.len()) as u64;
        if skipped > 0 {
            self.metrics.skipped.fetch_add(skipped, Ordering::Relaxed);
        }
        inputs
    }

    /// Adds `entry` (and writes it to the store, with one); `false` when it was there already.
    pub fn add(&self, entry: Entry) -> bool {
        if !self.insert(entry.clone()) {
            return false;
        }
        tracing::error!(
            kind = %entry.kind,
            key = %entry.key,
            time = entry.time,
            source = %entry.source,
            digest = %entry.digest,
            reason = %entry.reason,
            "input quarantined: it made an engine worker panic; it is skipped from now on"
        );
        if let Some(tx) = self.persist.lock().as_ref()
            && tx.send(entry).is_ok()
        {
            self.written.lock().0 += 1;
        }
        true
    }

    /// Adds entries read from the store (oldest first), without writing them back.
    pub fn load(&self, entries: impl IntoIterator<Item = Entry>) {
        for e in entries {
            self.insert(e);
        }
    }

    fn insert(&self, entry: Entry) -> bool {
        let mut inner = self.inner.write();
        let digests = inner.by_key.entry(entry.key.clone()).or_default();
        if digests.contains(&entry.digest) {
            return false;
        }
        digests.push(entry.digest);
        inner.entries.push_back(entry);
        while inner.entries.len() > self.max_entries {
            let Some(old) = inner.entries.pop_front() else {
                break;
            };
            if let Some(d) = inner.by_key.get_mut(&old.key) {
                d.retain(|x| *x != old.digest);
                if d.is_empty() {
                    inner.by_key.remove(&old.key);
                }
            }
            self.metrics.evicted.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                kind = %old.kind,
                key = %old.key,
                digest = %old.digest,
                max = self.max_entries,
                "quarantine over its bound (--max-quarantined): the oldest entry is forgotten \
                 in memory"
            );
        }
        self.any.store(true, Ordering::Release);
        true
    }

    /// New entries go to `tx` from now on (the store's writer task, [`crate::store::quarantine::open`]).
    pub fn persist_to(&self, tx: tokio::sync::mpsc::UnboundedSender<Entry>) {
        *self.persist.lock() = Some(tx);
    }

    /// The store's writer task has written one more entry.
    pub fn written_one(&self) {
        self.written.lock().1 += 1;
        self.written_changed.notify_all();
    }

    /// Waits, at most `limit`, until every entry sent to the store is written (before the
    /// process exits); whether they are.
    pub fn flush(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let mut written = self.written.lock();
        while written.1 < written.0 {
            if self
                .written_changed
                .wait_until(&mut written, deadline)
                .timed_out()
            {
                return written.1 >= written.0;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmf_dash_dataflows::model::input::{InputValue, Kind, Payload};
    use std::sync::Arc;

    fn fleet(name: &str, payload: &str) -> Input {
        (
            (Kind::Fleet, name.into()),
            InputValue::Payload(Payload(Arc::from(payload))),
        )
    }

    #[test]
    fn an_identical_input_is_skipped_and_another_value_of_its_key_is_not() {
        let q = Quarantine::new(10);
        let poison = fleet("a", r#"{"name":"a"}"#);
        assert!(!q.contains(&poison));
        assert!(q.add(Entry::new(&poison, 5, Origin::Live, "boom")));
        assert!(!q.add(Entry::new(&poison, 6, Origin::Live, "boom")));
        let other = fleet("a", r#"{"name":"a","x":1}"#);
        let kept = q.filter(vec![fleet("b", "{}"), poison.clone(), other.clone()]);
        assert_eq!(kept, vec![fleet("b", "{}"), other]);
        assert_eq!(q.metrics.skipped.load(Ordering::Relaxed), 1);
        let last = q.last().expect("entry");
        assert_eq!(
            (last.kind.as_str(), last.key.as_str(), last.time),
            ("Fleet", "a", 5)
        );
        assert_eq!(
            Digest::from_hex(&last.digest.to_string()),
            Some(last.digest)
        );
        let encoded = bincode::serialize(&poison).expect("encode");
        assert_eq!(Digest::of_encoded(&encoded), last.digest);
    }

    #[test]
    fn the_oldest_entry_goes_past_the_bound() {
        let q = Quarantine::new(2);
        for name in ["a", "b", "c"] {
            q.add(Entry::new(&fleet(name, "{}"), 1, Origin::Live, ""));
        }
        assert_eq!(q.len(), 2);
        assert!(!q.contains(&fleet("a", "{}")));
        assert!(q.contains(&fleet("c", "{}")));
        assert_eq!(q.metrics.evicted.load(Ordering::Relaxed), 1);
    }
}
