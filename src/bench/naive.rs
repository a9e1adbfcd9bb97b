//! The naive baseline of the engine figures: what a backend without incremental computation does.
//! On every tick it applies the tick's inputs to the full current state, then recomputes every
//! derived event of every entity from that state (health of every device and robot, battery low,
//! stuck, door held open, every fleet's task queue and throughput) and diffs the result with the
//! previous tick's. It computes the same kinds of values as the registered events, simplified (it
//! is a cost baseline, not an output reference).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rmf_dash_dataflows::model::input::{InputValue, Kind, Name, RobotStatus};
use rmf_dash_dataflows::prelude::Time;

use super::engine::Prepared;

#[derive(Default)]
struct Robot {
    last_heard: Time,
    status: Option<RobotStatus>,
    mode: Option<u32>,
    issues: usize,
    batteries: VecDeque<(Time, f64)>,
    positions: VecDeque<(Time, f64, f64)>,
}

#[derive(Default)]
struct Device {
    last_heard: Time,
    mode: i64,
    open_since: Option<Time>,
}

#[derive(Default)]
struct Task {
    fleet: Name,
    status: Name,
    start: Option<u64>,
    finish: Option<u64>,
    terminal_at: Option<Time>,
}

/// Runs the naive recomputation over the prepared batches; returns the wall time.
pub fn run(p: &Prepared) -> Duration {
    let mut robots: HashMap<Name, Robot> = HashMap::new();
    let mut devices: HashMap<(Kind, Name), Device> = HashMap::new();
    let mut tasks: HashMap<Name, Task> = HashMap::new();
    let mut previous: HashMap<String, String> = HashMap::new();
    let start = Instant::now();
    for (t, batch) in &p.batches {
        let t = *t;
        for ((kind, name), value) in batch {
            match value {
                InputValue::Robot(s) => {
                    let r = robots.entry(name.clone()).or_default();
                    r.last_heard = t;
                    if s.status.is_some() {
                        r.status = s.status;
                        r.issues = s.issues.len();
                    }
                    if s.mode.is_some() {
                        r.mode = s.mode;
                    }
                    if let Some(b) = s.battery {
                        r.batteries.push_back((t, b.0));
                    }
                    r.positions.push_back((t, s.x.0, s.y.0));
                }
                InputValue::Device(d) => {
                    let dev = devices.entry((*kind, name.clone())).or_default();
                    dev.last_heard = t;
                    dev.mode = d.mode;
                    dev.open_since = (d.mode == 2).then(|| dev.open_since.unwrap_or(t));
                }
                InputValue::Lift(l) => {
                    let dev = devices.entry((*kind, name.clone())).or_default();
                    dev.last_heard = t;
                    dev.mode = i64::from(l.mode);
                }
                InputValue::Task(s) => {
                    let task = tasks.entry(name.clone()).or_default();
                    let terminal = matches!(s.status.as_str(), "completed" | "failed");
                    if terminal && task.terminal_at.is_none() {
                        task.terminal_at = Some(t);
                    }
                    task.fleet = s.fleet.clone();
                    task.status = s.status.clone();
                    task.start = s.start_ms;
                    task.finish = s.finish_ms;
                }
                _ => {}
            }
        }
        // Recompute everything from the current state.
        let mut now: HashMap<String, String> = HashMap::with_capacity(previous.len());
        for ((kind, name), d) in &devices {
            let health = if t >= d.last_heard + 10_000 {
                "Dead"
            } else if matches!(
                (kind, d.mode),
                (Kind::Door, 3 | 4) | (Kind::Lift, 3..=5) | (Kind::Dispenser | Kind::Ingestor, 2)
            ) {
                "Unhealthy"
            } else {
                "Healthy"
            };
            now.insert(format!("/{kind:?}/{name}/health"), health.to_string());
            if d.open_since.is_some_and(|s| t >= s + 60_000) {
                now.insert(format!("/doors/{name}/held_open"), String::new());
            }
        }
        for (name, r) in robots.iter_mut() {
            while r.batteries.front().is_some_and(|(bt, _)| *bt + 30_000 < t) {
                r.batteries.pop_front();
            }
            while r
                .positions
                .front()
                .is_some_and(|(pt, _, _)| *pt + 60_000 < t)
            {
                r.positions.pop_front();
            }
            let unhealthy = matches!(r.status, Some(RobotStatus::Error | RobotStatus::Offline))
                || r.issues > 0
                || matches!(r.mode, Some(5 | 8));
            let health = if t >= r.last_heard + 10_000 {
                "Dead"
            } else if unhealthy {
                "Unhealthy"
            } else {
                "Healthy"
            };
            now.insert(format!("/robots/{name}/health"), health.to_string());
            if !r.batteries.is_empty() && r.batteries.iter().all(|(_, b)| *b < 0.2) {
                now.insert(format!("/robots/{name}/battery_low"), String::new());
            }
            if r.status == Some(RobotStatus::Working)
                && let Some((_, x0, y0)) = r.positions.front()
                && r.positions
                    .iter()
                    .all(|(_, x, y)| (x - x0).hypot(y - y0) < 0.2)
            {
                now.insert(format!("/robots/{name}/stuck"), String::new());
            }
        }
        let mut queues: HashMap<&Name, Vec<(Option<u64>, &Name)>> = HashMap::new();
        let mut throughput: HashMap<&Name, (u64, u64, u64)> = HashMap::new();
        for (id, task) in &tasks {
            if matches!(task.status.as_str(), "queued" | "underway") {
                queues
                    .entry(&task.fleet)
                    .or_default()
                    .push((task.start, id));
            }
            if task.terminal_at.is_some_and(|at| at + 900_000 > t) {
                let e = throughput.entry(&task.fleet).or_default();
                e.0 += 1;
                e.1 += task
                    .finish
                    .unwrap_or(0)
                    .saturating_sub(task.start.unwrap_or(0));
                e.2 += u64::from(task.status.as_str() == "failed");
            }
        }
        for (fleet, mut q) in queues {
            q.sort();
            now.insert(format!("/fleets/{fleet}/task_queue"), format!("{q:?}"));
        }
        for (fleet, (n, total, failed)) in throughput {
            now.insert(
                format!("/fleets/{fleet}/throughput_15m"),
                format!("{n} {total} {failed}"),
            );
        }
        // Diff with the previous tick.
        let mut changes = 0usize;
        for (room, value) in &now {
            if previous.get(room) != Some(value) {
                changes += 1;
            }
        }
        changes += previous.keys().filter(|k| !now.contains_key(*k)).count();
        std::hint::black_box(changes);
        previous = now;
    }
    start.elapsed()
}
