//! Data access of the REST reads: every answer the routes give comes from a function here.
//!
//! Without the database, the present comes from the hub (the sticky value of each state room)
//! and the history from the hub's stream tails (the last [`crate::hub::STREAM_TAIL`] events of a
//! log, alert or beacon room). When the PostgreSQL store arrives, it implements the same
//! functions (task queries, logs, alerts and beacons over indexed tables) and the routes do not
//! change: keep the routes free of data access and this module free of HTTP.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use super::query::{OrderBy, Pagination, Window};
use crate::hub::{Hub, Raw};
use crate::ingest::feed::{MapImage, MapImages};

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

/// A fleet's log in `window`: the entries of its recent `/fleets/{name}/log` events merged, as
/// rmf-web's `FleetLog` `{name, log, robots: {robot: [entry]}}` (every robot heard from, with
/// its entries in the window, possibly none). `None` for an unknown fleet.
pub fn fleet_log(hub: &Hub, name: &str, window: Option<Window>) -> Option<Value> {
    let events = hub.tail(&format!("/fleets/{name}/log"));
    if events.is_empty() && !fleet_known(hub, name) {
        return None;
    }
    let mut log = Vec::new();
    let mut robots: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for event in &events {
        let event = parse(event);
        log.extend(in_window(&event["log"], window));
        for (robot, entries) in event["robots"].as_object().into_iter().flatten() {
            robots
                .entry(robot.clone())
                .or_default()
                .extend(in_window(entries, window));
        }
    }
    Some(json!({"name": name, "log": log, "robots": robots}))
}

// ---- tasks ----

/// A task's log in `window`: its recent `/tasks/{id}/log` events merged, as rmf-web's
/// `TaskEventLog` `{task_id, log, phases: {phase: {log, events: {event: [entry]}}}}` (every
/// phase and event heard of, with its entries in the window). `None` for a task with neither a
/// state nor a log.
pub fn task_log(hub: &Hub, task_id: &str, window: Option<Window>) -> Option<Value> {
    let events = hub.tail(&format!("/tasks/{task_id}/log"));
    if events.is_empty() && !known(hub, &format!("/tasks/{task_id}/state")) {
        return None;
    }
    type Phase = (Vec<Value>, BTreeMap<String, Vec<Value>>);
    let mut log = Vec::new();
    let mut phases: BTreeMap<String, Phase> = BTreeMap::new();
    for event in &events {
        let event = parse(event);
        log.extend(in_window(&event["log"], window));
        for (id, phase) in event["phases"].as_object().into_iter().flatten() {
            let p = phases.entry(id.clone()).or_default();
            p.0.extend(in_window(&phase["log"], window));
            for (event_id, entries) in phase["events"].as_object().into_iter().flatten() {
                p.1.entry(event_id.clone())
                    .or_default()
                    .extend(in_window(entries, window));
            }
        }
    }
    let phases: Map<String, Value> = phases
        .into_iter()
        .map(|(id, (log, events))| (id, json!({"log": log, "events": events})))
        .collect();
    Some(json!({"task_id": task_id, "log": log, "phases": phases}))
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

/// The booking labels of a task: `None` for an unknown task, an empty object for a task
/// without labels.
pub fn task_booking_labels(hub: &Hub, task_id: &str) -> Option<Map<String, Value>> {
    let state = parse(&value(hub, &format!("/tasks/{task_id}/state"))?);
    let strings: Vec<&str> = booking_labels(&state)
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    Some(labels(&strings))
}

/// The task statuses of RMF's task_state schema (other values in a `status` filter are ignored,
/// as rmf-web does).
pub const TASK_STATUSES: [&str; 12] = [
    "uninitialized",
    "blocked",
    "error",
    "failed",
    "queued",
    "standby",
    "underway",
    "delayed",
    "skipped",
    "canceled",
    "killed",
    "completed",
];

/// The fields `GET /tasks` sorts by (`id_` is rmf-web's column name for `id`); `label=<key>`
/// sorts by a booking label.
pub const TASK_ORDER_FIELDS: [&str; 9] = [
    "id",
    "id_",
    "category",
    "assigned_to",
    "status",
    "requester",
    "unix_millis_request_time",
    "unix_millis_start_time",
    "unix_millis_finish_time",
];

/// A `GET /tasks` query: every filter given must hold (a list filter holds when the task's
/// value is one of the list; a time window when the task has that time and it is in the
/// window; labels when the task has every `key=value`).
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub task_id: Option<Vec<String>>,
    pub category: Option<Vec<String>>,
    pub requester: Option<Vec<String>>,
    /// Robot names (`assigned_to.name`).
    pub assigned_to: Option<Vec<String>>,
    /// Known statuses only: an empty list matches no task.
    pub status: Option<Vec<String>>,
    pub labels: Vec<(String, String)>,
    pub request_time: Option<Window>,
    pub start_time: Option<Window>,
    pub finish_time: Option<Window>,
    pub pagination: Pagination,
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
    let mut rows: Vec<TaskRow> = states(hub, "/tasks/", "/state")
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

/// The latest event of each id of a stream room, in the order the ids first appeared.
fn latest_by_id(hub: &Hub, room: &str) -> Vec<Value> {
    let mut order: Vec<String> = Vec::new();
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    for event in hub.tail(room) {
        let event = parse(&event);
        let Some(id) = event["id"].as_str().map(str::to_string) else {
            continue;
        };
        if latest.insert(id.clone(), event).is_none() {
            order.push(id);
        }
    }
    order
        .into_iter()
        .filter_map(|id| latest.remove(&id))
        .collect()
}

/// Every recent alert request (latest version of each id).
pub fn alert_requests(hub: &Hub) -> Vec<Value> {
    latest_by_id(hub, "/alerts/requests")
}

pub fn alert_request(hub: &Hub, id: &str) -> Option<Value> {
    alert_requests(hub).into_iter().find(|a| a["id"] == id)
}

pub fn alert_response(hub: &Hub, id: &str) -> Option<Value> {
    latest_by_id(hub, "/alerts/responses")
        .into_iter()
        .find(|a| a["id"] == id)
}

fn responded(hub: &Hub) -> HashSet<String> {
    latest_by_id(hub, "/alerts/responses")
        .into_iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

/// Whether an alert expects a response and has none.
fn unresponded(alert: &Value, responded: &HashSet<String>) -> bool {
    alert["responses_available"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
        && alert["id"]
            .as_str()
            .is_some_and(|id| !responded.contains(id))
}

/// The alerts of a task; with `only_unresponded`, those expecting a response that has not come.
pub fn alerts_of_task(hub: &Hub, task_id: &str, only_unresponded: bool) -> Vec<Value> {
    let responded = responded(hub);
    alert_requests(hub)
        .into_iter()
        .filter(|a| a["task_id"] == task_id)
        .filter(|a| !only_unresponded || unresponded(a, &responded))
        .collect()
}

/// The alerts expecting a response that has not come.
pub fn unresponded_alerts(hub: &Hub) -> Vec<Value> {
    let responded = responded(hub);
    alert_requests(hub)
        .into_iter()
        .filter(|a| unresponded(a, &responded))
        .collect()
}

// ---- beacons ----

/// The latest state of every recent beacon, by id.
pub fn beacons(hub: &Hub) -> Vec<Value> {
    let mut all = latest_by_id(hub, "/beacons");
    all.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    all
}

pub fn beacon(hub: &Hub, id: &str) -> Option<Value> {
    latest_by_id(hub, "/beacons")
        .into_iter()
        .find(|b| b["id"] == id)
}

#[cfg(test)]
mod tests {
    use super::*;

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
