//! Fault injection, for tests only: `RMF_DASH_FAULT_PANIC_ON=<fleet name>` makes a dataflow
//! operator panic on the fleet-state input of that fleet, the way a bug reachable from input
//! would (DESIGN.md invariant 7 says there is none; [`super::recovery`] and the quarantine are the
//! safety net that `tests/quarantine.rs` proves with it).
//!
//! Read once, at the first engine start of the process, with a warning in the log when set. An
//! environment variable rather than a cargo feature (the `fail` crate's failpoints): the tests
//! run the binary that `cargo test --workspace --release` builds, with no feature enabled, and
//! only whoever starts the process can set its environment. Unset, nothing is added to the
//! dataflow. Set, one pass-through operator on the engine's input (first worker) checks each
//! update; the engine's fingerprint says so, so that no snapshot crosses between a run with and
//! a run without it (the operator shifts the addresses of the others).

use std::sync::OnceLock;

use rmf_dash_dataflows::model::input::{Input, Kind};
use rmf_dash_dataflows::prelude::Coll;

/// The environment variable naming the fleet whose state input panics the engine.
pub const ENV: &str = "RMF_DASH_FAULT_PANIC_ON";

/// The fleet named by [`ENV`], if any (read once; logged as a warning the first time).
pub fn target() -> Option<&'static str> {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let target = std::env::var(ENV).ok().filter(|v| !v.is_empty());
            if let Some(fleet) = &target {
                tracing::warn!(
                    fleet,
                    "{ENV} is set: the fleet state of this fleet panics an engine worker \
                     (fault injection for tests; never set it on a site)"
                );
            }
            target
        })
        .as_deref()
}

/// What the engine's fingerprint adds: snapshots of a run with fault injection are not loaded
/// by a run without it, and back.
pub fn fingerprint() -> &'static str {
    if target().is_some() {
        " fault-injection"
    } else {
        ""
    }
}

/// Whether `input` is the fault target's fleet state.
fn hits(input: &Input, fleet: &str) -> bool {
    let ((kind, name), _) = input;
    *kind == Kind::Fleet && name.as_str() == fleet
}

/// `all`, through an operator that panics on an insertion of the target's fleet state (when a
/// target is set).
pub fn inject<'s>(all: Coll<'s, Input>) -> Coll<'s, Input> {
    let Some(fleet) = target() else {
        return all;
    };
    all.inspect(move |(input, time, diff)| {
        if *diff > 0 && hits(input, fleet) {
            panic!("fault injection: the fleet state of {fleet:?} at {time} ({ENV})");
        }
    })
}
