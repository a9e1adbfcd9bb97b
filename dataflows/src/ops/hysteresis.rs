//! [`Hysteresis`]: a low-value condition with a hold time to enter and a margin to leave, as a
//! small state machine used inside a `KeyedLogic`.
//!
//! While inactive, it is a [`Debounce`] of `value < enter_below`: a run starts at the first sample
//! below, any sample at or above cancels it, and it becomes active at `run start + hold` (the
//! [`Hysteresis::deadline`] to set as timer). While active, only a sample with
//! `value > exit_above` ends it (at that sample); samples in `[enter_below, exit_above]` keep it,
//! so a value hovering at the threshold does not flap. The sample that ends it does not start a
//! new run. An `exit_above` below `enter_below` is raised to it. NaN compares as neither below
//! nor above: it cancels a pending run and keeps an active condition.

use super::debounce::{Change, Debounce};
use crate::prelude::Time;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Hysteresis {
    enter_below: f64,
    exit_above: f64,
    debounce: Debounce,
}

impl Hysteresis {
    pub fn new(enter_below: f64, exit_above: f64, hold: Time) -> Self {
        Hysteresis {
            enter_below,
            exit_above: exit_above.max(enter_below),
            debounce: Debounce::new(hold),
        }
    }

    /// A sample of `value` at `t`.
    pub fn update(&mut self, t: Time, value: f64) -> Option<Change> {
        if !self.debounce.is_active() {
            return self.debounce.update(t, value < self.enter_below);
        }
        if value > self.exit_above {
            self.debounce.reset();
            return Some(Change::Ended);
        }
        None
    }

    /// The timer at `t`: becomes active if the run below has lasted the hold time.
    pub fn timer(&mut self, t: Time) -> Option<Change> {
        self.debounce.timer(t)
    }

    pub fn is_active(&self) -> bool {
        self.debounce.is_active()
    }

    /// Start of the current run below `enter_below` (pending or active).
    pub fn since(&self) -> Option<Time> {
        self.debounce.since()
    }

    /// When the pending run becomes active (the timer to set), if one is pending.
    pub fn deadline(&self) -> Option<Time> {
        self.debounce.deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enters_after_the_hold_and_leaves_only_above_the_margin() {
        let mut h = Hysteresis::new(0.2, 0.25, 100);
        assert_eq!(h.update(0, 0.5), None);
        assert_eq!(h.update(10, 0.19), None);
        assert_eq!((h.since(), h.deadline()), (Some(10), Some(110)));
        assert_eq!(h.timer(110), Some(Change::Started));
        assert!(h.is_active());
        // Within the band, or back below: kept, no change.
        assert_eq!(h.update(120, 0.2), None);
        assert_eq!(h.update(130, 0.25), None);
        assert_eq!(h.update(140, 0.1), None);
        assert_eq!(h.update(150, f64::NAN), None);
        assert!(h.is_active());
        assert_eq!(h.since(), Some(10));
        assert_eq!(h.update(160, 0.2501), Some(Change::Ended));
        assert!(!h.is_active());
        assert_eq!((h.since(), h.deadline()), (None, None));
    }

    #[test]
    fn a_value_at_the_threshold_cancels_a_pending_run() {
        let mut h = Hysteresis::new(0.2, 0.25, 100);
        h.update(0, 0.1);
        assert_eq!(h.update(50, 0.2), None);
        assert_eq!(h.timer(100), None);
        h.update(60, 0.1);
        h.update(70, f64::NAN);
        assert_eq!(h.deadline(), None);
        // A new run starts at the next sample below.
        h.update(80, 0.15);
        assert_eq!(h.deadline(), Some(180));
        assert_eq!(h.update(180, 0.15), Some(Change::Started));
    }

    #[test]
    fn an_exit_below_the_entry_is_raised_to_it() {
        let mut h = Hysteresis::new(0.2, 0.1, 0);
        assert_eq!(h.update(0, 0.15), Some(Change::Started));
        // 0.15 > 0.1 would end it with an inverted band; raised to 0.2 it stays.
        assert_eq!(h.update(10, 0.15), None);
        assert_eq!(h.update(20, 0.2), None);
        assert_eq!(h.update(30, 0.21), Some(Change::Ended));
    }
}
