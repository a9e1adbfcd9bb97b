//! The clock of scheduled tasks: the wall clock, or (test hook) a fake one that is a pure
//! function of the wall clock, so that it goes on consistently across restarts of the process:
//! `--test-clock start=<RFC 3339>,origin=<unix ms>,rate=<x>` (env `RMF_DASH_TEST_CLOCK`, hidden
//! from `--help`) reads `start + (wall - origin) * rate`.

use std::time::Duration;

use super::ScheduleError;

#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    fake: Option<Fake>,
}

#[derive(Debug, Clone, Copy)]
struct Fake {
    start_ms: i64,
    origin_ms: i64,
    rate: f64,
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Clock {
    /// The wall clock.
    pub fn wall() -> Clock {
        Clock { fake: None }
    }

    /// Parses the test hook's `start=...,origin=...,rate=...`.
    pub fn parse_fake(spec: &str) -> Result<Clock, ScheduleError> {
        let bad = |m: &str| ScheduleError::Invalid(format!("--test-clock: {m}"));
        let (mut start, mut origin, mut rate) = (None, None, 1.0);
        for part in spec.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad("expected key=value pairs"))?;
            match k.trim() {
                "start" => start = Some(super::parse_datetime(v)?),
                "origin" => origin = Some(v.trim().parse::<i64>().map_err(|_| bad("bad origin"))?),
                "rate" => rate = v.trim().parse::<f64>().map_err(|_| bad("bad rate"))?,
                _ => return Err(bad("unknown key")),
            }
        }
        if !(rate.is_finite() && rate > 0.0 && rate <= 1e7) {
            return Err(bad("rate must be in (0, 1e7]"));
        }
        Ok(Clock {
            fake: Some(Fake {
                start_ms: start.ok_or_else(|| bad("start is required"))?,
                origin_ms: origin.unwrap_or_else(wall_ms),
                rate,
            }),
        })
    }

    pub fn is_fake(&self) -> bool {
        self.fake.is_some()
    }

    /// Now, in unix ms.
    pub fn now_ms(&self) -> i64 {
        match self.fake {
            None => wall_ms(),
            Some(f) => f.start_ms + ((wall_ms() - f.origin_ms) as f64 * f.rate) as i64,
        }
    }

    /// The real time `ms` of this clock's time take.
    pub fn real(&self, ms: i64) -> Duration {
        let ms = ms.max(0) as f64;
        let real = match self.fake {
            None => ms,
            Some(f) => ms / f.rate,
        };
        Duration::from_micros((real * 1000.0).min(1e12) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_clock_is_a_function_of_the_wall_clock() {
        let origin = wall_ms() - 2000;
        let c = Clock::parse_fake(&format!(
            "start=2026-03-29T00:00:00Z,origin={origin},rate=60"
        ))
        .unwrap();
        let start = super::super::parse_datetime("2026-03-29T00:00:00Z").unwrap();
        assert!(c.now_ms() >= start + 120_000);
        assert_eq!(c.real(60_000), Duration::from_secs(1));
        assert!(Clock::parse_fake("rate=2").is_err());
        assert!(Clock::parse_fake("start=x").is_err());
    }
}
