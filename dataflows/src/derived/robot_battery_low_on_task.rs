//! `robot_battery_low_on_task`: a robot whose battery is below `threshold` while the task it
//! works on is underway (it may not finish it).
//!
//! Inputs: the robot samples (keyed `fleet/robot`, both sources) and the task states (keyed by
//! task id): a join of two inputs. A robot's *view* is taken from its latest fleet-adapter (Api)
//! sample when it has one (the adapter is authoritative), else from its latest ROS sample: its
//! battery (a sample without one leaves the previous battery) and its task id. It is *low* while
//! that battery is below `threshold` (default 0.3; no hold, no hysteresis: `robot_battery_low` is
//! the debounced condition). The robot's `(task id, battery percent)` is joined with the task's
//! latest status; the record is present while the robot is low, its task id is not empty and that
//! task's latest state says `underway`.
//!
//! Room `/robots/{fleet}/{robot}/battery_low_on_task` (state), value `{"fleet", "robot",
//! "task_id", "battery_percent"}` (`battery_percent` rounded down: the value changes at each
//! percent, not at each sample). Config `[derived.robot_battery_low_on_task]`: `threshold`.
//!
//! Its robot logic runs in the shared robot operator (`Descriptor::robot`): its records carry the
//! task id in `room` and `{robot, percent}` as the value, joined here with the tasks.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;
use crate::ops::keyed::{Ctx, KeyedLogic};
use crate::ops::parts::Part;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Low below this battery level (0.0 to 1.0).
    pub threshold: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config { threshold: 0.3 }
    }
}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        0
    }
}

/// `[derived.robot_battery_low_on_task]`.
const CONFIG: Typed<Config> = Typed::new("robot_battery_low_on_task");

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "robot_battery_low_on_task",
    room: "/robots/{fleet}/{robot}/battery_low_on_task",
    kind: RoomKind::State,
    persistence: Persistence::History,
    inputs: &["robots", "tasks"],
    config: CONFIG.spec(),
    robot: Some(part),
    build,
};

/// What a source last said of a robot: its battery (fraction) and task id.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Said {
    battery: Option<f64>,
    task_id: Name,
}

/// The latest of each source.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    api: Option<Said>,
    ros: Option<Said>,
}

struct Low {
    threshold: f64,
}

impl KeyedLogic for Low {
    type Key = Name;
    type In = RobotSample;
    /// Task id in `room`, `{robot, percent}` as the value.
    type Out = Output;
    type State = State;

    fn input(&self, s: &mut State, _robot: &Name, sample: &RobotSample, _: &mut Ctx<Self::Out>) {
        let said = match sample.source {
            RobotSource::Api => &mut s.api,
            RobotSource::Ros => &mut s.ros,
        };
        let said = said.get_or_insert_with(Said::default);
        if let Some(b) = sample.battery.map(|b| b.0).filter(|b| b.is_finite()) {
            said.battery = Some(b);
        }
        said.task_id = sample.task_id.clone();
    }

    fn output(&self, s: &State, robot: &Name, out: &mut Vec<Self::Out>) {
        let Some(said) = s.api.as_ref().or(s.ros.as_ref()) else {
            return;
        };
        if let Some(b) = said.battery
            && b < self.threshold
            && !said.task_id.is_empty()
        {
            let percent = (b * 100.0).floor().clamp(0.0, 100.0) as u32;
            out.push(Output::json(
                said.task_id.to_string(),
                &json!({"robot": robot, "percent": percent}),
            ));
        }
    }
}

/// The record of `robot` (`fleet/robot`).
fn record(robot: &str, task_id: &str, percent: u64) -> Output {
    let (fleet, name) = split_robot(robot);
    Output::json(
        room(DESCRIPTOR.room, &[&fleet, &name]),
        &json!({"fleet": fleet, "robot": name, "task_id": task_id, "battery_percent": percent}),
    )
}

/// Its logic, in the shared robot operator.
fn part(config: &super::Config) -> Box<dyn Part<Name, RobotSample, Output>> {
    crate::ops::parts::part(Low {
        threshold: config.get(&CONFIG).threshold,
    })
}

fn build<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, Output> {
    let low = robot_part(inputs, config, DESCRIPTOR.name).flat_map(|o| {
        let v: serde_json::Value = serde_json::from_str(o.value.as_str()).ok()?;
        let robot = v["robot"].as_str()?.to_string();
        let percent = v["percent"].as_u64()?;
        Some((Name::from(o.room), (robot, percent)))
    });
    let underway = inputs
        .tasks
        .clone()
        .flat_map(|(id, t)| (t.status.as_ref() == "underway").then_some((id, ())));
    low.join_map(underway, |task_id, (robot, percent), ()| {
        record(robot, task_id, *percent)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derived::builders::{Step, robot, task};
    use crate::harness::run_upsert;

    const API: RobotSource = RobotSource::Api;
    const ROS: RobotSource = RobotSource::Ros;

    fn run(workers: usize, h: Vec<Step>, threshold: f64, until: Time) -> Vec<(Output, Time, Diff)> {
        run_upsert(workers, h, until, move |c| {
            let sections =
                serde_json::json!({"robot_battery_low_on_task": {"threshold": threshold}});
            let config = super::super::Config::from_sections(&sections).unwrap_or_default();
            build(&Inputs::split(c), &config)
        })
    }

    #[test]
    fn low_on_an_underway_task_until_it_ends_or_the_battery_recovers() {
        let h = vec![
            task("t1", "queued", 0),
            robot("f/r", API, "t1", 0.25, 10),
            // Underway: the robot is already low.
            task("t1", "underway", 20),
            // A sample at the same percent changes nothing; a lower percent changes the value.
            robot("f/r", API, "t1", 0.251, 30),
            robot("f/r", API, "t1", 0.19, 40),
            task("t1", "completed", 50),
        ];
        assert_eq!(
            run(1, h.clone(), 0.3, 100),
            vec![
                (record("f/r", "t1", 25), 20, 1),
                (record("f/r", "t1", 19), 40, 1),
                (record("f/r", "t1", 25), 40, -1),
                (record("f/r", "t1", 19), 50, -1),
            ]
        );
        // A site's threshold of 0.2: only from the sample at 19 %.
        assert_eq!(
            run(1, h.clone(), 0.2, 100),
            vec![
                (record("f/r", "t1", 19), 40, 1),
                (record("f/r", "t1", 19), 50, -1),
            ]
        );
        assert_eq!(run(2, h.clone(), 0.3, 100), run(1, h, 0.3, 100));
    }

    #[test]
    fn the_adapter_is_authoritative_and_ros_alone_counts() {
        let h = vec![
            task("t1", "underway", 0),
            task("t2", "underway", 0),
            // ROS alone: low on t1.
            robot("f/a", ROS, "t1", 0.1, 10),
            // The adapter says 50 % on t1: not low, whatever ROS says.
            robot("f/a", API, "t1", 0.5, 20),
            robot("f/a", ROS, "t1", 0.05, 30),
            // Another robot on t2, low, then on no task.
            robot("f/b", API, "t2", 0.2, 30),
            robot("f/b", API, "", 0.2, 40),
        ];
        assert_eq!(
            run(1, h, 0.3, 100),
            vec![
                (record("f/a", "t1", 10), 10, 1),
                (record("f/a", "t1", 10), 20, -1),
                (record("f/b", "t2", 20), 30, 1),
                (record("f/b", "t2", 20), 40, -1),
            ]
        );
    }
}
