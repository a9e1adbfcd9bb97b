//! `fleet_throughput_1m` and `fleet_throughput_15m`: per fleet, the tasks completed and failed in
//! a window of logical time, their mean duration, and how many robots are in each status now.
//!
//! Inputs: the task upserts and the robot upserts (only fleet-adapter samples, which carry a
//! `status`). A task counts once, at the logical time its status first becomes `completed` or
//! `failed`, in the fleet it is assigned to then (a task without a fleet then is never counted);
//! later updates of a counted task never count again, until it has not been updated (a changed
//! sample; the same sample again is no update) for 24 h, when its memory is dropped. Its
//! duration is `finish_ms - start_ms` of that sample when both are known and in order (they are
//! stamps: data, not logical time). A robot's status is its latest known one (samples without a
//! status change nothing); its fleet is the first part of its `fleet/robot` name. A fleet has a
//! record from its first counted task or robot status on.
//!
//! - `fleet_throughput_1m`, room `/fleets/{name}/throughput_1m`: the *current* tumbling window
//!   `[window_start, window_end)`, aligned to multiples of `window_1m_ms` (default 60 000); its
//!   counts run during the window and restart from zero at its end. Value `{fleet, window_start,
//!   window_end, completed, failed, mean_duration_ms, robots_by_status}`.
//! - `fleet_throughput_15m`, room `/fleets/{name}/throughput_15m`: the tasks counted in the
//!   sliding window `(t - window_15m_ms, t]` (default 900 000); it changes when a task is counted
//!   and when one leaves the window. Value `{fleet, window_ms, completed, failed,
//!   mean_duration_ms, robots_by_status}`.
//!
//! `mean_duration_ms` is an integer (rounded half up) or `null` when no counted task of the
//! window has a duration; `robots_by_status` is `{"<status>": n}` for the statuses with n > 0,
//! keys sorted. A window of 0 ms is taken as 1 ms.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::*;
use crate::ops::keyed::{Ctx, KeyedLogic, KeyedProcess};
use crate::ops::window::{Aggregate, CountSum, Sliding, Tumbling};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Width of the tumbling windows of `fleet_throughput_1m`.
    pub window_1m_ms: Time,
    /// Width of the sliding window of `fleet_throughput_15m`.
    pub window_15m_ms: Time,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window_1m_ms: 60_000,
            window_15m_ms: 900_000,
        }
    }
}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        self.window_1m_ms.max(self.window_15m_ms)
    }
}

/// `[derived.fleet_throughput]`, read by both windows.
pub(super) const CONFIG: Typed<Config> = Typed::new("fleet_throughput");

pub const THROUGHPUT_1M: Descriptor = Descriptor {
    name: "fleet_throughput_1m",
    room: "/fleets/{name}/throughput_1m",
    kind: RoomKind::State,
    persistence: Persistence::History,
    inputs: &["tasks", "robots"],
    config: CONFIG.spec(),
    robot: None,
    build: build_1m,
};

pub const THROUGHPUT_15M: Descriptor = Descriptor {
    name: "fleet_throughput_15m",
    room: "/fleets/{name}/throughput_15m",
    kind: RoomKind::State,
    persistence: Persistence::History,
    inputs: &["tasks", "robots"],
    config: CONFIG.spec(),
    robot: None,
    build: build_15m,
};

/// How long a counted task is remembered after its last update (so that a repeated terminal
/// update does not count it again).
const TASK_MEMORY_MS: Time = 24 * 60 * 60 * 1000;

/// How a counted task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum Outcome {
    Completed,
    Failed,
}

impl Outcome {
    fn of(status: &str) -> Option<Outcome> {
        match status {
            "completed" => Some(Outcome::Completed),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// What happens in a fleet, keyed by the fleet's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum FleetEvent {
    /// A task was counted (the id keeps two tasks ending alike at the same time two records).
    Task {
        id: Name,
        outcome: Outcome,
        duration_ms: Option<u64>,
    },
    /// A robot's status changed (`old` is `None` for its first status).
    Robot {
        robot: Name,
        old: Option<RobotStatus>,
        new: RobotStatus,
    },
}

/// Per task: emits a `FleetEvent::Task` the first time its status is terminal. The state is
/// whether it was counted (an unfinished task keeps nothing).
struct TaskLogic {
    memory_ms: Time,
}

impl KeyedLogic for TaskLogic {
    type Key = Name;
    type In = TaskSample;
    type Out = (Name, FleetEvent);
    type State = bool;

    fn input(&self, counted: &mut bool, id: &Name, task: &TaskSample, ctx: &mut Ctx<Self::Out>) {
        let task = task.clone();
        if !*counted && let Some(outcome) = Outcome::of(&task.status) {
            *counted = true;
            if !task.fleet.is_empty() {
                let duration_ms = match (task.start_ms, task.finish_ms) {
                    (Some(start), Some(finish)) => finish.checked_sub(start),
                    _ => None,
                };
                let event = FleetEvent::Task {
                    id: id.clone(),
                    outcome,
                    duration_ms,
                };
                ctx.emit((task.fleet, event));
            }
        }
        if *counted {
            ctx.set_timer(ctx.t.saturating_add(self.memory_ms));
        }
    }

    fn timer(&self, counted: &mut bool, _id: &Name, _ctx: &mut Ctx<Self::Out>) {
        *counted = false;
    }

    fn keep(&self, counted: &bool) -> bool {
        *counted
    }
}

/// Per robot (`fleet/robot`): emits a `FleetEvent::Robot` when its status changes.
pub(super) struct RobotLogic;

impl KeyedLogic for RobotLogic {
    type Key = Name;
    type In = RobotStatus;
    type Out = (Name, FleetEvent);
    type State = Option<RobotStatus>;

    fn input(
        &self,
        status: &mut Option<RobotStatus>,
        name: &Name,
        new: &RobotStatus,
        ctx: &mut Ctx<Self::Out>,
    ) {
        let new = *new;
        if *status == Some(new) {
            return;
        }
        let old = status.replace(new);
        let (fleet, robot) = split_robot(name);
        if !fleet.is_empty() {
            ctx.emit((fleet, FleetEvent::Robot { robot, old, new }));
        }
    }

    fn keep(&self, status: &Option<RobotStatus>) -> bool {
        status.is_some()
    }
}

/// A robot's status changes from its samples (only Api samples carry a status), as fleet events.
pub(super) struct StatusChanges;

impl KeyedLogic for StatusChanges {
    type Key = Name;
    type In = RobotSample;
    type Out = (Name, FleetEvent);
    type State = Option<RobotStatus>;

    fn input(
        &self,
        status: &mut Option<RobotStatus>,
        name: &Name,
        s: &RobotSample,
        ctx: &mut Ctx<Self::Out>,
    ) {
        if let (RobotSource::Api, Some(new)) = (s.source, s.status) {
            RobotLogic.input(status, name, &new, ctx);
        }
    }

    fn keep(&self, status: &Option<RobotStatus>) -> bool {
        status.is_some()
    }
}

/// The task and robot events of every fleet, keyed by fleet; a counted task is remembered for
/// `memory_ms` after its last update.
#[cfg(test)]
fn fleet_events<'s>(
    tasks: Coll<'s, (Name, TaskSample)>,
    robots: Coll<'s, (Name, RobotSample)>,
    memory_ms: Time,
) -> Coll<'s, (Name, FleetEvent)> {
    let counted = tasks.keyed_process("FleetThroughputTasks", TaskLogic { memory_ms });
    counted.concat(robots.keyed_process("FleetThroughputRobots", StatusChanges))
}

/// A counted task, as a window holds it.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Done {
    outcome: Outcome,
    duration_ms: Option<u64>,
}

/// The task counts of a window.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Throughput {
    completed: u64,
    failed: u64,
    durations: CountSum,
}

impl Throughput {
    fn outcome(&mut self, outcome: Outcome) -> &mut u64 {
        match outcome {
            Outcome::Completed => &mut self.completed,
            Outcome::Failed => &mut self.failed,
        }
    }
}

impl Aggregate for Throughput {
    type Item = Done;

    fn add(&mut self, done: &Done) {
        let n = self.outcome(done.outcome);
        *n = n.saturating_add(1);
        if let Some(d) = done.duration_ms {
            self.durations.add(&d);
        }
    }

    fn remove(&mut self, done: &Done) {
        let n = self.outcome(done.outcome);
        *n = n.saturating_sub(1);
        if let Some(d) = done.duration_ms {
            self.durations.remove(&d);
        }
    }
}

/// What the fleet logic needs of its window: the two descriptors differ only by it.
trait Window: serde::Serialize + serde::de::DeserializeOwned + 'static {
    fn with_width(width: Time) -> Self;
    /// Moves the window to `t` (before an event at `t`, or at its timer).
    fn advance_to(&mut self, t: Time);
    fn add_done(&mut self, t: Time, done: Done);
    /// When the window changes next by itself.
    fn next_change(&self) -> Option<Time>;
    fn value(&self, fleet: &str, robots_by_status: Value) -> Value;
}

impl Window for Tumbling<Throughput> {
    fn with_width(width: Time) -> Self {
        Tumbling::new(width)
    }

    fn advance_to(&mut self, t: Time) {
        self.roll(t);
    }

    fn add_done(&mut self, t: Time, done: Done) {
        self.add(t, &done);
    }

    fn next_change(&self) -> Option<Time> {
        Some(self.end())
    }

    fn value(&self, fleet: &str, robots_by_status: Value) -> Value {
        let a = self.aggregate();
        json!({
            "fleet": fleet,
            "window_start": self.start(),
            "window_end": self.end(),
            "completed": a.completed,
            "failed": a.failed,
            "mean_duration_ms": a.durations.mean(),
            "robots_by_status": robots_by_status,
        })
    }
}

impl Window for Sliding<Throughput> {
    fn with_width(width: Time) -> Self {
        Sliding::new(width)
    }

    fn advance_to(&mut self, t: Time) {
        self.expire(t);
    }

    fn add_done(&mut self, t: Time, done: Done) {
        self.add(t, done);
    }

    fn next_change(&self) -> Option<Time> {
        self.next_expiry()
    }

    fn value(&self, fleet: &str, robots_by_status: Value) -> Value {
        let a = self.aggregate();
        json!({
            "fleet": fleet,
            "window_ms": self.width(),
            "completed": a.completed,
            "failed": a.failed,
            "mean_duration_ms": a.durations.mean(),
            "robots_by_status": robots_by_status,
        })
    }
}

/// A fleet's window and its robots' statuses.
#[derive(serde::Serialize, serde::Deserialize)]
struct Fleet<W> {
    window: W,
    robots: HashMap<Name, RobotStatus>,
    /// Robots per status, kept in step with `robots` (no zero counts).
    #[serde(with = "crate::ops::snapshot::static_str::map")]
    by_status: BTreeMap<crate::ops::snapshot::StaticStr, u64>,
}

impl<W> Fleet<W> {
    fn set_status(&mut self, robot: Name, new: RobotStatus) {
        if let Some(old) = self.robots.insert(robot, new)
            && let Some(n) = self.by_status.get_mut(old.as_str())
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_status.remove(old.as_str());
            }
        }
        *self.by_status.entry(new.as_str()).or_default() += 1;
    }
}

/// Per fleet: the window of counted tasks and the robots' statuses.
struct FleetLogic<W> {
    width: Time,
    room: &'static str,
    _window: PhantomData<fn() -> W>,
}

impl<W: Window> FleetLogic<W> {
    fn schedule(window: &W, ctx: &mut Ctx<Output>) {
        match window.next_change() {
            Some(at) => ctx.set_timer(at),
            None => ctx.clear_timer(),
        }
    }
}

impl<W: Window> KeyedLogic for FleetLogic<W> {
    type Key = Name;
    type In = FleetEvent;
    type Out = Output;
    type State = Option<Fleet<W>>;

    fn input(
        &self,
        state: &mut Option<Fleet<W>>,
        _fleet: &Name,
        event: &FleetEvent,
        ctx: &mut Ctx<Output>,
    ) {
        let event = event.clone();
        let fleet = state.get_or_insert_with(|| Fleet {
            window: W::with_width(self.width),
            robots: HashMap::new(),
            by_status: BTreeMap::new(),
        });
        fleet.window.advance_to(ctx.t);
        match event {
            FleetEvent::Task {
                outcome,
                duration_ms,
                ..
            } => fleet.window.add_done(
                ctx.t,
                Done {
                    outcome,
                    duration_ms,
                },
            ),
            // The latest status wins; `old` is what the robot logic knew, already in `robots`.
            FleetEvent::Robot { robot, new, .. } => fleet.set_status(robot, new),
        }
        Self::schedule(&fleet.window, ctx);
    }

    fn timer(&self, state: &mut Option<Fleet<W>>, _fleet: &Name, ctx: &mut Ctx<Output>) {
        if let Some(fleet) = state {
            fleet.window.advance_to(ctx.t);
            Self::schedule(&fleet.window, ctx);
        }
    }

    fn output(&self, state: &Option<Fleet<W>>, name: &Name, out: &mut Vec<Output>) {
        if let Some(fleet) = state {
            let robots = json!(fleet.by_status);
            out.push(Output::json(
                room(self.room, &[name]),
                &fleet.window.value(name, robots),
            ));
        }
    }
}

fn throughput<'s, W: Window>(
    events: Coll<'s, (Name, FleetEvent)>,
    width: Time,
    room: &'static str,
) -> Coll<'s, Output> {
    events.keyed_process(
        "FleetThroughput",
        FleetLogic::<W> {
            width,
            room,
            _window: PhantomData,
        },
    )
}

/// The fleet events, built once for both windows.
fn shared_events<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, (Name, FleetEvent)> {
    inputs
        .shared
        .fleet_events
        .get_or_init(|| {
            let tasks = inputs.tasks.clone().keyed_process(
                "FleetThroughputTasks",
                TaskLogic {
                    memory_ms: TASK_MEMORY_MS,
                },
            );
            tasks.concat(robot_stream(inputs, config).statuses.clone())
        })
        .clone()
}

fn build_1m<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, Output> {
    let events = shared_events(inputs, config);
    let width = config.get(&CONFIG).window_1m_ms;
    throughput::<Tumbling<Throughput>>(events, width, THROUGHPUT_1M.room)
}

fn build_15m<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, Output> {
    let events = shared_events(inputs, config);
    let width = config.get(&CONFIG).window_15m_ms;
    throughput::<Sliding<Throughput>>(events, width, THROUGHPUT_15M.room)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::derived::reference;
    use crate::harness::run_upsert;

    /// A task or a robot sample, in one test input keyed by task id or `fleet/robot`.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    enum Sample {
        Task(TaskSample),
        Robot(RobotSample),
    }

    fn task(status: &str, fleet: &str, start: Option<u64>, finish: Option<u64>) -> Sample {
        Sample::Task(TaskSample {
            status: status.into(),
            category: "delivery".into(),
            fleet: fleet.into(),
            robot: Name::default(),
            request_ms: None,
            start_ms: start,
            finish_ms: finish,
            estimate_ms: None,
            active_phase: None,
            dispatch_status: Name::default(),
            dispatch_errors: String::new(),
            payload: Payload::of(&Value::Null),
        })
    }

    fn done(status: &str, fleet: &str) -> Sample {
        task(status, fleet, None, None)
    }

    fn robot(source: RobotSource, status: Option<RobotStatus>) -> Sample {
        Sample::Robot(RobotSample {
            source,
            status,
            mode: None,
            stamp: 0,
            battery: None,
            x: F64(0.0),
            y: F64(0.0),
            level: "L1".into(),
            task_id: Name::default(),
            issues: Vec::new(),
        })
    }

    fn api(status: RobotStatus) -> Sample {
        robot(RobotSource::Api, Some(status))
    }

    #[derive(Debug, Clone, Copy)]
    enum Which {
        OneMinute,
        FifteenMinutes,
    }

    /// How long the tests remember a counted task: longer than their histories, and short
    /// because closing the input lets the fleet windows run their timers up to the last task
    /// memory timer (the harness then drops what is after `until`).
    const TEST_MEMORY_MS: Time = 10_000;

    fn run(
        workers: usize,
        which: Which,
        config: &Config,
        inputs: Vec<(&str, Sample, Time)>,
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        run_with_memory(workers, which, config, TEST_MEMORY_MS, inputs, until)
    }

    fn run_with_memory(
        workers: usize,
        which: Which,
        config: &Config,
        memory_ms: Time,
        inputs: Vec<(&str, Sample, Time)>,
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        let inputs = inputs
            .into_iter()
            .map(|(k, s, t)| (Name::from(k), s, t))
            .collect();
        run_upsert(workers, inputs, until, {
            let config = config.clone();
            move |c| {
                let events = events_of(c, memory_ms);
                match which {
                    Which::OneMinute => throughput::<Tumbling<Throughput>>(
                        events,
                        config.window_1m_ms,
                        THROUGHPUT_1M.room,
                    ),
                    Which::FifteenMinutes => throughput::<Sliding<Throughput>>(
                        events,
                        config.window_15m_ms,
                        THROUGHPUT_15M.room,
                    ),
                }
            }
        })
    }

    /// The fleet events of test samples.
    fn events_of<'s>(
        samples: Coll<'s, (Name, Sample)>,
        memory_ms: Time,
    ) -> Coll<'s, (Name, FleetEvent)> {
        let tasks = samples.clone().flat_map(|(k, s)| match s {
            Sample::Task(t) => Some((k, t)),
            Sample::Robot(_) => None,
        });
        let robots = samples.flat_map(|(k, s)| match s {
            Sample::Robot(r) => Some((k, r)),
            Sample::Task(_) => None,
        });
        fleet_events(tasks, robots, memory_ms)
    }

    fn robots_json(robots: &[(&str, u64)]) -> Value {
        let mut map = serde_json::Map::new();
        for (status, n) in robots {
            map.insert((*status).to_string(), json!(n));
        }
        Value::Object(map)
    }

    /// The expected `fleet_throughput_1m` record.
    fn r1m(
        fleet: &str,
        (start, end): (Time, Time),
        (completed, failed): (u64, u64),
        mean: Option<u64>,
        robots: &[(&str, u64)],
    ) -> Output {
        Output::json(
            format!("/fleets/{fleet}/throughput_1m"),
            &json!({
                "fleet": fleet,
                "window_start": start,
                "window_end": end,
                "completed": completed,
                "failed": failed,
                "mean_duration_ms": mean,
                "robots_by_status": robots_json(robots),
            }),
        )
    }

    /// The expected `fleet_throughput_15m` record.
    fn r15m(
        fleet: &str,
        window_ms: Time,
        (completed, failed): (u64, u64),
        mean: Option<u64>,
        robots: &[(&str, u64)],
    ) -> Output {
        Output::json(
            format!("/fleets/{fleet}/throughput_15m"),
            &json!({
                "fleet": fleet,
                "window_ms": window_ms,
                "completed": completed,
                "failed": failed,
                "mean_duration_ms": mean,
                "robots_by_status": robots_json(robots),
            }),
        )
    }

    const M: Time = 60_000;

    /// Expected changes in the harness's order: by time, then record.
    fn changes(mut v: Vec<(Output, Time, Diff)>) -> Vec<(Output, Time, Diff)> {
        v.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        v
    }

    #[test]
    fn one_minute_runs_the_current_window_and_restarts_at_its_end() {
        let config = Config::default();
        let inputs = vec![
            ("t1", done("underway", "f"), 1_000),
            ("t1", task("completed", "f", Some(100), Some(1_100)), 5_000),
            ("t2", task("failed", "f", Some(0), Some(2_000)), 30_000),
            ("t3", done("completed", "f"), 70_000),
        ];
        let out = run(1, Which::OneMinute, &config, inputs, 2 * M + 10);
        let w0 = (0, M);
        let w1 = (M, 2 * M);
        let w2 = (2 * M, 3 * M);
        assert_eq!(
            out,
            changes(vec![
                (r1m("f", w0, (1, 0), Some(1_000), &[]), 5_000, 1),
                (r1m("f", w0, (1, 0), Some(1_000), &[]), 30_000, -1),
                (r1m("f", w0, (1, 1), Some(1_500), &[]), 30_000, 1),
                (r1m("f", w0, (1, 1), Some(1_500), &[]), M, -1),
                (r1m("f", w1, (0, 0), None, &[]), M, 1),
                (r1m("f", w1, (0, 0), None, &[]), 70_000, -1),
                (r1m("f", w1, (1, 0), None, &[]), 70_000, 1),
                (r1m("f", w1, (1, 0), None, &[]), 2 * M, -1),
                (r1m("f", w2, (0, 0), None, &[]), 2 * M, 1),
            ])
        );
    }

    #[test]
    fn a_task_counts_once_at_its_first_terminal_status() {
        // Config windows of 100 ms and 200 ms keep the expected records short.
        let config = Config {
            window_1m_ms: 100,
            window_15m_ms: 200,
        };
        let inputs = vec![
            // Counted at 10; its later terminal updates (even another outcome) never count.
            ("t1", done("completed", "f"), 10),
            ("t1", done("completed", "f"), 20),
            ("t1", done("failed", "f"), 30),
            ("t1", done("underway", "f"), 40),
            ("t1", done("completed", "f"), 50),
            // No fleet when it ended: never counted, even once a fleet is known.
            ("t2", done("failed", ""), 20),
            ("t2", done("failed", "f"), 60),
            // Canceled is not an outcome counted; it ends failed later.
            ("t3", done("canceled", "f"), 30),
            ("t3", done("failed", "f"), 70),
        ];
        let out = run(1, Which::FifteenMinutes, &config, inputs, 300);
        assert_eq!(
            out,
            changes(vec![
                (r15m("f", 200, (1, 0), None, &[]), 10, 1),
                (r15m("f", 200, (1, 0), None, &[]), 70, -1),
                (r15m("f", 200, (1, 1), None, &[]), 70, 1),
                (r15m("f", 200, (1, 1), None, &[]), 210, -1),
                (r15m("f", 200, (0, 1), None, &[]), 210, 1),
                (r15m("f", 200, (0, 1), None, &[]), 270, -1),
                (r15m("f", 200, (0, 0), None, &[]), 270, 1),
            ])
        );
    }

    #[test]
    fn a_counted_task_is_forgotten_after_24_h_without_updates() {
        const H: Time = 60 * 60 * 1000;
        // Each update changes the sample (here its finish stamp, without a start).
        let update = |finish| task("completed", "f", None, Some(finish));
        let inputs: Vec<(Name, Sample, Time)> = [
            (update(1), 1_000),
            // Still remembered 23 h later, and exactly 24 h after that update.
            (update(2), 1_000 + 23 * H),
            (update(3), 1_000 + 47 * H),
            // The same sample again is no update: it does not extend the memory.
            (update(3), 1_000 + 70 * H),
            // Forgotten 24 h after its last update: counted again.
            (update(4), 1_000 + 71 * H + 10),
        ]
        .into_iter()
        .map(|(s, t)| (Name::from("t1"), s, t))
        .collect();
        let out = run_upsert(1, inputs, 100 * H, |c| events_of(c, TASK_MEMORY_MS));
        let event = (
            Name::from("f"),
            FleetEvent::Task {
                id: "t1".into(),
                outcome: Outcome::Completed,
                duration_ms: None,
            },
        );
        assert_eq!(
            out,
            vec![(event.clone(), 1_000, 1), (event, 1_000 + 71 * H + 10, 1)]
        );
    }

    #[test]
    fn robots_by_status_follow_the_latest_api_status() {
        let config = Config {
            window_1m_ms: 1_000,
            window_15m_ms: 1_000,
        };
        let inputs = vec![
            // ROS samples and API samples without a status say nothing about the status.
            ("f/r1", robot(RobotSource::Ros, None), 10),
            ("f/r1", robot(RobotSource::Api, None), 20),
            // The fleet appears with its first robot status.
            ("f/r1", api(RobotStatus::Idle), 30),
            ("f/r1", api(RobotStatus::Idle), 40),
            // Flapping between idle and working.
            ("f/r1", api(RobotStatus::Working), 50),
            ("f/r1", api(RobotStatus::Idle), 60),
            ("f/r1", robot(RobotSource::Api, None), 70),
            ("f/r1", api(RobotStatus::Working), 80),
            // A second robot appears late.
            ("f/r2", api(RobotStatus::Working), 500),
            ("f/r2", api(RobotStatus::Charging), 600),
        ];
        let out = run(1, Which::FifteenMinutes, &config, inputs, 900);
        let r = |robots: &[(&str, u64)]| r15m("f", 1_000, (0, 0), None, robots);
        assert_eq!(
            out,
            changes(vec![
                (r(&[("idle", 1)]), 30, 1),
                (r(&[("idle", 1)]), 50, -1),
                (r(&[("working", 1)]), 50, 1),
                (r(&[("idle", 1)]), 60, 1),
                (r(&[("working", 1)]), 60, -1),
                (r(&[("idle", 1)]), 80, -1),
                (r(&[("working", 1)]), 80, 1),
                (r(&[("working", 1)]), 500, -1),
                (r(&[("working", 2)]), 500, 1),
                (r(&[("charging", 1), ("working", 1)]), 600, 1),
                (r(&[("working", 2)]), 600, -1),
            ])
        );
    }

    #[test]
    fn events_exactly_at_the_window_edges() {
        let config = Config {
            window_1m_ms: 100,
            window_15m_ms: 100,
        };
        // Nothing between 10 and 100 (a gap ending exactly at the edge), then a task at 100,
        // which belongs to the next tumbling window, and one at 200, exactly when the one at 100
        // leaves the sliding window.
        let inputs = vec![
            ("t1", done("completed", "f"), 10),
            ("t2", done("failed", "f"), 100),
            ("t3", done("failed", "f"), 200),
        ];
        let one = run(1, Which::OneMinute, &config, inputs.clone(), 250);
        assert_eq!(
            one,
            changes(vec![
                (r1m("f", (0, 100), (1, 0), None, &[]), 10, 1),
                (r1m("f", (0, 100), (1, 0), None, &[]), 100, -1),
                (r1m("f", (100, 200), (0, 1), None, &[]), 100, 1),
                (r1m("f", (100, 200), (0, 1), None, &[]), 200, -1),
                (r1m("f", (200, 300), (0, 1), None, &[]), 200, 1),
            ])
        );
        let fifteen = run(1, Which::FifteenMinutes, &config, inputs, 350);
        assert_eq!(
            fifteen,
            changes(vec![
                (r15m("f", 100, (1, 0), None, &[]), 10, 1),
                (r15m("f", 100, (1, 0), None, &[]), 100, -1),
                (r15m("f", 100, (1, 1), None, &[]), 100, 1),
                // At 110 the first task leaves; at 200 the second leaves as the third comes.
                (r15m("f", 100, (0, 1), None, &[]), 110, 1),
                (r15m("f", 100, (1, 1), None, &[]), 110, -1),
                (r15m("f", 100, (0, 0), None, &[]), 300, 1),
                (r15m("f", 100, (0, 1), None, &[]), 300, -1),
            ])
        );
    }

    #[test]
    fn durations_are_stamps_rounded_half_up_and_unknown_ones_are_left_out() {
        let config = Config {
            window_1m_ms: 1_000,
            window_15m_ms: 1_000,
        };
        let inputs = vec![
            // Stamps far from the logical time: the task counts when received, at 100.
            ("t1", task("completed", "f", Some(5), Some(1_005)), 100),
            ("t2", task("completed", "f", Some(0), Some(1_001)), 200),
            // Finish before start, or a missing stamp: counted, but no duration.
            ("t3", task("failed", "f", Some(500), Some(400)), 300),
            ("t4", task("failed", "f", None, Some(400)), 400),
        ];
        let out = run(1, Which::OneMinute, &config, inputs, 500);
        let w = (0, 1_000);
        assert_eq!(
            out,
            changes(vec![
                (r1m("f", w, (1, 0), Some(1_000), &[]), 100, 1),
                (r1m("f", w, (1, 0), Some(1_000), &[]), 200, -1),
                // 1000.5 rounds up.
                (r1m("f", w, (2, 0), Some(1_001), &[]), 200, 1),
                (r1m("f", w, (2, 0), Some(1_001), &[]), 300, -1),
                (r1m("f", w, (2, 1), Some(1_001), &[]), 300, 1),
                (r1m("f", w, (2, 1), Some(1_001), &[]), 400, -1),
                (r1m("f", w, (2, 2), Some(1_001), &[]), 400, 1),
            ])
        );
    }

    #[test]
    fn several_fleets_at_once_and_worker_counts_agree() {
        let config = Config {
            window_1m_ms: 100,
            window_15m_ms: 250,
        };
        let inputs = vec![
            ("a/r1", api(RobotStatus::Idle), 0),
            ("b/r1", api(RobotStatus::Working), 0),
            ("t1", task("completed", "a", Some(0), Some(40)), 50),
            ("t2", task("completed", "b", Some(0), Some(30)), 50),
            ("c/r9", api(RobotStatus::Error), 120),
            ("t3", done("failed", "c"), 130),
            ("b/r1", api(RobotStatus::Idle), 150),
            ("t4", task("completed", "a", Some(10), Some(20)), 190),
        ];
        for which in [Which::OneMinute, Which::FifteenMinutes] {
            let one = run(1, which, &config, inputs.clone(), 400);
            assert_eq!(one, run(3, which, &config, inputs.clone(), 400));
            assert!(!one.is_empty());
        }
        let out = run(3, Which::OneMinute, &config, inputs, 200);
        let at_200: Vec<_> = out.iter().filter(|(_, t, _)| *t == 200).collect();
        assert_eq!(
            at_200,
            vec![
                &(
                    r1m("a", (100, 200), (1, 0), Some(10), &[("idle", 1)]),
                    200,
                    -1
                ),
                &(r1m("a", (200, 300), (0, 0), None, &[("idle", 1)]), 200, 1),
                &(r1m("b", (100, 200), (0, 0), None, &[("idle", 1)]), 200, -1),
                &(r1m("b", (200, 300), (0, 0), None, &[("idle", 1)]), 200, 1),
                &(r1m("c", (100, 200), (0, 1), None, &[("error", 1)]), 200, -1),
                &(r1m("c", (200, 300), (0, 0), None, &[("error", 1)]), 200, 1),
            ]
        );
    }

    // --- Property test: the incremental output equals a brute-force recomputation. ---

    /// A counted task as the brute force sees it: (fleet, completed?, duration, time).
    type Counted = (Name, bool, Option<u64>, Time);

    /// The tasks counted: a terminal sample of a task not remembered (never counted, or not
    /// updated for more than `memory_ms` since it was), if it has a fleet. The same sample again
    /// is no update (an upsert of the same value).
    fn counted_tasks(history: &[(Name, Sample, Time)], memory_ms: Time) -> Vec<Counted> {
        // The remembered tasks, with their last update.
        let mut remembered: BTreeMap<&Name, Time> = BTreeMap::new();
        let mut previous: BTreeMap<&Name, &TaskSample> = BTreeMap::new();
        let mut out = Vec::new();
        for (id, sample, t) in history {
            let Sample::Task(task) = sample else { continue };
            if previous.insert(id, task) == Some(task) {
                continue;
            }
            if remembered.get(id).is_some_and(|last| *t > last + memory_ms) {
                remembered.remove(id);
            }
            if remembered.contains_key(id) {
                remembered.insert(id, *t);
                continue;
            }
            let completed = task.status == "completed";
            if !(completed || task.status == "failed") {
                continue;
            }
            remembered.insert(id, *t);
            if !task.fleet.is_empty() {
                let duration = match (task.start_ms, task.finish_ms) {
                    (Some(s), Some(f)) if f >= s => Some(f - s),
                    _ => None,
                };
                out.push((task.fleet.clone(), completed, duration, *t));
            }
        }
        out
    }

    /// Each robot's latest API status, with its fleet.
    fn robot_statuses(history: &[(Name, Sample, Time)]) -> Vec<(Name, RobotStatus)> {
        let with_status: Vec<(Name, RobotStatus, Time)> = history
            .iter()
            .filter_map(|(name, sample, t)| match sample {
                Sample::Robot(r) if r.source == RobotSource::Api => {
                    r.status.map(|s| (name.clone(), s, *t))
                }
                _ => None,
            })
            .collect();
        reference::latest(&with_status)
            .into_iter()
            .map(|(name, status, _)| (split_robot(&name).0, status))
            .collect()
    }

    /// The records present at the end of `history`: one per fleet with a counted task or a robot
    /// status, counting the tasks counted at the times `in_window`. Independent of the operators:
    /// counts by filtering, the mean in floating point, statuses from the latest samples.
    fn snapshot(
        history: &[(Name, Sample, Time)],
        memory_ms: Time,
        in_window: impl Fn(Time) -> bool,
        record: impl Fn(&str, (u64, u64), Option<u64>, &[(&str, u64)]) -> Output,
    ) -> Vec<Output> {
        let counted = counted_tasks(history, memory_ms);
        let robots = robot_statuses(history);
        let mut fleets: Vec<&Name> = counted
            .iter()
            .map(|c| &c.0)
            .chain(robots.iter().map(|r| &r.0))
            .collect();
        fleets.sort();
        fleets.dedup();
        fleets
            .into_iter()
            .map(|fleet| {
                let window: Vec<&Counted> = counted
                    .iter()
                    .filter(|c| c.0 == *fleet && in_window(c.3))
                    .collect();
                let completed = window.iter().filter(|c| c.1).count() as u64;
                let failed = window.len() as u64 - completed;
                let durations: Vec<u64> = window.iter().filter_map(|c| c.2).collect();
                let mean = (!durations.is_empty()).then(|| {
                    let mean = durations.iter().sum::<u64>() as f64 / durations.len() as f64;
                    (mean + 0.5).floor() as u64
                });
                let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
                for (_, status) in robots.iter().filter(|r| r.0 == *fleet) {
                    *by_status.entry(status.as_str()).or_default() += 1;
                }
                let by_status: Vec<(&str, u64)> = by_status.into_iter().collect();
                record(fleet, (completed, failed), mean, &by_status)
            })
            .collect()
    }

    fn brute_force(
        which: Which,
        config: &Config,
        memory_ms: Time,
        history: &[(Name, Sample, Time)],
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        match which {
            Which::OneMinute => {
                let w = config.window_1m_ms;
                reference::states(history, until, 10, |h, t| {
                    let start = t / w * w;
                    snapshot(
                        h,
                        memory_ms,
                        |at| at >= start,
                        |f, counts, mean, robots| r1m(f, (start, start + w), counts, mean, robots),
                    )
                })
            }
            Which::FifteenMinutes => {
                let w = config.window_15m_ms;
                reference::states(history, until, 10, |h, t| {
                    snapshot(
                        h,
                        memory_ms,
                        |at| at + w > t,
                        |f, counts, mean, robots| r15m(f, w, counts, mean, robots),
                    )
                })
            }
        }
    }

    fn arb_sample() -> impl Strategy<Value = (Name, Sample)> {
        let stamp = || prop::option::weighted(0.8, 0u64..4);
        let arb_task = (
            prop::sample::select(vec!["t1", "t2", "t3"]),
            prop::sample::select(vec![
                "queued",
                "underway",
                "completed",
                "failed",
                "canceled",
            ]),
            prop::sample::select(vec!["a", "a", "b", ""]),
            stamp(),
            stamp(),
        )
            .prop_map(|(id, status, fleet, start, finish)| {
                (Name::from(id), task(status, fleet, start, finish))
            });
        let status = prop::sample::select(vec![
            RobotStatus::Idle,
            RobotStatus::Working,
            RobotStatus::Charging,
            RobotStatus::Error,
        ]);
        let arb_robot = (
            prop::sample::select(vec!["a/r1", "a/r2", "b/r1"]),
            prop::sample::select(vec![RobotSource::Api, RobotSource::Api, RobotSource::Ros]),
            prop::option::weighted(0.85, status),
        )
            .prop_map(|(name, source, status)| (Name::from(name), robot(source, status)));
        prop_oneof![arb_task, arb_robot]
    }

    /// Up to 25 samples at multiples of 10 ms, at most one per key and time, in time order.
    fn arb_history() -> impl Strategy<Value = Vec<(Name, Sample, Time)>> {
        prop::collection::vec((arb_sample(), 0u64..40), 0..25).prop_map(|samples| {
            let mut history: Vec<(Name, Sample, Time)> = samples
                .into_iter()
                .map(|((name, sample), t)| (name, sample, t * 10))
                .collect();
            history.sort_by_key(|(_, _, t)| *t);
            let mut deduped: Vec<(Name, Sample, Time)> = Vec::new();
            for entry in history {
                deduped.retain(|(n, _, t)| !(*n == entry.0 && *t == entry.2));
                deduped.push(entry);
            }
            deduped
        })
    }

    fn arb_config() -> impl Strategy<Value = Config> {
        (
            prop::sample::select(vec![20u64, 50, 60, 100]),
            prop::sample::select(vec![30u64, 100, 150]),
        )
            .prop_map(|(window_1m_ms, window_15m_ms)| Config {
                window_1m_ms,
                window_15m_ms,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn incremental_equals_brute_force(
            history in arb_history(),
            config in arb_config(),
            memory_ms in prop::sample::select(vec![40u64, 150, 10_000]),
        ) {
            let until = 500;
            let inputs: Vec<(&str, Sample, Time)> = history
                .iter()
                .map(|(n, s, t)| (n.as_str(), s.clone(), *t))
                .collect();
            for which in [Which::OneMinute, Which::FifteenMinutes] {
                let expected = brute_force(which, &config, memory_ms, &history, until);
                let one = run_with_memory(1, which, &config, memory_ms, inputs.clone(), until);
                prop_assert_eq!(&one, &expected, "{:?} on 1 worker", which);
                let two = run_with_memory(2, which, &config, memory_ms, inputs.clone(), until);
                prop_assert_eq!(&two, &expected, "{:?} on 2 workers", which);
            }
        }
    }
}
