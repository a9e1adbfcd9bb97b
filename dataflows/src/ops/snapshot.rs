//! Snapshots of the keyed operators' states: what bounds a restore to "snapshot + tail".
//!
//! Every stateful operator of the dataflows is a [`keyed`](super::keyed) operator; the other
//! operators (maps, joins, reduces) are functions of their input collections. So the whole state
//! of the dataflows after every time up to `S` is: each keyed operator's per-key state, timer and
//! current outputs, plus the engine's latest input value per key (the engine host's part). A
//! restore loads that, re-inserts the latest inputs at `S` (which the restored keyed operators
//! ignore: their state already holds them), lets the restored operators emit their current
//! outputs at `S`, and feeds only the inputs after `S`. Every output after `S` is then the one of
//! a run that never stopped.
//!
//! [`Snapshots`] is shared by the workers of one process. The engine sets it for the
//! construction of the dataflows ([`super::building`]); each keyed operator registers there, takes its
//! part when restoring, and writes its part when a snapshot is requested and its input frontier
//! has passed the snapshot time (the engine holds its input at `S + 1` until every part is in).
//! An operator is named by its name and its address in the dataflow, which the same build of the
//! same configuration reproduces.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::prelude::Time;

/// A hash of the dataflows' source tree (`build.rs`): a snapshot is only loaded by a build with
/// the same state types.
pub const SOURCE_HASH: &str = env!("RMF_DASH_DATAFLOWS_SOURCE_HASH");

/// One operator's state on one worker (bincode of its sorted entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub operator: String,
    pub worker: usize,
    pub state: Vec<u8>,
}

/// The state of the engine after every time up to `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time: Time,
    pub workers: usize,
    /// What must match for a restore: the source hash and the configuration of the dataflows.
    pub fingerprint: String,
    /// The engine host's latest input per key (its own encoding).
    pub inputs: Vec<u8>,
    pub parts: Vec<Part>,
    /// How long the engine held its input to take it (ms).
    pub took_ms: u64,
}

impl Snapshot {
    /// The encoded states' size.
    pub fn bytes(&self) -> usize {
        self.inputs.len() + self.parts.iter().map(|p| p.state.len()).sum::<usize>()
    }
}

/// The coordination between the engine host and the keyed operators of every worker.
#[derive(Debug, Default)]
pub struct Snapshots {
    inner: Mutex<Inner>,
    built: AtomicUsize,
}

#[derive(Debug, Default)]
struct Inner {
    /// The snapshot being taken.
    request: Option<Time>,
    /// Operators registered at construction, over every worker.
    operators: usize,
    parts: Vec<Part>,
    /// Why the snapshot being taken cannot be completed.
    failed: Option<String>,
    restore: Option<Restore>,
}

#[derive(Debug)]
struct Restore {
    time: Time,
    parts: HashMap<(String, usize), Vec<u8>>,
    problems: Vec<String>,
}

impl Snapshots {
    pub fn new() -> Arc<Self> {
        Arc::new(Snapshots::default())
    }

    /// Shared state that restores the operators from `parts` (of a snapshot at `time`).
    pub fn restoring(time: Time, parts: Vec<Part>) -> Arc<Self> {
        let parts = parts
            .into_iter()
            .map(|p| ((p.operator, p.worker), p.state))
            .collect();
        Arc::new(Snapshots {
            inner: Mutex::new(Inner {
                restore: Some(Restore {
                    time,
                    parts,
                    problems: Vec::new(),
                }),
                ..Inner::default()
            }),
            built: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking worker stops the process (engine host); the data stays consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An operator registers at construction; when restoring, it gets its part and the
    /// snapshot's time (a missing part is a problem of the restore).
    pub fn register(&self, operator: &str, worker: usize) -> Option<(Time, Vec<u8>)> {
        let mut inner = self.lock();
        inner.operators += 1;
        let restore = inner.restore.as_mut()?;
        match restore.parts.remove(&(operator.to_string(), worker)) {
            Some(state) => Some((restore.time, state)),
            None => {
                restore.problems.push(format!(
                    "no state for operator {operator} on worker {worker}"
                ));
                None
            }
        }
    }

    /// A part that could not be loaded.
    pub fn problem(&self, problem: String) {
        if let Some(r) = self.lock().restore.as_mut() {
            r.problems.push(problem);
        }
    }

    /// A worker has built its dataflows.
    pub fn built(&self) {
        self.built.fetch_add(1, Ordering::AcqRel);
    }

    /// How many workers have built their dataflows.
    pub fn workers_built(&self) -> usize {
        self.built.load(Ordering::Acquire)
    }

    /// After every worker has built: whether the restore loaded every part of the snapshot and
    /// nothing else (`Err` says what did not match).
    pub fn restore_outcome(&self) -> Result<(), String> {
        let inner = self.lock();
        let Some(r) = &inner.restore else {
            return Ok(());
        };
        let mut problems = r.problems.clone();
        if !r.parts.is_empty() {
            problems.push(format!("{} parts of no operator", r.parts.len()));
        }
        match problems.len() {
            0 => Ok(()),
            n => Err(format!(
                "{n} problems, first: {}",
                problems.first().map_or("", String::as_str)
            )),
        }
    }

    /// Starts a snapshot at `time` (the engine host, with its input held at `time + 1`).
    pub fn begin(&self, time: Time) {
        let mut inner = self.lock();
        inner.request = Some(time);
        inner.parts.clear();
        inner.failed = None;
    }

    /// The snapshot being taken, if any.
    pub fn request(&self) -> Option<Time> {
        self.lock().request
    }

    /// An operator's part of the snapshot at `time` (ignored if that snapshot is no longer
    /// being taken).
    pub fn put(&self, time: Time, part: Part) {
        let mut inner = self.lock();
        if inner.request == Some(time) {
            inner.parts.push(part);
        }
    }

    /// An operator could not write its part of the snapshot at `time`.
    pub fn fail(&self, time: Time, why: String) {
        let mut inner = self.lock();
        if inner.request == Some(time) {
            inner.failed.get_or_insert(why);
        }
    }

    /// Whether the snapshot being taken is over: every registered operator has given its part,
    /// or one failed.
    pub fn done(&self) -> bool {
        let inner = self.lock();
        inner.request.is_some() && (inner.failed.is_some() || inner.parts.len() == inner.operators)
    }

    /// Ends the snapshot being taken: its parts (sorted), or why it is incomplete.
    pub fn end(&self) -> Result<Vec<Part>, String> {
        let mut inner = self.lock();
        inner.request = None;
        let mut parts = std::mem::take(&mut inner.parts);
        if let Some(why) = inner.failed.take() {
            return Err(why);
        }
        if parts.len() != inner.operators {
            return Err(format!(
                "{} of {} operators gave their state",
                parts.len(),
                inner.operators
            ));
        }
        parts.sort_by(|a, b| (&a.operator, a.worker).cmp(&(&b.operator, b.worker)));
        Ok(parts)
    }
}

/// `&'static str` for state fields with [`static_str`] serde (the alias hides the `'static`
/// lifetime from serde's derive, which would otherwise only deserialize from `'static` input).
pub type StaticStr = &'static str;

/// Serde for `&'static str` fields of states (reasons and statuses from a fixed vocabulary):
/// a deserialized string is interned once for the life of the process.
pub mod static_str {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// More distinct strings than any state vocabulary has: the input is not a snapshot.
    const MAX: usize = 4096;

    pub fn intern(s: String) -> Result<&'static str, String> {
        static TABLE: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
        let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
        let table = table.get_or_insert_with(HashSet::new);
        if let Some(s) = table.get(s.as_str()) {
            return Ok(s);
        }
        if table.len() >= MAX {
            return Err("too many distinct strings".into());
        }
        let s: &'static str = Box::leak(s.into_boxed_str());
        table.insert(s);
        Ok(s)
    }

    pub fn serialize<S: Serializer>(v: &&'static str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        intern(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<&'static str>`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(v: &Option<&'static str>, s: S) -> Result<S::Ok, S::Error> {
            v.serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<&'static str>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(intern)
                .transpose()
                .map_err(serde::de::Error::custom)
        }
    }

    /// The same for maps keyed by `&'static str`.
    pub mod map {
        use super::*;
        use std::collections::BTreeMap;

        pub fn serialize<S: Serializer, V: Serialize>(
            v: &BTreeMap<&'static str, V>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            v.serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
            d: D,
        ) -> Result<BTreeMap<&'static str, V>, D::Error> {
            BTreeMap::<String, V>::deserialize(d)?
                .into_iter()
                .map(|(k, v)| Ok((intern(k)?, v)))
                .collect::<Result<_, String>>()
                .map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(operator: &str, worker: usize, state: &[u8]) -> Part {
        Part {
            operator: operator.into(),
            worker,
            state: state.to_vec(),
        }
    }

    #[test]
    fn a_snapshot_ends_with_every_registered_part_sorted() {
        let s = Snapshots::new();
        for (op, worker) in [("b", 0), ("a", 1), ("a", 0)] {
            assert_eq!(s.register(op, worker), None, "not restoring");
        }
        s.begin(10);
        assert_eq!(s.request(), Some(10));
        s.put(10, part("b", 0, b"b0"));
        s.put(9, part("stale", 0, b"x"));
        s.put(10, part("a", 1, b"a1"));
        assert!(!s.done(), "two of three parts");
        s.put(10, part("a", 0, b"a0"));
        assert!(s.done());
        let parts = s.end().expect("complete");
        let names: Vec<_> = parts
            .iter()
            .map(|p| (p.operator.as_str(), p.worker))
            .collect();
        assert_eq!(names, [("a", 0), ("a", 1), ("b", 0)]);
        assert_eq!(s.request(), None);
    }

    #[test]
    fn a_snapshot_missing_a_part_or_failed_is_refused() {
        let s = Snapshots::new();
        s.register("a", 0);
        s.register("b", 0);
        s.begin(5);
        s.put(5, part("a", 0, b""));
        assert_eq!(s.end(), Err("1 of 2 operators gave their state".into()));
        s.begin(6);
        s.fail(6, "too large".into());
        s.fail(6, "second reason".into());
        assert!(s.done(), "a failure ends it");
        assert_eq!(s.end(), Err("too large".into()));
    }

    #[test]
    fn a_restore_hands_each_operator_its_part_and_reports_what_did_not_match() {
        let parts = vec![part("a", 0, b"a0"), part("gone", 0, b"g0")];
        let s = Snapshots::restoring(7, parts);
        assert_eq!(s.register("a", 0), Some((7, b"a0".to_vec())));
        assert_eq!(s.register("new", 0), None);
        s.built();
        assert_eq!(s.workers_built(), 1);
        let outcome = s
            .restore_outcome()
            .expect_err("a part and an operator left over");
        assert_eq!(
            outcome,
            "2 problems, first: no state for operator new on worker 0"
        );
        let exact = Snapshots::restoring(7, vec![part("a", 0, b"a0")]);
        exact.register("a", 0);
        assert_eq!(exact.restore_outcome(), Ok(()));
    }

    #[test]
    fn interned_strings_are_shared_and_bounded_by_the_vocabulary() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct State {
            #[serde(with = "static_str")]
            status: StaticStr,
            #[serde(with = "static_str::option")]
            reason: Option<StaticStr>,
        }
        let state = State {
            status: "underway",
            reason: Some("held"),
        };
        let bytes = bincode::serialize(&state).expect("encode");
        let (a, b): (State, State) = (
            bincode::deserialize(&bytes).expect("decode"),
            bincode::deserialize(&bytes).expect("decode"),
        );
        assert_eq!(a, state);
        assert!(std::ptr::eq(a.status, b.status), "one copy per string");
    }
}
