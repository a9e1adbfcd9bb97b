//! Which fleet and robot names the engine takes in. Each name an input carries becomes state the
//! engine keeps as long as it runs (the latest input and every derived event's arrangements:
//! about 5 KB a robot, BENCHMARKS.md "memory per tracked entity") and rooms in the hub, so names
//! that keep coming from an adapter (or from anyone who holds its credential) would grow memory
//! without end: 50,000 new fleet names of one robot each took 350 MB.
//!
//! The feeder ([`super::feed`]) therefore admits at most `--max-fleets` fleet names and
//! `--max-robots` robot names (site-wide) over the life of the process, from every source. An
//! input naming a fleet or a robot beyond the bound (a robot of a fleet that was not admitted
//! included) is dropped before the engine, counted by the kind of input dropped
//! (`rmf_dash_names_refused_total{kind="fleet|robot"}`) and warned about with its source and the
//! name over the bound (at most one warning per 10 s, giving the number left out). Names already
//! admitted always pass, and are never forgotten (the engine keeps what it learnt of them).
//! After a restart the count starts over from what arrives: restored entities count again when
//! they are next sent.
//!
//! Task and alert ids are not bounded here (they come and go with the work; what ended leaves
//! memory after a retention: issue 23), nor devices (doors, lifts, ... come from ROS 2 topics
//! only).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmf_dash_dataflows::model::input::{Input, Kind, Name};

use crate::metrics::{self, Metrics};

/// Default of `--max-fleets`.
pub const DEFAULT_MAX_FLEETS: usize = 1_000;
/// Default of `--max-robots`: twice the 10,000-robot site rmf-dash is sized for.
pub const DEFAULT_MAX_ROBOTS: usize = 20_000;
/// Shortest time between two warnings.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// How many names are admitted; 0 leaves a kind unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameBounds {
    /// Fleet names (`--max-fleets`).
    pub max_fleets: usize,
    /// Robot names, site-wide (`--max-robots`).
    pub max_robots: usize,
}

impl Default for NameBounds {
    fn default() -> Self {
        NameBounds {
            max_fleets: DEFAULT_MAX_FLEETS,
            max_robots: DEFAULT_MAX_ROBOTS,
        }
    }
}

impl NameBounds {
    /// No bound (recordings replayed by the command-line tools, benchmarks).
    pub const UNBOUNDED: NameBounds = NameBounds {
        max_fleets: 0,
        max_robots: 0,
    };
}

/// Counters read by `/metrics`.
#[derive(Debug, Default)]
pub struct NameMetrics {
    pub fleets: AtomicU64,
    pub robots: AtomicU64,
    /// Fleet inputs (states, logs) dropped.
    pub refused_fleet: AtomicU64,
    /// Robot inputs dropped.
    pub refused_robot: AtomicU64,
}

impl NameMetrics {
    /// The names held and refused (`/metrics`).
    pub fn write_metrics(&self, m: &mut Metrics) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        m.by(
            "rmf_dash_names",
            "Fleet and robot names the engine took in (bounded by --max-fleets, --max-robots).",
            metrics::Kind::Gauge,
            "kind",
            [("fleet", load(&self.fleets)), ("robot", load(&self.robots))],
        );
        m.by(
            "rmf_dash_names_refused_total",
            "Inputs dropped because they named a fleet or robot beyond --max-fleets or --max-robots, by the kind of input.",
            metrics::Kind::Counter,
            "kind",
            [
                ("fleet", load(&self.refused_fleet)),
                ("robot", load(&self.refused_robot)),
            ],
        );
    }
}

/// The name an input was refused for.
#[derive(Debug, PartialEq, Eq)]
enum Over<'a> {
    Fleet(&'a str),
    Robot(&'a str),
}

/// The names admitted so far (owned by the feeder thread).
pub struct Admission {
    bounds: NameBounds,
    fleets: HashSet<Name>,
    robots: HashSet<Name>,
    last_warn: Option<Instant>,
    left_out: u64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(NameBounds::UNBOUNDED)
    }
}

impl Admission {
    pub fn new(bounds: NameBounds) -> Self {
        Admission {
            bounds,
            fleets: HashSet::new(),
            robots: HashSet::new(),
            last_warn: None,
            left_out: 0,
        }
    }

    /// Drops from `inputs` (of one record from `source`) those naming a fleet or a robot beyond
    /// the bounds.
    pub fn admit(&mut self, inputs: &mut Vec<Input>, source: &str, metrics: &NameMetrics) {
        if self.bounds == NameBounds::UNBOUNDED {
            return;
        }
        inputs.retain(|((kind, name), _)| {
            let over = match kind {
                Kind::Fleet | Kind::FleetLog => self.fleet(name, metrics).err(),
                Kind::Robot(_) => self.robot(name, metrics).err(),
                _ => None,
            };
            let Some(over) = over else {
                return true;
            };
            let counter = match kind {
                Kind::Robot(_) => &metrics.refused_robot,
                _ => &metrics.refused_fleet,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.warn(source, &over);
            false
        });
    }

    /// Admits the fleet `name` if it is known or the bound allows.
    fn fleet<'a>(&mut self, name: &'a str, metrics: &NameMetrics) -> Result<(), Over<'a>> {
        let max = self.bounds.max_fleets;
        if max == 0 || self.fleets.contains(name) {
            return Ok(());
        }
        if self.fleets.len() >= max {
            return Err(Over::Fleet(name));
        }
        self.fleets.insert(Name::from(name));
        metrics
            .fleets
            .store(self.fleets.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Admits the robot `name` (`fleet/robot`) if it is known, or if its fleet is admitted and
    /// the bound allows.
    fn robot<'a>(&mut self, name: &'a Name, metrics: &NameMetrics) -> Result<(), Over<'a>> {
        if self.robots.contains(name) {
            return Ok(());
        }
        let fleet = name.split('/').next().unwrap_or_default();
        self.fleet(fleet, metrics)?;
        let max = self.bounds.max_robots;
        if max == 0 {
            return Ok(());
        }
        if self.robots.len() >= max {
            return Err(Over::Robot(name));
        }
        self.robots.insert(name.clone());
        metrics
            .robots
            .store(self.robots.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn warn(&mut self, source: &str, over: &Over) {
        let now = Instant::now();
        if self.last_warn.is_some_and(|t| now - t < WARN_EVERY) {
            self.left_out += 1;
            return;
        }
        self.last_warn = Some(now);
        let left_out = std::mem::take(&mut self.left_out);
        match over {
            Over::Fleet(fleet) => tracing::warn!(
                source,
                fleet,
                max_fleets = self.bounds.max_fleets,
                left_out,
                "input of a new fleet dropped: --max-fleets fleet names are known"
            ),
            Over::Robot(robot) => tracing::warn!(
                source,
                robot,
                max_robots = self.bounds.max_robots,
                left_out,
                "input of a new robot dropped: --max-robots robot names are known"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmf_dash_dataflows::model::input::{InputValue, Payload, RobotSource};

    fn fleet(name: &str) -> Input {
        (
            (Kind::Fleet, Name::from(name)),
            InputValue::Payload(Payload("{}".into())),
        )
    }

    fn robot(name: &str) -> Input {
        (
            (Kind::Robot(RobotSource::Api), Name::from(name)),
            InputValue::Payload(Payload("{}".into())),
        )
    }

    fn names(inputs: &[Input]) -> Vec<&str> {
        inputs.iter().map(|((_, n), _)| n.as_str()).collect()
    }

    #[test]
    fn names_beyond_the_bounds_are_dropped_and_counted_known_ones_pass() {
        let metrics = NameMetrics::default();
        let mut a = Admission::new(NameBounds {
            max_fleets: 2,
            max_robots: 3,
        });
        let mut frame = vec![fleet("f1"), robot("f1/r1"), robot("f1/r2")];
        a.admit(&mut frame, "internal", &metrics);
        assert_eq!(frame.len(), 3);
        // A robot's fleet is admitted with it (ROS fleet states have no fleet input).
        let mut frame = vec![robot("f2/r1"), robot("f2/r2"), fleet("f2")];
        a.admit(&mut frame, "ros", &metrics);
        assert_eq!(names(&frame), ["f2/r1", "f2"], "the 4th robot is over");
        let mut frame = vec![fleet("f3"), robot("f3/r1"), robot("f1/r1"), fleet("f1")];
        a.admit(&mut frame, "internal", &metrics);
        assert_eq!(names(&frame), ["f1/r1", "f1"], "known names always pass");
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(
            [
                &metrics.fleets,
                &metrics.robots,
                &metrics.refused_fleet,
                &metrics.refused_robot
            ]
            .map(load),
            [2, 3, 1, 2]
        );
        let mut m = Metrics::new();
        metrics.write_metrics(&mut m);
        let out = m.text();
        assert!(
            out.contains("rmf_dash_names_refused_total{kind=\"robot\"} 2\n"),
            "{out}"
        );
    }

    #[test]
    fn unbounded_admits_everything_and_keeps_nothing() {
        let metrics = NameMetrics::default();
        let mut a = Admission::default();
        let mut frame: Vec<Input> = (0..100).map(|i| fleet(&format!("f{i}"))).collect();
        a.admit(&mut frame, "replay", &metrics);
        assert_eq!(frame.len(), 100);
        assert!(a.fleets.is_empty());
    }
}
