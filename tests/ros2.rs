//! Live ROS 2 against real ROS 2 nodes: `rmf-dash serve --ros2` on a loopback-only graph with an
//! rclpy stand-in for an RMF site (`tests/ros2/rmf_site.py`): states reach REST and socket.io
//! with exactly the published values (DoorState, LiftState, DispenserState, IngestorState,
//! FleetState, the Kilted JSON mirrors of fleet and task states), the transient-local map
//! published before rmf-dash started arrives, door and lift requests reach an rclpy subscriber, a
//! dispatch is answered by the rclpy dispatcher (and its silence is a clear timeout), and a
//! message of the other RMF release's layout is reported, never decoded.
//!
//! Needs the ROS 2 environment (`scripts/test-ros2 jazzy|kilted` sets it up and runs this file).
#![cfg(feature = "ros2")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Proc, repo, sticky};

const WAIT: Duration = Duration::from_secs(30);

/// One request: (status, JSON body, Null when empty, a string when not JSON).
fn try_http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, Value)> {
    common::try_http(port, method, path, None, body).map(|r| (r.status, r.value()))
}

/// The release whose RMF messages this environment built (`RMF_DASH_ROS2_ENV`).
fn env_release() -> &'static str {
    match std::env::var("RMF_DASH_ROS2_ENV").as_deref() {
        Ok("jazzy") => "jazzy",
        Ok("kilted") => "kilted",
        other => panic!(
            "RMF_DASH_ROS2_ENV is {other:?}: run these tests through scripts/test-ros2 jazzy|kilted"
        ),
    }
}

/// A ROS domain of its own per test (tests run in parallel; other helpers may run ROS too).
fn domain(test: u32) -> String {
    (100 + (std::process::id() % 40) * 3 + test).to_string()
}

/// Loopback only, one domain.
fn ros_env(cmd: &mut Command, domain: &str) {
    cmd.env("ROS_DOMAIN_ID", domain)
        .env("ROS_LOCALHOST_ONLY", "1")
        .env("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST");
}

/// The rclpy site; its stdout lines arrive on `lines`.
struct Site {
    child: Child,
    lines: Receiver<String>,
}

impl Site {
    fn start(domain: &str, args: &[&str]) -> Site {
        let python = std::env::var("ROS2_PYTHON").expect("ROS2_PYTHON (scripts/test-ros2)");
        let mut cmd = Command::new(python);
        cmd.arg(repo().join("tests/ros2/rmf_site.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        ros_env(&mut cmd, domain);
        let mut child = cmd.spawn().expect("start rmf_site.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let site = Site { child, lines };
        assert_eq!(site.next_line(), "\"ready\"");
        site
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .expect("a line from rmf_site.py")
    }

    /// The next message the site heard on `topic` (others are skipped).
    fn heard(&self, topic: &str) -> Value {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            let v: Value = serde_json::from_str(&self.next_line()).expect("JSON line");
            if v["topic"] == topic {
                return v["message"].clone();
            }
        }
        panic!("nothing heard on {topic}");
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Server {
    _proc: Proc,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// `rmf-dash serve --ros2 --rmf-release RELEASE`, logging to a file; waits for `/health`.
    fn start(domain: &str, release: &str, name: &str) -> Server {
        let dir = repo().join("target/ros2-test");
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let (proc, port) = common::Server::serve()
            .args(["--ros2", "--no-db", "--no-auth"])
            .args(["--rmf-release", release, "--task-timeout-ms", "1500"])
            .with(|cmd| {
                cmd.env("RMF_DASH_LOG", "info").stderr(file);
                ros_env(cmd, domain);
            })
            .start();
        let server = Server {
            _proc: proc,
            port,
            log,
        };
        let start = Instant::now();
        while try_http(port, "GET", "/health", None).map_or(0, |r| r.0) != 200 {
            assert!(
                start.elapsed() < WAIT,
                "rmf-dash did not start:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        try_http(
            self.port,
            method,
            path,
            body.map(|b| b.to_string()).as_deref(),
        )
        .expect("http")
    }

    /// Polls `GET path` until it answers 200.
    fn wait_for(&self, path: &str) -> Value {
        let start = Instant::now();
        loop {
            let (status, v) = self.call("GET", path, None);
            if status == 200 {
                return v;
            }
            assert!(
                start.elapsed() < WAIT,
                "GET {path}: {status} {v}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A counter of `/metrics` (`name{source="ros"}`).
    fn metric(&self, name: &str) -> u64 {
        let text = common::http(self.port, "GET", "/metrics", None, None).text();
        let key = format!("{name}{{source=\"ros\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /metrics"))
    }
}

/// The sticky values of socket.io rooms, read by a real python-socketio client.
fn socketio_values(port: u16, rooms: &[&str]) -> Value {
    let got = sticky(port, "no-token", rooms);
    let mut values = serde_json::Map::new();
    for room in rooms {
        values.insert(room.to_string(), got[*room]["value"].clone());
    }
    Value::Object(values)
}

#[test]
fn a_site_on_ros2_reaches_rest_and_socketio_and_gets_commands() {
    let release = env_release();
    let domain = domain(0);
    // The map is published (transient local) before rmf-dash exists.
    let site = Site::start(&domain, &[]);
    let server = Server::start(&domain, release, "site");

    let door = json!({
        "door_time": {"sec": 1700000000, "nanosec": 5},
        "door_name": "main_door",
        "current_mode": {"value": 2},
    });
    let lift = json!({
        "lift_time": {"sec": 1700000001, "nanosec": 6},
        "lift_name": "Lift1",
        "available_floors": ["L1", "L2"],
        "current_floor": "L1",
        "destination_floor": "L2",
        "door_state": 0,
        "motion_state": 1,
        "available_modes": [1, 2],
        "current_mode": 2,
        "session_id": "rmf_dash",
    });
    let dispenser = json!({
        "time": {"sec": 1700000002, "nanosec": 7},
        "guid": "coke_dispenser",
        "mode": 1,
        "request_guid_queue": ["req-1"],
        "seconds_remaining": 2.5,
    });
    let fleet = json!({
        "name": "tinyRobot",
        "robots": {"tinyRobot1": {
            "name": "tinyRobot1",
            "status": "working",
            "task_id": "patrol.dispatch-0001",
            "unix_millis_time": 1700000000000u64,
            "location": {"map": "L1", "x": 10.25, "y": -3.5, "yaw": 1.5},
            "battery": 0.875,
            "issues": [],
        }},
    });
    assert_eq!(server.wait_for("/doors/main_door/state"), door);
    assert_eq!(server.wait_for("/lifts/Lift1/state"), lift);
    assert_eq!(
        server.wait_for("/dispensers/coke_dispenser/state"),
        dispenser
    );
    // As rmf-web sends them: every field of its models, null when absent.
    let fleet = common::rmf_web_fleet_state(&fleet);
    assert_eq!(server.wait_for("/fleets/tinyRobot/state"), fleet);
    let ingestor = json!({
        "time": {"sec": 1700000003, "nanosec": 8},
        "guid": "trash_ingestor",
        "mode": 0,
        "request_guid_queue": [],
        "seconds_remaining": 0.0,
    });
    assert_eq!(server.wait_for("/ingestors/trash_ingestor/state"), ingestor);
    let task = json!({
        "booking": {"id": "patrol.dispatch-0001", "unix_millis_request_time": 1700000000000u64},
        "category": "patrol",
        "assigned_to": {"group": "tinyRobot", "name": "tinyRobot1"},
        "status": "underway",
        "dispatch": {"status": "dispatched", "errors": []},
    });
    let task = common::rmf_web_task_state(&task);
    assert_eq!(server.wait_for("/tasks/patrol.dispatch-0001/state"), task);
    let map = server.wait_for("/building_map");
    assert_eq!(map["name"], "test_site", "{map}");
    assert_eq!(map["levels"][0]["name"], "L1", "{map}");
    assert_eq!(
        map["levels"][0]["nav_graphs"][0]["vertices"][0]["name"],
        "pantry"
    );
    assert_eq!(
        socketio_values(
            server.port,
            &[
                "/doors/main_door/state",
                "/lifts/Lift1/state",
                "/dispensers/coke_dispenser/state",
                "/fleets/tinyRobot/state",
            ]
        ),
        json!({
            "/doors/main_door/state": door,
            "/lifts/Lift1/state": lift,
            "/dispensers/coke_dispenser/state": dispenser,
            "/fleets/tinyRobot/state": fleet,
        })
    );
    assert_eq!(server.metric("rmf_dash_ingest_invalid_total"), 0);

    // Commands reach the rclpy node with the right fields.
    assert_eq!(
        server.call(
            "POST",
            "/doors/main_door/request",
            Some(&json!({"mode": 2}))
        ),
        (200, Value::Null)
    );
    let heard = site.heard("adapter_door_requests");
    assert_eq!(
        (
            &heard["requester_id"],
            &heard["door_name"],
            &heard["requested_mode"]
        ),
        (
            &json!("rmf_dash"),
            &json!("main_door"),
            &json!({"value": 2})
        )
    );
    assert!(heard["request_time"]["sec"].as_i64().unwrap_or(0) > 1_700_000_000);
    assert_eq!(
        server.call(
            "POST",
            "/lifts/Lift1/request",
            Some(&json!({"request_type": 1, "door_mode": 2, "destination": "L2"}))
        ),
        (200, Value::Null)
    );
    let heard = site.heard("adapter_lift_requests");
    assert_eq!(
        json!({
            "lift_name": heard["lift_name"],
            "session_id": heard["session_id"],
            "request_type": heard["request_type"],
            "destination_floor": heard["destination_floor"],
            "door_state": heard["door_state"],
        }),
        json!({"lift_name": "Lift1", "session_id": "rmf_dash", "request_type": 1, "destination_floor": "L2", "door_state": 2})
    );

    // The rclpy dispatcher answers (ACKNOWLEDGE, then RESPONDING) and REST returns its JSON.
    let (status, answer) = server.call(
        "POST",
        "/tasks/dispatch_task",
        Some(&json!({"type": "dispatch_task_request", "request": {"category": "patrol", "description": {"places": ["pantry"]}, "requester": "alice"}})),
    );
    assert_eq!(
        (status, answer),
        (
            200,
            // RMF's state as rmf-web answers it: its TaskState document.
            json!({"success": true, "state": common::rmf_web_task_state(&json!({
                "booking": {"id": "patrol.dispatch-00000000aa", "requester": "alice"},
                "category": "patrol",
                "status": "queued",
                "dispatch": {"status": "queued", "errors": []},
            }))})
        )
    );
    let request = site.heard("task_api_requests");
    assert_eq!(
        serde_json::from_str::<Value>(request["json_msg"].as_str().unwrap_or_default())
            .expect("json_msg"),
        json!({"type": "dispatch_task_request", "request": {"category": "patrol", "description": {"places": ["pantry"]}, "requester": "alice"}})
    );
    // No answer: the clear timeout error.
    let (status, answer) = server.call(
        "POST",
        "/tasks/dispatch_task",
        Some(&json!({"type": "dispatch_task_request", "request": {"category": "silent", "description": {}}})),
    );
    assert_eq!(
        (status, answer),
        (
            504,
            json!({"detail": "RMF gave no answer to dispatch_task_request within 1500 ms"})
        )
    );
}

#[test]
fn a_message_of_the_other_release_is_reported_never_decoded() {
    let release = env_release();
    let other = if release == "jazzy" {
        "kilted"
    } else {
        "jazzy"
    };
    let domain = domain(1);
    let _site = Site::start(&domain, &[]);
    // rmf-dash is told the site runs the other release.
    let server = Server::start(&domain, other, "wrong-layout");
    let expected = format!(
        "topic /fleet_states (rmf_fleet_msgs/msg/FleetState): the message has the {release} layout, but this topic uses the {other} layout"
    );
    let start = Instant::now();
    while !server.log().contains(&expected) {
        assert!(
            start.elapsed() < WAIT,
            "no mismatch reported:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Other topics go on; the fleet states are counted as invalid, never fed.
    assert_eq!(
        server.wait_for("/doors/main_door/state")["door_name"],
        "main_door"
    );
    assert!(server.metric("rmf_dash_ingest_invalid_total") >= 1);
    assert_eq!(server.log().matches(&expected).count(), 1, "logged once");
}
