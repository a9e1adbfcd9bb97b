//! Ended tasks leave memory (issue 23, DESIGN.md invariant 10), against the real binary: a fleet
//! adapter sends a task that completes and one that stays underway over `/_internal`; with
//! `--ended-task-retention 1` the completed task leaves the engine and the hub a second (of
//! logical time, which is the wall clock live) after it ended, and with `--archived-rooms 0`
//! nothing of it stays in memory. Then:
//! - `/metrics` counts it evicted and its room retired, and the engine's task operators hold
//!   only the task still underway;
//! - with a store, `GET /tasks/{id}/state` and `GET /tasks/{id}/log` still answer it from the
//!   store, and a python-socketio subscriber to its room gets its final state;
//! - without a store, the read answers 404 saying why (and with the archive on, the final state
//!   is still answered from memory).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{Proc, Server, cluster, http, sticky};

const DONE: &str = "patrol.done";
const OPEN: &str = "patrol.open";

/// `rmf-dash serve --no-auth` with `extra` arguments, its log in `dir`.
fn serve(dir: &Path, extra: &[&str]) -> (Proc, u16) {
    let log = tempfile::Builder::new()
        .prefix("server-")
        .suffix(".log")
        .tempfile_in(dir)
        .and_then(|f| f.keep().map_err(|e| e.error))
        .expect("log")
        .0;
    let (proc, port) = Server::serve()
        .args(["--no-auth", "--ended-task-retention", "1"])
        .args(extra)
        .with(|cmd| {
            cmd.env("RMF_DASH_LOG", "info").stderr(log);
        })
        .start();
    let start = Instant::now();
    while !common::try_http(port, "GET", "/health", None, None).is_ok_and(|r| r.status == 200) {
        assert!(start.elapsed() < Duration::from_secs(60), "not serving");
        std::thread::sleep(Duration::from_millis(50));
    }
    (proc, port)
}

fn task_state(id: &str, status: &str) -> Value {
    json!({
        "booking": {"id": id, "unix_millis_request_time": 1000, "labels": ["zone=a"]},
        "category": "patrol",
        "assigned_to": {"group": "f", "name": "r1"},
        "status": status,
        "unix_millis_start_time": 1000,
        "unix_millis_finish_time": if status == "completed" { json!(2000) } else { Value::Null },
        "phases": {}, "completed": [], "active": null, "pending": [],
        "interruptions": {}, "cancellation": null, "killed": null,
    })
}

/// A task state as the server answers it (rmf-web's model: absent fields `null`).
fn shaped(id: &str, status: &str) -> Value {
    common::rmf_web_task_state(&task_state(id, status))
}

/// What the adapter sends: the two tasks underway with a log entry each, then one completes.
fn frames() -> Vec<String> {
    let log = |id: &str| {
        json!({"type": "task_log_update", "data": {"task_id": id, "phases": {},
            "log": [{"seq": 0, "tier": "info", "unix_millis_time": 1000, "text": "started"}]}})
    };
    let state = |id: &str, status: &str| json!({"type": "task_state_update", "data": task_state(id, status)});
    [
        state(DONE, "underway"),
        state(OPEN, "underway"),
        log(DONE),
        log(OPEN),
        state(DONE, "completed"),
    ]
    .iter()
    .map(Value::to_string)
    .collect()
}

fn send_frames(port: u16) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut ws, _) = connect_async(format!("ws://127.0.0.1:{port}/_internal"))
            .await
            .expect("/_internal");
        for f in frames() {
            ws.send(Message::text(f)).await.expect("frame");
        }
        let _ = ws.close(None).await;
    });
}

/// Every sample of `/metrics`, as `name{labels}` -> value.
fn metrics(port: u16) -> BTreeMap<String, u64> {
    http(port, "GET", "/metrics", None, None)
        .text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// Waits (at most 30 s) until the completed task has left memory; the metrics then.
fn until_evicted(port: u16) -> BTreeMap<String, u64> {
    let start = Instant::now();
    loop {
        let m = metrics(port);
        if m.get("rmf_dash_rooms_retired_total") == Some(&1) {
            return m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not evicted: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the engine and the hub hold once the task left (the task still underway only).
fn assert_left_memory(m: &BTreeMap<String, u64>) {
    assert_eq!(m["rmf_dash_engine_tasks_evicted_total"], 1);
    assert_eq!(m["rmf_dash_rooms_retired_total"], 1);
    for operator in ["TaskKnown", "TaskSummary", "TaskQueueEntry", "TaskAlerts"] {
        let key = format!("rmf_dash_engine_keys{{operator=\"{operator}\"}}");
        if let Some(keys) = m.get(&key) {
            assert!(*keys <= 1, "{operator} holds {keys} keys");
        }
    }
    assert_eq!(m["rmf_dash_engine_keys{operator=\"TaskKnown\"}"], 1);
}

#[test]
fn a_task_that_ended_leaves_memory_and_is_answered_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = cluster();
    let (_server, port) = serve(
        dir.path(),
        &["--database-url", db.url(), "--archived-rooms", "0"],
    );
    send_frames(port);
    let m = until_evicted(port);
    assert_left_memory(&m);
    assert_eq!(m["rmf_dash_rooms_archived"], 0);
    // REST: the final state and the log, from the store.
    let state = http(port, "GET", &format!("/tasks/{DONE}/state"), None, None);
    assert_eq!(state.status, 200, "{}", state.text());
    assert_eq!(state.value(), shaped(DONE, "completed"));
    let log = http(
        port,
        "GET",
        &format!("/tasks/{DONE}/log?between=0,9999999999999"),
        None,
        None,
    );
    assert_eq!(log.status, 200, "{}", log.text());
    assert_eq!(log.value()["log"][0]["text"], "started");
    let labels = http(
        port,
        "GET",
        &format!("/tasks/{DONE}/booking_label"),
        None,
        None,
    );
    assert_eq!(labels.value(), json!({"zone": "a"}));
    // socket.io: a subscriber to its room gets the final state.
    let room = format!("/tasks/{DONE}/state");
    let got = sticky(port, "no-token", &[&room]);
    assert_eq!(got[&room]["value"], shaped(DONE, "completed"));
    // The task still underway is in memory as before.
    let open = http(port, "GET", &format!("/tasks/{OPEN}/state"), None, None);
    assert_eq!(open.value(), shaped(OPEN, "underway"));
}

#[test]
fn without_a_store_an_evicted_task_is_answered_from_the_archive_or_said_evicted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_without, port) = serve(dir.path(), &["--no-db", "--archived-rooms", "0"]);
    send_frames(port);
    assert_left_memory(&until_evicted(port));
    let state = http(port, "GET", &format!("/tasks/{DONE}/state"), None, None);
    assert_eq!(state.status, 404);
    assert!(state.text().contains("evicted"), "{}", state.text());

    let (_archived, port) = serve(dir.path(), &["--no-db"]);
    send_frames(port);
    let m = until_evicted(port);
    assert_eq!(m["rmf_dash_rooms_archived"], 1);
    let state = http(port, "GET", &format!("/tasks/{DONE}/state"), None, None);
    assert_eq!(state.value(), shaped(DONE, "completed"));
}
