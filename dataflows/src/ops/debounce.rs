//! [`Debounce`]: a condition that counts only once it has held continuously for a hold time, as a
//! small state machine used inside a `KeyedLogic`.
//!
//! Each sample says whether the condition holds. A run starts at the first sample where it holds;
//! the condition becomes *active* at `run start + hold` (the [`Debounce::deadline`] the logic sets
//! as its timer, so it activates even with no sample in between), or at a sample at or after that
//! time. Any sample where it does not hold ends the run (and an active condition). A sample exactly
//! at the deadline is handled before the timer of that time: if it breaks the run, the condition
//! never becomes active. With a hold of 0 the condition is active from the first sample.

use crate::prelude::Time;

/// How a condition changed at a sample or a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Started,
    Ended,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Debounce {
    hold: Time,
    /// Start of the current run of samples where the condition holds.
    since: Option<Time>,
    active: bool,
}

impl Debounce {
    pub fn new(hold: Time) -> Self {
        Debounce {
            hold,
            since: None,
            active: false,
        }
    }

    /// A sample at `t` where the condition `holds` or not.
    pub fn update(&mut self, t: Time, holds: bool) -> Option<Change> {
        if !holds {
            self.since = None;
            return std::mem::take(&mut self.active).then_some(Change::Ended);
        }
        self.since.get_or_insert(t);
        self.timer(t)
    }

    /// The timer at `t`: the condition becomes active if its run has lasted `hold`.
    pub fn timer(&mut self, t: Time) -> Option<Change> {
        let due = self.deadline().is_some_and(|d| t >= d);
        self.active |= due;
        due.then_some(Change::Started)
    }

    /// Forgets the run and the activation (no change is reported).
    pub fn reset(&mut self) {
        self.since = None;
        self.active = false;
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Start of the current run, if the condition holds (active or not yet).
    pub fn since(&self) -> Option<Time> {
        self.since
    }

    /// When the current run becomes active (the timer to set); `None` when there is no run or it
    /// is already active.
    pub fn deadline(&self) -> Option<Time> {
        self.since
            .filter(|_| !self.active)
            .map(|s| s.saturating_add(self.hold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_after_holding_for_the_hold_time() {
        let mut d = Debounce::new(100);
        assert_eq!(d.deadline(), None);
        assert_eq!(d.update(10, true), None);
        assert_eq!((d.since(), d.deadline()), (Some(10), Some(110)));
        // Later samples where it holds do not move the run's start.
        assert_eq!(d.update(50, true), None);
        assert_eq!(d.deadline(), Some(110));
        assert_eq!(d.timer(109), None);
        assert_eq!(d.timer(110), Some(Change::Started));
        assert!(d.is_active());
        assert_eq!(d.deadline(), None);
        // Started is reported once.
        assert_eq!(d.timer(200), None);
        assert_eq!(d.update(200, true), None);
        assert_eq!(d.update(210, false), Some(Change::Ended));
        assert!(!d.is_active());
        assert_eq!(d.since(), None);
    }

    #[test]
    fn a_sample_where_it_does_not_hold_resets_the_run() {
        let mut d = Debounce::new(100);
        d.update(0, true);
        assert_eq!(d.update(90, false), None);
        assert_eq!(d.deadline(), None);
        assert_eq!(d.timer(100), None);
        d.update(95, true);
        assert_eq!(d.deadline(), Some(195));
        // Broken exactly at the deadline (inputs before timers): never active.
        assert_eq!(d.update(195, false), None);
        assert_eq!(d.timer(195), None);
        assert!(!d.is_active());
    }

    #[test]
    fn a_sample_at_or_after_the_deadline_activates() {
        let mut d = Debounce::new(100);
        d.update(0, true);
        assert_eq!(d.update(100, true), Some(Change::Started));
        let mut d = Debounce::new(0);
        assert_eq!(d.update(5, true), Some(Change::Started));
        assert_eq!(d.deadline(), None);
        d.reset();
        assert!(!d.is_active() && d.since().is_none());
    }
}
