//! Event-time windows as small state machines, used inside a `KeyedLogic`: [`Tumbling`] windows
//! `[k*w, (k+1)*w)` aligned to multiples of the width in logical ms, and a [`Sliding`] window over
//! `(t - w, t]`. Both fold their events into an [`Aggregate`] and say which timer the logic should
//! set (the window end, the next expiry), so the logic's output changes exactly when the window
//! does. A width of 0 is taken as 1 ms (a window never divides by zero nor stays empty forever).

use std::collections::VecDeque;

use crate::prelude::Time;

/// What a window folds its events into. `remove` undoes an `add` of the same item (a sliding
/// window removes what expires); a tumbling window only adds and starts again from `default()`.
pub trait Aggregate: Default {
    type Item;
    fn add(&mut self, item: &Self::Item);
    fn remove(&mut self, item: &Self::Item);
}

/// The count and the sum of `u64` values (e.g. durations), with their mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CountSum {
    pub count: u64,
    /// Wide enough that no sum of `u64` values a window can hold overflows.
    pub sum: u128,
}

impl CountSum {
    /// The mean rounded half up, `None` when empty.
    pub fn mean(&self) -> Option<u64> {
        let n = u128::from(self.count);
        if n == 0 {
            return None;
        }
        // floor(sum / n + 1/2) = floor((2 sum + n) / 2n); the mean of u64 values fits in a u64.
        let mean = (self.sum.saturating_mul(2).saturating_add(n)) / (2 * n);
        Some(u64::try_from(mean).unwrap_or(u64::MAX))
    }
}

impl Aggregate for CountSum {
    type Item = u64;

    fn add(&mut self, item: &u64) {
        self.count = self.count.saturating_add(1);
        self.sum = self.sum.saturating_add(u128::from(*item));
    }

    fn remove(&mut self, item: &u64) {
        self.count = self.count.saturating_sub(1);
        self.sum = self.sum.saturating_sub(u128::from(*item));
    }
}

/// The number of events in the window (e.g. `Sliding<Count>`: how many times something happened
/// in the last `width` ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Count(pub u64);

impl Aggregate for Count {
    type Item = ();

    fn add(&mut self, _: &()) {
        self.0 = self.0.saturating_add(1);
    }

    fn remove(&mut self, _: &()) {
        self.0 = self.0.saturating_sub(1);
    }
}

/// A tumbling window: the aggregate of the events of the current window `[start, end)`, where
/// windows are aligned to multiples of the width. Rolling to a time of another window starts that
/// window from an empty aggregate; `end()` is the timer to set to roll at the boundary.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Tumbling<A> {
    width: Time,
    start: Time,
    aggregate: A,
}

impl<A: Aggregate> Tumbling<A> {
    /// An empty window `[0, width)`.
    pub fn new(width: Time) -> Self {
        Tumbling {
            width: width.max(1),
            start: 0,
            aggregate: A::default(),
        }
    }

    /// Makes the current window the one containing `t`; returns whether it changed (the aggregate
    /// is then empty).
    pub fn roll(&mut self, t: Time) -> bool {
        let start = t - t % self.width;
        if start == self.start {
            return false;
        }
        self.start = start;
        self.aggregate = A::default();
        true
    }

    /// Adds an event at `t` to the window containing `t` (rolling to it first).
    pub fn add(&mut self, t: Time, item: &A::Item) {
        self.roll(t);
        self.aggregate.add(item);
    }

    pub fn start(&self) -> Time {
        self.start
    }

    /// The end of the current window (exclusive): the timer at which to roll.
    pub fn end(&self) -> Time {
        self.start.saturating_add(self.width)
    }

    pub fn width(&self) -> Time {
        self.width
    }

    pub fn aggregate(&self) -> &A {
        &self.aggregate
    }
}

/// A sliding window: the aggregate of the events at times in `(now - width, now]`. An event at
/// `t` leaves the window at `t + width`; `next_expiry()` is the timer to set.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "A: serde::Serialize, A::Item: serde::Serialize",
    deserialize = "A: serde::Deserialize<'de>, A::Item: serde::Deserialize<'de>"
))]
pub struct Sliding<A: Aggregate> {
    width: Time,
    events: VecDeque<(Time, A::Item)>,
    aggregate: A,
}

impl<A: Aggregate> Sliding<A> {
    pub fn new(width: Time) -> Self {
        Sliding {
            width: width.max(1),
            events: VecDeque::new(),
            aggregate: A::default(),
        }
    }

    /// Removes the events that left the window at `now` (those at or before `now - width`);
    /// returns whether any did.
    pub fn expire(&mut self, now: Time) -> bool {
        let mut expired = false;
        while let Some((t, _)) = self.events.front() {
            if t.saturating_add(self.width) > now {
                break;
            }
            if let Some((_, item)) = self.events.pop_front() {
                self.aggregate.remove(&item);
                expired = true;
            }
        }
        expired
    }

    /// Adds an event at `t`, first expiring what left the window at `t`. Events are expected in
    /// time order; an earlier one is still kept in order.
    pub fn add(&mut self, t: Time, item: A::Item) {
        self.expire(t);
        self.aggregate.add(&item);
        let at = self.events.partition_point(|(e, _)| *e <= t);
        self.events.insert(at, (t, item));
    }

    /// When the oldest event leaves the window, if any is in it.
    pub fn next_expiry(&self) -> Option<Time> {
        self.events
            .front()
            .map(|(t, _)| t.saturating_add(self.width))
    }

    pub fn width(&self) -> Time {
        self.width
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn aggregate(&self) -> &A {
        &self.aggregate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_follows_the_window() {
        let mut w: Sliding<Count> = Sliding::new(100);
        for t in [10, 20, 110] {
            w.add(t, ());
        }
        // 10 left at 110: (10, 110] holds 20 and 110.
        assert_eq!(*w.aggregate(), Count(2));
        assert_eq!(w.next_expiry(), Some(120));
        w.expire(210);
        assert_eq!(*w.aggregate(), Count(0));
        let mut t: Tumbling<Count> = Tumbling::new(100);
        t.add(5, &());
        t.add(7, &());
        assert_eq!(*t.aggregate(), Count(2));
    }

    #[test]
    fn mean_rounds_half_up() {
        let mut c = CountSum::default();
        assert_eq!(c.mean(), None);
        c.add(&1);
        c.add(&2);
        assert_eq!(c.mean(), Some(2)); // 1.5
        c.add(&2);
        assert_eq!(c.mean(), Some(2)); // 1.67
        c.remove(&2);
        c.remove(&2);
        assert_eq!(c.mean(), Some(1));
        c.remove(&1);
        assert_eq!((c.count, c.sum, c.mean()), (0, 0, None));
    }

    #[test]
    fn mean_of_huge_values_does_not_overflow() {
        let mut c = CountSum::default();
        c.add(&u64::MAX);
        c.add(&u64::MAX);
        c.add(&(u64::MAX - 1));
        assert_eq!(c.mean(), Some(u64::MAX));
    }

    #[test]
    fn tumbling_windows_are_aligned_and_roll_at_their_end() {
        let mut w: Tumbling<CountSum> = Tumbling::new(60);
        w.add(70, &5);
        assert_eq!((w.start(), w.end()), (60, 120));
        w.add(119, &7);
        assert_eq!(w.aggregate().count, 2);
        assert!(!w.roll(119));
        // The end belongs to the next window, which starts empty.
        assert!(w.roll(120));
        assert_eq!((w.start(), w.end(), w.aggregate().count), (120, 180, 0));
        w.add(120, &1);
        // A gap of several windows goes straight to the window containing the time.
        w.add(400, &3);
        assert_eq!((w.start(), w.end()), (360, 420));
        assert_eq!(*w.aggregate(), CountSum { count: 1, sum: 3 });
    }

    #[test]
    fn tumbling_of_zero_width_is_one_ms() {
        let mut w: Tumbling<CountSum> = Tumbling::new(0);
        w.add(5, &1);
        assert_eq!((w.width(), w.start(), w.end()), (1, 5, 6));
        let mut w: Tumbling<CountSum> = Tumbling::new(10);
        w.add(u64::MAX, &1);
        assert_eq!(w.end(), u64::MAX);
    }

    #[test]
    fn sliding_keeps_events_within_the_width() {
        let mut w: Sliding<CountSum> = Sliding::new(100);
        assert_eq!(w.next_expiry(), None);
        w.add(10, 1);
        w.add(50, 2);
        w.add(50, 3);
        assert_eq!(w.next_expiry(), Some(110));
        assert!(!w.expire(109));
        assert_eq!(w.aggregate().count, 3);
        // (110 - 100, 110] excludes the event at 10.
        assert!(w.expire(110));
        assert_eq!(*w.aggregate(), CountSum { count: 2, sum: 5 });
        assert_eq!(w.next_expiry(), Some(150));
        // Adding at 150 first expires both events at 50.
        w.add(150, 4);
        assert_eq!(*w.aggregate(), CountSum { count: 1, sum: 4 });
        assert_eq!((w.len(), w.next_expiry()), (1, Some(250)));
        assert!(w.expire(1000));
        assert!(w.is_empty());
        assert_eq!(*w.aggregate(), CountSum::default());
    }

    #[test]
    fn sliding_keeps_a_late_event_in_time_order() {
        let mut w: Sliding<CountSum> = Sliding::new(100);
        w.add(50, 1);
        w.add(20, 2);
        assert_eq!(w.next_expiry(), Some(120));
        w.expire(120);
        assert_eq!(*w.aggregate(), CountSum { count: 1, sum: 1 });
    }
}
