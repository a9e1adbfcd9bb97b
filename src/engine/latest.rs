//! The first worker's own state of the engine's inputs: the latest value per upsert key (the
//! engine sends `-old +new`), the hash of the latest sample per robot key (an identical sample is
//! skipped), and when each ended task leaves (`--ended-task-retention`: its latest value is then
//! retracted alone, which every keyed operator takes as the key's deletion). Saved in every
//! snapshot, in an encoding that does not depend on hash map order.

use rmf_dash_dataflows::model::input::{InputKey, InputValue};
use rmf_dash_dataflows::prelude::Time;

/// The first worker's own state: the latest value per upsert key, the hash of the latest
/// sample per robot key, and when each ended task leaves.
#[derive(Default)]
pub(super) struct Latest {
    pub values: rustc_hash::FxHashMap<InputKey, InputValue>,
    pub samples: rustc_hash::FxHashMap<InputKey, u64>,
    /// Ended tasks: the time each is evicted (its latest value retracted, none replacing it).
    leaves: rustc_hash::FxHashMap<InputKey, Time>,
    /// `leaves` by time (an entry whose key's time changed since is skipped).
    pub leaving: std::collections::BTreeMap<Time, Vec<InputKey>>,
}

/// A snapshot's encoding of [`Latest`]: every map sorted (the same state gives the same bytes).
type Encoded = (
    Vec<(InputKey, InputValue)>,
    Vec<(InputKey, u64)>,
    Vec<(InputKey, Time)>,
);

impl Latest {
    pub fn encode(&self) -> Result<Vec<u8>, bincode::Error> {
        fn sorted<V: Clone + Ord>(m: &rustc_hash::FxHashMap<InputKey, V>) -> Vec<(InputKey, V)> {
            let mut v: Vec<_> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort();
            v
        }
        let encoded: Encoded = (
            sorted(&self.values),
            sorted(&self.samples),
            sorted(&self.leaves),
        );
        bincode::serialize(&encoded)
    }

    pub fn decode(bytes: &[u8]) -> Result<Latest, bincode::Error> {
        let (values, samples, leaves): Encoded = bincode::deserialize(bytes)?;
        let mut latest = Latest {
            values: values.into_iter().collect(),
            samples: samples.into_iter().collect(),
            ..Latest::default()
        };
        for (key, at) in leaves {
            latest.leave_at(key, at);
        }
        Ok(latest)
    }

    /// A new value of an upsert key at `t`: an ended task is scheduled to leave `retention`
    /// later (once: its later values do not move the time), any other value stays.
    pub fn track(&mut self, key: &InputKey, value: &InputValue, t: Time, retention: Option<Time>) {
        match (value, retention) {
            (InputValue::Task(task), Some(retention)) if task.ended() => {
                if !self.leaves.contains_key(key) {
                    self.leave_at(key.clone(), t.saturating_add(retention));
                }
            }
            _ => {
                self.leaves.remove(key);
            }
        }
    }

    fn leave_at(&mut self, key: InputKey, at: Time) {
        self.leaving.entry(at).or_default().push(key.clone());
        self.leaves.insert(key, at);
    }

    /// The earliest time a key leaves at.
    pub fn next_leaving(&self) -> Option<Time> {
        self.leaving.keys().next().copied()
    }

    /// Takes the keys that leave at `at` (the earliest), with their latest values.
    pub fn take_leaving(&mut self, at: Time) -> Vec<(InputKey, InputValue)> {
        let mut out = Vec::new();
        for key in self.leaving.remove(&at).unwrap_or_default() {
            if self.leaves.get(&key) == Some(&at) {
                self.leaves.remove(&key);
                if let Some(value) = self.values.remove(&key) {
                    out.push((key, value));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use rmf_dash_dataflows::model::input::{Kind, Payload, TaskSample};

    use super::*;

    fn task(status: &str) -> InputValue {
        InputValue::Task(Box::new(TaskSample {
            status: status.into(),
            category: "patrol".into(),
            fleet: "f".into(),
            robot: "r".into(),
            request_ms: None,
            start_ms: None,
            finish_ms: None,
            estimate_ms: None,
            active_phase: None,
            dispatch_status: "".into(),
            dispatch_errors: String::new(),
            payload: Payload("{}".into()),
        }))
    }

    fn key(id: &str) -> InputKey {
        (Kind::Task, id.into())
    }

    /// Tracks and stores a value, as the first worker does.
    fn put(l: &mut Latest, id: &str, status: &str, t: Time) {
        let value = task(status);
        l.track(&key(id), &value, t, Some(100));
        l.values.insert(key(id), value);
    }

    #[test]
    fn an_ended_task_leaves_once_its_retention_has_passed_since_it_ended() {
        let mut l = Latest::default();
        put(&mut l, "a", "underway", 5);
        put(&mut l, "a", "completed", 10);
        // A later value of the ended task does not move its time.
        put(&mut l, "a", "failed", 50);
        // One that ended and is under way again stays.
        put(&mut l, "b", "completed", 20);
        put(&mut l, "b", "underway", 30);
        assert_eq!(l.next_leaving(), Some(110));
        // The schedule survives a snapshot.
        let mut l = Latest::decode(&l.encode().expect("encode")).expect("decode");
        let left = l.take_leaving(110);
        assert_eq!(left, vec![(key("a"), task("failed"))]);
        // b, under way again, does not leave.
        assert_eq!(l.next_leaving(), None);
        assert_eq!(l.values.len(), 1);
    }
}
