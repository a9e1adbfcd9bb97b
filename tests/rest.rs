//! The REST reads of COMPAT.md against `rmf-dash serve` replaying generated recordings, with
//! authentication on. Every answer is checked against what the recording says (`trace dump`:
//! the last message of each entity) or what the engine derives from it (`replay --emit jsonl`:
//! the last value of each room, the events of each stream), limited to the logical times the
//! server has completed (its output frontier). Unknown names are 404, a missing or bad token 401,
//! bad query parameters 422 in FastAPI's shape. `GET /tasks` filters, sorting and pagination are
//! checked against the same queries computed here over the few hundred tasks of a site.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Proc, Reply, Server, bin, emitted};

/// A plain HTTP/1.1 GET on loopback.
fn http_get(port: u16, path: &str, authorization: Option<&str>) -> Reply {
    common::http(port, "GET", path, authorization, None)
}

const SECRET: &str = "rest-test-secret";
const TICK_MS: u64 = 10;

/// A path segment, percent-encoded (alert ids contain `/`).
fn enc(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn token() -> String {
    common::token(SECRET, "reader")
}

// ---- recordings and what they say ----

struct Recording {
    path: PathBuf,
    messages: u64,
}

fn generate(name: &str, args: &[&str]) -> Recording {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rest");
    std::fs::create_dir_all(&dir).expect("work dir");
    let path = dir.join(format!("{name}.mcap"));
    let out = bin()
        .args(["trace", "gen", "--no-ws"])
        .args(args)
        .arg("-o")
        .arg(&path)
        .output()
        .expect("trace gen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = bin()
        .args(["trace", "info", "--json"])
        .arg(&path)
        .output()
        .expect("trace info");
    assert!(info.status.success());
    let info: Value = serde_json::from_slice(&info.stdout).expect("info json");
    let messages = info["messages"].as_u64().expect("messages");
    Recording { path, messages }
}

fn hotel() -> &'static Recording {
    static R: OnceLock<Recording> = OnceLock::new();
    R.get_or_init(|| {
        generate(
            "hotel",
            &[
                "--preset",
                "hotel",
                "--duration",
                "300s",
                "--scenario",
                "all",
            ],
        )
    })
}

fn site() -> &'static Recording {
    static R: OnceLock<Recording> = OnceLock::new();
    R.get_or_init(|| {
        generate(
            "site",
            &[
                "--preset",
                "site",
                "--fleets",
                "5",
                "--robots-per-fleet",
                "10",
                "--duration",
                "10m",
            ],
        )
    })
}

/// The logical time of a receive time (ns): ms rounded up to the tick.
fn logical(ns: u64) -> u64 {
    ns.div_ceil(1_000_000).div_ceil(TICK_MS) * TICK_MS
}

/// `(logical time, topic, message)` of every message of `topics`, in log order.
fn dump(rec: &Recording, topics: &[&str], full_bytes: bool) -> Vec<(u64, String, Value)> {
    let mut cmd = bin();
    cmd.args(["trace", "dump"]).arg(&rec.path);
    for t in topics {
        cmd.args(["--topic", t]);
    }
    if full_bytes {
        cmd.arg("--full-bytes");
    }
    let out = cmd.output().expect("trace dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("dump line");
            let t = logical(v["log_time"].as_u64().expect("log_time"));
            (
                t,
                v["topic"].as_str().unwrap_or_default().to_string(),
                v["message"].take(),
            )
        })
        .collect()
}

/// The `data` object of a fleet-adapter JSON message (a `{type, data}` frame in a String).
fn json_data(message: &Value) -> Value {
    let frame: Value =
        serde_json::from_str(message["data"].as_str().expect("data")).expect("frame");
    frame["data"].clone()
}

/// The last message of each entity (named by `key`) of `topic` before `frontier`.
fn last_by(
    dumped: &[(u64, String, Value)],
    topic: &str,
    frontier: u64,
    key: impl Fn(&Value) -> String,
) -> BTreeMap<String, Value> {
    dumped
        .iter()
        .filter(|(t, top, _)| top == topic && *t < frontier)
        .map(|(_, _, m)| (key(m), m.clone()))
        .collect()
}

/// One output change of the engine.
struct Change {
    time: u64,
    room: String,
    diff: i64,
    value: Value,
}

fn engine_changes(rec: &Recording) -> Vec<Change> {
    emitted(&rec.path)
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("jsonl line");
            Change {
                time: v["time"].as_u64().expect("time"),
                room: v["room"].as_str().expect("room").to_string(),
                diff: v["diff"].as_i64().expect("diff"),
                value: v["value"].take(),
            }
        })
        .collect()
}

fn hotel_changes() -> &'static [Change] {
    static C: OnceLock<Vec<Change>> = OnceLock::new();
    C.get_or_init(|| engine_changes(hotel()))
}

/// The value of every state room after the changes before `frontier` (rooms whose value was
/// retracted are absent).
fn final_values(changes: &[Change], frontier: u64) -> BTreeMap<String, Value> {
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for c in changes.iter().filter(|c| c.time < frontier) {
        if c.diff > 0 {
            last.insert(c.room.clone(), c.value.clone());
        } else if last.get(&c.room) == Some(&c.value) {
            last.remove(&c.room);
        }
    }
    last
}

/// The events of a stream room before `frontier`.
fn events(changes: &[Change], room: &str, frontier: u64) -> Vec<Value> {
    changes
        .iter()
        .filter(|c| c.room == room && c.diff > 0 && c.time < frontier)
        .map(|c| c.value.clone())
        .collect()
}

// ---- the server ----

/// `rmf-dash serve` replaying a recording to its end; killed when dropped.
struct Served {
    _proc: Proc,
    port: u16,
    /// The output frontier once the replay is done: every output before it is served.
    frontier: u64,
    /// The server's "now" for relative windows.
    now: u64,
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

fn start(rec: &Recording) -> Served {
    let (proc, port) = Server::serve()
        .args(["--no-db", "--speed", "max", "--jwt-secret", SECRET])
        .arg("--replay")
        .arg(&rec.path)
        .start();
    let mut served = Served {
        _proc: proc,
        port,
        frontier: 0,
        now: 0,
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no server on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Done when every message was fed, the engine has caught up, and nothing moves any more.
    let mut previous = None;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the replay did not finish"
        );
        std::thread::sleep(Duration::from_millis(250));
        let metrics = http_get(port, "/metrics", None).text();
        let records = metric(&metrics, "rmf_dash_ingest_records_total{source=\"replay\"}");
        let changes = metric(&metrics, "rmf_dash_output_changes_total");
        let health = http_get(port, "/health", None).json();
        let engine = &health["engine"];
        let (input, frontier) = (
            engine["input_time_ms"].as_u64(),
            engine["output_frontier_ms"].as_u64(),
        );
        let state = (records, changes, input, frontier);
        if records == Some(rec.messages) && frontier >= input && previous == Some(state) {
            served.frontier = frontier.unwrap_or_default();
            served.now = frontier.max(input).unwrap_or_default();
            return served;
        }
        previous = Some(state);
    }
}

/// One server per recording, shared by the tests running at the same time.
fn shared(slot: &'static Mutex<Weak<Served>>, rec: &Recording) -> Arc<Served> {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = slot.upgrade() {
        return s;
    }
    let s = Arc::new(start(rec));
    *slot = Arc::downgrade(&s);
    s
}

fn hotel_server() -> Arc<Served> {
    static S: Mutex<Weak<Served>> = Mutex::new(Weak::new());
    shared(&S, hotel())
}

impl Served {
    fn get(&self, path: &str) -> Reply {
        http_get(self.port, path, Some(&format!("Bearer {}", token())))
    }

    /// The JSON answer of a route that must answer 200.
    fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        assert_eq!(
            r.header("content-type").unwrap_or_default(),
            "application/json",
            "GET {path}"
        );
        r.json()
    }

    /// A route that must answer 404 `{"detail": "<text>"}`.
    fn not_found(&self, path: &str) {
        let r = self.get(path);
        assert_eq!(r.status, 404, "GET {path}: {}", r.text());
        assert!(
            r.json()["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "GET {path}"
        );
    }

    /// A route that must answer 422 in FastAPI's shape about `param`.
    fn invalid(&self, path: &str, param: &str) {
        let r = self.get(path);
        assert_eq!(r.status, 422, "GET {path}: {}", r.text());
        let detail = r.json()["detail"].clone();
        assert_eq!(
            detail[0]["loc"],
            json!(["query", param]),
            "GET {path}: {detail}"
        );
        assert!(detail[0]["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

// ---- the tests ----

/// Every read route of the task, as the OpenAPI document must list it.
const READ_ROUTES: &[&str] = &[
    "/alerts/request/{alert_id}",
    "/alerts/request/{alert_id}/response",
    "/alerts/requests/task/{task_id}",
    "/alerts/unresponded_requests",
    "/beacons",
    "/beacons/{beacon_id}",
    "/building_map",
    "/building_map/images/{level}/{image}",
    "/building_map/previous_fire_alarm_trigger",
    "/dispensers",
    "/dispensers/{guid}/health",
    "/dispensers/{guid}/state",
    "/doors",
    "/doors/{door_name}/health",
    "/doors/{door_name}/state",
    "/fleets",
    "/fleets/{name}/log",
    "/fleets/{name}/state",
    "/fleets/{name}/task_queue",
    "/fleets/{name}/throughput_15m",
    "/fleets/{name}/throughput_1m",
    "/ingestors",
    "/ingestors/{guid}/health",
    "/ingestors/{guid}/state",
    "/lifts",
    "/lifts/{lift_name}/health",
    "/lifts/{lift_name}/state",
    "/openapi.json",
    "/robots/{fleet}/{robot}/battery_low",
    "/robots/{fleet}/{robot}/health",
    "/robots/{fleet}/{robot}/stuck",
    "/robots/{fleet}/{robot}/task",
    "/tasks",
    "/tasks/requests",
    "/tasks/{task_id}/booking_label",
    "/tasks/{task_id}/log",
    "/tasks/{task_id}/request",
    "/tasks/{task_id}/state",
];

/// A path template with every `{param}` replaced by `x`.
fn fill(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_is_documented_and_needs_a_token() {
    let s = hotel_server();
    let doc = http_get(s.port, "/openapi.json", None);
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for route in READ_ROUTES {
        assert!(
            paths.contains_key(*route),
            "{route} is not in /openapi.json"
        );
    }
    let other = [
        "Bearer nope".to_string(),
        format!("Bearer {}", common::token("another secret", "eve")),
    ];
    let mut checked = 0;
    for (path, item) in paths {
        let Some(op) = item.get("get") else { continue };
        let url = fill(path);
        let public = http_get(s.port, &url, None).status;
        if op.get("security").is_none() {
            assert_ne!(public, 401, "GET {url} is documented as public");
            continue;
        }
        assert_eq!(public, 401, "GET {url} without a token");
        for bad in &other {
            let r = http_get(s.port, &url, Some(bad));
            assert_eq!(r.status, 401, "GET {url} with {bad}");
            assert!(r.json()["detail"].is_string());
        }
        assert_ne!(s.get(&url).status, 401, "GET {url} with a valid token");
        checked += 1;
    }
    // All but the document itself and the map images.
    assert!(
        checked >= READ_ROUTES.len() - 2,
        "only {checked} routes need a token"
    );
    // Parameters are documented as FastAPI documents them.
    let tasks = &doc["paths"]["/tasks"]["get"];
    assert_eq!(tasks["operationId"], "query_task_states_tasks_get");
    let names: Vec<&str> = tasks["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in [
        "task_id",
        "category",
        "label",
        "finish_time_between",
        "limit",
        "offset",
        "order_by",
    ] {
        assert!(names.contains(&p), "/tasks documents {p}");
    }
}

#[test]
fn states_are_the_last_messages_of_the_recording() {
    let s = hotel_server();
    let d = dump(
        hotel(),
        &[
            "/door_states",
            "/lift_states",
            "/dispenser_states",
            "/ingestor_states",
            "/fleet_state_update",
            "/task_state_update",
            "/map",
            "/fire_alarm_trigger",
        ],
        true,
    );
    let f = s.frontier;
    let name = |k: &'static str| move |m: &Value| m[k].as_str().unwrap_or_default().to_string();

    let doors = last_by(&d, "/door_states", f, name("door_name"));
    assert_eq!(doors.len(), 19);
    for (door, state) in &doors {
        assert_eq!(
            &s.json(&format!("/doors/{door}/state")),
            state,
            "door {door}"
        );
    }
    let lifts = last_by(&d, "/lift_states", f, name("lift_name"));
    assert_eq!(lifts.len(), 2);
    for (lift, state) in &lifts {
        assert_eq!(
            &s.json(&format!("/lifts/{lift}/state")),
            state,
            "lift {lift}"
        );
    }
    for (kind, topic) in [
        ("dispensers", "/dispenser_states"),
        ("ingestors", "/ingestor_states"),
    ] {
        let states = last_by(&d, topic, f, name("guid"));
        assert!(!states.is_empty());
        let guids: Vec<Value> = states.keys().map(|g| json!({"guid": g})).collect();
        assert_eq!(s.json(&format!("/{kind}")), Value::Array(guids));
        for (guid, state) in &states {
            assert_eq!(
                &s.json(&format!("/{kind}/{guid}/state")),
                state,
                "{kind} {guid}"
            );
        }
    }

    let fleets: BTreeMap<String, Value> = last_by(&d, "/fleet_state_update", f, |m| {
        json_data(m)["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    })
    .into_iter()
    .map(|(k, m)| (k, common::rmf_web_fleet_state(&json_data(&m))))
    .collect();
    assert_eq!(fleets.len(), 2);
    assert_eq!(
        s.json("/fleets"),
        Value::Array(fleets.values().cloned().collect())
    );
    for (fleet, state) in &fleets {
        assert_eq!(
            &s.json(&format!("/fleets/{fleet}/state")),
            state,
            "fleet {fleet}"
        );
    }

    let tasks: BTreeMap<String, Value> = last_by(&d, "/task_state_update", f, |m| {
        json_data(m)["booking"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    })
    .into_iter()
    .map(|(k, m)| (k, common::rmf_web_task_state(&json_data(&m))))
    .collect();
    assert_eq!(tasks.len(), 15);
    for (id, state) in &tasks {
        assert_eq!(&s.json(&format!("/tasks/{id}/state")), state, "task {id}");
        let labels: serde_json::Map<String, Value> = state["booking"]["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                (k.to_string(), Value::from(v))
            })
            .collect();
        assert!(!labels.is_empty());
        assert_eq!(
            s.json(&format!("/tasks/{id}/booking_label")),
            Value::Object(labels)
        );
    }
    assert_eq!(
        s.json("/tasks?limit=1000"),
        Value::Array(tasks.values().cloned().collect())
    );

    // The building map: images replaced by their URLs, which serve the bytes.
    let (_, _, map) = d.iter().find(|(_, t, _)| t == "/map").expect("a map");
    let mut expected = map.clone();
    let mut images = Vec::new();
    for level in expected["levels"].as_array_mut().expect("levels") {
        let level_name = level["name"].as_str().unwrap_or_default().to_string();
        for image in level["images"].as_array_mut().expect("images") {
            let name = image["name"].as_str().unwrap_or_default().to_string();
            let bytes: Vec<u8> = image["data"]
                .as_array()
                .expect("full bytes")
                .iter()
                .map(|b| b.as_u64().expect("byte") as u8)
                .collect();
            let url = format!("/building_map/images/{level_name}/{name}");
            images.push((url.clone(), image["encoding"].clone(), bytes));
            // Absolute, under the server's public URL (its default: the listener's address).
            image["data"] = Value::from(format!("http://127.0.0.1:{}{url}", s.port));
        }
    }
    assert_eq!(images.len(), 3);
    assert_eq!(s.json("/building_map"), expected);
    for (url, encoding, bytes) in &images {
        assert_eq!(encoding, "png");
        let r = http_get(s.port, url, None);
        assert_eq!(r.status, 200, "GET {url}");
        assert_eq!(r.header("content-type").unwrap_or_default(), "image/png");
        assert_eq!(&r.body, bytes, "GET {url}");
    }
    s.not_found("/building_map/images/L1/nope");
    s.not_found("/building_map/images/nope/L1");
    let doors: Vec<Value> = map["levels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["doors"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(doors.len(), 19);
    assert_eq!(s.json("/doors"), Value::Array(doors));
    assert_eq!(s.json("/lifts"), map["lifts"]);

    // Nothing of these in the recording.
    assert!(!d.iter().any(|(_, t, _)| t == "/fire_alarm_trigger"));
    s.not_found("/building_map/previous_fire_alarm_trigger");
    assert_eq!(s.json("/beacons"), json!([]));
    s.not_found("/beacons/beacon_1");

    for unknown in [
        "/doors/nope/state",
        "/lifts/nope/state",
        "/dispensers/nope/state",
        "/ingestors/nope/state",
        "/fleets/nope/state",
        "/tasks/nope/state",
        "/tasks/nope/booking_label",
        "/tasks/nope/log",
        "/fleets/nope/log",
    ] {
        s.not_found(unknown);
    }
    // Requests are known of the tasks dispatched here only (as rmf-web): these came from RMF.
    let id = tasks.keys().next().expect("a task");
    s.not_found(&format!("/tasks/{id}/request"));
    assert_eq!(s.json(&format!("/tasks/requests?task_ids={id}")), json!([]));
}

/// The entries of a log array in `[from, to]`.
fn entries_in(v: &Value, window: (u64, u64)) -> Vec<Value> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            let t = e["unix_millis_time"].as_u64().unwrap_or(0);
            window.0 <= t && t <= window.1
        })
        .cloned()
        .collect()
}

/// rmf-web's FleetLog of the stream events, entries in the window.
fn fleet_log(name: &str, events: &[Value], window: (u64, u64)) -> Value {
    let mut robots: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in events {
        for (robot, entries) in e["robots"].as_object().into_iter().flatten() {
            robots
                .entry(robot.clone())
                .or_default()
                .extend(entries_in(entries, window));
        }
    }
    json!({"name": name, "log": [], "robots": robots})
}

/// rmf-web's TaskEventLog of the stream events, entries in the window.
fn task_log(id: &str, events: &[Value], window: (u64, u64)) -> Value {
    let mut log = Vec::new();
    let mut phases: BTreeMap<String, (Vec<Value>, BTreeMap<String, Vec<Value>>)> = BTreeMap::new();
    for e in events {
        log.extend(entries_in(&e["log"], window));
        for (pid, p) in e["phases"].as_object().into_iter().flatten() {
            let phase = phases.entry(pid.clone()).or_default();
            phase.0.extend(entries_in(&p["log"], window));
            for (eid, entries) in p["events"].as_object().into_iter().flatten() {
                phase
                    .1
                    .entry(eid.clone())
                    .or_default()
                    .extend(entries_in(entries, window));
            }
        }
    }
    let phases: serde_json::Map<String, Value> = phases
        .into_iter()
        .map(|(k, (log, events))| (k, json!({"log": log, "events": events})))
        .collect();
    json!({"task_id": id, "log": log, "phases": phases})
}

#[test]
fn derived_views_and_streams_are_the_engine_s() {
    let s = hotel_server();
    let changes = hotel_changes();
    let last = final_values(changes, s.frontier);
    let rooms = |prefix: &str, suffix: &str| -> Vec<String> {
        last.keys()
            .filter(|r| r.starts_with(prefix) && r.ends_with(suffix))
            .cloned()
            .collect()
    };

    // Device health.
    for kind in ["doors", "lifts", "dispensers", "ingestors"] {
        let health = rooms(&format!("/{kind}/"), "/health");
        assert!(!health.is_empty(), "{kind}");
        for room in health {
            assert_eq!(s.json(&room), last[&room], "{room}");
        }
        s.not_found(&format!("/{kind}/nope/health"));
    }

    // Robots: health always, the other views when they hold, else null.
    let robots = rooms("/robots/", "/health");
    assert_eq!(robots.len(), 4);
    let mut nulls = 0;
    for room in &robots {
        let base = room.trim_end_matches("/health");
        assert_eq!(s.json(room), last[room]);
        for view in ["task", "battery_low", "stuck"] {
            let room = format!("{base}/{view}");
            let expected = last.get(&room).cloned().unwrap_or(Value::Null);
            nulls += usize::from(expected.is_null());
            assert_eq!(s.json(&room), expected, "{room}");
        }
    }
    assert!(nulls > 0 && nulls < robots.len() * 3);
    // The battery-low and stuck scenarios were on and are over: known robots, no condition.
    assert!(
        changes
            .iter()
            .any(|c| c.room.ends_with("/battery_low") && c.diff > 0)
    );
    assert_eq!(
        s.json("/robots/tinyRobot/tinyRobot2/battery_low"),
        Value::Null
    );
    for view in ["health", "task", "battery_low", "stuck"] {
        s.not_found(&format!("/robots/tinyRobot/nope/{view}"));
        s.not_found(&format!("/robots/nope/tinyRobot1/{view}"));
    }

    // Rooms of derived events without a route of their own (lift occupants, held-open and
    // flapping doors): the present value, null when none; a room of another shape is no route.
    let templates: Vec<&str> = rmf_dash::api::routes::derived_routes()
        .iter()
        .map(|r| r.path)
        .collect();
    assert!(
        templates.contains(&"/doors/{name}/flapping"),
        "{templates:?}"
    );
    let seen: BTreeSet<&str> = changes
        .iter()
        .map(|c| c.room.as_str())
        .filter(|r| {
            templates
                .iter()
                .any(|t| rmf_dash_dataflows::derived::rooms::matches(t, r))
        })
        .collect();
    assert!(seen.contains("/doors/L1_door_01/held_open"), "{seen:?}");
    for room in seen.into_iter().chain(["/doors/L1_door_01/flapping"]) {
        let expected = last.get(room).cloned().unwrap_or(Value::Null);
        assert_eq!(s.json(room), expected, "{room}");
    }
    assert_eq!(s.get("/doors/L1_door_01/x/flapping").status, 404);

    // Fleets: the queue (empty when absent), the throughput windows (null when absent).
    let fleets: BTreeSet<String> = rooms("/fleets/", "/state")
        .iter()
        .map(|r| r.split('/').nth(2).unwrap_or_default().to_string())
        .collect();
    assert_eq!(fleets.len(), 2);
    for fleet in &fleets {
        for view in ["task_queue", "throughput_1m", "throughput_15m"] {
            let room = format!("/fleets/{fleet}/{view}");
            let absent = if view == "task_queue" {
                json!({"fleet": fleet, "tasks": []})
            } else {
                Value::Null
            };
            assert_eq!(
                s.json(&room),
                last.get(&room).cloned().unwrap_or(absent),
                "{room}"
            );
        }
    }
    for view in ["task_queue", "throughput_1m", "throughput_15m"] {
        s.not_found(&format!("/fleets/nope/{view}"));
    }

    // Alerts (the task alerts the engine raised; none answered).
    let alerts = events(changes, "/alerts/requests", s.frontier);
    assert!(alerts.len() >= 12, "{} alerts", alerts.len());
    assert_eq!(
        s.json("/alerts/unresponded_requests"),
        Value::Array(alerts.clone())
    );
    for a in &alerts {
        let id = enc(a["id"].as_str().expect("id"));
        assert_eq!(&s.json(&format!("/alerts/request/{id}")), a);
        s.not_found(&format!("/alerts/request/{id}/response"));
    }
    let task_id = alerts[0]["task_id"].as_str().expect("task id");
    let of_task: Vec<Value> = alerts
        .iter()
        .filter(|a| a["task_id"] == task_id)
        .cloned()
        .collect();
    assert!(!of_task.is_empty());
    assert_eq!(
        s.json(&format!("/alerts/requests/task/{task_id}")),
        Value::Array(of_task.clone())
    );
    assert_eq!(
        s.json(&format!(
            "/alerts/requests/task/{task_id}?unresponded=false"
        )),
        Value::Array(of_task)
    );
    assert_eq!(s.json("/alerts/requests/task/nope"), json!([]));
    s.not_found("/alerts/request/nope");
    s.invalid(
        &format!("/alerts/requests/task/{task_id}?unresponded=maybe"),
        "unresponded",
    );

    // Logs: the stream events merged, entries in the window.
    let all = (0, u64::MAX / 2);
    let recent = (s.now.saturating_sub(60_000), s.now);
    for fleet in &fleets {
        let ev = events(changes, &format!("/fleets/{fleet}/log"), s.frontier);
        assert!(!ev.is_empty());
        let url = format!("/fleets/{fleet}/log");
        assert_eq!(
            s.json(&format!("{url}?between=0,{}", all.1)),
            fleet_log(fleet, &ev, all)
        );
        assert_eq!(
            s.json(&url),
            fleet_log(fleet, &ev, recent),
            "default window"
        );
        // A window whose ends are entry times: both ends included.
        let mut times: Vec<u64> = ev
            .iter()
            .flat_map(|e| e["robots"].as_object().cloned().unwrap_or_default())
            .flat_map(|(_, v)| v.as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["unix_millis_time"].as_u64())
            .collect();
        times.sort();
        let w = (times[times.len() / 4], times[times.len() * 3 / 4]);
        let inside = fleet_log(fleet, &ev, w);
        assert_eq!(s.json(&format!("{url}?between={},{}", w.0, w.1)), inside);
        let since = s.now - w.0;
        assert_eq!(
            s.json(&format!("{url}?between=-{since}")),
            fleet_log(fleet, &ev, (w.0, s.now))
        );
        s.invalid(&format!("{url}?between=yesterday"), "between");
    }
    let task_logs = rooms("/tasks/", "/state");
    let mut with_logs = 0;
    for room in &task_logs {
        let id = room.split('/').nth(2).unwrap_or_default();
        let ev = events(changes, &format!("/tasks/{id}/log"), s.frontier);
        with_logs += usize::from(!ev.is_empty());
        let url = format!("/tasks/{id}/log");
        assert_eq!(
            s.json(&format!("{url}?between=0,{}", all.1)),
            task_log(id, &ev, all),
            "{url}"
        );
        assert_eq!(
            s.json(&url),
            task_log(id, &ev, recent),
            "{url} default window"
        );
    }
    assert!(with_logs >= 10, "{with_logs} tasks with logs");
}

// ---- GET /tasks over a site ----

/// What a query reads of a task.
struct Task {
    id: String,
    state: Value,
}

impl Task {
    fn text(&self, field: &str) -> Option<String> {
        let v = match field {
            "requester" => &self.state["booking"]["requester"],
            "assigned_to" => &self.state["assigned_to"]["name"],
            f => &self.state[f],
        };
        v.as_str().map(str::to_string)
    }

    fn time(&self, field: &str) -> Option<u64> {
        match field {
            "unix_millis_request_time" => self.state["booking"][field].as_u64(),
            f => self.state[f].as_u64(),
        }
    }

    fn label(&self, key: &str) -> Option<String> {
        self.state["booking"]["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .next_back()
    }

    fn cmp_field(&self, other: &Task, field: &str) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        fn nulls_last<T: Ord>(a: Option<T>, b: Option<T>) -> std::cmp::Ordering {
            match (a, b) {
                (Some(a), Some(b)) => a.cmp(&b),
                (Some(_), None) => Less,
                (None, Some(_)) => Greater,
                (None, None) => Equal,
            }
        }
        if field == "id" {
            return self.id.cmp(&other.id);
        }
        if let Some(key) = field.strip_prefix("label=") {
            return nulls_last(self.label(key), other.label(key));
        }
        if field.starts_with("unix_millis") {
            return nulls_last(self.time(field), other.time(field));
        }
        nulls_last(self.text(field), other.text(field))
    }
}

/// The answer rmf-web's query gives: filter, sort (missing values last ascending, first
/// descending; ties by id), page.
fn expected(
    tasks: &[Task],
    keep: impl Fn(&Task) -> bool,
    order: &[&str],
    offset: usize,
    limit: usize,
) -> Vec<Value> {
    let mut selected: Vec<&Task> = tasks.iter().filter(|t| keep(t)).collect();
    selected.sort_by(|a, b| {
        order
            .iter()
            .map(|o| match o.strip_prefix('-') {
                Some(f) => a.cmp_field(b, f).reverse(),
                None => a.cmp_field(b, o),
            })
            .find(|c| c.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.id.cmp(&b.id))
    });
    selected
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|t| t.state.clone())
        .collect()
}

fn ids(v: &[Value]) -> Vec<&str> {
    v.iter()
        .filter_map(|t| t["booking"]["id"].as_str())
        .collect()
}

#[test]
fn task_queries_filter_sort_and_paginate() {
    let rec = site();
    let s = start(rec);
    let d = dump(rec, &["/task_state_update"], false);
    let tasks: Vec<Task> = last_by(&d, "/task_state_update", s.frontier, |m| {
        json_data(m)["booking"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    })
    .into_iter()
    .map(|(id, m)| Task {
        id,
        state: common::rmf_web_task_state(&json_data(&m)),
    })
    .collect();
    assert!(tasks.len() > 200, "{} tasks", tasks.len());
    let check = |query: &str, want: Vec<Value>| {
        let got = s.json(&format!("/tasks?{query}"));
        let got = got.as_array().cloned().unwrap_or_default();
        assert_eq!(ids(&got), ids(&want), "GET /tasks?{query}");
        assert_eq!(got, want, "GET /tasks?{query}");
    };
    let all = |_: &Task| true;

    // Defaults: the first 100 by id; everything with limit=1000; pages that tile the list.
    check("", expected(&tasks, all, &[], 0, 100));
    check("limit=1000", expected(&tasks, all, &[], 0, 1000));
    let mut paged = Vec::new();
    for offset in (0..tasks.len() + 40).step_by(40) {
        let page = s.json(&format!(
            "/tasks?limit=40&offset={offset}&order_by=-unix_millis_start_time"
        ));
        paged.extend(page.as_array().cloned().unwrap_or_default());
    }
    assert_eq!(
        paged,
        expected(&tasks, all, &["-unix_millis_start_time"], 0, 1000)
    );
    check(&format!("offset={}", tasks.len()), vec![]);

    // Every sortable field, both ways, and a combination.
    for field in [
        "id",
        "category",
        "assigned_to",
        "status",
        "requester",
        "unix_millis_request_time",
        "unix_millis_start_time",
        "unix_millis_finish_time",
        "label=fleet",
    ] {
        check(
            &format!("limit=1000&order_by={field}"),
            expected(&tasks, all, &[field], 0, 1000),
        );
        let desc = format!("-{field}");
        check(
            &format!("limit=1000&order_by={desc}"),
            expected(&tasks, all, &[&desc], 0, 1000),
        );
    }
    check(
        "order_by=id_&limit=7&offset=3",
        expected(&tasks, all, &["id"], 3, 7),
    );
    let order = ["status", "-unix_millis_finish_time", "category"];
    check(
        &format!("limit=25&offset=10&order_by={}", order.join(",")),
        expected(&tasks, all, &order, 10, 25),
    );
    assert!(
        tasks
            .iter()
            .any(|t| t.time("unix_millis_finish_time").is_none()),
        "unfinished tasks"
    );

    // Each filter against the same filter computed here.
    let some: Vec<&str> = tasks.iter().step_by(17).map(|t| t.id.as_str()).collect();
    check(
        &format!("limit=1000&task_id={}", some.join(",")),
        expected(&tasks, |t| some.contains(&t.id.as_str()), &[], 0, 1000),
    );
    for (param, field, values) in [
        ("category", "category", vec!["delivery"]),
        ("category", "category", vec!["patrol", "clean"]),
        ("requester", "requester", vec!["operator_1", "operator_4"]),
        ("status", "status", vec!["completed"]),
        ("status", "status", vec!["failed", "canceled", "underway"]),
        (
            "assigned_to",
            "assigned_to",
            vec!["tinyRobot_001_r01", "caddy_004_r03"],
        ),
    ] {
        let keep = |t: &Task| t.text(field).is_some_and(|v| values.contains(&v.as_str()));
        let want = expected(&tasks, keep, &["-unix_millis_request_time"], 0, 1000);
        assert!(!want.is_empty(), "{param}={values:?} selects tasks");
        check(
            &format!(
                "limit=1000&order_by=-unix_millis_request_time&{param}={}",
                values.join(",")
            ),
            want,
        );
    }
    // Unknown statuses are ignored; only unknown ones select nothing.
    check(
        "limit=1000&status=completed,bogus",
        expected(
            &tasks,
            |t| t.text("status").as_deref() == Some("completed"),
            &[],
            0,
            1000,
        ),
    );
    check("status=bogus", vec![]);
    // Labels: every `key=value` must be there.
    let fleet = tasks[0].label("fleet").expect("a fleet label");
    check(
        &format!("limit=1000&label=fleet={fleet}"),
        expected(
            &tasks,
            |t| t.label("fleet").as_deref() == Some(fleet.as_str()),
            &[],
            0,
            1000,
        ),
    );
    check(
        &format!("limit=1000&label=site=site,fleet={fleet}"),
        expected(
            &tasks,
            |t| t.label("fleet").as_deref() == Some(fleet.as_str()),
            &[],
            0,
            1000,
        ),
    );
    check(&format!("label=site=elsewhere,fleet={fleet}"), vec![]);
    // Time windows (both ends included; a task without that time is never in a window).
    for field in ["request", "start", "finish"] {
        let column = format!("unix_millis_{field}_time");
        let mut times: Vec<u64> = tasks.iter().filter_map(|t| t.time(&column)).collect();
        times.sort();
        let (from, to) = (times[times.len() / 3], times[times.len() * 2 / 3]);
        let keep = |t: &Task| t.time(&column).is_some_and(|x| from <= x && x <= to);
        let want = expected(&tasks, keep, &[], 0, 1000);
        assert!(want.len() > 50);
        check(
            &format!("limit=1000&{field}_time_between={from},{to}"),
            want,
        );
        let since = s.now - from;
        let keep = |t: &Task| t.time(&column).is_some_and(|x| from <= x && x <= s.now);
        check(
            &format!("limit=1000&{field}_time_between=-{since}"),
            expected(&tasks, keep, &[], 0, 1000),
        );
    }
    // Everything together.
    let keep = |t: &Task| {
        t.text("category")
            .is_some_and(|c| c == "patrol" || c == "delivery")
            && t.text("status").as_deref() == Some("completed")
            && t.label("fleet").as_deref() == Some(fleet.as_str())
            && t.time("unix_millis_start_time")
                .is_some_and(|x| x >= s.now - 400_000)
    };
    check(
        &format!(
            "category=patrol,delivery&status=completed&label=fleet={fleet}\
             &start_time_between=-400000&order_by=-unix_millis_finish_time,id&limit=5&offset=2"
        ),
        expected(&tasks, keep, &["-unix_millis_finish_time", "id"], 2, 5),
    );

    // Bad parameters: 422 in FastAPI's shape.
    s.invalid("/tasks?limit=0", "limit");
    s.invalid("/tasks?limit=1001", "limit");
    s.invalid("/tasks?limit=ten", "limit");
    s.invalid("/tasks?offset=-1", "offset");
    s.invalid("/tasks?order_by=-colour", "order_by");
    s.invalid("/tasks?order_by=id,,status", "order_by");
    s.invalid(
        "/tasks?request_time_between=yesterday",
        "request_time_between",
    );
    s.invalid("/tasks?start_time_between=1,2,3", "start_time_between");
    s.invalid("/tasks?finish_time_between=-soon", "finish_time_between");
    assert_eq!(s.get("/tasks?limit=1000").status, 200);
}
