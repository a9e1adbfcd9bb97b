//! The PostgreSQL store against the real binary and real throwaway PostgreSQL clusters (one
//! temporary directory each, started by the same code as the private cluster of `serve`):
//! what is written equals the engine's output, a replay resumes after its checkpoint, a server
//! killed with SIGKILL mid-replay restores exactly (the final dump equals an uninterrupted run's),
//! an outage is reported and loses nothing, malformed stored rows are skipped at restore, and
//! retention drops old partitions and rows.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Cluster, Proc, bin, cluster, hotel_emitted, hotel_recording};

/// The dump of an uninterrupted replay into a fresh store.
fn reference_dump() -> &'static str {
    static DUMP: OnceLock<String> = OnceLock::new();
    DUMP.get_or_init(|| {
        let c = cluster();
        let (ok, _, _) = replay(&c);
        assert!(ok);
        c.dump()
    })
}

/// `replay FILE --database-url`: (success, stdout (emitted lines), stderr).
fn replay(c: &Cluster) -> (bool, String, String) {
    replay_with(c, &[])
}

fn replay_with(c: &Cluster, extra: &[&str]) -> (bool, String, String) {
    let out = bin()
        .args(["replay", "--emit", "jsonl", "--database-url", c.url()])
        .args(extra)
        .arg(hotel_recording())
        .output()
        .expect("replay");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lines_of<'a>(dump: &'a str, table: &str) -> Vec<&'a str> {
    let prefix = format!("{{\"table\":\"{table}\"");
    dump.lines().filter(|l| l.starts_with(&prefix)).collect()
}

fn checkpoint_of(dump: &str) -> u64 {
    let l = lines_of(dump, "checkpoint");
    assert_eq!(l.len(), 1, "one checkpoint row");
    serde_json::from_str::<Value>(l[0]).expect("json")["time_ms"]
        .as_u64()
        .expect("time")
}

#[test]
fn replay_writes_exactly_the_engine_output() {
    let c = cluster();
    let (ok, emitted, err) = replay(&c);
    assert!(ok, "{err}");
    assert_eq!(
        emitted,
        hotel_emitted(),
        "the emitted output is the engine's"
    );
    let dump = c.dump();

    // The output history is every change of the engine that its event keeps (`Persistence`),
    // nothing else.
    let rooms = rmf_dash_dataflows::derived::Rooms::new();
    let mut expected: Vec<String> = hotel_emitted()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|v| {
            let event = rooms
                .event(v["room"].as_str().expect("a room"))
                .expect("an event's room");
            event
                .persistence
                .keeps(v["diff"].as_i64().expect("a diff") as isize)
        })
        .map(|v| {
            json!({"table": "output_history", "time_ms": v["time"], "room": v["room"],
                "diff": v["diff"], "value": v["value"]})
            .to_string()
        })
        .collect();
    expected.sort();
    let history: Vec<String> = lines_of(&dump, "output_history")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(!history.is_empty());
    assert_eq!(history, expected);

    // The latest value of every room and its sequence number (one per time a state room
    // changed, one per event of a stream room).
    let hub = rmf_dash::hub::Hub::new();
    let mut rooms: BTreeMap<String, (u64, Option<Value>, u64)> = BTreeMap::new();
    let mut last_time: BTreeMap<String, u64> = BTreeMap::new();
    for l in hotel_emitted().lines() {
        let v: Value = serde_json::from_str(l).expect("json");
        let room = v["room"].as_str().expect("room").to_string();
        let Some(kind) = hub.kind(&room) else {
            continue;
        };
        let t = v["time"].as_u64().expect("time");
        let e = rooms.entry(room.clone()).or_insert((0, None, 0));
        let stream = kind == rmf_dash_dataflows::derived::RoomKind::Stream;
        if stream {
            if v["diff"] == 1 {
                e.0 += 1;
                e.1 = Some(v["value"].clone());
                e.2 = t;
            }
            continue;
        }
        if last_time.insert(room.clone(), t) != Some(t) {
            e.0 += 1;
        }
        e.2 = t;
        if v["diff"] == 1 {
            e.1 = Some(v["value"].clone());
        } else if e.1.as_ref() == Some(&v["value"]) {
            e.1 = None;
        }
    }
    let mut expected: Vec<String> = rooms
        .iter()
        .map(|(room, (seq, value, t))| {
            json!({"table": "room_state", "room": room, "seq": seq, "time_ms": t, "value": value})
                .to_string()
        })
        .collect();
    expected.sort();
    let stored: Vec<String> = lines_of(&dump, "room_state")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(stored, expected);

    // Tasks, logs and the input log are there.
    assert!(!lines_of(&dump, "task_state").is_empty());
    assert!(!lines_of(&dump, "task_log").is_empty());
    assert!(!lines_of(&dump, "input_log").is_empty());
    let last = hotel_emitted()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["time"].as_u64())
        .max()
        .expect("outputs");
    assert!(checkpoint_of(&dump) >= last);

    // Replaying the same recording again resumes after the checkpoint: nothing new.
    let (ok, emitted, err) = replay(&c);
    assert!(ok, "{err}");
    assert!(
        err.contains("resuming the recording after the checkpoint"),
        "{err}"
    );
    assert_eq!(emitted, "");
    assert_eq!(c.dump(), dump);
    assert_eq!(dump, reference_dump());
}

/// Restored from a snapshot (one every 5 s of the recording) and the input log after it.
#[test]
fn replay_killed_mid_way_resumes_from_the_checkpoint() {
    let c = cluster();
    let mut first = bin()
        .args(["replay", "--speed", "40", "--snapshot-every", "5"])
        .args(["--database-url", c.url()])
        .arg(hotel_recording())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("replay");
    let start = Instant::now();
    let stored = loop {
        let stored = c.sql(async |db| {
            let exists: bool = db
                .query_one("SELECT to_regclass('checkpoint') IS NOT NULL", &[])
                .await
                .expect("query")
                .get(0);
            match exists {
                true => rmf_dash::store::checkpoint(db).await.expect("checkpoint"),
                false => None,
            }
        });
        if let Some(t) = stored
            && start.elapsed() > Duration::from_secs(2)
        {
            break t;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "nothing stored");
        std::thread::sleep(Duration::from_millis(100));
    };
    first.kill().expect("SIGKILL");
    first.wait().expect("wait");
    let (ok, emitted, err) = replay_with(&c, &["--snapshot-every", "5"]);
    assert!(ok, "{err}");
    let snapshot: u64 = err
        .lines()
        .find_map(|l| {
            l.contains("dataflow state loaded from the snapshot")
                .then(|| {
                    l.split("time=")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })?
        })
        .unwrap_or_else(|| panic!("restored from a snapshot: {err}"));
    let checkpoint: u64 = err
        .lines()
        .find_map(|l| {
            l.contains("resuming the recording after the checkpoint")
                .then(|| l.rsplit("checkpoint=").next()?.trim().parse().ok())?
        })
        .expect("resumed after a checkpoint");
    assert!(checkpoint >= stored && checkpoint < checkpoint_of(reference_dump()));
    assert!(
        snapshot <= checkpoint,
        "snapshot {snapshot}, checkpoint {checkpoint}"
    );
    // The output after the restart point is the uninterrupted run's.
    let after: String = hotel_emitted()
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l).expect("json")["time"].as_u64() > Some(checkpoint)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!after.is_empty());
    assert_eq!(emitted, after);
    assert_eq!(c.dump(), reference_dump());
}

#[test]
fn malformed_stored_rows_are_skipped_at_restore() {
    let c = cluster();
    let (ok, _, err) = replay(&c);
    assert!(ok, "{err}");
    let broken = c.sql(async |db| {
        let room: String = db
            .query_one(
                "SELECT min(room) FROM room_state WHERE value IS NOT NULL",
                &[],
            )
            .await
            .expect("a room")
            .get(0);
        db.execute(
            "UPDATE room_state SET value = '{\"broken' WHERE room = $1",
            &[&room],
        )
        .await
        .expect("update");
        // The input log's latest block (a plain one, or a packed one if the last minute is
        // complete).
        let mut n = 0;
        for table in ["input_recent", "input_block"] {
            if n == 0 {
                n = db
                    .execute(
                        &format!(
                            "UPDATE {table} SET data = '\\x0102'::bytea WHERE first_ms = \
                             (SELECT max(first_ms) FROM {table})"
                        ),
                        &[],
                    )
                    .await
                    .expect("update");
            }
        }
        assert_eq!(n, 1, "one block damaged");
        // The snapshot too: the whole input log is fed instead.
        let n = db
            .execute("UPDATE dataflow_snapshot SET data = '\\x01'::bytea", &[])
            .await
            .expect("update");
        assert_eq!(n, 1, "one snapshot is kept");
        room
    });
    let (ok, _, err) = replay(&c);
    assert!(ok, "a malformed row is not fatal: {err}");
    let warned: Vec<&str> = err.lines().filter(|l| l.contains("skipped")).collect();
    assert!(
        warned
            .iter()
            .any(|l| l.contains("not valid JSON") && l.contains(&broken)),
        "{err}"
    );
    assert!(
        warned.iter().any(|l| l.contains("cannot be decoded")),
        "{err}"
    );
    assert!(err.contains("rooms=") && err.contains("skipped=1"), "{err}");
    assert!(
        err.contains("stored snapshot cannot be decoded: not used"),
        "{err}"
    );
}

struct Server {
    proc: Proc,
    port: u16,
    log: PathBuf,
}

fn serve(url: &str, speed: &str, log: &Path) -> Server {
    serve_with(url, speed, log, &[])
}

fn serve_with(url: &str, speed: &str, log: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--speed", speed, "--database-url", url];
    args.extend_from_slice(extra);
    spawn_serve(&args, log)
}

/// `serve --no-auth --rmf-link none --replay <recording>` with `args`.
fn spawn_serve(args: &[&str], log: &Path) -> Server {
    let stderr = std::fs::File::create(log).expect("log file");
    let (proc, port) = common::Server::serve()
        .args(["--no-auth", "--rmf-link", "none"])
        .args(args)
        .arg("--replay")
        .arg(hotel_recording())
        .with(|cmd| {
            cmd.stderr(stderr);
        })
        .start();
    Server {
        proc,
        port,
        log: log.to_path_buf(),
    }
}

impl Server {
    /// `GET path`: (status code, body).
    fn get(&self, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read");
        let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        (code, body.to_string())
    }

    /// `GET /health`: (status code, body).
    fn health(&self) -> (u16, Value) {
        let (code, body) = self.get("/health");
        (code, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, what: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log().contains(what) {
            assert!(start.elapsed() < limit, "no {what:?} in:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the engine's outputs up to `t` are out (applied by the hub).
    fn wait_frontier(&self, t: u64) {
        let start = Instant::now();
        while self.health().1["engine"]["output_frontier_ms"].as_u64() < Some(t) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "output frontier {t} not reached"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until everything up to `t` is stored.
    fn wait_checkpoint(&self, t: u64) {
        let start = Instant::now();
        while self.health().1["store"]["checkpoint_ms"].as_u64() < Some(t) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "checkpoint {t} not reached"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits for the exit (the writer writes what is left first).
    fn stop(mut self) {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.proc.0.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.proc.0.try_wait() {
                assert!(status.success(), "{}", self.log());
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "serve did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Without snapshots: restored from the whole input log.
#[test]
fn serve_killed_mid_replay_restores_exactly() {
    let expected = reference_dump();
    let c = cluster();
    let logs = tempfile::tempdir().expect("temp dir");
    let final_time = checkpoint_of(expected);
    let no_snapshots = ["--snapshot-every", "0"];
    let first = serve_with(c.url(), "30", &logs.path().join("first.log"), &no_snapshots);
    let start = Instant::now();
    loop {
        let (_, h) = first.health();
        if h["store"]["checkpoint_ms"].as_u64().unwrap_or(0) > 0
            && start.elapsed() > Duration::from_secs(3)
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "nothing stored");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut first = first;
    first.proc.0.kill().expect("SIGKILL");
    first.proc.0.wait().expect("wait");
    let stored = c.sql(async |db| rmf_dash::store::checkpoint(db).await.expect("checkpoint"));
    let stored = stored.expect("a checkpoint was written before the crash");
    assert!(
        stored < final_time,
        "killed mid-way ({stored} < {final_time})"
    );

    let second = serve_with(
        c.url(),
        "max",
        &logs.path().join("second.log"),
        &no_snapshots,
    );
    // The stored values are served before the replay goes on.
    let (code, h) = second.health();
    assert_eq!(code, 200, "{h}");
    assert!(h["store"]["checkpoint_ms"].as_u64() >= Some(stored), "{h}");
    second.wait_log(
        "dataflow state rebuilt from the input log",
        Duration::from_secs(60),
    );
    assert!(!second.log().contains("snapshot"), "{}", second.log());
    second.wait_log("replay finished", Duration::from_secs(60));
    second.wait_checkpoint(final_time);
    second.stop();
    assert_eq!(c.dump(), expected);
}

#[test]
fn outage_is_reported_and_nothing_is_lost() {
    let expected = reference_dump();
    let c = cluster();
    let logs = tempfile::tempdir().expect("temp dir");
    let server = serve(c.url(), "20", &logs.path().join("serve.log"));
    let start = Instant::now();
    while server.health().1["store"]["checkpoint_ms"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(30), "nothing stored");
        std::thread::sleep(Duration::from_millis(100));
    }
    c.pg.stop_server().expect("stop PostgreSQL");
    let down = Instant::now();
    let mut reported = None;
    let mut metrics_down = false;
    while down.elapsed() < Duration::from_secs(8) {
        let (code, h) = server.health();
        if code == 503 && h["store"]["status"] == "unreachable" {
            reported = Some(h);
            let metrics = server.get("/metrics").1;
            metrics_down |= metrics.lines().any(|l| l == "rmf_dash_store_up 0");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(metrics_down, "/metrics reported the outage");
    let reported = reported.expect("/health reported the outage");
    assert_eq!(reported["status"], "unavailable");
    c.pg.start_server().expect("start PostgreSQL");
    server.wait_log("replay finished", Duration::from_secs(60));
    server.wait_log("store reachable again", Duration::from_secs(30));
    server.wait_checkpoint(checkpoint_of(expected));
    let (code, h) = server.health();
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["store"]["dropped_rows"], 0);
    let metrics = server.get("/metrics").1;
    assert!(
        metrics.lines().any(|l| l == "rmf_dash_store_up 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rmf_dash_store_failures_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    server.stop();
    assert_eq!(c.dump(), expected);
}

#[test]
fn memory_bound_drops_the_oldest_rows_and_records_the_gap() {
    let c = cluster();
    let logs = tempfile::tempdir().expect("temp dir");
    let server = serve_with(
        c.url(),
        "40",
        &logs.path().join("serve.log"),
        &["--store-buffer-mb", "1"],
    );
    let start = Instant::now();
    while server.health().1["store"]["checkpoint_ms"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(30), "nothing stored");
        std::thread::sleep(Duration::from_millis(100));
    }
    c.pg.stop_server().expect("stop PostgreSQL");
    let down = Instant::now();
    let mut dropped = 0;
    while dropped == 0 {
        assert!(down.elapsed() < Duration::from_secs(30), "nothing dropped");
        let (_, h) = server.health();
        dropped = h["store"]["dropped_rows"].as_u64().unwrap_or(0);
        assert!(
            h["store"]["buffered_bytes"].as_u64() <= Some(1 << 20),
            "{h}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.wait_log("replay finished", Duration::from_secs(60));
    c.pg.start_server().expect("start PostgreSQL");
    server.wait_log("store reachable again", Duration::from_secs(30));
    let (_, h) = server.health();
    let dropped = h["store"]["dropped_rows"].as_u64().expect("dropped rows");
    let log = server.log();
    server.stop();
    assert!(log.contains("store buffer over its memory bound"), "{log}");
    let gaps: i64 = c.sql(async |db| {
        db.query_one("SELECT coalesce(sum(rows), 0)::int8 FROM store_gaps", &[])
            .await
            .expect("gaps")
            .get(0)
    });
    assert_eq!(gaps as u64, dropped);
}

#[test]
fn prune_drops_old_partitions_and_rows() {
    let c = cluster();
    let (ok, _, err) = replay(&c);
    assert!(ok, "{err}");
    let checkpoint = checkpoint_of(&c.dump()) as i64;
    // A day-old partition, and the logs older than a minute before the checkpoint.
    let (before, recent) = c.sql(async |db| {
        db.batch_execute(
            "CREATE TABLE input_block_d0 PARTITION OF input_block FOR VALUES FROM (0) TO (86400000);
             INSERT INTO input_block VALUES (5, 0, 5, 1, '\\x00');",
        )
        .await
        .expect("old partition");
        let count = async |sql: &str| -> i64 {
            db.query_one(sql, &[&(checkpoint - 60_000)])
                .await
                .expect("count")
                .get(0)
        };
        (
            count("SELECT count(*) FROM task_log WHERE $1::int8 IS NOT NULL").await,
            count("SELECT count(*) FROM task_log WHERE time_ms >= $1").await,
        )
    });
    assert!(before > recent && recent > 0, "{before} {recent}");
    let out = bin()
        .args([
            "store",
            "prune",
            "--logs-retention",
            "60s",
            "--database-url",
            c.url(),
        ])
        .output()
        .expect("prune");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("dropped 1 partitions (input_block_d0)"),
        "{text}"
    );
    let after = c.sql(async |db| -> i64 {
        db.query_one("SELECT count(*) FROM task_log", &[])
            .await
            .expect("count")
            .get(0)
    });
    assert_eq!(after, recent);
    // The store still restores and answers.
    let (ok, emitted, err) = replay(&c);
    assert!(ok && emitted.is_empty(), "{err}");
}

/// `GET path` as JSON (asserting 200).
fn get_json(server: &Server, path: &str) -> Value {
    let (code, body) = server.get(path);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The history routes answer from the store: after a restart the hub holds only the last event
/// of each log and alert room, yet tasks, task and fleet logs and alerts equal those of a server
/// that replayed the whole recording in memory.
#[test]
fn history_routes_answer_from_the_store() {
    let c = cluster();
    let logs = tempfile::tempdir().expect("temp dir");
    let final_time = checkpoint_of(reference_dump());
    let first = serve(c.url(), "max", &logs.path().join("first.log"));
    first.wait_log("replay finished", Duration::from_secs(120));
    first.wait_checkpoint(final_time);
    first.stop();
    // Restarted: sticky values from the store; the recording is already stored up to its end.
    let stored = serve(c.url(), "max", &logs.path().join("second.log"));
    stored.wait_log("replay finished", Duration::from_secs(120));
    let memory = spawn_serve(
        &["--no-db", "--speed", "max"],
        &logs.path().join("memory.log"),
    );
    memory.wait_log("replay finished", Duration::from_secs(120));
    memory.wait_frontier(final_time);
    let all = "between=0,9999999999999";

    let same = |path: &str| -> Value {
        let a = get_json(&stored, path);
        let b = get_json(&memory, path);
        if a != b {
            let ids = |v: &Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        t["booking"]["id"]
                            .as_str()
                            .or(t["id"].as_str())
                            .unwrap_or("?")
                            .to_string()
                    })
                    .collect()
            };
            let (a, b) = (a.to_string(), b.to_string());
            let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            panic!(
                "{path}: the store's answer differs from memory's at byte {at}:\n  store:  {}\n  memory: {}\n  ids: {:?}\n   vs: {:?}",
                &a[at.saturating_sub(200)..(at + 200).min(a.len())],
                &b[at.saturating_sub(200)..(at + 200).min(b.len())],
                ids(&serde_json::from_str(&a).unwrap_or_default()),
                ids(&serde_json::from_str(&b).unwrap_or_default()),
            );
        }
        a
    };
    let tasks = same("/tasks?limit=1000");
    let tasks = tasks.as_array().expect("task list");
    assert!(tasks.len() >= 10, "{} tasks", tasks.len());
    for q in [
        "/tasks?status=completed&order_by=-unix_millis_start_time",
        "/tasks?order_by=category,-unix_millis_request_time&limit=5&offset=3",
        "/tasks?order_by=-assigned_to,unix_millis_finish_time&limit=50",
        "/tasks?start_time_between=0,9999999999999&order_by=requester",
    ] {
        same(q);
    }
    let mut labels = std::collections::BTreeSet::new();
    let (mut entries, mut alerts) = (0, 0);
    for t in tasks {
        let id = t["booking"]["id"].as_str().expect("task id");
        for l in t["booking"]["labels"].as_array().into_iter().flatten() {
            labels.insert(l.as_str().unwrap_or_default().to_string());
        }
        let log = same(&format!("/tasks/{id}/log?{all}"));
        entries += log["log"].as_array().map_or(0, Vec::len);
        for phase in log["phases"].as_object().into_iter().flatten() {
            entries += phase.1["log"].as_array().map_or(0, Vec::len);
        }
        for unresponded in ["true", "false"] {
            let a = same(&format!(
                "/alerts/requests/task/{id}?unresponded={unresponded}"
            ));
            alerts += a.as_array().map_or(0, Vec::len);
        }
    }
    for label in labels.iter().take(5) {
        same(&format!(
            "/tasks?label={label}&order_by=label={}",
            label.split('=').next().unwrap_or_default()
        ));
    }
    assert!(entries > 0, "no task log entries");
    assert!(alerts > 0, "no alerts");
    same("/alerts/unresponded_requests");
    let fleets = get_json(&memory, "/fleets");
    let mut fleet_entries = 0;
    for f in fleets.as_array().expect("fleets") {
        let name = f["name"].as_str().expect("fleet name");
        let log = same(&format!("/fleets/{name}/log?{all}"));
        fleet_entries += log["log"].as_array().map_or(0, Vec::len);
        for robot in log["robots"].as_object().into_iter().flatten() {
            fleet_entries += robot.1.as_array().map_or(0, Vec::len);
        }
    }
    assert!(fleet_entries > 0, "no fleet log entries");
    let (_, metrics) = stored.get("/metrics");
    assert!(
        metrics.contains("rmf_dash_store_read_failures_total 0"),
        "{metrics}"
    );
    stored.stop();
}

/// Migration 8: a version-7 store's input log (a row per input) becomes blocks, packed by the
/// minute but the last, with the same inputs in the same order; a row that does not decode is
/// left out (a restore skipped it too).
#[test]
fn a_version_7_input_log_is_converted_into_blocks() {
    use rmf_dash_dataflows::model::input::{InputValue, Kind, Name, Payload};
    let c = cluster();
    // 3 minutes, an input every second, two commands at each 10th second.
    let input = |i: i64| {
        let key = (Kind::Door, Name::from(format!("door_{}", i % 7)));
        (
            key,
            InputValue::Payload(Payload(format!("{{\"i\":{i}}}").into())),
        )
    };
    let mut rows = Vec::new();
    for i in 0..180i64 {
        rows.push((i * 1000, 0, input(i)));
        if i % 10 == 0 {
            rows.push((i * 1000, 1, input(1000 + i)));
        }
    }
    c.sql(async |db| {
        db.batch_execute(
            "CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .expect("schema_version");
        for (version, name, sql) in &rmf_dash::store::migrate::MIGRATIONS[..7] {
            db.batch_execute(sql).await.expect("migration");
            db.execute(
                "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .expect("version");
        }
        db.batch_execute(
            "CREATE TABLE input_log_d0 PARTITION OF input_log FOR VALUES FROM (0) TO (86400000);
             INSERT INTO checkpoint (id, time_ms) VALUES (1, 179000);
             INSERT INTO input_log VALUES (500, 0, 0, 'Door', 'bad', '\\x01');",
        )
        .await
        .expect("partition");
        for (t, cmd, input) in &rows {
            let value = bincode::serialize(input).expect("encodes");
            let key = input.0.1.to_string();
            db.execute(
                "INSERT INTO input_log VALUES ($1, $2, 0, 'Door', $3, $4)",
                &[t, cmd, &key, &value],
            )
            .await
            .expect("row");
        }
    });
    let dump = c.dump();
    let logged: Vec<(i64, String, Value)> = lines_of(&dump, "input_log")
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .map(|v| {
            (
                v["time_ms"].as_i64().expect("time"),
                v["key"].as_str().expect("key").into(),
                v["value"].clone(),
            )
        })
        .collect();
    let mut want: Vec<(i64, String, Value)> = rows
        .iter()
        .map(|(t, _, (key, value))| {
            (
                *t,
                key.1.to_string(),
                serde_json::to_value(value).expect("json"),
            )
        })
        .collect();
    // The dump's lines are sorted: compare by time and key.
    want.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut got = logged.clone();
    got.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    assert_eq!(
        got.len(),
        198,
        "180 + 18 inputs, the undecodable row left out"
    );
    assert_eq!(got, want);
    let (blocks, recent, old) = c.sql(async |db| {
        let count =
            async |sql: &str| -> i64 { db.query_one(sql, &[]).await.expect("count").get(0) };
        (
            count("SELECT count(*) FROM input_block").await,
            count("SELECT count(*) FROM input_recent").await,
            count("SELECT count(*) FROM pg_class WHERE relname LIKE 'input_log%'").await,
        )
    });
    assert_eq!(
        (blocks, recent, old),
        (2, 1, 0),
        "two packed minutes, the last plain"
    );
}

/// `serve` applies the retention on its own while active (`--prune-every`): a day-old input-log
/// partition goes without `store prune`.
#[test]
fn serve_prunes_the_store_while_active() {
    let c = cluster();
    let (ok, _, err) = replay(&c);
    assert!(ok, "{err}");
    let exists = |c: &Cluster| -> bool {
        c.sql(async |db| {
            db.query_one(
                "SELECT count(*) FROM pg_class WHERE relname = 'input_block_d0'",
                &[],
            )
            .await
            .expect("pg_class")
            .get::<_, i64>(0)
                == 1
        })
    };
    c.sql(async |db| {
        db.batch_execute(
            "CREATE TABLE input_block_d0 PARTITION OF input_block FOR VALUES FROM (0) TO (86400000);
             INSERT INTO input_block VALUES (5, 0, 5, 1, '\\x00');",
        )
        .await
        .expect("old partition")
    });
    assert!(exists(&c));
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("serve.log");
    let server = serve_with(c.url(), "max", &log, &["--prune-every", "1s"]);
    // The partition goes first, the log line once the whole prune is done.
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    let start = Instant::now();
    while exists(&c) || !logged().contains("store retention applied") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not pruned: {}",
            logged()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(server);
}
