//! `robot_task`: the task a robot is working on, with that task's latest state.
//!
//! Inputs: the robot samples (keyed `fleet/robot`, both sources) and the task states (keyed by
//! task id). A robot's current task id is the `task_id` of its latest fleet-adapter (Api) sample
//! when it has one — the adapter is authoritative, so an Api sample with an empty task id means
//! "no task" even if ROS still names one — else of its latest ROS sample. The id is joined with
//! the task's latest state; both sides are first projected with `latest_by` so that 10 Hz robot
//! samples and task updates that change nothing shown do no work downstream.
//!
//! Room `/robots/{fleet}/{robot}/task` (state), value `{"fleet", "robot", "task_id", "category",
//! "status", "active_phase": {"id", "category"} | null, "estimate_millis": ms | null,
//! "unix_millis_start_time": ms | null}`. There is no record while the robot's current task id is
//! empty, nor while the state of its task has not been received yet (it appears when it is).
//! Several robots naming the same task each get a record. No configuration.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;
use crate::ops::keyed::{Ctx, KeyedLogic};
use crate::ops::latest::LatestBy;

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        0
    }
}

/// `[derived.robot_task]`.
const CONFIG: Typed<Config> = Typed::new("robot_task");

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "robot_task",
    room: "/robots/{fleet}/{robot}/task",
    kind: RoomKind::State,
    persistence: Persistence::Latest,
    inputs: &["robots", "tasks"],
    config: CONFIG.spec(),
    robot: None,
    build,
};

/// What the room shows of a task's state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Summary {
    category: Name,
    status: Name,
    active_phase: Option<(u64, Name)>,
    estimate_ms: Option<u64>,
    start_ms: Option<u64>,
}

impl Summary {
    fn of(task: &TaskSample) -> Summary {
        Summary {
            category: task.category.clone(),
            status: task.status.clone(),
            active_phase: task.active_phase.clone(),
            estimate_ms: task.estimate_ms,
            start_ms: task.start_ms,
        }
    }
}

/// The `RobotTask` record of `robot` (`fleet/robot`).
fn robot_task_output(robot: &str, task_id: &str, task: &Summary) -> Output {
    let (fleet, name) = split_robot(robot);
    let active_phase = task
        .active_phase
        .as_ref()
        .map(|(id, category)| json!({"id": id, "category": category}));
    Output::json(
        room(DESCRIPTOR.room, &[&fleet, &name]),
        &json!({
            "fleet": fleet,
            "robot": name,
            "task_id": task_id,
            "category": task.category,
            "status": task.status,
            "active_phase": active_phase,
            "estimate_millis": task.estimate_ms,
            "unix_millis_start_time": task.start_ms,
        }),
    )
}

/// Each robot's current task id: the latest Api sample's if the robot has any Api sample, else
/// the latest Ros sample's. Present record `(task_id, robot)` while it is not empty.
pub(super) struct TaskIds;

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Current {
    api: Option<Name>,
    ros: Option<Name>,
}

impl KeyedLogic for TaskIds {
    type Key = Name;
    type In = RobotSample;
    type Out = (Name, Name);
    type State = Current;

    fn input(&self, c: &mut Current, _robot: &Name, s: &RobotSample, _ctx: &mut Ctx<(Name, Name)>) {
        match s.source {
            RobotSource::Api => c.api = Some(s.task_id.clone()),
            RobotSource::Ros => c.ros = Some(s.task_id.clone()),
        }
    }

    fn output(&self, c: &Current, robot: &Name, out: &mut Vec<(Name, Name)>) {
        if let Some(task_id) = c.api.as_ref().or(c.ros.as_ref()).filter(|t| !t.is_empty()) {
            out.push((task_id.clone(), robot.clone()));
        }
    }
}

/// The join of the robots' current task ids `(task_id, robot)` with the tasks' latest states.
fn robot_task_of<'s>(
    current: Coll<'s, (Name, Name)>,
    tasks: Coll<'s, (Name, TaskSample)>,
) -> Coll<'s, Output> {
    let tasks = tasks.latest_by("TaskSummary", |_, t: &TaskSample| Some(Summary::of(t)));
    current
        .join(tasks)
        .map(|(task_id, (robot, task))| robot_task_output(&robot, &task_id, &task))
}

/// The current task ids come from the shared robot operator (`derived::robot_stream`).
fn build<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, Output> {
    robot_task_of(
        robot_stream(inputs, config).task_ids.clone(),
        inputs.tasks.clone(),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::derived::reference;
    use crate::harness::run_upsert;

    type History = Vec<(InputKey, InputValue, Time)>;

    fn robot(
        name: &str,
        source: RobotSource,
        task_id: &str,
        t: Time,
    ) -> (InputKey, InputValue, Time) {
        let sample = RobotSample {
            source,
            status: (source == RobotSource::Api).then_some(RobotStatus::Working),
            mode: (source == RobotSource::Ros).then_some(2),
            // Every sample is a new message.
            stamp: t,
            battery: Some(F64(0.5)),
            // Positions change with every sample: only the task id matters.
            x: F64(t as f64),
            y: F64(0.0),
            level: "L1".into(),
            task_id: task_id.into(),
            issues: Vec::new(),
        };
        (
            (Kind::Robot(source), name.into()),
            InputValue::Robot(sample),
            t,
        )
    }

    fn task_sample(status: &str, phase: Option<u64>) -> TaskSample {
        TaskSample {
            status: status.into(),
            category: "delivery".into(),
            fleet: "f".into(),
            robot: "r".into(),
            request_ms: Some(1),
            start_ms: phase.map(|_| 5000),
            finish_ms: None,
            estimate_ms: phase.map(|p| 1000 * p),
            active_phase: phase.map(|p| (p, Name::from(format!("phase {p}")))),
            dispatch_status: "".into(),
            dispatch_errors: String::new(),
            payload: Payload::of(&json!({"status": status})),
        }
    }

    /// A task state update; every one is new (its payload differs), even when nothing the
    /// room shows changes.
    fn task(id: &str, status: &str, phase: Option<u64>, t: Time) -> (InputKey, InputValue, Time) {
        let sample = TaskSample {
            payload: Payload::of(&json!({"status": status, "update": t})),
            ..task_sample(status, phase)
        };
        (
            (Kind::Task, id.into()),
            InputValue::Task(Box::new(sample)),
            t,
        )
    }

    fn rt(robot: &str, task_id: &str, status: &str, phase: Option<u64>) -> Output {
        robot_task_output(robot, task_id, &Summary::of(&task_sample(status, phase)))
    }

    fn run(workers: usize, h: History, until: Time) -> Vec<(Output, Time, Diff)> {
        run_upsert(workers, h, until, |c| {
            build(&Inputs::split(c), &super::super::Config::default())
        })
    }

    const API: RobotSource = RobotSource::Api;
    const ROS: RobotSource = RobotSource::Ros;

    #[test]
    fn the_record_waits_for_the_task_state_and_follows_it() {
        let out = run(
            1,
            vec![
                robot("f/r", ROS, "t1", 10),
                task("t1", "queued", None, 30),
                task("t1", "underway", Some(1), 40),
                // An update that changes nothing shown changes nothing.
                task("t1", "underway", Some(1), 50),
                task("t1", "underway", Some(2), 60),
                robot("f/r", ROS, "", 70),
            ],
            100,
        );
        assert_eq!(
            out,
            vec![
                (rt("f/r", "t1", "queued", None), 30, 1),
                (rt("f/r", "t1", "queued", None), 40, -1),
                (rt("f/r", "t1", "underway", Some(1)), 40, 1),
                (rt("f/r", "t1", "underway", Some(1)), 60, -1),
                (rt("f/r", "t1", "underway", Some(2)), 60, 1),
                (rt("f/r", "t1", "underway", Some(2)), 70, -1),
            ]
        );
    }

    #[test]
    fn the_api_task_id_wins_over_ros_even_when_empty() {
        let out = run(
            1,
            vec![
                task("t1", "underway", Some(1), 0),
                task("t2", "queued", None, 0),
                task("t3", "queued", None, 0),
                robot("f/r", ROS, "t1", 10),
                // Api and ROS at the same time: the Api id, whatever the arrival order.
                robot("f/r", ROS, "t3", 20),
                robot("f/r", API, "t2", 20),
                robot("f/r", ROS, "t1", 30),
                // Api says no task: no record, although ROS still says t1.
                robot("f/r", API, "", 40),
                robot("f/r", API, "t2", 50),
            ],
            100,
        );
        assert_eq!(
            out,
            vec![
                (rt("f/r", "t1", "underway", Some(1)), 10, 1),
                (rt("f/r", "t1", "underway", Some(1)), 20, -1),
                (rt("f/r", "t2", "queued", None), 20, 1),
                (rt("f/r", "t2", "queued", None), 40, -1),
                (rt("f/r", "t2", "queued", None), 50, 1),
            ]
        );
    }

    #[test]
    fn frequent_samples_and_flapping_ids_do_not_churn() {
        // 10 Hz ROS samples naming the same task (each a different position): one record. The
        // id flapping between two tasks at every sample follows them exactly.
        let mut h = vec![
            task("t1", "underway", None, 0),
            task("t2", "queued", None, 0),
        ];
        h.extend((1..=20).map(|i| robot("f/r", ROS, "t1", 100 * i)));
        h.extend(
            (21..=24).map(|i| robot("f/r", ROS, if i % 2 == 0 { "t2" } else { "t1" }, 100 * i)),
        );
        let out = run(1, h, 3000);
        let one = rt("f/r", "t1", "underway", None);
        let two = rt("f/r", "t2", "queued", None);
        assert_eq!(
            out,
            vec![
                (one.clone(), 100, 1),
                (one.clone(), 2200, -1),
                (two.clone(), 2200, 1),
                (one.clone(), 2300, 1),
                (two.clone(), 2300, -1),
                (one, 2400, -1),
                (two, 2400, 1),
            ]
        );
    }

    #[test]
    fn several_robots_one_task_a_late_robot_and_workers_agree() {
        let h = vec![
            robot("f/a", API, "t1", 10),
            robot("f/b", ROS, "t1", 10),
            task("t1", "underway", Some(3), 20),
            robot("g/a", API, "t2", 30),
            task("t2", "queued", None, 40),
            task("t1", "completed", None, 50),
            robot("f/a", API, "", 60),
        ];
        let one = run(1, h.clone(), 100);
        assert_eq!(
            one,
            vec![
                (rt("f/a", "t1", "underway", Some(3)), 20, 1),
                (rt("f/b", "t1", "underway", Some(3)), 20, 1),
                (rt("g/a", "t2", "queued", None), 40, 1),
                (rt("f/a", "t1", "completed", None), 50, 1),
                (rt("f/a", "t1", "underway", Some(3)), 50, -1),
                (rt("f/b", "t1", "completed", None), 50, 1),
                (rt("f/b", "t1", "underway", Some(3)), 50, -1),
                (rt("f/a", "t1", "completed", None), 60, -1),
            ]
        );
        assert_eq!(one, run(3, h, 100));
    }

    /// Brute force: from the latest value of every input key, each robot's task id (its Api
    /// sample's if it has one, else its ROS sample's) looked up among the tasks.
    fn reference(past: &[(InputKey, InputValue, Time)], _t: Time) -> Vec<Output> {
        let latest = reference::latest(past);
        let find = |kind: Kind, name: &str| {
            latest
                .iter()
                .find(|((k, n), _, _)| *k == kind && n == name)
                .map(|(_, v, _)| v)
        };
        let mut out = Vec::new();
        for ((kind, name), _, _) in &latest {
            if *kind != Kind::Robot(ROS) && *kind != Kind::Robot(API) {
                continue;
            }
            let sample = find(Kind::Robot(API), name).or_else(|| find(Kind::Robot(ROS), name));
            let Some(InputValue::Robot(sample)) = sample else {
                continue;
            };
            if sample.task_id.is_empty() {
                continue;
            }
            if let Some(InputValue::Task(task)) = find(Kind::Task, &sample.task_id) {
                out.push(robot_task_output(name, &sample.task_id, &Summary::of(task)));
            }
        }
        out
    }

    #[derive(Debug, Clone)]
    enum Step {
        Robot(&'static str, RobotSource, &'static str),
        Task(&'static str, &'static str, Option<u64>),
    }

    fn histories() -> impl Strategy<Value = History> {
        let task_id = prop::sample::select(&["", "t1", "t2"][..]);
        let robot_step = (
            prop::sample::select(&["f/r1", "f/r2", "g/r1"][..]),
            prop::sample::select(&[API, ROS][..]),
            task_id,
        )
            .prop_map(|(r, s, id)| Step::Robot(r, s, id));
        let task_step = (
            prop::sample::select(&["t1", "t2", "t3"][..]),
            prop::sample::select(&["queued", "underway"][..]),
            prop::option::of(1u64..3),
        )
            .prop_map(|(id, status, phase)| Step::Task(id, status, phase));
        let step = (
            prop_oneof![2 => robot_step, 1 => task_step],
            prop::sample::select(&[0u64, 10, 20, 50][..]),
        );
        prop::collection::vec(step, 1..24).prop_map(|steps| {
            let mut t = 0;
            let mut h: History = Vec::new();
            for (step, dt) in steps {
                t += dt;
                let (key, value, at) = match step {
                    Step::Robot(r, s, id) => robot(r, s, id, t),
                    Step::Task(id, status, phase) => task(id, status, phase, t),
                };
                // One value per key and time (an upsert keeps the last one).
                h.retain(|(k, _, kt)| !(*k == key && *kt == at));
                h.push((key, value, at));
            }
            h
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_the_brute_force_reference(h in histories()) {
            let until = h.last().map_or(0, |(_, _, t)| *t) + 20;
            let expected = reference::states(&h, until, 10, reference);
            prop_assert_eq!(&run(1, h.clone(), until), &expected);
            prop_assert_eq!(&run(2, h, until), &expected);
        }
    }
}
