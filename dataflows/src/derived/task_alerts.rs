//! `task_alerts`: the alerts rmf-dash raises about tasks, once each, however often RMF re-sends
//! what caused them.
//!
//! - "Task completed" (tier `info`) or "Task failed" (tier `error`): the first time a task's
//!   status is `completed` or `failed`, never again for repeated updates (rmf-web's api-server
//!   re-creates it on every update, COMPAT.md). One per task: whichever terminal status comes
//!   first. The message says who completed it (`Completed by <robot> of <fleet>`), or lists the
//!   dispatch errors of a task the dispatcher failed to assign (`Failed to assign: <errors>`),
//!   else `Failed`.
//! - "Task error" (tier `error`): each `error`-tier entry of a task's log, once per (stream, seq)
//!   (logs are re-sent after every adapter reconnect).
//!
//! Inputs: `tasks` (upserts) and `task_logs` (appended), merged into one keyed process per task.
//! Room `/alerts/requests` (stream), value (COMPAT.md) `{id, unix_millis_alert_time (logical
//! time), title, subtitle, message, display: true, tier, responses_available: ["acknowledge"],
//! alert_parameters: [], task_id}` with id `task-completed-<task_id>`, `task-failed-<task_id>` or
//! `task-log-<task_id>-<stream>-<seq>` (a `/` of the stream written `.`, so that the id is one
//! URL path segment of `/alerts/request/{alert_id}/respond`) and subtitle `<category> task <task_id>` (`task <task_id>`
//! when the category is unknown).
//!
//! A log alert's category is the task's as of its latest state received *before* the log's
//! logical time, not a state of the same tick (which the process handles first, states coming
//! before logs in value order): a task heard first through an error log and its state in the
//! same tick gets `task <task_id>`.
//!
//! Memory: a task's flags are forgotten `retention_ms` (default 86_400_000, one day) after its
//! last input (a new state or a log batch; a state re-sent verbatim is a duplicate, not an
//! input, while a re-sent log batch is appended again and is one); in particular they are kept at least that long after its terminal
//! state. An input arriving after a longer silence starts afresh: a terminal state re-sent with a
//! change, or a log re-sent, after a day of silence would alert again.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::*;
use crate::ops::keyed::{Ctx, KeyedLogic, KeyedProcess};

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A task's alerted flags are forgotten after this long without input for it.
    pub retention_ms: Time,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retention_ms: 86_400_000,
        }
    }
}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        self.retention_ms
    }
}

const ROOM: &str = "/alerts/requests";

/// `[derived.task_alerts]`.
const CONFIG: Typed<Config> = Typed::new("task_alerts");

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "task_alerts",
    room: ROOM,
    kind: RoomKind::Stream,
    // The alerts table keeps every request (the room is shared with `alert_requests`).
    persistence: Persistence::Latest,
    inputs: &["tasks", "task_logs"],
    config: CONFIG.spec(),
    robot: None,
    build,
};

/// What the process hears of a task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskEvent {
    State(Box<TaskSample>),
    Log(LogBatch),
}

/// The COMPAT `/alerts/requests` record of a task alert.
fn alert(
    id: String,
    t: Time,
    title: &str,
    subtitle: String,
    message: String,
    tier: &str,
    task_id: &str,
) -> Output {
    Output::json(
        ROOM.into(),
        &json!({
            "id": id,
            "unix_millis_alert_time": t,
            "title": title,
            "subtitle": subtitle,
            "message": message,
            "display": true,
            "tier": tier,
            "responses_available": ["acknowledge"],
            "alert_parameters": [],
            "task_id": task_id,
        }),
    )
}

/// A log stream name as part of an alert id: `/` written `.` (ids are URL path segments).
fn id_part(stream: &str) -> String {
    stream.replace('/', ".")
}

fn subtitle(category: &str, task_id: &str) -> String {
    if category.is_empty() {
        format!("task {task_id}")
    } else {
        format!("{category} task {task_id}")
    }
}

/// One dispatch error (`{code, category, detail}` of RMF, or a plain string) as text.
fn describe_error(error: &Value) -> String {
    let text = |v: Option<&Value>| match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let category = text(o.get("category"));
            let detail = text(o.get("detail"));
            match (category.is_empty(), detail.is_empty()) {
                (false, false) => format!("{category}: {detail}"),
                (false, true) => category,
                (true, false) => detail,
                (true, true) => text(o.get("code")),
            }
        }
        other => other.to_string(),
    }
}

/// The dispatch errors (`TaskSample::dispatch_errors`, JSON text) as one line; the text as is
/// when it is not a JSON array.
fn describe_errors(json_text: &str) -> String {
    match serde_json::from_str::<Value>(json_text) {
        Ok(Value::Array(errors)) => errors
            .iter()
            .map(describe_error)
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        _ => json_text.to_string(),
    }
}

/// The completed or failed alert of a task in a terminal state, if it is one.
fn terminal_alert(task_id: &str, s: &TaskSample, t: Time) -> Option<Output> {
    let (kind, title, tier, message) = match s.status.as_str() {
        "completed" => {
            let message = match (s.robot.is_empty(), s.fleet.is_empty()) {
                (false, false) => format!("Completed by {} of {}", s.robot, s.fleet),
                (false, true) => format!("Completed by {}", s.robot),
                (true, false) => format!("Completed by {}", s.fleet),
                (true, true) => "Completed".to_string(),
            };
            ("completed", "Task completed", "info", message)
        }
        "failed" => {
            let message = if s.dispatch_status == "failed_to_assign" {
                let errors = describe_errors(&s.dispatch_errors);
                if errors.is_empty() {
                    "Failed to assign".to_string()
                } else {
                    format!("Failed to assign: {errors}")
                }
            } else {
                "Failed".to_string()
            };
            ("failed", "Task failed", "error", message)
        }
        _ => return None,
    };
    Some(alert(
        format!("task-{kind}-{task_id}"),
        t,
        title,
        subtitle(&s.category, task_id),
        message,
        tier,
        task_id,
    ))
}

/// What a task's alerts remember.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Alerted {
    /// The completed or failed alert was raised.
    terminal: bool,
    /// The error log entries alerted, by (stream, seq).
    errors: BTreeSet<(Name, u32)>,
    /// The category of the latest state, the time it arrived, and the category before that time.
    category: Name,
    category_at: Time,
    earlier_category: Name,
}

impl Alerted {
    fn set_category(&mut self, category: Name, t: Time) {
        if self.category_at < t {
            self.earlier_category = std::mem::replace(&mut self.category, category);
        } else {
            self.category = category;
        }
        self.category_at = t;
    }

    /// The category as of the latest state received before `t`.
    fn category_before(&self, t: Time) -> &str {
        if self.category_at < t {
            &self.category
        } else {
            &self.earlier_category
        }
    }
}

struct Logic {
    retention: Time,
}

impl KeyedLogic for Logic {
    type Key = Name;
    type In = TaskEvent;
    type Out = Output;
    type State = Alerted;

    fn input(&self, a: &mut Alerted, task_id: &Name, event: &TaskEvent, ctx: &mut Ctx<Output>) {
        let event = event.clone();
        ctx.set_timer(ctx.t + self.retention);
        match event {
            TaskEvent::State(s) => {
                if !a.terminal
                    && let Some(alert) = terminal_alert(task_id, &s, ctx.t)
                {
                    a.terminal = true;
                    ctx.emit(alert);
                }
                a.set_category(s.category, ctx.t);
            }
            TaskEvent::Log(batch) => {
                for (stream, e) in batch.entries {
                    if e.tier != "error" || !a.errors.insert((stream.clone(), e.seq)) {
                        continue;
                    }
                    ctx.emit(alert(
                        format!("task-log-{task_id}-{}-{}", id_part(&stream), e.seq),
                        ctx.t,
                        "Task error",
                        subtitle(a.category_before(ctx.t), task_id),
                        e.text,
                        "error",
                        task_id,
                    ));
                }
            }
        }
    }

    /// Retention is over: the task is forgotten (its state is not kept once its timer is gone).
    fn timer(&self, a: &mut Alerted, _task_id: &Name, _ctx: &mut Ctx<Output>) {
        *a = Alerted::default();
    }

    fn keep(&self, _a: &Alerted) -> bool {
        false
    }
}

fn alerts<'s>(
    tasks: Coll<'s, (Name, TaskSample)>,
    logs: Coll<'s, (Name, LogBatch)>,
    config: &Config,
) -> Coll<'s, Output> {
    let states = tasks.map(|(id, s)| (id, TaskEvent::State(Box::new(s))));
    let logs = logs.map(|(id, l)| (id, TaskEvent::Log(l)));
    states.concat(logs).keyed_process(
        "TaskAlerts",
        Logic {
            retention: config.retention_ms,
        },
    )
}

fn build<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, Output> {
    alerts(
        inputs.tasks.clone(),
        inputs.task_logs.clone(),
        &config.get(&CONFIG),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_upsert;
    use proptest::prelude::*;

    fn sample(status: &str, category: &str) -> TaskSample {
        TaskSample {
            status: status.into(),
            category: category.into(),
            fleet: "f".into(),
            robot: "r".into(),
            request_ms: None,
            start_ms: None,
            finish_ms: None,
            estimate_ms: None,
            active_phase: None,
            dispatch_status: "dispatched".into(),
            dispatch_errors: String::new(),
            payload: Payload("{}".into()),
        }
    }

    fn state(status: &str, category: &str) -> TaskEvent {
        TaskEvent::State(Box::new(sample(status, category)))
    }

    fn log(entries: &[(&str, u32, &str)]) -> TaskEvent {
        TaskEvent::Log(LogBatch {
            entries: entries
                .iter()
                .map(|(stream, seq, tier)| {
                    (
                        Name::from(*stream),
                        LogEntry {
                            seq: *seq,
                            tier: (*tier).into(),
                            unix_millis_time: 0,
                            text: format!("{tier} {seq}"),
                        },
                    )
                })
                .collect(),
        })
    }

    /// An expected alert, written out.
    fn expected(
        id: &str,
        t: Time,
        title: &str,
        subtitle: &str,
        message: &str,
        tier: &str,
        task: &str,
    ) -> Output {
        Output::json(
            "/alerts/requests".into(),
            &json!({
                "id": id,
                "unix_millis_alert_time": t,
                "title": title,
                "subtitle": subtitle,
                "message": message,
                "display": true,
                "tier": tier,
                "responses_available": ["acknowledge"],
                "alert_parameters": [],
                "task_id": task,
            }),
        )
    }

    type History = Vec<(Name, TaskEvent, Time)>;

    fn history(inputs: Vec<(&str, TaskEvent, Time)>) -> History {
        inputs
            .into_iter()
            .map(|(k, e, t)| (Name::from(k), e, t))
            .collect()
    }

    /// The input key of each event as the engine has it: a task's states are one upsert, each
    /// log batch is appended (its own key, never retracted).
    fn input_keys(inputs: &History) -> Vec<((Name, Option<usize>), TaskEvent, Time)> {
        inputs
            .iter()
            .enumerate()
            .map(|(i, (id, e, t))| {
                let append = matches!(e, TaskEvent::Log(_)).then_some(i);
                ((id.clone(), append), e.clone(), *t)
            })
            .collect()
    }

    /// Runs the real wiring: the test's single input is split into the two input collections.
    fn run(
        workers: usize,
        inputs: History,
        retention_ms: Time,
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        run_upsert(workers, input_keys(&inputs), until, move |c| {
            let tasks = c.clone().flat_map(|((id, _), e)| match e {
                TaskEvent::State(s) => Some((id, *s)),
                TaskEvent::Log(_) => None,
            });
            let logs = c.flat_map(|((id, _), e)| match e {
                TaskEvent::Log(l) => Some((id, l)),
                TaskEvent::State(_) => None,
            });
            alerts(tasks, logs, &Config { retention_ms })
        })
    }

    /// A state update that differs from others of the same status and category (a real re-sent
    /// update differs in some field the alerts do not read).
    fn update(status: &str, category: &str, n: u64) -> TaskEvent {
        let mut s = sample(status, category);
        s.payload = Payload::of(&json!({"update": n}));
        TaskEvent::State(Box::new(s))
    }

    #[test]
    fn completed_once_despite_repeated_and_flapping_updates() {
        let inputs = history(vec![
            ("t", state("queued", "patrol"), 10),
            ("t", state("underway", "patrol"), 20),
            ("t", state("completed", "patrol"), 30),
            // Re-sent (updated), then a stale underway update, then completed again: no new
            // alert.
            ("t", update("completed", "patrol", 1), 40),
            ("t", state("underway", "patrol"), 50),
            ("t", state("completed", "patrol"), 60),
            ("t", state("failed", "patrol"), 70),
        ]);
        let out = run(1, inputs, 1000, 200);
        assert_eq!(
            out,
            vec![(
                expected(
                    "task-completed-t",
                    30,
                    "Task completed",
                    "patrol task t",
                    "Completed by r of f",
                    "info",
                    "t"
                ),
                30,
                1
            )]
        );
    }

    #[test]
    fn a_task_heard_first_when_it_already_failed_to_assign() {
        let mut s = sample("failed", "");
        s.dispatch_status = "failed_to_assign".into();
        s.dispatch_errors = r#"[{"code":1,"category":"no fleet","detail":"nobody can do it"},{"code":2,"category":"","detail":{"x":1}},"plain"]"#.into();
        let mut plain = sample("failed", "delivery");
        plain.robot = Name::default();
        let inputs = history(vec![
            ("a", TaskEvent::State(Box::new(s)), 500),
            ("b", TaskEvent::State(Box::new(plain)), 500),
        ]);
        let out = run(1, inputs, 1000, 600);
        assert_eq!(
            out,
            vec![
                (
                    expected(
                        "task-failed-a",
                        500,
                        "Task failed",
                        "task a",
                        "Failed to assign: no fleet: nobody can do it; {\"x\":1}; plain",
                        "error",
                        "a"
                    ),
                    500,
                    1
                ),
                (
                    expected(
                        "task-failed-b",
                        500,
                        "Task failed",
                        "delivery task b",
                        "Failed",
                        "error",
                        "b"
                    ),
                    500,
                    1
                ),
            ]
        );
    }

    #[test]
    fn error_log_entries_alert_once_per_stream_and_seq() {
        let inputs = history(vec![
            ("t", state("underway", "patrol"), 10),
            (
                "t",
                log(&[("", 0, "info"), ("", 1, "error"), ("1/2", 1, "error")]),
                20,
            ),
            // The adapter reconnects and re-sends everything, plus a new warning and error.
            (
                "t",
                log(&[
                    ("", 0, "info"),
                    ("", 1, "error"),
                    ("1/2", 1, "error"),
                    ("1/2", 2, "warning"),
                    ("1", 3, "error"),
                ]),
                30,
            ),
        ]);
        let out = run(1, inputs, 1000, 100);
        let e = |id: &str, t: Time, msg: &str| {
            (
                expected(id, t, "Task error", "patrol task t", msg, "error", "t"),
                t,
                1,
            )
        };
        assert_eq!(
            out,
            vec![
                e("task-log-t--1", 20, "error 1"),
                e("task-log-t-1.2-1", 20, "error 1"),
                e("task-log-t-1-3", 30, "error 3"),
            ]
        );
    }

    #[test]
    fn a_log_uses_the_category_known_before_its_tick() {
        // Log and first state in the same tick: no category (whatever the order they arrive in);
        // a later log uses it; a category change at 30 applies to logs after 30.
        let inputs = history(vec![
            ("t", log(&[("", 1, "error")]), 10),
            ("t", state("underway", "patrol"), 10),
            ("t", state("underway", "clean"), 30),
            ("t", log(&[("", 2, "error")]), 30),
            ("t", log(&[("", 3, "error")]), 40),
        ]);
        let mut swapped = inputs.clone();
        swapped.swap(0, 1);
        swapped.swap(2, 3);
        let out = run(1, inputs, 1000, 100);
        let e = |id: &str, t: Time, sub: &str, msg: &str| {
            (expected(id, t, "Task error", sub, msg, "error", "t"), t, 1)
        };
        assert_eq!(
            out,
            vec![
                e("task-log-t--1", 10, "task t", "error 1"),
                e("task-log-t--2", 30, "patrol task t", "error 2"),
                e("task-log-t--3", 40, "clean task t", "error 3"),
            ]
        );
        assert_eq!(out, run(1, swapped, 1000, 100));
    }

    #[test]
    fn flags_are_forgotten_after_retention_without_input() {
        // Retention 100. Inputs exactly 100 apart find the flags (130: no second completed
        // alert; 230: the category is still known); 110 apart they are forgotten (340 alerts
        // completed again, 450 alerts the same log entry again, with no category known).
        let done = sample("completed", "patrol");
        let mut changed = done.clone();
        changed.finish_ms = Some(1);
        let inputs = history(vec![
            ("t", TaskEvent::State(Box::new(done.clone())), 30),
            ("t", TaskEvent::State(Box::new(changed)), 130),
            ("t", log(&[("", 1, "error")]), 230),
            ("t", TaskEvent::State(Box::new(done)), 340),
            ("t", log(&[("", 1, "error")]), 450),
        ]);
        let out = run(1, inputs, 100, 600);
        let c = |t: Time| {
            (
                expected(
                    "task-completed-t",
                    t,
                    "Task completed",
                    "patrol task t",
                    "Completed by r of f",
                    "info",
                    "t",
                ),
                t,
                1,
            )
        };
        let e = |t: Time, sub: &str| {
            (
                expected(
                    "task-log-t--1",
                    t,
                    "Task error",
                    sub,
                    "error 1",
                    "error",
                    "t",
                ),
                t,
                1,
            )
        };
        assert_eq!(
            out,
            vec![c(30), e(230, "patrol task t"), c(340), e(450, "task t")]
        );
    }

    #[test]
    fn a_state_re_sent_verbatim_does_not_restart_retention() {
        // Retention 100. The completed state of 30 re-sent verbatim at 120 is a duplicate, not
        // an input: the flags are forgotten at 130, and an updated completed state at 200
        // alerts again (had the re-send been an input, they would be kept until 220).
        let inputs = history(vec![
            ("t", state("completed", "patrol"), 30),
            ("t", state("completed", "patrol"), 120),
            ("t", update("completed", "patrol", 1), 200),
        ]);
        let out = run(1, inputs, 100, 300);
        let c = |t: Time| {
            (
                expected(
                    "task-completed-t",
                    t,
                    "Task completed",
                    "patrol task t",
                    "Completed by r of f",
                    "info",
                    "t",
                ),
                t,
                1,
            )
        };
        assert_eq!(out, vec![c(30), c(200)]);
    }

    #[test]
    fn several_tasks_and_workers_agree() {
        let inputs = history(vec![
            ("a", state("queued", "patrol"), 10),
            ("b", state("underway", "delivery"), 10),
            ("c", log(&[("", 0, "error")]), 20),
            ("a", state("completed", "patrol"), 30),
            ("b", log(&[("2/0", 5, "error")]), 30),
            ("b", state("failed", "delivery"), 40),
            ("c", state("completed", ""), 40),
        ]);
        let one = run(1, inputs.clone(), 1000, 100);
        let a = |id: &str, t: Time, title: &str, sub: &str, msg: &str, tier: &str, task: &str| {
            (expected(id, t, title, sub, msg, tier, task), t, 1)
        };
        let done = "Completed by r of f";
        assert_eq!(
            one,
            vec![
                a(
                    "task-log-c--0",
                    20,
                    "Task error",
                    "task c",
                    "error 0",
                    "error",
                    "c"
                ),
                a(
                    "task-completed-a",
                    30,
                    "Task completed",
                    "patrol task a",
                    done,
                    "info",
                    "a"
                ),
                a(
                    "task-log-b-2.0-5",
                    30,
                    "Task error",
                    "delivery task b",
                    "error 5",
                    "error",
                    "b"
                ),
                a(
                    "task-completed-c",
                    40,
                    "Task completed",
                    "task c",
                    done,
                    "info",
                    "c"
                ),
                a(
                    "task-failed-b",
                    40,
                    "Task failed",
                    "delivery task b",
                    "Failed",
                    "error",
                    "b"
                ),
            ]
        );
        assert_eq!(one, run(3, inputs, 1000, 100));
    }

    /// Brute force: replays every task's history up to `t` and returns the alerts raised at
    /// exactly `t`. A task starts over when its previous input is more than `retention` before.
    fn reference(retention: Time, history: &[(Name, TaskEvent, Time)], t: Time) -> Vec<Output> {
        let mut ids: Vec<&Name> = history.iter().map(|(id, _, _)| id).collect();
        ids.sort();
        ids.dedup();
        let mut out = Vec::new();
        for id in ids {
            let mut terminal_done = false;
            let mut errors_done: Vec<(Name, u32)> = Vec::new();
            let mut states: Vec<(Time, Name)> = Vec::new();
            let mut last: Option<Time> = None;
            for (_, event, et) in history.iter().filter(|(k, _, _)| k == id) {
                if last.is_some_and(|l| *et > l + retention) {
                    terminal_done = false;
                    errors_done.clear();
                    states.clear();
                }
                last = Some(*et);
                match event {
                    TaskEvent::State(s) => {
                        let terminal = s.status == "completed" || s.status == "failed";
                        if terminal && !terminal_done {
                            terminal_done = true;
                            if *et == t {
                                let (kind, title, tier, message) = if s.status == "completed" {
                                    let msg = format!("Completed by {} of {}", s.robot, s.fleet);
                                    ("completed", "Task completed", "info", msg)
                                } else {
                                    ("failed", "Task failed", "error", "Failed".to_string())
                                };
                                let sub = if s.category.is_empty() {
                                    format!("task {id}")
                                } else {
                                    format!("{} task {id}", s.category)
                                };
                                let alert_id = format!("task-{kind}-{id}");
                                out.push(expected(&alert_id, t, title, &sub, &message, tier, id));
                            }
                        }
                        states.push((*et, s.category.clone()));
                    }
                    TaskEvent::Log(batch) => {
                        let category = states
                            .iter()
                            .rev()
                            .find(|(st, _)| st < et)
                            .map(|(_, c)| c.clone())
                            .unwrap_or_default();
                        for (stream, e) in &batch.entries {
                            let key = (stream.clone(), e.seq);
                            if e.tier == "error" && !errors_done.contains(&key) {
                                errors_done.push(key);
                                if *et == t {
                                    let sub = if category.is_empty() {
                                        format!("task {id}")
                                    } else {
                                        format!("{category} task {id}")
                                    };
                                    out.push(expected(
                                        &format!(
                                            "task-log-{id}-{}-{}",
                                            super::id_part(stream),
                                            e.seq
                                        ),
                                        t,
                                        "Task error",
                                        &sub,
                                        &e.text,
                                        "error",
                                        id,
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn events() -> impl Strategy<Value = TaskEvent> {
        let status = prop::sample::select(&["queued", "underway", "completed", "failed"][..]);
        let category = prop::sample::select(&["", "patrol", "clean"][..]);
        let entry = (
            prop::sample::select(&["", "1", "1/0"][..]),
            0u32..3,
            prop::sample::select(&["info", "error"][..]),
        );
        prop_oneof![
            (status, category).prop_map(|(s, c)| state(s, c)),
            prop::collection::vec(entry, 0..4).prop_map(|entries| {
                TaskEvent::Log(LogBatch {
                    entries: entries
                        .into_iter()
                        .map(|(stream, seq, tier)| {
                            let text = format!("{tier} {seq}");
                            let e = LogEntry {
                                seq,
                                tier: tier.into(),
                                unix_millis_time: 0,
                                text,
                            };
                            (Name::from(stream), e)
                        })
                        .collect(),
                })
            }),
        ]
    }

    fn histories() -> impl Strategy<Value = History> {
        let step = (
            prop::sample::select(&["a", "b", "c"][..]),
            events(),
            prop::sample::select(&[0u64, 10, 20, 50, 60][..]),
        );
        prop::collection::vec(step, 1..16).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(k, e, dt)| {
                    t += dt;
                    (Name::from(k), e, t)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_the_brute_force_reference(h in histories()) {
            let retention = 50;
            let until = h.last().map_or(0, |(_, _, t)| *t) + 100;
            // What the process handles: the new states of each task, every distinct log batch,
            // per task and tick in value order (states before logs).
            let states: History = h
                .iter()
                .filter(|(_, e, _)| matches!(e, TaskEvent::State(_)))
                .cloned()
                .collect();
            let mut handled = reference::upserts(&states);
            handled.extend(h.iter().filter(|(_, e, _)| matches!(e, TaskEvent::Log(_))).cloned());
            let handled = reference::keyed_inputs(handled);
            let want = reference::streams(&handled, until, 10, |past, t| reference(retention, past, t));
            prop_assert_eq!(&run(1, h.clone(), retention, until), &want);
            prop_assert_eq!(&run(2, h, retention, until), &want);
        }
    }
}
