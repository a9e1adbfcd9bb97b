//! What the keyed operators built on a thread report to: the worker's [`Snapshots`] and its
//! [`Census`]. A worker installs them while it builds its dataflows ([`building`]); each keyed
//! operator reads them once, when it is built ([`current`]). An operator built without them
//! (unit tests) neither snapshots nor counts.

use std::cell::RefCell;
use std::sync::Arc;

use super::census::Census;
use super::snapshot::Snapshots;

/// The worker's snapshots and census, as the operators built now see them.
#[derive(Debug, Clone, Default)]
pub struct Reporting {
    pub snapshots: Option<Arc<Snapshots>>,
    pub census: Option<Arc<Census>>,
}

thread_local! {
    static BUILDING: RefCell<Reporting> = RefCell::new(Reporting::default());
}

/// Runs `build` (the construction of a worker's dataflows) with `reporting` visible to the keyed
/// operators built in it.
pub fn building<R>(reporting: Reporting, build: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            BUILDING.with(|b| *b.borrow_mut() = Reporting::default());
        }
    }
    BUILDING.with(|b| *b.borrow_mut() = reporting);
    let _reset = Reset;
    build()
}

/// What the operators under construction on this thread report to.
pub(crate) fn current() -> Reporting {
    BUILDING.with(|b| b.borrow().clone())
}
