//! The census of the engine's state: how many keys and timers every keyed operator holds,
//! by operator name, summed over workers. It is what `/metrics` and `rmf-dash bench --only soak`
//! show, so that state growing with a site's age is seen before it hurts (DESIGN.md invariant
//! 10).
//!
//! A keyed operator built while a census is installed ([`super::building`]) registers once, when it is
//! built, and gets a [`Slot`]; after every activation it stores its counts there (two relaxed
//! atomic stores: no lock, no allocation on the worker's hot path). Operators built without one
//! (unit tests) count nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// What one operator holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    /// Keys with state, a timer or current outputs.
    pub keys: usize,
    /// Distinct times with a timer scheduled (stale timers included: they are skipped when
    /// due).
    pub timer_times: usize,
}

impl std::ops::AddAssign for Count {
    fn add_assign(&mut self, o: Count) {
        self.keys += o.keys;
        self.timer_times += o.timer_times;
    }
}

/// Where one operator on one worker writes its counts.
#[derive(Debug, Default)]
pub struct Slot {
    keys: AtomicUsize,
    timer_times: AtomicUsize,
}

impl Slot {
    /// Records what the operator holds now.
    pub fn set(&self, count: Count) {
        self.keys.store(count.keys, Ordering::Relaxed);
        self.timer_times.store(count.timer_times, Ordering::Relaxed);
    }

    fn get(&self) -> Count {
        Count {
            keys: self.keys.load(Ordering::Relaxed),
            timer_times: self.timer_times.load(Ordering::Relaxed),
        }
    }
}

/// The registered slots, by operator name and worker.
#[derive(Debug, Default)]
pub struct Census {
    slots: Mutex<BTreeMap<(String, usize), Arc<Slot>>>,
}

impl Census {
    pub fn new() -> Arc<Census> {
        Arc::default()
    }

    /// The slot of `operator` on `worker` (the same one when asked again).
    pub fn register(&self, operator: &str, worker: usize) -> Arc<Slot> {
        self.lock()
            .entry((operator.to_string(), worker))
            .or_default()
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, usize), Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every operator's counts summed over workers, by name.
    pub fn totals(&self) -> BTreeMap<String, Count> {
        let mut out: BTreeMap<String, Count> = BTreeMap::new();
        for ((name, _), slot) in self.lock().iter() {
            *out.entry(name.clone()).or_default() += slot.get();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_workers_by_name() {
        let c = Census::new();
        let n = |keys| Count {
            keys,
            timer_times: 1,
        };
        c.register("A", 0).set(n(3));
        c.register("A", 1).set(n(4));
        c.register("B", 0).set(n(1));
        c.register("A", 0).set(n(5));
        let t = c.totals();
        assert_eq!(
            t["A"],
            Count {
                keys: 9,
                timer_times: 2
            }
        );
        assert_eq!(t["B"].keys, 1);
    }
}
