//! The census of the engine's state: how many keys and timers every keyed operator holds,
//! by operator name, summed over workers. It is what `/metrics` and `rmf-dash bench --only soak`
//! show, so that state growing with a site's age is seen before it hurts (DESIGN.md invariant
//! 10).
//!
//! A keyed operator built while a census is installed ([`counting`]) writes its counts after
//! every activation (a few stores; no allocation once its entry exists). Operators built without
//! one (unit tests) count nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
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

/// Counts per operator and worker.
#[derive(Debug, Default)]
pub struct Census {
    counts: Mutex<BTreeMap<(String, usize), Count>>,
}

impl Census {
    pub fn new() -> Arc<Census> {
        Arc::default()
    }

    /// Records what `operator` holds on `worker` now.
    pub fn set(&self, operator: &str, worker: usize, count: Count) {
        let mut counts = self.lock();
        match counts.get_mut(&(operator.to_string(), worker)) {
            Some(c) => *c = count,
            None => {
                counts.insert((operator.to_string(), worker), count);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, usize), Count>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every operator's counts summed over workers, by name.
    pub fn totals(&self) -> BTreeMap<String, Count> {
        let mut out: BTreeMap<String, Count> = BTreeMap::new();
        for ((name, _), c) in self.lock().iter() {
            *out.entry(name.clone()).or_default() += *c;
        }
        out
    }
}

thread_local! {
    static COUNTING: RefCell<Option<Arc<Census>>> = const { RefCell::new(None) };
}

/// Runs `build` (the construction of a worker's dataflows) with `census` visible to the keyed
/// operators built in it.
pub fn counting<R>(census: &Arc<Census>, build: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            COUNTING.with(|c| c.borrow_mut().take());
        }
    }
    COUNTING.with(|c| *c.borrow_mut() = Some(census.clone()));
    let _reset = Reset;
    build()
}

/// The census of the dataflows under construction on this thread, if any.
pub(crate) fn current() -> Option<Arc<Census>> {
    COUNTING.with(|c| c.borrow().clone())
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
        c.set("A", 0, n(3));
        c.set("A", 1, n(4));
        c.set("B", 0, n(1));
        c.set("A", 0, n(5));
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
