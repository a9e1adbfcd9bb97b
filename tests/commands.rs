//! The command routes (COMPAT.md ★) against the real binary `rmf-dash serve` with the loopback
//! RMF link: every route publishes exactly the RMF message it should (read back from
//! `GET /_loopback/published`), task requests pass RMF's answer back (first answer wins, failure
//! statuses, timeout), invalid bodies are 422 with FastAPI's details, the alert respond rules
//! (400, 404, 409), auth, and `--rmf-link none`.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use rmf_dash::ingest::cdr::{RmfRelease, typed};
use rmf_dash_dataflows::model::ros::StdString;

mod common;
use common::{Proc, bearer};

const SECRET: &str = "commands-test-secret";

fn token(user: &str) -> String {
    common::token(SECRET, user)
}

/// A server, killed when dropped.
struct Server {
    _proc: Proc,
    port: u16,
}

/// One request with `token` as bearer: (status, JSON body, Null when empty, a string when not
/// JSON).
fn try_http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<(u16, Value)> {
    common::try_http(port, method, path, token.map(bearer).as_deref(), body)
        .map(|r| (r.status, r.value()))
}

/// Starts `rmf-dash serve` with `args` (plus `--no-db` and the listen address) and waits for
/// `/health`.
fn serve(args: &[&str]) -> Server {
    let (proc, port) = common::Server::serve().arg("--no-db").args(args).start();
    let server = Server { _proc: proc, port };
    let start = Instant::now();
    loop {
        if let Ok((200, _)) = try_http(port, "GET", "/health", None, None) {
            return server;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Server {
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        try_http(self.port, method, path, body, None).expect("http")
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(&body.to_string()))
    }

    /// What the loopback link published since the last call (then forgets it).
    fn published(&self) -> Vec<Value> {
        let (status, v) = self.call("GET", "/_loopback/published", None);
        assert_eq!(status, 200, "{v}");
        assert_eq!(self.call("DELETE", "/_loopback/published", None).0, 204);
        v.as_array().expect("a list").clone()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

fn millis(t: &Value) -> u64 {
    t["sec"].as_u64().expect("sec") * 1000 + t["nanosec"].as_u64().expect("nanosec") / 1_000_000
}

/// The published ApiRequest's request id (a uuid v4) and json_msg.
fn api_request(p: &Value) -> (String, String) {
    assert_eq!(p["topic"], "task_api_requests");
    assert_eq!(p["type"], "rmf_task_msgs/msg/ApiRequest");
    let id = p["message"]["request_id"].as_str().expect("id").to_string();
    assert_eq!(p["message"].as_object().expect("message").len(), 2, "{p}");
    let uuid = uuid::Uuid::parse_str(&id).expect("a uuid");
    assert_eq!(uuid.get_version_num(), 4);
    (
        id,
        p["message"]["json_msg"]
            .as_str()
            .expect("json_msg")
            .to_string(),
    )
}

#[test]
fn door_and_lift_requests_publish_exact_messages() {
    let server = serve(&["--no-auth"]);
    let before = now_ms();
    assert_eq!(
        server.post("/doors/coe%20door/request", json!({"mode": 2})),
        (200, Value::Null)
    );
    assert_eq!(
        server.post(
            "/lifts/Lift1/request",
            json!({"request_type": 1, "door_mode": 2, "destination": "L3", "additional_session_ids": ["kiosk_1"]})
        ),
        (200, Value::Null)
    );
    assert_eq!(
        server.post(
            "/lifts/Lift1/request",
            json!({"request_type": 0, "door_mode": 0, "destination": "L1"})
        ),
        (200, Value::Null)
    );
    let after = now_ms();
    let p = server.published();
    assert_eq!(p.len(), 4, "{p:?}");
    let door = &p[0];
    let t = millis(&door["message"]["request_time"]);
    assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
    assert_eq!(
        door,
        &json!({"topic": "adapter_door_requests", "type": "rmf_door_msgs/msg/DoorRequest", "message": {
            "request_time": door["message"]["request_time"],
            "requester_id": "rmf_dash",
            "door_name": "coe door",
            "requested_mode": {"value": 2},
        }})
    );
    let lift = |i: usize, session: &str, request_type: u8, floor: &str, door_state: u8| {
        let t = millis(&p[i]["message"]["request_time"]);
        assert!(before <= t && t <= after);
        json!({"topic": "adapter_lift_requests", "type": "rmf_lift_msgs/msg/LiftRequest", "message": {
            "lift_name": "Lift1",
            "request_time": p[i]["message"]["request_time"],
            "session_id": session,
            "request_type": request_type,
            "destination_floor": floor,
            "door_state": door_state,
        }})
    };
    assert_eq!(p[1], lift(1, "rmf_dash", 1, "L3", 2));
    assert_eq!(p[2], lift(2, "kiosk_1", 1, "L3", 2));
    // The additional session's request is the same request (same time).
    assert_eq!(
        p[1]["message"]["request_time"],
        p[2]["message"]["request_time"]
    );
    assert_eq!(p[3], lift(3, "rmf_dash", 0, "L1", 0));
    assert!(server.published().is_empty());
}

#[test]
fn dispatch_task_returns_the_state_rmf_answers() {
    let server = serve(&["--no-auth"]);
    let body = json!({
        "type": "dispatch_task_request",
        "request": {
            "unix_millis_earliest_start_time": 1700000000000u64,
            "category": "patrol",
            "description": {"places": ["pantry", "lounge"], "rounds": 2},
            "labels": ["app=dashboard"],
            "requester": "alice",
            "not_in_the_schema": 1,
        },
        "neither": true,
    });
    let (status, answer) = server.post("/tasks/dispatch_task", body);
    assert_eq!(status, 200, "{answer}");
    let id = answer["state"]["booking"]["id"]
        .as_str()
        .expect("booking id")
        .to_string();
    let suffix = id.strip_prefix("patrol.dispatch-").expect("RMF's id form");
    assert_eq!(suffix.len(), 10);
    assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
    // RMF's state in rmf-web's TaskState document: every field, null when absent.
    assert_eq!(
        answer,
        json!({"success": true, "state": {
            "booking": {
                "id": id,
                "unix_millis_earliest_start_time": 1700000000000u64,
                "unix_millis_request_time": null,
                "priority": null,
                "labels": ["app=dashboard"],
                "requester": "alice",
            },
            "category": "patrol",
            "detail": {"places": ["pantry", "lounge"], "rounds": 2},
            "unix_millis_start_time": 1700000000000u64,
            "unix_millis_finish_time": null,
            "original_estimate_millis": null,
            "estimate_millis": null,
            "assigned_to": null,
            "status": "queued",
            "dispatch": {"status": "queued", "assignment": null, "errors": []},
            "phases": null, "completed": null, "active": null, "pending": null,
            "interruptions": null, "cancellation": null, "killed": null,
        }})
    );
    let p = server.published();
    assert_eq!(p.len(), 1);
    let (_, json_msg) = api_request(&p[0]);
    // Unknown fields are not forwarded (as rmf-web's models drop them).
    assert_eq!(
        json_msg,
        r#"{"type":"dispatch_task_request","request":{"unix_millis_earliest_start_time":1700000000000,"category":"patrol","description":{"places":["pantry","lounge"],"rounds":2},"labels":["app=dashboard"],"requester":"alice"}}"#
    );
}

#[test]
fn task_requests_publish_their_json_and_pass_the_answer_back() {
    let server = serve(&["--no-auth"]);
    // (route, body, the json_msg published, the answer: None = {"success": true}).
    let token = json!("<request id>");
    let cases = [
        (
            "/tasks/cancel_task",
            json!({"type": "cancel_task_request", "task_id": "patrol.dispatch-1", "labels": ["by=bob"]}),
            r#"{"type":"cancel_task_request","task_id":"patrol.dispatch-1","labels":["by=bob"]}"#,
            None,
        ),
        (
            "/tasks/kill_task",
            json!({"type": "kill_task_request", "task_id": "t2"}),
            r#"{"type":"kill_task_request","task_id":"t2"}"#,
            None,
        ),
        (
            "/tasks/interrupt_task",
            json!({"type": "interrupt_task_request", "task_id": "t3", "labels": null}),
            r#"{"type":"interrupt_task_request","task_id":"t3"}"#,
            Some(json!({"success": true, "token": token})),
        ),
        (
            "/tasks/resume_task",
            json!({"for_task": "t3", "for_tokens": ["tok1"]}),
            r#"{"type":"resume_task_request","for_task":"t3","for_tokens":["tok1"]}"#,
            None,
        ),
        (
            "/tasks/rewind_task",
            json!({"type": "rewind_task_request", "task_id": "t4", "phase_id": 1}),
            r#"{"type":"rewind_task_request","task_id":"t4","phase_id":1}"#,
            None,
        ),
        (
            "/tasks/skip_phase",
            json!({"type": "skip_phase_request", "task_id": "t5", "phase_id": 0, "labels": ["x"]}),
            r#"{"type":"skip_phase_request","task_id":"t5","phase_id":0,"labels":["x"]}"#,
            Some(json!({"success": true, "token": token})),
        ),
        (
            "/tasks/undo_skip_phase",
            json!({"type": "undo_phase_skip_request", "for_task": "t5", "for_tokens": ["s1", "s2"]}),
            r#"{"type":"undo_phase_skip_request","for_task":"t5","for_tokens":["s1","s2"]}"#,
            None,
        ),
    ];
    for (route, body, expected_json, expected_answer) in cases {
        let (status, answer) = server.post(route, body);
        let p = server.published();
        assert_eq!(p.len(), 1, "{route}: {p:?}");
        let (request_id, json_msg) = api_request(&p[0]);
        assert_eq!(json_msg, expected_json, "{route}");
        let expected = match expected_answer {
            // The token the loopback gives is the request id.
            Some(mut a) if a.get("token").is_some() => {
                a["token"] = json!(request_id);
                a
            }
            Some(a) => a,
            None => json!({"success": true}),
        };
        assert_eq!((status, answer), (200, expected), "{route}");
    }

    // A direct task: RMF's fleet adapter answers with the robot's queued task, id = request id.
    let (status, answer) = server.post(
        "/tasks/robot_task",
        json!({"type": "robot_task_request", "robot": "tinyRobot1", "fleet": "tinyRobot",
               "request": {"category": "go_to_place", "description": {"waypoint": "pantry"}, "requester": "bob"}}),
    );
    let p = server.published();
    let (request_id, json_msg) = api_request(&p[0]);
    assert_eq!(
        json_msg,
        r#"{"type":"robot_task_request","robot":"tinyRobot1","fleet":"tinyRobot","request":{"category":"go_to_place","description":{"waypoint":"pantry"},"requester":"bob"}}"#
    );
    assert_eq!(
        (status, answer),
        (
            200,
            json!({"success": true, "state": {
                "booking": {"id": request_id, "unix_millis_earliest_start_time": null,
                    "unix_millis_request_time": null, "priority": null, "labels": null,
                    "requester": "bob"},
                "category": null,
                "detail": {"waypoint": "pantry"},
                "unix_millis_start_time": null, "unix_millis_finish_time": null,
                "original_estimate_millis": null, "estimate_millis": null,
                "assigned_to": {"group": "tinyRobot", "name": "tinyRobot1"},
                "status": "queued",
                "dispatch": {"status": "queued", "assignment": null, "errors": null},
                "phases": null, "completed": null, "active": null, "pending": null,
                "interruptions": null, "cancellation": null, "killed": null,
            }})
        )
    );
}

#[test]
fn failed_and_unanswered_task_requests() {
    let server = serve(&["--no-auth", "--task-timeout-ms", "300"]);
    let failure = json!({"success": false, "errors": [
        {"code": 1, "category": "test", "detail": "requested failure"}
    ]});
    // A refused dispatch is 400 with RMF's answer (as rmf-web).
    let (status, answer) = server.post(
        "/tasks/dispatch_task",
        json!({"type": "dispatch_task_request", "request": {"category": "patrol", "description": {"loopback": "fail"}}}),
    );
    assert_eq!((status, answer), (400, failure.clone()));
    let (status, answer) = server.post(
        "/tasks/robot_task",
        json!({"type": "robot_task_request", "robot": "r", "fleet": "f",
               "request": {"category": "c", "description": {"loopback": "fail"}}}),
    );
    assert_eq!((status, answer), (400, failure.clone()));
    // Other task requests pass RMF's answer with 200, whatever it says (as rmf-web).
    let (status, answer) = server.post(
        "/tasks/cancel_task",
        json!({"type": "cancel_task_request", "task_id": "t", "labels": ["loopback=fail"]}),
    );
    assert_eq!((status, answer), (200, failure));
    // No answer: 504 naming the request and the timeout, after the timeout.
    let start = Instant::now();
    let (status, answer) = server.post(
        "/tasks/dispatch_task",
        json!({"type": "dispatch_task_request", "request": {"category": "patrol", "description": {"loopback": "silent"}}}),
    );
    let waited = start.elapsed();
    assert_eq!(
        (status, answer),
        (
            504,
            json!({"detail": "RMF gave no answer to dispatch_task_request within 300 ms"})
        )
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let (status, answer) = server.post(
        "/tasks/kill_task",
        json!({"type": "kill_task_request", "task_id": "t", "labels": ["loopback=silent"]}),
    );
    assert_eq!(
        (status, answer),
        (
            504,
            json!({"detail": "RMF gave no answer to kill_task_request within 300 ms"})
        )
    );
    assert_eq!(server.published().len(), 5);
}

#[test]
fn invalid_bodies_and_queries_are_422_and_publish_nothing() {
    let server = serve(&["--no-auth"]);
    let detail = |kind: &str, loc: Value, msg: &str| json!({"detail": [{"type": kind, "loc": loc, "msg": msg}]});
    assert_eq!(
        server.post("/doors/d/request", json!({"mode": "open"})),
        (
            422,
            detail(
                "type_error",
                json!(["body", "mode"]),
                "invalid type: string \"open\", expected u32"
            )
        )
    );
    assert_eq!(
        server.post("/doors/d/request", json!({})),
        (
            422,
            detail("missing", json!(["body", "mode"]), "Field required")
        )
    );
    assert_eq!(
        server.post("/doors/d/request", json!({"mode": -1})),
        (
            422,
            detail(
                "type_error",
                json!(["body", "mode"]),
                "invalid value: integer `-1`, expected u32"
            )
        )
    );
    assert_eq!(
        server.call("POST", "/doors/d/request", None),
        (422, detail("missing", json!(["body"]), "Field required"))
    );
    let (status, v) = server.call("POST", "/doors/d/request", Some("{\"mode\": 2"));
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["type"], "json_invalid");
    assert_eq!(v["detail"][0]["loc"][0], "body");
    assert_eq!(
        server.post(
            "/lifts/l/request",
            json!({"request_type": 1, "door_mode": 2})
        ),
        (
            422,
            detail("missing", json!(["body", "destination"]), "Field required")
        )
    );
    assert_eq!(
        server.post(
            "/lifts/l/request",
            json!({"request_type": 1, "door_mode": 2, "destination": "L1", "additional_session_ids": ["a", 7]})
        ),
        (
            422,
            detail(
                "type_error",
                json!(["body", "additional_session_ids", 1]),
                "invalid type: integer `7`, expected a string"
            )
        )
    );
    assert_eq!(
        server.post(
            "/tasks/dispatch_task",
            json!({"type": "robot_task_request", "request": {"category": "c", "description": {}}})
        ),
        (
            422,
            detail(
                "enum",
                json!(["body", "type"]),
                "unknown variant `robot_task_request`, expected `dispatch_task_request`"
            )
        )
    );
    assert_eq!(
        server.post(
            "/tasks/dispatch_task",
            json!({"type": "dispatch_task_request", "request": {"category": "c"}})
        ),
        (
            422,
            detail(
                "missing",
                json!(["body", "request", "description"]),
                "Field required"
            )
        )
    );
    assert_eq!(
        server.post(
            "/tasks/rewind_task",
            json!({"type": "rewind_task_request", "task_id": "t", "phase_id": -1})
        ),
        (
            422,
            detail(
                "type_error",
                json!(["body", "phase_id"]),
                "invalid value: integer `-1`, expected u64"
            )
        )
    );
    assert_eq!(
        server.post(
            "/tasks/resume_task",
            json!({"for_task": "t", "for_tokens": []})
        ),
        (
            422,
            detail(
                "value_error",
                json!(["body", "for_tokens"]),
                "List should have at least 1 item after validation, not 0"
            )
        )
    );
    assert_eq!(
        server.post(
            "/alerts/request",
            json!({"id": "a", "unix_millis_alert_time": 0, "title": "t", "subtitle": "",
                   "message": "", "display": true, "tier": "fatal", "responses_available": [],
                   "alert_parameters": [], "task_id": null})
        ),
        (
            422,
            detail(
                "enum",
                json!(["body", "tier"]),
                "unknown variant `fatal`, expected one of `info`, `warning`, `error`"
            )
        )
    );
    assert_eq!(
        server.call(
            "POST",
            "/fleets/f/decommission?robot_name=r&reassign_tasks=maybe",
            None
        ),
        (
            422,
            json!({"detail": [
                {"type": "bool_parsing", "loc": ["query", "reassign_tasks"], "msg": "Input should be a valid boolean, unable to interpret input"},
                {"type": "missing", "loc": ["query", "allow_idle_behavior"], "msg": "Field required"},
            ]})
        )
    );
    assert_eq!(
        server.call("POST", "/alerts/request/a/respond", None),
        (
            422,
            detail("missing", json!(["query", "response"]), "Field required")
        )
    );
    assert!(server.published().is_empty());
}

/// A recording with one fleet state (fleet `tinyRobot`, robot `tinyRobot1` holding mutex group
/// `corridor_a`) on the Kilted `fleet_state_update` topic.
fn fleet_recording(path: &Path) {
    let state = json!({"name": "tinyRobot", "robots": {"tinyRobot1": {
        "name": "tinyRobot1", "status": "idle", "task_id": "", "unix_millis_time": 1700000000000u64,
        "location": {"map": "L1", "x": 1.0, "y": 2.0, "yaw": 0.0}, "battery": 0.9, "issues": [],
        "commission": {"dispatch_tasks": true, "direct_tasks": true, "idle_behavior": true},
        "mutex_groups": {"locked": ["corridor_a"], "requesting": []},
    }}});
    let file = std::fs::File::create(path).expect("create");
    let mut w = mcap::WriteOptions::new()
        .profile("ros2")
        .create(std::io::BufWriter::new(file))
        .expect("mcap");
    let schema = w
        .add_schema("std_msgs/msg/String", "ros2msg", b"string data\n")
        .expect("schema");
    let channel = w
        .add_channel(schema, "/fleet_state_update", "cdr", &Default::default())
        .expect("channel");
    let payload = typed::encode(
        &StdString {
            data: state.to_string(),
        },
        RmfRelease::Kilted,
    );
    let t = 1_700_000_000_000_000_000u64;
    w.write_to_known_channel(
        &mcap::records::MessageHeader {
            channel_id: channel,
            sequence: 0,
            log_time: t,
            publish_time: t,
        },
        &payload,
    )
    .expect("write");
    w.finish().expect("finish");
}

#[test]
fn fleet_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = dir.path().join("fleet.mcap");
    fleet_recording(&recording);
    let server = serve(&[
        "--no-auth",
        "--replay",
        recording.to_str().expect("path"),
        "--speed",
        "max",
    ]);
    // Wait for the fleet to show (an unknown mutex group is a 400 once the robot is known).
    let start = Instant::now();
    loop {
        let (status, _) = server.call(
            "POST",
            "/fleets/tinyRobot/unlock_mutex_group?robot_name=tinyRobot1&mutex_group=none",
            None,
        );
        if status == 400 {
            break;
        }
        assert_eq!(status, 404);
        assert!(start.elapsed() < Duration::from_secs(10), "no fleet state");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.published().is_empty());

    let commission_ok = json!({
        "commission": {"success": true},
        "pending_direct_tasks_policy": {"success": true},
        "pending_dispatch_tasks_policy": {"success": true},
    });
    let (status, answer) = server.call(
        "POST",
        "/fleets/tinyRobot/decommission?robot_name=tinyRobot1&reassign_tasks=true&allow_idle_behavior=false",
        None,
    );
    assert_eq!((status, answer), (200, commission_ok.clone()));
    let p = server.published();
    assert_eq!(p.len(), 1);
    assert_eq!(
        api_request(&p[0]).1,
        r#"{"type":"robot_commission_request","robot":"tinyRobot1","fleet":"tinyRobot","commission":{"dispatch_tasks":false,"direct_tasks":false,"idle_behavior":false},"pending_dispatch_tasks_policy":"reassign","pending_direct_tasks_policy":"cancel"}"#
    );
    let (status, _) = server.call(
        "POST",
        "/fleets/tinyRobot/decommission?robot_name=tinyRobot1&reassign_tasks=false&allow_idle_behavior=true",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        api_request(&server.published()[0]).1,
        r#"{"type":"robot_commission_request","robot":"tinyRobot1","fleet":"tinyRobot","commission":{"dispatch_tasks":false,"direct_tasks":false,"idle_behavior":true},"pending_dispatch_tasks_policy":"cancel","pending_direct_tasks_policy":"cancel"}"#
    );
    let (status, answer) = server.call(
        "POST",
        "/fleets/tinyRobot/recommission?robot_name=tinyRobot1",
        None,
    );
    assert_eq!((status, answer), (200, commission_ok));
    assert_eq!(
        api_request(&server.published()[0]).1,
        r#"{"type":"robot_commission_request","robot":"tinyRobot1","fleet":"tinyRobot","commission":{"dispatch_tasks":true,"direct_tasks":true,"idle_behavior":true},"pending_dispatch_tasks_policy":"complete","pending_direct_tasks_policy":"complete"}"#
    );

    assert_eq!(
        server.call(
            "POST",
            "/fleets/tinyRobot/unlock_mutex_group?robot_name=tinyRobot1&mutex_group=corridor_a",
            None
        ),
        (200, Value::Null)
    );
    assert_eq!(
        server.published(),
        vec![
            json!({"topic": "mutex_group_manual_release", "type": "rmf_fleet_msgs/msg/MutexGroupManualRelease", "message": {
                "release_mutex_groups": ["corridor_a"], "fleet": "tinyRobot", "robot": "tinyRobot1",
            }})
        ]
    );
    assert_eq!(
        server.call(
            "POST",
            "/fleets/tinyRobot/unlock_mutex_group?robot_name=tinyRobot1&mutex_group=lobby",
            None
        ),
        (
            400,
            json!({"detail": "Robot tinyRobot1 in fleet tinyRobot does not have mutex group lobby locked"})
        )
    );
    assert_eq!(
        server.call(
            "POST",
            "/fleets/nope/recommission?robot_name=tinyRobot1",
            None
        ),
        (404, json!({"detail": "Fleet nope not found"}))
    );
    assert_eq!(
        server.call(
            "POST",
            "/fleets/tinyRobot/recommission?robot_name=ghost",
            None
        ),
        (
            404,
            json!({"detail": "Robot ghost not found in fleet tinyRobot"})
        )
    );
    assert!(server.published().is_empty());
}

#[test]
fn alerts_create_and_respond() {
    let server = serve(&["--no-auth"]);
    let alert = json!({
        "id": "door_stuck_1", "unix_millis_alert_time": 1700000000000u64, "title": "Door stuck",
        "subtitle": "coe door", "message": "The door did not open", "display": true,
        "tier": "warning", "responses_available": ["retry", "ignore"],
        "alert_parameters": [{"name": "door", "value": "coe door"}], "task_id": null,
    });
    assert_eq!(
        server.post("/alerts/request", alert.clone()),
        (201, alert.clone())
    );
    assert_eq!(
        server.post("/alerts/request", alert),
        (
            409,
            json!({"detail": "Alert with ID door_stuck_1 already exists"})
        )
    );
    assert_eq!(
        server.call(
            "POST",
            "/alerts/request/door_stuck_1/respond?response=explode",
            None
        ),
        (
            400,
            json!({"detail": "Response [explode] is not a response option of alert with ID door_stuck_1"})
        )
    );
    assert_eq!(
        server.call("POST", "/alerts/request/nope/respond?response=retry", None),
        (404, json!({"detail": "Alert with ID nope does not exists"}))
    );
    assert!(server.published().is_empty());
    let before = now_ms();
    let (status, response) = server.call(
        "POST",
        "/alerts/request/door_stuck_1/respond?response=retry",
        None,
    );
    assert_eq!(status, 201, "{response}");
    let t = response["unix_millis_response_time"]
        .as_u64()
        .expect("time");
    assert!(before <= t && t <= now_ms() + 20, "{before} {t}");
    assert_eq!(
        response,
        json!({"id": "door_stuck_1", "unix_millis_response_time": t, "response": "retry"})
    );
    assert_eq!(
        server.published(),
        vec![
            json!({"topic": "alert_response", "type": "rmf_task_msgs/msg/AlertResponse",
                    "message": {"id": "door_stuck_1", "response": "retry"}})
        ]
    );
    assert_eq!(
        server.call(
            "POST",
            "/alerts/request/door_stuck_1/respond?response=ignore",
            None
        ),
        (
            409,
            json!({"detail": "Alert with ID door_stuck_1 already has a response of retry"})
        )
    );
    assert!(server.published().is_empty());
}

#[test]
fn fire_alarm_reset_and_delivery_alert_response() {
    let server = serve(&["--no-auth"]);
    let before = now_ms();
    let (status, v) = server.call("POST", "/building_map/reset_fire_alarm_trigger", None);
    assert_eq!(status, 200);
    let t = v["unix_millis_time"].as_u64().expect("time");
    assert!(before <= t && t <= now_ms());
    assert_eq!(v, json!({"unix_millis_time": t, "trigger": false}));
    assert_eq!(
        server.published(),
        vec![
            json!({"topic": "fire_alarm_trigger", "type": "std_msgs/msg/Bool", "message": {"data": false}})
        ]
    );
    let (status, v) = server.call(
        "POST",
        "/delivery_alerts/da1/response?category=obstructed&tier=error&task_id=delivery.dispatch-3&action=resume&message=cleared+now",
        None,
    );
    assert_eq!(
        (status, v),
        (
            200,
            json!({"id": "da1", "category": "obstructed", "tier": "error",
                   "task_id": "delivery.dispatch-3", "action": "resume", "message": "cleared now"})
        )
    );
    assert_eq!(
        server.published(),
        vec![
            json!({"topic": "delivery_alert_response", "type": "rmf_fleet_msgs/msg/DeliveryAlert", "message": {
                "id": "da1", "category": {"value": 2}, "tier": {"value": 1},
                "task_id": "delivery.dispatch-3", "action": {"value": 3}, "message": "cleared now",
            }})
        ]
    );
}

#[test]
fn commands_need_a_token() {
    let server = serve(&["--jwt-secret", SECRET]);
    let body = json!({"mode": 2}).to_string();
    let (status, v) =
        try_http(server.port, "POST", "/doors/d/request", Some(&body), None).expect("http");
    assert_eq!((status, v), (401, json!({"detail": "no token"})));
    // Checked before the body (as FastAPI's router dependencies).
    let (status, _) =
        try_http(server.port, "POST", "/doors/d/request", Some("{"), None).expect("http");
    assert_eq!(status, 401);
    let (status, _) =
        try_http(server.port, "GET", "/_loopback/published", None, None).expect("http");
    assert_eq!(status, 401);
    let t = token("alice");
    // What was published is every user's: the admin's to read.
    let admin = token("admin");
    let (status, v) = try_http(
        server.port,
        "GET",
        "/_loopback/published",
        None,
        Some(&admin),
    )
    .expect("http");
    assert_eq!((status, v), (200, json!([])));
    let (status, _) = try_http(
        server.port,
        "POST",
        "/doors/d/request",
        Some(&body),
        Some(&t),
    )
    .expect("http");
    assert_eq!(status, 200);
    let (_, v) = try_http(
        server.port,
        "GET",
        "/_loopback/published",
        None,
        Some(&admin),
    )
    .expect("http");
    assert_eq!(v[0]["message"]["door_name"], "d");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    // Every command route is in /openapi.json, documented as needing a token, and is one.
    let (status, doc) = try_http(server.port, "GET", "/openapi.json", None, None).expect("http");
    assert_eq!(status, 200);
    let posts: Vec<(String, Value)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter_map(|(path, item)| item.get("post").map(|op| (path.clone(), op.clone())))
        .collect();
    // 18 commands; the other POSTs are user data (admin, favorite and scheduled tasks).
    let user_data = ["/admin/", "/favorite_tasks", "/scheduled_tasks"];
    assert_eq!(
        posts
            .iter()
            .filter(|(p, _)| !user_data.iter().any(|u| p.starts_with(u)))
            .count(),
        18,
        "{posts:?}"
    );
    for (path, op) in posts {
        assert_eq!(op["security"], json!([{"bearer": []}]), "{path}");
        let url = path.replace(['{', '}'], "");
        let (status, _) = try_http(server.port, "POST", &url, Some("{}"), None).expect("http");
        assert_eq!(status, 401, "POST {url} without a token");
    }
}

#[test]
fn without_a_link_commands_are_refused() {
    let server = serve(&["--no-auth", "--rmf-link", "none"]);
    let refused = json!({"detail": "no RMF link: the server runs with --rmf-link none"});
    assert_eq!(
        server.post("/doors/d/request", json!({"mode": 0})),
        (503, refused.clone())
    );
    assert_eq!(
        server.post(
            "/tasks/cancel_task",
            json!({"type": "cancel_task_request", "task_id": "t"})
        ),
        (503, refused.clone())
    );
    assert_eq!(
        server.call("POST", "/building_map/reset_fire_alarm_trigger", None),
        (503, refused)
    );
    assert_eq!(server.call("GET", "/_loopback/published", None).0, 404);
}
