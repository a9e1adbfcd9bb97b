//! Logical time: receive time in milliseconds, rounded up to the engine's tick and made
//! monotone (DESIGN.md invariant 1).

use rmf_dash_dataflows::prelude::Time;

/// Maps receive times (ns) to logical times.
#[derive(Debug, Clone)]
pub struct Clock {
    tick_ms: u64,
    last: Time,
}

impl Clock {
    /// `tick_ms`: the granularity of logical time (default 10 ms); at least 1.
    pub fn new(tick_ms: u64) -> Self {
        Clock {
            tick_ms: tick_ms.max(1),
            last: 0,
        }
    }

    pub fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    /// The logical time of a receive time: milliseconds rounded up to the tick, never earlier
    /// than a previous one.
    pub fn time_of(&mut self, ns: u64) -> Time {
        self.last = self.last.max(Self::logical(ns, self.tick_ms));
        self.last
    }

    /// A receive time (ns) in ms rounded up to a tick of `tick_ms`.
    pub fn logical(ns: u64, tick_ms: u64) -> Time {
        let tick_ms = tick_ms.max(1);
        ns.div_ceil(1_000_000).div_ceil(tick_ms) * tick_ms
    }

    /// The last logical time handed out.
    pub fn now(&self) -> Time {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_to_the_tick_and_never_goes_back() {
        let mut c = Clock::new(10);
        assert_eq!(c.time_of(1_000_000_000), 1000);
        assert_eq!(c.time_of(1_000_000_001), 1010);
        assert_eq!(c.time_of(1_009_999_999), 1010);
        assert_eq!(c.time_of(1_010_000_001), 1020);
        // An older stamp does not move time back.
        assert_eq!(c.time_of(5_000_000), 1020);
        assert_eq!(Clock::new(0).tick_ms(), 1);
    }
}
