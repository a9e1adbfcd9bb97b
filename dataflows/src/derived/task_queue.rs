//! `task_queue`: the live list of each fleet's queued and underway tasks, in the order they run
//! (what dashboards poll `GET /tasks` for every 10 s with rmf-web, rmf-web #889).
//!
//! Input: the task state upserts. A task is in its fleet's queue while its latest status is
//! `queued` or `underway` and it has a fleet (`assigned_to.group`, or the dispatcher's
//! assignment); a task that moves to another fleet moves queues. Tasks are ordered by
//! `unix_millis_start_time`, then `unix_millis_request_time` (a missing time last for both), then
//! task id.
//!
//! Room `/fleets/{name}/task_queue` (state), value `{fleet, tasks: [{task_id, status, category,
//! robot, unix_millis_start_time, unix_millis_request_time}]}` (times are `null` when unknown).
//! A fleet with an empty queue has no record: the record is retracted when its last task leaves,
//! so "no record" means "empty queue". No configuration.
//!
//! Each task is first projected to its queue entry (`latest_by`), so the 1-10 Hz state updates of
//! busy robots that change nothing the queue shows do not reach the per-fleet reduction.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;
use crate::ops::latest::LatestBy;

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        0
    }
}

const ROOM: &str = "/fleets/{name}/task_queue";

/// `[derived.task_queue]`.
const CONFIG: Typed<Config> = Typed::new("task_queue");

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "task_queue",
    room: ROOM,
    kind: RoomKind::State,
    persistence: Persistence::Latest,
    inputs: &["tasks"],
    config: CONFIG.spec(),
    robot: None,
    build,
};

/// What the queue shows of a task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueEntry {
    pub task_id: Name,
    pub status: Name,
    pub category: Name,
    pub robot: Name,
    pub start_ms: Option<u64>,
    pub request_ms: Option<u64>,
}

/// A task's queue entry and fleet, while it is queued or underway in a fleet.
fn project(task_id: &Name, s: &TaskSample) -> Option<(Name, QueueEntry)> {
    let queued = matches!(s.status.as_str(), "queued" | "underway");
    (queued && !s.fleet.is_empty()).then(|| {
        let entry = QueueEntry {
            task_id: task_id.clone(),
            status: s.status.clone(),
            category: s.category.clone(),
            robot: s.robot.clone(),
            start_ms: s.start_ms,
            request_ms: s.request_ms,
        };
        (s.fleet.clone(), entry)
    })
}

/// Queue order: start time, then request time (missing last), then task id.
fn queue_order(a: &QueueEntry, b: &QueueEntry) -> Ordering {
    let key = |e: &QueueEntry| {
        (
            e.start_ms.is_none(),
            e.start_ms,
            e.request_ms.is_none(),
            e.request_ms,
        )
    };
    key(a).cmp(&key(b)).then_with(|| a.task_id.cmp(&b.task_id))
}

/// The record of a fleet's queue, its entries in queue order.
fn queue_output(fleet: &str, entries: &[&QueueEntry]) -> Output {
    let tasks: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            json!({
                "task_id": e.task_id,
                "status": e.status,
                "category": e.category,
                "robot": e.robot,
                "unix_millis_start_time": e.start_ms,
                "unix_millis_request_time": e.request_ms,
            })
        })
        .collect();
    Output::json(
        room(ROOM, &[fleet]),
        &json!({"fleet": fleet, "tasks": tasks}),
    )
}

fn queues<'s>(tasks: Coll<'s, (Name, TaskSample)>) -> Coll<'s, Output> {
    tasks
        .latest_by("TaskQueueEntry", project)
        .map(|(_, (fleet, entry))| (fleet, entry))
        .reduce_named("TaskQueue", |fleet, entries, out| {
            // Only called for a fleet with entries; each task is present once (latest_by).
            let mut queue: Vec<&QueueEntry> = entries
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(e, _)| *e)
                .collect();
            if queue.is_empty() {
                return;
            }
            queue.sort_by(|a, b| queue_order(a, b));
            out.push((queue_output(fleet, &queue), 1));
        })
        .map(|(_, output)| output)
}

fn build<'s>(inputs: &Inputs<'s>, _config: &super::Config) -> Coll<'s, Output> {
    queues(inputs.tasks.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_upsert;
    use proptest::prelude::*;

    fn sample(status: &str, fleet: &str, start: Option<u64>, request: Option<u64>) -> TaskSample {
        TaskSample {
            status: status.into(),
            category: "patrol".into(),
            fleet: fleet.into(),
            robot: if status == "underway" { "r1" } else { "" }.into(),
            request_ms: request,
            start_ms: start,
            finish_ms: None,
            estimate_ms: None,
            active_phase: None,
            dispatch_status: "dispatched".into(),
            dispatch_errors: String::new(),
            payload: Payload("{}".into()),
        }
    }

    type History = Vec<(Name, TaskSample, Time)>;

    fn run(workers: usize, inputs: History, until: Time) -> Vec<(Output, Time, Diff)> {
        run_upsert(workers, inputs, until, queues)
    }

    type Row<'a> = (&'a str, &'a str, Option<u64>, Option<u64>);

    /// An expected queue record, written out: (task id, status, start, request) in order.
    fn q(fleet: &str, rows: &[Row]) -> Output {
        let tasks: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, status, start, request)| {
                json!({
                    "task_id": id,
                    "status": status,
                    "category": "patrol",
                    "robot": if *status == "underway" { "r1" } else { "" },
                    "unix_millis_start_time": start,
                    "unix_millis_request_time": request,
                })
            })
            .collect();
        Output::json(
            format!("/fleets/{fleet}/task_queue"),
            &json!({"fleet": fleet, "tasks": tasks}),
        )
    }

    fn h(rows: &[(&str, &str, &str, Option<u64>, Option<u64>, Time)]) -> History {
        rows.iter()
            .map(|(id, status, fleet, start, request, t)| {
                (Name::from(*id), sample(status, fleet, *start, *request), *t)
            })
            .collect()
    }

    #[test]
    fn queue_order_and_empty_queue_retracted() {
        let inputs = h(&[
            ("b", "queued", "f", None, Some(5), 10),
            ("a", "queued", "f", None, Some(5), 10),
            ("c", "queued", "f", None, None, 10),
            // Starts: first in the queue.
            ("c", "underway", "f", Some(100), None, 20),
            // Done and cancelled tasks leave the queue; the last leaving retracts the record.
            ("c", "completed", "f", Some(100), None, 30),
            ("a", "canceled", "f", None, Some(5), 40),
            ("b", "failed", "f", None, Some(5), 50),
        ]);
        let out = run(1, inputs, 100);
        let ab = [
            ("a", "queued", None, Some(5)),
            ("b", "queued", None, Some(5)),
        ];
        let abc = q("f", &[ab[0], ab[1], ("c", "queued", None, None)]);
        let cab = q("f", &[("c", "underway", Some(100), None), ab[0], ab[1]]);
        assert_eq!(
            out,
            vec![
                (abc.clone(), 10, 1),
                (abc, 20, -1),
                (cab.clone(), 20, 1),
                (q("f", &ab), 30, 1),
                (cab, 30, -1),
                (q("f", &ab), 40, -1),
                (q("f", &[ab[1]]), 40, 1),
                (q("f", &[ab[1]]), 50, -1),
            ]
        );
    }

    #[test]
    fn status_flapping_and_updates_that_change_nothing() {
        // A task flaps between underway and a non-queue status; a repeated identical state (a
        // duplicate, no input at all) and a change of a field the queue does not show (finish
        // time, a new input) change nothing.
        let mut inputs = h(&[
            ("a", "underway", "f", Some(1), Some(0), 10),
            ("a", "underway", "f", Some(1), Some(0), 20),
            ("a", "blocked", "f", Some(1), Some(0), 30),
            ("a", "underway", "f", Some(1), Some(0), 40),
        ]);
        let mut finished = inputs[0].1.clone();
        finished.finish_ms = Some(7);
        inputs.push((Name::from("a"), finished, 50));
        let out = run(1, inputs, 100);
        let a = q("f", &[("a", "underway", Some(1), Some(0))]);
        assert_eq!(
            out,
            vec![(a.clone(), 10, 1), (a.clone(), 30, -1), (a, 40, 1)]
        );
    }

    #[test]
    fn fleet_assigned_late_and_moving_fleets() {
        // No fleet yet (dispatcher still bidding): no queue. Assigned at 20, moved at 40.
        let inputs = h(&[
            ("a", "queued", "", None, Some(3), 10),
            ("a", "queued", "f1", None, Some(3), 20),
            ("b", "queued", "f2", None, Some(9), 30),
            ("a", "queued", "f2", None, Some(3), 40),
        ]);
        let out = run(1, inputs, 100);
        let a = ("a", "queued", None, Some(3));
        let b = ("b", "queued", None, Some(9));
        assert_eq!(
            out,
            vec![
                (q("f1", &[a]), 20, 1),
                (q("f2", &[b]), 30, 1),
                (q("f1", &[a]), 40, -1),
                (q("f2", &[a, b]), 40, 1),
                (q("f2", &[b]), 40, -1),
            ]
        );
    }

    #[test]
    fn several_fleets_and_workers_agree() {
        let inputs = h(&[
            ("a", "queued", "f1", None, Some(3), 10),
            ("b", "underway", "f2", Some(5), Some(1), 10),
            ("c", "queued", "f3", None, None, 10),
            ("d", "queued", "f1", Some(2), None, 20),
            ("b", "completed", "f2", Some(5), Some(1), 30),
        ]);
        let one = run(1, inputs.clone(), 100);
        let a = ("a", "queued", None, Some(3));
        let b = q("f2", &[("b", "underway", Some(5), Some(1))]);
        assert_eq!(
            one,
            vec![
                (q("f1", &[a]), 10, 1),
                (b.clone(), 10, 1),
                (q("f3", &[("c", "queued", None, None)]), 10, 1),
                (q("f1", &[a]), 20, -1),
                (q("f1", &[("d", "queued", Some(2), None), a]), 20, 1),
                (b, 30, -1),
            ]
        );
        assert_eq!(one, run(3, inputs, 100));
    }

    /// Brute force: every fleet's queue from the latest state of every task at `t`.
    fn snapshot(history: &[(Name, TaskSample, Time)], _t: Time) -> Vec<Output> {
        let latest = reference::latest(history);
        let mut fleets: Vec<&Name> = latest.iter().map(|(_, s, _)| &s.fleet).collect();
        fleets.sort();
        fleets.dedup();
        let mut out = Vec::new();
        for fleet in fleets.into_iter().filter(|f| !f.is_empty()) {
            let mut queue: Vec<QueueEntry> = latest
                .iter()
                .filter(|(_, s, _)| s.fleet == *fleet)
                .filter(|(_, s, _)| s.status == "queued" || s.status == "underway")
                .map(|(id, s, _)| QueueEntry {
                    task_id: id.clone(),
                    status: s.status.clone(),
                    category: s.category.clone(),
                    robot: s.robot.clone(),
                    start_ms: s.start_ms,
                    request_ms: s.request_ms,
                })
                .collect();
            // Missing times sort last, then ids.
            queue.sort_by_key(|e| {
                (
                    e.start_ms.map_or((1, 0), |v| (0, v)),
                    e.request_ms.map_or((1, 0), |v| (0, v)),
                    e.task_id.clone(),
                )
            });
            if !queue.is_empty() {
                out.push(queue_output(fleet, &queue.iter().collect::<Vec<_>>()));
            }
        }
        out
    }

    fn histories() -> impl Strategy<Value = History> {
        let step = (
            prop::sample::select(&["a", "b", "c"][..]),
            prop::sample::select(&["queued", "underway", "completed", "canceled"][..]),
            prop::sample::select(&["f1", "f2", ""][..]),
            prop::option::of(prop::sample::select(&[100u64, 200][..])),
            prop::option::of(prop::sample::select(&[50u64, 100][..])),
            prop::sample::select(&[0u64, 10, 20][..]),
        );
        prop::collection::vec(step, 1..16).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(id, status, fleet, start, request, dt)| {
                    t += dt;
                    (Name::from(id), sample(status, fleet, start, request), t)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_the_brute_force_reference(history in histories()) {
            let until = history.last().map_or(0, |(_, _, t)| *t) + 20;
            let want = reference::states(&history, until, 10, snapshot);
            prop_assert_eq!(&run(1, history.clone(), until), &want);
            prop_assert_eq!(&run(2, history, until), &want);
        }
    }
}
