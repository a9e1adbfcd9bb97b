//! [`Liveness`]: whether an entity is still heard from, as a small state machine used inside a
//! `KeyedLogic`.
//!
//! Hearing from the entity at `t` sets its deadline to `t + window` (the timer the logic sets);
//! once the deadline is reached with nothing heard in between, it is dead until heard again. A
//! message exactly at the deadline keeps it alive, because a key's inputs of a time are handled
//! before its timer of that time (and the new deadline replaces the timer). A window of 0 is taken
//! as 1 ms (an entity is alive at least at the time it is heard).
//!
//! "Heard" is a new input of the keyed process: a value re-sent identical to the key's current
//! one is consolidated away and is not heard (a duplicate, not a heartbeat). Real messages carry
//! a stamp, so feed the logic values that keep it (not a projection such as a mode alone, whose
//! repeats would cancel out).

use crate::prelude::Time;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Liveness {
    window: Time,
    /// The time it is dead from if nothing is heard; `None` until first heard.
    deadline: Option<Time>,
    dead: bool,
}

impl Liveness {
    pub fn new(window: Time) -> Self {
        Liveness {
            window: window.max(1),
            deadline: None,
            dead: false,
        }
    }

    /// Heard from at `t`: alive again; returns the new deadline (the timer to set).
    pub fn heard(&mut self, t: Time) -> Time {
        let deadline = t.saturating_add(self.window);
        self.deadline = Some(deadline);
        self.dead = false;
        deadline
    }

    /// The timer at `t`: returns whether it just died (the deadline is reached, nothing heard).
    pub fn timer(&mut self, t: Time) -> bool {
        let died = !self.dead && self.deadline.is_some_and(|d| t >= d);
        self.dead |= died;
        died
    }

    /// Heard from at least once.
    pub fn seen(&self) -> bool {
        self.deadline.is_some()
    }

    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// When it dies if nothing is heard (`None` when never heard or already dead).
    pub fn deadline(&self) -> Option<Time> {
        self.deadline.filter(|_| !self.dead)
    }

    pub fn window(&self) -> Time {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_exactly_at_the_deadline() {
        let mut l = Liveness::new(100);
        assert!(!l.seen() && !l.is_dead() && l.deadline().is_none());
        // Never heard: a timer does not make it dead.
        assert!(!l.timer(1000));
        assert_eq!(l.heard(10), 110);
        assert!(l.seen());
        assert!(!l.timer(109));
        assert!(l.timer(110));
        assert!(l.is_dead());
        assert_eq!(l.deadline(), None);
        // Dying is reported once.
        assert!(!l.timer(200));
    }

    #[test]
    fn heard_again_revives_and_moves_the_deadline() {
        let mut l = Liveness::new(100);
        l.heard(0);
        // Heard exactly at the deadline (inputs come before the timer): alive, new deadline.
        assert_eq!(l.heard(100), 200);
        assert!(!l.timer(150));
        assert!(l.timer(200));
        assert_eq!(l.heard(500), 600);
        assert!(!l.is_dead());
        assert_eq!(l.deadline(), Some(600));
    }

    #[test]
    fn zero_window_is_one_ms_and_the_deadline_saturates() {
        let mut l = Liveness::new(0);
        assert_eq!(l.window(), 1);
        assert_eq!(l.heard(10), 11);
        assert!(!l.timer(10));
        assert!(l.timer(11));
        let mut l = Liveness::new(100);
        assert_eq!(l.heard(Time::MAX - 1), Time::MAX);
    }
}
