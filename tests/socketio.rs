//! Real socket.io clients against `rmf-dash serve` replaying a recording: node socket.io-client
//! 4.x (1,000 clients on 100 rooms) and python-socketio. Every client gets the sticky value
//! first, then every change in order with no duplicate and no gap (sequence checked), and ends
//! with the engine's final value of every room; a bad token is refused; an unknown room is an
//! error to that client only; a client subscribing to a whole site at once, faster than it
//! reads, gets every acknowledgement and every room's value.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{Proc, Server, final_values, node_dir, python, repo, same_json, sticky, trace_gen};

const SECRET: &str = "socketio-test-secret";

fn token(user: &str) -> String {
    common::token(SECRET, user)
}

fn serve(recording: &Path, speed: &str) -> (Proc, u16) {
    Server::serve()
        .args(["--no-db", "--jwt-secret", SECRET, "--speed", speed])
        .arg("--replay")
        .arg(recording)
        .start()
}

/// The hotel recording of these tests (120 s, every scenario).
fn generate(dir: &Path) -> PathBuf {
    trace_gen(
        &dir.join("hotel.mcap"),
        &["--preset", "hotel", "--duration", "120s", "--seed", "5"],
    )
}

/// 100 rooms of the hotel: every door, lift, workcell, fleet and robot room the test can name.
fn rooms(recording: &Path) -> Vec<String> {
    let values = final_values(recording);
    let mut rooms: Vec<String> = values
        .keys()
        .filter(|r| !r.starts_with("/tasks/"))
        .cloned()
        .collect();
    // Condition rooms (that may never fire) of every door, lift and robot, and a room of an
    // entity that never exists.
    let mut more = vec!["/doors/not_yet_there/state".to_string()];
    for r in &rooms {
        if let Some(door) = r
            .strip_prefix("/doors/")
            .and_then(|d| d.strip_suffix("/state"))
        {
            more.push(format!("/doors/{door}/held_open"));
        }
        if let Some(lift) = r
            .strip_prefix("/lifts/")
            .and_then(|d| d.strip_suffix("/state"))
        {
            more.push(format!("/lifts/{lift}/occupant"));
        }
        if let Some(robot) = r
            .strip_prefix("/robots/")
            .and_then(|d| d.strip_suffix("/health"))
        {
            more.push(format!("/robots/{robot}/battery_low"));
            more.push(format!("/robots/{robot}/stuck"));
        }
    }
    rooms.extend(more);
    rooms.sort();
    rooms.dedup();
    rooms.truncate(100);
    rooms
}

fn run_clients(
    port: u16,
    token: &str,
    clients: usize,
    rooms: &[String],
    seconds: u64,
    dir: &Path,
    name: &str,
) -> std::process::Child {
    let file = dir.join(format!("{name}.rooms"));
    std::fs::File::create(&file)
        .and_then(|mut f| f.write_all(rooms.join("\n").as_bytes()))
        .expect("rooms file");
    Command::new("node")
        .arg(node_dir().join("clients.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(token)
        .arg(clients.to_string())
        .arg(&file)
        .arg(seconds.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node")
}

fn summary(child: std::process::Child) -> Value {
    let out = child.wait_with_output().expect("node output");
    assert!(out.status.success(), "node clients failed");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("summary: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn a_thousand_clients_get_sticky_values_then_every_change_without_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = generate(dir.path());
    let rooms = rooms(&recording);
    assert_eq!(rooms.len(), 100, "{rooms:?}");
    let expected = final_values(&recording);
    // 120 s of site at 10x real time: 12 s of changes while the clients listen (then a quiet
    // margin, so that every client has the final values).
    let (_server, port) = serve(&recording, "10");
    let good = token("operator");
    let mut s = summary(run_clients(
        port,
        &good,
        1000,
        &rooms,
        22,
        dir.path(),
        "all",
    ));
    let last_values = s["lastValues"].take();
    s["last"] = Value::Null;
    assert_eq!(s["connected"], 1000, "{s}");
    assert_eq!(s["connectErrors"].as_array().map(Vec::len), Some(0), "{s}");
    assert_eq!(
        s["subscribeErrors"].as_array().map(Vec::len),
        Some(0),
        "{s}"
    );
    assert_eq!(s["duplicates"], 0, "{s}");
    assert_eq!(s["gaps"], 0, "{s}");
    assert_eq!(s["backwards"], 0, "{s}");
    assert_eq!(
        s["disagree"], 0,
        "every client ends with the same values: {s}"
    );
    assert!(s["events"].as_u64().unwrap_or(0) > 100_000, "{s}");
    // Every client ends with the engine's final value of each room.
    for room in rooms
        .iter()
        .filter(|r| !r.starts_with("/alerts/") && !r.ends_with("/log"))
    {
        let got = last_values[room]
            .as_str()
            .map(|v| serde_json::from_str::<Value>(v).expect("value"));
        let want = expected.get(room);
        match (got, want) {
            (Some(g), Some(w)) => assert!(
                same_json(&g, w),
                "{room}: clients ended with {g}, the engine with {w}"
            ),
            (None, None) => {}
            (Some(Value::Null), None) => {}
            (g, w) => panic!("{room}: clients ended with {g:?}, the engine with {w:?}"),
        }
    }
    eprintln!("latency from hub to client: {}", s["latency"]);
}

#[test]
fn a_bad_token_is_refused_and_an_unknown_room_is_an_error_to_that_client_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = generate(dir.path());
    let (_server, port) = serve(&recording, "max");
    // Bad token: refused with connect_error.
    let bad = summary(run_clients(
        port,
        "not-a-jwt",
        1,
        &["/building_map".into()],
        1,
        dir.path(),
        "bad",
    ));
    assert_eq!(bad["connected"], 0, "{bad}");
    assert!(
        bad["connectErrors"][0]
            .as_str()
            .unwrap_or_default()
            .contains("invalid token"),
        "{bad}"
    );
    let none = summary(run_clients(
        port,
        "-",
        1,
        &["/building_map".into()],
        1,
        dir.path(),
        "none",
    ));
    assert_eq!(none["connected"], 0, "{none}");
    assert!(
        none["connectErrors"][0]
            .as_str()
            .unwrap_or_default()
            .contains("no token"),
        "{none}"
    );
    // One client asks for an unknown room: only it gets the error; both get the valid room.
    let good = token("operator");
    let a = run_clients(
        port,
        &good,
        1,
        &["/nope/x".into(), "/building_map".into()],
        2,
        dir.path(),
        "a",
    );
    let b = run_clients(
        port,
        &good,
        1,
        &["/building_map".into()],
        2,
        dir.path(),
        "b",
    );
    let (a, b) = (summary(a), summary(b));
    assert_eq!(
        a["subscribeErrors"].as_array().map(Vec::len),
        Some(1),
        "{a}"
    );
    assert_eq!(a["subscribeErrors"][0]["room"], "/nope/x");
    assert_eq!(a["subscribeErrors"][0]["error"], "unknown room");
    assert_eq!(
        b["subscribeErrors"].as_array().map(Vec::len),
        Some(0),
        "{b}"
    );
    for s in [&a, &b] {
        assert_eq!(s["connected"], 1);
        assert!(
            s["lastValues"]["/building_map"]
                .as_str()
                .is_some_and(|v| v.contains("\"levels\"")),
            "{s}"
        );
        assert_eq!(s["firstWasSticky"], 1, "{s}");
    }
}

#[test]
fn python_socketio_gets_sticky_values_in_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = generate(dir.path());
    let expected = final_values(&recording);
    let (_server, port) = serve(&recording, "max");
    // Wait for the replay to end (the rooms then hold their final values).
    std::thread::sleep(Duration::from_secs(2));
    let rooms = [
        "/building_map",
        "/doors/L1_door_01/state",
        "/fleets/tinyRobot/state",
        "/robots/tinyRobot/tinyRobot1/health",
    ];
    let got = sticky(port, &token("pyclient"), &rooms);
    for room in rooms {
        assert!(
            same_json(&got[room]["value"], &expected[room]),
            "{room}: {} != {}",
            got[room]["value"],
            expected[room]
        );
        assert!(
            got[room]["seq"].as_u64().unwrap_or(0) >= 1,
            "{room}: {}",
            got[room]
        );
    }
}

/// A client that subscribes to every state room of a 1,000-robot site (2,005 rooms) at once and
/// reads nothing for 2 s (receive buffer of 4 KiB) fills its queue on the server: every acknowledgement still arrives,
/// each for its own request, and every room ends with the replay's final value (delivered late,
/// coalesced, where the queue was full). socketioxide alone drops an acknowledgement that finds
/// the queue full.
#[test]
fn a_client_subscribing_to_a_whole_site_at_once_gets_every_acknowledgement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = trace_gen(
        &dir.path().join("site.mcap"),
        &["--preset", "site", "--duration", "20s", "--seed", "3"],
    );
    let expected = final_values(&recording);
    // State rooms (a stream room has no present value to send).
    let kinds = rmf_dash_dataflows::derived::Rooms::new();
    let rooms: Vec<&String> = expected
        .keys()
        .filter(|r| kinds.kind(r) == Some(rmf_dash_dataflows::derived::RoomKind::State))
        .collect();
    assert!(rooms.len() >= 2000, "{} rooms", rooms.len());
    let (_server, port) = serve(&recording, "max");
    std::thread::sleep(Duration::from_secs(2));
    // Three such clients at once (the server's buffers do not always fill for one alone).
    let clients: Vec<_> = (0..3)
        .map(|i| {
            python()
                .arg(repo().join("tests/python/many_rooms.py"))
                .arg(format!("http://127.0.0.1:{port}"))
                .arg(token(&format!("many{i}")))
                .arg("2")
                .args(&rooms)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python client")
        })
        .collect();
    for client in clients {
        let out = client.wait_with_output().expect("python client");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_acks_and_values(&out.stdout, &rooms, &expected);
    }
}

/// Every room's acknowledgement, for its own request, and its final value.
fn check_acks_and_values(stdout: &[u8], rooms: &[&String], expected: &BTreeMap<String, Value>) {
    let got: Value = serde_json::from_slice(stdout).expect("json");
    let acks = got["acks"].as_object().expect("acks");
    assert_eq!(acks.len(), rooms.len(), "acknowledgements");
    for (i, room) in rooms.iter().enumerate() {
        assert_eq!(acks[&i.to_string()], serde_json::json!({"room": room}));
        assert!(
            same_json(&got["values"][room.as_str()], &expected[room.as_str()]),
            "{room}: {} != {}",
            got["values"][room.as_str()],
            expected[room.as_str()]
        );
    }
}
