//! Data access of the REST reads: every answer the routes give comes from a function here.
//!
//! The present comes from the hub (the sticky value of each state room). History (logs,
//! alerts) comes from the hub's stream tails (the last [`crate::hub::STREAM_TAIL`] events of a
//! room) merged with what the store read ([`crate::store::history`]) when there is a store:
//! the functions here take the stored part as an argument, so this module stays free of I/O and
//! of HTTP.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use crate::hub::{Hub, Raw};
use crate::ingest::feed::{MapImage, MapImages};
use crate::query::{OrderBy, TaskQuery, Window};

/// The present value of a state room.
pub fn value(hub: &Hub, room: &str) -> Option<Raw> {
    hub.get(room).and_then(|(_, v)| v)
}

/// Whether a state room ever had a value (a room whose condition ended has none now but is
/// known).
pub fn known(hub: &Hub, room: &str) -> bool {
    hub.get(room).is_some_and(|(seq, _)| seq > 0)
}

fn parse(raw: &Raw) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// The entity names (`{name}` of `<prefix>{name}<suffix>`) and present values of the state
/// rooms of one kind, by name.
pub fn states(hub: &Hub, prefix: &str, suffix: &str) -> Vec<(String, Raw)> {
    hub.values(prefix, suffix)
        .into_iter()
        .filter_map(|(room, v)| {
            let name = room.strip_prefix(prefix)?.strip_suffix(suffix)?;
            (!name.is_empty() && !name.contains('/')).then(|| (name.to_string(), v))
        })
        .collect()
}

// ---- building ----

pub fn building_map(hub: &Hub) -> Option<Raw> {
    value(hub, "/building_map")
}

/// The doors of every level of the building map (rmf-web's `GET /doors`: a flat list of the
/// map's `Door` messages).
pub fn map_doors(hub: &Hub) -> Vec<Value> {
    let Some(map) = building_map(hub).map(|m| parse(&m)) else {
        return Vec::new();
    };
    map["levels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|level| level["doors"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The lifts of the building map.
pub fn map_lifts(hub: &Hub) -> Vec<Value> {
    building_map(hub)
        .map(|m| parse(&m)["lifts"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

/// An image of the latest building map.
pub fn map_image(images: &MapImages, level: &str, image: &str) -> Option<MapImage> {
    images.get(level, image)
}

pub fn fire_alarm_trigger(hub: &Hub) -> Option<Raw> {
    value(hub, "/building_map/fire_alarm_trigger")
}

// ---- fleets and robots ----

pub fn fleets(hub: &Hub) -> Vec<Raw> {
    states(hub, "/fleets/", "/state")
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

/// A robot is known from its first sample on (it then always has a health record).
pub fn robot_known(hub: &Hub, fleet: &str, robot: &str) -> bool {
    known(hub, &format!("/robots/{fleet}/{robot}/health"))
}

/// A fleet is known from its first fleet state, or its first robot (ROS-only fleets have no
/// fleet-adapter state).
pub fn fleet_known(hub: &Hub, name: &str) -> bool {
    known(hub, &format!("/fleets/{name}/state"))
        || !states(hub, &format!("/robots/{name}/"), "/health").is_empty()
}

/// A log entry's time (entries without one are at 0).
fn entry_time(entry: &Value) -> u64 {
    entry["unix_millis_time"].as_u64().unwrap_or(0)
}

/// The entries of `entries` in `window` (all when there is none).
fn in_window(entries: &Value, window: Option<Window>) -> Vec<Value> {
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| window.is_none_or(|w| w.contains(entry_time(e))))
        .cloned()
        .collect()
}

/// Log entries by stream, as [`crate::store::history::Streams`].
pub use crate::store::history::Streams;

/// The entries of `b` added to `a`, one entry per `seq` per stream (the first seen), in `seq`
/// order (entries without a seq last, all kept). A stream present in either is present.
pub fn merge_streams(mut a: Streams, b: Streams) -> Streams {
    for (stream, entries) in b {
        a.entry(stream).or_default().extend(entries);
    }
    for entries in a.values_mut() {
        let seq = |e: &Value| e["seq"].as_i64();
        entries.sort_by_key(|e| seq(e).unwrap_or(i64::MAX));
        let mut seen = HashSet::new();
        entries.retain(|e| seq(e).is_none_or(|s| seen.insert(s)));
    }
    a
}

/// The entries in `window` of the recent events of a log room, by stream: an event's `log` is
/// stream `""`, and `nested(event)` gives the other streams of the event.
fn tail_streams(
    hub: &Hub,
    room: &str,
    window: Option<Window>,
    nested: impl Fn(&Value, &mut dyn FnMut(String, &Value)),
) -> Streams {
    let mut out = Streams::new();
    for event in hub.tail(room) {
        let event = parse(&event);
        if !event["log"].is_null() {
            out.entry(String::new())
                .or_default()
                .extend(in_window(&event["log"], window));
        }
        nested(&event, &mut |stream, entries| {
            out.entry(stream)
                .or_default()
                .extend(in_window(entries, window))
        });
    }
    merge_streams(out, Streams::new())
}

/// A fleet's recent log entries in `window`, by stream (`""` and the robot names); `None` for
/// an unknown fleet.
pub fn fleet_log_streams(hub: &Hub, name: &str, window: Option<Window>) -> Option<Streams> {
    let streams = tail_streams(hub, &format!("/fleets/{name}/log"), window, |event, add| {
        for (robot, entries) in event["robots"].as_object().into_iter().flatten() {
            add(robot.clone(), entries);
        }
    });
    (!streams.is_empty() || fleet_known(hub, name)).then_some(streams)
}

/// A fleet's log as rmf-web's `FleetLog` `{name, log, robots: {robot: [entry]}}` (every robot
/// heard from, with its entries, possibly none).
pub fn fleet_log(name: &str, mut streams: Streams) -> Value {
    let log = streams.remove("").unwrap_or_default();
    json!({"name": name, "log": log, "robots": streams})
}

/// A task's recent log entries in `window`, by stream (`""`, `"{phase}"`, `"{phase}/{event}"`);
/// `None` for a task with neither a state nor a log.
pub fn task_log_streams(hub: &Hub, task_id: &str, window: Option<Window>) -> Option<Streams> {
    let streams = tail_streams(
        hub,
        &format!("/tasks/{task_id}/log"),
        window,
        |event, add| {
            for (id, phase) in event["phases"].as_object().into_iter().flatten() {
                add(id.clone(), &phase["log"]);
                for (event_id, entries) in phase["events"].as_object().into_iter().flatten() {
                    add(format!("{id}/{event_id}"), entries);
                }
            }
        },
    );
    (!streams.is_empty() || known(hub, &format!("/tasks/{task_id}/state"))).then_some(streams)
}

/// A task's log as rmf-web's `TaskEventLog` `{task_id, log, phases: {phase: {log, events:
/// {event: [entry]}}}}` (every phase and event heard of, with its entries).
pub fn task_log(task_id: &str, streams: Streams) -> Value {
    let mut log = Vec::new();
    let mut phases: BTreeMap<String, (Vec<Value>, Map<String, Value>)> = BTreeMap::new();
    for (stream, entries) in streams {
        match stream.split_once('/') {
            _ if stream.is_empty() => log = entries,
            Some((phase, event)) => {
                let p = phases.entry(phase.to_string()).or_default();
                p.1.insert(event.to_string(), Value::Array(entries));
            }
            None => phases.entry(stream).or_default().0 = entries,
        }
    }
    let phases: Map<String, Value> = phases
        .into_iter()
        .map(|(id, (log, events))| (id, json!({"log": log, "events": events})))
        .collect();
    json!({"task_id": task_id, "log": log, "phases": phases})
}

/// Booking labels as an object: `"k=v"` gives `k: v`, a label without `=` gives `label: ""`,
/// a later label wins over an earlier one with the same key (rmf-web's `Labels.from_strings`).
pub fn labels(strings: &[&str]) -> Map<String, Value> {
    strings
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.to_string(), Value::from(v)),
            None => (s.to_string(), Value::from("")),
        })
        .collect()
}

fn booking_labels(task: &Value) -> Vec<&str> {
    task["booking"]["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The booking labels of a task state as an object (empty for a task without labels).
pub fn task_booking_labels(state: &Raw) -> Map<String, Value> {
    let state = parse(state);
    let strings: Vec<&str> = booking_labels(&state)
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    labels(&strings)
}

/// What a task query reads of a task state.
struct TaskRow {
    id: String,
    category: Option<String>,
    requester: Option<String>,
    assigned_to: Option<String>,
    status: Option<String>,
    request_time: Option<u64>,
    start_time: Option<u64>,
    finish_time: Option<u64>,
    labels: Map<String, Value>,
    raw: Raw,
}

impl TaskRow {
    fn of(id: String, raw: Raw) -> TaskRow {
        let v = parse(&raw);
        let text = |v: &Value| v.as_str().map(str::to_string);
        let millis = |v: &Value| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64));
        TaskRow {
            category: text(&v["category"]),
            requester: text(&v["booking"]["requester"]),
            assigned_to: text(&v["assigned_to"]["name"]),
            status: text(&v["status"]),
            request_time: millis(&v["booking"]["unix_millis_request_time"]),
            start_time: millis(&v["unix_millis_start_time"]),
            finish_time: millis(&v["unix_millis_finish_time"]),
            labels: labels(&booking_labels(&v)),
            id,
            raw,
        }
    }

    fn matches(&self, q: &TaskQuery) -> bool {
        let one_of = |list: &Option<Vec<String>>, v: Option<&str>| {
            list.as_ref()
                .is_none_or(|l| v.is_some_and(|v| l.iter().any(|x| x == v)))
        };
        let within =
            |w: Option<Window>, t: Option<u64>| w.is_none_or(|w| t.is_some_and(|t| w.contains(t)));
        one_of(&q.task_id, Some(&self.id))
            && one_of(&q.category, self.category.as_deref())
            && one_of(&q.requester, self.requester.as_deref())
            && one_of(&q.assigned_to, self.assigned_to.as_deref())
            && one_of(&q.status, self.status.as_deref())
            && within(q.request_time, self.request_time)
            && within(q.start_time, self.start_time)
            && within(q.finish_time, self.finish_time)
            && q.labels
                .iter()
                .all(|(k, v)| self.labels.get(k).and_then(Value::as_str) == Some(v))
    }

    /// Compares by one field, a missing value after every present one (PostgreSQL's `NULLS
    /// LAST` for ascending; the whole order is reversed for descending).
    fn cmp_by(&self, other: &TaskRow, field: &str) -> Ordering {
        fn nulls_last<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
            match (a, b) {
                (Some(a), Some(b)) => a.cmp(&b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        }
        match field {
            "id" | "id_" => self.id.cmp(&other.id),
            "category" => nulls_last(self.category.as_ref(), other.category.as_ref()),
            "assigned_to" => nulls_last(self.assigned_to.as_ref(), other.assigned_to.as_ref()),
            "status" => nulls_last(self.status.as_ref(), other.status.as_ref()),
            "requester" => nulls_last(self.requester.as_ref(), other.requester.as_ref()),
            "unix_millis_request_time" => nulls_last(self.request_time, other.request_time),
            "unix_millis_start_time" => nulls_last(self.start_time, other.start_time),
            "unix_millis_finish_time" => nulls_last(self.finish_time, other.finish_time),
            _ => match field.strip_prefix("label=") {
                Some(key) => nulls_last(
                    self.labels.get(key).and_then(Value::as_str),
                    other.labels.get(key).and_then(Value::as_str),
                ),
                None => Ordering::Equal,
            },
        }
    }

    fn cmp_order(&self, other: &TaskRow, order: &[OrderBy]) -> Ordering {
        order
            .iter()
            .map(|o| {
                let c = self.cmp_by(other, &o.field);
                if o.descending { c.reverse() } else { c }
            })
            .find(|c| c.is_ne())
            .unwrap_or(Ordering::Equal)
            // Equal keys (and no order at all) go by task id, so that pages are stable.
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// The task states a query selects, in its order, one page.
pub fn tasks(hub: &Hub, q: &TaskQuery) -> Vec<Raw> {
    tasks_with(hub, q, Vec::new())
}

/// [`tasks`] over the hub's task states and `stored` ones (the store's answer to
/// [`TaskQuery::first_pages`], read while the store lagged behind the hub): the hub's state of a
/// task wins, so a task a room has shown is never missing from the answer (DESIGN.md invariant 9).
pub fn tasks_with(hub: &Hub, q: &TaskQuery, stored: Vec<Raw>) -> Vec<Raw> {
    let mut by_id: BTreeMap<String, Raw> = stored
        .into_iter()
        .filter_map(|raw| {
            let id = parse(&raw)["booking"]["id"].as_str()?.to_string();
            Some((id, raw))
        })
        .collect();
    by_id.extend(states(hub, "/tasks/", "/state"));
    let mut rows: Vec<TaskRow> = by_id
        .into_iter()
        .map(|(id, raw)| TaskRow::of(id, raw))
        .filter(|r| r.matches(q))
        .collect();
    rows.sort_by(|a, b| a.cmp_order(b, &q.pagination.order_by));
    rows.into_iter()
        .skip(q.pagination.offset)
        .take(q.pagination.limit)
        .map(|r| r.raw)
        .collect()
}

// ---- alerts ----

/// The latest event of each id of a stream room.
fn latest_by_id(hub: &Hub, room: &str) -> BTreeMap<String, Value> {
    let mut latest = BTreeMap::new();
    for event in hub.tail(room) {
        let event = parse(&event);
        if let Some(id) = event["id"].as_str().map(str::to_string) {
            latest.insert(id, event);
        }
    }
    latest
}

/// The alert requests and responses known: the store's (`stored`, see
/// [`crate::store::history::History::alerts`]) and the hub's recent ones, the hub's winning.
pub struct Alerts {
    requests: BTreeMap<String, Value>,
    responses: BTreeMap<String, Value>,
}

impl Alerts {
    pub fn new(hub: &Hub, stored: Vec<crate::store::history::AlertRecord>) -> Alerts {
        let mut alerts = Alerts {
            requests: BTreeMap::new(),
            responses: BTreeMap::new(),
        };
        let id = |v: &Value| v["id"].as_str().map(str::to_string);
        for (request, response) in stored {
            if let Some(i) = id(&request) {
                if let Some(r) = response {
                    alerts.responses.insert(i.clone(), r);
                }
                alerts.requests.insert(i, request);
            }
        }
        for (room, map) in [
            ("/alerts/requests", &mut alerts.requests),
            ("/alerts/responses", &mut alerts.responses),
        ] {
            for (i, v) in latest_by_id(hub, room) {
                map.insert(i, v);
            }
        }
        alerts
    }

    pub fn request(mut self, id: &str) -> Option<Value> {
        self.requests.remove(id)
    }

    pub fn response(mut self, id: &str) -> Option<Value> {
        self.responses.remove(id)
    }

    /// Whether an alert expects a response and has none.
    fn unresponded(&self, alert: &Value) -> bool {
        alert["responses_available"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
            && alert["id"]
                .as_str()
                .is_some_and(|id| !self.responses.contains_key(id))
    }

    /// The requests that pass `keep`, oldest alert first (then by id).
    fn select(self, keep: impl Fn(&Alerts, &Value) -> bool) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .requests
            .values()
            .filter(|a| keep(&self, a))
            .cloned()
            .collect();
        out.sort_by_key(|a| a["unix_millis_alert_time"].as_u64().unwrap_or(0));
        out
    }

    /// The alerts of a task; with `only_unresponded`, those expecting a response that has not
    /// come.
    pub fn of_task(self, task_id: &str, only_unresponded: bool) -> Vec<Value> {
        self.select(|all, a| a["task_id"] == task_id && (!only_unresponded || all.unresponded(a)))
    }

    /// The alerts expecting a response that has not come.
    pub fn unresponded_all(self) -> Vec<Value> {
        self.select(|all, a| all.unresponded(a))
    }
}

// ---- beacons ----

/// The latest state of every recent beacon, by id.
pub fn beacons(hub: &Hub) -> Vec<Value> {
    latest_by_id(hub, "/beacons").into_values().collect()
}

pub fn beacon(hub: &Hub, id: &str) -> Option<Value> {
    latest_by_id(hub, "/beacons").remove(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_merge_by_seq_in_seq_order() {
        let e = |seq: i64, text: &str| json!({"seq": seq, "text": text});
        let stored = Streams::from([
            ("".to_string(), vec![e(0, "a"), e(1, "b")]),
            ("1".to_string(), vec![e(0, "p")]),
        ]);
        let recent = Streams::from([
            ("".to_string(), vec![e(2, "c"), e(1, "b")]),
            ("1/0".to_string(), vec![]),
        ]);
        let merged = merge_streams(stored, recent);
        assert_eq!(merged[""], vec![e(0, "a"), e(1, "b"), e(2, "c")]);
        assert_eq!(
            task_log("t", merged),
            json!({"task_id": "t", "log": [e(0, "a"), e(1, "b"), e(2, "c")],
                "phases": {"1": {"log": [e(0, "p")], "events": {"0": []}}}})
        );
    }

    /// A task state as the store and the hub hold it.
    fn task(id: &str, status: &str, requested: u64) -> String {
        json!({"booking": {"id": id, "unix_millis_request_time": requested}, "status": status})
            .to_string()
    }

    #[test]
    fn a_lagging_store_answer_is_completed_and_corrected_by_the_hub() {
        use rmf_dash_dataflows::derived::Output;
        use rmf_dash_dataflows::model::input::Payload;
        let hub = Hub::new();
        let live = |id: &str, status: &str, at: u64| {
            let room = format!("/tasks/{id}/state");
            (Output::new(room, Payload(task(id, status, at).into())), 1)
        };
        let changes = vec![live("b", "completed", 2), live("c", "underway", 3)];
        hub.apply(&crate::engine::Batch { time: 5, changes });
        // The store has `a` (left memory long ago) and an older state of `b`, not yet `c`.
        let stored =
            [("a", 1), ("b", 2)].map(|(id, at)| crate::hub::raw(&task(id, "underway", at)));
        // No order given: by task id.
        let mut q = TaskQuery::default();
        let ids = |answer: Vec<Raw>| -> Vec<(String, String)> {
            let v = answer.iter().map(parse);
            v.map(|v| (v["booking"]["id"].to_string(), v["status"].to_string()))
                .collect()
        };
        let all = tasks_with(&hub, &q, stored.to_vec());
        let want = [("a", "underway"), ("b", "completed"), ("c", "underway")]
            .map(|(i, s)| (format!("\"{i}\""), format!("\"{s}\"")));
        assert_eq!(ids(all), want);
        q.pagination.offset = 1;
        q.pagination.limit = 1;
        assert_eq!(q.first_pages().pagination.limit, 2);
        let page = tasks_with(&hub, &q, stored.to_vec());
        assert_eq!(ids(page), want[1..2]);
    }

    #[test]
    fn labels_parse_like_rmf_web() {
        let l = labels(&["site=hotel", "flag", "k=a=b", "site=office"]);
        assert_eq!(
            Value::Object(l),
            json!({"site": "office", "flag": "", "k": "a=b"})
        );
    }

    fn row(id: &str, start: Option<u64>, status: &str) -> TaskRow {
        let v = json!({"booking": {"id": id, "labels": ["a=1"]}, "status": status,
            "unix_millis_start_time": start});
        TaskRow::of(id.into(), crate::hub::raw(&v.to_string()))
    }

    #[test]
    fn orders_with_missing_values_last_then_by_id() {
        let rows = [
            row("b", None, "queued"),
            row("a", Some(5), "completed"),
            row("c", Some(1), "queued"),
        ];
        let order = |field: &str, descending| {
            let mut ids: Vec<&TaskRow> = rows.iter().collect();
            let o = [OrderBy {
                field: field.into(),
                descending,
            }];
            ids.sort_by(|a, b| a.cmp_order(b, &o));
            ids.iter().map(|r| r.id.as_str()).collect::<Vec<_>>()
        };
        assert_eq!(order("unix_millis_start_time", false), ["c", "a", "b"]);
        assert_eq!(order("unix_millis_start_time", true), ["b", "a", "c"]);
        assert_eq!(order("status", false), ["a", "b", "c"]);
        assert_eq!(order("status", true), ["b", "c", "a"]);
    }

    #[test]
    fn filters_need_the_value() {
        let r = row("a", None, "queued");
        let q = TaskQuery {
            start_time: Some(Window { from: 0, to: 10 }),
            ..TaskQuery::default()
        };
        assert!(!r.matches(&q));
        let q = TaskQuery {
            labels: vec![("a".into(), "1".into())],
            status: Some(vec!["queued".into()]),
            ..TaskQuery::default()
        };
        assert!(r.matches(&q));
        let q = TaskQuery {
            status: Some(vec![]),
            ..TaskQuery::default()
        };
        assert!(!r.matches(&q));
    }
}
